/**
 * The browser's side of the notebook tools on an open notebook: it long-polls
 * `GET {base}api/assistant/notebook-requests` with the paths of the notebooks open here, carries
 * out each request on the open document (read it, insert, edit or delete a cell, run one) and
 * answers with `POST notebook-requests/{request_id}`. The server sends a notebook's tool calls
 * this way while a browser holds it open, so a change shows at once, the notebook's undo covers
 * it and a run's outputs show under its cell.
 *
 * No JupyterLab runtime here: the open document is an `INotebookDocument` (liveNotebook.ts
 * implements it on a NotebookPanel), so the loop and the dispatch run in unit tests.
 */

import type { ServerConnection } from '@jupyterlab/services';

import type { MakeRequest } from './api';

/** One request of the server, as `GET notebook-requests` lists it. */
export interface INotebookRequest {
  request_id: string;
  path: string;
  op: string;
  [key: string]: unknown;
}

/** An nbformat cell as the server sends it for an insert (with its `id`). */
export interface ICellJSON {
  id?: string;
  cell_type: 'code' | 'markdown' | 'raw';
  source: string | string[];
  metadata: Record<string, unknown>;
  [key: string]: unknown;
}

/** What a run answers when it has ended. */
export interface IRunResult {
  status: 'ok' | 'error' | 'aborted';
  execution_count: number | null;
  outputs: unknown[];
}

/** The answer to one request: `POST notebook-requests/{request_id}`'s body. */
export type RelayAnswer = { result: Record<string, unknown> } | { error: string };

/** A notebook open in this browser, as the relay acts on it. */
export interface INotebookDocument {
  /** The live nbformat JSON (cells with their ids and outputs). */
  snapshot(): Record<string, unknown>;
  /** Insert a cell at `index` as a local edit (the notebook's undo covers it). */
  insert(index: number, cell: ICellJSON): void;
  /** Set a cell's source and metadata keys; clear its outputs and count if asked. */
  edit(id: string, source: string, metadata: Record<string, unknown>, clearOutputs: boolean): void;
  /** Delete a cell. */
  remove(id: string): void;
  /** Run a code cell in the notebook's own kernel session, as a user's run; resolves at its end. */
  run(id: string): Promise<IRunResult>;
}

/** A request that cannot be done as asked: its message is the answer the model reads. */
export class RelayError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RelayError';
  }
}

const CELL_TYPES = new Set(['code', 'markdown', 'raw']);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requireString(request: INotebookRequest, key: string): string {
  const value = request[key];
  if (typeof value !== 'string' || !value) {
    throw new RelayError(`The "${request.op}" request has no "${key}" (a string).`);
  }
  return value;
}

async function perform(
  request: INotebookRequest,
  documentFor: (path: string) => INotebookDocument | null
): Promise<Record<string, unknown>> {
  const document = documentFor(request.path);
  if (!document) {
    throw new RelayError(
      `The notebook ${request.path} is not open in JupyterLab any more; try again.`
    );
  }
  switch (request.op) {
    case 'snapshot':
      return { notebook: document.snapshot() };
    case 'insert': {
      const index = request.index;
      if (typeof index !== 'number' || !Number.isInteger(index) || index < 0) {
        throw new RelayError('The "insert" request has no "index" (a cell index, 0 or more).');
      }
      const cell = request.cell;
      if (
        !isObject(cell) ||
        typeof cell.cell_type !== 'string' ||
        !CELL_TYPES.has(cell.cell_type)
      ) {
        throw new RelayError('The "insert" request has no "cell" (a code, markdown or raw cell).');
      }
      document.insert(index, cell as ICellJSON);
      return {};
    }
    case 'edit': {
      const id = requireString(request, 'id');
      const source = request.source;
      if (typeof source !== 'string') {
        throw new RelayError('The "edit" request has no "source" (a string).');
      }
      const metadata = request.metadata ?? {};
      if (!isObject(metadata)) {
        throw new RelayError('The "edit" request\'s "metadata" must be an object.');
      }
      document.edit(id, source, metadata, request.clear_outputs === true);
      return {};
    }
    case 'delete':
      document.remove(requireString(request, 'id'));
      return {};
    case 'run':
      return { ...(await document.run(requireString(request, 'id'))) };
    default:
      throw new RelayError(`JupyterLab does not know the notebook request "${request.op}".`);
  }
}

/**
 * Carry out one request on the open notebook of its path and say what to answer. Never
 * rejects: whatever goes wrong is an `{error}` answer in a sentence for the model.
 */
export async function dispatch(
  request: INotebookRequest,
  documentFor: (path: string) => INotebookDocument | null
): Promise<RelayAnswer> {
  try {
    return { result: await perform(request, documentFor) };
  } catch (err) {
    if (err instanceof RelayError) {
      return { error: err.message };
    }
    const message = err instanceof Error ? err.message : String(err);
    return { error: `JupyterLab could not do this on the open notebook: ${message}` };
  }
}

