"""Per-turn checkpoints of a session's working folder: what each turn changed, and its undo.

Before a turn its folder is scanned into a manifest (scan.py) whose file contents are kept in a
content-addressed store (blobs.py); after it, again. The two manifests say what the turn changed
(changes.py, and cells.py for the notebook, cell by cell), and the first one is what an undo
puts back (restore.py), refusing when a file changed since unless forced. Nothing is written in
the user's folder: everything lives under ``<store>/checkpoints/``::

    blobs/<2 hex>/<62 hex>              file contents, and manifests, by SHA-256
    sessions/<session_id>/<turn_id>.json {seq, folder, notebook, before, after?,
                                          reverted?, told?}; before and after are
                                          {manifest: <digest>}: an unchanged folder's
                                          manifest is one blob, however many turns have it
    sessions/<session_id>/<turn_id>.live {before, after}: the notebook's JSON where it was
                                          open, before the turn's first edit of its cells
                                          there and after its last (the notebook tools
                                          edit it there, not in its file; note_live)
    .swept                              touched by each sweep: the others' caches are stale
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .blobs import BlobStore
from .cells import cell_changes, cell_conflicts
from .changes import changed_paths, file_changes
from .restore import conflicts, restore
from .scan import Manifest, ScanRules, scan

__all__ = ["Conflict", "ScanRules", "TurnCheckpoints", "UnknownTurn"]


class UnknownTurn(LookupError):
    """No checkpoint of that turn (it never ran here, or its session was deleted)."""


@dataclass
class Conflict(Exception):
    """Files changed after the turns an undo would take back."""

    paths: list[str]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(data, file, separators=(",", ":"))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


class TurnCheckpoints:
    """A store's checkpoints. Servers, kernels and the ``jupyter assistant`` command may use one
    store at once: whatever puts or reads contents holds the store's lock shared, a sweep of
    unreferenced contents holds it alone, so it never removes what a checkpoint being written
    is about to refer to."""

    def __init__(self, store_root: Path | str, rules: ScanRules | None = None) -> None:
        self.root = Path(store_root) / "checkpoints"
        self.blobs = BlobStore(self.root / "blobs")
        self.rules = rules or ScanRules()
        # The latest manifest of each folder and its blob: the next scan reads only what
        # changed since, and an unchanged folder's manifest is not encoded again.
        self._latest: dict[str, tuple[Manifest, str]] = {}
        self._manifests: dict[str, Manifest] = {}  # parsed manifest blobs, a few
        self._swept: int | None = None  # .swept's mtime when the caches were filled

    @contextlib.contextmanager
    def _locked(self, exclusive: bool = False) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            lock = open(self.root / ".lock", "a")  # noqa: SIM115 (held across the yield)
        except OSError:
            if exclusive:
                raise
            yield  # a read-only store: nothing can sweep it either
            return
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _file(self, session_id: str, turn_id: str) -> Path:
        for part in (session_id, turn_id):
            if not part or "/" in part or part.startswith("."):
                raise UnknownTurn(f"no turn {turn_id!r} in session {session_id!r}")
        return self.root / "sessions" / session_id / f"{turn_id}.json"

    def _read(self, session_id: str, turn_id: str) -> dict[str, Any]:
        path = self._file(session_id, turn_id)
        try:
            record = dict(json.loads(path.read_text("utf-8")))
        except (FileNotFoundError, ValueError) as exc:
            raise UnknownTurn(f"no checkpoint of turn {turn_id}") from exc
        record.pop("live", None)
        with contextlib.suppress(FileNotFoundError, ValueError):
            record["live"] = dict(json.loads(path.with_suffix(".live").read_text("utf-8")))
        return record

    def _write_record(self, session_id: str, turn_id: str, record: dict[str, Any]) -> None:
        # What the turn changed where the notebook is open lives in a file of its own.
        _write_json(
            self._file(session_id, turn_id), {k: v for k, v in record.items() if k != "live"}
        )

    def _free_bytes(self) -> int:
        """Free space on the store's disk; refuses (ENOSPC) below the rules' reserve."""
        existing = self.root
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        free = shutil.disk_usage(existing).free
        if free < self.rules.min_free_bytes:
            raise OSError(
                errno.ENOSPC,
                f"the disk of the assistant's store has {free // 2**20} MiB free, under the "
                f"{self.rules.min_free_bytes // 2**20} MiB kept for conversations",
            )
        return free

    def _fresh_caches(self) -> bool:
        """Forget what a sweep (here or in another process) may have made stale; True when
        the caches still hold."""
        try:
            swept: int | None = os.stat(self.root / ".swept").st_mtime_ns
        except FileNotFoundError:
            swept = None
        if swept != self._swept:
            self._latest.clear()
            self._manifests.clear()
            self._swept = swept
            return False
        return True

    def _scan(self, folder: str) -> Manifest:
        return self._scan_ref(folder)[0]

    def _scan_ref(self, folder: str) -> tuple[Manifest, dict[str, str]]:
        """The folder now, and the reference a record keeps of it (its manifest's blob)."""
        free = self._free_bytes()
        trusted = self._fresh_caches()
        latest = self._latest.get(folder)
        previous = latest[0] if latest is not None else None
        manifest = scan(folder, self.blobs, self.rules, previous, free, trusted)
        if manifest.unchanged and latest is not None and self.blobs.has(latest[1]):
            digest = latest[1]
        else:
            text = json.dumps(manifest.to_json(), separators=(",", ":"))
            digest = self.blobs.put_bytes(text.encode())
            self._remember(digest, manifest)
        self._latest[folder] = (manifest, digest)
        return manifest, {"manifest": digest}

    def _remember(self, digest: str, manifest: Manifest) -> None:
        if len(self._manifests) >= 16:
            self._manifests.pop(next(iter(self._manifests)))
        self._manifests[digest] = manifest

    def _manifest(self, ref: dict[str, Any]) -> Manifest:
        """A record's ``before`` or ``after``: a manifest's blob, or (older) inline."""
        digest = ref.get("manifest")
        if not isinstance(digest, str):
            return Manifest.from_json(ref)
        if digest not in self._manifests:
            self._remember(digest, Manifest.from_json(json.loads(self.blobs.read(digest))))
        return self._manifests[digest]

    # -- around a turn ---------------------------------------------------------------------------

    def before_turn(self, session_id: str, turn_id: str, folder: str, notebook: str) -> None:
        """Checkpoint ``folder`` (absolute) before the turn; ``notebook`` is the session's
        notebook, relative to it."""
        self._free_bytes()  # before the lock file is made: nothing written on a full disk
        with self._locked():
            _, ref = self._scan_ref(folder)
            record: dict[str, Any] = {
                "seq": time.time_ns(),
                "folder": folder,
                "notebook": notebook,
                "before": ref,
            }
            self._write_record(session_id, turn_id, record)

    def after_turn(self, session_id: str, turn_id: str) -> None:
        """Checkpoint the folder after the turn."""
        with self._locked():
            record = self._read(session_id, turn_id)
            record["after"] = self._scan_ref(record["folder"])[1]
            self._write_record(session_id, turn_id, record)

    def note_live(self, session_id: str, turn_id: str, before: str | None, after: str) -> bool:
        """The turn changed its notebook's cells where it is open in JupyterLab (the notebook
        tools did): ``after`` is its JSON there now, ``before`` as it was before the change.
        The first ``before`` of a turn is kept, the latest ``after``. False: the turn has no
        checkpoint (checkpoints are off, or its server and store differ)."""
        record = self._file(session_id, turn_id)
        if not record.exists():
            return False
        with self._locked():
            side = record.with_suffix(".live")
            try:
                live = dict(json.loads(side.read_text("utf-8")))
            except (FileNotFoundError, ValueError):
                live = {}
            if "before" not in live:
                if before is None:
                    return False  # the change before it was not noted: no undo of the cells
                live["before"] = self.blobs.put_bytes(before.encode())
            live["after"] = self.blobs.put_bytes(after.encode())
            _write_json(side, live)
        return True

    def _notebook_texts(self, record: dict[str, Any]) -> tuple[str | None, str | None]:
        """The session's notebook before and after the turn: as it was open in JupyterLab
        where it was (both times), else its file."""
        live = record.get("live") or {}
        if "before" in live and "after" in live:
            return self._blob_text(live["before"]), self._blob_text(live["after"])
        notebook = record.get("notebook")
        if not notebook or "after" not in record:
            return None, None
        before, after = (self._manifest(record[key]) for key in ("before", "after"))
        if notebook not in changed_paths(before, after):
            return None, None
        return self._text(before, notebook), self._text(after, notebook)

    def _blob_text(self, digest: str) -> str | None:
        try:
            return self.blobs.read(digest).decode("utf-8", "replace")
        except (OSError, ValueError):
            return None

    # -- reading ---------------------------------------------------------------------------------

    def changes(self, session_id: str, turn_id: str) -> dict[str, Any]:
        """``{files: [...], cells: [...], not_covered: [...], reverted}``: paths relative to the
        working folder."""
        with self._locked():
            return self._changes(session_id, turn_id)

    def _changes(self, session_id: str, turn_id: str) -> dict[str, Any]:
        record = self._read(session_id, turn_id)
        before = self._manifest(record["before"])
        after = (
            self._manifest(record["after"])
            if "after" in record
            else self._scan(record["folder"])  # still running: what it changed so far
        )
        files = file_changes(before, after, self.blobs)
        cells: list[dict[str, Any]] = []
        if "after" in record:
            old, new = self._notebook_texts(record)
            if old is not None or new is not None:
                cells = cell_changes(old, new)
        elif record.get("notebook") in changed_paths(before, after):  # still running
            notebook = record["notebook"]
            cells = cell_changes(self._text(before, notebook), self._text(after, notebook))
        not_covered = sorted(set(before.not_covered) | set(after.not_covered))
        return {
            "files": files,
            "cells": cells,
            "not_covered": [
                {"path": path, "reason": after.not_covered.get(path) or before.not_covered[path]}
                for path in not_covered
            ],
            "reverted": bool(record.get("reverted")),
        }

    def _text(self, manifest: Manifest, path: str) -> str | None:
        state = manifest.files.get(path)
        if state is None or state.digest is None:
            return None
        try:
            return self.blobs.read(state.digest).decode("utf-8", "replace")
        except OSError:
            return None

    def turns(self, session_id: str) -> list[str]:
        """The session's checkpointed turns, oldest first."""
        folder = self.root / "sessions" / session_id
        found = []
        with contextlib.suppress(FileNotFoundError):
            for path in folder.glob("*.json"):
                with contextlib.suppress(ValueError, OSError):
                    found.append((json.loads(path.read_text("utf-8"))["seq"], path.stem))
        return [turn_id for _, turn_id in sorted(found)]

    # -- undo ------------------------------------------------------------------------------------

    def revert(
        self,
        session_id: str,
        turn_id: str,
        force: bool = False,
        notebook_now: str | None = None,
    ) -> dict[str, Any]:
        """Put the folder back as it was before ``turn_id``, undoing the later turns too.
        Conflict: a file those turns changed was changed since (unless ``force``), or a cell
        of the notebook, as ``notebook_now`` (its JSON where it is open, else its file) has it.

        Cells the turns changed in the notebook as it was open in JupyterLab are not in its
        file: the result's ``cells_target`` is then the notebook's JSON to bring the open one
        (or the file) back to, which the caller does (the engine cannot reach a browser)."""
        with self._locked():
            return self._revert(session_id, turn_id, force, notebook_now)

    def _revert(
        self, session_id: str, turn_id: str, force: bool, notebook_now: str | None
    ) -> dict[str, Any]:
        order = self.turns(session_id)
        if turn_id not in order:
            raise UnknownTurn(f"no checkpoint of turn {turn_id}")
        undone = [
            t
            for t in order[order.index(turn_id) :]
            if not self._read(session_id, t).get("reverted")
        ]
        records = {t: self._read(session_id, t) for t in undone}
        first = self._read(session_id, turn_id)
        folder = first["folder"]
        paths: set[str] = set()
        for record in records.values():
            if "after" in record:
                paths.update(
                    changed_paths(self._manifest(record["before"]), self._manifest(record["after"]))
                )
        current = self._scan(folder)
        target = self._manifest(first["before"])
        cells_target = self._cells_target(first, records, undone, target)
        if undone and "after" in records[undone[-1]]:
            expected = self._manifest(records[undone[-1]]["after"])
            found = conflicts(sorted(paths), expected, target, current)
            if cells_target is not None and notebook_now is not None:
                _, expected_cells = self._notebook_texts(records[undone[-1]])
                found += [
                    f"{first['notebook']} (cell {cell_id})"
                    for cell_id in cell_conflicts(
                        self._changed_cells(records), expected_cells, cells_target, notebook_now
                    )
                ]
            if found and not force:
                raise Conflict(found)
        missed = restore(folder, sorted(paths), target, self.blobs)
        for t, record in records.items():
            record["reverted"] = True
            record["told"] = False  # the agent hears of it with the next message
            self._write_record(session_id, t, record)
        self._latest.pop(folder, None)
        result: dict[str, Any] = {
            "reverted": undone,
            "restored": sorted(set(paths) - set(missed)),
            "missed": missed,
        }
        if cells_target is not None:
            result["cells_target"] = cells_target
        return result

    def _cells_target(
        self,
        first: dict[str, Any],
        records: dict[str, dict[str, Any]],
        undone: list[str],
        target: Manifest,
    ) -> str | None:
        """The notebook's JSON before ``first``, when any of the turns changed its cells
        where it was open (else the file's restore covers them)."""
        live_changed = False
        for turn in undone:
            live = records[turn].get("live") or {}
            if "before" in live and "after" in live and live["before"] != live["after"]:
                live_changed = True
        if not live_changed:
            return None
        live = first.get("live") or {}
        if "before" in live:
            return self._blob_text(live["before"])
        return self._text(target, first["notebook"])

    def _changed_cells(self, records: dict[str, dict[str, Any]]) -> set[str]:
        ids: set[str] = set()
        for record in records.values():
            old, new = self._notebook_texts(record)
            ids.update(change["id"] for change in cell_changes(old, new))
        return ids

    def untold_reverts(self, session_id: str) -> list[str]:
        """Turns undone since the agent last heard of it, oldest first."""
        found = []
        for turn_id in self.turns(session_id):
            with contextlib.suppress(UnknownTurn):
                if self._read(session_id, turn_id).get("told") is False:
                    found.append(turn_id)
        return found

    def mark_told(self, session_id: str, turn_ids: list[str]) -> None:
        for turn_id in turn_ids:
            with contextlib.suppress(UnknownTurn):
                record = self._read(session_id, turn_id)
                record["told"] = True
                self._write_record(session_id, turn_id, record)

    # -- housekeeping ----------------------------------------------------------------------------

    def delete_session(self, session_id: str) -> None:
        if session_id and "/" not in session_id and not session_id.startswith("."):
            shutil.rmtree(self.root / "sessions" / session_id, ignore_errors=True)

    def sweep(self, session_exists: Callable[[str], bool]) -> tuple[int, int]:
        """Remove the checkpoints of sessions that no longer exist (deleted while their
        checkpoints could not go, e.g. by an older version), then the contents no checkpoint
        refers to. Returns (sessions, contents) removed."""
        gone = 0
        with contextlib.suppress(FileNotFoundError):
            for folder in (self.root / "sessions").iterdir():
                if folder.is_dir() and not session_exists(folder.name):
                    self.delete_session(folder.name)
                    gone += 1
        return gone, self.sweep_blobs()

    def sweep_blobs(self) -> int:
        """Remove the contents no checkpoint refers to (after sessions went)."""
        if not self.root.is_dir():
            return 0
        with self._locked(exclusive=True):
            keep: set[str] = set()
            manifests: dict[str, set[str]] = {}  # what each manifest blob keeps, read once
            for path in (self.root / "sessions").glob("*/*.json"):
                try:
                    record = json.loads(path.read_text("utf-8"))
                except FileNotFoundError:
                    continue  # its session went meanwhile
                # A record that cannot be read could refer to anything: keep everything.
                except (ValueError, OSError):
                    return 0
                for key in ("before", "after"):
                    if key in record:
                        keep.update(self._kept_by(record[key], manifests))
            for path in (self.root / "sessions").glob("*/*.live"):
                try:
                    keep.update(json.loads(path.read_text("utf-8")).values())
                except FileNotFoundError:
                    continue
                except (ValueError, OSError):
                    return 0
            removed = self.blobs.sweep(keep)
            # Every process's caches (the latest manifests, contents known to be kept) may
            # be stale now: they check this file's time before they trust them.
            swept = self.root / ".swept"
            swept.touch()
            os.utime(swept, ns=(time.time_ns(), time.time_ns()))
            self._fresh_caches()
            return removed

    def _kept_by(self, ref: dict[str, Any], manifests: dict[str, set[str]]) -> set[str]:
        """The blobs a record's ``before`` or ``after`` keeps: its manifest's, and the
        manifest itself. Raises ValueError when the manifest cannot be read."""
        digest = ref.get("manifest")
        if not isinstance(digest, str):
            return set(Manifest.from_json(ref).digests())
        if digest not in manifests:
            try:
                data = json.loads(self.blobs.read(digest))
            except FileNotFoundError:
                data = {}  # gone already: nothing of it to keep
            except OSError as exc:
                raise ValueError(f"manifest {digest} unreadable: {exc}") from exc
            manifests[digest] = {digest, *Manifest.from_json(data).digests()}
        return manifests[digest]
