"""The notebook tools as calls: a tool name and JSON arguments in, a JSON result out.

The arguments are checked here (unknown ones, wrong types) before the operation runs, so that
whatever transport brings the call (the HTTP API that the MCP server forwards to) gives the
model the same clear errors. The notebook is read and written through a ``NotebookStorage``:
the file through Jupyter's contents manager when the notebook is not open in a browser.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from . import cells
from .capabilities import Grant
from .cells import Author, CellLimits, ToolError
from .outputs import OutputLimits


class NotebookStorage(Protocol):
    """Where a notebook is read from and written to."""

    async def load(self, path: str) -> Any: ...

    async def save(self, path: str, notebook: Any) -> None: ...


class ContentsStorage:
    """A notebook file through Jupyter's contents manager (sync or async): cell ids kept, the
    file written as JupyterLab writes it, with its checkpoints."""

    def __init__(self, contents_manager: Any) -> None:
        self.contents = contents_manager

    async def load(self, path: str) -> Any:
        try:
            model = await _maybe_await(self.contents.get(path, content=True, type="notebook"))
        except Exception as exc:  # the contents manager raises tornado's HTTPError
            raise ToolError(f"The notebook {path} cannot be read: {_reason(exc)}.") from exc
        return model["content"]

    async def save(self, path: str, notebook: Any) -> None:
        model = {"type": "notebook", "format": "json", "content": notebook}
        try:
            await _maybe_await(self.contents.save(model, path))
        except Exception as exc:
            raise ToolError(f"The notebook {path} cannot be saved: {_reason(exc)}.") from exc


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "log_message", None) or exc).rstrip(".")


@dataclass(frozen=True)
class ToolLimits:
    cells: CellLimits = field(default_factory=CellLimits)
    outputs: OutputLimits = field(default_factory=OutputLimits)


ToolKind = Literal["read", "edit", "run"]
# tool -> (the arguments it takes, what it does: reads, edits the notebook, or runs code)
TOOLS: dict[str, tuple[frozenset[str], ToolKind]] = {
    "read_notebook": (frozenset({"start", "end", "include_outputs"}), "read"),
    "insert_cell": (frozenset({"index", "after_id", "cell_type", "source"}), "edit"),
    "edit_cell": (frozenset({"id", "index", "source"}), "edit"),
    "delete_cell": (frozenset({"id", "index"}), "edit"),
}


class NotebookToolbox:
    def __init__(self, storage: NotebookStorage, limits: ToolLimits | None = None) -> None:
        self.storage = storage
        self.limits = limits or ToolLimits()
        self._locks: dict[str, asyncio.Lock] = {}

    async def call(self, grant: Grant, tool: str, arguments: Any) -> dict[str, Any]:
        """Run ``tool`` on the grant's notebook. ToolError: the model is told why; the
        notebook is unchanged."""
        if tool not in TOOLS:
            raise ToolError(
                f"There is no notebook tool {tool!r}; the tools are {', '.join(TOOLS)}."
            )
        if not isinstance(arguments, dict):
            raise ToolError("The arguments must be a JSON object.")
        allowed, kind = TOOLS[tool]
        changes = kind == "edit"
        unknown = sorted(set(arguments) - allowed)
        if unknown:
            raise ToolError(f"{tool} takes no argument {', '.join(map(repr, unknown))}.")
        operation = self._operation(grant, tool, arguments)
        path = grant.notebook_path
        # One call at a time per notebook: two edits must not each save over the other.
        async with self._locks.setdefault(path, asyncio.Lock()):
            notebook = await self.storage.load(path)
            result = operation(notebook)
            if changes:
                await self.storage.save(path, notebook)
        return result

    def _operation(
        self, grant: Grant, tool: str, args: dict[str, Any]
    ) -> Callable[[Any], dict[str, Any]]:
        author = Author(grant.session_id, grant.turn_id)
        limits = self.limits
        if tool == "read_notebook":
            include = args.get("include_outputs", True)
            if not isinstance(include, bool):
                raise ToolError("include_outputs must be true or false.")
            return lambda nb: {
                "path": grant.notebook_path,
                "cell_count": len(nb.cells),
                "cells": cells.read_cells(
                    nb, args.get("start"), args.get("end"), include, limits.outputs
                ),
            }
        if tool == "insert_cell":
            return lambda nb: cells.insert_cell(
                nb,
                args.get("cell_type", "code"),
                args.get("source", ""),
                author,
                index=args.get("index"),
                after_id=args.get("after_id"),
                limits=limits.cells,
            )
        if tool == "edit_cell":
            if "source" not in args:
                raise ToolError("edit_cell needs the cell's new source.")
            return lambda nb: cells.edit_cell(
                nb, args["source"], author, args.get("id"), args.get("index"), limits.cells
            )
        return lambda nb: cells.delete_cell(nb, args.get("id"), args.get("index"))
