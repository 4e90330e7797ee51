"""Questions for the process that runs a turn, from another process serving it.

The Jupyter server serves the notebook tools for every turn, also for a turn that a kernel runs
(a ``%%assistant`` cell). Some answers only that kernel has: whether a call may run (its turn's
approval policy and the user's answers in the cell), and the kernel's variables. The server
writes a question file into the store's private folder; the owner, which watches its turns'
folders as it watches stop requests, answers with a file beside it. Both are written whole
(a temporary file, then a rename) and read only once complete.

``<store>/private/owner-calls/<turn_id>/<call_id>.json`` -> ``<call_id>.answer.json``
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..processes import ProcessRegistry

log = logging.getLogger(__name__)

CALLS_DIR = "owner-calls"
POLL_SECONDS = 0.02
ANSWER = ".answer.json"

# (kind, payload) -> the answer (a JSON object)
OwnerHandler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class OwnerGone(Exception):
    """The turn ended, or its owner died, before it answered."""


def _write(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(data, file)
    os.replace(temporary, path)


class OwnerCalls:
    def __init__(self, private_dir: Path | str, registry: ProcessRegistry) -> None:
        self.dir = Path(private_dir) / CALLS_DIR
        self.registry = registry

    def _turn_dir(self, turn_id: str) -> Path:
        if not turn_id or "/" in turn_id or turn_id.startswith("."):
            raise ValueError(f"not a turn id: {turn_id!r}")
        return self.dir / turn_id

    # -- the asker -------------------------------------------------------------------------------

    async def ask(
        self, session_id: str, turn_id: str, kind: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """The owner's answer; OwnerGone if the turn ends (or its owner dies) first."""
        folder = self._turn_dir(turn_id)
        call_id = secrets.token_hex(8)
        question = folder / f"{call_id}.json"
        answer = folder / f"{call_id}{ANSWER}"
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True, mode=0o700)
        await asyncio.to_thread(_write, question, {"kind": kind, "payload": payload})
        try:
            while True:
                with contextlib.suppress(FileNotFoundError, ValueError):
                    return dict(json.loads(await asyncio.to_thread(answer.read_text, "utf-8")))
                record = await asyncio.to_thread(self.registry.read, session_id)
                if record is None or record.turn_id != turn_id or not record.owner_alive():
                    raise OwnerGone(f"turn {turn_id} is no longer running")
                await asyncio.sleep(POLL_SECONDS)
        finally:
            for path in (question, answer):
                with contextlib.suppress(OSError):
                    path.unlink()

    # -- the owner -------------------------------------------------------------------------------

    async def serve(
        self, turn_id: str, handler: OwnerHandler, finished: Callable[[], bool]
    ) -> None:
        """In the turn's owner, while the turn runs: answer each question with ``handler``."""
        folder = self._turn_dir(turn_id)
        seen: set[str] = set()
        answering: set[asyncio.Task[None]] = set()
        try:
            while not finished():
                with contextlib.suppress(FileNotFoundError):
                    for entry in os.scandir(folder):
                        name = entry.name
                        if name.startswith(".") or name.endswith(ANSWER) or name in seen:
                            continue
                        if not name.endswith(".json"):
                            continue
                        seen.add(name)
                        task = asyncio.create_task(self._answer(folder / name, handler))
                        answering.add(task)
                        task.add_done_callback(answering.discard)
                await asyncio.sleep(POLL_SECONDS)
        finally:
            for task in list(answering):
                task.cancel()
            await asyncio.to_thread(shutil.rmtree, folder, True)

    async def _answer(self, question: Path, handler: OwnerHandler) -> None:
        try:
            data = json.loads(await asyncio.to_thread(question.read_text, "utf-8"))
            result = await handler(str(data["kind"]), dict(data.get("payload") or {}))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bad question, a handler that failed: the asker is told
            log.warning("Could not answer %s: %s", question.name, exc)
            result = {"error": str(exc) or type(exc).__name__}
        answer = question.with_name(question.name[: -len(".json")] + ANSWER)
        with contextlib.suppress(OSError):  # the asker gave up and removed the folder
            await asyncio.to_thread(_write, answer, result)
