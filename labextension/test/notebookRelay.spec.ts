import type { ServerConnection } from '@jupyterlab/services';

import type { MakeRequest } from '../src/api';
import {
  dispatch,
  ICellJSON,
  INotebookDocument,
  INotebookRequest,
  IRunResult,
  NotebookRelay,
  RelayError
} from '../src/notebookRelay';

const SETTINGS = { baseUrl: 'http://h:1/a%40b/' } as ServerConnection.ISettings;

interface ICell {
  id: string;
  cell_type: string;
  source: string;
  metadata: Record<string, unknown>;
  outputs?: unknown[];
  execution_count?: number | null;
}

/** An open notebook as plain data, doing what LiveNotebook does to the shared model. */
class FakeDocument implements INotebookDocument {
  cells: ICell[] = [
    {
      id: 'c1',
      cell_type: 'code',
      source: 'x = 1',
      metadata: {},
      outputs: [{ output_type: 'stream', name: 'stdout', text: 'old\n' }],
      execution_count: 3
    }
  ];
  runs: Array<(result: IRunResult) => void> = [];

  snapshot(): Record<string, unknown> {
    return { cells: this.cells, metadata: {}, nbformat: 4, nbformat_minor: 5 };
  }
  insert(index: number, cell: ICellJSON): void {
    if (index > this.cells.length) {
      throw new RelayError(`Cell index ${index} is out of range.`);
    }
    this.cells.splice(index, 0, { ...(cell as unknown as ICell) });
  }
  edit(id: string, source: string, metadata: Record<string, unknown>, clear: boolean): void {
    const cell = this._cell(id);
    cell.source = source;
    Object.assign(cell.metadata, metadata);
    if (clear) {
      cell.outputs = [];
      cell.execution_count = null;
    }
  }
  remove(id: string): void {
    this._cell(id);
    this.cells = this.cells.filter(c => c.id !== id);
  }
  run(id: string): Promise<IRunResult> {
    this._cell(id);
    return new Promise(resolve => this.runs.push(resolve));
  }
  private _cell(id: string): ICell {
    const cell = this.cells.find(c => c.id === id);
    if (!cell) {
      throw new RelayError(`The open notebook has no cell with the id ${id}.`);
    }
    return cell;
  }
}

const request = (op: string, fields: Record<string, unknown> = {}): INotebookRequest => ({
  request_id: `r-${op}`,
  path: 'a/q3.ipynb',
  op,
  ...fields
});

