"""The file layer of the session store: private folders, atomic writes, per-session locks.

Everything here is about one file at a time and knows nothing of sessions' contents:

* ``atomic_write``: temp file in the same folder, write, fsync, ``os.replace``, fsync the
  folder, so a reader sees the old or the new file, never half of one, even after a crash;
* ``session_lock``: a cross-process lock (``flock``, released when its holder dies), with a
  lock file of its own on file systems that have no flock;
* session ids are validated before any path is built from them (no path traversal).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import InsufficientStorage, NotFound, StoreUnavailable

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
SUFFIX = ".json"
LOCK_POLL_SECONDS = 0.002
IOV_MAX = 1024  # buffers per writev
# Event journals of turns run by kernels (journal.py), removed with their session.
JOURNALS_DIR = "turns"


def validate_session_id(session_id: str) -> str:
    """Return the canonical id, or raise NotFound. Runs before any path is built from the id."""
    try:
        canonical = str(uuid.UUID(session_id))
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"Unknown session: {session_id!r}") from None
    if canonical != session_id:
        raise NotFound(f"Unknown session: {session_id!r}")
    return canonical


def is_session_id(name: str) -> bool:
    try:
        validate_session_id(name)
    except NotFound:
        return False
    return True


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


def storage_error(path: Path, exc: OSError) -> StoreUnavailable:
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
        raise storage_error(path, exc) from exc
    return written_stat


@contextlib.contextmanager
def session_lock(lock_file: Path, timeout: float) -> Iterator[None]:
    """Hold the cross-process lock ``lock_file``: ``flock`` on it (lock files stay, so that
    every process locks the same inode). Released when the descriptor is closed, also when the
    holder dies. Raises StoreUnavailable after ``timeout`` seconds."""
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    except OSError as exc:
        raise storage_error(lock_file, exc) from exc
    try:
        if not _flock(fd, lock_file, timeout):
            with _soft_lock(lock_file, timeout):
                yield
            return
        yield
    finally:
        os.close(fd)


def _locked_elsewhere(lock_file: Path) -> StoreUnavailable:
    return StoreUnavailable(f"Session {lock_file.stem} is locked by another process; try again.")


def _flock(fd: int, lock_file: Path, timeout: float) -> bool:
    """Take the flock, polling until ``timeout``; False if the file system has none."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno == errno.ENOSYS:
                return False
            raise storage_error(lock_file, exc) from exc
        if time.monotonic() >= deadline:
            raise _locked_elsewhere(lock_file)
        time.sleep(LOCK_POLL_SECONDS)


@contextlib.contextmanager
def _soft_lock(lock_file: Path, timeout: float) -> Iterator[None]:
    # A file system without flock (ENOSYS, some FUSE mounts): filelock, which falls back to
    # a lock file of its own there (what this store used before it took flock itself).
    from filelock import FileLock, Timeout

    soft = FileLock(lock_file.with_suffix(".softlock"), timeout=timeout)
    try:
        soft.acquire(poll_interval=LOCK_POLL_SECONDS)
    except Timeout:
        raise _locked_elsewhere(lock_file) from None
    try:
        yield
    finally:
        soft.release()
