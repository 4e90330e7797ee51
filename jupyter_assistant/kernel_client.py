"""The engine inside a kernel, by the names it always had; each job lives in its own module:

* ``kernel_notebook``: which notebook the kernel belongs to, and the server's root folder;
* ``kernel_config``: the server's configuration, read in a kernel;
* ``engine_loop``: the private event-loop thread the engine runs on;
* ``cell_view``: a turn as the cell shows it (imported on first use: it needs pydantic);
* ``variables``: bounded summaries of notebook variables for ``--with``;
* ``kernel_assistant``: ``KernelAssistant``, the glue between the magics and the service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .code_blocks import CODE_BLOCK, PYTHON_LANGS, first_code_block
from .engine_loop import EngineLoop
from .kernel_assistant import Decider, KernelAssistant, PermissionAnswer
from .kernel_config import (
    SERVER_CONFIG_FILES,
    SERVER_ONLY_SETTINGS,
    KernelSettings,
    LoadedConfig,
    load_config,
)
from .kernel_notebook import NO_NOTEBOOK_NAME, NotebookRef, find_notebook, server_root
from .toolcalls import TOOL_DETAIL_CHARS, TOOL_INPUT_KEYS, tool_detail
from .variables import (
    CONTEXT_CHARS,
    HEAD_ROWS,
    VARIABLE_CHARS,
    summarize_value,
    summarize_variables,
)

if TYPE_CHECKING:
    from .cell_view import ANSWERED, SUMMARY_LINES, TurnView

# Names whose module is imported only when one is asked for (the cell view needs pydantic,
# which a kernel need not load until its first turn).
_LAZY = {"ANSWERED": "cell_view", "SUMMARY_LINES": "cell_view", "TurnView": "cell_view"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __package__), name)


__all__ = [
    "ANSWERED",
    "CODE_BLOCK",
    "CONTEXT_CHARS",
    "HEAD_ROWS",
    "NO_NOTEBOOK_NAME",
    "PYTHON_LANGS",
    "SERVER_CONFIG_FILES",
    "SERVER_ONLY_SETTINGS",
    "SUMMARY_LINES",
    "TOOL_DETAIL_CHARS",
    "TOOL_INPUT_KEYS",
    "VARIABLE_CHARS",
    "Decider",
    "EngineLoop",
    "KernelAssistant",
    "KernelSettings",
    "LoadedConfig",
    "NotebookRef",
    "PermissionAnswer",
    "TurnView",
    "find_notebook",
    "first_code_block",
    "load_config",
    "server_root",
    "summarize_value",
    "summarize_variables",
    "tool_detail",
]
