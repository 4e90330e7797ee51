// Tool approval in the sidebar: the turn's questions and their answers (reducer), the words
// and diff lines a card shows, the API call, and the model's answer (with its refusals).

import type { ServerConnection } from '@jupyterlab/services';

import { AssistantClient } from '../src/api';
import { permissionOutcome, summaryLineKind } from '../src/format';
import { AssistantModel } from '../src/model';
import { applyEvent, emptyTurn, ILiveTurn, waitingPermissions } from '../src/turn';
import type { AssistantEvent, IPermissionRecord } from '../src/types';
import { FakeServer, message, SETTINGS, until } from './fake-server';

const NB = 'analysis/q3.ipynb';
const DIFF = '--- /dev/null\n+++ b/notes.txt\n@@ -0,0 +1 @@\n+hello';

const ASKED: AssistantEvent = {
  type: 'permission_request',
  request_id: 'r1',
  tool_name: 'Write',
  input: { file_path: '/root/analysis/notes.txt', content: 'hello\n' },
  summary: DIFF
};

function fold(events: AssistantEvent[]): ILiveTurn {
  return events.reduce(applyEvent, emptyTurn('t1'));
}

function record(extra: Partial<IPermissionRecord>): IPermissionRecord {
  return {
    request_id: 'r1',
    tool_name: 'Write',
    summary: '',
    decision: null,
    scope: 'once',
    message: null,
    by: null,
    ...extra
  };
}

describe('the turn reducer', () => {
  it('keeps a question until it is answered', () => {
    const asked = fold([ASKED]);
    expect(asked.permissions).toEqual([
      record({ input: (ASKED as { input: unknown }).input, summary: DIFF })
    ]);
    expect(waitingPermissions(asked.permissions).map(p => p.request_id)).toEqual(['r1']);
    const answered = applyEvent(asked, {
      type: 'permission_answered',
      request_id: 'r1',
      decision: 'allow',
      scope: 'session',
      message: null,
      by: 'user'
    });
    expect(answered.permissions[0]).toMatchObject({
      decision: 'allow',
      scope: 'session',
      by: 'user'
    });
    expect(waitingPermissions(answered.permissions)).toEqual([]);
    expect(applyEvent(answered, ASKED).permissions).toHaveLength(1); // a replay: no duplicate
  });

  it('marks a question the turn ended before answering', () => {
    for (const end of [
      { type: 'cancelled' },
      { type: 'done', provider_session_id: null, cost_usd: 0, duration_ms: 1 },
      { type: 'error', code: 'timeout', message: 'slow' }
    ] as AssistantEvent[]) {
      const over = fold([ASKED, end]);
      expect(over.permissions[0].by).toBe('ended');
      expect(waitingPermissions(over.permissions)).toEqual([]);
    }
  });
});

describe('what a card shows', () => {
  it('says what became of the question', () => {
    expect(permissionOutcome(record({}))).toBeNull();
    expect(permissionOutcome(record({ decision: 'allow', by: 'user' }))).toBe('Allowed once');
    expect(permissionOutcome(record({ decision: 'allow', scope: 'session', by: 'user' }))).toBe(
      'Allowed for this session'
    );
    expect(permissionOutcome(record({ decision: 'deny', by: 'user', message: 'not now' }))).toBe(
      'Denied: not now'
    );
    expect(permissionOutcome(record({ decision: 'deny', by: 'timeout' }))).toBe(
      'Denied: nobody answered in time'
    );
    expect(permissionOutcome(record({ by: 'ended' }))).toBe('Not answered: the turn ended first');
  });

  it('tells added and removed diff lines from the headers', () => {
    expect(DIFF.split('\n').map(summaryLineKind)).toEqual(['plain', 'plain', 'hunk', 'add']);
    expect(summaryLineKind('-old line')).toBe('remove');
    expect(summaryLineKind('$ touch notes.txt')).toBe('plain');
  });
});

