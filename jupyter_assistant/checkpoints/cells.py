"""What a turn changed in a notebook, cell by cell (matched by cell id)."""

from __future__ import annotations

import json
from typing import Any

from .changes import unified_diff


def _cells(text: str | None) -> list[dict[str, Any]]:
    if not text:
        return []
    try:
        cells = json.loads(text).get("cells", [])
    except (ValueError, AttributeError):
        return []
    return [c for c in cells if isinstance(c, dict)]


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def cell_changes(before: str | None, after: str | None) -> list[dict[str, Any]]:
    """``[{id, status: added|modified|deleted, diff}]`` between two versions of a notebook's
    JSON, in the order of the cells after (deleted ones last). Outputs are not compared: a run
    is no edit."""
    old = {str(c.get("id")): c for c in _cells(before) if c.get("id")}
    new = _cells(after)
    changes = []
    for cell in new:
        cell_id = str(cell.get("id", ""))
        previous = old.pop(cell_id, None)
        name = f"cell {cell_id}"
        if previous is None:
            changes.append(
                {
                    "id": cell_id,
                    "status": "added",
                    "diff": unified_diff(name, "", _source(cell), "added"),
                }
            )
        elif _source(previous) != _source(cell) or previous.get("cell_type") != cell.get(
            "cell_type"
        ):
            diff = unified_diff(name, _source(previous), _source(cell))
            changes.append({"id": cell_id, "status": "modified", "diff": diff})
    for cell_id, cell in old.items():
        diff = unified_diff(f"cell {cell_id}", _source(cell), "", "deleted")
        changes.append({"id": cell_id, "status": "deleted", "diff": diff})
    return changes


def cell_conflicts(
    changed: set[str], expected: str | None, target: str | None, now: str | None
) -> list[str]:
    """The ids among ``changed`` whose source ``now`` is neither as the turns left it
    (``expected``) nor already as the undo would make it (``target``): edited since."""
    sources = [{str(c.get("id")): _source(c) for c in _cells(text)} for text in (expected, target)]
    current = {str(c.get("id")): _source(c) for c in _cells(now)}
    return sorted(
        cell_id
        for cell_id in changed
        if all(current.get(cell_id) != known.get(cell_id) for known in sources)
    )
