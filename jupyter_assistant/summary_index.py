"""The store's listing: every session's summary, kept current without parsing every file.

Each summary is cached with the stat key of its file and its JSON encoding (summaries.py).
Every writer appends the id it saved or deleted to ``changes.log``, so a lister re-reads only
the files named since its last look, with a full scan of the folder's stats when the log is
missing, replaced or unreadable, and every ``FULL_SCAN_SECONDS`` (for writers that do not log
but replace the file: older versions of this package). A file rewritten in place by another
program (it leaves the folder's mtime unchanged) is seen within ``FULL_SCAN_SECONDS`` of the
next start, or when the store writes that session. The rows are saved to ``index.json``
(index_file.py) now and then, so that the first listing after a start reads one file, not
ten thousand.

pydantic is imported only to parse a file that is not plainly a session (``parse``), never to
list: the server's first ``GET sessions`` does not wait for it.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NewerSchema, NotFound, StoreUnavailable
from .index_file import INDEX_FILE, index_bytes, parse_rows, read_index
from .storage import FILE_MODE, SUFFIX, atomic_write, validate_session_id
from .summaries import (
    IDLE_END,
    RUNNING_END,
    Row,
    listed_lines,
    no_gc,
    order_key,
    row_of,
    summary_from_json,
)

if TYPE_CHECKING:
    from .models import Session

log = logging.getLogger(__name__)

CHANGES_FILE = "changes.log"
_LOG_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
# The change log is replaced by an empty one past this size (about 28,000 saves); listers
# notice the new file and rescan once.
CHANGES_MAX_BYTES = 1 << 20
# Listers rescan every file's stat at least this often, for changes nobody logged.
FULL_SCAN_SECONDS = 10.0
# A folder mtime this close to "now" may still change within the same clock tick, so a scan
# that saw it is not trusted to be complete (the "racy git" problem).
RACY_SECONDS = 0.1
# The summary index is a cache (checked against the change log and each file's stat), so it is
# rewritten at most this often: writing 10,000 summaries costs more than a listing.
INDEX_SAVE_SECONDS = 30.0


class SummaryIndex:
    """The summaries of the sessions in ``sessions_dir``, and the change log that keeps them
    current. ``parse`` reads a file that is not plainly a session (raising NotFound when it was
    corrupt, and set aside); ``set_aside`` moves a file with an invalid name out of the way."""

    def __init__(
        self,
        root: Path,
        sessions_dir: Path,
        parse: Callable[[Path, str, bytes], Session],
        set_aside: Callable[[Path, str], object],
    ) -> None:
        self.root = root
        self.sessions_dir = sessions_dir
        self.changes_file = root / CHANGES_FILE
        self._parse = parse
        self._set_aside = set_aside
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
        # Change-log entries this store appended and has not read back yet, per id: a logged
        # change that is not one of ours is re-read even if its file's stat key looks the same
        # (coarse mtimes and reused inodes can repeat a key).
        self._own_entries: Counter[str] = Counter()
        self._own_lock = threading.Lock()

    # -- what writers tell it --------------------------------------------------------------

    def put(self, row: Row, summary: dict[str, Any]) -> None:
        """A session this store has just written (its row from the written file's stat)."""
        with self._cache_lock:
            self._set_row(row, summary)

    def forget(self, session_id: str) -> None:
        with self._cache_lock:
            self._drop_row(session_id)

    # -- the change log --------------------------------------------------------------------

    def log_change(self, session_id: str) -> None:
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
        read = _read_log_file(self.changes_file, lambda st: max(0, st.st_size - 64))
        if read is None:
            return None
        st, tail = read
        assert tail is not None
        return st.st_ino, st.st_size - len(tail) + tail.rfind(b"\n") + 1

    def _read_log(self) -> bool:
        """Apply the sessions logged since the last look. False when the log cannot be trusted
        (missing, replaced, shorter than read, or garbled): then the caller scans."""
        pos = self._log_pos
        if pos is None:
            return False
        ino, offset = pos
        read = _read_log_file(
            self.changes_file,
            lambda st: offset if st.st_ino == ino and st.st_size >= offset else None,
        )
        if read is None:
            return False
        data = read[1]
        if data is None:  # another log, or shorter than read
            with self._own_lock:  # our entries in the old log will not be read back
                self._own_entries.clear()
            return False
        if not data:
            return True
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

    def _load_index(self) -> None:
        self._index_loaded = True
        found = read_index(self.root / INDEX_FILE)
        if found is None:
            return
        columns, lines, log_pos = found
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
            rows = parse_rows(columns, lines)
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
        data = index_bytes(self._newest_first(None), self._log_pos)
        try:
            atomic_write(self.root / INDEX_FILE, data, durable=False)
            self._index_dirty = False
            self._index_saved_at = time.monotonic()
        except StoreUnavailable as exc:
            log.debug("Summary cache not written: %s", exc)


def _read_log_file(
    path: Path, start_of: Callable[[os.stat_result], int | None]
) -> tuple[os.stat_result, bytes | None] | None:
    """The change log's stat and its bytes from ``start_of(stat)`` to the end (None when
    ``start_of`` gives None), or None when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        start = start_of(st)
        if start is None or start >= st.st_size:
            return st, None if start is None else b""
        return st, os.pread(fd, st.st_size - start, start)
    except OSError:
        return None
    finally:
        os.close(fd)
