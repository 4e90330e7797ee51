import { AssistantClient } from '../src/api';
import { AssistantModel } from '../src/model';
import { FakeServer, message, SETTINGS, until } from './fake-server';

const NB = 'analysis/q3.ipynb';

function setup(): { server: FakeServer; model: AssistantModel } {
  const server = new FakeServer();
  const client = new AssistantClient({
    serverSettings: SETTINGS,
    makeRequest: server.makeRequest
  });
  const model = new AssistantModel({ client, reconnectDelayMs: 1, maxReconnects: 2 });
  return { server, model };
}

const texts = (model: AssistantModel): string[][] =>
  model.messages.map(m => [m.role, m.content, m.status]);

describe('AssistantModel', () => {
  let model: AssistantModel;
  let server: FakeServer;

  beforeEach(() => {
    ({ server, model } = setup());
  });

  afterEach(() => {
    model.dispose();
  });

  it('shows the newest conversation of the notebook, or none before the first message', async () => {
    const old = server.addSession(NB, { title: 'old' });
    const newest = server.addSession(NB, {
      messages: [message('user', 'q', 't1'), message('assistant', 'a', 't1')]
    });
    server.addSession('other.ipynb');
    await model.setNotebook(NB);
    expect(server.requestsTo('GET', 'sessions')[0].query.get('path')).toBe(NB);
    expect(model.sessions.map(s => s.id)).toEqual([newest.id, old.id]);
    expect(model.session?.id).toBe(newest.id);
    expect(texts(model)).toEqual([
      ['user', 'q', 'complete'],
      ['assistant', 'a', 'complete']
    ]);

    await model.setNotebook('empty.ipynb');
    expect(model.session).toBeNull();
    expect(model.messages).toEqual([]);
    expect(server.requestsTo('POST', 'sessions')).toHaveLength(0); // created on first message
  });

  it('creates the session on the first message, streams the reply, then shows what was stored', async () => {
    await model.setNotebook(NB);
    const sent = model.send('list files', { active_cell: { index: 0, source: 'df' } });
    expect(model.phase).toBe('sending');
    expect(texts(model)).toEqual([['user', 'list files', 'complete']]); // shown at once
    expect(await sent).toBe(true);
    expect(server.requestsTo('POST', 'sessions')[0].body).toEqual({ path: NB });
    const post = server.requestsTo('POST', 'messages')[0];
    expect(post.body).toEqual({
      content: 'list files',
      context: { active_cell: { index: 0, source: 'df' } }
    });
    const sid = model.session!.id;
    const turnId = (
      await server
        .makeRequest(`${SETTINGS.baseUrl}api/assistant/sessions/${sid}`, {}, SETTINGS)
        .then(r => r.json())
    ).messages[0].turn_id;

    await until(() => server.streams.length === 1, 'the event stream');
    const stream = server.lastStream();
    expect(stream.lastEventId).toBeNull();
    stream.send(turnId, 1, { type: 'turn_started', turn_id: turnId, provider: 'claude' });
    stream.send(turnId, 2, { type: 'text', text: 'Here ' });
    stream.send(turnId, 3, { type: 'tool_use', id: 'u1', name: 'Bash', input: { command: 'ls' } });
    stream.send(turnId, 4, { type: 'usage', input_tokens: 3, output_tokens: 4, cost_usd: 0.25 });
    await until(() => model.live?.tools.length === 1, 'the tool call');
    expect(model.phase).toBe('streaming');
    expect(model.busy).toBe(true);
    expect(texts(model)).toEqual([
      ['user', 'list files', 'complete'],
      ['assistant', 'Here ', 'running']
    ]);
    expect(model.usage).toEqual({ input_tokens: 3, output_tokens: 4, cost_usd: 0.25 });

    server.finishTurn(sid, turnId, 'Here they are', 'complete');
    stream.send(turnId, 5, { type: 'text', text: 'they are' });
    stream.send(turnId, 6, {
      type: 'done',
      provider_session_id: 'p1',
      cost_usd: 0.5,
      duration_ms: 9
    });
    stream.close();
    await until(() => model.phase === 'idle', 'the end of the turn');
    expect(model.live).toBeNull();
    expect(texts(model)).toEqual([
      ['user', 'list files', 'complete'],
      ['assistant', 'Here they are', 'complete']
    ]);
    expect(model.usage).toEqual({ input_tokens: 10, output_tokens: 20, cost_usd: 0.5 });
    expect(model.sessions[0].message_count).toBe(2);
  });

  it('Stop cancels the turn and keeps the partial reply, marked cancelled', async () => {
    const session = server.addSession(NB);
    await model.setNotebook(NB);
    await model.send('scenario:hang');
    const turnId = server.sessions.get(session.id)!.messages[0].turn_id!;
    await until(() => server.streams.length === 1);
    const stream = server.lastStream();
    stream.send(turnId, 1, { type: 'text', text: 'Working on it' });
    await until(() => model.live?.text === 'Working on it');

    const stopping = model.cancel();
    expect(model.cancelling).toBe(true);
    await stopping;
    expect(server.cancelled).toEqual([session.id]);
    server.finishTurn(session.id, turnId, 'Working on it', 'cancelled');
    stream.send(turnId, 2, { type: 'cancelled' });
    stream.close();
    await until(() => model.phase === 'idle');
    expect(model.cancelling).toBe(false);
    expect(texts(model).at(-1)).toEqual(['assistant', 'Working on it', 'cancelled']);
  });

  it('a Stop pressed before the server accepted the message stops the turn once it exists', async () => {
    const session = server.addSession(NB);
    await model.setNotebook(NB);
    let release!: () => void;
    server.holdMessages = new Promise(resolve => (release = resolve));
    const sent = model.send('go');
    await until(() => server.requestsTo('POST', 'messages').length === 1);
    await model.cancel();
    expect(server.cancelled).toEqual([]); // nothing to stop yet
    release();
    await sent;
    await until(() => server.cancelled.length === 1, 'the deferred cancel');
    expect(server.cancelled).toEqual([session.id]);
  });

  it('reconnects a dropped stream with Last-Event-ID and never repeats text', async () => {
    const session = server.addSession(NB);
    await model.setNotebook(NB);
    await model.send('long one');
    const turnId = server.sessions.get(session.id)!.messages[0].turn_id!;
    await until(() => server.streams.length === 1);
    server.lastStream().send(turnId, 1, { type: 'text', text: 'one ' });
    server.lastStream().send(turnId, 2, { type: 'text', text: 'two ' });
    await until(() => model.live?.text === 'one two ');
    server.lastStream().fail();
    await until(() => server.streams.length === 2, 'the reconnect');
    expect(server.lastStream().lastEventId).toBe(`${turnId}:2`);
    server.lastStream().send(turnId, 3, { type: 'text', text: 'three' });
    await until(() => model.live?.text === 'one two three');
    // the server may also close a stream early (a proxy timeout): resume after the last id
    server.lastStream().close();
    await until(() => server.streams.length === 3);
    expect(server.lastStream().lastEventId).toBe(`${turnId}:3`);
    server.finishTurn(session.id, turnId, 'one two three', 'complete');
    server
      .lastStream()
      .send(turnId, 4, { type: 'done', provider_session_id: null, cost_usd: 0, duration_ms: 1 });
    server.lastStream().close();
    await until(() => model.phase === 'idle');
    expect(texts(model).at(-1)).toEqual(['assistant', 'one two three', 'complete']);
  });

  it('after a reload, follows a running turn from its first event, history intact', async () => {
    const session = server.addSession(NB, {
      status: 'running',
      messages: [
        message('user', 'q1', 't1'),
        message('assistant', 'a1', 't1'),
        message('user', 'q2', 't2')
      ]
    });
    await model.setNotebook(NB);
    await until(() => server.streams.length === 1);
    const stream = server.lastStream();
    expect(stream.lastEventId).toBeNull(); // a fresh page replays the turn from the start
    stream.send('t2', 1, { type: 'turn_started', turn_id: 't2', provider: 'claude' });
    stream.send('t2', 2, { type: 'text', text: 'chunk 0. chunk 1. ' });
    await until(() => model.live?.text === 'chunk 0. chunk 1. ');
    expect(texts(model)).toEqual([
      ['user', 'q1', 'complete'],
      ['assistant', 'a1', 'complete'],
      ['user', 'q2', 'complete'],
      ['assistant', 'chunk 0. chunk 1. ', 'running']
    ]);
    server.finishTurn(session.id, 't2', 'chunk 0. chunk 1. ', 'complete');
    stream.send('t2', 3, { type: 'done', provider_session_id: null, cost_usd: 0, duration_ms: 1 });
    stream.close();
    await until(() => model.phase === 'idle');
    expect(texts(model)).toHaveLength(4);
  });

  it('a turn run by a kernel shows as running elsewhere, can be stopped, and ends by polling', async () => {
    const session = server.addSession(NB, {
      status: 'running',
      messages: [
        message('user', 'q1', 't1'),
        message('assistant', 'a1', 't1'),
        message('user', 'from a cell', 't2')
      ]
    });
    await model.setNotebook(NB);
    await until(() => server.streams.length === 1);
    // this server only has the events of its own older turn t1
    server.lastStream().send('t1', 1, { type: 'turn_started', turn_id: 't1', provider: 'claude' });
    await until(() => model.phase === 'elsewhere', 'the elsewhere state');
    expect(server.lastStream().aborted).toBe(true);
    expect(model.live).toBeNull();
    expect(model.busy).toBe(true);

    await model.poll(); // still running: no new stream is opened
    expect(server.streams).toHaveLength(1);

    // the kernel saves its partial reply as it grows: polling shows it
    server.update(session.id, s => {
      s.messages.push(message('assistant', 'partial from kernel', 't2', { status: 'streaming' }));
    });
    await model.poll();
    expect(texts(model).at(-1)).toEqual(['assistant', 'partial from kernel', 'streaming']);
    expect(model.phase).toBe('elsewhere');
    expect(server.streams).toHaveLength(1);

    await model.cancel();
    expect(server.cancelled).toEqual([session.id]);
    server.update(session.id, s => {
      s.messages[s.messages.length - 1].status = 'cancelled';
      s.status = 'idle';
    });
    await model.poll();
    expect(model.phase).toBe('idle');
    expect(model.cancelling).toBe(false);
    expect(texts(model).at(-1)).toEqual(['assistant', 'partial from kernel', 'cancelled']);
  });

  it('a running turn the server has no events of (it restarted) is treated as elsewhere', async () => {
    server.addSession(NB, { status: 'running', messages: [message('user', 'q', 't5')] });
    await model.setNotebook(NB);
    await until(() => server.streams.length === 1);
    server.lastStream().close(); // ends at once with no event
    await until(() => model.phase === 'elsewhere');
  });

  it('sees a turn started in another tab without a refresh, and streams it', async () => {
    const session = server.addSession(NB);
    await model.setNotebook(NB);
    expect(model.phase).toBe('idle');
    server.update(session.id, s => {
      s.messages.push(message('user', 'from another tab', 't7'));
      s.status = 'running';
    });
    await model.poll();
    await until(() => server.streams.length === 1);
    server.lastStream().send('t7', 1, { type: 'turn_started', turn_id: 't7', provider: 'claude' });
    server.lastStream().send('t7', 2, { type: 'text', text: 'streamed here too' });
    await until(() => model.live?.text === 'streamed here too');
    expect(texts(model)[0]).toEqual(['user', 'from another tab', 'complete']);
  });

  it('polls only while active, on the configured interval', async () => {
    jest.useFakeTimers();
    try {
      server.addSession(NB);
      model.pollSeconds = 2;
      await model.setNotebook(NB);
      const before = server.requestsTo('GET', 'sessions').length;
      model.setActive(true); // polls at once, then every 2 s
      await jest.advanceTimersByTimeAsync(4100);
      const active = server.requestsTo('GET', 'sessions').length - before;
      expect(active).toBe(3);
      model.setActive(false);
      await jest.advanceTimersByTimeAsync(10000);
      expect(server.requestsTo('GET', 'sessions').length - before).toBe(active);
    } finally {
      jest.useRealTimers();
    }
  });

  it('warms up the shown conversation once while the panel is shown, again when typing later', async () => {
    jest.useFakeTimers();
    try {
      const shown = server.addSession(NB, {
        messages: [message('user', 'q', 't1'), message('assistant', 'a', 't1')]
      });
      server.addSession('busy.ipynb', { status: 'running' });
      const prewarms = () => server.requestsTo('POST', 'prewarm').map(r => r.path);
      await model.setNotebook(NB);
      expect(prewarms()).toEqual([]); // the panel is hidden: nothing starts
      model.setActive(true);
      await jest.advanceTimersByTimeAsync(10);
      expect(prewarms()).toEqual([]); // the provider is not known to work yet
      const usable = server.providers.providers[0];
      server.providers.providers[0] = { ...usable, credentials: 'missing' };
      await model.loadProviders();
      expect(model.needsSetup).toBe(true);
      expect(prewarms()).toEqual([]); // not logged in: the set-up card, no agent
      server.providers.providers[0] = usable;
      await model.loadProviders(true); // "Check again" after the login
      await jest.advanceTimersByTimeAsync(20_000); // polling adopts the session again and again
      expect(prewarms()).toEqual([`sessions/${shown.id}/prewarm`]);
      model.warmUp(true); // the message box got the focus: asked a moment ago already
      expect(prewarms()).toHaveLength(1);
      await jest.advanceTimersByTimeAsync(61_000);
      model.warmUp(true); // a minute on: the server may have ended an idle agent
      expect(prewarms()).toHaveLength(2);

      await model.setNotebook('busy.ipynb'); // a running turn needs no warm-up
      expect(prewarms()).toHaveLength(2);
      await model.setNotebook('empty.ipynb'); // no conversation yet: its first one's agent
      await jest.advanceTimersByTimeAsync(10);
      expect(prewarms()[2]).toBe('prewarm');
      expect(server.requestsTo('POST', 'prewarm')[2].body).toEqual({ path: 'empty.ipynb' });
      model.warmUp(true);
      expect(prewarms()).toHaveLength(3);
      expect(server.requestsTo('POST', 'sessions')).toHaveLength(0); // still made by a message

      model.setActive(false);
      await model.setNotebook(NB);
      model.setActive(true); // shown again: warmed up again (the server says if it runs)
      await jest.advanceTimersByTimeAsync(100);
      expect(prewarms()).toHaveLength(4);
      model.newConversation(); // a draft: the agent of the notebook's next conversation
      await jest.advanceTimersByTimeAsync(10);
      expect(prewarms()).toHaveLength(5);
      expect(prewarms()[4]).toBe('prewarm');
    } finally {
      jest.useRealTimers();
    }
  });

  it('New conversation starts a draft that polling does not replace; the message creates it', async () => {
    const first = server.addSession(NB, { messages: [message('user', 'old', 't1')] });
    await model.setNotebook(NB);
    model.newConversation();
    expect(model.session).toBeNull();
    expect(model.messages).toEqual([]);
    await model.poll();
    expect(model.session).toBeNull(); // the older conversation is not adopted again
    await model.send('fresh start');
    expect(model.session?.id).not.toBe(first.id);
    expect(model.sessions.map(s => s.id)).toEqual([model.session!.id, first.id]);
  });

  it('an earlier conversation stays shown when picked, even as polling sees a newer one', async () => {
    const older = server.addSession(NB, { messages: [message('user', 'older', 't1')] });
    server.addSession(NB, { messages: [message('user', 'newer', 't2')] });
    await model.setNotebook(NB);
    await model.selectSession(older.id);
    expect(texts(model)).toEqual([['user', 'older', 'complete']]);
    await model.poll();
    expect(model.session?.id).toBe(older.id);
  });

  it('follows a newer conversation started elsewhere unless one was picked', async () => {
    server.addSession(NB);
    await model.setNotebook(NB);
    const elsewhere = server.addSession(NB, { messages: [message('user', 'from a magic', 't3')] });
    await model.poll();
    expect(model.session?.id).toBe(elsewhere.id);
  });

  it('switching notebooks mid-turn detaches the stream and reattaches on return', async () => {
    const session = server.addSession(NB);
    const other = server.addSession('other.ipynb', {
      messages: [message('user', 'other chat', 't9')]
    });
    await model.setNotebook(NB);
    await model.send('long');
    const turnId = server.sessions.get(session.id)!.messages[0].turn_id!;
    await until(() => server.streams.length === 1);
    server.lastStream().send(turnId, 1, { type: 'text', text: 'part' });
    await until(() => model.live?.text === 'part');

    await model.setNotebook('other.ipynb');
    expect(server.streams[0].aborted).toBe(true);
    expect(model.session?.id).toBe(other.id);
    expect(model.phase).toBe('idle');
    expect(texts(model)).toEqual([['user', 'other chat', 'complete']]);

    await model.setNotebook(NB);
    await until(() => server.streams.length === 2, 'the reattach');
    server.lastStream().send(turnId, 1, { type: 'text', text: 'part' });
    await until(() => model.live?.text === 'part');
    expect(model.phase).toBe('streaming');
  });

  it('a refused message is reported, not shown, and handed back', async () => {
    server.addSession(NB);
    await model.setNotebook(NB);
    server.refuseNextMessage = {
      status: 413,
      message: 'The message and its context are 2000000 bytes'
    };
    expect(await model.send('huge')).toBe(false);
    expect(model.phase).toBe('idle');
    expect(model.messages).toEqual([]);
    expect(model.error).toContain('2000000 bytes');

    server.refuseNextMessage = { status: 409, message: 'busy' };
    expect(await model.send('again')).toBe(false);
    expect(model.error).toContain('already running');
  });

  it('reports a lost server while polling, and stops once it answers again', async () => {
    server.addSession(NB);
    await model.setNotebook(NB);
    server.down = true;
    await model.poll();
    expect(model.error).toContain('Lost contact with the server: Failed to fetch');
    server.down = false;
    await model.poll();
    expect(model.error).toBeNull();
  });

  it('shows the fix for a missing CLI or a missing login as the setup problem', async () => {
    server.providers.providers[0] = {
      ...server.providers.providers[0],
      available: false,
      problem: 'Claude Code CLI not found: npm install -g @anthropic-ai/claude-code'
    };
    await model.loadProviders();
    expect(model.setupProblem).toContain('npm install -g @anthropic-ai/claude-code');

    server.providers.providers[0] = {
      ...server.providers.providers[0],
      available: true,
      problem: null
    };
    await model.loadProviders(true);
    expect(model.setupProblem).toBeNull();

    const session = server.addSession(NB);
    await model.setNotebook(NB);
    await model.send('hi');
    const turnId = server.sessions.get(session.id)!.messages[0].turn_id!;
    await until(() => server.streams.length === 1);
    server.finishTurn(session.id, turnId, '', 'error');
    server.lastStream().send(turnId, 1, {
      type: 'error',
      code: 'not_authenticated',
      message: 'Not logged in: run claude /login'
    });
    server.lastStream().close();
    await until(() => model.phase === 'idle');
    expect(model.setupProblem).toBe('Not logged in: run claude /login');
  });

  it('asks for set-up while the provider in use cannot run, until a check says it can', async () => {
    expect(model.needsSetup).toBe(false); // nothing known yet: the message box shows
    server.providers.providers[0] = {
      ...server.providers.providers[0],
      available: false,
      problem: 'Claude Code CLI not found'
    };
    await model.loadProviders();
    expect(model.needsSetup).toBe(true);
    expect(server.requestsTo('GET', 'providers')[0].query.get('refresh')).toBeNull();

    // "Check again": a fresh check, shown while it runs; still missing.
    const checking = model.loadProviders(true);
    expect(model.checkingProviders).toBe(true);
    await checking;
    expect(model.checkingProviders).toBe(false);
    expect(server.requestsTo('GET', 'providers')[1].query.get('refresh')).toBe('1');
    expect(model.needsSetup).toBe(true);

    // Installed, but known not to be logged in: still set-up.
    server.providers.providers[0] = {
      ...server.providers.providers[0],
      available: true,
      problem: 'Codex is not logged in',
      credentials: 'missing'
    };
    await model.loadProviders(true);
    expect(model.needsSetup).toBe(true);
    expect(model.setupProblem).toBe('Codex is not logged in');

    server.providers.providers[0] = {
      ...server.providers.providers[0],
      problem: null,
      credentials: 'present'
    };
    await model.loadProviders(true);
    expect(model.needsSetup).toBe(false);
    expect(model.setupProblem).toBeNull();
  });

  it("judges the shown conversation's provider, not only the default", async () => {
    server.providers.providers.push({
      name: 'codex',
      display_name: 'Codex',
      available: true,
      version: '0.1',
      problem: 'Codex is not logged in',
      credentials: 'missing'
    });
    server.addSession(NB, { provider: 'codex' });
    await model.loadProviders();
    expect(model.needsSetup).toBe(false); // the default (claude) works
    await model.setNotebook(NB);
    expect(model.provider?.name).toBe('codex');
    expect(model.needsSetup).toBe(true);
  });

  it('exports the conversation as stored now, and says when there is none', async () => {
    expect(await model.loadExport('md')).toBeNull();
    expect(model.error).toBe('There is no conversation to export yet.');
    const stored = server.addSession(NB, {
      messages: [message('user', 'q', 't1'), message('assistant', 'a', 't1')]
    });
    await model.setNotebook(NB);
    // another process adds a turn after the panel loaded the conversation
    server.update(stored.id, s => s.messages.push(message('user', 'later', 't2')));
    expect(await model.loadExport('md')).toBe('md:q\na\nlater'); // rendered by the server
    expect(await model.loadExport('ipynb')).toBe('ipynb:q\na\nlater');
    expect(server.requestsTo('GET', '/export').map(r => r.query.get('format'))).toEqual([
      'md',
      'ipynb'
    ]);

    server.sessions.delete(stored.id);
    expect(await model.loadExport('md')).toBeNull();
    expect(model.error).toContain('Could not export the conversation');
  });
});
