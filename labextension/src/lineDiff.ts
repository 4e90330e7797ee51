/**
 * A unified line diff of two texts (a cell's source before and after an edit), by the longest
 * common subsequence of their lines. Small on purpose: cells are short, and a pair of texts too
 * large for the table shows as the old lines removed and the new ones added.
 */

export type DiffLineKind = 'context' | 'add' | 'remove' | 'hunk';

export interface IDiffLine {
  kind: DiffLineKind;
  /** The line without its `+`/`-`/` ` mark (a hunk's header: `@@ -1,3 +1,4 @@`). */
  text: string;
  /** 1-based line numbers in the old and the new text (none for a hunk header). */
  oldLine?: number;
  newLine?: number;
}

/** Past this many cells of the LCS table, the changed middle is not matched line by line. */
const MAX_TABLE = 4_000_000;

/** The lines of a text: `a\nb\n` and `a\nb` both have two. An empty text has none. */
export function splitLines(text: string): string[] {
  if (text === '') {
    return [];
  }
  const lines = text.split(/\r\n|\n|\r/);
  if (lines[lines.length - 1] === '') {
    lines.pop();
  }
  return lines;
}

type Op = { kind: 'context' | 'add' | 'remove'; text: string };

/** Every line of both texts, in order, marked as kept, added or removed. */
export function diffOps(before: string, after: string): Op[] {
  const a = splitLines(before);
  const b = splitLines(after);
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) {
    start++;
  }
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const ops: Op[] = a.slice(0, start).map(text => ({ kind: 'context', text }));
  ops.push(...middle(a.slice(start, endA), b.slice(start, endB)));
  ops.push(...a.slice(endA).map(text => ({ kind: 'context' as const, text })));
  return ops;
}

function middle(a: string[], b: string[]): Op[] {
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0 || n * m > MAX_TABLE) {
    return [
      ...a.map(text => ({ kind: 'remove' as const, text })),
      ...b.map(text => ({ kind: 'add' as const, text }))
    ];
  }
  // lcs[i][j]: the length of the longest common subsequence of a[i:] and b[j:].
  const width = m + 1;
  const lcs = new Uint32Array((n + 1) * width);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * width + j] =
        a[i] === b[j]
          ? lcs[(i + 1) * width + j + 1] + 1
          : Math.max(lcs[(i + 1) * width + j], lcs[i * width + j + 1]);
    }
  }
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      ops.push({ kind: 'context', text: a[i] });
      i++;
      j++;
    } else if (lcs[(i + 1) * width + j] >= lcs[i * width + j + 1]) {
      ops.push({ kind: 'remove', text: a[i++] });
    } else {
      ops.push({ kind: 'add', text: b[j++] });
    }
  }
  while (i < n) {
    ops.push({ kind: 'remove', text: a[i++] });
  }
  while (j < m) {
    ops.push({ kind: 'add', text: b[j++] });
  }
  // Removals before additions within a change, as unified diffs show them.
  return regroup(ops);
}

function regroup(ops: Op[]): Op[] {
  const out: Op[] = [];
  let removed: Op[] = [];
  let added: Op[] = [];
  const flush = (): void => {
    out.push(...removed, ...added);
    removed = [];
    added = [];
  };
  for (const op of ops) {
    if (op.kind === 'context') {
      flush();
      out.push(op);
    } else {
      (op.kind === 'remove' ? removed : added).push(op);
    }
  }
  flush();
  return out;
}

/**
 * The unified diff of `before` -> `after`: hunks with `context` unchanged lines around each
 * change, each under its `@@ -a,b +c,d @@` header. Equal texts give no line.
 */
export function unifiedDiff(before: string, after: string, context = 3): IDiffLine[] {
  const ops = diffOps(before, after);
  const numbered: IDiffLine[] = [];
  let oldLine = 0;
  let newLine = 0;
  for (const op of ops) {
    if (op.kind === 'context') {
      numbered.push({ kind: 'context', text: op.text, oldLine: ++oldLine, newLine: ++newLine });
    } else if (op.kind === 'remove') {
      numbered.push({ kind: 'remove', text: op.text, oldLine: ++oldLine });
    } else {
      numbered.push({ kind: 'add', text: op.text, newLine: ++newLine });
    }
  }
  // The ranges of lines to show: each change with its context, overlapping ranges merged.
  const ranges: [number, number][] = [];
  numbered.forEach((line, k) => {
    if (line.kind === 'context') {
      return;
    }
    const from = Math.max(0, k - context);
    const to = Math.min(numbered.length, k + context + 1);
    const last = ranges[ranges.length - 1];
    if (last && from <= last[1]) {
      last[1] = Math.max(last[1], to);
    } else {
      ranges.push([from, to]);
    }
  });
  const out: IDiffLine[] = [];
  for (const [from, to] of ranges) {
    const lines = numbered.slice(from, to);
    out.push({ kind: 'hunk', text: hunkHeader(lines, numbered, from) });
    out.push(...lines);
  }
  return out;
}

function hunkHeader(lines: IDiffLine[], all: IDiffLine[], from: number): string {
  const oldCount = lines.filter(l => l.kind !== 'add').length;
  const newCount = lines.filter(l => l.kind !== 'remove').length;
  // Where the hunk starts in each text (for an empty side: the line before it, as diff does).
  let oldBefore = 0;
  let newBefore = 0;
  for (let k = 0; k < from; k++) {
    if (all[k].kind !== 'add') {
      oldBefore++;
    }
    if (all[k].kind !== 'remove') {
      newBefore++;
    }
  }
  const range = (before: number, count: number): string =>
    count === 1 ? `${before + 1}` : `${count === 0 ? before : before + 1},${count}`;
  return `@@ -${range(oldBefore, oldCount)} +${range(newBefore, newCount)} @@`;
}

/** How many lines a diff adds and removes. */
export function diffStats(lines: IDiffLine[]): { added: number; removed: number } {
  return {
    added: lines.filter(l => l.kind === 'add').length,
    removed: lines.filter(l => l.kind === 'remove').length
  };
}

/** A diff line as text, with its mark: `+x`, `-y`, ` z`, or the hunk header. */
export function diffLineText(line: IDiffLine): string {
  const mark = { context: ' ', add: '+', remove: '-', hunk: '' }[line.kind];
  return mark + line.text;
}
