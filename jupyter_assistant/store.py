"""SessionStore: one JSON file per session, crash-safe and shared between processes.

The Jupyter server and any number of kernels (the magics) read and write the same store, so:

* every write is atomic (temp file in the same folder, fsync, ``os.replace``, fsync the folder),
  so a reader sees the old or the new file, never half of one, even after a crash;
* every read-modify-write holds a per-session cross-process lock (``flock``), so no update is
  lost;
* a corrupt file is moved to ``corrupt/`` and reported, and never breaks the other sessions;
* a turn's writes (``edit``) cost the same whatever the length of the history: the file is
  laid out as its other fields followed by the messages, and this store remembers where each
  message's JSON lies in the bytes it last wrote, so appending or replacing a message splices
  bytes instead of parsing and serializing the history. The stored messages are never handed
  out as objects on that path, so none can be changed in place and then silently not saved;
  ``update`` (any change) parses and serializes everything (the layout: session_layout.py);
* listing never parses every file: each summary is cached with the stat key of its file and
  its JSON encoding (summaries.py); every writer appends the id it saved or deleted to
  ``changes.log``, so a lister re-reads only the files named since its last look, with a full
  scan of the folder's stats when the log is missing, replaced or unreadable, and every
  ``FULL_SCAN_SECONDS`` (for writers that do not log but replace the file: older versions of
  this package). A file rewritten in place by another program (it leaves the folder's mtime
  unchanged) is seen within ``FULL_SCAN_SECONDS`` of the next start, or when the store
  writes that session;
* pydantic is imported only to parse or serialize a session, never to list (the server's first
  ``GET sessions`` does not wait for it).
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import json
import logging
import mmap
import os
import secrets
import stat
import threading
import time
import uuid
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import InsufficientStorage, NewerSchema, NotFound, StoreUnavailable
from .session_layout import Layout, MessageLog, edited, holds, layout_of
from .summaries import (
    IDLE_END,
    RUNNING_END,
    Row,
    listed_lines,
    make_row,
    no_gc,
    order_key,
    row_of,
    summary_from_json,
)

if TYPE_CHECKING:
    from .models import Session

log = logging.getLogger(__name__)

T = TypeVar("T")

DIR_MODE = 0o700
FILE_MODE = 0o600
SUFFIX = ".json"
LOCK_POLL_SECONDS = 0.002

LAYOUT_CACHE_SIZE = 32  # sessions whose file layout is remembered (see edit)
IOV_MAX = 1024  # buffers per writev

# -- listing
CHANGES_FILE = "changes.log"
# Event journals of turns run by kernels (journal.py), removed with their session.
JOURNALS_DIR = "turns"
_LOG_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
# The change log is replaced by an empty one past this size (about 28,000 saves); listers
# notice the new file and rescan once.
CHANGES_MAX_BYTES = 1 << 20
# Listers rescan every file's stat at least this often, for changes nobody logged.
FULL_SCAN_SECONDS = 10.0
# A folder mtime this close to "now" may still change within the same clock tick, so a scan
# that saw it is not trusted to be complete (the "racy git" problem).
RACY_SECONDS = 0.1
INDEX_FILE = "index.json"
INDEX_VERSION = 2
# The summary index is a cache (checked against the change log and each file's stat), so it is
# rewritten at most this often: writing 10,000 summaries costs more than a listing.
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


def remove_journals(root: Path, session_id: str) -> None:
    """Remove the event journals of a session's turns (journal.py), as far as possible."""
    with contextlib.suppress(OSError):
        for journal in (root / JOURNALS_DIR).glob(f"{validate_session_id(session_id)}.*.jsonl"):
            with contextlib.suppress(OSError):
                journal.unlink()


def _storage_error(path: Path, exc: OSError) -> StoreUnavailable:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return InsufficientStorage(f"No space left to save {path.name}: free some disk space.")
    if exc.errno == errno.EROFS:
        return StoreUnavailable(f"The assistant store {path.parent} is on a read-only file system.")
    return StoreUnavailable(f"Could not write {path}: {exc.strerror or exc}")


def _write_all(fd: int, buffers: list[memoryview]) -> None:
    """Write the buffers one after the other (``writev``: no joining them first)."""
    buffers = [buffer for buffer in buffers if len(buffer)]
    while buffers:
        written = os.writev(fd, buffers[:IOV_MAX])
        while buffers and written >= len(buffers[0]):
            written -= len(buffers.pop(0))
        if written:
            buffers[0] = buffers[0][written:]


