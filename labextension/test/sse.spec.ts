import { ISseMessage, SseParser } from '../src/sse';

/** Feed `text` cut at every position in `cuts`, return all messages. */
function feed(text: string, cuts: number[] = []): ISseMessage[] {
  const parser = new SseParser();
  const out: ISseMessage[] = [];
  let start = 0;
  for (const cut of [...cuts, text.length]) {
    out.push(...parser.push(text.slice(start, cut)));
    start = cut;
  }
  return out;
}

const STREAM =
  ': stream of turn t1\n\n' +
  'id: t1:1\nevent: turn_started\ndata: {"type": "turn_started", "turn_id": "t1"}\n\n' +
  'id: t1:2\nevent: text\ndata: {"type": "text", "text": "Hel"}\n\n' +
  ': keep-alive\n\n' +
  'id: t1:3\nevent: done\ndata: {"type": "done"}\n\n';

describe('SseParser', () => {
  it('parses the server framing: ids, event names, data; skips comments', () => {
    const messages = feed(STREAM);
    expect(messages.map(m => [m.id, m.event])).toEqual([
      ['t1:1', 'turn_started'],
      ['t1:2', 'text'],
      ['t1:3', 'done']
    ]);
    expect(JSON.parse(messages[1].data)).toEqual({ type: 'text', text: 'Hel' });
  });

  it('gives the same messages however the bytes are chunked', () => {
    const whole = feed(STREAM);
    for (let cut = 1; cut < STREAM.length; cut++) {
      expect(feed(STREAM, [cut])).toEqual(whole);
    }
    const everyChar = Array.from({ length: STREAM.length - 1 }, (_, i) => i + 1);
    expect(feed(STREAM, everyChar)).toEqual(whole);
  });

  it('accepts CRLF and CR line ends, including a CRLF split across chunks', () => {
    const crlf = STREAM.replace(/\n/g, '\r\n');
    const cr = STREAM.replace(/\n/g, '\r');
    expect(feed(crlf)).toEqual(feed(STREAM));
    expect(feed(cr)).toEqual(feed(STREAM));
    const splitAt = crlf.indexOf('\r\n') + 1; // between \r and \n
    expect(feed(crlf, [splitAt])).toEqual(feed(STREAM));
  });

  it('joins multi-line data, strips one leading space only, defaults the event name', () => {
    const [message] = feed('data:  two spaces\ndata:second\n\n');
    expect(message).toEqual({ id: null, event: 'message', data: ' two spaces\nsecond' });
  });

  it('keeps the last id across messages and ignores an id with NUL', () => {
    const messages = feed('id: a:1\ndata: x\n\ndata: y\n\nid: bad\0id\ndata: z\n\n');
    expect(messages.map(m => m.id)).toEqual(['a:1', 'a:1', 'a:1']);
  });

  it('does not dispatch a message without data, nor an unterminated one', () => {
    const parser = new SseParser();
    expect(parser.push('event: text\n\n')).toEqual([]);
    expect(parser.push('data: {"partial": true}\n')).toEqual([]);
    parser.end();
    expect(parser.push('data: after\n\n')).toEqual([{ id: null, event: 'message', data: 'after' }]);
  });

  it('reads retry, ignores unknown fields, a line without colon and a leading BOM', () => {
    const messages = feed('\ufeffretry: 2500\nfoo: bar\ndata\n\nretry: soon\ndata: b\n\n');
    expect(messages).toEqual([
      { id: null, event: 'message', data: '', retry: 2500 },
      { id: null, event: 'message', data: 'b' }
    ]);
  });

  it('reports the last event id for a reconnect', () => {
    const parser = new SseParser();
    parser.push(STREAM.slice(0, STREAM.indexOf(': keep-alive')));
    expect(parser.lastEventId).toBe('t1:2');
  });
});
