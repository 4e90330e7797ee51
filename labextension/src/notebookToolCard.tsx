/**
 * The card of a notebook tool call (the `notebook` MCP server's read_notebook, insert_cell,
 * edit_cell, delete_cell, run_cell, kernel_variables): what it did in words ("Edited cell 2"),
 * the cell's source, an edit's line diff, a run's output, and "Go to cell", which selects the
 * cell in the session's notebook. Cell numbers are the tools' indexes, counted from 0, as the
 * agent speaks of them.
 */

import * as React from 'react';

import type { CellPlace, ICellRef, INotebookCells } from './cellLocator';
import { displayValue } from './format';
import { diffLineText, diffStats, IDiffLine, splitLines, unifiedDiff } from './lineDiff';
import type { IToolCall } from './types';

export const NOTEBOOK_TOOLS = [
  'read_notebook',
  'insert_cell',
  'edit_cell',
  'delete_cell',
  'run_cell',
  'kernel_variables'
] as const;

export type NotebookTool = (typeof NOTEBOOK_TOOLS)[number];

/** The card's state, as the generic tool card names it. */
export type CallState = 'running' | 'done' | 'error' | 'stopped' | 'no result';

/** A source or diff longer than this many lines shows folded, with a "Show all" button. */
export const FOLD_LINES = 40;

/**
 * The notebook tool a call's name names, whichever provider's spelling: Claude Code's
 * `mcp__notebook__edit_cell`, Gemini CLI's `mcp_notebook_edit_cell`, Codex's
 * `notebook.edit_cell`. Null for any other tool.
 */
export function notebookTool(name: string): NotebookTool | null {
  const match = /^(?:mcp__notebook__|mcp_notebook_|notebook\.|notebook__)([a-z_]+)$/.exec(
    name || ''
  );
  const tool = match?.[1];
  return tool && (NOTEBOOK_TOOLS as readonly string[]).includes(tool)
    ? (tool as NotebookTool)
    : null;
}

/**
 * A tool's result as the object it answered (the result text is its JSON; an image the tool
 * attached may follow it). Null for an error's sentence or a cut result.
 */
export function resultObject(result: unknown): Record<string, unknown> | null {
  if (result !== null && typeof result === 'object' && !Array.isArray(result)) {
    return result as Record<string, unknown>;
  }
  const text = displayValue(result).trim();
  const parsed = parseObject(text) ?? parseObject(text.slice(0, text.lastIndexOf('}') + 1));
  return parsed;
}

