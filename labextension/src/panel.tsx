/**
 * The "Assistant" sidebar: header (notebook, conversation picker, New), the provider banner,
 * the conversation, the turn status with Stop, and the composer.
 */

import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import type { Message } from '@lumino/messaging';
import { Signal } from '@lumino/signaling';
import * as React from 'react';

import type { INotebookCells } from './cellLocator';
import type { ExportFormat } from './exporter';
import { baseName, conversationLabel, formatUsage, notebookFolder } from './format';
import type { ICodeActions } from './markdown';
import { MessageView } from './message';
import type { INotebookCellsBinding } from './notebookToolCard';
import type { AssistantModel } from './model';
import { OnboardingCard } from './onboarding';
import type { IDisplayMessage } from './turn';
import type { IRevertResponse, MessageContext } from './types';
import { laterTurns, TurnChangesStore } from './undo';
import { dialogPrompts } from './undoDialogs';
import type { ITurnUndo } from './undoView';

/** The user's preferences (schema/plugin.json). */
export interface IPanelSettings {
  includeCellContext: boolean;
  enterToSend: boolean;
}

/** "Export conversation": carried out by the plugin (it has the contents API and commands). */
export interface IExportActions {
  exportConversation(format: ExportFormat): Promise<void>;
}

export interface IPanelOptions {
  model: AssistantModel;
  rendermime: IRenderMimeRegistry;
  actions: ICodeActions;
  exporter: IExportActions;
  /** The active cell or selection of the followed notebook, when the toggle is on. */
  cellContext: () => MessageContext | null;
  settings: IPanelSettings;
  /** The cells of the session's notebook, for the notebook tools' "Go to cell". */
  cells?: INotebookCells;
  /**
   * After an undo restored the session's notebook file: reload the notebook from disk if it
   * is open (so that it shows the old cells and saving asks nothing).
   */
  reloadNotebook?: (path: string) => Promise<void>;
}

/** The browser's localStorage, where "Keep" is remembered; null where there is none. */
function keptStorage(): Storage | null {
  try {
    return typeof window !== 'undefined' ? window.localStorage : null;
  } catch {
    return null;
  }
}

export class AssistantSidebar extends ReactWidget {
  constructor(private readonly _options: IPanelOptions) {
    super();
    this.addClass('jp-Assistant');
    this._settings = _options.settings;
    this._changes = new TurnChangesStore(_options.model.client, keptStorage());
  }

  get settings(): IPanelSettings {
    return this._settings;
  }

  set settings(settings: IPanelSettings) {
    this._settings = settings;
    this._settingsChanged.emit();
  }

  /** Put the keyboard focus in the message box. */
  focusInput(): void {
    this.node.querySelector<HTMLTextAreaElement>('.jp-Assistant-input')?.focus();
  }

  protected render(): JSX.Element {
    const { model } = this._options;
    return (
      <UseSignal signal={this._settingsChanged}>
        {() => (
          <UseSignal signal={model.changed}>
            {() => (
              <AssistantView {...this._options} settings={this._settings} changes={this._changes} />
            )}
          </UseSignal>
        )}
      </UseSignal>
    );
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._options.model.setActive(true);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._options.model.setActive(false);
  }

  private _settings: IPanelSettings;
  private readonly _changes: TurnChangesStore;
  private readonly _settingsChanged = new Signal<this, void>(this);
}

