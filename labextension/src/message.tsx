/**
 * One message of the conversation: the user's text, or the assistant's reply with its tool
 * cards, notices, error and status.
 */

import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import * as React from 'react';

import {
  displayValue,
  isShellCommand,
  permissionOutcome,
  summaryLineKind,
  toolSummary,
  turnErrorText
} from './format';
import { ICodeActions, Markdown } from './markdown';
import { INotebookCellsBinding, notebookTool, NotebookToolCard } from './notebookToolCard';
import { replyParts, toolStopped } from './turn';
import type { IDisplayMessage } from './turn';
import type { IPermissionRecord, IToolCall, PermissionDecision, PermissionScope } from './types';
import { ITurnUndo, TurnChangesView } from './undoView';

const STATUS_TEXT: Record<string, string> = {
  cancelled: 'Cancelled',
  error: 'Failed',
  interrupted: 'Interrupted'
};

export function ToolCard(props: {
  call: IToolCall;
  running: boolean;
  /** The turn was stopped before this call had a proper result: not an error of the tool. */
  stopped?: boolean;
  /** Where a shell command ran, relative to the server root (e.g. `analysis/`). */
  folder?: string | null;
  /** The session's notebook, for a notebook tool's "Go to cell". */
  notebook?: INotebookCellsBinding | null;
}): JSX.Element {
  const { call, running, stopped } = props;
  const summary = toolSummary(call.name, call.input);
  const finished = call.result !== undefined && call.result !== null;
  const state = stopped
    ? 'stopped'
    : call.is_error
      ? 'error'
      : finished
        ? 'done'
        : running
          ? 'running'
          : 'no result';
  const tool = notebookTool(call.name);
  if (tool) {
    return <NotebookToolCard tool={tool} call={call} state={state} notebook={props.notebook} />;
  }
  const where = props.folder && isShellCommand(call.name, call.input) ? props.folder : null;
  const classes = ['jp-Assistant-tool'];
  if (state === 'error') {
    classes.push('jp-mod-error');
  } else if (state === 'stopped') {
    classes.push('jp-mod-stopped');
  }
  const label = `Tool ${call.name || 'call'}: ${summary}${where ? ` in ${where}` : ''} (${state})`;
  return (
    <details className={classes.join(' ')} data-state={state}>
      <summary aria-label={label}>
        <span className="jp-Assistant-toolName">{call.name || 'tool'}</span>
        <code className="jp-Assistant-toolSummary">{summary}</code>
        {where && (
          <span className="jp-Assistant-toolWhere" title="The folder it ran in">
            in {where}
          </span>
        )}
        <span className="jp-Assistant-toolState">{state}</span>
      </summary>
      <div className="jp-Assistant-toolBody">
        <div className="jp-Assistant-toolLabel">Input</div>
        <pre>{displayValue(call.input)}</pre>
        {finished && (
          <>
            <div className="jp-Assistant-toolLabel">
              {call.is_error ? (stopped ? 'Stopped' : 'Error') : 'Result'}
            </div>
            <pre>{displayValue(call.result)}</pre>
          </>
        )}
      </div>
    </details>
  );
}

/** What a permission card can do: answer its question, and tell whether an answer is on its way. */
export interface IPermissionActions {
  answer: (
    requestId: string,
    decision: PermissionDecision,
    scope: PermissionScope,
    message?: string
  ) => void;
  answering: (requestId: string) => boolean;
}

function Summary(props: { text: string }): JSX.Element {
  return (
    <pre className="jp-Assistant-permissionSummary">
      {props.text.split('\n').map((line, i) => (
        <span key={i} className={`jp-Assistant-diffLine jp-mod-${summaryLineKind(line)}`}>
          {line + '\n'}
        </span>
      ))}
    </pre>
  );
}

/**
 * A tool approval question: the tool, what it will do (the command, or the diff of a file
 * change), and Allow once / Allow for this session / Deny with an optional reason. Answered
 * (or over), it shows the outcome. `actions` is null for a turn that runs elsewhere (a kernel
 * asks in its cell), whose question cannot be answered from here.
 */
