// The card of a notebook tool call: what it says of each tool, the cell it points at, the
// markup it renders (rendered to a string, no DOM here), and "Go to cell" on a notebook panel
// made of the few members the locator uses.

import * as React from 'react';

import { CellLocator, findCell, ICellRef, INotebookCells, IPanelLike } from '../src/cellLocator';
import {
  CallState,
  describeNotebookCall,
  FOLD_LINES,
  notebookTool,
  NotebookToolCard,
  resultObject
} from '../src/notebookToolCard';
import type { IToolCall } from '../src/types';

// No @types/react-dom here: the one function used, typed.
const { renderToStaticMarkup } = require('react-dom/server') as {
  renderToStaticMarkup: (element: React.ReactElement) => string;
};

function call(name: string, input: unknown, result?: unknown, isError = false): IToolCall {
  return { id: 'toolu_1', name, input, result, is_error: isError };
}

/** A result as the server sends it: its JSON, indented (mcp_server.as_content). */
function json(value: unknown): string {
  return JSON.stringify(value, null, 1);
}

function view(c: IToolCall, state: CallState = 'done') {
  const tool = notebookTool(c.name);
  if (!tool) {
    throw new Error(`not a notebook tool: ${c.name}`);
  }
  return describeNotebookCall(tool, c, state);
}

function render(c: IToolCall, state: CallState = 'done', cells?: INotebookCells): string {
  const tool = notebookTool(c.name)!;
  return renderToStaticMarkup(
    React.createElement(NotebookToolCard, {
      tool,
      call: c,
      state,
      notebook: cells ? { cells, path: 'analysis/q3.ipynb' } : null
    })
  );
}

describe('notebookTool', () => {
  it("knows each provider's spelling of the notebook tools", () => {
    expect(notebookTool('mcp__notebook__edit_cell')).toBe('edit_cell'); // Claude Code
    expect(notebookTool('mcp_notebook_run_cell')).toBe('run_cell'); // Gemini CLI
    expect(notebookTool('notebook.read_notebook')).toBe('read_notebook'); // Codex
  });

  it('leaves other tools to the generic card', () => {
    expect(notebookTool('Bash')).toBeNull();
    expect(notebookTool('mcp__other__edit_cell')).toBeNull();
    expect(notebookTool('mcp__notebook__format_disk')).toBeNull();
    expect(notebookTool('')).toBeNull();
  });
});

describe('resultObject', () => {
  it('reads the JSON of a result, with an image block after it', () => {
    expect(resultObject(json({ index: 1, id: 'a' }))).toEqual({ index: 1, id: 'a' });
    expect(resultObject(json({ index: 1 }) + '\n[image]')).toEqual({ index: 1 });
    expect(resultObject([{ type: 'text', text: '{"id": "b"}' }])).toEqual({ id: 'b' });
  });

  it('gives null for a sentence or a cut result', () => {
    expect(resultObject('No cell has the id x.')).toBeNull();
    expect(resultObject('{"index": 1, "before": "ab\n… [12 more characters]')).toBeNull();
    expect(resultObject(undefined)).toBeNull();
  });
});

