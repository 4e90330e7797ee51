/**
 * The typed client of `{base_url}api/assistant/`. Every request goes through
 * `ServerConnection.makeRequest` (injected), so the base URL, the token and the XSRF header are
 * JupyterLab's own; streams are read with fetch + ReadableStream.
 */

import type { ServerConnection } from '@jupyterlab/services';

import { SseParser } from './sse';
import type {
  AssistantEvent,
  IProvidersResponse,
  IReceivedEvent,
  IRevertResponse,
  ISession,
  ISessionsResponse,
  ITurnChanges,
  MessageContext,
  PermissionDecision,
  PermissionScope
} from './types';

/** `ServerConnection.makeRequest`'s signature: the one thing the client needs from Lab. */
export type MakeRequest = (
  url: string,
  init: RequestInit,
  settings: ServerConnection.ISettings
) => Promise<Response>;

export interface IClientOptions {
  serverSettings: ServerConnection.ISettings;
  makeRequest: MakeRequest;
}

/** A refused request: the HTTP status and the server's `{"message": ...}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The whole JSON body of the refusal, when it had one (e.g. a revert's `conflicts`). */
    readonly body: Record<string, unknown> | null = null
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface IStreamOptions {
  /** Resume after this event (`<turn_id>:<seq>`); sent as the `Last-Event-ID` header. */
  lastEventId?: string | null;
  signal?: AbortSignal;
}

export interface IStreamEnd {
  /** The id of the last event received, for the next reconnect. */
  lastEventId: string | null;
  /** How many events this connection delivered. */
  received: number;
}

const PREFIX = 'api/assistant/';

export class AssistantClient {
  constructor(private readonly _options: IClientOptions) {}

  async providers(refresh = false): Promise<IProvidersResponse> {
    return this._json('GET', 'providers', refresh ? { refresh: '1' } : undefined);
  }

  async listSessions(path?: string): Promise<ISessionsResponse> {
    return this._json('GET', 'sessions', path === undefined ? undefined : { path });
  }

  async createSession(path: string): Promise<ISession> {
    return this._json('POST', 'sessions', undefined, { path });
  }

  async getSession(id: string): Promise<ISession> {
    return this._json('GET', `sessions/${encodeURIComponent(id)}`);
  }

  /**
   * The conversation as a file, rendered by the server: a Markdown transcript (`md`) or a
   * notebook's JSON text (`ipynb`), as `jupyter assistant sessions export` writes them.
   */
  async exportSession(id: string, format: 'md' | 'ipynb'): Promise<string> {
    const response = await this._send('GET', `sessions/${encodeURIComponent(id)}/export`, {
      format
    });
    return response.text();
  }

  async deleteSession(id: string): Promise<void> {
    await this._send('DELETE', `sessions/${encodeURIComponent(id)}`);
  }

  /** Starts a turn; resolves with its id once the server accepted it (202). */
  async postMessage(id: string, content: string, context?: MessageContext | null): Promise<string> {
    const body: { content: string; context?: MessageContext } = { content };
    if (context) {
      body.context = context;
    }
    const reply = await this._json<{ turn_id: string }>(
      'POST',
      `sessions/${encodeURIComponent(id)}/messages`,
      undefined,
      body
    );
    return reply.turn_id;
  }

  /**
   * Asks the server to start the session's agent now, so that its next question skips the
   * CLI's start-up; resolves with what became of it (`started`, `warm`, `busy`, `off`,
   * `unsupported`).
   */
  async prewarm(id: string): Promise<string> {
    const reply = await this._json<{ prewarm: string }>(
      'POST',
      `sessions/${encodeURIComponent(id)}/prewarm`,
      undefined,
      {}
    );
    return reply.prewarm;
  }

  /**
   * The same for the notebook's next new conversation (one it has none of yet): the
   * conversation `createSession(path)` then makes takes the agent.
   */
  async prewarmNotebook(path: string): Promise<string> {
    const reply = await this._json<{ prewarm: string }>('POST', 'prewarm', undefined, { path });
    return reply.prewarm;
  }

  /** Stops the session's running turn, wherever it runs; false if none was running. */
  async cancel(id: string): Promise<boolean> {
    const reply = await this._json<{ cancelled: boolean }>(
      'POST',
      `sessions/${encodeURIComponent(id)}/cancel`,
      undefined,
      {}
    );
    return reply.cancelled;
  }

