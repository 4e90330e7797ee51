"""Notebook API path -> the notebook's resolved file and its folder, confined to the server root.

The agent runs with ``cwd`` = the notebook's folder and may run shell commands there, so this is a
security boundary: ``..``, absolute paths, control characters and symlinks that lead out of the
root are refused before anything is created.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import BadRequest


@dataclass(frozen=True)
class NotebookLocation:
    api_path: str  # normalized, "/"-separated, relative to the server root
    notebook_key: str  # resolved absolute file path: the store's index key
    working_dir: str  # resolved absolute folder the provider runs in


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def normalize_api_path(api_path: str) -> str:
    if not isinstance(api_path, str) or not api_path:
        raise BadRequest("path must be a non-empty notebook path relative to the server root")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in api_path):
        raise BadRequest("path must not contain control characters")
    if api_path.startswith(("/", "\\", "~")) or os.path.isabs(api_path):
        raise BadRequest(f"path must be relative to the server root, not absolute: {api_path!r}")
    parts = [part for part in api_path.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts) or any("\\" in part for part in parts):
        raise BadRequest(f"path must not contain '..' or backslashes: {api_path!r}")
    if not parts:
        raise BadRequest("path must name a notebook, not the server root")
    return "/".join(parts)


def resolve_notebook(root_dir: str | Path, api_path: str) -> NotebookLocation:
    """Resolve a notebook API path under ``root_dir``; raise ``BadRequest`` if it escapes."""
    normalized = normalize_api_path(api_path)
    root = os.path.realpath(root_dir)
    candidate = os.path.join(root, *normalized.split("/"))
    notebook_key = os.path.realpath(candidate)
    working_dir = os.path.realpath(os.path.dirname(candidate))
    if not _is_within(notebook_key, root) or not _is_within(working_dir, root):
        raise BadRequest(f"path leads outside the server root: {api_path!r}")
    if notebook_key == root:
        raise BadRequest("path must name a notebook, not the server root")
    if not os.path.isdir(working_dir):
        raise BadRequest(f"the notebook's folder does not exist: {os.path.dirname(normalized)!r}")
    return NotebookLocation(normalized, notebook_key, working_dir)


def notebook_key_for_file(file_path: str | Path) -> str:
    """The index key of a notebook given as an absolute file path (e.g. JPY_SESSION_NAME)."""
    return os.path.realpath(file_path)


def locate_notebook_file(
    file_path: str | Path, display_path: str | None = None
) -> NotebookLocation:
    """A notebook known by its absolute file path (how a kernel knows it, JPY_SESSION_NAME)."""
    absolute = os.path.abspath(file_path)
    working_dir = os.path.realpath(os.path.dirname(absolute))
    if not os.path.isdir(working_dir):
        raise BadRequest(f"The notebook's folder does not exist: {working_dir}")
    key = os.path.realpath(absolute)
    return NotebookLocation(display_path or os.path.basename(key), key, working_dir)


def working_dir_problem(working_dir: str, root_dir: str | Path | None) -> str | None:
    """Why a session's stored folder is no longer safe to run an agent in, or None.

    Checked at the start of every turn: the folder was resolved and confined when the session
    was created, but it may since have been replaced by a symlink (or moved) that leads
    elsewhere. A folder that still resolves to itself, inside the root when there is one, is
    safe."""
    try:
        real = os.path.realpath(working_dir)
    except (OSError, ValueError) as exc:
        return f"The notebook's folder cannot be resolved: {exc}"
    if real != os.path.normpath(working_dir):
        return (
            f"The notebook's folder {working_dir} now leads to {real} (it was replaced by a "
            "symlink or moved); the assistant does not run there. Reopen the notebook from "
            "its real location."
        )
    if root_dir is not None and not _is_within(real, os.path.realpath(root_dir)):
        return (
            f"The notebook's folder {working_dir} is outside the server root; the assistant "
            "does not run there."
        )
    if not os.path.isdir(real):
        return f"The notebook's folder no longer exists: {working_dir}"
    return None
