/**
 * A conversation as a readable Markdown transcript, or as a notebook (nbformat 4.5) whose cells
 * are the conversation: Markdown cells, with the Python code blocks of the replies as code
 * cells. Rendered from the session JSON (`GET sessions/{id}`); `jupyter assistant sessions
 * export` (export.py) renders the same two shapes.
 */

import { toolSummary } from './format';
import type { IMessage, ISession } from './types';

const ROLE_NAMES: Record<string, string> = {
  user: 'You',
  assistant: 'Assistant',
  system: 'System'
};
const STATUS_NOTES: Record<string, string> = {
  cancelled: 'cancelled',
  error: 'failed',
  interrupted: 'interrupted',
  streaming: 'still being written'
};
const CODE_BLOCK = /^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n([\s\S]*?)^[ \t]*```/gm;
const PYTHON_LANGS = new Set(['', 'python', 'py', 'python3', 'ipython', 'ipython3']);

export const DEFAULT_KERNELSPEC = {
  display_name: 'Python 3',
  language: 'python',
  name: 'python3'
};

export interface ICell {
  cell_type: 'markdown' | 'code';
  id: string;
  metadata: Record<string, unknown>;
  source: string;
  execution_count?: null;
  outputs?: unknown[];
}

export interface INotebookJSON {
  nbformat: 4;
  nbformat_minor: 5;
  metadata: Record<string, unknown>;
  cells: ICell[];
}

export interface IPiece {
  kind: 'markdown' | 'code';
  text: string;
}

export function sessionTitle(session: ISession): string {
  const name = session.path.split('/').pop() || session.path;
  return session.title.trim() || `Conversation about ${name}`;
}

/** `2025-03-01T09:30:12.345Z` -> `2025-03-01 09:30 UTC` (as stored, in UTC). */
function stamp(value: string): string {
  const match = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)/.exec(value);
  return match ? `${match[1]} ${match[2]} UTC` : value;
}

function heading(message: IMessage): string {
  const role = ROLE_NAMES[message.role] ?? message.role;
  const note = STATUS_NOTES[message.status];
  return `${role} · ${stamp(message.created_at)}` + (note ? ` (${note})` : '');
}

function contextNote(message: IMessage): string | null {
  const keys = Object.keys(message.context ?? {});
  return keys.length ? `*Sent with: ${keys.map(k => k.replace(/_/g, ' ')).join(', ')}*` : null;
}

function toolsNote(message: IMessage): string | null {
  if (!message.tools.length) {
    return null;
  }
  const lines = message.tools.map(tool => {
    const detail = toolSummary(tool.name, tool.input).replace(/`/g, "'");
    return (
      `- **${tool.name || 'tool'}**` +
      (detail ? ` \`${detail}\`` : '') +
      (tool.is_error ? ' (failed)' : '')
    );
  });
  return 'Tools used:\n\n' + lines.join('\n');
}

function notes(message: IMessage): string[] {
  const result = (message.notices ?? []).map(notice => `> ${notice}`);
  const tools = toolsNote(message);
  if (tools) {
    result.push(tools);
  }
  if (message.error) {
    result.push(`> ⚠ ${message.error.code}: ${message.error.message}`);
  }
  return result;
}

function messagesOf(session: ISession): IMessage[] {
  return session.pending_message
    ? [...session.messages, session.pending_message]
    : [...session.messages];
}

function header(session: ISession): string[] {
  const usage = session.usage;
  const count = (n: number): string => Math.round(n).toLocaleString('en-US');
  return [
    `# ${sessionTitle(session)}`,
    [
      `- Notebook: \`${session.path}\``,
      `- Provider: ${session.provider}`,
      `- Conversation: \`${session.id}\``,
      `- Started ${stamp(session.created_at)}, last active ${stamp(session.updated_at)}`,
      `- Usage: ${count(usage.input_tokens)} tokens in, ${count(usage.output_tokens)} out, ` +
        `$${usage.cost_usd.toFixed(4)}`
    ].join('\n')
  ];
}

/** A readable transcript: a header, then each message under a heading. */
export function sessionToMarkdown(session: ISession): string {
  const parts = header(session);
  for (const message of messagesOf(session)) {
    parts.push(`## ${heading(message)}`);
    const context = contextNote(message);
    if (context) {
      parts.push(context);
    }
    if (message.content.trim()) {
      parts.push(message.content.trim());
    }
    parts.push(...notes(message));
  }
  return parts.join('\n\n') + '\n';
}