  /** What a turn changed in the session's folder and notebook; 404 for a turn with no checkpoint. */
  async turnChanges(id: string, turnId: string): Promise<ITurnChanges> {
    return this._json(
      'GET',
      `sessions/${encodeURIComponent(id)}/turns/${encodeURIComponent(turnId)}/changes`
    );
  }

  /**
   * Undo a turn and the turns after it. Rejects with 409 while a turn runs, or with 409 and
   * `body.conflicts` (the paths) when files changed since, unless `force`; 404 unknown turn.
   */
  async revertTurn(id: string, turnId: string, force = false): Promise<IRevertResponse> {
    return this._json(
      'POST',
      `sessions/${encodeURIComponent(id)}/turns/${encodeURIComponent(turnId)}/revert`,
      undefined,
      force ? { force: true } : {}
    );
  }

  /**
   * Answer a tool approval question of the running turn (`permission_request`). Rejects with
   * 404 if it no longer waits, 409 if the turn runs in another process (a kernel).
   */
  async answerPermission(
    id: string,
    requestId: string,
    decision: PermissionDecision,
    scope: PermissionScope,
    message?: string | null
  ): Promise<void> {
    const body: { decision: string; scope: string; message?: string } = { decision, scope };
    if (message) {
      body.message = message;
    }
    await this._send(
      'POST',
      `sessions/${encodeURIComponent(id)}/permissions/${encodeURIComponent(requestId)}`,
      undefined,
      body
    );
  }

  /**
   * Read the event stream of the session's latest turn until the server ends it (after the
   * terminal event), calling `onEvent` for each event. Rejects on a network error or abort.
   */
  async streamEvents(
    id: string,
    options: IStreamOptions,
    onEvent: (received: IReceivedEvent) => void
  ): Promise<IStreamEnd> {
    const headers: Record<string, string> = { Accept: 'text/event-stream' };
    if (options.lastEventId) {
      headers['Last-Event-ID'] = options.lastEventId;
    }
    const response = await this._request(
      'GET',
      `sessions/${encodeURIComponent(id)}/events`,
      undefined,
      { headers, signal: options.signal }
    );
    await raiseForStatus(response);
    const parser = new SseParser();
    const end: IStreamEnd = { lastEventId: options.lastEventId ?? null, received: 0 };
    const deliver = (text: string): void => {
      for (const message of parser.push(text)) {
        let event: AssistantEvent;
        try {
          event = JSON.parse(message.data) as AssistantEvent;
        } catch {
          continue; // not ours to interpret; the server only sends JSON objects
        }
        if (!event || typeof event !== 'object' || typeof event.type !== 'string') {
          continue;
        }
        end.lastEventId = message.id ?? end.lastEventId;
        end.received += 1;
        onEvent({ id: message.id, event });
      }
    };
    if (!response.body) {
      deliver(await response.text());
    } else {
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) {
            break;
          }
          deliver(decoder.decode(value, { stream: true }));
        }
        deliver(decoder.decode());
      } finally {
        reader.releaseLock();
      }
    }
    parser.end();
    return end;
  }

  private async _json<T>(
    method: string,
    path: string,
    query?: Record<string, string>,
    body?: unknown
  ): Promise<T> {
    const response = await this._send(method, path, query, body);
    return (await response.json()) as T;
  }

  private async _send(
    method: string,
    path: string,
    query?: Record<string, string>,
    body?: unknown
  ): Promise<Response> {
    const init: RequestInit = {};
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'Content-Type': 'application/json' };
    }
    const response = await this._request(method, path, query, init);
    await raiseForStatus(response);
    return response;
  }

  private _request(
    method: string,
    path: string,
    query: Record<string, string> | undefined,
    init: RequestInit
  ): Promise<Response> {
    const { serverSettings, makeRequest } = this._options;
    let url = serverSettings.baseUrl + PREFIX + path;
    if (query) {
      url += '?' + new URLSearchParams(query).toString();
    }
    return makeRequest(url, { ...init, method }, serverSettings);
  }
}

async function raiseForStatus(response: Response): Promise<void> {
  if (response.ok) {
    return;
  }
  let message = `${response.status} ${response.statusText}`.trim();
  let json: Record<string, unknown> | null = null;
  try {
    const body = (await response.json()) as Record<string, unknown> | null;
    if (body && typeof body === 'object') {
      json = body;
      if (typeof body.message === 'string' && body.message) {
        message = body.message;
      }
    }
  } catch {
    // not JSON (e.g. a proxy's error page): keep the status line
  }
  throw new ApiError(response.status, message, json);
}
