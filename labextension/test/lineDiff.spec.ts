// The line diff of a cell's edit: unified hunks as `diff -u` writes them.

import { execFileSync } from 'child_process';
import { mkdtempSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';

import { diffLineText, diffStats, splitLines, unifiedDiff } from '../src/lineDiff';

function text(before: string, after: string, context = 3): string[] {
  return unifiedDiff(before, after, context).map(diffLineText);
}

/** What GNU diff says, without its two file header lines (null where diff is not installed). */
function gnuDiff(before: string, after: string): string[] | null {
  const dir = mkdtempSync(join(tmpdir(), 'linediff-'));
  writeFileSync(join(dir, 'a'), before);
  writeFileSync(join(dir, 'b'), after);
  try {
    execFileSync('diff', ['-u', join(dir, 'a'), join(dir, 'b')]);
    return []; // equal
  } catch (err) {
    const e = err as { status?: number; stdout?: Buffer };
    if (e.status !== 1 || !e.stdout) {
      return null;
    }
    return e.stdout
      .toString()
      .split('\n')
      .slice(2)
      .filter(line => line !== '' && !line.startsWith('\\'));
  }
}

describe('splitLines', () => {
  it('does not count a final newline as a line', () => {
    expect(splitLines('')).toEqual([]);
    expect(splitLines('a')).toEqual(['a']);
    expect(splitLines('a\nb\n')).toEqual(['a', 'b']);
    expect(splitLines('a\r\nb')).toEqual(['a', 'b']);
    expect(splitLines('\n')).toEqual(['']);
  });
});

describe('unifiedDiff', () => {
  it('gives nothing for equal texts', () => {
    expect(unifiedDiff('x = 1\ny = 2', 'x = 1\ny = 2')).toEqual([]);
    expect(unifiedDiff('', '')).toEqual([]);
  });

  it('shows a changed line as removed then added, with its context', () => {
    expect(text('a\nb\nc', 'a\nB\nc')).toEqual(['@@ -1,3 +1,3 @@', ' a', '-b', '+B', ' c']);
  });

  it('numbers the lines of each side', () => {
    const lines = unifiedDiff('a\nb', 'a\nc\nb');
    expect(lines.slice(1)).toEqual([
      { kind: 'context', text: 'a', oldLine: 1, newLine: 1 },
      { kind: 'add', text: 'c', newLine: 2 },
      { kind: 'context', text: 'b', oldLine: 2, newLine: 3 }
    ]);
  });

  it('writes the empty side of a hunk as diff does', () => {
    expect(text('', 'x = 1')).toEqual(['@@ -0,0 +1 @@', '+x = 1']);
    expect(text('x = 1\ny = 2', '')).toEqual(['@@ -1,2 +0,0 @@', '-x = 1', '-y = 2']);
  });

  it('splits far-apart changes into hunks and merges near ones', () => {
    const before = Array.from({ length: 20 }, (_, i) => `line ${i}`).join('\n');
    const after = before.replace('line 1\n', 'LINE 1\n').replace('line 18', 'LINE 18');
    const lines = text(before, after, 2);
    expect(lines.filter(l => l.startsWith('@@'))).toEqual(['@@ -1,4 +1,4 @@', '@@ -17,4 +17,4 @@']);
    const near = before.replace('line 5\n', 'LINE 5\n').replace('line 8\n', 'LINE 8\n');
    expect(text(before, near, 2).filter(l => l.startsWith('@@'))).toEqual(['@@ -4,8 +4,8 @@']);
  });

  it('finds the longest common lines, not only a common start and end', () => {
    const lines = text('import a\nx = 1\nprint(x)\ny = 2', 'x = 1\nz = 0\nprint(x)\ny = 3');
    expect(lines).toEqual([
      '@@ -1,4 +1,4 @@',
      '-import a',
      ' x = 1',
      '+z = 0',
      ' print(x)',
      '-y = 2',
      '+y = 3'
    ]);
    expect(diffStats(unifiedDiff('import a\nx = 1', 'x = 1\nz = 0'))).toEqual({
      added: 1,
      removed: 1
    });
  });

  it('agrees with GNU diff -u on assorted edits', () => {
    const cases: [string, string][] = [
      ['a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n', 'a\nb\nX\nd\ne\nf\ng\nh\nY\nj\n'],
      ['def f():\n    return 1\n', 'def f(x):\n    """Doc."""\n    return x\n'],
      ['1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n', '0\n1\n2\n3\n5\n6\n7\n8\n9\n10\n12\n13\n'],
      ['same\n', 'same\nmore\n'],
      ['x\n', 'y\n']
    ];
    for (const [before, after] of cases) {
      const expected = gnuDiff(before, after);
      if (expected === null) {
        return; // no diff here: the cases above cover the shape
      }
      expect(text(before, after)).toEqual(expected);
    }
  });

  it('still answers for texts too large to match line by line', () => {
    const before = Array.from({ length: 3000 }, (_, i) => `a${i}`).join('\n');
    const after = Array.from({ length: 3000 }, (_, i) => `b${i}`).join('\n');
    expect(diffStats(unifiedDiff(before, after))).toEqual({ added: 3000, removed: 3000 });
  });
});
