"""What a turn changed in its folder: two manifests compared, with a diff per text file."""

from __future__ import annotations

import difflib
from typing import Any

from .blobs import BlobStore
from .scan import FileState, Manifest

# A diff longer than this is cut (the sidebar folds what is long anyway).
MAX_DIFF_LINES = 2000
# Larger files get no diff (their change is listed).
MAX_DIFF_BYTES = 1024 * 1024


def changed_paths(before: Manifest, after: Manifest) -> list[str]:
    paths = set(before.files) | set(after.files)
    return sorted(p for p in paths if not _same(before.files.get(p), after.files.get(p)))


def _same(a: FileState | None, b: FileState | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.same_file(b)


def file_changes(before: Manifest, after: Manifest, blobs: BlobStore) -> list[dict[str, Any]]:
    """``[{path, status: added|modified|deleted, diff?, binary?, too_large?}]``."""
    changes = []
    for path in changed_paths(before, after):
        old, new = before.files.get(path), after.files.get(path)
        status = "added" if old is None else "deleted" if new is None else "modified"
        entry: dict[str, Any] = {"path": path, "status": status}
        if (old is not None and old.digest is None) or (new is not None and new.digest is None):
            entry["too_large"] = True
        else:
            old_text = _text(blobs, old)
            new_text = _text(blobs, new)
            if old_text is None or new_text is None:
                entry["binary"] = True
            else:
                entry["diff"] = unified_diff(path, old_text, new_text, status)
        changes.append(entry)
    return changes


def _text(blobs: BlobStore, state: FileState | None) -> str | None:
    """A file's text ('' for none); None if it is binary or too large for a diff."""
    if state is None:
        return ""
    if state.digest is None or state.size > MAX_DIFF_BYTES:
        return None
    try:
        data = blobs.read(state.digest)
    except OSError:
        return None
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def unified_diff(path: str, before: str, after: str, status: str = "modified") -> str:
    old_name = "/dev/null" if status == "added" else f"a/{path}"
    new_name = "/dev/null" if status == "deleted" else f"b/{path}"
    lines = list(
        difflib.unified_diff(
            before.splitlines(), after.splitlines(), old_name, new_name, lineterm="", n=3
        )
    )
    if len(lines) > MAX_DIFF_LINES:
        cut = len(lines) - MAX_DIFF_LINES
        lines = [*lines[:MAX_DIFF_LINES], f"... {cut} more lines"]
    return "\n".join(lines)


def changes_line(changes: dict[str, Any], limit: int = 6) -> str:
    """``Changed: data.csv, clean.py (new), old.txt (deleted), 2 cells`` ('' for nothing)."""
    marks = {"added": " (new)", "deleted": " (deleted)", "modified": ""}
    names = [f"{f['path']}{marks.get(f['status'], '')}" for f in changes.get("files", [])]
    shown = names[:limit] + ([f"{len(names) - limit} more files"] if len(names) > limit else [])
    cells = len(changes.get("cells", []))
    if cells:
        shown.append(f"{cells} cell" + ("s" if cells > 1 else ""))
    return f"Changed: {', '.join(shown)}" if shown else ""
