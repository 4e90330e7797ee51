"""SessionStore: one JSON file per session, crash-safe and shared between processes.

The Jupyter server and any number of kernels (the magics) read and write the same store, so:

* every write is atomic and every read-modify-write holds a per-session cross-process lock, so
  a reader sees the old or the new file, never half of one, and no update is lost (the file
  layer: storage.py);
* a corrupt file is moved to ``corrupt/`` and reported, and never breaks the other sessions;
  a file of a newer schema is refused and left as it is (migrations.py);
* a turn's writes (``edit``) cost the same whatever the length of the history: the file is
  laid out as its other fields followed by the messages, and this store remembers where each
  message's JSON lies in the bytes it last wrote, so appending or replacing a message splices
  bytes instead of parsing and serializing the history. The stored messages are never handed
  out as objects on that path, so none can be changed in place and then silently not saved;
  ``update`` (any change) parses and serializes everything (the layout: session_layout.py);
* listing never parses every file (summary_index.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import NotFound, StoreUnavailable
from .session_layout import Layout, MessageLog, edited, holds, layout_of
from .storage import (
    FILE_MODE,
    JOURNALS_DIR,
    SUFFIX,
    atomic_write,
    ensure_private_dir,
    fsync_dir,
    is_session_id,
    remove_journals,
    session_lock,
    storage_error,
    validate_session_id,
)
from .summaries import row_of
from .summary_index import SummaryIndex

if TYPE_CHECKING:
    from .models import Session

# Other modules import the file layer from here too.
__all__ = [
    "FILE_MODE",
    "JOURNALS_DIR",
    "SessionCorrupt",
    "SessionStore",
    "atomic_write",
    "ensure_private_dir",
    "remove_journals",
    "validate_session_id",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

LAYOUT_CACHE_SIZE = 32  # sessions whose file layout is remembered (see edit)


class SessionCorrupt(NotFound):
    """The session file could not be read; it was set aside."""


class SessionStore:
    """Sessions on disk under ``root``: ``sessions/<uuid>.json``, ``locks/``, ``corrupt/``,
    ``changes.log`` and ``index.json`` (caches for listing)."""

    def __init__(
        self, root: Path | str, *, lock_timeout: float = 30.0, stale_temp_seconds: float = 60.0
    ) -> None:
        self.root = Path(root)
        self.sessions_dir = self.root / "sessions"
        self.locks_dir = self.root / "locks"
        self.corrupt_dir = self.root / "corrupt"
        self.lock_timeout = lock_timeout
        for folder in (self.root, self.sessions_dir, self.locks_dir):
            ensure_private_dir(folder)
        self.index = SummaryIndex(self.root, self.sessions_dir, self._parse, self._set_aside)
        # id -> the layout of the file as this store last wrote it (see edit)
        self._layouts: OrderedDict[str, Layout] = OrderedDict()
        self._layouts_lock = threading.Lock()
        self.problems: list[str] = []
        self._stale_temp_seconds = stale_temp_seconds
        self._swept = False

    def sweep_temp_files(self) -> None:
        """Remove temp files of writers killed mid-save (a live save takes milliseconds). Done
        once, before this store's first write: not at construction, where listing the folder
        (10,000 names: about 10 ms) would delay the server's first listing."""
        self._swept = True
        cutoff = time.time() - self._stale_temp_seconds
        try:
            names = os.listdir(self.sessions_dir)  # names only: cheaper than scandir
        except OSError:
            return
        if not any(name[:1] == "." for name in names):
            return
        for name in names:
            if name.startswith(".") and name.endswith(".tmp"):
                path = self.sessions_dir / name
                with contextlib.suppress(OSError):
                    if path.stat().st_mtime <= cutoff:
                        path.unlink()

    # -- paths and locks -------------------------------------------------------------------

    def session_file(self, session_id: str) -> Path:
        return self.sessions_dir / f"{validate_session_id(session_id)}{SUFFIX}"

    def lock(self, session_id: str) -> contextlib.AbstractContextManager[None]:
        """Hold the cross-process lock of one session (``locks/<id>.lock``, see storage.py)."""
        lock_file = self.locks_dir / f"{validate_session_id(session_id)}.lock"
        if not self._swept:
            self.sweep_temp_files()
        return session_lock(lock_file, self.lock_timeout)

    # -- single sessions -------------------------------------------------------------------

    def exists(self, session_id: str) -> bool:
        return self.session_file(session_id).exists()

    def create(self, session: Session) -> Session:
        path = self.session_file(session.id)
        with self.lock(session.id):
            if path.exists():
                raise StoreUnavailable(f"Session {session.id} already exists.")
            self._write(path, session)
        return session

    def load(self, session_id: str) -> Session:
        path = self.session_file(session_id)
        return self._parse(path, session_id, self._read(path, session_id))

    def _read(self, path: Path, session_id: str) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"Unknown session: {session_id}") from None
        except OSError as exc:
            raise StoreUnavailable(f"Could not read {path}: {exc.strerror or exc}") from exc

    def _parse(self, path: Path, session_id: str, raw: bytes) -> Session:
        """The session in ``raw`` (migrated to the current schema); a file that is not one is
        set aside (SessionCorrupt), one of a newer schema is refused (NewerSchema) and left."""
        from .migrations import parse_session

        try:
            session = parse_session(raw)
            if session.id != session_id:
                raise ValueError(f"file holds session {session.id}")
        except (ValueError, RecursionError) as exc:
            where = self._set_aside(path, str(exc))
            raise SessionCorrupt(
                f"Session {session_id} could not be read and was moved to {where}."
            ) from exc
        return session

    def save(self, session: Session) -> None:
        """Write without reading first. Callers must hold ``lock(session.id)``."""
        self._write(self.session_file(session.id), session)

    def update(self, session_id: str, change: Callable[[Session], T]) -> tuple[Session, T]:
        """Read-modify-write under the session's lock. ``change`` may change anything in place;
        the session is parsed from the file and serialized whole, every time (nothing of it is
        kept between calls, so no change can go unsaved). If ``change`` raises, nothing is
        written. Returns the session as saved (the caller's own object)."""
        path = self.session_file(session_id)
        with self.lock(session_id):
            session = self._parse(path, session_id, self._read(path, session_id))
            result = change(session)
            self._write(path, session)
        return session, result

    def edit(self, session_id: str, change: Callable[[Session], T]) -> tuple[Session, T]:
        """``update`` for changes that only add or replace messages (a turn's writes): its cost
        does not grow with the history. ``change`` gets the session with every field loaded
        except ``messages``, which is a ``MessageLog`` (append, put, len; reading it raises).

        The file is checked to be byte for byte the one this store last wrote (else it is
        parsed, as by ``update``); the unchanged messages are copied as bytes, everything else
        (the other fields, the new messages) is serialized after ``change`` returns. Returns
        the session as saved, its messages still a ``MessageLog``."""
        from .models import Session

        path = self.session_file(session_id)
        with self.lock(session_id):
            with self._layouts_lock:
                layout = self._layouts.get(session_id)
            if layout is not None and holds(path, layout):
                head = Session.model_validate_json(layout.head_json())
            else:  # written by another process, or not since this store started: parse it
                head = self._parse(path, session_id, self._read(path, session_id))
                layout = layout_of(head)
            messages = MessageLog(layout.ids())
            head.messages = messages
            result = change(head)
            if head.messages is not messages:
                raise TypeError("SessionStore.edit: use update() to replace session.messages")
            self._stamp(head)
            new = edited(layout, head, messages)
            st = atomic_write(path, new.buffers())
            self._saved(head, new, st)
        return head, result

    def delete(self, session_id: str, unless: Callable[[], bool] | None = None) -> bool:
        """Delete the session. With ``unless``, it is checked under the session's lock first
        and a true answer keeps the session (e.g. "a turn runs in it": the runner claims a turn
        under the same lock). Returns whether the file was deleted."""
        path = self.session_file(session_id)
        with self.lock(session_id):
            if unless is not None and unless():
                return False
            try:
                path.unlink()
            except FileNotFoundError:
                raise NotFound(f"Unknown session: {session_id}") from None
            except OSError as exc:
                raise storage_error(path, exc) from exc
            with contextlib.suppress(OSError):
                fsync_dir(self.sessions_dir)
            self.index.log_change(session_id)
            remove_journals(self.root, session_id)
        self._forget(session_id)
        return True

    def _forget(self, session_id: str) -> None:
        with self._layouts_lock:
            self._layouts.pop(session_id, None)
        self.index.forget(session_id)

    @staticmethod
    def _stamp(session: Session) -> None:
        from .models import utcnow

        session.updated_at = utcnow()

    def _write(self, path: Path, session: Session) -> None:
        self._stamp(session)
        layout = layout_of(session)
        st = atomic_write(path, layout.buffers())
        self._saved(session, layout, st)

    def _saved(self, session: Session, layout: Layout, st: os.stat_result) -> None:
        """After a write: remember the file's layout and summary, and log the change."""
        with self._layouts_lock:
            self._layouts[session.id] = layout
            self._layouts.move_to_end(session.id)
            while len(self._layouts) > LAYOUT_CACHE_SIZE:
                self._layouts.popitem(last=False)
        row, summary = row_of((st.st_ino, st.st_size, st.st_mtime_ns), session.summary())
        self.index.put(row, summary)
        self.index.log_change(session.id)

    # -- listing ---------------------------------------------------------------------------

    def list_summaries(self, notebook_key: str | None = None) -> list[dict[str, Any]]:
        """Summaries, newest first, optionally for one notebook. Cheap when nothing changed."""
        return self.index.list_summaries(notebook_key)

    def summaries_json(self, notebook_key: str | None = None, running: Collection[str] = ()) -> str:
        """``list_summaries`` as a JSON array, without ``notebook_key``, ``status`` set from
        ``running``."""
        return self.index.summaries_json(notebook_key, running)

    # -- corrupt files ---------------------------------------------------------------------

    def _set_aside(self, path: Path, reason: str) -> Path:
        ensure_private_dir(self.corrupt_dir)
        target = self.corrupt_dir / f"{path.stem}.{time.strftime('%Y%m%dT%H%M%S')}{SUFFIX}"
        try:
            os.replace(path, target)
        except OSError as exc:
            log.error(
                "Session file %s is unreadable (%s) and could not be moved: %s", path, reason, exc
            )
            return path
        if is_session_id(path.stem):
            self.index.log_change(path.stem)
        with self._layouts_lock:
            self._layouts.pop(path.stem, None)
        message = f"Session file {path.name} was unreadable ({reason[:200]}); moved to {target}"
        log.error(message)
        self.problems.append(message)
        del self.problems[:-20]
        return target
