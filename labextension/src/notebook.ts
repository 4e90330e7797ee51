/**
 * What the panel reads from and writes to the notebook it follows: the active cell (or its
 * selection) as a message's context, and code inserted as a new cell.
 */

import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';

import type { MessageContext } from './types';

/**
 * The selection in the active cell if there is one, else the whole active cell. Shaped for
 * the provider's system prompt (each key becomes a titled section).
 */
export function cellContext(panel: NotebookPanel | null): MessageContext | null {
  const notebook = panel?.content;
  const cell = notebook?.activeCell;
  if (!notebook || !cell) {
    return null;
  }
  const source = cell.model.sharedModel.getSource();
  const index = notebook.activeCellIndex;
  const editor = cell.editor;
  if (editor) {
    const range = editor.getSelection();
    const start = editor.getOffsetAt(range.start);
    const end = editor.getOffsetAt(range.end);
    if (start !== end) {
      return {
        selection: {
          cell_index: index,
          cell_type: cell.model.type,
          text: source.slice(Math.min(start, end), Math.max(start, end))
        }
      };
    }
  }
  return { active_cell: { index, cell_type: cell.model.type, source } };
}

/** Insert `code` as a code cell below the active cell and select it. */
export function insertCodeBelow(panel: NotebookPanel | null, code: string): boolean {
  const notebook = panel?.content;
  if (!notebook || !notebook.model) {
    return false;
  }
  NotebookActions.insertBelow(notebook);
  if (notebook.activeCell?.model.type !== 'code') {
    NotebookActions.changeCellType(notebook, 'code');
  }
  notebook.activeCell?.model.sharedModel.setSource(code.replace(/\n$/, ''));
  return true;
}
