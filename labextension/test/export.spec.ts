import {
  exportName,
  freePathBeside,
  sessionToMarkdown,
  sessionToNotebook,
  splitCode
} from '../src/export';
import type { ISession } from '../src/types';
import { message } from './fake-server';

const REPLY =
  'Here is the sum per region:\n\n' +
  "```python\nimport pandas as pd\ndf = pd.read_csv('sales.csv')\n" +
  "df.groupby('region').amount.sum()\n```\n\n" +
  'And the files:\n\n```bash\nls *.csv\n```\n\nThen plot it:\n\n' +
  '```\ndf.plot()\n```\nDone.';

function session(extra: Partial<ISession> = {}): ISession {
  return {
    version: 1,
    id: '00000000-0000-4000-8000-000000000001',
    path: 'analysis/q3.ipynb',
    working_dir: '/root/analysis',
    provider: 'claude',
    provider_session_id: 'abc',
    context: {},
    messages: [
      message('user', 'Sum the amounts per region', 't1', {
        context: { active_cell: { index: 0 } },
        created_at: '2025-03-01T09:30:12.345Z'
      }),
      message('assistant', REPLY, 't1', {
        created_at: '2025-03-01T09:30:20.000Z',
        tools: [{ id: 'x', name: 'Bash', input: { command: 'ls' }, result: 'q3', is_error: false }]
      })
    ],
    pending_message: null,
    title: 'Sum per region',
    created_at: '2025-03-01T09:30:12.345Z',
    updated_at: '2025-03-01T09:31:00.000Z',
    usage: { input_tokens: 3456, output_tokens: 67, cost_usd: 0.019 },
    status: 'idle',
    ...extra
  };
}

describe('splitCode', () => {
  it('makes Python and untagged blocks code, and keeps other languages in the Markdown', () => {
    expect(splitCode(REPLY)).toEqual([
      { kind: 'markdown', text: 'Here is the sum per region:' },
      {
        kind: 'code',
        text: "import pandas as pd\ndf = pd.read_csv('sales.csv')\ndf.groupby('region').amount.sum()"
      },
      { kind: 'markdown', text: 'And the files:\n\n```bash\nls *.csv\n```\n\nThen plot it:' },
      { kind: 'code', text: 'df.plot()' },
      { kind: 'markdown', text: 'Done.' }
    ]);
  });

  it('leaves text without blocks whole, and drops empty blocks', () => {
    expect(splitCode('just words')).toEqual([{ kind: 'markdown', text: 'just words' }]);
    expect(splitCode('```python\n\n```')).toEqual([]);
    expect(splitCode('')).toEqual([]);
  });
});

describe('sessionToMarkdown', () => {
  it('is a transcript with a header, a heading per message, tools and errors', () => {
    const failed = session();
    failed.messages.push(
      message('user', 'again?', 't2', { created_at: '2025-03-01T10:00:00.000Z' }),
      message('assistant', 'partial', 't2', {
        status: 'error',
        created_at: '2025-03-01T10:00:01.000Z',
        error: { code: 'not_authenticated', message: 'run claude /login' }
      })
    );
    const text = sessionToMarkdown(failed);
    expect(text.startsWith('# Sum per region\n\n- Notebook: `analysis/q3.ipynb`\n')).toBe(true);
    expect(text).toContain('- Usage: 3,456 tokens in, 67 out, $0.0190');
    expect(text).toContain(
      '## You · 2025-03-01 09:30 UTC\n\n*Sent with: active cell*\n\nSum the amounts per region'
    );
    expect(text).toContain('## Assistant · 2025-03-01 09:30 UTC\n\n' + REPLY);
    expect(text).toContain('Tools used:\n\n- **Bash** `ls`');
    expect(text).toContain(
      '## Assistant · 2025-03-01 10:00 UTC (failed)\n\npartial\n\n' +
        '> ⚠ not_authenticated: run claude /login\n'
    );
  });

  it('names an untitled conversation after its notebook and includes a pending message', () => {
    const pending = session({
      title: '',
      messages: [],
      pending_message: message('user', 'still waiting', 't9', { status: 'complete' })
    });
    const text = sessionToMarkdown(pending);
    expect(text.startsWith('# Conversation about q3.ipynb\n')).toBe(true);
    expect(text).toContain('still waiting');
  });
});

describe('sessionToNotebook', () => {
  it('is an nbformat 4.5 notebook: Markdown cells, code cells for the Python blocks', () => {
    const nb = sessionToNotebook(session());
    expect(nb.nbformat).toBe(4);
    expect(nb.nbformat_minor).toBe(5);
    expect(nb.cells.map(c => c.cell_type)).toEqual([
      'markdown', // header
      'markdown', // the question
      'markdown', // the reply's heading and first paragraph
      'code',
      'markdown',
      'code',
      'markdown',
      'markdown' // the tools it used
    ]);
    const code = nb.cells.filter(c => c.cell_type === 'code');
    expect(code.map(c => c.source)).toEqual([
      "import pandas as pd\ndf = pd.read_csv('sales.csv')\ndf.groupby('region').amount.sum()",
      'df.plot()'
    ]);
    for (const cell of code) {
      expect(cell.outputs).toEqual([]);
      expect(cell.execution_count).toBeNull();
    }
    for (const cell of nb.cells) {
      expect(cell.id).toMatch(/^[a-zA-Z0-9-_]{1,64}$/); // nbformat 4.5's cell id rule
      expect(cell.metadata).toEqual({});
    }
    expect(new Set(nb.cells.map(c => c.id)).size).toBe(nb.cells.length);
    expect(nb.cells[2].source).toBe(
      '**Assistant · 2025-03-01 09:30 UTC**\n\nHere is the sum per region:'
    );
    expect(nb.metadata.kernelspec).toEqual({
      display_name: 'Python 3',
      language: 'python',
      name: 'python3'
    });
    expect(nb.metadata.jupyter_assistant).toEqual({
      session_id: '00000000-0000-4000-8000-000000000001',
      notebook: 'analysis/q3.ipynb',
      provider: 'claude'
    });
  });

  it("takes the kernelspec of the conversation's notebook", () => {
    const kernelspec = { name: 'ir', display_name: 'R', language: 'R' };
    const nb = sessionToNotebook(session(), { kernelspec, language_info: { name: 'R' } });
    expect(nb.metadata.kernelspec).toEqual(kernelspec);
    expect(nb.metadata.language_info).toEqual({ name: 'R' });
  });
});

describe('file names', () => {
  it('puts the export beside the notebook without overwriting anything', async () => {
    expect(exportName('analysis/q3.ipynb', '.md')).toBe('q3-conversation.md');
    const taken = new Set(['analysis/q3-conversation.ipynb', 'analysis/q3-conversation-2.ipynb']);
    const asked: string[] = [];
    const exists = async (path: string): Promise<boolean> => {
      asked.push(path);
      return taken.has(path);
    };
    expect(await freePathBeside('analysis/q3.ipynb', '.ipynb', exists)).toBe(
      'analysis/q3-conversation-3.ipynb'
    );
    expect(asked).toHaveLength(3);
    expect(await freePathBeside('top.ipynb', '.ipynb', exists)).toBe('top-conversation.ipynb');
    await expect(freePathBeside('a/b.ipynb', '.ipynb', async () => true, 3)).rejects.toThrow(
      'No free file name'
    );
  });
});
