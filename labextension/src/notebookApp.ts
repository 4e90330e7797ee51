/**
 * Notebook 7 keeps its right sidebar closed: a panel added there shows only after View › Right
 * Sidebar › Show Assistant. JupyterLab shows the panel's tab in its right bar from the start, so
 * in Notebook 7 the Assistant is opened once, the first time a notebook is open; after that it
 * stays as the user leaves it.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';

// JupyterFrontEnd.name of Notebook 7's application (JupyterLab's is "JupyterLab").
const NOTEBOOK_APP = 'Jupyter Notebook';
export const SHOWN_KEY = 'jupyter-assistant:shown-in-notebook';

export function showOnceInNotebook(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  panelId: string
): void {
  if (app.name !== NOTEBOOK_APP || alreadyShown()) {
    return;
  }
  const show = (): void => {
    tracker.widgetAdded.disconnect(show);
    remember();
    // Notebook 7's shell expands its right panel for a widget there (its activateById).
    void app.restored.then(() => app.shell.activateById(panelId));
  };
  if (tracker.currentWidget) {
    show();
  } else {
    tracker.widgetAdded.connect(show);
  }
}

function alreadyShown(): boolean {
  try {
    return window.localStorage.getItem(SHOWN_KEY) !== null;
  } catch {
    return false; // no storage (private mode): open it on each visit rather than never
  }
}

function remember(): void {
  try {
    window.localStorage.setItem(SHOWN_KEY, new Date().toISOString());
  } catch {
    // as above
  }
}
