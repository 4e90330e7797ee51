import { Contents, ServerConnection } from '@jupyterlab/services';

import { exportName, freePathBeside, saveNotebookBeside, withKernel } from '../src/exporter';

/** A notebook as the server's export renders it (`GET sessions/{id}/export?format=ipynb`). */
const IPYNB = JSON.stringify({
  nbformat: 4,
  nbformat_minor: 5,
  metadata: {
    kernelspec: { display_name: 'Python 3', language: 'python', name: 'python3' },
    language_info: { name: 'python' },
    jupyter_assistant: { session_id: 's1' }
  },
  cells: [{ cell_type: 'markdown', id: 'a1', metadata: {}, source: '# Sum per region' }]
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

describe('the exported notebook', () => {
  it("takes the kernelspec of the conversation's notebook, else keeps the server's", () => {
    const kernelspec = { name: 'ir', display_name: 'R', language: 'R' };
    const nb = withKernel(IPYNB, { kernelspec, language_info: { name: 'R' } });
    expect(nb.metadata).toEqual({
      kernelspec,
      language_info: { name: 'R' },
      jupyter_assistant: { session_id: 's1' }
    });
    expect(withKernel(IPYNB, { kernelspec: undefined })).toEqual(JSON.parse(IPYNB));
  });

  it('is saved beside the notebook under the first free name', async () => {
    const saved: [string, Partial<Contents.IModel>][] = [];
    const contents = {
      get: async (path: string) => {
        if (path === 'analysis/q3-conversation.ipynb') {
          return {};
        }
        throw new ServerConnection.ResponseError(new Response('', { status: 404 }));
      },
      save: async (path: string, model: Partial<Contents.IModel>) => {
        saved.push([path, model]);
        return {};
      }
    } as unknown as Contents.IManager;
    const path = await saveNotebookBeside(contents, IPYNB, 'analysis/q3.ipynb');
    expect(path).toBe('analysis/q3-conversation-2.ipynb');
    expect(saved).toEqual([
      [path, { type: 'notebook', format: 'json', content: JSON.parse(IPYNB) }]
    ]);
  });

  it('never overwrites a file it could not check', async () => {
    const contents = {
      get: async () => {
        throw new ServerConnection.ResponseError(new Response('', { status: 500 }));
      },
      save: async () => {
        throw new Error('must not save');
      }
    } as unknown as Contents.IManager;
    await expect(saveNotebookBeside(contents, IPYNB, 'q3.ipynb')).rejects.toBeInstanceOf(
      ServerConnection.ResponseError
    );
  });
});
