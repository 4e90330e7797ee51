"""Pre-warms in flight: a session's provider started before its turn (warm.py), one at a time.

The sidebar asks for a pre-warm when it opens a notebook's session, so that even the first
question finds the CLI started (the runner's ``prewarm``). A pre-warm is a task here until it
ends: it parks the process in the warm pool once the CLI is ready (``Prewarm.ready``), then
waits for the CLI to list the notebook tools, which its grant covers until then. The session's
turn waits for the process to be parked, not for that listing: it takes the process over
(``handed_over``; its own grant covers the listing from then on) rather than start a second
one. Delete, rename and shutdown cancel a pre-warm, which ends its process. Nothing here knows
tornado or IPython.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# How long a turn waits for its session's pre-warm before it cancels it and starts cold: a
# CLI is ready in about a second, so this is reached only by one that hangs.
TURN_WAIT_SECONDS = 30.0


@dataclass(eq=False)
class Prewarm:
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # its process is parked
    handed_over: bool = False  # a turn took the process: cancelling must not end it
    task: asyncio.Task[None] | None = None


class Prewarms:
    def __init__(self) -> None:
        self._running: dict[str, Prewarm] = {}

    def running(self, session_id: str) -> bool:
        return session_id in self._running

    def start(self, session_id: str, work: Callable[[Prewarm], Coroutine[Any, Any, None]]) -> None:
        prewarm = Prewarm()
        task = asyncio.get_running_loop().create_task(
            work(prewarm), name=f"assistant-prewarm-{session_id}"
        )
        prewarm.task = task
        self._running[session_id] = prewarm

        def forget(done: asyncio.Task[None]) -> None:
            if self._running.get(session_id) is prewarm:
                del self._running[session_id]
            if not done.cancelled() and done.exception() is not None:
                log.warning("Pre-warm of session %s failed: %s", session_id, done.exception())

        task.add_done_callback(forget)

    async def wait(self, session_id: str, timeout: float = TURN_WAIT_SECONDS) -> None:
        """Until the session's pre-warm (if any) has parked its process or ended; the turn
        then takes the process over. Cancelled after ``timeout``."""
        prewarm = self._running.get(session_id)
        if prewarm is None or prewarm.task is None:
            return
        parked = asyncio.ensure_future(prewarm.ready.wait())
        try:
            await asyncio.wait(
                {prewarm.task, parked}, timeout=timeout, return_when="FIRST_COMPLETED"
            )
        finally:
            parked.cancel()
        if prewarm.task.done():
            return
        if prewarm.ready.is_set():
            prewarm.handed_over = True
        else:
            log.warning("Pre-warm of session %s took over %g s: cancelled", session_id, timeout)
        await self.cancel(session_id)

    async def cancel(self, session_id: str) -> None:
        prewarm = self._running.get(session_id)
        if prewarm is not None and prewarm.task is not None:
            prewarm.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await prewarm.task

    async def cancel_all(self) -> None:
        await asyncio.gather(*(self.cancel(sid) for sid in list(self._running)))