function parseObject(text: string): Record<string, unknown> | null {
  if (!text.startsWith('{')) {
    return null;
  }
  try {
    const value = JSON.parse(text) as unknown;
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/** What a card shows of a call, worked out from its input and result. */
export interface INotebookCallView {
  tool: NotebookTool;
  /** One line: "Inserted code cell 3", "Ran cell 4 — ok [5]", "Could not edit cell 2". */
  summary: string;
  /** The cell it acted on (none for a read, the variables, a failed insert). */
  ref: ICellRef | null;
  /** Whether "Go to cell" makes sense: the cell should still be there. */
  canGoTo: boolean;
  /** The cell's source: what was inserted or deleted, the new source of an edit. */
  source: string | null;
  /** An edit's diff (old source -> new source), when the result gave the old one. */
  diff: IDiffLine[] | null;
  /** A run's outputs as text. */
  output: string | null;
  /** A failed call's sentence. */
  error: string | null;
}

type Fields = Record<string, unknown>;

function str(fields: Fields | null, key: string): string | null {
  const value = fields?.[key];
  return typeof value === 'string' ? value : null;
}

function int(fields: Fields | null, key: string): number | null {
  const value = fields?.[key];
  return typeof value === 'number' && Number.isInteger(value) ? value : null;
}

function cellRef(result: Fields | null, input: Fields | null): ICellRef | null {
  const id = str(result, 'id') ?? str(input, 'id');
  const index = int(result, 'index') ?? (id === str(input, 'id') ? int(input, 'index') : null);
  return id || index !== null ? { id: id || null, index } : null;
}

/** "cell 2" by index, else "cell 1a2b3c" by id, else "a cell". */
function cellName(ref: ICellRef | null): string {
  if (ref?.index !== null && ref?.index !== undefined) {
    return `cell ${ref.index}`;
  }
  return ref?.id ? `cell ${ref.id}` : 'a cell';
}

const VERBS: Record<NotebookTool, [string, string, string]> = {
  // [done, under way, failed]
  read_notebook: ['Read', 'Reading', 'read'],
  insert_cell: ['Inserted', 'Inserting', 'insert'],
  edit_cell: ['Edited', 'Editing', 'edit'],
  delete_cell: ['Deleted', 'Deleting', 'delete'],
  run_cell: ['Ran', 'Running', 'run'],
  kernel_variables: ['Read', 'Reading', 'read']
};

function outputText(outputs: unknown): string | null {
  if (!Array.isArray(outputs) || outputs.length === 0) {
    return null;
  }
  const parts = outputs.map(output => {
    const o = (output ?? {}) as Fields;
    const text = str(o, 'text');
    if (text !== null) {
      return text.replace(/\n$/, '');
    }
    const images = o.images;
    return Array.isArray(images) && images.length ? `[${images.join(', ')}]` : '';
  });
  const joined = parts.filter(p => p !== '').join('\n');
  return joined || null;
}

function readSummary(input: Fields | null, result: Fields | null, verb: string): string {
  const cells = result?.cells;
  if (Array.isArray(cells)) {
    const indexes = cells
      .map(c => int((c ?? {}) as Fields, 'index'))
      .filter((i): i is number => i !== null);
    const total = int(result, 'cell_count');
    const whole = int(input, 'start') === null && int(input, 'end') === null;
    if (indexes.length === 0) {
      return whole ? `${verb} the notebook (no cells)` : `${verb} no cells`;
    }
    const first = Math.min(...indexes);
    const last = Math.max(...indexes);
    if (whole || (total !== null && first === 0 && last === total - 1)) {
      return `${verb} the notebook (${indexes.length} ${indexes.length === 1 ? 'cell' : 'cells'})`;
    }
    return first === last ? `${verb} cell ${first}` : `${verb} cells ${first}–${last}`;
  }
  const start = int(input, 'start');
  const end = int(input, 'end');
  if (start === null && end === null) {
    return `${verb} the notebook`;
  }
  if (end === null) {
    return `${verb} cells ${start} on`;
  }
  return end - 1 === (start ?? 0)
    ? `${verb} cell ${end - 1}`
    : `${verb} cells ${start ?? 0}–${end - 1}`;
}

function variablesSummary(input: Fields | null, result: Fields | null, verb: string): string {
  const names = Array.isArray(input?.names)
    ? (input.names as unknown[]).filter((n): n is string => typeof n === 'string')
    : [];
  if (names.length) {
    const shown = names.slice(0, 5).join(', ');
    return `${verb} ${names.length === 1 ? 'variable' : 'variables'} ${shown}${names.length > 5 ? ', …' : ''}`;
  }
  const found = Array.isArray(result?.variables) ? (result.variables as unknown[]).length : null;
  if (found !== null) {
    return `${verb} the kernel's variables (${found})`;
  }
  return `${verb} the kernel's variables`;
}

/** What the card of `call` (a notebook tool's call) shows. */
export function describeNotebookCall(
  tool: NotebookTool,
  call: IToolCall,
  state: CallState
): INotebookCallView {
  const input =
    call.input && typeof call.input === 'object' && !Array.isArray(call.input)
      ? (call.input as Fields)
      : null;
  const failed = state === 'error';
  const result = failed || state !== 'done' ? null : resultObject(call.result);
  const [doneVerb, ongoingVerb, failedVerb] = VERBS[tool];
  const verb = state === 'done' ? doneVerb : ongoingVerb;
  const view: INotebookCallView = {
    tool,
    summary: '',
    ref: null,
    canGoTo: false,
    source: null,
    diff: null,
    output: null,
    error: failed ? displayValue(call.result) || 'The tool failed.' : null
  };
  const ongoing = state === 'running' ? '…' : '';
  switch (tool) {
    case 'read_notebook':
      view.summary = readSummary(input, result, failed ? 'Could not read' : verb) + ongoing;
      return view;
    case 'kernel_variables':
      view.summary = variablesSummary(input, result, failed ? 'Could not read' : verb) + ongoing;
      return view;
    case 'insert_cell': {
      const type = str(input, 'cell_type') ?? 'code';
      view.ref = result ? cellRef(result, null) : null;
      view.source = str(input, 'source');
      const where = view.ref
        ? cellName(view.ref)
        : int(input, 'index') !== null
          ? `cell at ${int(input, 'index')}`
          : str(input, 'after_id')
            ? `cell after cell ${str(input, 'after_id')}`
            : 'cell at the end';
      view.summary = failed
        ? `Could not insert a ${type} cell`
        : `${verb} ${type} ${where}${ongoing}`;
      view.canGoTo = view.ref !== null;
      return view;
    }
    case 'edit_cell': {
      view.ref = cellRef(result, input);
      view.source = str(input, 'source');
      const before = str(result, 'before');
      if (before !== null && view.source !== null) {
        view.diff = unifiedDiff(before, view.source);
      }
      break;
    }
    case 'delete_cell': {
      view.ref = cellRef(result, input);
      view.source = str(result, 'source');
      const type = str(result, 'cell_type');
      if (!failed && state === 'done' && type) {
        view.summary = `${verb} ${type} ${cellName(view.ref)}`;
        return view;
      }
      break;
    }
    case 'run_cell': {
      view.ref = cellRef(result, input);
      view.output = outputText(result?.outputs);
      const status = str(result, 'status');
      if (status) {
        const count = int(result, 'execution_count');
        const said = status === 'running' ? 'still running' : status;
        view.summary = `${verb} ${cellName(view.ref)} — ${said}${count !== null ? ` [${count}]` : ''}`;
        view.canGoTo = true;
        return view;
      }
      break;
    }
  }
  view.summary = failed
    ? `Could not ${failedVerb} ${cellName(view.ref)}`
    : `${verb} ${cellName(view.ref)}${ongoing}`;
  view.canGoTo = !failed && tool !== 'delete_cell' && view.ref !== null;
  return view;
}

/** A block of lines, the first FOLD_LINES of a long one shown until "Show all". */
function Folded(props: {
  label: string;
  className: string;
  count: number;
  children: (limit: number) => React.ReactNode;
}): JSX.Element {
  const [all, setAll] = React.useState(false);
  const id = React.useId();
  const folds = props.count > FOLD_LINES;
  const limit = folds && !all ? FOLD_LINES : props.count;
  return (
    <>
      <pre id={id} className={props.className} aria-label={props.label}>
        {props.children(limit)}
      </pre>
      {folds && (
        <button
          type="button"
          className="jp-Assistant-nbToolFold"
          aria-controls={id}
          aria-expanded={all}
          onClick={() => setAll(!all)}
        >
          {all ? 'Show fewer lines' : `Show all ${props.count} lines`}
        </button>
      )}
    </>
  );
}

function DiffView(props: { lines: IDiffLine[]; cell: string }): JSX.Element {
  const { lines } = props;
  const { added, removed } = diffStats(lines);
  const label =
    `Changes to ${props.cell}: ${added} ${added === 1 ? 'line' : 'lines'} added, ` +
    `${removed} removed`;
  if (lines.length === 0) {
    return <div className="jp-Assistant-nbToolNote">The source is unchanged.</div>;
  }
  return (
    <>
      <div className="jp-Assistant-toolLabel">
        Changes <span className="jp-Assistant-nbToolStat jp-mod-add">+{added}</span>{' '}
        <span className="jp-Assistant-nbToolStat jp-mod-remove">−{removed}</span>
      </div>
      <Folded label={label} className="jp-Assistant-nbToolDiff" count={lines.length}>
        {limit =>
          lines.slice(0, limit).map((line, i) => (
            <span key={i} className={`jp-Assistant-nbDiffLine jp-mod-${line.kind}`}>
              {diffLineText(line) + '\n'}
            </span>
          ))
        }
      </Folded>
    </>
  );
}

function Lines(props: {
  text: string;
  label: string;
  title: string;
  className: string;
}): JSX.Element {
  const lines = splitLines(props.text);
  return (
    <>
      <div className="jp-Assistant-toolLabel">{props.title}</div>
      <Folded label={props.label} className={props.className} count={lines.length}>
        {limit => lines.slice(0, limit).join('\n')}
      </Folded>
    </>
  );
}

/** "Go to cell", disabled with a reason when the cell is no longer in the notebook. */
export function GoToCell(props: {
  cells: INotebookCells;
  path: string;
  cellRef: ICellRef;
  cell: string;
}): JSX.Element {
  const { cells, path, cellRef: ref } = props;
  const [, setTick] = React.useState(0);
  const [failed, setFailed] = React.useState<CellPlace | null>(null);
  const [going, setGoing] = React.useState(false);
  React.useEffect(() => cells.watch(path, () => setTick(t => t + 1)), [cells, path]);
  const place = cells.place(path, ref);
  const gone = place === 'gone' || (place === 'closed' && failed === 'gone');
  const title = gone
    ? 'This cell is no longer in the notebook: it was deleted'
    : place === 'closed'
      ? 'Open the notebook and select this cell'
      : 'Select this cell in the notebook and scroll to it';
  const go = async (): Promise<void> => {
    setGoing(true);
    try {
      setFailed(await cells.goTo(path, ref));
    } catch {
      setFailed('closed');
    } finally {
      setGoing(false);
    }
  };
  return (
    <button
      type="button"
      className="jp-Assistant-nbToolGo"
      aria-label={gone ? `${props.cell} was deleted` : `Go to ${props.cell} in the notebook`}
      title={title}
      disabled={gone || going}
      data-place={gone ? 'gone' : place}
      onClick={() => void go()}
    >
      {gone ? 'Cell deleted' : 'Go to cell'}
    </button>
  );
}

/** Where the card's notebook is and how to reach its cells (null: no "Go to cell"). */
export interface INotebookCellsBinding {
  cells: INotebookCells;
  path: string;
}

export function NotebookToolCard(props: {
  tool: NotebookTool;
  call: IToolCall;
  state: CallState;
  notebook?: INotebookCellsBinding | null;
}): JSX.Element {
  const { tool, call, state, notebook } = props;
  const view = describeNotebookCall(tool, call, state);
  const cell = cellName(view.ref);
  // A run's result has no source: the open notebook's cell has it.
  const source =
    view.source ??
    (tool === 'run_cell' && view.ref && notebook
      ? notebook.cells.source(notebook.path, view.ref)
      : null);
  const classes = ['jp-Assistant-tool', 'jp-Assistant-nbTool'];
  if (state === 'error') {
    classes.push('jp-mod-error');
  } else if (state === 'stopped') {
    classes.push('jp-mod-stopped');
  }
  const sourceTitle = tool === 'delete_cell' ? 'Deleted source' : 'Source';
  return (
    <div
      className={classes.join(' ')}
      role="group"
      aria-label={`Notebook tool ${tool}: ${view.summary} (${state})`}
      data-state={state}
      data-tool={tool}
    >
      <div className="jp-Assistant-nbToolHead">
        <span className="jp-Assistant-nbToolSummary">{view.summary}</span>
        <span className="jp-Assistant-toolState">{state}</span>
        {view.canGoTo && view.ref && notebook && (
          <GoToCell cells={notebook.cells} path={notebook.path} cellRef={view.ref} cell={cell} />
        )}
      </div>
      <div className="jp-Assistant-toolBody">
        {view.error && <pre className="jp-Assistant-nbToolError">{view.error}</pre>}
        {view.diff ? (
          <DiffView lines={view.diff} cell={cell} />
        ) : (
          source !== null &&
          source !== '' && (
            <Lines
              text={source}
              title={sourceTitle}
              label={`${sourceTitle} of ${cell}`}
              className="jp-Assistant-nbToolSource"
            />
          )
        )}
        {view.output !== null && (
          <Lines
            text={view.output}
            title="Output"
            label={`Output of ${cell}`}
            className="jp-Assistant-nbToolOutput"
          />
        )}
        <details className="jp-Assistant-nbToolRaw">
          <summary>Call details</summary>
          <div className="jp-Assistant-toolLabel">Tool</div>
          <code className="jp-Assistant-nbToolName">{call.name}</code>
          <div className="jp-Assistant-toolLabel">Input</div>
          <pre>{displayValue(call.input)}</pre>
          {call.result !== undefined && call.result !== null && (
            <>
              <div className="jp-Assistant-toolLabel">{state === 'error' ? 'Error' : 'Result'}</div>
              <pre>{displayValue(call.result)}</pre>
            </>
          )}
        </details>
      </div>
    </div>
  );
}
