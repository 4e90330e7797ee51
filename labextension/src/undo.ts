/**
 * Undo a turn, without DOM: the changes line under a reply ("Changed: data.csv, clean.py (new),
 * 2 cells"), a unified diff's lines for the diff view, the later turns an undo takes along, the
 * undo's steps (confirm, revert, conflicts, overwrite) with the questions asked through
 * `IUndoPrompts`, and `TurnChangesStore`: each turn's changes fetched once and kept, refreshed
 * after an undo, and the turns the user chose to keep.
 */

import { ISignal, Signal } from '@lumino/signaling';

import { ApiError, AssistantClient } from './api';
import type { IDiffLine } from './lineDiff';
import type { IFileChange, IMessage, IRevertResponse, ITurnChanges } from './types';

/** How many files the changes line names before "N more files". */
export const LINE_FILES = 6;

/** Reasons the checkpoints leave a path out by design (settings), not worth a line each turn. */
const QUIET_REASONS = new Set(['ignored', 'virtualenv']);

const MARKS: Record<string, string> = { added: ' (new)', deleted: ' (deleted)', modified: '' };

/**
 * The files the line and the diff view list: all the turn changed, except the session's own
 * notebook when its cells are listed (they say what changed in it, its JSON would not).
 */
export function listedFiles(changes: ITurnChanges, notebookFile: string | null): IFileChange[] {
  return changes.files.filter(f => !(changes.cells.length > 0 && f.path === notebookFile));
}

/**
 * "Changed: data.csv, clean.py (new), old.txt (deleted), 2 cells", or '' when the turn changed
 * nothing. `notebookFile`: the session's notebook, relative to the working folder.
 */
export function changesLine(
  changes: ITurnChanges,
  notebookFile: string | null = null,
  limit = LINE_FILES
): string {
  const names = listedFiles(changes, notebookFile).map(f => f.path + (MARKS[f.status] ?? ''));
  const shown = names.slice(0, limit);
  if (names.length > limit) {
    const more = names.length - limit;
    shown.push(`${more} more ${more === 1 ? 'file' : 'files'}`);
  }
  const cells = changes.cells.length;
  if (cells) {
    shown.push(`${cells} ${cells === 1 ? 'cell' : 'cells'}`);
  }
  return shown.length ? `Changed: ${shown.join(', ')}` : '';
}

/**
 * What an undo cannot take back, by reason: "data/big.bin not covered (too large)". Paths left
 * out by the ignore settings (`.git`, `.ipynb_checkpoints`, virtualenvs) are not named.
 */
export function notCoveredLine(changes: ITurnChanges, limit = 3): string {
  const byReason = new Map<string, string[]>();
  for (const entry of changes.not_covered) {
    if (QUIET_REASONS.has(entry.reason)) {
      continue;
    }
    byReason.set(entry.reason, [...(byReason.get(entry.reason) ?? []), entry.path]);
  }
  const parts: string[] = [];
  for (const [reason, paths] of byReason) {
    const named = paths.slice(0, limit).join(', ');
    const more = paths.length > limit ? ` and ${paths.length - limit} more` : '';
    parts.push(`${named}${more} not covered (${reason})`);
  }
  return parts.join('; ');
}

/** Whether a turn's changes give a line at all. */
export function hasChanges(changes: ITurnChanges, notebookFile: string | null = null): boolean {
  return changesLine(changes, notebookFile) !== '';
}

/**
 * The lines of a unified diff as the server writes it (`--- a/x`, `+++ b/x`, `@@ ... @@`, then
 * `+`/`-`/` ` lines; a cut one ends with `... N more lines`). The file header is left out: the
 * view names the file.
 */
