/**
 * The JupyterLab plugin: an "Assistant" panel in the right sidebar that follows the active
 * notebook, its commands and its settings.
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, showErrorMessage } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { AssistantClient } from './api';
import { startCellBadges } from './cellBadges';
import { CellLocator } from './cellLocator';
import { downloadMarkdown, ExportFormat, FILE_FORMATS, saveNotebookBeside } from './exporter';
import { assistantIcon } from './icon';
import { startNotebookRelay } from './liveNotebook';
import { AssistantModel } from './model';
import { cellContext, insertCodeBelow } from './notebook';
import { showOnceInNotebook } from './notebookApp';
import { AssistantSidebar, IPanelSettings } from './panel';
import { reloadRestoredNotebook } from './undoDialogs';

const PLUGIN_ID = 'jupyter-assistant:plugin';
const SIDEBAR_ID = 'jupyter-assistant-sidebar';

namespace CommandIDs {
  export const open = 'jupyter-assistant:open';
  export const newConversation = 'jupyter-assistant:new-conversation';
  export const stop = 'jupyter-assistant:stop';
  export const exportMarkdown = 'jupyter-assistant:export-markdown';
  export const exportNotebook = 'jupyter-assistant:export-notebook';
}

const DEFAULTS: IPanelSettings & { pollSeconds: number } = {
  includeCellContext: false,
  enterToSend: true,
  pollSeconds: 3
};

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'The Assistant sidebar: an AI coding assistant for the active notebook.',
  autoStart: true,
  requires: [INotebookTracker, IRenderMimeRegistry],
  optional: [ILayoutRestorer, ISettingRegistry, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    rendermime: IRenderMimeRegistry,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null
  ): void => {
    const client = new AssistantClient({
      serverSettings: app.serviceManager.serverSettings,
      makeRequest: ServerConnection.makeRequest
    });
    const model = new AssistantModel({ client, pollSeconds: DEFAULTS.pollSeconds });

    // Export the stored session as the server renders it: as a Markdown download, or as a
    // notebook saved beside the followed one (with its kernelspec) and opened.
    const exportConversation = async (format: ExportFormat): Promise<void> => {
      const notebookPath = model.notebookPath;
      const text = await model.loadExport(FILE_FORMATS[format]);
      if (text === null || notebookPath === null) {
        return;
      }
      try {
        if (format === 'markdown') {
          downloadMarkdown(text, notebookPath);
          return;
        }
        const panel = tracker.find(p => p.context.path === notebookPath);
        const metadata = panel?.context.model?.metadata ?? {};
        const path = await saveNotebookBeside(app.serviceManager.contents, text, notebookPath, {
          kernelspec: metadata.kernelspec,
          language_info: metadata.language_info
        });
        await app.commands.execute('docmanager:open', { path });
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        model.reportError(`Could not export the conversation: ${message}`);
        void showErrorMessage('Export failed', message);
      }
    };

    const sidebar = new AssistantSidebar({
      model,
      rendermime,
      actions: {
        insert: code => {
          insertCodeBelow(tracker.currentWidget, code);
        }
      },
      exporter: { exportConversation },
      cellContext: () => cellContext(tracker.currentWidget),
      settings: { ...DEFAULTS },
      cells: new CellLocator({ tracker, shell: app.shell, commands: app.commands }),
      // An undo put the notebook's file back: the open notebook shows it (no "changed on
      // disk" question at the next save).
      reloadNotebook: async path => {
        const panel = tracker.find(p => p.context.path === path);
        if (panel) {
          await reloadRestoredNotebook(panel);
        }
      }
    });
    sidebar.id = SIDEBAR_ID;
    sidebar.title.icon = assistantIcon;
    sidebar.title.caption = 'Assistant';
    app.shell.add(sidebar, 'right', { rank: 650 });
    restorer?.add(sidebar, SIDEBAR_ID);
    // Notebook 7 hides its right sidebar: there the panel opens the first time.
    showOnceInNotebook(app, tracker, SIDEBAR_ID);

    // Follow the active notebook (the tracker keeps the last one focused) and its renames.
    let followed: NotebookPanel | null = null;
    const onPathChanged = (_: unknown, path: string): void => model.renamed(path);
    const follow = (panel: NotebookPanel | null): void => {
      followed?.context.pathChanged.disconnect(onPathChanged);
      followed = panel;
      panel?.context.pathChanged.connect(onPathChanged);
      void model.setNotebook(panel ? panel.context.path : null);
    };
    tracker.currentChanged.connect((_, panel) => follow(panel));
    follow(tracker.currentWidget);
    void model.loadProviders();
    // The notebook tools' changes to an open notebook go through it; the cells they wrote
    // carry a badge.
    startNotebookRelay(app, tracker);
    startCellBadges(tracker);

    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          const apply = (): void => {
            const c = settings.composite as Partial<typeof DEFAULTS>;
            sidebar.settings = {
              includeCellContext: c.includeCellContext ?? DEFAULTS.includeCellContext,
              enterToSend: c.enterToSend ?? DEFAULTS.enterToSend
            };
            model.pollSeconds = c.pollSeconds ?? DEFAULTS.pollSeconds;
          };
          apply();
          settings.changed.connect(apply);
        })
        .catch(reason => console.error('jupyter-assistant: cannot load settings', reason));
    }

    app.commands.addCommand(CommandIDs.open, {
      label: 'Open Assistant',
      caption: 'Show the Assistant sidebar and focus its message box',
      icon: assistantIcon,
      execute: () => {
        app.shell.activateById(sidebar.id);
        sidebar.focusInput();
      }
    });
    app.commands.addCommand(CommandIDs.newConversation, {
      label: 'Assistant: New Conversation',
      isEnabled: () => model.notebookPath !== null,
      execute: () => {
        model.newConversation();
        app.shell.activateById(sidebar.id);
        sidebar.focusInput();
      }
    });
    app.commands.addCommand(CommandIDs.stop, {
      label: 'Assistant: Stop',
      isEnabled: () => model.busy,
      execute: () => model.cancel()
    });
    const canExport = (): boolean => model.session !== null && model.session.messages.length > 0;
    app.commands.addCommand(CommandIDs.exportMarkdown, {
      label: 'Assistant: Export Conversation as Markdown',
      isEnabled: canExport,
      execute: () => exportConversation('markdown')
    });
    app.commands.addCommand(CommandIDs.exportNotebook, {
      label: 'Assistant: Export Conversation as a New Notebook',
      isEnabled: canExport,
      execute: () => exportConversation('notebook')
    });
    let wasBusy = false;
    model.changed.connect(() => {
      if (model.busy !== wasBusy) {
        wasBusy = model.busy;
        app.commands.notifyCommandChanged(CommandIDs.stop);
      }
    });
    for (const command of [
      CommandIDs.open,
      CommandIDs.newConversation,
      CommandIDs.stop,
      CommandIDs.exportMarkdown,
      CommandIDs.exportNotebook
    ]) {
      palette?.addItem({ command, category: 'Assistant' });
    }
  }
};

export default plugin;
