// Undo a turn without DOM: the changes line, the diff's lines, the later turns, the undo's
// steps against the real client (answers as the server gives them), and the store of changes.

import type { ServerConnection } from '@jupyterlab/services';

import { AssistantClient, MakeRequest } from '../src/api';
import type { ITurnChanges } from '../src/types';
import {
  changesLine,
  IUndoPrompts,
  laterTurns,
  laterTurnsText,
  notCoveredLine,
  parseUnifiedDiff,
  quoteMessage,
  TurnChangesStore,
  undoTurn
} from '../src/undo';

const SETTINGS = { baseUrl: 'http://h:1/a%40b/' } as ServerConnection.ISettings;

function changes(partial: Partial<ITurnChanges>): ITurnChanges {
  return { files: [], cells: [], not_covered: [], reverted: false, ...partial };
}

interface ICall {
  method: string;
  path: string;
  body: unknown;
}

/** A server of the two undo routes: `answer` says what each request gets. */
function server(answer: (call: ICall) => [number, unknown]): {
  calls: ICall[];
  client: AssistantClient;
} {
  const calls: ICall[] = [];
  const makeRequest: MakeRequest = async (url, init) => {
    const path = new URL(url).pathname.replace('/a%40b/api/assistant/', '');
    const call = {
      method: init.method ?? 'GET',
      path,
      body: init.body ? JSON.parse(String(init.body)) : undefined
    };
    calls.push(call);
    const [status, body] = answer(call);
    return new Response(JSON.stringify(body), { status });
  };
  return { calls, client: new AssistantClient({ serverSettings: SETTINGS, makeRequest }) };
}

describe('changesLine', () => {
  it('names each file with new and deleted marked, then the cells', () => {
    const line = changesLine(
      changes({
        files: [
          { path: 'data.csv', status: 'modified', diff: '' },
          { path: 'clean.py', status: 'added', diff: '' },
          { path: 'old.txt', status: 'deleted', diff: '' }
        ],
        cells: [
          { id: 'a', status: 'modified', diff: '' },
          { id: 'b', status: 'added', diff: '' }
        ]
      })
    );
    expect(line).toBe('Changed: data.csv, clean.py (new), old.txt (deleted), 2 cells');
  });

  it('says nothing for a turn that changed nothing', () => {
    expect(changesLine(changes({}))).toBe('');
    // Left-out paths alone are no change.
    expect(changesLine(changes({ not_covered: [{ path: 'big.bin', reason: 'too large' }] }))).toBe(
      ''
    );
  });

  it('leaves the notebook out when its cells are listed, and names it when they are not', () => {
    const nb = { path: 'nb.ipynb', status: 'modified' as const, diff: '' };
    const cell = { id: 'c1', status: 'modified' as const, diff: '' };
    expect(changesLine(changes({ files: [nb], cells: [cell] }), 'nb.ipynb')).toBe(
      'Changed: 1 cell'
    );
    expect(changesLine(changes({ files: [nb] }), 'nb.ipynb')).toBe('Changed: nb.ipynb');
  });

  it('counts the files past the limit', () => {
    const files = ['a', 'b', 'c', 'd'].map(path => ({ path, status: 'modified' as const }));
    expect(changesLine(changes({ files }), null, 2)).toBe('Changed: a, b, 2 more files');
    expect(changesLine(changes({ files: files.slice(0, 3) }), null, 2)).toBe(
      'Changed: a, b, 1 more file'
    );
  });
});

describe('notCoveredLine', () => {
  it('names what the undo cannot take back, by reason, and not the ignored names', () => {
    const line = notCoveredLine(
      changes({
        not_covered: [
          { path: '.ipynb_checkpoints', reason: 'ignored' },
          { path: '.venv', reason: 'virtualenv' },
          { path: 'data/big.bin', reason: 'too large' },
          { path: 'link.csv', reason: 'link' }
        ]
      })
    );
    expect(line).toBe('data/big.bin not covered (too large); link.csv not covered (link)');
    expect(notCoveredLine(changes({ not_covered: [{ path: '.git', reason: 'ignored' }] }))).toBe(
      ''
    );
  });

  it('counts the paths past the limit', () => {
    const not_covered = ['a', 'b', 'c'].map(path => ({ path, reason: 'too large' }));
    expect(notCoveredLine(changes({ not_covered }), 2)).toBe(
      'a, b and 1 more not covered (too large)'
    );
  });
});

