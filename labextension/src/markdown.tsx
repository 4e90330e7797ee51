/**
 * A reply rendered as Markdown by JupyterLab's rendermime (untrusted, so sanitized), with Copy
 * and "Insert as cell below" buttons on its code blocks. While a reply streams, renders are
 * coalesced: one at a time, always of the latest text.
 */

import { Clipboard } from '@jupyterlab/apputils';
import type { IRenderMime, IRenderMimeRegistry } from '@jupyterlab/rendermime';
import * as React from 'react';

const MIME = 'text/markdown';

export interface ICodeActions {
  /** Insert code as a new cell below the active cell of the followed notebook. */
  insert(code: string): void;
}

class MarkdownHost {
  constructor(
    private readonly _rendermime: IRenderMimeRegistry,
    private readonly _actions: ICodeActions
  ) {
    this._renderer = _rendermime.createRenderer(MIME);
    this._renderer.addClass('jp-Assistant-markdown');
  }

  get node(): HTMLElement {
    return this._renderer.node;
  }

  set(text: string): void {
    this._pending = text;
    if (!this._rendering) {
      void this._flush();
    }
  }

  dispose(): void {
    this._disposed = true;
    this._renderer.dispose();
  }

  private async _flush(): Promise<void> {
    this._rendering = true;
    try {
      while (this._pending !== null && !this._disposed) {
        const text = this._pending;
        this._pending = null;
        const model = this._rendermime.createModel({
          data: { [MIME]: text },
          trusted: false
        });
        await this._renderer.renderModel(model);
        if (!this._disposed) {
          addCodeButtons(this._renderer.node, this._actions);
        }
      }
    } finally {
      this._rendering = false;
    }
  }

  private readonly _renderer: IRenderMime.IRenderer;
  private _pending: string | null = null;
  private _rendering = false;
  private _disposed = false;
}

function addCodeButtons(root: HTMLElement, actions: ICodeActions): void {
  root.querySelectorAll('pre').forEach(pre => {
    if (pre.parentElement?.classList.contains('jp-Assistant-codeBlock')) {
      return;
    }
    const wrapper = document.createElement('div');
    wrapper.className = 'jp-Assistant-codeBlock';
    pre.replaceWith(wrapper);
    const bar = document.createElement('div');
    bar.className = 'jp-Assistant-codeActions';
    const copy = button('Copy', 'Copy code', () => {
      Clipboard.copyToSystem(pre.textContent ?? '');
      copy.textContent = 'Copied';
      setTimeout(() => (copy.textContent = 'Copy'), 1500);
    });
    const insert = button(
      'Insert as cell below',
      'Insert code as a cell below the active cell',
      () => actions.insert(pre.textContent ?? '')
    );
    bar.append(copy, insert);
    wrapper.append(bar, pre);
  });
}

function button(label: string, description: string, onClick: () => void): HTMLButtonElement {
  const node = document.createElement('button');
  node.type = 'button';
  node.className = 'jp-Assistant-codeButton';
  node.textContent = label;
  node.title = description;
  node.setAttribute('aria-label', description);
  node.addEventListener('click', onClick);
  return node;
}

export function Markdown(props: {
  source: string;
  rendermime: IRenderMimeRegistry;
  actions: ICodeActions;
}): JSX.Element {
  const ref = React.useRef<HTMLDivElement>(null);
  const host = React.useRef<MarkdownHost | null>(null);
  React.useEffect(() => {
    const created = new MarkdownHost(props.rendermime, props.actions);
    host.current = created;
    ref.current?.appendChild(created.node);
    return () => {
      host.current = null;
      created.dispose();
    };
  }, [props.rendermime]);
  React.useEffect(() => {
    host.current?.set(props.source);
  }, [props.source, props.rendermime]);
  return <div className="jp-Assistant-reply" ref={ref} />;
}
