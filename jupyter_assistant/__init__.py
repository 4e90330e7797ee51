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


__all__ = ["__version__"]
