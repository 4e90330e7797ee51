"""Event journals of turns that run outside the server, so that the sidebar streams them live.

A kernel running a ``%%assistant`` cell holds its turn's events in its own memory; the server
cannot serve them. So a runner with ``RunnerSettings.journal_events`` (the kernel's) also
appends each event, one JSON line per event, to ``<store>/turns/<session id>.<turn id>.jsonl``,
and the server's ``GET sessions/{id}/events`` reads that file while the turn runs elsewhere
(``JournalReader``: the same ``id``/``next_batch`` as an in-memory ``Turn``). A journal is
removed when the session's next turn starts, or with the session.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from . import events
from .events import TERMINAL_EVENTS, Event
from .store import (
    FILE_MODE,
    JOURNALS_DIR,
    ensure_private_dir,
    remove_journals,
    validate_session_id,
)

log = logging.getLogger(__name__)

# How often a reader looks for new lines, and whether the writer is still alive.
POLL_SECONDS = 0.05
ALIVE_CHECK_SECONDS = 1.0
# Approval questions of a kernel's turn are answered in its cell (input()), not in the sidebar:
# the sidebar gets a notice saying so instead of a question it could not answer.
QUESTION = "permission_request"
NOT_STREAMED = frozenset({"permission_answered"})


def journal_path(store_root: Path, session_id: str, turn_id: str) -> Path:
    validate_session_id(session_id)
    if not turn_id or not all(c.isalnum() or c in "-_" for c in turn_id):
        raise ValueError(f"not a turn id: {turn_id!r}")
    return store_root / JOURNALS_DIR / f"{session_id}.{turn_id}.jsonl"


class EventJournal:
    """The writing end, in the process that runs the turn. Never fails the turn: a journal that
    cannot be written only means the sidebar shows the turn from its checkpoints."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def open(cls, store_root: Path, session_id: str, turn_id: str) -> EventJournal:
        path = journal_path(store_root, session_id, turn_id)
        fd: int | None = None
        try:
            ensure_private_dir(path.parent)
            remove_journals(store_root, session_id)  # the session's earlier turns'
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_NOFOLLOW
            fd = os.open(path, flags, FILE_MODE)
        except Exception as exc:
            log.warning("Assistant: no event journal for turn %s (%s)", turn_id, exc)
        return cls(path, fd)

    def write(self, event: Event) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, (json.dumps(event) + "\n").encode())  # one write: whole lines
        except OSError as exc:
            log.warning("Assistant: event journal %s not written (%s)", self.path, exc)
            self.close()

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _question_notice(question: Event) -> Event:
    what = question.get("summary") or question.get("tool_name") or "a tool"
    return events.notice(
        f"The notebook cell running this turn asks whether to allow: {what}. "
        "Answer it in the cell.",
        "warning",
    )


class JournalReader:
    """The reading end, in the server: the events of turn ``turn_id`` as they are written.
    Sequence numbers are line numbers (from 1), as the writer's ``Turn`` numbers them, so
    ``Last-Event-ID`` works the same; events the sidebar cannot act on are skipped."""

    def __init__(self, path: Path, turn_id: str, writer_alive: Callable[[], bool]) -> None:
        self.path = path
        self.id = turn_id
        self._writer_alive = writer_alive
        self._events: list[tuple[int, Event]] = []
        self._lines = 0
        self._offset = 0
        self._partial = b""
        self.finished = False

    def _read_new(self) -> None:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except OSError:
            return
        self._offset += len(data)
        data = self._partial + data
        complete, _, self._partial = data.rpartition(b"\n")
        if not complete:
            return
        for line in complete.split(b"\n"):
            self._lines += 1
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict) or event.get("type") in NOT_STREAMED:
                continue
            if event.get("type") == QUESTION:
                event = _question_notice(event)
            self._events.append((self._lines, event))
            if event.get("type") in TERMINAL_EVENTS:
                self.finished = True

    def _after(self, after: int) -> list[tuple[int, Event]]:
        return self._events[bisect.bisect_right(self._events, after, key=lambda e: e[0]) :]

    async def next_batch(
        self, after: int, timeout: float | None = None
    ) -> list[tuple[int, Event]] | None:
        """As ``Turn.next_batch``: events after ``after``, ``[]`` on timeout, ``None`` once the
        turn is over (a terminal event, or its writer gone) and everything was read."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        checked = time.monotonic()
        while True:
            self._read_new()
            batch = self._after(after)
            if batch:
                return batch
            if self.finished:
                return None
            if time.monotonic() - checked >= ALIVE_CHECK_SECONDS:
                checked = time.monotonic()
                if not self._writer_alive():
                    self._read_new()
                    return self._after(after) or None
            if deadline is not None and loop.time() >= deadline:
                return []
            await asyncio.sleep(POLL_SECONDS)
