/**
 * "Export conversation": a Markdown file downloaded by the browser, or a new notebook saved
 * beside the notebook the conversation is about (through the contents API) and opened. The
 * server renders both (`GET sessions/{id}/export`, the same as `jupyter assistant sessions
 * export`); this module only names, downloads and saves them.
 */

import { Contents, ServerConnection } from '@jupyterlab/services';

/** What the user picks in the export menu. */
export type ExportFormat = 'markdown' | 'notebook';

/** The server's export format of each menu choice. */
export const FILE_FORMATS: Record<ExportFormat, 'md' | 'ipynb'> = {
  markdown: 'md',
  notebook: 'ipynb'
};

/** The kernel of the notebook the conversation is about, given to its exported notebook. */
export interface INotebookOptions {
  kernelspec?: unknown;
  language_info?: unknown;
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

/** Let the browser save `text` as a file named `name`. */
export function downloadText(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.style.display = 'none';
  document.body.appendChild(link);
  link.click();
  link.remove();
  // Revoked later: the download may still be reading it.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Download the server's Markdown transcript; returns the file name. */
export function downloadMarkdown(markdown: string, notebookPath: string): string {
  const name = exportName(notebookPath, '.md');
  downloadText(name, markdown, 'text/markdown');
  return name;
}

/**
 * The server's notebook of the conversation (its `ipynb` text) with the kernel of the
 * conversation's notebook, where that one has a kernelspec (else it keeps the server's Python 3).
 */
export function withKernel(ipynb: string, options: INotebookOptions = {}): Record<string, unknown> {
  const notebook = JSON.parse(ipynb) as { metadata: Record<string, unknown> };
  for (const key of ['kernelspec', 'language_info'] as const) {
    if (options[key] !== undefined) {
      notebook.metadata[key] = options[key];
    }
  }
  return notebook;
}

/** Save the server's notebook of the conversation as a new notebook beside `notebookPath`. */
export async function saveNotebookBeside(
  contents: Contents.IManager,
  ipynb: string,
  notebookPath: string,
  options: INotebookOptions = {}
): Promise<string> {
  const exists = async (path: string): Promise<boolean> => {
    try {
      await contents.get(path, { content: false });
      return true;
    } catch (err) {
      if (err instanceof ServerConnection.ResponseError && err.response.status === 404) {
        return false;
      }
      throw err; // not known to be free: never risk overwriting a file
    }
  };
  const content = withKernel(ipynb, options);
  const path = await freePathBeside(notebookPath, '.ipynb', exists);
  await contents.save(path, {
    type: 'notebook',
    format: 'json',
    content: content as unknown as Contents.IModel['content']
  });
  return path;
}