export interface IRelayOptions {
  serverSettings: ServerConnection.ISettings;
  makeRequest: MakeRequest;
  /** The API paths of the notebooks open in this browser now. */
  openPaths: () => string[];
  /** The open document of a path, or null if none is open. */
  documentFor: (path: string) => INotebookDocument | null;
  /** How long one poll waits for a request (seconds). */
  waitSeconds?: number;
  /** Waits after a failed poll: the first, then one more each time, up to the last. */
  retryMs?: { first: number; max: number };
  /** Wait after the server said the notebook tools are off or refused (403/404). */
  offMs?: number;
  log?: (message: string, reason?: unknown) => void;
}

const PREFIX = 'api/assistant/notebook-requests';

/** A wait that ends early when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

class PollRefused extends Error {
  constructor(readonly status: number) {
    super(`GET notebook-requests answered ${status}`);
  }
}

/**
 * The long-poll loop. `start()` when a notebook opens; `pathsChanged()` when one opens, closes
 * or is renamed (the poll under way ends and the next one lists the new paths). The loop ends
 * by itself when no notebook is open.
 */
export class NotebookRelay {
  constructor(private readonly _options: IRelayOptions) {}

  /** Whether a loop runs. */
  get running(): boolean {
    return this._active;
  }

  /** The requests being carried out or answered now. */
  get pending(): number {
    return this._pending.size;
  }

  /** Run the loop if a notebook is open and it does not run yet. */
  start(): void {
    if (this._disposed) {
      return;
    }
    if (this._active) {
      this._current?.abort();
      return;
    }
    this._active = true;
    this._loop = this._run();
  }

  /** Re-list the open notebooks now (the poll under way, or a wait to retry, ends). */
  pathsChanged(): void {
    this.start();
  }

  /** Resolves when the loop has ended (at once if none runs), and every answer was sent. */
  async idle(): Promise<void> {
    await this._loop;
    await Promise.all([...this._pending]);
  }

  dispose(): void {
    this._disposed = true;
    this._current?.abort();
  }

  private async _run(): Promise<void> {
    const { retryMs = { first: 1000, max: 5000 }, offMs = 60_000 } = this._options;
    let failures = 0;
    for (;;) {
      const paths = this._disposed ? [] : [...new Set(this._options.openPaths())];
      if (paths.length === 0) {
        this._active = false; // at once: a notebook opened from now on starts a new loop
        return;
      }
      const controller = new AbortController();
      this._current = controller;
      try {
        const requests = await this._poll(paths, controller.signal);
        failures = 0;
        for (const request of requests) {
          this._carryOut(request);
        }
      } catch (err) {
        if (controller.signal.aborted) {
          continue; // the open notebooks changed (or the relay was disposed)
        }
        failures += 1;
        const refused = err instanceof PollRefused && (err.status === 403 || err.status === 404);
        const ms = refused ? offMs : Math.min(retryMs.first * failures, retryMs.max);
        if (failures === 1) {
          this._log('jupyter-assistant: the notebook relay cannot poll; retrying', err);
        }
        await sleep(ms, controller.signal);
      } finally {
        if (this._current === controller) {
          this._current = null;
        }
      }
    }
  }

  private async _poll(paths: string[], signal: AbortSignal): Promise<INotebookRequest[]> {
    const query = new URLSearchParams(paths.map(path => ['path', path]));
    query.set('wait', String(this._options.waitSeconds ?? 20));
    const response = await this._request('GET', `${PREFIX}?${query.toString()}`, { signal });
    if (!response.ok) {
      throw new PollRefused(response.status);
    }
    const body = (await response.json()) as { requests?: unknown };
    if (!Array.isArray(body?.requests)) {
      return [];
    }
    return body.requests.filter(
      (r): r is INotebookRequest =>
        isObject(r) &&
        typeof r.request_id === 'string' &&
        typeof r.path === 'string' &&
        typeof r.op === 'string'
    );
  }

  /** Carry out a request and answer it, without holding up the loop (a run may take long). */
  private _carryOut(request: INotebookRequest): void {
    const task = (async () => {
      const answer = await dispatch(request, this._options.documentFor);
      try {
        const response = await this._request(
          'POST',
          `${PREFIX}/${encodeURIComponent(request.request_id)}`,
          {
            body: JSON.stringify(answer),
            headers: { 'Content-Type': 'application/json' }
          }
        );
        // 404: the server stopped waiting for this answer (it timed out); nothing to do.
        if (!response.ok && response.status !== 404) {
          this._log(`jupyter-assistant: answering a notebook request failed (${response.status})`);
        }
      } catch (err) {
        this._log('jupyter-assistant: answering a notebook request failed', err);
      }
    })();
    this._pending.add(task);
    void task.finally(() => this._pending.delete(task));
  }

  private _request(method: string, path: string, init: RequestInit): Promise<Response> {
    const { serverSettings, makeRequest } = this._options;
    return makeRequest(serverSettings.baseUrl + path, { ...init, method }, serverSettings);
  }

  private _log(message: string, reason?: unknown): void {
    (this._options.log ?? ((m, r) => console.warn(m, r ?? '')))(message, reason);
  }

  private _active = false;
  private _loop: Promise<void> | null = null;
  private _current: AbortController | null = null;
  private _pending = new Set<Promise<void>>();
  private _disposed = false;
}
