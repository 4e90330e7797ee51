/**
 * The dialogs of an undo: the later turns that go too, the files changed since the turn, and
 * reloading the open notebook the undo put back on disk.
 */

import { Dialog, showDialog } from '@jupyterlab/apputils';
import * as React from 'react';

import { IUndoPrompts, laterTurnsText } from './undo';

/** The dialogs an undo asks its questions with. */
export const dialogPrompts: IUndoPrompts = {
  confirmLater: async texts => {
    const answer = await showDialog({
      title: 'Undo this turn and the later ones?',
      body: laterTurnsText(texts),
      buttons: [
        Dialog.cancelButton(),
        Dialog.warnButton({ label: `Undo ${texts.length + 1} turns` })
      ]
    });
    return answer.button.accept;
  },
  confirmOverwrite: async paths => {
    const answer = await showDialog({
      title: 'Files changed since this turn',
      body: (
        <div className="jp-Assistant-conflicts">
          <p>
            Changed after the assistant&apos;s turn, by you or another program. Undoing the turn
            overwrites {paths.length === 1 ? 'that change' : 'those changes'}:
          </p>
          <ul>
            {paths.map(path => (
              <li key={path}>
                <code>{path}</code>
              </li>
            ))}
          </ul>
        </div>
      ),
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Overwrite them' })]
    });
    return answer.button.accept;
  }
};

/** The members of an open notebook's panel a reload uses. */
export interface IReloadable {
  readonly isDisposed: boolean;
  readonly context: {
    readonly path: string;
    readonly model: { readonly dirty: boolean };
    revert(): Promise<void>;
  };
}

/**
 * The undo put the notebook's file back: show it in the open notebook (so that saving asks
 * nothing). Unsaved changes in the notebook would be lost: then ask first.
 */
export async function reloadRestoredNotebook(panel: IReloadable): Promise<void> {
  if (panel.isDisposed) {
    return;
  }
  if (panel.context.model.dirty) {
    const name = panel.context.path.split('/').pop();
    const answer = await showDialog({
      title: 'Reload the notebook from disk?',
      body:
        `The undo put ${name} back as it was before the turn. Reloading shows it here and ` +
        'drops the changes to the notebook that are not saved.',
      buttons: [
        Dialog.cancelButton({ label: 'Keep unsaved changes' }),
        Dialog.warnButton({ label: 'Reload' })
      ]
    });
    if (!answer.button.accept || panel.isDisposed) {
      return;
    }
  }
  await panel.context.revert();
}
