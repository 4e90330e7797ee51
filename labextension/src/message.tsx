/**
 * One message of the conversation: the user's text, or the assistant's reply with its tool
 * cards, notices, error and status.
 */

import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import * as React from 'react';

import { displayValue, toolSummary } from './format';
import { ICodeActions, Markdown } from './markdown';
import type { IDisplayMessage } from './turn';
import type { IToolCall } from './types';

const STATUS_TEXT: Record<string, string> = {
  cancelled: 'Cancelled',
  error: 'Failed',
  interrupted: 'Interrupted'
};

export function ToolCard(props: { call: IToolCall; running: boolean }): JSX.Element {
  const { call, running } = props;
  const summary = toolSummary(call.name, call.input);
  const finished = call.result !== undefined && call.result !== null;
  const state = call.is_error ? 'error' : finished ? 'done' : running ? 'running' : 'no result';
  const classes = ['jp-Assistant-tool'];
  if (call.is_error) {
    classes.push('jp-mod-error');
  }
  return (
    <details className={classes.join(' ')} data-state={state}>
      <summary aria-label={`Tool ${call.name || 'call'}: ${summary} (${state})`}>
        <span className="jp-Assistant-toolName">{call.name || 'tool'}</span>
        <code className="jp-Assistant-toolSummary">{summary}</code>
        <span className="jp-Assistant-toolState">{state}</span>
      </summary>
      <div className="jp-Assistant-toolBody">
        <div className="jp-Assistant-toolLabel">Input</div>
        <pre>{displayValue(call.input)}</pre>
        {finished && (
          <>
            <div className="jp-Assistant-toolLabel">{call.is_error ? 'Error' : 'Result'}</div>
            <pre>{displayValue(call.result)}</pre>
          </>
        )}
      </div>
    </details>
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
      {message.tools.map(call => (
        <ToolCard key={call.id} call={call} running={running} />
      ))}
      {message.content && (
        <Markdown source={message.content} rendermime={rendermime} actions={actions} />
      )}
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
          {message.error.message}
        </div>
      )}
    </div>
  );
}