export function PermissionCard(props: {
  record: IPermissionRecord;
  actions: IPermissionActions | null;
}): JSX.Element {
  const { record, actions } = props;
  const [reason, setReason] = React.useState('');
  const outcome = permissionOutcome(record);
  const busy = actions?.answering(record.request_id) ?? false;
  const what = toolSummary(record.tool_name, record.input, Infinity); // all of it, wrapped
  const titleId = `jp-Assistant-permission-${record.request_id}`;
  const state = outcome === null ? 'waiting' : (record.decision ?? 'ended');
  const card = React.useRef<HTMLDivElement>(null);
  const answer = (decision: PermissionDecision, scope: PermissionScope): void => {
    actions?.answer(record.request_id, decision, scope, decision === 'deny' ? reason.trim() : '');
    card.current?.focus(); // the buttons go away: keep the keyboard focus on the card
  };
  return (
    <div
      ref={card}
      tabIndex={-1}
      className={`jp-Assistant-permission jp-mod-${state}`}
      role="group"
      aria-labelledby={titleId}
      data-request-id={record.request_id}
      data-state={state}
    >
      <div className="jp-Assistant-permissionTitle" id={titleId}>
        {outcome === null ? 'Asks to use' : 'Asked to use'}
        <span className="jp-Assistant-toolName">{record.tool_name || 'a tool'}</span>
        {what && <code className="jp-Assistant-toolSummary">{what}</code>}
      </div>
      {record.summary && outcome === null && <Summary text={record.summary} />}
      {record.summary && outcome !== null && (
        <details className="jp-Assistant-permissionDetails">
          <summary>What it asked</summary>
          <Summary text={record.summary} />
        </details>
      )}
      {outcome === null && actions && (
        <div className="jp-Assistant-permissionActions">
          <button
            type="button"
            className="jp-mod-styled jp-mod-accept"
            disabled={busy}
            onClick={() => answer('allow', 'once')}
          >
            Allow once
          </button>
          <button
            type="button"
            className="jp-mod-styled"
            disabled={busy}
            title="Also allow the same call (same command or file) again in this conversation"
            onClick={() => answer('allow', 'session')}
          >
            Allow for this session
          </button>
          <input
            type="text"
            className="jp-Assistant-permissionReason"
            aria-label="Reason for denying (optional, the assistant is told)"
            placeholder="Reason (optional)"
            value={reason}
            disabled={busy}
            onChange={event => setReason(event.target.value)}
            onKeyDown={event => {
              if (event.key === 'Enter' && !event.nativeEvent.isComposing) {
                event.preventDefault();
                answer('deny', 'once');
              } else if (event.key === 'Escape' && reason) {
                event.stopPropagation(); // clears the reason; Escape does not stop the turn here
                setReason('');
              }
            }}
          />
          <button
            type="button"
            className="jp-mod-styled jp-mod-warn"
            disabled={busy}
            onClick={() => answer('deny', 'once')}
          >
            Deny
          </button>
        </div>
      )}
      {outcome === null && !actions && (
        <div className="jp-Assistant-permissionNote">
          Waiting for an answer in the notebook cell that runs this turn.
        </div>
      )}
      {outcome !== null && <div className="jp-Assistant-permissionOutcome">{outcome}</div>}
    </div>
  );
}

function contextNote(context: Record<string, unknown> | null | undefined): string | null {
  if (!context) {
    return null;
  }
  const selection = context.selection as { cell_index?: number } | undefined;
  if (selection) {
    return `with a selection of cell ${(selection.cell_index ?? 0) + 1}`;
  }
  const cell = context.active_cell as { index?: number } | undefined;
  if (cell) {
    return `with cell ${(cell.index ?? 0) + 1}`;
  }
  return 'with context';
}

export function MessageView(props: {
  message: IDisplayMessage;
  rendermime: IRenderMimeRegistry;
  actions: ICodeActions;
  /** Answers questions of the turn streamed here; questions of other turns only show. */
  permissionActions?: IPermissionActions;
  /** The folder the notebook's tools run in, relative to the server root. */
  folder?: string | null;
  /** The set-up problem the panel already shows above (banner or set-up card), if any. */
  shownAbove?: string | null;
  /** The session's notebook, for the notebook tools' "Go to cell". */
  notebook?: INotebookCellsBinding | null;
  /** What the turn changed, with Undo and Keep (null: not for this reply). */
  undo?: ITurnUndo | null;
}): JSX.Element {
  const { message, rendermime, actions } = props;
  if (message.role === 'user') {
    const note = contextNote(message.context);
    return (
      <div className="jp-Assistant-message jp-mod-user" data-role="user">
        <div className="jp-Assistant-author">You</div>
        <div className="jp-Assistant-userText">{message.content}</div>
        {note && <div className="jp-Assistant-contextNote">{note}</div>}
      </div>
    );
  }
  const running = message.status === 'running' || message.status === 'streaming';
  const statusText = STATUS_TEXT[message.status];
  const empty = !message.content && message.tools.length === 0 && !message.error;
  return (
    <div
      className={`jp-Assistant-message jp-mod-assistant jp-mod-${message.status}`}
      data-role="assistant"
      data-status={message.status}
      aria-busy={running}
    >
      <div className="jp-Assistant-author">
        Assistant
        {statusText && <span className="jp-Assistant-badge">{statusText}</span>}
      </div>
      {message.thinking && (
        <details className="jp-Assistant-thinking">
          <summary>Thinking</summary>
          <pre>{message.thinking}</pre>
        </details>
      )}
      {replyParts(message.content, message.tools).map((part, i) =>
        part.kind === 'tool' ? (
          <ToolCard
            key={part.call.id}
            call={part.call}
            running={running}
            stopped={toolStopped(part.call, message.status)}
            folder={props.folder}
            notebook={props.notebook}
          />
        ) : (
          <Markdown
            key={`text-${i}`}
            source={part.text}
            rendermime={rendermime}
            actions={actions}
          />
        )
      )}
      {(message.permissions ?? []).map(record => (
        <PermissionCard
          key={record.request_id}
          record={record}
          actions={message.status === 'running' ? (props.permissionActions ?? null) : null}
        />
      ))}
      {running && (
        <div className="jp-Assistant-typing">{empty ? 'Working…' : 'Still working…'}</div>
      )}
      {(message.notices ?? []).map((notice, i) => (
        <div key={i} className="jp-Assistant-notice">
          {notice}
        </div>
      ))}
      {message.error && (
        <div className="jp-Assistant-turnError" role="alert">
          {turnErrorText(message.error, props.shownAbove)}
        </div>
      )}
      {!running && message.turn_id && props.undo && (
        <TurnChangesView key={message.turn_id} undo={props.undo} turnId={message.turn_id} />
      )}
    </div>
  );
}
