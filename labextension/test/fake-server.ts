/**
 * An in-memory stand-in for the assistant's HTTP API behind a `makeRequest` function with
 * ServerConnection's signature. Event streams are real ReadableStreams that a test writes to.
 */

import type { ServerConnection } from '@jupyterlab/services';

import type {
  AssistantEvent,
  IMessage,
  IProvidersResponse,
  ISession,
  ISessionSummary
} from '../src/types';

export const BASE_URL = 'http://localhost:8888/a%40b/';
export const SETTINGS = { baseUrl: BASE_URL } as ServerConnection.ISettings;

export interface IRecorded {
  method: string;
  url: string;
  path: string;
  query: URLSearchParams;
  headers: Headers;
  body: unknown;
}

/** One open `GET .../events` response. */
export class FakeStream {
  constructor(
    readonly sessionId: string,
    readonly lastEventId: string | null,
    readonly signal: AbortSignal | null
  ) {
    this.body = new ReadableStream<Uint8Array>({
      start: controller => {
        this._controller = controller;
      }
    });
    signal?.addEventListener('abort', () => {
      this.aborted = true;
      this._fail(new DOMException('The operation was aborted.', 'AbortError'));
    });
  }

  readonly body: ReadableStream<Uint8Array>;
  aborted = false;
  closed = false;