function AssistantView(props: IPanelOptions & { changes: TurnChangesStore }): JSX.Element {
  const { model, rendermime, actions, settings } = props;
  const [draft, setDraft] = React.useState('');
  const [includeContext, setIncludeContext] = React.useState(settings.includeCellContext);
  const log = React.useRef<HTMLDivElement>(null);
  const stuckToBottom = React.useRef(true);

  React.useEffect(
    () => setIncludeContext(settings.includeCellContext),
    [settings.includeCellContext]
  );

  const messages = model.messages;
  const sessionPath = model.session?.path ?? model.notebookPath;
  const cells = props.cells;
  const notebook = React.useMemo(
    () => (cells && sessionPath ? { cells, path: sessionPath } : null),
    [cells, sessionPath]
  );
  const permissionActions = {
    answer: (id: string, decision: 'allow' | 'deny', scope: 'once' | 'session', reason?: string) =>
      void model.answerPermission(id, decision, scope, reason),
    answering: (id: string) => model.answering(id)
  };
  const sessionId = model.session?.id ?? null;
  const undo = turnUndo(props, messages, notebook);
  React.useLayoutEffect(() => {
    // Another conversation (or the first one loaded): start at its newest message.
    stuckToBottom.current = true;
    const node = log.current;
    if (node) {
      node.scrollTop = node.scrollHeight;
    }
  }, [sessionId, model.loading]);
  const showsLog = model.notebookPath !== null;
  React.useEffect(() => {
    // Follow the conversation as it grows (a streamed reply, Markdown rendered later, a card
    // opened) and when the panel is shown or resized, unless the user scrolled up to read.
    const node = log.current;
    if (!node) {
      return;
    }
    const follow = (): void => {
      if (stuckToBottom.current && node.scrollHeight > node.clientHeight) {
        node.scrollTop = node.scrollHeight;
      }
    };
    const resizes = new ResizeObserver(follow);
    resizes.observe(node);
    const mutations = new MutationObserver(follow);
    mutations.observe(node, { childList: true, subtree: true, characterData: true });
    follow();
    return () => {
      resizes.disconnect();
      mutations.disconnect();
    };
  }, [showsLog]);

  const onScroll = (): void => {
    const node = log.current;
    if (node) {
      stuckToBottom.current = node.scrollHeight - node.scrollTop - node.clientHeight < 40;
    }
  };

  const send = async (): Promise<void> => {
    const content = draft;
    if (!content.trim() || model.busy) {
      return;
    }
    const context = includeContext ? props.cellContext() : null;
    setDraft('');
    stuckToBottom.current = true;
    if (!(await model.send(content, context))) {
      setDraft(current => current || content); // not sent: give the text back
    }
  };

  const onKeyDown = (event: React.KeyboardEvent<HTMLTextAreaElement>): void => {
    if (event.key !== 'Enter' || event.nativeEvent.isComposing) {
      return;
    }
    const modifier = event.ctrlKey || event.metaKey;
    const sends = settings.enterToSend ? !event.shiftKey && !event.altKey : modifier;
    if (sends) {
      event.preventDefault();
      void send();
    }
  };

  const onPanelKeyDown = (event: React.KeyboardEvent<HTMLDivElement>): void => {
    if (event.key === 'Escape' && model.busy) {
      event.preventDefault();
      event.stopPropagation();
      void model.cancel();
    }
  };

  if (model.notebookPath === null) {
    return (
      <div className="jp-Assistant-body" onKeyDown={onPanelKeyDown}>
        <Header model={model} exporter={props.exporter} />
        <div className="jp-Assistant-placeholder">
          Open a notebook to talk with the assistant about it. The assistant works in the
          notebook&apos;s folder and remembers each notebook&apos;s conversations.
        </div>
      </div>
    );
  }

  const sendHint = settings.enterToSend
    ? 'Enter to send, Shift+Enter for a new line'
    : 'Ctrl+Enter to send';
  return (
    <div className="jp-Assistant-body" onKeyDown={onPanelKeyDown}>
      <Header model={model} exporter={props.exporter} />
      {!model.needsSetup && <SetupBanner model={model} />}
      <div
        className="jp-Assistant-log"
        role="log"
        aria-label="Conversation"
        aria-live="polite"
        tabIndex={0}
        ref={log}
        onScroll={onScroll}
      >
        {model.loading && <div className="jp-Assistant-placeholder">Loading…</div>}
        {!model.loading && messages.length === 0 && (
          <div className="jp-Assistant-placeholder">
            Ask about this notebook: its data files, its code, or what to do next. The assistant
            runs in <code>{folderOf(model.notebookPath)}</code>.
          </div>
        )}
        {messages.map(message => (
          <MessageView
            key={message.id}
            message={message}
            rendermime={rendermime}
            actions={actions}
            permissionActions={permissionActions}
            folder={notebookFolder(model.session?.path ?? model.notebookPath ?? '')}
            shownAbove={model.setupProblem}
            notebook={notebook}
            undo={undo}
          />
        ))}
      </div>
      <TurnStatus model={model} />
      {model.error && (
        <div className="jp-Assistant-error" role="alert">
          {model.error}
        </div>
      )}
      {/* Stop stays reachable while a turn (started elsewhere) runs. */}
      {model.needsSetup && !model.busy ? (
        <OnboardingCard model={model} />
      ) : (
        <>
          <form
            className="jp-Assistant-composer"
            onSubmit={event => {
              event.preventDefault();
              void send();
            }}
          >
            <textarea
              className="jp-Assistant-input"
              aria-label="Message to the assistant"
              placeholder={`Ask the assistant (${sendHint})`}
              rows={3}
              value={draft}
              onChange={event => setDraft(event.target.value)}
              onKeyDown={onKeyDown}
              onFocus={() => model.warmUp(true)}
            />
            <div className="jp-Assistant-composerRow">
              <label className="jp-Assistant-contextToggle">
                <input
                  type="checkbox"
                  checked={includeContext}
                  onChange={event => setIncludeContext(event.target.checked)}
                />
                Include active cell or selection
              </label>
              {model.busy ? (
                <button
                  type="button"
                  className="jp-Assistant-stop jp-mod-styled jp-mod-warn"
                  aria-label="Stop the assistant (Escape)"
                  title="Stop (Esc)"
                  disabled={model.cancelling}
                  onClick={() => void model.cancel()}
                >
                  {model.cancelling ? 'Stopping…' : 'Stop'}
                </button>
              ) : (
                <button
                  type="submit"
                  className="jp-Assistant-send jp-mod-styled jp-mod-accept"
                  aria-label="Send message"
                  disabled={!draft.trim()}
                >
                  Send
                </button>
              )}
            </div>
          </form>
          <div className="jp-Assistant-usage" aria-label="Tokens and cost of this conversation">
            {formatUsage(model.usage)}
          </div>
        </>
      )}
    </div>
  );
}