describe('parseUnifiedDiff', () => {
  it('reads the server diff without its file header, with line numbers', () => {
    const lines = parseUnifiedDiff(
      '--- a/sales.csv\n+++ b/sales.csv\n@@ -1,3 +1,2 @@\n region,amount\n-north,10\n-south,20\n+west,5'
    );
    expect(lines.map(l => [l.kind, l.text])).toEqual([
      ['hunk', '@@ -1,3 +1,2 @@'],
      ['context', 'region,amount'],
      ['remove', 'north,10'],
      ['remove', 'south,20'],
      ['add', 'west,5']
    ]);
    expect(lines[1]).toMatchObject({ oldLine: 1, newLine: 1 });
    expect(lines[3]).toMatchObject({ oldLine: 3 });
    expect(lines[4]).toMatchObject({ newLine: 2 });
  });

  it('reads a deleted file, a cut diff and an empty one', () => {
    expect(parseUnifiedDiff('--- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-old')).toEqual([
      { kind: 'hunk', text: '@@ -1 +0,0 @@' },
      { kind: 'remove', text: 'old', oldLine: 1 }
    ]);
    const cut = parseUnifiedDiff('@@ -1 +1 @@\n-a\n+b\n... 12 more lines');
    expect(cut[cut.length - 1]).toEqual({ kind: 'hunk', text: '... 12 more lines' });
    expect(parseUnifiedDiff('')).toEqual([]);
  });

  it('keeps a removed line that starts like a header inside a hunk', () => {
    const lines = parseUnifiedDiff('--- a/x\n+++ b/x\n@@ -1 +1 @@\n--- not a header\n+++ nor this');
    expect(lines.map(l => [l.kind, l.text])).toEqual([
      ['hunk', '@@ -1 +1 @@'],
      ['remove', '-- not a header'],
      ['add', '++ nor this']
    ]);
  });
});

describe('later turns', () => {
  const messages = [
    { role: 'user' as const, turn_id: 't1', content: 'first' },
    { role: 'assistant' as const, turn_id: 't1', content: 'ok' },
    { role: 'user' as const, turn_id: 't2', content: 'second\nwith two lines' },
    { role: 'assistant' as const, turn_id: 't2', content: 'ok' },
    { role: 'user' as const, turn_id: 't3', content: 'third' },
    { role: 'assistant' as const, turn_id: 't3', content: 'ok' }
  ];

  it('lists the user messages of the turns after the one undone', () => {
    expect(laterTurns(messages, 't1')).toEqual([
      { turnId: 't2', text: 'second\nwith two lines' },
      { turnId: 't3', text: 'third' }
    ]);
    expect(laterTurns(messages, 't3')).toEqual([]);
    expect(laterTurns(messages, 'unknown')).toEqual([]);
    expect(laterTurns(messages, 't1', id => id === 't3')).toEqual([
      { turnId: 't2', text: 'second\nwith two lines' }
    ]);
  });

  it('quotes them on one line, cut when long', () => {
    expect(laterTurnsText(['second\nwith two lines', 'third'])).toBe(
      "This also undoes your later messages: 'second with two lines', 'third'."
    );
    expect(laterTurnsText(['only'])).toBe("This also undoes your later message: 'only'.");
    expect(quoteMessage('x'.repeat(100), 10)).toBe('xxxxxxxxx…');
  });
});

function prompts(answers: { later?: boolean; overwrite?: boolean }): IUndoPrompts & {
  asked: string[];
} {
  const asked: string[] = [];
  return {
    asked,
    confirmLater: async texts => {
      asked.push(`later: ${texts.join(' | ')}`);
      return answers.later ?? false;
    },
    confirmOverwrite: async paths => {
      asked.push(`overwrite: ${paths.join(' | ')}`);
      return answers.overwrite ?? false;
    }
  };
}

const REVERTED = { reverted: ['t1'], restored: ['data.csv'], missed: [] };

describe('undoTurn', () => {
  it('reverts at once when no later turn goes with it', async () => {
    const { calls, client } = server(() => [200, REVERTED]);
    const asks = prompts({});
    const outcome = await undoTurn(client, 's1', 't1', [], asks);
    expect(outcome).toEqual({ kind: 'undone', result: REVERTED });
    expect(asks.asked).toEqual([]);
    expect(calls).toEqual([{ method: 'POST', path: 'sessions/s1/turns/t1/revert', body: {} }]);
  });

  it('asks about the later turns first, and does nothing when told no', async () => {
    const { calls, client } = server(() => [200, REVERTED]);
    const asks = prompts({ later: false });
    expect(await undoTurn(client, 's1', 't1', ['second', 'third'], asks)).toEqual({
      kind: 'cancelled'
    });
    expect(asks.asked).toEqual(['later: second | third']);
    expect(calls).toEqual([]);
  });

  it('on a conflict asks to overwrite, then forces', async () => {
    const { calls, client } = server(call =>
      (call.body as { force?: boolean }).force
        ? [200, REVERTED]
        : [409, { message: '1 file(s) changed after the turn(s)', conflicts: ['data.csv'] }]
    );
    const asks = prompts({ later: true, overwrite: true });
    const outcome = await undoTurn(client, 's1', 't1', ['second'], asks);
    expect(outcome.kind).toBe('undone');
    expect(asks.asked).toEqual(['later: second', 'overwrite: data.csv']);
    expect(calls.map(c => c.body)).toEqual([{}, { force: true }]);
  });

  it('on a conflict told no, leaves the files', async () => {
    const { calls, client } = server(() => [409, { message: 'changed', conflicts: ['a.txt'] }]);
    expect(await undoTurn(client, 's1', 't1', [], prompts({ overwrite: false }))).toEqual({
      kind: 'cancelled'
    });
    expect(calls).toHaveLength(1);
  });

  it("gives the server's message when a turn runs (409 without conflicts)", async () => {
    const message = 'A turn is running in this session; stop it or wait, then undo.';
    const { client } = server(() => [409, { message }]);
    const asks = prompts({});
    expect(await undoTurn(client, 's1', 't1', [], asks)).toEqual({ kind: 'refused', message });
    expect(asks.asked).toEqual([]);
  });
});