/**
 * `text` as Markdown and code pieces, in order: fenced blocks in Python (or untagged) become
 * code; blocks in other languages stay in the Markdown, since the kernel would run them as
 * Python.
 */
export function splitCode(text: string): IPiece[] {
  const pieces: IPiece[] = [];
  let position = 0;
  for (const match of text.matchAll(CODE_BLOCK)) {
    if (!PYTHON_LANGS.has(match[1].toLowerCase())) {
      continue;
    }
    const start = match.index ?? 0;
    const before = text.slice(position, start).trim();
    if (before) {
      pieces.push({ kind: 'markdown', text: before });
    }
    const code = match[2].replace(/\n+$/, '');
    if (code.trim()) {
      pieces.push({ kind: 'code', text: code });
    }
    // the closing fence: skip it and the rest of its line
    const end = text.indexOf('\n', start + match[0].length);
    position = end < 0 ? text.length : end + 1;
  }
  const rest = text.slice(position).trim();
  if (rest) {
    pieces.push({ kind: 'markdown', text: rest });
  }
  return pieces;
}

function cellId(): string {
  let id = '';
  while (id.length < 8) {
    id += Math.floor(Math.random() * 16).toString(16);
  }
  return id;
}

function cell(kind: 'markdown' | 'code', source: string): ICell {
  const result: ICell = { cell_type: kind, id: cellId(), metadata: {}, source };
  if (kind === 'code') {
    result.execution_count = null;
    result.outputs = [];
  }
  return result;
}

export interface INotebookOptions {
  /** The kernelspec of the notebook the conversation is about (else Python 3's). */
  kernelspec?: unknown;
  language_info?: unknown;
}

/** A notebook (nbformat 4.5) of the conversation. */
export function sessionToNotebook(
  session: ISession,
  options: INotebookOptions = {}
): INotebookJSON {
  const cells = [cell('markdown', header(session).join('\n\n'))];
  for (const message of messagesOf(session)) {
    const head = [`**${heading(message)}**`];
    const context = contextNote(message);
    if (context) {
      head.push(context);
    }
    let pieces: IPiece[];
    if (message.role === 'assistant') {
      pieces = splitCode(message.content);
    } else {
      // the user's own code blocks are what they asked about: kept as written
      const text = message.content.trim();
      pieces = text ? [{ kind: 'markdown', text }] : [];
    }
    // The heading shares the first Markdown piece's cell, so a short reply is one cell.
    if (pieces.length && pieces[0].kind === 'markdown') {
      head.push(pieces.shift()!.text);
    }
    cells.push(cell('markdown', head.join('\n\n')));
    cells.push(...pieces.map(piece => cell(piece.kind, piece.text)));
    const extra = notes(message);
    if (extra.length) {
      cells.push(cell('markdown', extra.join('\n\n')));
    }
  }
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      kernelspec: options.kernelspec ?? { ...DEFAULT_KERNELSPEC },
      language_info: options.language_info ?? { name: 'python' },
      jupyter_assistant: {
        session_id: session.id,
        notebook: session.path,
        provider: session.provider
      }
    },
    cells
  };
}

/** `analysis/q3.ipynb` -> folder `analysis`, stem `q3`. */
export function splitPath(path: string): { folder: string; stem: string } {
  const cut = path.lastIndexOf('/');
  const folder = cut >= 0 ? path.slice(0, cut) : '';
  const name = cut >= 0 ? path.slice(cut + 1) : path;
  const dot = name.lastIndexOf('.');
  return { folder, stem: dot > 0 ? name.slice(0, dot) : name };
}

/** The export's file name: `<stem>-conversation<ext>`, then `-2`, `-3`, ... */
export function exportName(notebookPath: string, ext: string, attempt = 1): string {
  const { stem } = splitPath(notebookPath);
  return `${stem}-conversation${attempt > 1 ? `-${attempt}` : ''}${ext}`;
}

/**
 * The first path beside the notebook that does not exist yet, so an export never overwrites
 * a file. `exists` asks the server.
 */
export async function freePathBeside(
  notebookPath: string,
  ext: string,
  exists: (path: string) => Promise<boolean>,
  maxAttempts = 100
): Promise<string> {
  const { folder } = splitPath(notebookPath);
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    const name = exportName(notebookPath, ext, attempt);
    const path = folder ? `${folder}/${name}` : name;
    if (!(await exists(path))) {
      return path;
    }
  }
  throw new Error(`No free file name for the export beside ${notebookPath}`);
}
