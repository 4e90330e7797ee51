"""The notebook tools' operations on a notebook (an nbformat node): read its cells, insert,
edit and delete one. Pure: where the notebook lives (the open document, or the file) is the
caller's. Every bad request raises ``ToolError`` with a sentence the model can act on, before
anything is changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nbformat

from .outputs import OutputLimits, summarize_output

CELL_TYPES = ("code", "markdown", "raw")
# metadata key of the cells the assistant wrote: {"session_id", "turn_id"}
MARK = "jupyter_assistant"


class ToolError(Exception):
    """A tool call that cannot be done as asked: the model gets the message, nothing changed."""


@dataclass(frozen=True)
class CellLimits:
    # Characters a cell's source may have when the agent writes it.
    max_source_chars: int = 100_000


@dataclass(frozen=True)
class Author:
    """Who writes: kept in the metadata of every cell the agent inserts or edits."""

    session_id: str
    turn_id: str

    def mark(self) -> dict[str, str]:
        return {"session_id": self.session_id, "turn_id": self.turn_id}


def _source(cell: Any) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def read_cells(
    notebook: Any,
    start: int | None = None,
    end: int | None = None,
    include_outputs: bool = True,
    limits: OutputLimits | None = None,
) -> list[dict[str, Any]]:
    """Cells ``start`` to ``end`` (exclusive; default: all) as the model reads them."""
    cells = notebook.cells
    first = 0 if start is None else _checked_index(start, len(cells) + 1, "start")
    last = len(cells) if end is None else _checked_index(end, len(cells) + 1, "end")
    if last < first:
        raise ToolError(f"end ({last}) is before start ({first}).")
    limits = limits or OutputLimits()
    read = []
    for index in range(first, last):
        cell = cells[index]
        entry: dict[str, Any] = {
            "index": index,
            "id": cell.get("id"),
            "cell_type": cell.get("cell_type"),
            "source": _source(cell),
        }
        if cell.get("cell_type") == "code":
            entry["execution_count"] = cell.get("execution_count")
            if include_outputs:
                entry["outputs"] = [summarize_output(o, limits) for o in cell.get("outputs", [])]
        if MARK in cell.get("metadata", {}):
            entry["written_by_assistant"] = True
        read.append(entry)
    return read


def _checked_index(index: Any, size: int, name: str = "index") -> int:
    """``index`` if it is a whole number in ``0 .. size - 1``."""
    if isinstance(index, bool) or not isinstance(index, int):
        raise ToolError(f"{name} must be a whole number, not {index!r}.")
    if not 0 <= index < size:
        raise ToolError(f"{name} {index} is out of range: valid values are 0 to {size - 1}.")
    return index


def find_cell(notebook: Any, cell_id: str | None = None, index: int | None = None) -> int:
    """The index of the cell named by ``cell_id`` or by ``index`` (exactly one of them)."""
    if (cell_id is None) == (index is None):
        raise ToolError("Name the cell by its id or by its index (one of them).")
    if index is not None:
        return _checked_index(index, len(notebook.cells))
    for position, cell in enumerate(notebook.cells):
        if cell.get("id") == cell_id:
            return position
    raise ToolError(f"No cell has the id {cell_id!r}; read_notebook lists the cells and ids.")


def _checked_source(source: Any, limits: CellLimits) -> str:
    if not isinstance(source, str):
        raise ToolError("source must be a string.")
    if len(source) > limits.max_source_chars:
        raise ToolError(
            f"The source has {len(source)} characters; a cell may have at most "
            f"{limits.max_source_chars}. Split it into several cells."
        )
    return source


def insert_cell(
    notebook: Any,
    cell_type: str,
    source: str,
    author: Author,
    index: int | None = None,
    after_id: str | None = None,
    limits: CellLimits | None = None,
) -> dict[str, Any]:
    """Insert a new cell at ``index`` (default: at the end) or after the cell ``after_id``.
    Returns ``{index, id}``."""
    if cell_type not in CELL_TYPES:
        raise ToolError(f"cell_type must be one of {', '.join(CELL_TYPES)}, not {cell_type!r}.")
    text = _checked_source(source, limits or CellLimits())
    if index is not None and after_id is not None:
        raise ToolError("Give index or after_id, not both.")
    if after_id is not None:
        position = find_cell(notebook, cell_id=after_id) + 1
    elif index is not None:
        position = _checked_index(index, len(notebook.cells) + 1)
    else:
        position = len(notebook.cells)
    make = {
        "code": nbformat.v4.new_code_cell,
        "markdown": nbformat.v4.new_markdown_cell,
        "raw": nbformat.v4.new_raw_cell,
    }[cell_type]
    cell = make(text, metadata={MARK: author.mark()})  # type: ignore[no-untyped-call]
    notebook.cells.insert(position, cell)
    return {"index": position, "id": cell.id}


def edit_cell(
    notebook: Any,
    source: str,
    author: Author,
    cell_id: str | None = None,
    index: int | None = None,
    limits: CellLimits | None = None,
) -> dict[str, Any]:
    """Replace a cell's source (a code cell's outputs go: they belonged to the old code).
    Returns ``{index, id, before}``, ``before`` the source it had."""
    text = _checked_source(source, limits or CellLimits())
    position = find_cell(notebook, cell_id, index)
    cell = notebook.cells[position]
    before = _source(cell)
    cell["source"] = text
    if cell.get("cell_type") == "code" and text != before:
        cell["outputs"] = []
        cell["execution_count"] = None
    cell.setdefault("metadata", {})[MARK] = author.mark()
    return {"index": position, "id": cell.get("id"), "before": before}


def delete_cell(
    notebook: Any, cell_id: str | None = None, index: int | None = None
) -> dict[str, Any]:
    """Remove a cell. Returns ``{index, id, cell_type, source}`` of the cell removed."""
    position = find_cell(notebook, cell_id, index)
    cell = notebook.cells.pop(position)
    return {
        "index": position,
        "id": cell.get("id"),
        "cell_type": cell.get("cell_type"),
        "source": _source(cell),
    }
