/**
 * A small "assistant" badge on every cell the assistant wrote (its metadata has
 * `jupyter_assistant`, set by the notebook tools), kept in step with the metadata: on opening a
 * notebook, when cells are added, and when a cell's metadata changes (an undo takes it away).
 */

import { Cell, ICellModel } from '@jupyterlab/cells';
import { INotebookTracker, Notebook, NotebookPanel } from '@jupyterlab/notebook';

/** The notebook metadata key of a cell the assistant wrote (notebook_tools/cells.py MARK). */
export const MARK_KEY = 'jupyter_assistant';
export const WRITTEN_CLASS = 'jp-Assistant-writtenCell';
export const BADGE_CLASS = 'jp-Assistant-cellBadge';
const BADGE_TITLE = 'Written by the assistant';

/** Whether a cell's metadata says the assistant wrote it. */
export function writtenByAssistant(metadata: Record<string, unknown>): boolean {
  const mark = metadata[MARK_KEY];
  return typeof mark === 'object' && mark !== null;
}

/** Show or hide the badge of one cell widget. */
export function updateBadge(cell: Cell): void {
  if (cell.isDisposed) {
    return;
  }
  const written = writtenByAssistant(cell.model.metadata as Record<string, unknown>);
  cell.toggleClass(WRITTEN_CLASS, written);
  // In the cell's header (above its input, empty by default), so that it never covers code.
  const host = cell.node.querySelector(':scope > .jp-Cell-header') ?? cell.node;
  // A cell not rendered yet has no header: then the badge goes first in the cell, and moves
  // into the header once there is one.
  let badge = cell.node.querySelector(
    `:scope > .${BADGE_CLASS}, :scope > .jp-Cell-header > .${BADGE_CLASS}`
  );
  if (!written) {
    badge?.remove();
    return;
  }
  if (!badge) {
    badge = document.createElement('div');
    badge.className = BADGE_CLASS;
    badge.textContent = 'assistant';
    badge.setAttribute('title', BADGE_TITLE);
    badge.setAttribute('aria-label', BADGE_TITLE);
    badge.setAttribute('role', 'note');
  }
  if (badge.parentElement !== host) {
    host.prepend(badge);
  }
}

function watchNotebook(notebook: Notebook): void {
  const watched = new WeakSet<ICellModel>();
  const refresh = (): void => {
    if (notebook.isDisposed) {
      return;
    }
    for (const cell of notebook.widgets) {
      if (!watched.has(cell.model)) {
        watched.add(cell.model);
        const model = cell.model;
        model.metadataChanged.connect(() => {
          const widget = notebook.widgets.find(w => w.model === model);
          if (widget) {
            updateBadge(widget);
          }
        });
      }
      updateBadge(cell);
    }
  };
  // After the notebook made the widgets of new cells (it is told of them first).
  const later = (): void => void Promise.resolve().then(refresh);
  const onModel = (): void => {
    notebook.model?.cells.changed.connect(later);
    later();
  };
  notebook.modelChanged.connect(onModel);
  onModel();
}

/** Badge the cells the assistant wrote in every notebook open now and later. */
export function startCellBadges(tracker: INotebookTracker): void {
  const watch = (panel: NotebookPanel): void => {
    watchNotebook(panel.content);
    void panel.context.ready.then(() => {
      for (const cell of panel.content.widgets) {
        updateBadge(cell);
      }
    });
  };
  tracker.widgetAdded.connect((_, panel) => watch(panel));
  tracker.forEach(watch);
}
