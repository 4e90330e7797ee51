import type { ServerConnection } from '@jupyterlab/services';

import { ApiError, AssistantClient, MakeRequest } from '../src/api';
import type { IReceivedEvent } from '../src/types';

const SETTINGS = { baseUrl: 'http://h:1/a%40b/' } as ServerConnection.ISettings;

interface ICall {
  url: string;
  init: RequestInit;
  settings: ServerConnection.ISettings;
}

/** A makeRequest that records its calls and answers with `reply`. */
function recorder(reply: (call: ICall) => Response): { calls: ICall[]; fn: MakeRequest } {
  const calls: ICall[] = [];
  const fn: MakeRequest = async (url, init, settings) => {
    const call = { url, init, settings };
    calls.push(call);
    return reply(call);
  };
  return { calls, fn };
}

const ok = (body: unknown, status = 200): Response =>
  new Response(JSON.stringify(body), { status });

/** A streamed body delivered in the given pieces. */
function chunked(pieces: string[]): Response {
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const piece of pieces) {
        controller.enqueue(encoder.encode(piece));
      }
      controller.close();
    }
  });
  return new Response(body, { status: 200 });
}

describe('AssistantClient', () => {
  it('puts every request under {base_url}api/assistant/ and passes the settings on', async () => {
    const { calls, fn } = recorder(() => ok({ sessions: [] }));
    const client = new AssistantClient({ serverSettings: SETTINGS, makeRequest: fn });
    await client.listSessions('my folder/ü q3.ipynb');
    await client.providers(true);
    expect(calls[0].settings).toBe(SETTINGS);
    const url = new URL(calls[0].url);
    expect(url.pathname).toBe('/a%40b/api/assistant/sessions');
    expect(url.searchParams.get('path')).toBe('my folder/ü q3.ipynb');
    expect(calls[0].init.method).toBe('GET');
    expect(calls[1].url).toBe('http://h:1/a%40b/api/assistant/providers?refresh=1');
  });

  it('sends JSON bodies and reads JSON replies', async () => {
    const { calls, fn } = recorder(call =>
      call.url.endsWith('/messages') ? ok({ turn_id: 't9' }, 202) : ok({ cancelled: true })
    );
    const client = new AssistantClient({ serverSettings: SETTINGS, makeRequest: fn });
    const turnId = await client.postMessage('s/1', 'hello', { active_cell: { index: 2 } });
    expect(turnId).toBe('t9');
    expect(calls[0].url).toBe('http://h:1/a%40b/api/assistant/sessions/s%2F1/messages');
    expect(calls[0].init.method).toBe('POST');
    expect(new Headers(calls[0].init.headers).get('Content-Type')).toBe('application/json');
    expect(JSON.parse(calls[0].init.body as string)).toEqual({
      content: 'hello',
      context: { active_cell: { index: 2 } }
    });
    await client.postMessage('s1', 'no context', null);
    expect(JSON.parse(calls[1].init.body as string)).toEqual({ content: 'no context' });
    expect(await client.cancel('s1')).toBe(true);
  });

  it("reads an export as the server's text", async () => {
    const { calls, fn } = recorder(() => new Response('# Sum per region\n', { status: 200 }));
    const client = new AssistantClient({ serverSettings: SETTINGS, makeRequest: fn });
    expect(await client.exportSession('s/1', 'md')).toBe('# Sum per region\n');
    expect(calls[0].url).toBe('http://h:1/a%40b/api/assistant/sessions/s%2F1/export?format=md');
    expect(calls[0].init.method).toBe('GET');
  });

  it("raises ApiError with the status and the server's message", async () => {
    const { fn } = recorder(() => ok({ message: 'A turn is already running' }, 409));
    const client = new AssistantClient({ serverSettings: SETTINGS, makeRequest: fn });
    const failure = client.postMessage('s1', 'hi');
    await expect(failure).rejects.toBeInstanceOf(ApiError);
    await expect(failure).rejects.toMatchObject({
      status: 409,
      message: 'A turn is already running'
    });
  });

  it('keeps the status line when an error body is not JSON', async () => {
    const { fn } = recorder(
      () => new Response('<html>Bad gateway</html>', { status: 502, statusText: 'Bad Gateway' })
    );
    const client = new AssistantClient({ serverSettings: SETTINGS, makeRequest: fn });
    await expect(client.getSession('s1')).rejects.toMatchObject({
      status: 502,
      message: '502 Bad Gateway'
    });
  });

  it('streams events from chunks cut anywhere, with Last-Event-ID and an abort signal', async () => {
    const frames =
      ': stream of turn t1\n\n' +
      'id: t1:4\nevent: text\ndata: {"type":"text","text":"a\\nb"}\n\n' +
      'id: t1:5\nevent: text\ndata: not json\n\n' +
      'id: t1:6\nevent: done\ndata: {"type":"done","cost_usd":0.1}\n\n';
    // cut inside the comment, inside an id line and inside a JSON payload
    const pieces = [
      frames.slice(0, 10),
      frames.slice(10, 27),
      frames.slice(27, 60),
      frames.slice(60)
    ];
    const { calls, fn } = recorder(() => chunked(pieces));
    const client = new AssistantClient({ serverSettings: SETTINGS, makeRequest: fn });
    const abort = new AbortController();
    const seen: IReceivedEvent[] = [];
    const end = await client.streamEvents('s1', { lastEventId: 't1:3', signal: abort.signal }, e =>
      seen.push(e)
    );
    const headers = new Headers(calls[0].init.headers);
    expect(headers.get('Last-Event-ID')).toBe('t1:3');
    expect(headers.get('Accept')).toBe('text/event-stream');
    expect(calls[0].init.signal).toBe(abort.signal);
    expect(calls[0].url).toBe('http://h:1/a%40b/api/assistant/sessions/s1/events');
    expect(seen).toEqual([
      { id: 't1:4', event: { type: 'text', text: 'a\nb' } },
      { id: 't1:6', event: { type: 'done', cost_usd: 0.1 } }
    ]);
    expect(end).toEqual({ lastEventId: 't1:6', received: 2 });
  });

  it('decodes UTF-8 split inside a character', async () => {
    const encoder = new TextEncoder();
    const bytes = encoder.encode('id: t:1\ndata: {"type":"text","text":"é€"}\n\n');
    const cut = bytes.indexOf(0xe2) + 1; // inside the euro sign
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.slice(0, cut));
        controller.enqueue(bytes.slice(cut));
        controller.close();
      }
    });
    const { fn } = recorder(() => new Response(body));
    const client = new AssistantClient({ serverSettings: SETTINGS, makeRequest: fn });
    const seen: IReceivedEvent[] = [];
    await client.streamEvents('s', {}, e => seen.push(e));
    expect(seen[0].event).toEqual({ type: 'text', text: 'é€' });
  });

  it('fails a stream request like any other when the server refuses it', async () => {
    const { fn } = recorder(() => ok({ message: 'Unknown session: x' }, 404));
    const client = new AssistantClient({ serverSettings: SETTINGS, makeRequest: fn });
    await expect(client.streamEvents('x', {}, () => undefined)).rejects.toMatchObject({
      status: 404
    });
  });
});
