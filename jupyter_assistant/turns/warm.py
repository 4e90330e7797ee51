"""Warm providers: a session's provider process kept running between its turns.

A CLI that can take its next message on the same process (Claude Code with ``--input-format
stream-json``: the next ``user`` line starts the next turn) costs its start-up and the reload
of its conversation only once. After a turn that ended with ``done``, the runner parks the
process here (``keep``); the session's next turn takes it back (``take``) if it is still what
a cold start would launch: alive, the same launch key (``LaunchSpec.reuse_key``: command line,
settings, model, permission mode, environment, folder, the system prompt; not the notebook
context, which goes with each message), the same conversation, and no turn ran elsewhere
since (a kernel's). Otherwise the parked process is ended and the turn starts cold, resuming
the conversation as always. A process may also be parked before the session's first turn
here (a pre-warm, prewarm.py), once the CLI is ready.

Bounded: a process idle for ``warm_idle_seconds`` is ended, and at most ``max_warm_processes``
are parked (the least recently used is ended first). Cancel stops a warm process's whole tree
like any other (stopping.py) and it is not parked again; delete, rename, shutdown end it here.
While parked, a process has a record in ``processes/warm/`` (ProcessRegistry.write_warm), not
the session's turn record: the session is idle, and a reaper still finds it if this server
dies. Nothing here knows tornado or IPython.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..processes import ProcessRecord, ProcessRegistry, terminate_tree
from ..providers.base import ProviderIO

log = logging.getLogger(__name__)


@dataclass(eq=False)
class WarmProcess:
    """A provider process that outlives its turn, and what the next turn needs of it."""

    session_id: str
    key: str  # the launch it was started with (LaunchSpec.reuse_key)
    proc: asyncio.subprocess.Process
    # Its tree: pid and start time, and the marker its processes carry (the turn that
    # started it); ``turn_id`` is that turn too.
    record: ProcessRecord
    stdin: ProviderIO
    stderr: bytearray  # the tail of its stderr, read for as long as it runs
    stderr_task: asyncio.Task[None]
    leftover: bytes = b""  # output read after the last turn's result (a partial line)
    conversation_id: str | None = None
    # The notebook tools' capability in its MCP configuration: the next turn's grant reuses
    # it (it is revoked at each turn's end, so between turns it grants nothing).
    capability: str | None = None
    # The session's message count the next turn must find as it begins (two more than the
    # last turn found): otherwise another process ran a turn meanwhile and the conversation
    # in this process is behind.
    next_history: int = -1
    # What the process's turns cost so far: Claude Code's result reports this running total,
    # so the next turn's own cost is its total less this.
    process_cost: float = 0.0
    last_used: float = 0.0
    recorded: bool = False
    timer: asyncio.TimerHandle | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.returncode is None


@dataclass
class WarmSettings:
    idle_seconds: float = 600.0
    max_processes: int = 4
    grace_seconds: float = 3.0  # to exit after its stdin closed, then for the tree's SIGTERM


class WarmPool:
    """The parked warm processes of this server, one per session, least recently used first."""

    def __init__(self, registry: ProcessRegistry, settings: WarmSettings) -> None:
        self.registry = registry
        self.settings = settings
        self._parked: OrderedDict[str, WarmProcess] = OrderedDict()
        self._ending: set[asyncio.Task[None]] = set()

    def parked(self) -> list[WarmProcess]:
        return list(self._parked.values())

    def holds(self, session_id: str) -> bool:
        return session_id in self._parked

    def capability(self, session_id: str) -> str | None:
        """The capability the session's parked process holds (its next grant reuses it)."""
        warm = self._parked.get(session_id)
        return warm.capability if warm is not None else None

    def take(
        self, session_id: str, key: str, conversation_id: str | None, history: int
    ) -> WarmProcess | None:
        """The session's parked process, for a turn launched as ``key`` that resumes
        ``conversation_id`` and found ``history`` messages; None (and the parked one is ended)
        if there is none or it no longer fits."""
        warm = self._parked.pop(session_id, None)
        if warm is None:
            return None
        self._cancel_timer(warm)
        if (
            warm.alive()
            and warm.key == key
            and warm.conversation_id == conversation_id
            and warm.next_history == history
        ):
            return warm
        log.info("Warm provider of session %s does not fit its next turn: ending it", session_id)
        self.discard(warm)
        return None

    async def keep(self, warm: WarmProcess) -> None:
        """Park a process whose turn has ended, until the session's next turn, its idle
        timeout, or the cap ends it."""
        if not warm.alive():
            self.discard(warm)
            return
        if not warm.recorded:
            try:
                await asyncio.to_thread(self.registry.write_warm, warm.record)
            except OSError as exc:  # unrecorded, a crash of this server could leave it behind
                log.warning("Warm provider of session %s not kept: %s", warm.session_id, exc)
                self.discard(warm)
                return
            warm.recorded = True
        previous = self._parked.pop(warm.session_id, None)
        if previous is not None and previous is not warm:
            self.discard(previous)
        warm.last_used = time.monotonic()
        self._parked[warm.session_id] = warm
        loop = asyncio.get_running_loop()
        warm.timer = loop.call_later(self.settings.idle_seconds, self._expire, warm)
        while len(self._parked) > self.settings.max_processes:
            _, oldest = self._parked.popitem(last=False)
            log.info("Ending the least recently used warm provider (session %s)", oldest.session_id)
            self._cancel_timer(oldest)
            self.discard(oldest)

    def discard(self, warm: WarmProcess) -> None:
        """End a process that is not (or no longer) parked, in the background."""
        if self._parked.get(warm.session_id) is warm:
            del self._parked[warm.session_id]
        self._cancel_timer(warm)
        task = asyncio.get_running_loop().create_task(self._end(warm))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    async def end(self, session_id: str) -> bool:
        """End the session's parked process (delete, rename); True if there was one."""
        warm = self._parked.pop(session_id, None)
        if warm is None:
            return False
        self._cancel_timer(warm)
        await self._end(warm)
        return True

    async def end_all(self) -> None:
        """End every parked process and wait for those being ended (the server's shutdown)."""
        for session_id in list(self._parked):
            warm = self._parked.pop(session_id)
            self._cancel_timer(warm)
            self.discard(warm)
        if self._ending:
            await asyncio.gather(*list(self._ending), return_exceptions=True)

    def stop_now(self) -> set[int]:
        """At interpreter exit without the clean shutdown: stop every parked process at once.
        Returns their pids."""
        pids = set()
        for warm in list(self._parked.values()):
            pids.add(warm.pid)
            try:
                terminate_tree(warm.record, self.settings.grace_seconds)
            except Exception as exc:  # exiting anyway
                log.warning("Could not stop the warm provider of %s: %s", warm.session_id, exc)
            with contextlib.suppress(Exception):
                self.registry.clear_warm(warm.session_id, warm.pid)
        self._parked.clear()
        return pids

    # -- inside ------------------------------------------------------------------------------

    def _expire(self, warm: WarmProcess) -> None:
        if self._parked.get(warm.session_id) is warm:
            log.info("Ending the idle warm provider of session %s", warm.session_id)
            warm.timer = None
            self.discard(warm)

    def _cancel_timer(self, warm: WarmProcess) -> None:
        if warm.timer is not None:
            warm.timer.cancel()
            warm.timer = None

    async def _end(self, warm: WarmProcess) -> None:
        """Close its stdin (the CLI ends at the end of its input and saves its conversation),
        then stop whatever is left of its tree, as at the end of a cold turn."""
        grace = self.settings.grace_seconds
        try:
            warm.stdin.close()
            if warm.alive():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(warm.proc.wait(), grace)
            await _blocking(terminate_tree, warm.record, grace)
        except Exception:
            log.exception("Could not end the warm provider of session %s", warm.session_id)
        finally:
            warm.stderr_task.cancel()
            if warm.recorded:
                with contextlib.suppress(Exception):
                    await _blocking(self.registry.clear_warm, warm.session_id, warm.pid)


async def _blocking(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` in a thread; in this thread when no new thread can start (a
    kernel's exit: its atexit handler ends the warm processes after the executors closed)."""
    try:
        return await asyncio.to_thread(function, *args)
    except RuntimeError:
        return function(*args)