describe('dispatch', () => {
  let doc: FakeDocument;
  const find = (path: string): INotebookDocument | null => (path === 'a/q3.ipynb' ? doc : null);
  beforeEach(() => {
    doc = new FakeDocument();
  });

  it('answers a snapshot with the live notebook', async () => {
    const answer = await dispatch(request('snapshot'), find);
    expect(answer).toEqual({ result: { notebook: doc.snapshot() } });
  });

  it('inserts, edits and deletes a cell, answering {}', async () => {
    const mark = { session_id: 's', turn_id: 't' };
    const cell = {
      id: 'new',
      cell_type: 'code',
      source: 'print(6*7)',
      metadata: { jupyter_assistant: mark },
      outputs: [],
      execution_count: null
    };
    expect(await dispatch(request('insert', { index: 0, cell }), find)).toEqual({ result: {} });
    expect(doc.cells.map(c => c.id)).toEqual(['new', 'c1']);

    const edit = request('edit', {
      id: 'c1',
      source: 'x = 2',
      metadata: { jupyter_assistant: mark },
      clear_outputs: true
    });
    expect(await dispatch(edit, find)).toEqual({ result: {} });
    expect(doc.cells[1]).toMatchObject({
      source: 'x = 2',
      metadata: { jupyter_assistant: mark },
      outputs: [],
      execution_count: null
    });

    expect(await dispatch(request('delete', { id: 'new' }), find)).toEqual({ result: {} });
    expect(doc.cells.map(c => c.id)).toEqual(['c1']);
  });

  it('keeps the outputs of an edit that does not ask to clear them', async () => {
    await dispatch(request('edit', { id: 'c1', source: 'x = 1  # same', metadata: {} }), find);
    expect(doc.cells[0].outputs).toHaveLength(1);
    expect(doc.cells[0].execution_count).toBe(3);
  });

  it('answers a run when it has ended, with its status, count and outputs', async () => {
    const pending = dispatch(request('run', { id: 'c1' }), find);
    await Promise.resolve();
    expect(doc.runs).toHaveLength(1);
    const outputs = [{ output_type: 'stream', name: 'stdout', text: '42\n' }];
    doc.runs[0]({ status: 'ok', execution_count: 4, outputs });
    expect(await pending).toEqual({ result: { status: 'ok', execution_count: 4, outputs } });
  });

  it('answers what cannot be done with a sentence for the model', async () => {
    const cases: Array<[INotebookRequest, RegExp]> = [
      [request('edit', { id: 'nope', source: '' }), /no cell with the id nope/],
      [request('run', { id: 'nope' }), /no cell with the id nope/],
      [request('delete', {}), /"delete" request has no "id"/],
      [request('insert', { index: -1, cell: {} }), /"index"/],
      [request('insert', { index: 1.5, cell: {} }), /"index"/],
      [request('insert', { index: 0, cell: { cell_type: 'widget' } }), /"cell"/],
      [request('insert', { index: 9, cell: { cell_type: 'code' } }), /out of range/],
      [request('edit', { id: 'c1' }), /"source"/],
      [request('edit', { id: 'c1', source: '', metadata: [1] }), /"metadata"/],
      [request('frobnicate'), /does not know the notebook request "frobnicate"/],
      [{ ...request('snapshot'), path: 'other.ipynb' }, /other\.ipynb is not open/]
    ];
    for (const [req, message] of cases) {
      const answer = await dispatch(req, find);
      expect(answer).toEqual({ error: expect.stringMatching(message) });
    }
    expect(doc.cells.map(c => c.id)).toEqual(['c1']); // nothing changed
  });

  it('turns an unexpected failure into an error answer, never a rejection', async () => {
    doc.snapshot = () => {
      throw new TypeError('boom');
    };
    expect(await dispatch(request('snapshot'), find)).toEqual({
      error: 'JupyterLab could not do this on the open notebook: boom'
    });
  });
});

/** The server's side of the relay: polls wait until the test hands them requests. */
class FakeRelayServer {
  polls: Array<{ paths: string[]; wait: string | null }> = [];
  answers: Array<{ id: string; body: unknown }> = [];
  failNext: number[] = [];
  answerStatus = 200;
  private _waiting: Array<{ resolve: (r: Response) => void; paths: string[] }> = [];
  private _polled: Array<() => void> = [];

  readonly makeRequest: MakeRequest = (url, init) => {
    const parsed = new URL(url);
    expect(parsed.pathname.startsWith('/a%40b/api/assistant/notebook-requests')).toBe(true);
    if (init.method === 'POST') {
      const id = decodeURIComponent(parsed.pathname.split('/').pop() ?? '');
      this.answers.push({ id, body: JSON.parse(String(init.body)) });
      return Promise.resolve(new Response('{"answered": true}', { status: this.answerStatus }));
    }
    const paths = parsed.searchParams.getAll('path');
    this.polls.push({ paths, wait: parsed.searchParams.get('wait') });
    for (const notify of this._polled.splice(0)) {
      notify();
    }
    const status = this.failNext.shift();
    if (status !== undefined) {
      return status === 0
        ? Promise.reject(new TypeError('network down'))
        : Promise.resolve(new Response('{}', { status }));
    }
    return new Promise((resolve, reject) => {
      this._waiting.push({ resolve, paths });
      init.signal?.addEventListener('abort', () =>
        reject(new DOMException('The operation was aborted.', 'AbortError'))
      );
    });
  };

  /** Answer the poll under way with these requests. */
  deliver(requests: unknown[]): void {
    const poll = this._waiting.shift();
    if (!poll) {
      throw new Error('no poll waits');
    }
    poll.resolve(new Response(JSON.stringify({ requests }), { status: 200 }));
  }

  /** Resolves once `count` polls have come in. */
  async pollCount(count: number): Promise<void> {
    while (this.polls.length < count) {
      await new Promise<void>(resolve => this._polled.push(resolve));
    }
  }

  async answered(count: number): Promise<void> {
    for (let i = 0; i < 200 && this.answers.length < count; i++) {
      await new Promise(resolve => setTimeout(resolve, 0));
    }
    expect(this.answers).toHaveLength(count);
    await new Promise(resolve => setTimeout(resolve, 0)); // the answer's response is read
  }
}

