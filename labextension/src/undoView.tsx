/**
 * Under a finished reply: what its turn changed ("Changed: data.csv, clean.py (new), 2 cells"),
 * a diff view opened from that line (per file and per cell, long diffs folded), and the
 * buttons Undo this turn and Keep. The questions an undo asks (later turns go too; files
 * changed since) are JupyterLab dialogs (undoDialogs.tsx). The logic is undo.ts's.
 */

import * as React from 'react';

import { diffLineText, diffStats, IDiffLine } from './lineDiff';
import { FOLD_LINES, GoToCell, INotebookCellsBinding } from './notebookToolCard';
import type { IRevertResponse, ITurnChanges } from './types';
import {
  changesLine,
  IUndoPrompts,
  listedFiles,
  notCoveredLine,
  parseUnifiedDiff,
  TurnChangesStore
} from './undo';

/** What a reply's changes line needs of the panel. */
export interface ITurnUndo {
  store: TurnChangesStore;
  sessionId: string;
  /** The session's notebook, relative to its working folder (the paths of the changes). */
  notebookFile: string | null;
  /** A turn runs in the session: no undo now. */
  busy: boolean;
  /** The user messages of the turns after `turnId` (an undo takes them along). */
  later(turnId: string): string[];
  prompts: IUndoPrompts;
  /** After an undo: e.g. reload the notebook from disk if it was restored. */
  undone(result: IRevertResponse): void;
  /** The session's notebook, for a changed cell's "Go to cell" (null: none). */
  notebook?: INotebookCellsBinding | null;
}

/** A diff's lines, the first FOLD_LINES of a long one until "Show N more lines". */
function FoldedDiff(props: { lines: IDiffLine[]; label: string }): JSX.Element {
  const { lines } = props;
  const [all, setAll] = React.useState(false);
  const id = React.useId();
  const folds = lines.length > FOLD_LINES;
  const shown = folds && !all ? lines.slice(0, FOLD_LINES) : lines;
  return (
    <>
      <pre id={id} className="jp-Assistant-changeDiff" aria-label={props.label}>
        {shown.map((line, i) => (
          <span key={i} className={`jp-Assistant-changeLine jp-mod-${line.kind}`}>
            {diffLineText(line) + '\n'}
          </span>
        ))}
      </pre>
      {folds && (
        <button
          type="button"
          className="jp-Assistant-changeFold"
          aria-controls={id}
          aria-expanded={all}
          onClick={() => setAll(!all)}
        >
          {all ? 'Show fewer lines' : `Show ${lines.length - FOLD_LINES} more lines`}
        </button>
      )}
    </>
  );
}

const STATUS_WORDS: Record<string, string> = {
  added: 'new',
  deleted: 'deleted',
  modified: 'changed'
};

function ChangeEntry(props: {
  name: string;
  kind: 'file' | 'cell';
  status: string;
  diff?: string;
  note?: string | null;
  notebook?: INotebookCellsBinding | null;
}): JSX.Element {
  const lines = props.diff !== undefined ? parseUnifiedDiff(props.diff) : null;
  const { added, removed } = lines ? diffStats(lines) : { added: 0, removed: 0 };
  const status = STATUS_WORDS[props.status] ?? props.status;
  const title = `${props.kind === 'cell' ? 'Cell ' : ''}${props.name} (${status})`;
  return (
    <section
      className="jp-Assistant-change"
      aria-label={title}
      data-path={props.kind === 'file' ? props.name : undefined}
      data-cell-id={props.kind === 'cell' ? props.name : undefined}
      data-status={props.status}
    >
      <div className="jp-Assistant-changeHead">
        {props.kind === 'cell' && <span className="jp-Assistant-changeKind">Cell</span>}
        <code className="jp-Assistant-changePath">{props.name}</code>
        <span className={`jp-Assistant-changeStatus jp-mod-${props.status}`}>{status}</span>
        {lines && lines.length > 0 && (
          <span
            className="jp-Assistant-changeStats"
            aria-label={`${added} added, ${removed} removed`}
          >
            <span className="jp-mod-add">+{added}</span>{' '}
            <span className="jp-mod-remove">−{removed}</span>
          </span>
        )}
        {props.kind === 'cell' && props.notebook && (
          <GoToCell
            cells={props.notebook.cells}
            path={props.notebook.path}
            cellRef={{ id: props.name, index: null }}
            cell={`cell ${props.name}`}
          />
        )}
      </div>
      {props.note ? (
        <div className="jp-Assistant-changeNote">{props.note}</div>
      ) : lines && lines.length > 0 ? (
        <FoldedDiff lines={lines} label={`Changes to ${title}`} />
      ) : (
        <div className="jp-Assistant-changeNote">
          {props.kind === 'cell'
            ? 'Its type changed, not its source.'
            : 'No line changed (its permissions did).'}
        </div>
      )}
    </section>
  );
}

