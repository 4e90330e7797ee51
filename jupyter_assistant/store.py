"""SessionStore: one JSON file per session, crash-safe and shared between processes.

The Jupyter server and any number of kernels (the magics) read and write the same store, so:

* every write is atomic (temp file in the same folder, fsync, ``os.replace``, fsync the folder),
  so a reader sees the old or the new file, never half of one, even after a crash;
* every read-modify-write holds a per-session cross-process file lock, so no update is lost;
* a corrupt file is moved to ``corrupt/`` and reported, and never breaks the other sessions;
* listing never parses every file: summaries are cached per file (keyed by inode, size and
  mtime) and the whole scan is skipped while the folder's mtime has not moved.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import stat
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock, Timeout

from .errors import InsufficientStorage, NotFound, StoreUnavailable
from .models import Session

log = logging.getLogger(__name__)

T = TypeVar("T")

DIR_MODE = 0o700
FILE_MODE = 0o600
SUFFIX = ".json"
INDEX_FILE = "index.json"
# A folder mtime this close to "now" may still change within the same clock tick, so a scan
# that saw it is not trusted to be complete (the "racy git" problem).
RACY_SECONDS = 0.1
# Sessions kept parsed for update(): those of the turns running here, plus some.
PARSED_CACHE_SIZE = 32
# The summary index is a cache (checked against each file's stat), so it is rewritten at most
# this often: writing 10,000 summaries costs more than the listing that triggers it.
INDEX_SAVE_SECONDS = 30.0


class SessionCorrupt(NotFound):
    """The session file could not be read; it was set aside."""


def validate_session_id(session_id: str) -> str:
    """Return the canonical id, or raise NotFound. Runs before any path is built from the id."""
    try:
        canonical = str(uuid.UUID(session_id))
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"Unknown session: {session_id!r}") from None
    if canonical != session_id:
        raise NotFound(f"Unknown session: {session_id!r}")
    return canonical


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (0700), or check an existing one: it must be ours and not writable by
    anyone else (others could plant or swap session files); readable-by-others is tightened."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        st = path.stat()
    except OSError as exc:
        raise StoreUnavailable(f"Cannot create the assistant store {path}: {exc}") from exc
    if st.st_uid != os.geteuid():
        raise StoreUnavailable(
            f"The assistant store {path} belongs to another user (uid {st.st_uid}); use a folder "
            "of your own (c.AssistantExtension.store_dir or JUPYTER_ASSISTANT_DIR)."
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        raise StoreUnavailable(
            f"The assistant store {path} is writable by other users (mode {mode:o}); "
            f"run `chmod 700 {path}`."
        )
    if mode & 0o077:
        log.warning("Tightening permissions of %s from %o to 700", path, mode)
        path.chmod(DIR_MODE)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _storage_error(path: Path, exc: OSError) -> StoreUnavailable:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return InsufficientStorage(f"No space left to save {path.name}: free some disk space.")
    if exc.errno == errno.EROFS:
        return StoreUnavailable(f"The assistant store {path.parent} is on a read-only file system.")
    return StoreUnavailable(f"Could not write {path}: {exc.strerror or exc}")


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> os.stat_result:
    """Replace ``path`` with ``data`` atomically; the file is created ``0600``.

    Returns the stat of the new file, taken before it became visible, so that a concurrent
    writer cannot make the caller cache someone else's version."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
            written_stat = os.fstat(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _storage_error(path, exc) from exc
    return written_stat


class SessionStore:
    """Sessions on disk under ``root``: ``sessions/<uuid>.json``, ``locks/``, ``corrupt/``."""

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
        self._cache_lock = threading.Lock()
        # id -> (stat key, summary); see list_summaries
        self._summaries: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}
        self._scanned_dir_mtime: int | None = None
        self._index_loaded = False
        self._index_dirty = False
        self._index_saved_at = -INDEX_SAVE_SECONDS
        # The summaries sorted newest first; None after any change (see list_summaries).
        self._order: list[dict[str, Any]] | None = None
        # id -> (the file's bytes as this store last wrote them, the Session they hold): an
        # update of a file nobody changed since skips parsing it again (most of an append).
        self._parsed: OrderedDict[str, tuple[bytes, Session]] = OrderedDict()
        self._parsed_lock = threading.Lock()
        self.problems: list[str] = []
        self._sweep_temp_files(stale_temp_seconds)

    def _sweep_temp_files(self, older_than: float) -> None:
        """Remove temp files of writers killed mid-save (a live save takes milliseconds)."""
        cutoff = time.time() - older_than
        with contextlib.suppress(OSError), os.scandir(self.sessions_dir) as entries:
            for entry in entries:
                if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        if entry.stat().st_mtime <= cutoff:
                            os.unlink(entry.path)

    # -- paths and locks -------------------------------------------------------------------

    def session_file(self, session_id: str) -> Path:
        return self.sessions_dir / f"{validate_session_id(session_id)}{SUFFIX}"

    @contextlib.contextmanager
    def lock(self, session_id: str) -> Iterator[None]:
        """Hold the cross-process lock of one session."""
        lock_file = self.locks_dir / f"{validate_session_id(session_id)}.lock"
        lock = FileLock(lock_file, timeout=self.lock_timeout, mode=FILE_MODE)
        try:
            lock.acquire(poll_interval=0.002)
        except Timeout:
            raise StoreUnavailable(
                f"Session {session_id} is locked by another process; try again."
            ) from None
        except OSError as exc:
            raise _storage_error(lock_file, exc) from exc
        try:
            yield
        finally:
            lock.release()

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
        try:
            session = Session.model_validate_json(raw)
            if session.id != session_id:
                raise ValueError(f"file holds session {session.id}")
        except ValueError as exc:
            where = self._set_aside(path, str(exc))
            raise SessionCorrupt(
                f"Session {session_id} could not be read and was moved to {where}."
            ) from exc
        return session

    def save(self, session: Session) -> None:
        """Write without reading first. Callers must hold ``lock(session.id)``."""
        self._write(self.session_file(session.id), session)

    def update(self, session_id: str, change: Callable[[Session], T]) -> tuple[Session, T]:
        """Read-modify-write under the session's lock. ``change`` mutates the session in place;
        if it raises, nothing is written."""
        path = self.session_file(session_id)
        with self.lock(session_id):
            raw = self._read(path, session_id)
            # Taken out of the cache while `change` runs: if it or the write fails, the
            # half-changed object is dropped, never reused.
            with self._parsed_lock:
                cached = self._parsed.pop(session_id, None)
            if cached is not None and cached[0] == raw:
                session = cached[1]  # the file is as we wrote it: nothing to parse
            else:
                session = self._parse(path, session_id, raw)
            result = change(session)
            data = self._write(path, session)
            with self._parsed_lock:
                self._parsed[session_id] = (data, session)
                while len(self._parsed) > PARSED_CACHE_SIZE:
                    self._parsed.popitem(last=False)
        # The caller gets its own top-level object and message list (the cached one must only
        # change under the lock); treat the messages themselves as read-only.
        return session.model_copy(update={"messages": list(session.messages)}), result

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
                raise _storage_error(path, exc) from exc
            with contextlib.suppress(OSError):
                fsync_dir(self.sessions_dir)
        with self._parsed_lock:
            self._parsed.pop(session_id, None)
        with self._cache_lock:
            self._summaries.pop(session_id, None)
            self._order = None
        return True

    def _write(self, path: Path, session: Session) -> bytes:
        from .models import utcnow

        session.updated_at = utcnow()
        data = session.model_dump_json(exclude={"status"}).encode()
        st = atomic_write(path, data)
        with self._cache_lock:
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            self._summaries[session.id] = (key, session.summary())
            self._index_dirty = True
            self._order = None
        return data

    # -- listing ---------------------------------------------------------------------------

    def list_summaries(self, notebook_key: str | None = None) -> list[dict[str, Any]]:
        """Summaries, newest first, optionally for one notebook. Cheap when nothing changed."""
        with self._cache_lock:
            self._refresh()
            if self._order is None:
                self._order = sorted(
                    (summary for _, summary in self._summaries.values()),
                    key=lambda row: (row["updated_at"], row["id"]),
                    reverse=True,
                )
            order = self._order
        if notebook_key is not None:
            return [dict(row) for row in order if row["notebook_key"] == notebook_key]
        return [dict(row) for row in order]

    def _refresh(self) -> None:
        if not self._index_loaded:
            self._load_index()
        try:
            dir_mtime = self.sessions_dir.stat().st_mtime_ns
        except OSError:
            return
        if dir_mtime == self._scanned_dir_mtime:
            return
        started = time.time_ns()
        seen: set[str] = set()
        with os.scandir(self.sessions_dir) as entries:
            for entry in entries:
                name = entry.name
                if not name.endswith(SUFFIX) or name.startswith("."):
                    continue
                session_id = name[: -len(SUFFIX)]
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                key = (st.st_ino, st.st_size, st.st_mtime_ns)
                seen.add(session_id)
                cached = self._summaries.get(session_id)
                if cached is not None and cached[0] == key:
                    continue
                self._read_summary(session_id, Path(entry.path), key)
        for gone in set(self._summaries) - seen:
            del self._summaries[gone]
            self._index_dirty = True
            self._order = None
        trusted = (started - dir_mtime) / 1e9 > RACY_SECONDS
        self._scanned_dir_mtime = dir_mtime if trusted else None
        if self._index_dirty and time.monotonic() - self._index_saved_at >= INDEX_SAVE_SECONDS:
            self._save_index()

    def _read_summary(self, session_id: str, path: Path, key: tuple[int, int, int]) -> None:
        try:
            validate_session_id(session_id)
            session = Session.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return
        except (ValueError, NotFound) as exc:
            self._set_aside(path, str(exc))
            self._summaries.pop(session_id, None)
            self._order = None
            return
        self._summaries[session_id] = (key, session.summary())
        self._index_dirty = True
        self._order = None

    # The index file is only a cache of summaries (rebuilt from the session files when it is
    # missing or stale), so it is written without fsync.
    def _load_index(self) -> None:
        self._index_loaded = True
        self._order = None
        try:
            data = json.loads((self.root / INDEX_FILE).read_bytes())
            rows = data["summaries"] if data.get("version") == 1 else {}
            for session_id, (key, summary) in rows.items():
                self._summaries.setdefault(session_id, (tuple(key), summary))
        except (OSError, ValueError, KeyError, TypeError):
            return

    def _save_index(self) -> None:
        rows = {sid: [list(key), summary] for sid, (key, summary) in self._summaries.items()}
        data = json.dumps({"version": 1, "summaries": rows}, separators=(",", ":")).encode()
        try:
            atomic_write(self.root / INDEX_FILE, data, durable=False)
            self._index_dirty = False
            self._index_saved_at = time.monotonic()
        except StoreUnavailable as exc:
            log.debug("Summary cache not written: %s", exc)

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
        message = f"Session file {path.name} was unreadable ({reason[:200]}); moved to {target}"
        log.error(message)
        self.problems.append(message)
        del self.problems[:-20]
        return target