/** A localStorage of a page. */
class MemoryStorage {
  items = new Map<string, string>();
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }
}

function settle(): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, 0));
}

describe('TurnChangesStore', () => {
  const data = changes({ files: [{ path: 'data.csv', status: 'modified', diff: '' }] });

  it('fetches a turn once and says when it arrived', async () => {
    const { calls, client } = server(() => [200, data]);
    const store = new TurnChangesStore(client);
    let emitted = 0;
    store.changed.connect(() => emitted++);
    expect(store.get('s1', 't1')).toEqual({ state: 'loading' });
    expect(store.get('s1', 't1')).toEqual({ state: 'loading' });
    await settle();
    expect(store.get('s1', 't1')).toEqual({ state: 'ready', changes: data });
    expect(calls.map(c => c.path)).toEqual(['sessions/s1/turns/t1/changes']);
    expect(emitted).toBe(1);
  });

  it('knows a turn without checkpoint (404) and a failure apart', async () => {
    const { client } = server(call =>
      call.path.includes('/t404/') ? [404, { message: 'No checkpoint' }] : [500, { message: 'x' }]
    );
    const store = new TurnChangesStore(client);
    await store.load('s1', 't404');
    await store.load('s1', 't500');
    expect(store.get('s1', 't404')).toEqual({ state: 'none' });
    expect(store.get('s1', 't500')).toEqual({ state: 'failed', message: 'x' });
  });

  it("after an undo, fetches the session's turns again (they show undone)", async () => {
    let reverted = false;
    const { calls, client } = server(call => {
      if (call.path.endsWith('/revert')) {
        reverted = true;
        return [200, { ...REVERTED, reverted: ['t1', 't2'] }];
      }
      return [200, { ...data, reverted }];
    });
    const store = new TurnChangesStore(client);
    await store.load('s1', 't1');
    await store.load('s1', 't2');
    await store.load('other', 't1');
    expect(store.reverted('s1', 't2')).toBe(false);
    const undoing = store.undo('s1', 't1', [], prompts({}));
    expect(store.undoing('s1', 't1')).toBe(true);
    expect((await undoing).kind).toBe('undone');
    expect(store.undoing('s1', 't1')).toBe(false);
    expect(store.reverted('s1', 't1')).toBe(true);
    expect(store.reverted('s1', 't2')).toBe(true);
    expect(store.reverted('other', 't1')).toBe(false); // another session's: not asked again
    expect(calls.filter(c => c.path.startsWith('sessions/other/'))).toHaveLength(1);
  });

  it('remembers Keep per session and turn, across stores on the same storage', () => {
    const { client } = server(() => [200, data]);
    const storage = new MemoryStorage();
    const store = new TurnChangesStore(client, storage);
    expect(store.kept('s1', 't1')).toBe(false);
    store.keep('s1', 't1');
    expect(store.kept('s1', 't1')).toBe(true);
    expect(store.kept('s1', 't2')).toBe(false);
    expect(store.kept('s2', 't1')).toBe(false);
    expect(new TurnChangesStore(client, storage).kept('s1', 't1')).toBe(true); // a reload
  });

  it('keeps Keep for the page when the storage refuses', () => {
    const { client } = server(() => [200, data]);
    const refusing = {
      getItem: (): string | null => {
        throw new Error('denied');
      },
      setItem: (): void => {
        throw new Error('denied');
      }
    };
    const store = new TurnChangesStore(client, refusing);
    expect(store.kept('s1', 't1')).toBe(false);
    store.keep('s1', 't1');
    expect(store.kept('s1', 't1')).toBe(true);
  });
});