  /** Send an event framed as the server does (`id: <turn>:<seq>`). */
  send(turnId: string, seq: number, event: AssistantEvent): void {
    this.raw(`id: ${turnId}:${seq}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
  }

  raw(text: string): void {
    if (!this.closed) {
      this._controller.enqueue(new TextEncoder().encode(text));
    }
  }

  /** End the response normally (as the server does after the terminal event). */
  close(): void {
    if (!this.closed) {
      this.closed = true;
      this._controller.close();
    }
  }

  /** The connection broke. */
  fail(): void {
    this._fail(new TypeError('network error'));
  }

  private _fail(err: Error): void {
    if (!this.closed) {
      this.closed = true;
      this._controller.error(err);
    }
  }

  private _controller!: ReadableStreamDefaultController<Uint8Array>;
}

export function message(
  role: 'user' | 'assistant',
  content: string,
  turnId: string | null,
  extra: Partial<IMessage> = {}
): IMessage {
  return {
    id: `${role}-${turnId}-${content.length}`,
    role,
    content,
    created_at: '2025-01-01T00:00:00.000Z',
    turn_id: turnId,
    status: 'complete',
    tools: [],
    ...extra
  };
}

export class FakeServer {
  sessions = new Map<string, ISession>();
  order: string[] = []; // creation order; the API lists newest first
  requests: IRecorded[] = [];
  streams: FakeStream[] = [];
  providers: IProvidersResponse = {
    default: 'claude',
    providers: [
      {
        name: 'claude',
        display_name: 'Claude Code',
        available: true,
        version: '2.1.197',
        problem: null
      }
    ]
  };
  /** Status code to answer the next `POST messages` with, instead of 202. */
  refuseNextMessage: { status: number; message: string } | null = null;
  /** Hold `POST messages` until released (to act while it is in flight). */
  holdMessages: Promise<void> | null = null;
  cancelled: string[] = [];
  /** Status code and message to answer `POST .../permissions/{id}` with, instead of 200. */
  refusePermission: { status: number; message: string } | null = null;
  /** The server cannot be reached: every request fails as fetch does. */
  down = false;
  private _next = 1;

  makeRequest = async (
    url: string,
    init: RequestInit,
    settings: ServerConnection.ISettings
  ): Promise<Response> => {
    if (this.down) {
      throw new TypeError('Failed to fetch');
    }
    if (settings !== SETTINGS) {
      throw new Error('the client must pass its server settings through');
    }
    const parsed = new URL(url);
    const prefix = new URL(BASE_URL).pathname + 'api/assistant/';
    if (!parsed.pathname.startsWith(prefix)) {
      return json(404, { message: `not under the assistant API: ${parsed.pathname}` });
    }
    const path = parsed.pathname.slice(prefix.length);
    const method = init.method ?? 'GET';
    const headers = new Headers(init.headers);
    const body = typeof init.body === 'string' ? JSON.parse(init.body) : undefined;
    this.requests.push({ method, url, path, query: parsed.searchParams, headers, body });
    return this._route(method, path, parsed.searchParams, headers, body, init.signal ?? null);
  };

  /** Add a stored session (newest so far). */
  addSession(path: string, extra: Partial<ISession> = {}): ISession {
    const id = `00000000-0000-4000-8000-${String(this._next++).padStart(12, '0')}`;
    const session: ISession = {
      version: 1,
      id,
      path,
      working_dir: '/root/' + path.split('/').slice(0, -1).join('/'),
      provider: 'claude',
      provider_session_id: null,
      context: {},
      messages: [],
      pending_message: null,
      title: '',
      created_at: `2025-01-01T00:00:${String(this._next).padStart(2, '0')}.000Z`,
      updated_at: `2025-01-01T00:00:${String(this._next).padStart(2, '0')}.000Z`,
      usage: { input_tokens: 0, output_tokens: 0, cost_usd: 0 },
      status: 'idle',
      detached: false,
      notebook_key: '/root/' + path,
      approvals: [],
      ...extra
    };
    this.sessions.set(id, session);
    this.order.push(id);
    return session;
  }

  /** Change a stored session as another process would; bumps `updated_at`. */
  update(id: string, change: (session: ISession) => void): void {
    const session = this.sessions.get(id)!;
    change(session);
    session.updated_at = new Date(Date.parse(session.updated_at) + 1000).toISOString();
  }

  /** Store a turn's reply and end it (what the runner does before the terminal event). */
  finishTurn(id: string, turnId: string, reply: string, status: IMessage['status']): void {
    this.update(id, session => {
      session.messages.push(message('assistant', reply, turnId, { status }));
      session.status = 'idle';
      session.usage = { input_tokens: 10, output_tokens: 20, cost_usd: 0.5 };
    });
  }

  requestsTo(method: string, pathEnd: string): IRecorded[] {
    return this.requests.filter(r => r.method === method && r.path.endsWith(pathEnd));
  }

  lastStream(): FakeStream {
    const stream = this.streams[this.streams.length - 1];
    if (!stream) {
      throw new Error('no event stream was opened');
    }
    return stream;
  }

  private async _route(
    method: string,
    path: string,
    query: URLSearchParams,
    headers: Headers,
    body: any,
    signal: AbortSignal | null
  ): Promise<Response> {
    if (method === 'GET' && path === 'providers') {
      return json(200, this.providers);
    }
    if (method === 'GET' && path === 'sessions') {
      const wanted = query.get('path');
      const rows = [...this.order]
        .reverse()
        .map(id => this.sessions.get(id)!)
        .filter(s => wanted === null || s.path === wanted)
        .map(summary);
      return json(200, { sessions: rows });
    }
    if (method === 'POST' && path === 'prewarm') {
      return json(200, { prewarm: 'started' });
    }
    if (method === 'POST' && path === 'sessions') {
      return json(201, this.addSession(body.path));
    }
    if (method === 'POST' && /^sessions\/[^/]+\/permissions\/[^/]+$/.test(path)) {
      const refusal = this.refusePermission;
      return refusal
        ? json(refusal.status, { message: refusal.message })
        : json(200, { answered: true });
    }
    const match = /^sessions\/([^/]+)(?:\/(messages|cancel|events|export|prewarm))?$/.exec(path);
    const session = match ? this.sessions.get(decodeURIComponent(match[1])) : undefined;
    if (!match || !session) {
      return json(404, { message: `Unknown session: ${path}` });
    }
    const action = match[2];
    if (method === 'GET' && !action) {
      return json(200, structuredClone(session));
    }
    if (method === 'POST' && action === 'messages') {
      if (this.holdMessages) {
        await this.holdMessages;
      }
      if (this.refuseNextMessage) {
        const { status, message: text } = this.refuseNextMessage;
        this.refuseNextMessage = null;
        return json(status, { message: text });
      }
      const turnId = `turn-${this._next++}`;
      this.update(session.id, s => {
        s.messages.push(message('user', body.content, turnId, { context: body.context }));
        s.status = 'running';
        s.title = s.title || body.content;
      });
      return json(202, { turn_id: turnId });
    }
    if (method === 'POST' && action === 'prewarm') {
      return json(200, { prewarm: session.status === 'running' ? 'busy' : 'started' });
    }
    if (method === 'POST' && action === 'cancel') {
      this.cancelled.push(session.id);
      return json(200, { cancelled: session.status === 'running' });
    }
    if (method === 'GET' && action === 'export') {
      // A stand-in for the server's rendering: the messages' text, one per line.
      const text = session.messages.map(m => m.content).join('\n');
      return new Response(`${query.get('format')}:${text}`, { status: 200 });
    }
    if (method === 'GET' && action === 'events') {
      const stream = new FakeStream(session.id, headers.get('Last-Event-ID'), signal);
      this.streams.push(stream);
      return new Response(stream.body, {
        status: 200,
        headers: { 'Content-Type': 'text/event-stream' }
      });
    }
    return json(405, { message: 'Method not allowed' });
  }
}

function summary(session: ISession): ISessionSummary {
  return {
    id: session.id,
    path: session.path,
    title: session.title,
    provider: session.provider,
    status: session.status,
    created_at: session.created_at,
    updated_at: session.updated_at,
    message_count: session.messages.length + (session.pending_message ? 1 : 0),
    detached: session.detached
  };
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json' }
  });
}

/** Wait until `condition` holds (the model works through promises and stream reads). */
export async function until(condition: () => boolean, what = 'condition'): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for: ${what}`);
    }
    await new Promise(resolve => setTimeout(resolve, 2));
  }
}
