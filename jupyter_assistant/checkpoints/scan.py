"""A folder's state as a manifest: each file's size, mtime, mode and content digest.

A file whose size, mtime and mode are those of the previous manifest keeps its digest without
being read, so checkpointing a folder checkpointed before costs one ``stat`` per file. Left out,
and reported as not covered: what the ignore patterns name (matched against each path
component), virtualenvs (a folder with ``pyvenv.cfg``), symbolic links, and files larger than
the size limit (their size and mtime are still recorded, so a change to them is reported).
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .blobs import BlobStore

DEFAULT_IGNORE = (".git", "node_modules", "__pycache__", ".ipynb_checkpoints", ".venv", "venv")
DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class FileState:
    size: int
    mtime_ns: int
    mode: int
    digest: str | None  # None: larger than the limit, its content not kept

    def same_file(self, other: FileState | None) -> bool:
        """The same content as far as a checkpoint can tell."""
        if other is None:
            return False
        if self.digest is not None and other.digest is not None:
            return self.digest == other.digest and self.mode == other.mode
        return (self.size, self.mtime_ns, self.mode) == (other.size, other.mtime_ns, other.mode)


@dataclass(frozen=True)
class ScanRules:
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    # A notebook in a home folder must not have the whole home copied: past these, the rest
    # is left out (reported as not covered).
    max_files: int = 20_000
    max_new_bytes: int = 2 * 1024 * 1024 * 1024  # contents newly kept by one scan
    # Undo must never take the room the conversations need: below this much free space on the
    # store's disk no checkpoint is taken, and a scan keeps new contents only down to it.
    min_free_bytes: int = 256 * 1024 * 1024

    def ignored(self, name: str) -> bool:
        return _ignore_pattern(tuple(self.ignore)).match(name) is not None


@functools.lru_cache(maxsize=8)
def _ignore_pattern(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """The ignore patterns as one expression (a folder's every name is matched)."""
    if not patterns:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


@dataclass
class Manifest:
    files: dict[str, FileState] = field(default_factory=dict)  # posix path in the folder
    # Left out: path -> why ("ignored", "virtualenv", "link", "too large", "unreadable")
    not_covered: dict[str, str] = field(default_factory=dict)
    # Set by a scan: nothing differs from the previous manifest it was given (not stored).
    unchanged: bool = field(default=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        # Each file as [size, mtime_ns, mode, digest]: a folder of thousands of files is
        # encoded (and read back) several times faster than as objects.
        return {
            "files": {
                path: [state.size, state.mtime_ns, state.mode, state.digest]
                for path, state in self.files.items()
            },
            "not_covered": dict(self.not_covered),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        files = {
            path: FileState(*state) if isinstance(state, list) else FileState(**state)
            for path, state in data.get("files", {}).items()
        }
        return cls(files, dict(data.get("not_covered", {})))

    def digests(self) -> Iterable[str]:
        return (state.digest for state in self.files.values() if state.digest is not None)


def scan(
    folder: Path | str,
    blobs: BlobStore,
    rules: ScanRules,
    previous: Manifest | None = None,
    free_bytes: int | None = None,
    trust_previous: bool = False,
) -> Manifest:
    """The folder as it is now, with the content of each new or changed file kept in
    ``blobs`` (at most ``free_bytes - rules.min_free_bytes`` of it, when ``free_bytes`` is
    given). ``trust_previous``: the contents ``previous`` refers to are known to be kept
    still (no sweep since), so an unchanged file costs its ``stat`` only."""
    root = Path(folder)
    known = previous.files if previous is not None else {}
    reused = 0
    manifest = Manifest()
    pending = [""]
    budget = [rules.max_new_bytes]
    if free_bytes is not None:
        budget[0] = max(0, min(budget[0], free_bytes - rules.min_free_bytes))
    while pending:
        if len(manifest.files) >= rules.max_files:
            for relative in pending:
                manifest.not_covered[relative or "."] = "over the file limit"
            break
        relative = pending.pop()
        try:
            entries = list(os.scandir(root / relative if relative else root))
        except OSError:
            manifest.not_covered[relative or "."] = "unreadable"
            continue
        for entry in entries:
            path = f"{relative}/{entry.name}" if relative else entry.name
            if len(manifest.files) >= rules.max_files:
                manifest.not_covered[path] = "over the file limit"
                continue
            if rules.ignored(entry.name):
                manifest.not_covered[path] = "ignored"
                continue
            try:
                if entry.is_symlink():
                    manifest.not_covered[path] = "link"
                    continue
                if entry.is_dir():
                    if os.path.exists(os.path.join(entry.path, "pyvenv.cfg")):
                        manifest.not_covered[path] = "virtualenv"
                    else:
                        pending.append(path)
                    continue
                info = entry.stat()
            except OSError:
                manifest.not_covered[path] = "unreadable"
                continue
            if not stat.S_ISREG(info.st_mode):
                continue  # sockets, pipes: nothing to restore
            before = known.get(path)
            state = _state(entry.path, info, blobs, rules, before, budget, trust_previous)
            if state is before:
                reused += 1
            if state is None:
                manifest.not_covered[path] = "unreadable"
                continue
            manifest.files[path] = state
            if state.digest is None:
                manifest.not_covered[path] = "too large"
    manifest.unchanged = (
        previous is not None
        and reused == len(manifest.files) == len(known)
        and manifest.not_covered == previous.not_covered
    )
    return manifest


def _state(
    full_path: str,
    info: os.stat_result,
    blobs: BlobStore,
    rules: ScanRules,
    before: Any,
    budget: list[int],
    trust_previous: bool = False,
) -> FileState | None:
    mode = stat.S_IMODE(info.st_mode)
    if (
        isinstance(before, FileState)
        and (before.size, before.mtime_ns, before.mode) == (info.st_size, info.st_mtime_ns, mode)
        and (before.digest is None or trust_previous or blobs.has(before.digest))
    ):
        return before  # unchanged since the last checkpoint: not read again
    if info.st_size > rules.max_file_bytes or info.st_size > budget[0]:
        return FileState(info.st_size, info.st_mtime_ns, mode, None)
    budget[0] -= info.st_size
    for _ in range(3):  # a file written while it is read is read again
        try:
            digest = blobs.put_file(full_path)
            after = os.stat(full_path)
        except OSError:
            return None
        if (after.st_size, after.st_mtime_ns) == (info.st_size, info.st_mtime_ns):
            return FileState(info.st_size, info.st_mtime_ns, mode, digest)
        info = after
    return FileState(info.st_size, info.st_mtime_ns, mode, digest)