/** Per file and per cell: the diff, or why there is none. */
export function ChangesDiff(props: {
  id: string;
  changes: ITurnChanges;
  notebookFile: string | null;
  notebook?: INotebookCellsBinding | null;
}): JSX.Element {
  const { changes } = props;
  return (
    <div
      id={props.id}
      className="jp-Assistant-changesDiff"
      role="region"
      aria-label="What the turn changed"
    >
      {listedFiles(changes, props.notebookFile).map(file => (
        <ChangeEntry
          key={`f:${file.path}`}
          kind="file"
          name={file.path}
          status={file.status}
          diff={file.diff}
          note={
            file.too_large
              ? 'Too large for the checkpoints: no diff, and an undo cannot restore it.'
              : file.binary
                ? 'A binary file: no diff to show.'
                : null
          }
        />
      ))}
      {changes.cells.map(cell => (
        <ChangeEntry
          key={`c:${cell.id}`}
          kind="cell"
          name={cell.id}
          status={cell.status}
          diff={cell.diff}
          notebook={props.notebook}
        />
      ))}
    </div>
  );
}

/**
 * The changes line of a finished turn (nothing while unknown, or when it changed nothing),
 * fetched when the reply first scrolls into view.
 */
export function TurnChangesView(props: { undo: ITurnUndo; turnId: string }): JSX.Element | null {
  const { undo, turnId } = props;
  const { store, sessionId } = undo;
  const [, setTick] = React.useState(0);
  const [seen, setSeen] = React.useState(false);
  const [open, setOpen] = React.useState(false);
  const [message, setMessage] = React.useState<string | null>(null);
  const anchor = React.useRef<HTMLDivElement>(null);
  const toggle = React.useRef<HTMLButtonElement>(null);
  const diffId = React.useId();

  React.useEffect(() => {
    const update = (): void => setTick(t => t + 1);
    store.changed.connect(update);
    return () => {
      store.changed.disconnect(update);
    };
  }, [store]);

  React.useEffect(() => {
    // Ask for the changes only once the reply shows (a long conversation has many turns).
    const node = anchor.current?.parentElement ?? anchor.current;
    if (seen || !node) {
      return;
    }
    if (typeof IntersectionObserver === 'undefined') {
      setSeen(true);
      return;
    }
    const observer = new IntersectionObserver(
      entries => {
        if (entries.some(entry => entry.isIntersecting)) {
          setSeen(true);
          observer.disconnect();
        }
      },
      { rootMargin: '200px' }
    );
    observer.observe(node);
    return () => observer.disconnect();
  }, [seen]);

  const state = seen ? store.get(sessionId, turnId) : null;
  if (state?.state !== 'ready') {
    return <div ref={anchor} className="jp-Assistant-changesAnchor" hidden />;
  }
  const { changes } = state;
  const line = changesLine(changes, undo.notebookFile);
  if (!line) {
    return <div ref={anchor} className="jp-Assistant-changesAnchor" hidden />;
  }
  const notCovered = notCoveredLine(changes);
  const reverted = changes.reverted;
  const undoing = store.undoing(sessionId, turnId);
  const showButtons = !reverted && !store.kept(sessionId, turnId);

  const runUndo = async (): Promise<void> => {
    setMessage(null);
    const outcome = await store.undo(sessionId, turnId, undo.later(turnId), undo.prompts);
    toggle.current?.focus(); // the buttons go away: the keyboard stays on the line
    if (outcome.kind === 'refused') {
      setMessage(`Could not undo: ${outcome.message}`);
    } else if (outcome.kind === 'undone') {
      if (outcome.result.missed.length) {
        // Files too large to keep, or the notebook whose cells could not be reached.
        setMessage(`Not put back: ${outcome.result.missed.join(', ')}.`);
      }
      undo.undone(outcome.result);
    }
  };

  return (
    <div
      ref={anchor}
      className={`jp-Assistant-changes${reverted ? ' jp-mod-reverted' : ''}`}
      data-turn-id={turnId}
      data-state={reverted ? 'undone' : 'changed'}
    >
      <div className="jp-Assistant-changesRow">
        {reverted && <span className="jp-Assistant-changesUndone">Undone</span>}
        <button
          ref={toggle}
          type="button"
          className="jp-Assistant-changesToggle"
          aria-expanded={open}
          aria-controls={diffId}
          title={open ? 'Hide the changes' : 'Show what the turn changed'}
          onClick={() => setOpen(!open)}
        >
          <span className="jp-Assistant-changesCaret" aria-hidden="true">
            {open ? '▾' : '▸'}
          </span>
          <span className="jp-Assistant-changesText">{line}</span>
        </button>
        {showButtons && (
          <span className="jp-Assistant-changesActions">
            <button
              type="button"
              className="jp-Assistant-undo jp-mod-styled jp-mod-warn"
              disabled={undo.busy || undoing}
              title={
                undo.busy
                  ? 'A turn is running: wait for it (or stop it), then undo'
                  : 'Put the files and the notebook back as they were before this turn'
              }
              onClick={() => void runUndo()}
            >
              {undoing ? 'Undoing…' : 'Undo this turn'}
            </button>
            <button
              type="button"
              className="jp-Assistant-keep jp-mod-styled"
              disabled={undoing}
              title="Keep these changes (hides Undo for this turn)"
              onClick={() => {
                store.keep(sessionId, turnId);
                toggle.current?.focus();
              }}
            >
              Keep
            </button>
          </span>
        )}
      </div>
      {notCovered && <div className="jp-Assistant-changesNote">{notCovered}</div>}
      {message && (
        <div className="jp-Assistant-changesError" role="alert">
          {message}
        </div>
      )}
      {open && (
        <ChangesDiff
          id={diffId}
          changes={changes}
          notebookFile={undo.notebookFile}
          notebook={undo.notebook}
        />
      )}
    </div>
  );
}