/** What the replies' changes lines need: the session, the later turns, the undo's dialogs. */
function turnUndo(
  props: IPanelOptions & { changes: TurnChangesStore },
  messages: readonly IDisplayMessage[],
  notebook: INotebookCellsBinding | null
): ITurnUndo | null {
  const { model, changes, reloadNotebook } = props;
  const session = model.session;
  if (!session) {
    return null;
  }
  const notebookFile = baseName(session.path); // its working folder is the notebook's folder
  return {
    store: changes,
    sessionId: session.id,
    notebookFile,
    busy: model.busy || session.status === 'running',
    later: turnId =>
      laterTurns(messages, turnId, id => changes.reverted(session.id, id)).map(t => t.text),
    prompts: dialogPrompts,
    notebook,
    undone: (result: IRevertResponse) => {
      // `cells: open`: the cells were put back in the open notebook, which shows them already.
      if (reloadNotebook && result.restored.includes(notebookFile) && result.cells !== 'open') {
        void reloadNotebook(session.path);
      }
    }
  };
}

function Header(props: { model: AssistantModel; exporter: IExportActions }): JSX.Element {
  const { model } = props;
  const path = model.notebookPath;
  const current = model.session?.id ?? '';
  const shown = model.sessions.find(s => s.id === current);
  const shownLabel = shown ? conversationLabel(shown.title, shown.updated_at) : '';
  return (
    <div className="jp-Assistant-header">
      <div className="jp-Assistant-titleRow">
        <h2 className="jp-Assistant-title">Assistant</h2>
        {path && (
          <span className="jp-Assistant-notebook" title={path}>
            {baseName(path)}
          </span>
        )}
      </div>
      {path && (
        <div className="jp-Assistant-conversations">
          <select
            className="jp-Assistant-picker"
            aria-label="Conversation of this notebook"
            title={shownLabel || 'New conversation'}
            value={current}
            onChange={event => {
              if (event.target.value) {
                void model.selectSession(event.target.value);
              }
            }}
          >
            {!current && <option value="">New conversation</option>}
            {model.sessions.map(s => (
              <option key={s.id} value={s.id}>
                {conversationLabel(s.title, s.updated_at)}
                {s.status === 'running' ? ' — running' : ''}
              </option>
            ))}
          </select>
          <button
            type="button"
            className="jp-Assistant-new jp-mod-styled"
            aria-label="New conversation"
            title="Start a new conversation for this notebook"
            onClick={() => model.newConversation()}
          >
            New
          </button>
          <ExportMenu model={model} exporter={props.exporter} />
        </div>
      )}
      {path && shownLabel && (
        // The picker cuts a long title in a narrow sidebar: the whole of it, wrapped.
        <div className="jp-Assistant-conversationTitle">{shownLabel}</div>
      )}
    </div>
  );
}

