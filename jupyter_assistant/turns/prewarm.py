"""Pre-warms in flight: a session's provider started before its turn (warm.py), one at a time.

The sidebar asks for a pre-warm when it opens a notebook's session, so that even the first
question finds the CLI started (the runner's ``prewarm``). Until the process is parked in the
warm pool, the pre-warm is a task here: the session's turn waits for it (briefly: it ends once
the CLI is ready) rather than start a second process; delete, rename and shutdown cancel it,
which stops its process. Nothing here knows tornado or IPython.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

# How long a turn waits for its session's pre-warm before it cancels it and starts cold: a
# CLI is ready in about a second, so this is reached only by one that hangs.
TURN_WAIT_SECONDS = 30.0


class Prewarms:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def running(self, session_id: str) -> bool:
        return session_id in self._tasks

    def start(self, session_id: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work, name=f"assistant-prewarm-{session_id}")
        self._tasks[session_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._tasks.get(session_id) is done:
                del self._tasks[session_id]
            if not done.cancelled() and done.exception() is not None:
                log.warning("Pre-warm of session %s failed: %s", session_id, done.exception())

        task.add_done_callback(forget)

    async def wait(self, session_id: str, timeout: float = TURN_WAIT_SECONDS) -> None:
        """Until the session's pre-warm (if any) has ended; cancelled after ``timeout``."""
        task = self._tasks.get(session_id)
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            log.warning("Pre-warm of session %s took over %g s: cancelled", session_id, timeout)
            await self.cancel(session_id)

    async def cancel(self, session_id: str) -> None:
        task = self._tasks.get(session_id)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def cancel_all(self) -> None:
        await asyncio.gather(*(self.cancel(sid) for sid in list(self._tasks)))