export function parseUnifiedDiff(diff: string): IDiffLine[] {
  const lines = diff === '' ? [] : diff.split('\n');
  let start = 0;
  if (lines[0]?.startsWith('--- ') && lines[1]?.startsWith('+++ ')) {
    start = 2;
  }
  const out: IDiffLine[] = [];
  let oldLine = 0;
  let newLine = 0;
  for (const line of lines.slice(start)) {
    const hunk = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
    if (hunk) {
      oldLine = Number(hunk[1]) - 1;
      newLine = Number(hunk[2]) - 1;
      out.push({ kind: 'hunk', text: line });
    } else if (line.startsWith('+')) {
      out.push({ kind: 'add', text: line.slice(1), newLine: ++newLine });
    } else if (line.startsWith('-')) {
      out.push({ kind: 'remove', text: line.slice(1), oldLine: ++oldLine });
    } else if (line.startsWith(' ')) {
      out.push({ kind: 'context', text: line.slice(1), oldLine: ++oldLine, newLine: ++newLine });
    } else if (line.startsWith('\\')) {
      continue; // "\ No newline at end of file"
    } else {
      out.push({ kind: 'hunk', text: line }); // the server's "... N more lines"
    }
  }
  return out;
}

/** A user's message as a dialog quotes it: one line, cut at `max` characters. */
export function quoteMessage(text: string, max = 60): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? line.slice(0, max - 1) + '…' : line;
}

/**
 * The turns after `turnId` in the conversation (an undo takes them along), each as its user
 * message's text, oldest first; turns already undone (`undone`) are not counted.
 */
export function laterTurns(
  messages: readonly Pick<IMessage, 'role' | 'turn_id' | 'content'>[],
  turnId: string,
  undone: (turnId: string) => boolean = () => false
): { turnId: string; text: string }[] {
  const start = messages.findIndex(m => m.turn_id === turnId);
  if (start < 0) {
    return [];
  }
  const seen = new Set([turnId]);
  const later: { turnId: string; text: string }[] = [];
  for (const message of messages.slice(start + 1)) {
    const id = message.turn_id;
    if (!id || seen.has(id)) {
      continue;
    }
    seen.add(id);
    if (message.role === 'user' && !undone(id)) {
      later.push({ turnId: id, text: message.content });
    }
  }
  return later;
}

/** "This also undoes your later messages: 'a', 'b'." */
export function laterTurnsText(texts: string[]): string {
  const quoted = texts.map(t => `'${quoteMessage(t)}'`).join(', ');
  return texts.length === 1
    ? `This also undoes your later message: ${quoted}.`
    : `This also undoes your later messages: ${quoted}.`;
}

/** The questions an undo may ask (the sidebar asks them with JupyterLab's dialogs). */
export interface IUndoPrompts {
  /** Later turns go too: undo anyway? `texts`: their user messages. */
  confirmLater(texts: string[]): Promise<boolean>;
  /** Files changed since the turn: overwrite them? */
  confirmOverwrite(paths: string[], message: string): Promise<boolean>;
}

export type UndoOutcome =
  | { kind: 'undone'; result: IRevertResponse }
  /** The user said no to a question. */
  | { kind: 'cancelled' }
  /** The server refused (a turn runs, the turn is unknown, ...): its message. */
  | { kind: 'refused'; message: string };

/** The paths of a revert's 409, if it named conflicts. */
export function conflictsOf(err: unknown): string[] | null {
  if (!(err instanceof ApiError) || err.status !== 409) {
    return null;
  }
  const conflicts = err.body?.conflicts;
  return Array.isArray(conflicts) && conflicts.length
    ? conflicts.filter((p): p is string => typeof p === 'string')
    : null;
}

/**
 * Undo `turnId` of session `sessionId`: ask first when later turns go too, revert, and on a
 * conflict ask whether to overwrite the files changed since (then revert with force).
 */
export async function undoTurn(
  client: Pick<AssistantClient, 'revertTurn'>,
  sessionId: string,
  turnId: string,
  later: string[],
  prompts: IUndoPrompts
): Promise<UndoOutcome> {
  if (later.length > 0 && !(await prompts.confirmLater(later))) {
    return { kind: 'cancelled' };
  }
  let force = false;
  for (;;) {
    try {
      return { kind: 'undone', result: await client.revertTurn(sessionId, turnId, force) };
    } catch (err) {
      const conflicts = force ? null : conflictsOf(err);
      if (conflicts) {
        if (!(await prompts.confirmOverwrite(conflicts, (err as ApiError).message))) {
          return { kind: 'cancelled' };
        }
        force = true;
        continue;
      }
      return { kind: 'refused', message: err instanceof Error ? err.message : String(err) };
    }
  }
}

/** A turn's changes as the store has them. `none`: no checkpoint (404) or not fetched yet. */
export type ChangesState =
  | { state: 'loading' }
  | { state: 'none' }
  | { state: 'failed'; message: string }
  | { state: 'ready'; changes: ITurnChanges };

