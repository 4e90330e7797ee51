import {
  applyEvent,
  displayMessages,
  emptyTurn,
  ILiveTurn,
  replyParts,
  runningTurnId,
  toolStopped,
  totalUsage
} from '../src/turn';
import type { AssistantEvent } from '../src/types';
import { message } from './fake-server';

function fold(events: AssistantEvent[]): ILiveTurn {
  return events.reduce(applyEvent, emptyTurn());
}

describe('applyEvent', () => {
  it('builds the reply, tool calls, usage and notices of a turn', () => {
    const turn = fold([
      { type: 'turn_started', turn_id: 't1', provider: 'claude' },
      { type: 'text', text: 'I will run ' },
      { type: 'text', text: 'pwd.' },
      { type: 'tool_use', id: 'u1', name: 'Bash', input: { command: 'pwd' } },
      { type: 'usage', input_tokens: 5, output_tokens: 1, cost_usd: 0.01 },
      { type: 'tool_result', id: 'u1', content: '/root/analysis', is_error: false },
      { type: 'notice', level: 'warning', message: 'retrying' },
      { type: 'usage', input_tokens: 9, output_tokens: 4, cost_usd: 0.02 }
    ]);
    expect(turn.turnId).toBe('t1');
    expect(turn.text).toBe('I will run pwd.');
    expect(turn.tools).toEqual([
      {
        id: 'u1',
        name: 'Bash',
        input: { command: 'pwd' },
        result: '/root/analysis',
        is_error: false,
        text_offset: 15
      }
    ]);
    expect(turn.usage).toEqual({ input_tokens: 9, output_tokens: 4, cost_usd: 0.02 });
    expect(turn.notices).toEqual(['retrying']);
    expect(turn.status).toBe('running');
  });

  it('ends on the terminal event and ignores anything after it', () => {
    const cancelled = fold([
      { type: 'text', text: 'partial' },
      { type: 'cancelled' },
      { type: 'text', text: ' more' }
    ]);
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.text).toBe('partial');
    const failed = fold([{ type: 'error', code: 'not_authenticated', message: 'run /login' }]);
    expect(failed.status).toBe('error');
    expect(failed.error).toEqual({ code: 'not_authenticated', message: 'run /login' });
    expect(
      fold([{ type: 'done', provider_session_id: 'p', cost_usd: 0, duration_ms: 1 }]).status
    ).toBe('complete');
  });

  it('marks failed tools and keeps a result whose call was not seen', () => {
    const turn = fold([
      { type: 'tool_result', id: 'u2', content: 'denied', is_error: true },
      { type: 'permission_denied', tool_name: 'Bash', input: {}, message: 'allow it in config' }
    ]);
    expect(turn.tools[0]).toMatchObject({ id: 'u2', name: '', is_error: true });
    expect(turn.notices).toEqual(['allow it in config']);
  });
});

describe('replyParts', () => {
  const call = (id: string, text_offset?: number) => ({
    id,
    name: 'Bash',
    input: { command: 'pwd' },
    result: 'ok',
    is_error: false,
    ...(text_offset === undefined ? {} : { text_offset })
  });
  const order = (parts: ReturnType<typeof replyParts>): string[] =>
    parts.map(p => (p.kind === 'tool' ? `[${p.call.id}]` : p.text));

  it('puts text streamed before a tool call above its card, as the events came', () => {
    const turn = fold([
      { type: 'text', text: 'I will run pwd.' },
      { type: 'tool_use', id: 'u1', name: 'Bash', input: { command: 'pwd' } },
      { type: 'tool_result', id: 'u1', content: '/root', is_error: false },
      { type: 'text', text: 'The folder is /root' }
    ]);
    expect(order(replyParts(turn.text, turn.tools))).toEqual([
      'I will run pwd.',
      '[u1]',
      'The folder is /root'
    ]);
  });

  it('interleaves a stored reply by text_offset, else keeps the tools after the text', () => {
    const content = 'First.Second.Third.';
    expect(order(replyParts(content, [call('b', 13), call('a', 6)]))).toEqual([
      'First.',
      '[a]',
      'Second.',
      '[b]',
      'Third.'
    ]);
    expect(order(replyParts(content, [call('x'), call('y', 0)]))).toEqual([
      '[y]',
      'First.Second.Third.',
      '[x]'
    ]);
    expect(order(replyParts('', [call('z', 99)]))).toEqual(['[z]']);
  });
});