const EXPORT_CHOICES: { format: ExportFormat; label: string }[] = [
  { format: 'markdown', label: 'Download as Markdown' },
  { format: 'notebook', label: 'Open as a new notebook' }
];

/** "Export conversation": a button that opens a two-item menu. */
function ExportMenu(props: { model: AssistantModel; exporter: IExportActions }): JSX.Element {
  const { model, exporter } = props;
  const [open, setOpen] = React.useState(false);
  const [working, setWorking] = React.useState(false);
  const empty = !model.session || model.session.messages.length === 0;
  const choose = async (format: ExportFormat): Promise<void> => {
    setOpen(false);
    setWorking(true);
    try {
      await exporter.exportConversation(format);
    } finally {
      setWorking(false);
    }
  };
  return (
    <div
      className="jp-Assistant-export"
      onKeyDown={event => {
        if (event.key === 'Escape' && open) {
          event.stopPropagation();
          setOpen(false);
        }
      }}
      onBlur={event => {
        if (!event.currentTarget.contains(event.relatedTarget as Node | null)) {
          setOpen(false);
        }
      }}
    >
      <button
        type="button"
        className="jp-Assistant-exportButton jp-mod-styled"
        aria-label="Export conversation"
        aria-haspopup="menu"
        aria-expanded={open}
        title={empty ? 'Nothing to export yet' : 'Export this conversation'}
        disabled={empty || working}
        onClick={() => setOpen(!open)}
      >
        {working ? 'Exporting…' : 'Export'}
      </button>
      {open && (
        <div className="jp-Assistant-exportMenu" role="menu" aria-label="Export conversation">
          {EXPORT_CHOICES.map(choice => (
            <button
              key={choice.format}
              type="button"
              role="menuitem"
              className="jp-Assistant-exportItem"
              onClick={() => void choose(choice.format)}
            >
              {choice.label}
            </button>
          ))}
        </div>
      )}
    </div>
  );
}

function SetupBanner(props: { model: AssistantModel }): JSX.Element | null {
  const { model } = props;
  const problem = model.setupProblem;
  if (!problem) {
    return null;
  }
  const name = model.provider?.display_name ?? 'The assistant';
  return (
    <div className="jp-Assistant-banner" role="alert">
      <div className="jp-Assistant-bannerTitle">{name} cannot run yet</div>
      <div className="jp-Assistant-bannerText">{problem}</div>
      <button
        type="button"
        className="jp-mod-styled"
        onClick={() => void model.loadProviders(true)}
      >
        Check again
      </button>
    </div>
  );
}

function TurnStatus(props: { model: AssistantModel }): JSX.Element | null {
  const { model } = props;
  let text: string | null = null;
  if (model.cancelling) {
    text = 'Stopping…';
  } else if (model.phase === 'sending') {
    text = 'Sending…';
  } else if (model.phase === 'streaming') {
    text = 'The assistant is working. Press Esc or Stop to cancel.';
  } else if (model.phase === 'elsewhere') {
    text =
      'A turn is running in another process (a %%assistant cell, or another server). ' +
      'Its reply shows here as it is saved. Stop cancels it.';
  }
  if (!text) {
    return null;
  }
  return (
    <div className={`jp-Assistant-status jp-mod-${model.phase}`} role="status">
      {text}
    </div>
  );
}

function folderOf(path: string): string {
  const cut = path.lastIndexOf('/');
  return cut > 0 ? path.slice(0, cut) + '/' : 'the server root';
}
