// The diff view of a turn's changes, rendered to markup (no DOM here): each file and cell with
// its status and +/- lines, the notebook counted by its cells, binary and too large said,
// a long diff folded behind a real button.

import * as React from 'react';

import type { CellPlace, ICellRef, INotebookCells } from '../src/cellLocator';
import type { ITurnChanges } from '../src/types';
import { ChangesDiff } from '../src/undoView';

// No @types/react-dom here: the one function used, typed.
const { renderToStaticMarkup } = require('react-dom/server') as {
  renderToStaticMarkup: (element: React.ReactElement) => string;
};

function render(
  changes: Partial<ITurnChanges>,
  notebookFile: string | null = null,
  cells: INotebookCells | null = null
): string {
  const all = { files: [], cells: [], not_covered: [], reverted: false, ...changes };
  const notebook = cells ? { cells, path: 'analysis/nb.ipynb' } : null;
  return renderToStaticMarkup(
    React.createElement(ChangesDiff, { id: 'diff-1', changes: all, notebookFile, notebook })
  );
}

/** An open notebook holding the cells of `ids`. */
function openNotebook(ids: string[]): INotebookCells {
  const place = (_: string, ref: ICellRef): CellPlace =>
    ids.includes(ref.id ?? '') ? 'present' : 'gone';
  return {
    place,
    source: () => null,
    goTo: async (path, ref) => place(path, ref),
    watch: () => () => undefined
  };
}

/** The text of each element with `className`, in order. */
function texts(html: string, className: string): string[] {
  const found: string[] = [];
  const pattern = new RegExp(
    `<[a-z]+ class="[^"]*\\b${className}\\b[^"]*"[^>]*>([\\s\\S]*?)</`,
    'g'
  );
  for (const match of html.matchAll(pattern)) {
    found.push(match[1].replace(/&quot;/g, '"').replace(/&#x27;/g, "'"));
  }
  return found;
}

describe('ChangesDiff', () => {
  it('shows each file with its status and its lines marked added and removed', () => {
    const html = render({
      files: [
        {
          path: 'sales.csv',
          status: 'modified',
          diff: '--- a/sales.csv\n+++ b/sales.csv\n@@ -1,2 +1,2 @@\n region\n-south,20\n+south,25'
        },
        {
          path: 'clean.py',
          status: 'added',
          diff: '--- /dev/null\n+++ b/clean.py\n@@ -0,0 +1 @@\n+x'
        }
      ]
    });
    expect(html).toContain('id="diff-1"');
    expect(html).toContain('aria-label="sales.csv (changed)"');
    expect(html).toContain('aria-label="clean.py (new)"');
    expect(texts(html, 'jp-mod-remove')).toContain('-south,20\n');
    expect(texts(html, 'jp-Assistant-changeLine')).toEqual([
      '@@ -1,2 +1,2 @@\n',
      ' region\n',
      '-south,20\n',
      '+south,25\n',
      '@@ -0,0 +1 @@\n',
      '+x\n'
    ]);
    expect(html).toContain('aria-label="1 added, 1 removed"');
    expect(html).not.toContain('<button'); // short diffs: nothing folded
  });

  it('says why a binary or too large file has no diff', () => {
    const html = render({
      files: [
        { path: 'model.pkl', status: 'modified', binary: true },
        { path: 'big.bin', status: 'modified', too_large: true }
      ]
    });
    expect(texts(html, 'jp-Assistant-changeNote')).toEqual([
      'A binary file: no diff to show.',
      'Too large for the checkpoints: no diff, and an undo cannot restore it.'
    ]);
  });

  it('lists the cells of the notebook instead of its file', () => {
    const html = render(
      {
        files: [{ path: 'nb.ipynb', status: 'modified', diff: '@@ -1 +1 @@\n-{\n+[' }],
        cells: [
          {
            id: 'c1',
            status: 'added',
            diff: '--- /dev/null\n+++ b/cell c1\n@@ -0,0 +1 @@\n+x = 42'
          }
        ]
      },
      'nb.ipynb'
    );
    expect(html).not.toContain('nb.ipynb');
    expect(html).toContain('aria-label="Cell c1 (new)"');
    expect(html).toContain('data-cell-id="c1"');
    expect(texts(html, 'jp-mod-add')).toContain('+x = 42\n');
  });

  it('folds a long diff at 40 lines behind a button that says how many more', () => {
    const body = Array.from({ length: 45 }, (_, i) => `+line ${i}`).join('\n');
    const html = render({
      files: [{ path: 'long.txt', status: 'added', diff: `@@ -0,0 +1,45 @@\n${body}` }]
    });
    expect(texts(html, 'jp-Assistant-changeLine')).toHaveLength(40);
    const button = /<button[^>]*>([^<]*)<\/button>/.exec(html);
    expect(button?.[1]).toBe('Show 6 more lines');
    expect(button?.[0]).toContain('type="button"');
    expect(button?.[0]).toContain('aria-expanded="false"');
    expect(button?.[0]).toMatch(/aria-controls="[^"]+"/);
  });

  it('offers Go to cell for a changed cell of the open notebook, not for a deleted one', () => {
    const html = render(
      {
        cells: [
          { id: 'c1', status: 'modified', diff: '@@ -1 +1 @@\n-a\n+b' },
          { id: 'c2', status: 'deleted', diff: '@@ -1 +0,0 @@\n-c' }
        ]
      },
      'nb.ipynb',
      openNotebook(['c1'])
    );
    expect(html).toContain('aria-label="Go to cell c1 in the notebook"');
    expect(html).toContain('aria-label="cell c2 was deleted"');
    expect(render({ cells: [{ id: 'c1', status: 'added', diff: '' }] })).not.toContain(
      'Go to cell'
    );
  });
});