describe('NotebookRelay', () => {
  let server: FakeRelayServer;
  let open: Map<string, FakeDocument>;
  let relay: NotebookRelay;
  const logged: string[] = [];

  beforeEach(() => {
    server = new FakeRelayServer();
    open = new Map([['a/q3.ipynb', new FakeDocument()]]);
    logged.length = 0;
    relay = new NotebookRelay({
      serverSettings: SETTINGS,
      makeRequest: server.makeRequest,
      openPaths: () => [...open.keys(), ...open.keys()], // a second view of each: listed once
      documentFor: path => open.get(path) ?? null,
      retryMs: { first: 1, max: 2 },
      offMs: 5,
      log: message => logged.push(message)
    });
  });

  afterEach(async () => {
    relay.dispose();
    await relay.idle();
  });

  it('polls with every open notebook once and the wait, and answers each request', async () => {
    relay.start();
    await server.pollCount(1);
    expect(server.polls[0]).toEqual({ paths: ['a/q3.ipynb'], wait: '20' });
    server.deliver([request('snapshot'), request('delete', { id: 'c1' })]);
    await server.pollCount(2); // at once, without waiting for the answers
    await server.answered(2);
    expect(server.answers.map(a => a.id).sort()).toEqual(['r-delete', 'r-snapshot']);
    expect(open.get('a/q3.ipynb')!.cells).toEqual([]);
  });

  it('does not hold up the loop on a long run, nor other requests behind it', async () => {
    relay.start();
    await server.pollCount(1);
    server.deliver([request('run', { id: 'c1' })]);
    await server.pollCount(2);
    server.deliver([request('snapshot')]);
    await server.pollCount(3);
    await server.answered(1);
    expect(server.answers[0].id).toBe('r-snapshot');
    expect(relay.pending).toBe(1);
    open.get('a/q3.ipynb')!.runs[0]({ status: 'error', execution_count: 2, outputs: [] });
    await server.answered(2);
    expect(server.answers[1]).toEqual({
      id: 'r-run',
      body: { result: { status: 'error', execution_count: 2, outputs: [] } }
    });
  });

  it('answers a request for a notebook closed meanwhile with an error', async () => {
    relay.start();
    await server.pollCount(1);
    server.deliver([{ ...request('snapshot'), path: 'closed.ipynb' }]);
    await server.answered(1);
    expect(server.answers[0].body).toEqual({
      error: expect.stringContaining('closed.ipynb is not open in JupyterLab')
    });
  });

  it('re-lists the open notebooks at once when they change', async () => {
    relay.start();
    await server.pollCount(1);
    open.set('b.ipynb', new FakeDocument());
    relay.pathsChanged();
    await server.pollCount(2);
    expect(server.polls[1].paths).toEqual(['a/q3.ipynb', 'b.ipynb']);
    relay.start(); // already running: the same as pathsChanged
    await server.pollCount(3);
    expect(relay.running).toBe(true);
  });

  it('stops when no notebook is open and starts again when one opens', async () => {
    relay.start();
    await server.pollCount(1);
    open.clear();
    relay.pathsChanged();
    await relay.idle();
    expect(relay.running).toBe(false);
    expect(server.polls).toHaveLength(1);
    open.set('c.ipynb', new FakeDocument());
    relay.start();
    await server.pollCount(2);
    expect(server.polls[1].paths).toEqual(['c.ipynb']);
  });

  it('backs off and retries after errors, and after the tools are off', async () => {
    server.failNext = [0, 500, 404];
    relay.start();
    await server.pollCount(4);
    expect(relay.running).toBe(true);
    expect(logged).toEqual(['jupyter-assistant: the notebook relay cannot poll; retrying']);
    server.deliver([request('snapshot')]);
    await server.answered(1);
  });

  it('ignores malformed requests and a 404 for an answer nobody waits for', async () => {
    server.answerStatus = 404;
    relay.start();
    await server.pollCount(1);
    server.deliver([{ op: 'snapshot' }, 'junk', request('snapshot')]);
    await server.answered(1);
    expect(logged).toEqual([]);
  });

  it('does not start with no notebook open', async () => {
    open.clear();
    relay.start();
    await relay.idle();
    expect(relay.running).toBe(false);
    expect(server.polls).toHaveLength(0);
  });
});
