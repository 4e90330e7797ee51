import {
  conversationLabel,
  displayValue,
  formatUsage,
  isShellCommand,
  notebookFolder,
  toolSummary,
  turnErrorText
} from '../src/format';

describe('notebookFolder and isShellCommand', () => {
  it('names the folder a shell command ran in, relative to the server root', () => {
    expect(notebookFolder('analysis/q3.ipynb')).toBe('analysis/');
    expect(notebookFolder('a/b/c.ipynb')).toBe('a/b/');
    expect(notebookFolder('q3.ipynb')).toBe('/');
    expect(notebookFolder('/q3.ipynb')).toBe('/');
    expect(isShellCommand('Bash', { command: 'pwd' })).toBe(true);
    expect(isShellCommand('shell', { command: 'ls' })).toBe(true);
    expect(isShellCommand('Read', { file_path: 'x' })).toBe(false);
  });

  it('gives the whole summary when asked to', () => {
    const command = 'echo ' + 'a'.repeat(300);
    expect(toolSummary('Bash', { command }, Infinity)).toBe(command);
  });
});

describe('toolSummary', () => {
  it("names what the call does from the tool's key field", () => {
    expect(toolSummary('Bash', { command: 'pwd', description: 'Print working directory' })).toBe(
      'pwd'
    );
    expect(toolSummary('Read', { file_path: '/root/analysis/sales.csv', limit: 5 })).toBe(
      '/root/analysis/sales.csv'
    );
    expect(toolSummary('Grep', { pattern: 'def main', path: '.' })).toBe('def main');
  });

  it('falls back to the first string, then JSON, on one bounded line', () => {
    expect(toolSummary('mcp__thing', { count: 2, target: 'x\n  y' })).toBe('x y');
    expect(toolSummary('Other', { n: 1 })).toBe('{"n":1}');
    const long = toolSummary('Bash', { command: 'echo ' + 'a'.repeat(300) });
    expect(long).toHaveLength(100);
    expect(long.endsWith('…')).toBe(true);
    expect(toolSummary('Bash', null)).toBe('');
  });
});

describe('displayValue', () => {
  it('shows strings as they are, text blocks joined, the rest as JSON', () => {
    expect(displayValue('/root/analysis')).toBe('/root/analysis');
    expect(
      displayValue([
        { type: 'text', text: 'a' },
        { type: 'text', text: 'b' }
      ])
    ).toBe('a\nb');
    expect(displayValue({ command: 'pwd' })).toBe('{\n  "command": "pwd"\n}');
    expect(displayValue(undefined)).toBe('');
  });
});

describe('formatUsage', () => {
  it('shows tokens and cost in dollars', () => {
    expect(formatUsage({ input_tokens: 1234, output_tokens: 56, cost_usd: 0.0123 })).toBe(
      '1,234 in · 56 out tokens · $0.01'
    );
    expect(formatUsage({ input_tokens: 1, output_tokens: 2, cost_usd: 0.00042 })).toBe(
      '1 in · 2 out tokens · $0.0004'
    );
    expect(formatUsage({ input_tokens: 0, output_tokens: 0, cost_usd: 0 })).toBe(
      '0 in · 0 out tokens · $0'
    );
  });
});

describe('conversationLabel', () => {
  it('uses the title, or says it has none', () => {
    const now = new Date('2025-03-04T12:00:00Z');
    expect(conversationLabel('  ', 'not a date', now)).toBe('Untitled conversation');
    expect(conversationLabel('list csv files', '2025-01-02T10:00:00Z', now)).toMatch(
      /^list csv files \(.+\)$/
    );
  });
});

describe('turnErrorText', () => {
  const fix = 'Claude Code is not logged in. Run `claude` in a terminal and /login.';
  it('points to the fix the panel already shows instead of repeating it', () => {
    expect(turnErrorText({ code: 'not_authenticated', message: fix }, fix)).toBe(
      'This turn could not run: see the fix above.'
    );
  });
  it('keeps any other error as it is', () => {
    expect(turnErrorText({ code: 'not_authenticated', message: fix }, null)).toBe(fix);
    expect(turnErrorText({ code: 'timeout', message: 'Timed out.' }, fix)).toBe('Timed out.');
  });
});
