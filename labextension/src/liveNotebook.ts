/**
 * The open notebook as the relay acts on it (notebookRelay.ts): edits through the notebook's
 * shared model, as a local edit that the notebook's own undo covers, and runs through
 * `CodeCell.execute` in the notebook's own session context, as a user's run (the outputs show
 * under the cell), without moving the user's selection or mode.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { CodeCell, ICellModel, ICodeCellModel } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';

import {
  ICellJSON,
  INotebookDocument,
  IRunResult,
  NotebookRelay,
  RelayError
} from './notebookRelay';

export class LiveNotebook implements INotebookDocument {
  constructor(private readonly _panel: NotebookPanel) {}

  snapshot(): Record<string, unknown> {
    const notebook = this._model().toJSON() as unknown as Record<string, unknown>;
    // Cells carry ids from nbformat 4.5 on; an older file opened here got ids when loaded.
    if (typeof notebook.nbformat_minor === 'number' && notebook.nbformat_minor < 5) {
      notebook.nbformat_minor = 5;
    }
    return notebook;
  }

  insert(index: number, cell: ICellJSON): void {
    const shared = this._model().sharedModel;
    if (index > shared.cells.length) {
      throw new RelayError(
        `Cell index ${index} is out of range: the open notebook has ${shared.cells.length} cells.`
      );
    }
    if (cell.id && shared.cells.some(c => c.getId() === cell.id)) {
      throw new RelayError(`The open notebook already has a cell with the id ${cell.id}.`);
    }
    // An undoable transaction of the notebook's shared model, as a user's insert is.
    shared.insertCell(index, cell as Parameters<typeof shared.insertCell>[1]);
  }

  edit(id: string, source: string, metadata: Record<string, unknown>, clearOutputs: boolean): void {
    const cell = this._cell(id);
    cell.sharedModel.transact(() => {
      cell.sharedModel.setSource(source);
      for (const [key, value] of Object.entries(metadata)) {
        cell.setMetadata(key, value as Parameters<ICellModel['setMetadata']>[1]);
      }
      if (clearOutputs && cell.type === 'code') {
        const code = cell as ICodeCellModel;
        code.outputs.clear();
        code.executionCount = null;
      }
    });
  }

  remove(id: string): void {
    const shared = this._model().sharedModel;
    const index = shared.cells.findIndex(c => c.getId() === id);
    if (index < 0) {
      throw this._unknown(id);
    }
    shared.deleteCell(index);
  }

  async run(id: string): Promise<IRunResult> {
    const model = this._cell(id);
    if (model.type !== 'code') {
      throw new RelayError(`Cell ${id} is a ${model.type} cell: only code cells run.`);
    }
    const widget = this._panel.content.widgets.find(w => w.model.id === id);
    if (!(widget instanceof CodeCell)) {
      throw new RelayError(`Cell ${id} is not shown in the open notebook; try again.`);
    }
    const sessionContext = this._panel.sessionContext;
    await sessionContext.ready;
    const kernel = sessionContext.session?.kernel;
    if (!kernel || sessionContext.hasNoKernel) {
      throw new RelayError(
        'The open notebook has no kernel: the user must select one (Kernel > Change Kernel).'
      );
    }
    if (kernel.status === 'dead') {
      throw new RelayError("The notebook's kernel is dead: restart it (Kernel > Restart Kernel).");
    }
    const code = widget.model;
    let status: IRunResult['status'] = 'ok';
    try {
      const reply = await CodeCell.execute(widget, sessionContext, {
        recordTiming: this._panel.content.notebookConfig.recordTiming
      });
      const replied = reply?.content.status;
      if (replied === 'error' || replied === 'aborted') {
        status = replied;
      }
    } catch {
      // The kernel was restarted or shut down under the run, or the cell went away.
      status = 'aborted';
    }
    return {
      status,
      execution_count: code.executionCount ?? null,
      outputs: code.outputs.toJSON()
    };
  }

  private _model(): NonNullable<NotebookPanel['model']> {
    const model = this._panel.context.model;
    if (!model || !this._panel.context.isReady) {
      throw new RelayError('The notebook is still loading in JupyterLab; try again.');
    }
    return model;
  }

  private _cell(id: string): ICellModel {
    for (const cell of this._model().cells) {
      if (cell.id === id) {
        return cell;
      }
    }
    throw this._unknown(id);
  }

  private _unknown(id: string): RelayError {
    return new RelayError(
      `The open notebook has no cell with the id ${id}; read_notebook lists the cells.`
    );
  }
}

/**
 * Relay the notebook tools' requests to the notebooks open in this JupyterLab, for as long as
 * one is open.
 */
export function startNotebookRelay(app: JupyterFrontEnd, tracker: INotebookTracker): NotebookRelay {
  const panels = (): NotebookPanel[] => {
    const found: NotebookPanel[] = [];
    tracker.forEach(panel => {
      // A notebook still loading is not listed: until it is, the tools work on the file.
      if (!panel.isDisposed && panel.context.isReady) {
        found.push(panel);
      }
    });
    return found;
  };
  const relay = new NotebookRelay({
    serverSettings: app.serviceManager.serverSettings,
    makeRequest: ServerConnection.makeRequest,
    openPaths: () => panels().map(panel => panel.context.path),
    documentFor: path => {
      const panel = panels().find(p => p.context.path === path);
      return panel ? new LiveNotebook(panel) : null;
    }
  });
  const watch = (panel: NotebookPanel): void => {
    void panel.context.ready.then(() => relay.pathsChanged());
    panel.context.pathChanged.connect(() => relay.pathsChanged());
    // Disposed after the tracker dropped it: re-list without it.
    panel.disposed.connect(() => setTimeout(() => relay.pathsChanged(), 0));
    relay.start();
  };
  tracker.widgetAdded.connect((_, panel) => watch(panel));
  tracker.forEach(watch);
  relay.start();
  return relay;
}
