/**
 * "Export conversation": a Markdown file downloaded by the browser, or a new notebook saved
 * beside the notebook the conversation is about (through the contents API) and opened.
 */

import { Contents, ServerConnection } from '@jupyterlab/services';

import {
  exportName,
  freePathBeside,
  INotebookOptions,
  sessionToMarkdown,
  sessionToNotebook
} from './export';
import type { ISession } from './types';

export type ExportFormat = 'markdown' | 'notebook';

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

export function downloadMarkdown(session: ISession, notebookPath: string): string {
  const name = exportName(notebookPath, '.md');
  downloadText(name, sessionToMarkdown(session), 'text/markdown');
  return name;
}

/** Save the conversation as a new notebook beside `notebookPath`; returns its path. */
export async function saveNotebookBeside(
  contents: Contents.IManager,
  session: ISession,
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
  const path = await freePathBeside(notebookPath, '.ipynb', exists);
  const content = sessionToNotebook(session, options);
  await contents.save(path, {
    type: 'notebook',
    format: 'json',
    content: content as unknown as Contents.IModel['content']
  });
  return path;
}
