"""Provider processes: spawn in their own process group, record them on disk, terminate the whole
tree safely, reap what a dead owner left behind.

Why records on disk: the server and kernels (magics) both run turns; either may cancel the
other's turn, and a server killed with SIGKILL leaves a provider behind that the next start-up
must find. Why the marker variable: every process the provider starts inherits
``JUPYTER_ASSISTANT_TURN=<turn_id>``, so a descendant that left the process group (setsid, a
daemonized server) is still found, and a PID that was reused by an unrelated process is never
signalled (its environment does not carry the marker; a leader must also match its start time).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .store import atomic_write, ensure_private_dir, validate_session_id

if TYPE_CHECKING:
    # Imported where used: listing sessions (the first request after start-up) needs psutil
    # only when a process record exists.
    import psutil

log = logging.getLogger(__name__)

MARKER_ENV = "JUPYTER_ASSISTANT_TURN"
# Start times are read from /proc with a resolution of clock ticks; allow for rounding.
START_TIME_TOLERANCE = 0.05


def process_identity(pid: int | None = None) -> tuple[int, float]:
    import psutil

    proc = psutil.Process(pid)
    return proc.pid, proc.create_time()


def identity_alive(pid: int, create_time: float) -> bool:
    """True if the process ``pid`` started at ``create_time`` is still alive (not a zombie)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > START_TIME_TOLERANCE:
            return False
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


@dataclass
class ProcessRecord:
    session_id: str
    turn_id: str
    pid: int
    pgid: int
    create_time: float
    owner_pid: int
    owner_create_time: float
    started_at: float = field(default_factory=time.time)
    # Sent to the provider itself on cancel (e.g. SIGINT lets Claude Code stop its tools and
    # save the conversation); the rest of the tree gets SIGTERM.
    interrupt_signal: int = int(signal.SIGTERM)
    # The turn id the provider's processes carry in MARKER_ENV, when it is not ``turn_id``: a
    # warm provider (turns/warm.py) keeps the marker of the turn that started it.
    marker: str = ""

    @property
    def process_marker(self) -> str:
        return self.marker or self.turn_id

    def owner_alive(self) -> bool:
        return identity_alive(self.owner_pid, self.owner_create_time)

    def owned_by_me(self) -> bool:
        return self.owner_pid == os.getpid()


