/**
 * Short texts the panel shows: one-line tool summaries, usage, result bodies.
 */

import type { IPermissionRecord, IUsage } from './types';

const SUMMARY_CHARS = 100;

/** The input field that says best what a tool call does, by tool name (Claude Code's tools). */
const KEY_FIELDS: Record<string, string[]> = {
  Bash: ['command'],
  Read: ['file_path'],
  Write: ['file_path'],
  Edit: ['file_path'],
  MultiEdit: ['file_path'],
  NotebookEdit: ['notebook_path'],
  Glob: ['pattern'],
  Grep: ['pattern'],
  WebFetch: ['url'],
  WebSearch: ['query'],
  Task: ['description'],
  TodoWrite: []
};

/** A one-line summary of a tool call's input, e.g. `pwd` for Bash or the file for Read. */
export function toolSummary(name: string, input: unknown, max: number = SUMMARY_CHARS): string {
  if (input === null || input === undefined) {
    return '';
  }
  if (typeof input !== 'object') {
    return oneLine(String(input), max);
  }
  const record = input as Record<string, unknown>;
  const keys = KEY_FIELDS[name] ?? ['command', 'file_path', 'path', 'pattern', 'url', 'query'];
  for (const key of keys) {
    const value = record[key];
    if (typeof value === 'string' && value) {
      return oneLine(value, max);
    }
  }
  const firstString = Object.values(record).find(
    (v): v is string => typeof v === 'string' && v.length > 0
  );
  return oneLine(firstString ?? JSON.stringify(record), max);
}

function oneLine(text: string, max: number): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? line.slice(0, max - 1) + '…' : line;
}

/** True for a shell command call: Claude Code's Bash, or any tool whose input has a `command`. */
export function isShellCommand(name: string, input: unknown): boolean {
  if (name === 'Bash') {
    return true;
  }
  return (
    typeof input === 'object' &&
    input !== null &&
    typeof (input as { command?: unknown }).command === 'string'
  );
}

/**
 * The folder a notebook's tools run in, relative to the server root: `analysis/` for
 * `analysis/q3.ipynb`, `/` for a notebook at the root.
 */
export function notebookFolder(path: string): string {
  const trimmed = path.replace(/^\/+/, '');
  const cut = trimmed.lastIndexOf('/');
  return cut > 0 ? trimmed.slice(0, cut) + '/' : '/';
}

/** A tool's input or result as readable text (strings as they are, the rest as JSON). */
export function displayValue(value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (typeof value === 'string') {
    return value;
  }
  if (Array.isArray(value) && value.every(isTextBlock)) {
    return value.map(block => block.text).join('\n'); // content blocks of a tool result
  }
  return JSON.stringify(value, null, 2);
}

function isTextBlock(value: unknown): value is { type: 'text'; text: string } {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { type?: unknown }).type === 'text' &&
    typeof (value as { text?: unknown }).text === 'string'
  );
}

/** `1,234 in · 56 out tokens · $0.0123` */
export function formatUsage(usage: IUsage): string {
  const tokens = (n: number): string => Math.round(n).toLocaleString('en-US');
  const cost = usage.cost_usd;
  const dollars = cost === 0 ? '$0' : cost < 0.01 ? `$${cost.toFixed(4)}` : `$${cost.toFixed(2)}`;
  return `${tokens(usage.input_tokens)} in · ${tokens(usage.output_tokens)} out tokens · ${dollars}`;
}

/** The file name of a notebook path, for headings. */
export function baseName(path: string): string {
  const cut = path.lastIndexOf('/');
  return cut >= 0 ? path.slice(cut + 1) : path;
}

/** A conversation's label in the picker: its title and when it was last active. */
export function conversationLabel(
  title: string,
  updatedAt: string,
  now: Date = new Date()
): string {
  const name = title.trim() || 'Untitled conversation';
  const when = new Date(updatedAt);
  if (isNaN(when.getTime())) {
    return name;
  }
  const sameDay = when.toDateString() === now.toDateString();
  const stamp = sameDay
    ? when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : when.toLocaleDateString([], { month: 'short', day: 'numeric' });
  return `${name} (${stamp})`;
}

/** What became of a tool approval question, in words (null: it still waits). */
export function permissionOutcome(record: IPermissionRecord): string | null {
  const reason = record.message ? `: ${record.message}` : '';
  if (record.by === 'timeout') {
    return 'Denied: nobody answered in time';
  }
  if (record.decision === 'allow') {
    return record.scope === 'session' ? 'Allowed for this session' : 'Allowed once';
  }
  if (record.decision === 'deny') {
    return (record.scope === 'session' ? 'Denied for this session' : 'Denied') + reason;
  }
  if (record.by === 'ended') {
    return 'Not answered: the turn ended first';
  }
  return null;
}

/** How a line of a question's summary shows: a unified diff's added or removed lines stand out. */
export function summaryLineKind(line: string): 'add' | 'remove' | 'hunk' | 'plain' {
  if (line.startsWith('+++') || line.startsWith('---')) {
    return 'plain';
  }
  if (line.startsWith('+')) {
    return 'add';
  }
  if (line.startsWith('-')) {
    return 'remove';
  }
  return line.startsWith('@@') ? 'hunk' : 'plain';
}

/**
 * What a failed reply says: its error, or, when the panel already shows that very fix above
 * (a CLI not installed or not logged in), a pointer to it, so the long sentence shows once.
 */
export function turnErrorText(
  error: { code: string; message: string },
  shownAbove?: string | null
): string {
  if (shownAbove && error.message.trim() === shownAbove.trim()) {
    return 'This turn could not run: see the fix above.';
  }
  return error.message;
}
