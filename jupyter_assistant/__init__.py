"""jupyter_assistant: a notebook-tied AI coding assistant for Jupyter.

Importing this package stays cheap: the server imports it at start-up.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import AssistantExtension

    return [{"module": "jupyter_assistant", "app": AssistantExtension}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter-assistant"}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_assistant`` (or ``c.InteractiveShellApp.extensions``): the magics."""
    from .magics import register  # IPython only when loaded into a shell

    register(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unregister

    unregister(ipython)


__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension"]
