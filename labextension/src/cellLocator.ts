/**
 * The cells the notebook tools' cards point at: is the cell still in the session's notebook,
 * what does it hold, and "Go to cell" (open the notebook if it is not, select the cell and
 * scroll to it). Written against the few members of JupyterLab's notebook panel, tracker and
 * shell it uses, so that it is tested without a JupyterLab.
 */

/** A cell as a tool call names it: its id (preferred) and its index when the call was made. */
export interface ICellRef {
  id: string | null;
  index: number | null;
}

/**
 * Where a cell is now: in the open notebook, gone from it (deleted since), or not known because
 * the notebook is not open in JupyterLab.
 */
export type CellPlace = 'present' | 'gone' | 'closed';

/** What a tool card asks of the notebook (index.ts makes it for JupyterLab). */
export interface INotebookCells {
  place(path: string, ref: ICellRef): CellPlace;
  /** The cell's source in the open notebook, null if not open or gone. */
  source(path: string, ref: ICellRef): string | null;
  /**
   * Show the cell: open the notebook if needed, activate its tab, make the cell the active
   * (selected) one in command mode and scroll to it. `present` when done.
   */
  goTo(path: string, ref: ICellRef): Promise<CellPlace>;
  /** Call `onChange` when the notebook's cells change or it opens or closes; returns the undo. */
  watch(path: string, onChange: () => void): () => void;
}

interface ISignalLike<S, A> {
  connect(slot: (sender: S, args: A) => void): boolean;
  disconnect(slot: (sender: S, args: A) => void): boolean;
}

interface ICellWidgetLike {
  model: { id: string; sharedModel: { getSource(): string } };
}

interface INotebookLike {
  readonly widgets: readonly ICellWidgetLike[];
  activeCellIndex: number;
  mode: 'command' | 'edit';
  deselectAll(): void;
  scrollToItem(index: number, align?: 'auto' | 'smart' | 'center' | 'start' | 'end'): Promise<void>;
  model: { cells: { changed: ISignalLike<unknown, unknown> } } | null;
}

/** The members of a `NotebookPanel` used here. */
export interface IPanelLike {
  readonly id: string;
  readonly isDisposed: boolean;
  readonly context: { readonly path: string; readonly ready: Promise<void>; isReady: boolean };
  readonly content: INotebookLike;
  readonly disposed: ISignalLike<unknown, unknown>;
}

/** The members of the notebook tracker, the shell and the commands used here. */
export interface ILocatorOptions {
  tracker: {
    forEach(fn: (panel: IPanelLike) => void): void;
    widgetAdded: ISignalLike<unknown, IPanelLike>;
  };
  shell: { activateById(id: string): void };
  commands: { execute(id: string, args?: Record<string, unknown>): Promise<unknown> };
}

/**
 * The index of the cell `ref` names among `cells`, -1 if it is not there. By id when the call
 * gave one (an index would then point at whichever cell took its place); by index otherwise.
 */
export function findCell(cells: readonly { id: string }[], ref: ICellRef): number {
  if (ref.id) {
    return cells.findIndex(cell => cell.id === ref.id);
  }
  if (ref.index !== null && Number.isInteger(ref.index) && ref.index >= 0) {
    return ref.index < cells.length ? ref.index : -1;
  }
  return -1;
}

export class CellLocator implements INotebookCells {
  constructor(private readonly _options: ILocatorOptions) {}

  place(path: string, ref: ICellRef): CellPlace {
    const panel = this._panel(path);
    if (!panel || !panel.context.isReady) {
      return 'closed';
    }
    return this._index(panel, ref) >= 0 ? 'present' : 'gone';
  }

  source(path: string, ref: ICellRef): string | null {
    const panel = this._panel(path);
    if (!panel || !panel.context.isReady) {
      return null;
    }
    const i = this._index(panel, ref);
    return i >= 0 ? panel.content.widgets[i].model.sharedModel.getSource() : null;
  }

  async goTo(path: string, ref: ICellRef): Promise<CellPlace> {
    let panel = this._panel(path);
    if (!panel) {
      const opened = await this._options.commands.execute('docmanager:open', { path });
      panel = this._panel(path) ?? (isPanel(opened, path) ? opened : null);
      if (!panel) {
        return 'closed';
      }
    }
    await panel.context.ready;
    const i = this._index(panel, ref);
    if (i < 0) {
      return 'gone';
    }
    this._options.shell.activateById(panel.id);
    const notebook = panel.content;
    notebook.mode = 'command'; // the keys act on the cell, as after a click on its prompt
    notebook.deselectAll();
    notebook.activeCellIndex = i;
    await notebook.scrollToItem(i, 'smart');
    return 'present';
  }

  watch(path: string, onChange: () => void): () => void {
    const cellsChanged = (): void => onChange();
    let watched: IPanelLike | null = null;
    const attach = (): void => {
      const panel = this._panel(path);
      if (panel === watched) {
        return;
      }
      watched?.content.model?.cells.changed.disconnect(cellsChanged);
      watched?.disposed.disconnect(closed);
      watched = panel;
      if (panel) {
        void panel.context.ready.then(() => {
          if (watched === panel) {
            panel.content.model?.cells.changed.connect(cellsChanged);
            onChange();
          }
        });
        panel.disposed.connect(closed);
      }
    };
    const closed = (): void => {
      // The tracker drops a closed panel after it is disposed.
      setTimeout(() => {
        attach();
        onChange();
      }, 0);
    };
    const added = (): void => attach();
    this._options.tracker.widgetAdded.connect(added);
    attach();
    return () => {
      this._options.tracker.widgetAdded.disconnect(added);
      watched?.content.model?.cells.changed.disconnect(cellsChanged);
      watched?.disposed.disconnect(closed);
      watched = null;
    };
  }

  private _panel(path: string): IPanelLike | null {
    let found: IPanelLike | null = null;
    this._options.tracker.forEach(panel => {
      if (!found && !panel.isDisposed && panel.context.path === path) {
        found = panel;
      }
    });
    return found;
  }

  private _index(panel: IPanelLike, ref: ICellRef): number {
    return findCell(
      panel.content.widgets.map(widget => widget.model),
      ref
    );
  }
}

function isPanel(value: unknown, path: string): value is IPanelLike {
  const panel = value as Partial<IPanelLike> | null;
  return (
    !!panel &&
    typeof panel === 'object' &&
    panel.context?.path === path &&
    Array.isArray(panel.content?.widgets)
  );
}