class ProcessRegistry:
    """One record per session with a running turn: ``<root>/processes/<session_id>.json``."""

    def __init__(self, root: Path | str) -> None:
        self.dir = Path(root) / "processes"
        ensure_private_dir(self.dir)
        self._identity: tuple[int, float] | None = None

    @property
    def _me(self) -> tuple[int, float]:
        """This process's (pid, start time), the owner of the records it writes (looked up on
        first use: listing, the first request after start-up, does not need psutil)."""
        if self._identity is None:
            self._identity = process_identity()
        return self._identity

    def _file(self, session_id: str, suffix: str = ".json") -> Path:
        return self.dir / f"{validate_session_id(session_id)}{suffix}"

    def claim(self, session_id: str, turn_id: str) -> ProcessRecord:
        """Mark the session as running before the provider exists (pid 0). Call it under the
        session's store lock, after checking that no live owner holds a record."""
        rec = ProcessRecord(
            session_id=session_id,
            turn_id=turn_id,
            pid=0,
            pgid=0,
            create_time=time.time(),
            owner_pid=self._me[0],
            owner_create_time=self._me[1],
        )
        self.write(rec)
        return rec

    def new_record(
        self,
        session_id: str,
        turn_id: str,
        pid: int,
        interrupt_signal: int = int(signal.SIGTERM),
    ) -> ProcessRecord:
        """The record of a spawned provider (the leader of its own process group), not yet
        written: ``write`` it."""
        import psutil

        try:
            create_time = psutil.Process(pid).create_time()
        except psutil.NoSuchProcess:
            create_time = time.time()
        rec = ProcessRecord(
            session_id=session_id,
            turn_id=turn_id,
            pid=pid,
            pgid=pid,  # start_new_session=True makes the child its own group (and session) leader
            create_time=create_time,
            owner_pid=self._me[0],
            owner_create_time=self._me[1],
            interrupt_signal=interrupt_signal,
        )
        return rec

    def write(self, rec: ProcessRecord) -> None:
        # Not fsync'd: the record only matters while processes live, and they die with the OS.
        atomic_write(self._file(rec.session_id), _record_bytes(rec), durable=False)

    def read(self, session_id: str) -> ProcessRecord | None:
        try:
            data = json.loads(self._file(session_id).read_bytes())
            return ProcessRecord(**data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            log.warning("Unreadable process record for %s: %s", session_id, exc)
            return None

    def clear(self, session_id: str, turn_id: str | None = None) -> None:
        """Remove the record; with ``turn_id``, only if it still belongs to that turn."""
        if turn_id is not None:
            current = self.read(session_id)
            if current is not None and current.turn_id != turn_id:
                return
        for suffix in (".json", ".cancel"):
            with contextlib.suppress(FileNotFoundError):
                self._file(session_id, suffix).unlink()

    def all(self) -> list[ProcessRecord]:
        records = []
        for path in self.dir.glob("*.json"):
            rec = self.read(path.stem)
            if rec is not None:
                records.append(rec)
        return records

    def running_sessions(self) -> set[str]:
        return {rec.session_id for rec in self.all() if rec.owner_alive()}

    def is_running(self, session_id: str) -> bool:
        rec = self.read(session_id)
        return rec is not None and rec.owner_alive()

    def request_cancel(self, session_id: str, turn_id: str) -> None:
        """Tell the owner (maybe another process) that its turn was cancelled, not crashed.
        A separate file, because only the owner writes the record."""
        atomic_write(self._file(session_id, ".cancel"), turn_id.encode(), durable=False)

    def cancel_requested(self, session_id: str, turn_id: str) -> bool:
        try:
            return self._file(session_id, ".cancel").read_text() == turn_id
        except OSError:
            return False

    def orphans(self) -> list[ProcessRecord]:
        """Records whose owner process is gone (a server or kernel killed mid-turn)."""
        return [rec for rec in self.all() if not rec.owner_alive()]

    # -- warm providers (turns/warm.py): kept running between turns, not a running turn ----------

    @property
    def warm_dir(self) -> Path:
        return self.dir / WARM_DIR

    def write_warm(self, rec: ProcessRecord) -> None:
        """Record a provider kept running between the session's turns (``processes/warm/``:
        it does not make the session busy), so that a reaper finds it if its owner dies."""
        ensure_private_dir(self.warm_dir)
        path = self.warm_dir / f"{validate_session_id(rec.session_id)}.json"
        atomic_write(path, _record_bytes(rec), durable=False)

    def clear_warm(self, session_id: str, pid: int | None = None) -> None:
        """Remove the session's warm record (with ``pid``: only if it is that process's)."""
        path = self.warm_dir / f"{validate_session_id(session_id)}.json"
        if pid is not None:
            current = self._read_path(path)
            if current is not None and current.pid != pid:
                return
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def warm_records(self) -> list[ProcessRecord]:
        found = []
        for path in self.warm_dir.glob("*.json"):
            rec = self._read_path(path)
            if rec is not None:
                found.append(rec)
        return found

    def _read_path(self, path: Path) -> ProcessRecord | None:
        try:
            return ProcessRecord(**json.loads(path.read_bytes()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            log.warning("Unreadable process record %s: %s", path.name, exc)
            return None


WARM_DIR = "warm"


def _record_bytes(rec: ProcessRecord) -> bytes:
    data = asdict(rec)
    if not data["marker"]:
        del data["marker"]  # as records were before warm providers: older readers take it
    return json.dumps(data).encode()


async def spawn(
    argv: list[str],
    *,
    cwd: str,
    env: dict[str, str],
    turn_id: str,
    stdin: bool = True,
    line_limit: int = 8 * 1024 * 1024,
) -> asyncio.subprocess.Process:
    """Start a provider in a new session and process group, marked with the turn id."""
    # A NUL cannot travel in argv or the environment (user text such as a request's context
    # may hold one): replace it rather than fail the turn.
    argv = [arg.replace("\0", "\ufffd") for arg in argv]
    env = {key: value.replace("\0", "\ufffd") for key, value in env.items() if "\0" not in key}
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env={**env, MARKER_ENV: turn_id},
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        limit=line_limit,
    )


def spawned_providers() -> dict[int, str]:
    """This process's children that are providers (they carry the turn marker): pid -> turn id.
    Found from the OS, so a provider whose record was not made yet is found too."""
    import psutil

    found: dict[int, str] = {}
    try:
        children = psutil.Process().children(recursive=False)
    except (psutil.Error, OSError):
        return found
    for child in children:
        try:
            turn_id = child.environ().get(MARKER_ENV)
        except (psutil.Error, OSError):
            continue
        if turn_id:
            found[child.pid] = turn_id
    return found


def _carries_marker(proc: psutil.Process, turn_id: str) -> bool:
    import psutil

    try:
        return bool(proc.environ().get(MARKER_ENV) == turn_id)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return False


def find_tree(rec: ProcessRecord) -> list[psutil.Process]:
    """Every live process of the turn: the verified leader, its descendants, and any process
    carrying the turn's marker (e.g. one that left the group). Nothing unverified."""
    import psutil

    found: dict[int, psutil.Process] = {}
    if rec.pid > 0 and identity_alive(rec.pid, rec.create_time):
        try:
            leader = psutil.Process(rec.pid)
            found[leader.pid] = leader
            for child in leader.children(recursive=True):
                found[child.pid] = child
        except psutil.NoSuchProcess:
            pass
    for proc in psutil.process_iter():
        if proc.pid in found:
            continue
        try:
            if proc.create_time() + START_TIME_TOLERANCE < rec.create_time:
                continue  # older than the turn: cannot be one of its processes
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if _carries_marker(proc, rec.process_marker):
            found[proc.pid] = proc
    return [proc for proc in found.values() if _alive(proc)]


def _alive(proc: psutil.Process) -> bool:
    import psutil

    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _signal_all(rec: ProcessRecord, procs: Iterable[psutil.Process], sig: int) -> None:
    import psutil

    # The group first (one syscall reaches every member, even one forked a moment ago), but
    # only while the verified leader holds it: a group id is not reused while its leader lives.
    if rec.pgid > 0 and rec.pid > 0 and identity_alive(rec.pid, rec.create_time):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(rec.pgid, sig)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.send_signal(sig)


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Poll until every process is gone (zombies count as gone: their parent reaps them)."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    alive = [p for p in procs if _alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.02)
        alive = [p for p in alive if _alive(p)]
    return alive


def terminate_tree(rec: ProcessRecord, grace: float) -> dict[str, Any]:
    """SIGTERM the turn's whole tree, SIGKILL what is left after ``grace`` seconds.

    Blocking; run it in a thread from async code. Returns what was done, for logs and tests.
    """
    import psutil

    procs = find_tree(rec)
    if not procs:
        return {"terminated": 0, "killed": 0}
    leader_alive = rec.pid > 0 and identity_alive(rec.pid, rec.create_time)
    if leader_alive and rec.interrupt_signal != signal.SIGTERM:
        # The provider gets its own interrupt signal, everything else SIGTERM, one by one
        # (a group-wide SIGTERM would reach the provider too and cut its clean stop short).
        for proc in procs:
            sig = rec.interrupt_signal if proc.pid == rec.pid else signal.SIGTERM
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                proc.send_signal(sig)
    else:
        _signal_all(rec, procs, signal.SIGTERM)
    # SIGCONT so that a stopped process can act on SIGTERM.
    _signal_all(rec, procs, signal.SIGCONT)
    left = _wait_gone(procs, grace)
    killed = 0
    for _ in range(5):
        # Look again: a process may have forked between the snapshot and the signal.
        left = [p for p in {p.pid: p for p in left + find_tree(rec)}.values() if _alive(p)]
        if not left:
            break
        killed += len(left)
        _signal_all(rec, left, signal.SIGKILL)
        left = _wait_gone(left, 2.0)
    if left:
        log.error("Processes of turn %s survived SIGKILL: %s", rec.turn_id, [p.pid for p in left])
    return {"terminated": len(procs), "killed": killed}


async def terminate_tree_async(rec: ProcessRecord, grace: float) -> dict[str, Any]:
    return await asyncio.to_thread(terminate_tree, rec, grace)