describe('describeNotebookCall', () => {
  it('says what an insert did, with the cell it made', () => {
    const v = view(
      call(
        'mcp__notebook__insert_cell',
        { cell_type: 'code', source: 'print(1)' },
        json({ index: 3, id: 'c3' })
      )
    );
    expect(v.summary).toBe('Inserted code cell 3');
    expect(v.ref).toEqual({ id: 'c3', index: 3 });
    expect(v.source).toBe('print(1)');
    expect(v.canGoTo).toBe(true);
    const running = view(
      call('mcp__notebook__insert_cell', { source: '# t', cell_type: 'markdown', index: 0 }),
      'running'
    );
    expect(running.summary).toBe('Inserting markdown cell at 0…');
    expect(running.canGoTo).toBe(false); // no cell yet
  });

  it("diffs an edit's old source against the new one", () => {
    const v = view(
      call(
        'mcp__notebook__edit_cell',
        { id: 'c2', source: 'x = 2\nprint(x)' },
        json({ index: 2, id: 'c2', before: 'x = 1\nprint(x)' })
      )
    );
    expect(v.summary).toBe('Edited cell 2');
    expect(v.ref).toEqual({ id: 'c2', index: 2 });
    expect(v.diff?.map(l => `${l.kind}:${l.text}`)).toEqual([
      'hunk:@@ -1,2 +1,2 @@',
      'remove:x = 1',
      'add:x = 2',
      'context:print(x)'
    ]);
  });

  it('says how a run went, with its execution count and output', () => {
    const v = view(
      call(
        'mcp__notebook__run_cell',
        { index: 4 },
        json({
          index: 4,
          id: 'c4',
          status: 'ok',
          execution_count: 5,
          outputs: [{ output_type: 'stream', name: 'stdout', text: '42\n' }]
        })
      )
    );
    expect(v.summary).toBe('Ran cell 4 — ok [5]');
    expect(v.output).toBe('42');
    expect(v.ref).toEqual({ id: 'c4', index: 4 });
    const long = view(
      call(
        'mcp__notebook__run_cell',
        { id: 'c4' },
        json({ index: 4, id: 'c4', status: 'running', execution_count: null, outputs: [] })
      )
    );
    expect(long.summary).toBe('Ran cell 4 — still running');
    expect(long.output).toBeNull();
  });

  it('shows the source a delete removed, with no way to go to it', () => {
    const v = view(
      call(
        'mcp__notebook__delete_cell',
        { index: 1 },
        json({ index: 1, id: 'c1', cell_type: 'code', source: 'del me' })
      )
    );
    expect(v.summary).toBe('Deleted code cell 1');
    expect(v.source).toBe('del me');
    expect(v.canGoTo).toBe(false);
  });

  it('says which cells a read read', () => {
    const cells = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, i) => ({ index: from + i, id: `c${from + i}` }));
    expect(
      view(
        call(
          'mcp__notebook__read_notebook',
          { start: 0, end: 11 },
          json({ cell_count: 20, cells: cells(0, 11) })
        )
      ).summary
    ).toBe('Read cells 0–10');
    expect(
      view(call('mcp__notebook__read_notebook', {}, json({ cell_count: 3, cells: cells(0, 3) })))
        .summary
    ).toBe('Read the notebook (3 cells)');
    expect(
      view(
        call(
          'mcp__notebook__read_notebook',
          { start: 2, end: 3 },
          json({ cell_count: 3, cells: cells(2, 3) })
        )
      ).summary
    ).toBe('Read cell 2');
    expect(
      view(call('mcp__notebook__read_notebook', { start: 0, end: 5 }), 'running').summary
    ).toBe('Reading cells 0–4…');
    expect(view(call('mcp__notebook__read_notebook', {}, 'x'.repeat(10))).ref).toBeNull();
  });

  it('names the variables read from the kernel', () => {
    expect(
      view(call('mcp__notebook__kernel_variables', { names: ['df', 'x'] }, json({ variables: [] })))
        .summary
    ).toBe('Read variables df, x');
    expect(
      view(call('mcp__notebook__kernel_variables', {}, json({ variables: [{}, {}], more: false })))
        .summary
    ).toBe("Read the kernel's variables (2)");
  });

  it("shows a failed call's sentence", () => {
    const v = view(
      call(
        'mcp__notebook__edit_cell',
        { id: 'zz', source: 'y' },
        'The notebook has no cell with the id zz.',
        true
      ),
      'error'
    );
    expect(v.summary).toBe('Could not edit cell zz');
    expect(v.error).toBe('The notebook has no cell with the id zz.');
    expect(v.diff).toBeNull();
    expect(v.canGoTo).toBe(false);
  });
});

/** A notebook tool card's view of the notebook, answering from a list of cell ids. */
class FakeCells implements INotebookCells {
  constructor(public ids: string[]) {}
  place(_path: string, ref: ICellRef) {
    return findCell(
      this.ids.map(id => ({ id })),
      ref
    ) >= 0
      ? ('present' as const)
      : ('gone' as const);
  }
  source() {
    return 'print("live")';
  }
  goTo = jest.fn(async () => 'present' as const);
  watch() {
    return () => undefined;
  }
}