describe('answering', () => {
  let server: FakeServer;
  let model: AssistantModel;

  beforeEach(() => {
    server = new FakeServer();
    const client = new AssistantClient({
      serverSettings: SETTINGS,
      makeRequest: server.makeRequest
    });
    model = new AssistantModel({ client, reconnectDelayMs: 1, maxReconnects: 2 });
  });

  afterEach(() => model.dispose());

  it('posts the answer under the API prefix, with the reason only when given', async () => {
    const calls: { url: string; init: RequestInit }[] = [];
    const client = new AssistantClient({
      serverSettings: { baseUrl: 'http://h:1/a%40b/' } as ServerConnection.ISettings,
      makeRequest: async (url, init) => {
        calls.push({ url, init });
        return new Response(JSON.stringify({ answered: true }), { status: 200 });
      }
    });
    await client.answerPermission('s 1', 'r/1', 'deny', 'once', 'too risky');
    await client.answerPermission('s1', 'r2', 'allow', 'session');
    expect(calls.map(c => [c.url, c.init.method, JSON.parse(String(c.init.body))])).toEqual([
      [
        'http://h:1/a%40b/api/assistant/sessions/s%201/permissions/r%2F1',
        'POST',
        { decision: 'deny', scope: 'once', message: 'too risky' }
      ],
      [
        'http://h:1/a%40b/api/assistant/sessions/s1/permissions/r2',
        'POST',
        { decision: 'allow', scope: 'session' }
      ]
    ]);
  });

  async function waitingTurn(): Promise<{ sid: string; turnId: string }> {
    const session = server.addSession(NB, { messages: [message('user', 'old', 't0')] });
    await model.setNotebook(NB);
    await model.send('RUN_WRITE: notes.txt hello');
    const turnId = server.sessions.get(session.id)!.messages[1].turn_id!;
    await until(() => server.streams.length === 1, 'the event stream');
    server.lastStream().send(turnId, 1, ASKED);
    await until(() => waitingPermissions(model.live?.permissions).length === 1, 'the question');
    return { sid: session.id, turnId };
  }

  it('answers the question of the streamed turn; the card follows the server', async () => {
    const { sid, turnId } = await waitingTurn();
    const [reply] = model.messages.filter(m => m.role === 'assistant' && m.status === 'running');
    expect(reply.permissions?.[0].summary).toBe(DIFF);

    const answering = model.answerPermission('r1', 'allow', 'session');
    expect(model.answering('r1')).toBe(true);
    await model.answerPermission('r1', 'allow', 'session'); // a double click sends nothing more
    await answering;
    expect(model.answering('r1')).toBe(false);
    const posts = server.requestsTo('POST', 'permissions/r1');
    expect(posts.map(p => [p.path, p.body])).toEqual([
      [`sessions/${sid}/permissions/r1`, { decision: 'allow', scope: 'session' }]
    ]);
    expect(model.error).toBeNull();
    server.lastStream().send(turnId, 2, {
      type: 'permission_answered',
      request_id: 'r1',
      decision: 'allow',
      scope: 'session',
      message: null,
      by: 'user'
    });
    await until(() => model.live?.permissions[0].decision === 'allow', 'the outcome');
  });

  it('shows why an answer was refused', async () => {
    await waitingTurn();
    server.refusePermission = {
      status: 409,
      message:
        'The turn runs in another process (a %%assistant cell in a kernel); answer its question there.'
    };
    await model.answerPermission('r1', 'deny', 'once', 'no');
    expect(model.error).toBe(
      'The answer was not taken: The turn runs in another process (a %%assistant cell in a ' +
        'kernel); answer its question there.'
    );
    expect(waitingPermissions(model.live?.permissions)).toHaveLength(1); // still waiting
  });

  it('shows the stored outcome of a question after a reload', async () => {
    const answered = record({ decision: 'deny', by: 'user', message: 'not here', summary: DIFF });
    server.addSession(NB, {
      messages: [
        message('user', 'q', 't1'),
        message('assistant', 'The tool failed', 't1', { permissions: [answered] })
      ]
    });
    await model.setNotebook(NB);
    const [, reply] = model.messages;
    expect(reply.permissions?.map(permissionOutcome)).toEqual(['Denied: not here']);
  });
});
