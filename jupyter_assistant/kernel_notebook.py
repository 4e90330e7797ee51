"""Which notebook a kernel belongs to, and the root folder of the server that started it.

The notebook comes from ``JPY_SESSION_NAME``, then ``__session__``, then VS Code's
``__vsc_ipynb_file__``; outside a notebook the session is keyed by the working directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_runtime_dir

# A stand-in file name for "no notebook": keys the session by the folder, cannot be a notebook.
NO_NOTEBOOK_NAME = "<ipython>"


@dataclass(frozen=True)
class NotebookRef:
    """The notebook a kernel belongs to, or the working directory outside a notebook."""

    file: str  # absolute path: the store's index key (resolved by the engine)
    folder: str
    source: str  # where it came from: JPY_SESSION_NAME, __session__, __vsc_ipynb_file__, cwd
    display_path: str

    @property
    def in_notebook(self) -> bool:
        return self.source != "cwd"


def server_root(environ: Mapping[str, str]) -> str | None:
    """The root folder of the Jupyter server that started this kernel, if it is on this
    machine: the server is the kernel's ``JPY_PARENT_PID`` and describes itself in
    ``<runtime dir>/jpserver-<pid>.json``."""
    pid = environ.get("JPY_PARENT_PID", "")
    if not pid.isdigit():
        return None
    try:
        info = json.loads((Path(jupyter_runtime_dir()) / f"jpserver-{pid}.json").read_text())
    except (OSError, ValueError):
        return None
    root = info.get("root_dir") if isinstance(info, dict) else None
    return root if isinstance(root, str) and root else None


def _display_path(file: str, root: str | None) -> str:
    """The notebook's path as the server shows it (relative to its root), else its name."""
    if root:
        for base, target in ((root, file), (os.path.realpath(root), os.path.realpath(file))):
            relative = os.path.relpath(target, base)
            if not relative.startswith(os.pardir):
                return relative.replace(os.sep, "/")
    return os.path.basename(file)


def find_notebook(
    user_ns: Mapping[str, Any],
    environ: Mapping[str, str],
    cwd: str,
    start_dir: str | None = None,
    root: str | None = None,
) -> NotebookRef:
    """The kernel's notebook. ``start_dir`` is the kernel's first working directory, used to
    place a relative ``JPY_SESSION_NAME`` (a server without the session's file name sets it to
    the API path, while the kernel starts in the notebook's folder). ``root`` is the server's
    root folder, for the path shown with the session."""
    candidates = (
        ("JPY_SESSION_NAME", environ.get("JPY_SESSION_NAME")),
        ("__session__", user_ns.get("__session__")),
        ("__vsc_ipynb_file__", user_ns.get("__vsc_ipynb_file__")),
    )
    for source, value in candidates:
        if not isinstance(value, str) or not value.strip():
            continue
        value = value.strip()
        if not os.path.isabs(value):
            value = os.path.join(start_dir or cwd, os.path.basename(value))
        value = os.path.abspath(value)
        return NotebookRef(
            file=value,
            folder=os.path.dirname(value),
            source=source,
            display_path=_display_path(value, root),
        )
    folder = os.path.abspath(cwd)
    return NotebookRef(
        file=os.path.join(folder, NO_NOTEBOOK_NAME),
        folder=folder,
        source="cwd",
        display_path=f"IPython in {folder}",
    )
