"""The engine's private event loop in a kernel.

The asyncio engine runs on its own thread because the kernel's loop is blocked while the cell
that runs the magic executes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class EngineLoop:
    """An asyncio loop on a daemon thread. The kernel's main thread submits coroutines and
    waits on them; waits are sliced so that a kernel interrupt (SIGINT) lands promptly."""

    WAIT_SLICE = 0.5

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=run, name="jupyter-assistant-engine", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._ensure())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the engine loop and wait. KeyboardInterrupt propagates; the
        coroutine keeps running (callers that must not leave work behind use ``finish``)."""
        return self.wait(self.submit(coro))

    def wait(self, future: concurrent.futures.Future[T]) -> T:
        while True:
            try:
                return future.result(timeout=self.WAIT_SLICE)
            except concurrent.futures.TimeoutError:
                continue

    def finish(self, future: concurrent.futures.Future[T]) -> T:
        """Wait for ``future`` even through further interrupts: used while cancelling, when
        leaving early would leave a provider running."""
        while True:
            try:
                return self.wait(future)
            except KeyboardInterrupt:
                continue

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout)
        if not loop.is_running():
            loop.close()