describe('NotebookToolCard', () => {
  const edit = call(
    'mcp__notebook__edit_cell',
    { id: 'c2', source: 'x = 2' },
    json({ index: 2, id: 'c2', before: 'x = 1' })
  );

  it('renders the summary, the coloured diff lines and a Go to cell button', () => {
    const html = render(edit, 'done', new FakeCells(['c0', 'c1', 'c2']));
    expect(html).toContain('aria-label="Notebook tool edit_cell: Edited cell 2 (done)"');
    expect(html).toContain('<span class="jp-Assistant-nbDiffLine jp-mod-remove">-x = 1\n</span>');
    expect(html).toContain('<span class="jp-Assistant-nbDiffLine jp-mod-add">+x = 2\n</span>');
    expect(html).toContain('aria-label="Changes to cell 2: 1 line added, 1 removed"');
    expect(html).toMatch(
      /<button[^>]*aria-label="Go to cell 2 in the notebook"[^>]*>Go to cell<\/button>/
    );
    expect(html).not.toMatch(/<button[^>]*disabled/);
    expect(html).toContain('mcp__notebook__edit_cell'); // the raw call, under Call details
  });

  it('disables Go to cell with the reason once the cell is gone', () => {
    const html = render(edit, 'done', new FakeCells(['c0', 'c1']));
    expect(html).toMatch(
      /<button[^>]*aria-label="cell 2 was deleted"[^>]*disabled=""[^>]*>Cell deleted<\/button>/
    );
    expect(html).toContain('title="This cell is no longer in the notebook: it was deleted"');
  });

  it('has no Go to cell without the notebook', () => {
    expect(render(edit)).not.toContain('Go to cell');
  });

  it("shows a run's source from the open notebook and its output", () => {
    const run = call(
      'mcp__notebook__run_cell',
      { id: 'c2' },
      json({
        index: 2,
        id: 'c2',
        status: 'error',
        execution_count: 3,
        outputs: [{ output_type: 'error', text: 'ZeroDivisionError' }]
      })
    );
    const html = render(run, 'done', new FakeCells(['c0', 'c1', 'c2']));
    expect(html).toContain('Ran cell 2 — error [3]');
    expect(html).toContain('aria-label="Source of cell 2">print(&quot;live&quot;)</pre>');
    expect(html).toContain('aria-label="Output of cell 2">ZeroDivisionError</pre>');
  });

  it(`folds a diff longer than ${FOLD_LINES} lines behind a Show all button`, () => {
    const before = Array.from({ length: 60 }, (_, i) => `a = ${i}`).join('\n');
    const after = Array.from({ length: 60 }, (_, i) => `b = ${i}`).join('\n');
    const big = call(
      'mcp__notebook__edit_cell',
      { index: 0, source: after },
      json({ index: 0, id: 'c0', before })
    );
    const html = render(big);
    expect(html.match(/jp-Assistant-nbDiffLine/g)).toHaveLength(FOLD_LINES);
    expect(html).toMatch(/<button[^>]*aria-expanded="false"[^>]*>Show all 121 lines<\/button>/);
    const short = render(edit);
    expect(short).not.toContain('Show all');
  });
});

/** A notebook panel with the members the locator uses, and what was done to it. */
function fakePanel(path: string, ids: string[]) {
  type Slot = (sender: unknown, args: unknown) => void;
  const slots = new Set<Slot>();
  const signal = {
    connect: (slot: Slot) => slots.add(slot) && true,
    disconnect: (slot: Slot) => slots.delete(slot)
  };
  const done: string[] = [];
  const content = {
    widgets: ids.map(id => ({
      model: { id, sharedModel: { getSource: () => `source of ${id}` } }
    })),
    activeCellIndex: 0,
    mode: 'edit' as 'edit' | 'command',
    deselectAll: () => done.push('deselectAll'),
    scrollToItem: async (i: number) => {
      done.push(`scrollToItem ${i}`);
    },
    model: { cells: { changed: signal } }
  };
  const panel: IPanelLike = {
    id: `panel-${path}`,
    isDisposed: false,
    context: { path, ready: Promise.resolve(), isReady: true },
    content,
    disposed: { connect: () => true, disconnect: () => true }
  };
  return { panel, content, done, fire: () => slots.forEach(slot => slot(null, null)) };
}

