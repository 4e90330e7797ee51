"""A turn's state: its ids, its event buffer for streaming clients, its reply, its stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..events import TERMINAL_EVENTS, Event
from ..journal import EventJournal
from ..models import PermissionRecord
from ..permissions import READ_ONLY_TOOLS
from ..processes import ProcessRecord
from ..reply import ReplyBuilder

if TYPE_CHECKING:
    from ..providers.base import EditMode, StreamParser

# Why a turn ended. "completed"/"failed": the provider's own result; the rest: the turn was
# stopped (by the user, a limit, or the server shutting down) and the reply is partial.
EndReason = Literal[
    "completed", "failed", "cancelled", "timeout", "shutdown", "oversize", "cost_limit"
]
STOPPED: frozenset[EndReason] = frozenset(
    {"cancelled", "timeout", "shutdown", "oversize", "cost_limit"}
)


@dataclass
class RunnerSettings:
    cancel_grace_seconds: float = 3.0
    turn_timeout_seconds: float = 3600.0
    idle_timeout_seconds: float = 600.0
    max_concurrent_turns: int = 16
    max_line_bytes: int = 8 * 1024 * 1024
    provider_env: dict[str, str] = field(default_factory=dict)
    # How long a finished turn's events stay in memory for clients that reconnect late.
    finished_turn_ttl_seconds: float = 600.0
    # How often the partial reply of a running turn is saved (0 disables).
    checkpoint_interval_seconds: float = 2.0
    # Largest reply text a turn may produce; a provider printing endlessly is stopped.
    max_reply_bytes: int = 10 * 1024 * 1024
    # Admin policy: a session's total reported cost may not pass this (None: no cap).
    max_session_cost_usd: float | None = None
    # Tool approval (permissions.py): a question unanswered this long is denied.
    permission_timeout_seconds: float = 300.0
    permission_allowed_tools: tuple[str, ...] = READ_ONLY_TOOLS
    permission_denied_tools: tuple[str, ...] = ()
    permission_extra_dirs: tuple[str, ...] = ()
    # Also write each turn's events to a journal in the store (journal.py): set in kernels, so
    # that the server can stream their turns to the sidebar.
    journal_events: bool = False
    # The server root: each turn re-checks that the session's folder is still inside it (None
    # in a kernel that does not know the root: the folder must still resolve to itself).
    root_dir: str | None = None
    # Undo (checkpoints/): the folder kept before and after each turn.
    turn_checkpoints: bool = True
    checkpoint_max_file_bytes: int = 50 * 1024 * 1024
    checkpoint_ignore: tuple[str, ...] = (
        ".git",
        "node_modules",
        "__pycache__",
        ".ipynb_checkpoints",
        ".venv",
        "venv",
    )
    # Warm providers (warm.py): a session's provider process kept running between its turns.
    warm_agents: bool = True
    warm_idle_seconds: float = 600.0
    max_warm_processes: int = 4
    prewarm: bool = True  # the sidebar may start a session's warm process before its turn


class Approvals(Protocol):
    """What the rest of a turn needs of its approval broker (approvals.py)."""

    last_answer: float  # when the user last answered (the provider was not idle until then)

    def waiting(self) -> bool: ...

    def request(self, event: Event) -> None: ...

    async def decide_served(
        self, tool_name: str, tool_input: Any, edits: EditMode = "ask", summary: str = ""
    ) -> str | None: ...

    async def answer(
        self, request_id: str, allow: bool, scope: str, message: str | None
    ) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class NewMessage:
    """What the user sends to start a turn: the text, what they chose to send along from the
    notebook, and the model for this turn only (None: the session's provider's own)."""

    content: str
    context: dict[str, Any] | None = None
    model: str | None = None


@dataclass
class StopRequest:
    """Why the turn is being stopped, and the terminal event that says so. The first stop
    stands: a timeout that comes while the user's cancel is under way changes nothing."""

    reason: EndReason
    terminal: Event


class Turn:
    """One running (or finished) turn: what streams to clients and what the reply becomes."""

    def __init__(self, session_id: str, turn_id: str, provider: str) -> None:
        self.session_id = session_id
        self.id = turn_id
        self.provider = provider
        self.started = time.monotonic()
        # Streaming: every published event, in order (seq = index + 1).
        self.events: list[Event] = []
        self.finished = False
        self._changed = asyncio.Event()
        self.journal: EventJournal | None = None  # see RunnerSettings.journal_events
        # The reply: every published event is folded into it.
        self.reply = ReplyBuilder(turn_id)
        self.changed_since_checkpoint = False
        self.cost_before = 0.0  # the session's cost when the turn started (for the cost cap)
        # Running: the task, the provider attempt's process, record and parser.
        self.task: asyncio.Task[None] | None = None
        self.record: ProcessRecord | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.parser: StreamParser | None = None
        self.approvals: Approvals | None = None
        # Ending.
        self.stop_request: StopRequest | None = None
        self.stopped = asyncio.Event()  # set with stop_request: the attempt stops waiting
        self.end_reason: EndReason | None = None

    def request_stop(self, reason: EndReason, terminal: Event) -> bool:
        """Mark the turn as being stopped; False if it already was (the first reason stands)."""
        if self.stop_request is not None or self.finished:
            return False
        self.stop_request = StopRequest(reason, terminal)
        self.stopped.set()
        return True

    @property
    def permissions(self) -> dict[str, PermissionRecord]:
        """The questions asked in this turn, by request id, with their answers."""
        return self.reply.permissions

    # -- streaming -------------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Fold the event into the reply and send it to every client."""
        self.reply.apply(event)
        if event["type"] != "turn_started":  # the start adds nothing worth saving
            self.changed_since_checkpoint = True
        self.events.append(event)
        if self.journal is not None:
            self.journal.write(event)
        if event["type"] in TERMINAL_EVENTS:
            self.finished = True
            if self.journal is not None:
                self.journal.close()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def event_id(self, seq: int) -> str:
        return f"{self.id}:{seq}"

    async def next_batch(
        self, after: int, timeout: float | None = None
    ) -> list[tuple[int, Event]] | None:
        """Events after sequence number ``after`` (seqs start at 1), waiting up to ``timeout``
        for some: ``[]`` on timeout, ``None`` once the turn is over and everything was read."""
        while True:
            if after < len(self.events):
                return [(i + 1, self.events[i]) for i in range(after, len(self.events))]
            if self.finished:
                return None
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), timeout)
            except asyncio.TimeoutError:
                return []

    async def follow(self, after: int = 0) -> AsyncIterator[list[tuple[int, Event]]]:
        """Yield batches of ``(seq, event)`` after ``after`` until the turn is over."""
        while True:
            batch = await self.next_batch(after)
            if batch is None:
                return
            after = batch[-1][0]
            yield batch