/** Where "Keep" is remembered (localStorage, or nothing). */
export interface IKeptStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

const KEPT_PREFIX = 'jupyter-assistant:kept:';

/**
 * The changes of the turns shown, fetched once per turn (on first ask) and kept; an undo
 * refreshes every known turn of its session (later turns were undone too). "Keep" is
 * remembered per session and turn.
 */
export class TurnChangesStore {
  constructor(
    private readonly _client: Pick<AssistantClient, 'turnChanges' | 'revertTurn'>,
    private readonly _storage: IKeptStorage | null = null
  ) {}

  /** Emitted when a turn's changes, its undo or its kept state changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The turn's changes as known; fetched on first ask. */
  get(sessionId: string, turnId: string): ChangesState {
    const key = `${sessionId}:${turnId}`;
    const known = this._states.get(key);
    if (known) {
      return known;
    }
    void this.load(sessionId, turnId);
    return this._states.get(key) ?? { state: 'loading' };
  }

  /** Fetch (again) the turn's changes. */
  async load(sessionId: string, turnId: string): Promise<void> {
    const key = `${sessionId}:${turnId}`;
    if (!this._states.has(key)) {
      this._states.set(key, { state: 'loading' });
    }
    const asked = (this._asked.get(key) ?? 0) + 1;
    this._asked.set(key, asked);
    let next: ChangesState;
    try {
      next = { state: 'ready', changes: await this._client.turnChanges(sessionId, turnId) };
    } catch (err) {
      next =
        err instanceof ApiError && err.status === 404
          ? { state: 'none' }
          : { state: 'failed', message: err instanceof Error ? err.message : String(err) };
    }
    if (this._asked.get(key) === asked) {
      this._states.set(key, next); // the answer of the latest ask wins
      this._changed.emit();
    }
  }

  /** Fetch again every turn of the session this store knows. */
  async refresh(sessionId: string): Promise<void> {
    const turns = [...this._states.keys()]
      .filter(key => key.startsWith(`${sessionId}:`))
      .map(key => key.slice(sessionId.length + 1));
    await Promise.all(turns.map(turnId => this.load(sessionId, turnId)));
  }

  /** An undo of the turn is under way. */
  undoing(sessionId: string, turnId: string): boolean {
    return this._undoing.has(`${sessionId}:${turnId}`);
  }

  /** Whether the turn is known to be undone. */
  reverted(sessionId: string, turnId: string): boolean {
    const state = this._states.get(`${sessionId}:${turnId}`);
    return state?.state === 'ready' && state.changes.reverted;
  }

  /** Undo the turn (see `undoTurn`), then refresh the session's turns. */
  async undo(
    sessionId: string,
    turnId: string,
    later: string[],
    prompts: IUndoPrompts
  ): Promise<UndoOutcome> {
    const key = `${sessionId}:${turnId}`;
    this._undoing.add(key);
    this._changed.emit();
    try {
      const outcome = await undoTurn(this._client, sessionId, turnId, later, prompts);
      if (outcome.kind === 'undone') {
        await this.refresh(sessionId);
      }
      return outcome;
    } finally {
      this._undoing.delete(key);
      this._changed.emit();
    }
  }

  /** The user chose Keep for this turn: no Undo for it any more (after a reload too). */
  kept(sessionId: string, turnId: string): boolean {
    const key = KEPT_PREFIX + `${sessionId}:${turnId}`;
    if (this._kept.has(key)) {
      return true;
    }
    try {
      return this._storage?.getItem(key) === '1';
    } catch {
      return false; // storage refused (private mode): only this page remembers
    }
  }

  keep(sessionId: string, turnId: string): void {
    const key = KEPT_PREFIX + `${sessionId}:${turnId}`;
    this._kept.add(key);
    try {
      this._storage?.setItem(key, '1');
    } catch {
      // full or refused: remembered until the page reloads
    }
    this._changed.emit();
  }

  private readonly _states = new Map<string, ChangesState>();
  private readonly _asked = new Map<string, number>();
  private readonly _undoing = new Set<string>();
  private readonly _kept = new Set<string>();
  private readonly _changed = new Signal<this, void>(this);
}