describe('toolStopped', () => {
  const unfinished = { id: 'u', name: 'Bash', input: {}, result: undefined, is_error: false };
  const failed = { ...unfinished, result: 'Interrupted by user', is_error: true };
  const done = { ...unfinished, result: 'ok' };

  it('says stopped for a cancelled or interrupted turn without a proper result', () => {
    expect(toolStopped(unfinished, 'cancelled')).toBe(true);
    expect(toolStopped(failed, 'cancelled')).toBe(true);
    expect(toolStopped(failed, 'interrupted')).toBe(true);
    expect(toolStopped(done, 'cancelled')).toBe(false);
    expect(toolStopped(failed, 'complete')).toBe(false);
    expect(toolStopped(unfinished, 'running')).toBe(false);
    const turn = fold([
      { type: 'tool_use', id: 'u1', name: 'Bash', input: { command: 'sleep 9' } },
      { type: 'cancelled' }
    ]);
    expect(toolStopped(turn.tools[0], turn.status)).toBe(true);
  });
});

describe('displayMessages', () => {
  const user = message('user', 'hi', 't1');
  const reply = message('assistant', 'hello', 't1');

  it('shows the stored history then the live reply', () => {
    const live = { ...emptyTurn('t2'), text: 'stream' };
    const shown = displayMessages([user, reply], null, message('user', 'next', 't2'), live);
    expect(shown.map(m => [m.role, m.content, m.status])).toEqual([
      ['user', 'hi', 'complete'],
      ['assistant', 'hello', 'complete'],
      ['user', 'next', 'complete'],
      ['assistant', 'stream', 'running']
    ]);
  });

  it('never shows a message twice, whichever of refresh and stream came first', () => {
    const live = { ...emptyTurn('t1'), text: 'hello', status: 'complete' as const };
    // the refresh already holds both the user message and the reply of the live turn
    const shown = displayMessages([user, reply], null, { ...user, id: 'local' }, live);
    expect(shown.map(m => [m.role, m.content])).toEqual([
      ['user', 'hi'],
      ['assistant', 'hello']
    ]);
    // the server has not moved the pending message into the history yet
    const pending = displayMessages([], user, { ...user, id: 'local' }, null);
    expect(pending).toHaveLength(1);
  });
});

describe('runningTurnId', () => {
  it('is the pending message, else the last user message without a reply', () => {
    const u1 = message('user', 'a', 't1');
    const a1 = message('assistant', 'b', 't1');
    const u2 = message('user', 'c', 't2');
    expect(runningTurnId([u1, a1], message('user', 'p', 't3'))).toBe('t3');
    expect(runningTurnId([u1, a1, u2], null)).toBe('t2');
    expect(runningTurnId([u1, a1], null)).toBeNull();
    expect(runningTurnId([], null)).toBeNull();
    // a reply checkpointed while its turn runs is not final
    const partial = message('assistant', 'so far', 't2', { status: 'streaming' });
    expect(runningTurnId([u1, a1, u2, partial], null)).toBe('t2');
    expect(runningTurnId([u1, a1, u2, { ...partial, status: 'complete' }], null)).toBeNull();
  });
});

describe('totalUsage', () => {
  const usage = { input_tokens: 100, output_tokens: 50, cost_usd: 1 };

  it('adds the running turn until the session stores its reply', () => {
    const live = {
      ...emptyTurn('t2'),
      usage: { input_tokens: 1, output_tokens: 2, cost_usd: 0.5 }
    };
    expect(totalUsage({ usage, messages: [] }, live)).toEqual({
      input_tokens: 101,
      output_tokens: 52,
      cost_usd: 1.5
    });
    const stored = { usage, messages: [message('assistant', 'x', 't2')] };
    expect(totalUsage(stored, live)).toEqual(usage);
    expect(totalUsage(null, null)).toEqual({ input_tokens: 0, output_tokens: 0, cost_usd: 0 });
  });
});