function locator(panels: IPanelLike[], onOpen?: (path: string) => IPanelLike) {
  const added = new Set<(sender: unknown, panel: IPanelLike) => void>();
  const activated: string[] = [];
  const opened: string[] = [];
  const loc = new CellLocator({
    tracker: {
      forEach: fn => panels.forEach(fn),
      widgetAdded: {
        connect: slot => added.add(slot) && true,
        disconnect: slot => added.delete(slot)
      }
    },
    shell: { activateById: id => activated.push(id) },
    commands: {
      execute: async (id, args) => {
        expect(id).toBe('docmanager:open');
        const path = String(args?.path);
        opened.push(path);
        const panel = onOpen!(path);
        panels.push(panel);
        added.forEach(slot => slot(null, panel));
        return panel;
      }
    }
  });
  return { loc, activated, opened };
}

describe('findCell', () => {
  const cells = [{ id: 'a' }, { id: 'b' }];
  it('finds by id, and by index only when no id is known', () => {
    expect(findCell(cells, { id: 'b', index: 0 })).toBe(1);
    expect(findCell(cells, { id: 'gone', index: 0 })).toBe(-1); // not whichever took its place
    expect(findCell(cells, { id: null, index: 1 })).toBe(1);
    expect(findCell(cells, { id: null, index: 2 })).toBe(-1);
  });
});

describe('CellLocator', () => {
  const NB = 'analysis/q3.ipynb';

  it('selects the cell in the open notebook and scrolls to it', async () => {
    const { panel, content, done } = fakePanel(NB, ['a', 'b', 'c']);
    const { loc, activated } = locator([panel]);
    expect(loc.place(NB, { id: 'c', index: 2 })).toBe('present');
    expect(loc.source(NB, { id: 'b', index: null })).toBe('source of b');
    expect(await loc.goTo(NB, { id: 'c', index: 0 })).toBe('present');
    expect(content.activeCellIndex).toBe(2);
    expect(content.mode).toBe('command');
    expect(done).toEqual(['deselectAll', 'scrollToItem 2']);
    expect(activated).toEqual([`panel-${NB}`]);
  });

  it('says a deleted cell is gone and does not move', async () => {
    const { panel, content, done } = fakePanel(NB, ['a']);
    const { loc, activated } = locator([panel]);
    expect(loc.place(NB, { id: 'b', index: 0 })).toBe('gone');
    expect(await loc.goTo(NB, { id: 'b', index: 0 })).toBe('gone');
    expect(content.activeCellIndex).toBe(0);
    expect(done).toEqual([]);
    expect(activated).toEqual([]);
  });

  it('opens a notebook that is not open, then goes to the cell', async () => {
    const other = fakePanel('other.ipynb', ['x']);
    const opening = fakePanel(NB, ['a', 'b']);
    const { loc, opened, activated } = locator([other.panel], () => opening.panel);
    expect(loc.place(NB, { id: 'b', index: 1 })).toBe('closed');
    expect(loc.source(NB, { id: 'b', index: 1 })).toBeNull();
    expect(await loc.goTo(NB, { id: 'b', index: 1 })).toBe('present');
    expect(opened).toEqual([NB]);
    expect(opening.content.activeCellIndex).toBe(1);
    expect(activated).toEqual([`panel-${NB}`]);
  });

  it("tells a watcher when the notebook's cells change or it opens", async () => {
    const opening = fakePanel(NB, ['a']);
    const { loc } = locator([], () => opening.panel);
    const changes = jest.fn();
    const stop = loc.watch(NB, changes);
    await loc.goTo(NB, { id: 'a', index: 0 }); // opens it
    await Promise.resolve();
    const afterOpen = changes.mock.calls.length;
    expect(afterOpen).toBeGreaterThan(0);
    opening.fire();
    expect(changes).toHaveBeenCalledTimes(afterOpen + 1);
    stop();
    opening.fire();
    expect(changes).toHaveBeenCalledTimes(afterOpen + 1);
  });
});