def atomic_write(
    path: Path, data: bytes | list[memoryview], *, durable: bool = True
) -> os.stat_result:
    """Replace ``path`` with ``data`` (bytes, or buffers written one after the other)
    atomically; the file is created ``0600``.

    Returns the stat of the new file, taken before it became visible, so that a concurrent
    writer cannot make the caller cache someone else's version."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            _write_all(fd, [memoryview(data)] if isinstance(data, bytes) else data)
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


# -- the store ---------------------------------------------------------------------------------


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
        self.changes_file = self.root / CHANGES_FILE
        self.lock_timeout = lock_timeout
        for folder in (self.root, self.sessions_dir, self.locks_dir):
            ensure_private_dir(folder)
        # Listing state, under _cache_lock: id -> row (see _rows); the index's rows while
        # still text; the rows sorted oldest first (None: to be sorted); how far the change
        # log was read (inode, offset); the last full scan.
        self._cache_lock = threading.Lock()
        self._by_id: dict[str, Row] = {}
        self._unparsed: tuple[bytes, str] | None = None
        self._summaries: dict[str, dict[str, Any]] = {}  # id -> summary, parsed when asked for
        self._order: list[Row] | None = None
        self._log_pos: tuple[int, int] | None = None
        self._scanned_at = -FULL_SCAN_SECONDS
        self._scanned_dir_mtime: int | None = None
        self._index_loaded = False
        self._index_dirty = False
        self._index_saved_at = -INDEX_SAVE_SECONDS
        # id -> the layout of the file as this store last wrote it (see edit)
        self._layouts: OrderedDict[str, Layout] = OrderedDict()
        self._layouts_lock = threading.Lock()
        self.problems: list[str] = []
        # Change-log entries this store appended and has not read back yet, per id: a logged
        # change that is not one of ours is re-read even if its file's stat key looks the same
        # (coarse mtimes and reused inodes can repeat a key).
        self._own_entries: Counter[str] = Counter()
        self._own_lock = threading.Lock()
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

    @contextlib.contextmanager
    def lock(self, session_id: str) -> Iterator[None]:
        """Hold the cross-process lock of one session: ``flock`` on ``locks/<id>.lock`` (the
        lock files stay, so that every process locks the same inode). Released when the
        descriptor is closed, also when the holder dies."""
        lock_file = self.locks_dir / f"{validate_session_id(session_id)}.lock"
        if not self._swept:
            self.sweep_temp_files()
        try:
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
        except OSError as exc:
            raise _storage_error(lock_file, exc) from exc
        try:
            if not self._flock(fd, lock_file):
                with self._soft_lock(lock_file):
                    yield
                return
            yield
        finally:
            os.close(fd)

    def _flock(self, fd: int, lock_file: Path) -> bool:
        """Take the flock, polling until ``lock_timeout``; False if the file system has none."""
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno == errno.ENOSYS:
                    return False
                raise _storage_error(lock_file, exc) from exc
            if time.monotonic() >= deadline:
                raise StoreUnavailable(
                    f"Session {lock_file.stem} is locked by another process; try again."
                )
            time.sleep(LOCK_POLL_SECONDS)

    @contextlib.contextmanager
    def _soft_lock(self, lock_file: Path) -> Iterator[None]:
        # A file system without flock (ENOSYS, some FUSE mounts): filelock, which falls back to
        # a lock file of its own there (what this store used before it took flock itself).
        from filelock import FileLock, Timeout

        soft = FileLock(lock_file.with_suffix(".softlock"), timeout=self.lock_timeout)
        try:
            soft.acquire(poll_interval=LOCK_POLL_SECONDS)
        except Timeout:
            raise StoreUnavailable(
                f"Session {lock_file.stem} is locked by another process; try again."
            ) from None
        try:
            yield
        finally:
            soft.release()

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
                raise _storage_error(path, exc) from exc
            with contextlib.suppress(OSError):
                fsync_dir(self.sessions_dir)
            self._log_change(session_id)
            remove_journals(self.root, session_id)
        self._forget(session_id)
        return True

    def _forget(self, session_id: str) -> None:
        with self._layouts_lock:
            self._layouts.pop(session_id, None)
        with self._cache_lock:
            self._drop_row(session_id)

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
        with self._cache_lock:
            self._set_row(row, summary)
        self._log_change(session.id)

    # -- the change log --------------------------------------------------------------------

    def _log_change(self, session_id: str) -> None:
        """Append the id to the change log (after the file changed: a lister that reads the
        entry sees the change). Never fails the save: listers rescan within
        FULL_SCAN_SECONDS, and a log that could not be written is removed so that they rescan
        at once."""
        counted = self._log_pos is not None  # only a store that lists reads its entries back
        if counted:
            with self._own_lock:
                self._own_entries[session_id] += 1
        try:
            fd = os.open(self.changes_file, _LOG_FLAGS, FILE_MODE)
            try:
                os.write(fd, f"{session_id}\n".encode())  # one write: O_APPEND keeps it whole
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size > CHANGES_MAX_BYTES:
                atomic_write(self.changes_file, b"", durable=False)
        except (OSError, StoreUnavailable) as exc:
            log.debug("Change log not written (%s); listers will rescan", exc)
            with contextlib.suppress(OSError):
                self.changes_file.unlink()
            if counted:
                with self._own_lock:
                    self._own_entries[session_id] -= 1

    def _log_state(self) -> tuple[int, int] | None:
        """(inode, offset after the last complete entry) of the change log, or None."""
        try:
            fd = os.open(self.changes_file, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            tail = os.pread(fd, 64, max(0, st.st_size - 64))
        except OSError:
            return None
        finally:
            os.close(fd)
        return st.st_ino, st.st_size - len(tail) + tail.rfind(b"\n") + 1

    def _read_log(self) -> bool:
        """Apply the sessions logged since the last look. False when the log cannot be trusted
        (missing, replaced, shorter than read, or garbled): then the caller scans."""
        pos = self._log_pos
        if pos is None:
            return False
        try:
            fd = os.open(self.changes_file, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            st = os.fstat(fd)
            if st.st_ino != pos[0] or st.st_size < pos[1]:
                with self._own_lock:  # our entries in the old log will not be read back
                    self._own_entries.clear()
                return False
            if st.st_size == pos[1]:
                return True
            data = os.pread(fd, st.st_size - pos[1], pos[1])
        except OSError:
            return False
        finally:
            os.close(fd)
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        try:
            changed = Counter(data[:end].decode("ascii").split())
            for session_id in changed:
                validate_session_id(session_id)
        except (UnicodeDecodeError, NotFound):
            # Not written by a store (appends are whole lines): start a clean log.
            with contextlib.suppress(StoreUnavailable):
                atomic_write(self.changes_file, b"", durable=False)
            return False
        with self._own_lock:
            foreign = {}
            for session_id, entries in changed.items():
                ours = min(entries, self._own_entries[session_id])
                self._own_entries[session_id] -= ours
                foreign[session_id] = entries > ours
            self._own_entries += Counter()  # drop the ids at zero
        for session_id in changed:
            self._refresh_one(session_id, reread=foreign[session_id])
        self._log_pos = (pos[0], pos[1] + end)
        return True

    # -- listing ---------------------------------------------------------------------------

    def list_summaries(self, notebook_key: str | None = None) -> list[dict[str, Any]]:
        """Summaries, newest first, optionally for one notebook. Cheap when nothing changed."""
        with self._cache_lock:
            self._refresh()
            rows = self._newest_first(notebook_key)
            if not self._parse_summaries(rows):  # the index held garbage: rebuild it
                self._reset()
                self._refresh()
                rows = self._newest_first(notebook_key)
                self._parse_summaries(rows)
            summaries = self._summaries
            with no_gc():  # the caller's copies: thousands of dicts at once
                return [dict(summaries[row.id]) for row in rows if row.id in summaries]

    def summaries_json(self, notebook_key: str | None = None, running: Collection[str] = ()) -> str:
        """``list_summaries`` as a JSON array, without ``notebook_key``, ``status`` set from
        ``running``: joined from each summary's cached encoding (no per-row work but the
        status)."""
        with self._cache_lock:
            self._refresh()
            if self._unparsed is not None and notebook_key is None:
                return listed_lines(self._unparsed[1], running)
            rows = self._newest_first(notebook_key)
        return (
            "["
            + ",".join(row.json + (RUNNING_END if row.id in running else IDLE_END) for row in rows)
            + "]"
        )

    def _newest_first(self, notebook_key: str | None) -> list[Row]:
        rows = self._rows
        if self._order is None:
            self._order = sorted(rows.values(), key=order_key)
        if notebook_key is None:
            return self._order[::-1]
        return [row for row in reversed(self._order) if row.notebook_key == notebook_key]

    def _parse_summaries(self, rows: list[Row]) -> bool:
        """Make sure the summaries of ``rows`` are parsed (one parse for all of them: a summary
        is its row's JSON plus two fields). False if a row's JSON was not a summary."""
        summaries = self._summaries
        missing = [row for row in rows if row.id not in summaries]
        if not missing:
            return True
        ids = [row.id for row in missing]
        try:
            with no_gc():
                parsed = json.loads("[" + "},".join(row.json for row in missing) + "}]")
                if [summary["id"] for summary in parsed] != ids:
                    return False
                for row, summary in zip(missing, parsed, strict=True):
                    summary["notebook_key"] = row.notebook_key
                    summary["status"] = "idle"
        except (ValueError, TypeError, KeyError):  # not an array of summaries
            return False
        summaries.update(zip(ids, parsed, strict=True))
        return True

    def _set_row(self, row: Row, summary: dict[str, Any] | None = None) -> None:
        old = self._rows.get(row.id)
        self._rows[row.id] = row
        if summary is None:
            self._summaries.pop(row.id, None)
        else:
            self._summaries[row.id] = summary
        if self._order is not None:
            if old is not None:
                self._remove_from_order(old)
            if self._order is not None:
                bisect.insort(self._order, row, key=order_key)
        self._index_dirty = True

    def _drop_row(self, session_id: str) -> None:
        old = self._rows.pop(session_id, None)
        self._summaries.pop(session_id, None)
        if old is not None:
            self._remove_from_order(old)
            self._index_dirty = True

    def _remove_from_order(self, row: Row) -> None:
        if self._order is None:
            return
        index = bisect.bisect_left(self._order, order_key(row), key=order_key)
        if index < len(self._order) and self._order[index] is row:
            del self._order[index]
        else:
            self._order = None  # not where it should be: sort again

    def _reset(self) -> None:
        self._unparsed = None
        self._by_id.clear()
        self._summaries.clear()
        self._order = None
        self._log_pos = None
        self._scanned_dir_mtime = None
        self._scanned_at = -FULL_SCAN_SECONDS
        self._index_dirty = True

    def _refresh(self) -> None:
        if not self._index_loaded:
            self._load_index()
        scan_due = time.monotonic() - self._scanned_at >= FULL_SCAN_SECONDS
        if scan_due or not self._read_log():
            self._full_scan()
        if self._index_dirty and time.monotonic() - self._index_saved_at >= INDEX_SAVE_SECONDS:
            self._save_index()

    def _full_scan(self) -> None:
        """Look at every file's stat (skipped while the folder's mtime has not moved since a
        scan that saw everything); read the files whose stat changed."""
        log_state = self._log_state()  # before the scan: entries after it are read next time
        if log_state is None:  # start one, so that the next listing (or start) can use it
            with contextlib.suppress(OSError):
                os.close(os.open(self.changes_file, _LOG_FLAGS, FILE_MODE))
            log_state = self._log_state()
        try:
            dir_mtime = self.sessions_dir.stat().st_mtime_ns
        except OSError:
            return
        started = time.time_ns()
        if dir_mtime != self._scanned_dir_mtime:
            seen: set[str] = set()
            complete = True  # every file looked at; else the next scan must look again
            with no_gc(), os.scandir(self.sessions_dir) as entries:
                for entry in entries:
                    name = entry.name
                    if not name.endswith(SUFFIX) or name.startswith("."):
                        continue
                    session_id = name[: -len(SUFFIX)]
                    try:
                        st = entry.stat()
                    except FileNotFoundError:
                        continue
                    except OSError:
                        seen.add(session_id)  # there, but not readable now: keep its row
                        complete = False
                        continue
                    seen.add(session_id)
                    complete = self._check_file(session_id, entry.path, st) and complete
            for gone in set(self._rows) - seen:
                self._drop_row(gone)
            trusted = complete and (started - dir_mtime) / 1e9 > RACY_SECONDS
            self._scanned_dir_mtime = dir_mtime if trusted else None
        if log_state != self._log_pos:
            self._index_dirty = True  # the index on disk should say where to read from
        self._log_pos = log_state
        self._scanned_at = time.monotonic()

    def _refresh_one(self, session_id: str, reread: bool = False) -> None:
        path = self.sessions_dir / f"{session_id}{SUFFIX}"
        try:
            st = path.stat()
        except FileNotFoundError:
            self._drop_row(session_id)
            return
        except OSError:
            self._scanned_dir_mtime = None  # its log entry is used up: the next scan looks
            return
        if not self._check_file(session_id, path, st, reread):
            self._scanned_dir_mtime = None

    def _check_file(
        self, session_id: str, where: str | Path, st: os.stat_result, reread: bool = False
    ) -> bool:
        """Update the row of one file if its stat changed (or ``reread``: another process
        logged a change to it). False if it could not be read now (EMFILE, EIO...): its row is
        left as it was, for a later scan to try again."""
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        cached = self._rows.get(session_id)
        if cached is not None and cached.key == key and not reread:
            return True
        try:
            validate_session_id(session_id)
            with open(where, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            self._drop_row(session_id)
            return True
        except NotFound as exc:
            self._set_aside(Path(where), str(exc))
            self._drop_row(session_id)
            return True
        except OSError:
            return False
        try:
            summary = summary_from_json(json.loads(raw))
        except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
            summary = None
        if summary is None or summary["id"] != session_id:
            try:  # not plainly ours: validate it properly (and set it aside if corrupt)
                summary = self._parse(Path(where), session_id, raw).summary()
            except (NotFound, NewerSchema):  # set aside, or left for the newer version
                self._drop_row(session_id)
                return True
        self._set_row(*row_of(key, summary))
        return True

    # The index file is only a cache of the rows (rebuilt from the session files when it is
    # missing or damaged), so it is written without fsync. Lines: a CRC of the rest; a header
    # (version, where the change log was read to); the rows' columns as JSON; then each row's
    # JSON on a line of its own (JSON text holds no raw newline), newest first. Loading keeps
    # the columns and rows as text until something needs the rows: until a session changes,
    # "list all" is the row lines with their status added, without parsing any row.
    def _load_index(self) -> None:
        self._index_loaded = True
        try:
            # Mapped and sliced, not read and split: each copy of a few MB costs milliseconds
            # of page faults in a server's heap.
            with (
                open(self.root / INDEX_FILE, "rb") as handle,
                mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
                memoryview(data) as view,
            ):
                first = data.find(b"\n")
                second = data.find(b"\n", first + 1)
                third = data.find(b"\n", second + 1)
                if min(first, second, third) < 0:
                    return
                if int(data[:first], 16) != zlib.crc32(view[first + 1 :]):
                    return
                header = json.loads(data[first + 1 : second])
                if header.get("version") != INDEX_VERSION:
                    return
                columns = data[second + 1 : third]
                lines = str(view[third + 1 :], "ascii")
            log_pos = (int(header["log"][0]), int(header["log"][1])) if header["log"] else None
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            return
        self._unparsed = (columns, lines)
        if self._by_id:  # this store wrote sessions before its first listing: merge now
            self._parse_index()
        if log_pos is not None:
            # Trusted like a scan that has just been made: what changed since, the log says.
            self._log_pos = log_pos
            self._scanned_at = time.monotonic()

    @property
    def _rows(self) -> dict[str, Row]:
        """id -> row, the index's rows parsed first if they are still text."""
        if self._unparsed is not None:
            self._parse_index()
        return self._by_id

    def _parse_index(self) -> None:
        assert self._unparsed is not None
        columns, lines = self._unparsed
        self._unparsed = None
        try:
            with no_gc():
                meta = json.loads(columns)
                ids, keys, times, notebooks = (
                    meta[name] for name in ("ids", "keys", "updated", "notebook_keys")
                )
                texts = lines.split("\n") if ids else []
                if len(keys) != 3 * len(ids):
                    raise ValueError("index columns differ in length")
                inos, sizes, mtimes = keys[0::3], keys[1::3], keys[2::3]
                columns_ = zip(ids, inos, sizes, mtimes, times, notebooks, texts, strict=True)
                rows = list(map(make_row, columns_))
        except (ValueError, KeyError, TypeError):
            self._reset()
            self._full_scan()  # the rows from the files themselves
            return
        rows.reverse()  # oldest first
        if self._by_id:  # what this store wrote before its first listing is newer
            for row in rows:
                self._by_id.setdefault(row.id, row)
            self._order = None
        else:
            self._by_id = {row.id: row for row in rows}
            self._order = rows

    def _save_index(self) -> None:
        rows = self._newest_first(None)
        header = {"version": INDEX_VERSION, "log": self._log_pos}
        columns = {
            "ids": [row.id for row in rows],
            "keys": [number for row in rows for number in row.key],
            "updated": [row.updated_at for row in rows],
            "notebook_keys": [row.notebook_key for row in rows],
        }
        rest = b"\n".join(
            [
                json.dumps(header, separators=(",", ":")).encode(),
                json.dumps(columns, separators=(",", ":")).encode(),
                "\n".join(row.json for row in rows).encode("ascii"),
            ]
        )
        try:
            atomic_write(self.root / INDEX_FILE, b"%08x\n" % zlib.crc32(rest) + rest, durable=False)
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
        if _is_session_id(path.stem):
            self._log_change(path.stem)
        with self._layouts_lock:
            self._layouts.pop(path.stem, None)
        message = f"Session file {path.name} was unreadable ({reason[:200]}); moved to {target}"
        log.error(message)
        self.problems.append(message)
        del self.problems[:-20]
        return target


def _is_session_id(name: str) -> bool:
    try:
        validate_session_id(name)
    except NotFound:
        return False
    return True
