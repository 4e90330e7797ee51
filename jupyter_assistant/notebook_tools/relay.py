"""The notebooks open in a browser, and the tool requests that the browser carries out on them.

Without a shared document on the server (jupyter-collaboration), the open notebook lives in
the browser: an edit written to the file would land under it ("the file changed on disk") and a
run in the server's kernel client would not show in it. So while a browser holds a notebook open
(it long-polls ``GET notebook-requests`` with the paths of its open notebooks), each tool call
on that notebook becomes requests that its JupyterLab applies to the open document as a local
edit (the notebook's own undo covers it) or runs as a user's run, and answers.

A request nobody picks up within ``pickup_seconds`` is withdrawn (the tab was closed, the
browser went away): the caller then works on the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from .cells import ToolError

# A browser's poll holds a notebook open for its wait plus this much (the next poll follows).
OPEN_GRACE_SECONDS = 5.0
MAX_WAIT_SECONDS = 60.0
MAX_PATHS = 200


class NoAnswer(ToolError):
    """A browser took a request and did not answer in time."""


@dataclass
class RelayRequest:
    request_id: str
    path: str
    op: dict[str, Any]
    picked: asyncio.Event = field(default_factory=asyncio.Event)
    answer: asyncio.Future[dict[str, Any]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def to_json(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "path": self.path, **self.op}


class BrowserRelay:
    def __init__(self, pickup_seconds: float = 3.0) -> None:
        self.pickup_seconds = pickup_seconds
        self._open_until: dict[str, float] = {}
        self._queued: dict[str, list[RelayRequest]] = {}
        self._asked: dict[str, RelayRequest] = {}
        self._pollers: set[asyncio.Event] = set()

    def is_open(self, path: str) -> bool:
        return self._open_until.get(path, 0.0) > time.monotonic()

    # -- the browser's side --------------------------------------------------------------------

    async def poll(self, paths: list[str], wait: float) -> list[dict[str, Any]]:
        """The requests waiting for any of ``paths`` (the notebooks this browser has open),
        as soon as there is one, or [] after ``wait`` seconds."""
        wait = max(0.0, min(wait, MAX_WAIT_SECONDS))
        deadline = time.monotonic() + wait
        for path in paths:
            self._open_until[path] = deadline + OPEN_GRACE_SECONDS
        woken = asyncio.Event()
        self._pollers.add(woken)
        try:
            while True:
                taken = self._take(paths)
                remaining = deadline - time.monotonic()
                if taken or remaining <= 0:
                    return [request.to_json() for request in taken]
                woken.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(woken.wait(), remaining)
        finally:
            self._pollers.discard(woken)

    def _take(self, paths: list[str]) -> list[RelayRequest]:
        taken: list[RelayRequest] = []
        for path in paths:
            taken += self._queued.pop(path, [])
        for request in taken:
            request.picked.set()
        return taken

    def requeue(self, requests: list[dict[str, Any]]) -> int:
        """Put back requests a poll took but could not hand over (its browser went away as
        they were written): the next poll gets them, so the tool call is not lost. Returns
        how many still waited."""
        again = 0
        for entry in reversed(requests):
            request = self._asked.get(str(entry.get("request_id")))
            if request is None or request.answer.done():
                continue
            queue = self._queued.setdefault(request.path, [])
            if request not in queue:
                queue.insert(0, request)  # first: it was asked before what came since
                again += 1
        for poller in self._pollers:
            poller.set()
        return again

    def answer(self, request_id: str, body: dict[str, Any]) -> bool:
        """The browser's answer: ``{"result": {...}}`` or ``{"error": "..."}``. False if no
        request of that id waits (any more)."""
        request = self._asked.get(request_id)
        if request is None or request.answer.done():
            return False
        request.answer.set_result(body)
        return True

    # -- the tools' side -----------------------------------------------------------------------

    async def ask(self, path: str, op: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Have the browser that holds ``path`` open carry out ``op``; its result, or None when
        no browser picked the request up (the caller works on the file). ToolError: the browser
        answered with an error, or picked the request up and did not answer within ``timeout``.
        """
        request = RelayRequest(secrets.token_urlsafe(12), path, op)
        self._queued.setdefault(path, []).append(request)
        self._asked[request.request_id] = request
        for poller in self._pollers:
            poller.set()
        try:
            try:
                await asyncio.wait_for(request.picked.wait(), self.pickup_seconds)
            except asyncio.TimeoutError:
                self._open_until.pop(path, None)  # that browser is gone
                return None
            try:
                body = await asyncio.wait_for(asyncio.shield(request.answer), timeout)
            except asyncio.TimeoutError:
                raise NoAnswer(
                    "The notebook open in the browser did not answer in time; try again."
                ) from None
        finally:
            self._asked.pop(request.request_id, None)
            queue = self._queued.get(path)
            if queue is not None and request in queue:
                queue.remove(request)
                if not queue:
                    del self._queued[path]
        if isinstance(body.get("error"), str):
            raise ToolError(body["error"])
        result = body.get("result")
        if not isinstance(result, dict):
            raise ToolError("The notebook open in the browser answered without a result.")
        return result
