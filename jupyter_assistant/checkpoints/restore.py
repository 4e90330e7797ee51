"""Putting a folder's files back as a checkpoint had them, file by file, each whole or not at
all; and what stands in the way: files that changed since the state being undone."""

from __future__ import annotations

import contextlib
from pathlib import Path

from .blobs import BlobStore, remove_leftovers
from .scan import FileState, Manifest


def conflicts(
    paths: list[str], expected: Manifest, target: Manifest, current: Manifest
) -> list[str]:
    """The ``paths`` whose state now is neither the one ``expected`` (as the turns left them)
    nor ``target`` (already as the undo would make them, e.g. by an undo killed midway):
    someone changed them since."""
    found = []
    for path in paths:
        have = current.files.get(path)
        if not any(_same(state.files.get(path), have) for state in (expected, target)):
            found.append(path)
    return found


def _same(want: FileState | None, have: FileState | None) -> bool:
    if want is None or have is None:
        return want is have
    return want.same_file(have)


def restore(folder: Path | str, paths: list[str], target: Manifest, blobs: BlobStore) -> list[str]:
    """Make each of ``paths`` under ``folder`` what ``target`` says (absent: removed). Returns
    the paths that could not be restored (their content was not kept: too large)."""
    root = Path(folder)
    missed = []
    for path in paths:
        destination = _inside(root, path)
        state: FileState | None = target.files.get(path)
        if state is None:
            # A file the turn created goes (its folder stays: a folder is no checkpoint's).
            with contextlib.suppress(FileNotFoundError):
                destination.unlink()
            remove_leftovers(destination)
            continue
        if state.digest is None or not blobs.has(state.digest):
            missed.append(path)
            continue
        blobs.copy_to(state.digest, destination, state.mode)
    return missed


def _inside(root: Path, path: str) -> Path:
    """``path`` under ``root``, refusing anything that would leave it."""
    candidate = (root / path).resolve(strict=False)
    base = root.resolve()
    if candidate != base and base not in candidate.parents:
        raise ValueError(f"{path!r} is outside the folder")
    return root / path
