"""A turn's events folded into its reply: the one fold of the stream (events.py).

The runner folds every event it publishes into a ``ReplyBuilder`` and stores ``message()``; a
kernel's ``%%assistant`` cell folds the same events to draw the cell (cell_view.py); the
export renders the stored messages that come out of it. Pure: no I/O, no clock, no asyncio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .events import TERMINAL_EVENTS, Event
from .models import Message, MessageStatus, PermissionRecord, ToolCall, TurnError, Usage, new_id

PartKind = Literal["text", "tool", "notice", "question"]


@dataclass
class Part:
    """One piece of the reply in stream order: a run of text, a tool call (``ref`` = its id),
    a notice, or a question to the user (``ref`` = its request id)."""

    kind: PartKind
    chunks: list[str] = field(default_factory=list)  # text: its deltas; notice: [message]
    ref: str = ""

    @property
    def text(self) -> str:
        return "".join(self.chunks)


class ReplyBuilder:
    def __init__(self, turn_id: str | None = None, reply_id: str | None = None) -> None:
        self.turn_id = turn_id
        self.reply_id = reply_id or new_id()
        self.parts: list[Part] = []
        self.text_chunks: list[str] = []
        self.text_length = 0  # characters (code points) of reply text so far
        self.tools: dict[str, ToolCall] = {}
        self.usage = Usage()
        self.notices: list[str] = []
        self.permissions: dict[str, PermissionRecord] = {}
        self.terminal: Event | None = None
        self.events_folded = 0

    # -- the fold --------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """Fold one event in. Unknown types are ignored (a newer writer's events)."""
        self.events_folded += 1
        kind = event.get("type")
        if kind == "text":
            self._text(str(event.get("text", "")))
        elif kind == "tool_use":
            new = ToolCall(id=str(event.get("id", "")), name=str(event.get("name", "")))
            new.input, new.text_offset = event.get("input"), self.text_length
            self.tools[new.id] = new
            self.parts.append(Part("tool", ref=new.id))
        elif kind == "tool_result":
            call_id = str(event.get("id", ""))
            call = self.tools.get(call_id)
            if call is None:  # a result without its call: keep it, nameless
                call = self.tools[call_id] = ToolCall(id=call_id, name="")
            call.result = event.get("content")
            call.is_error = bool(event.get("is_error"))
        elif kind == "usage":
            self.usage = Usage(
                input_tokens=int(event.get("input_tokens") or 0),
                output_tokens=int(event.get("output_tokens") or 0),
                cost_usd=float(event.get("cost_usd") or 0.0),
            )
        elif kind in ("notice", "permission_denied"):
            message = str(event.get("message", ""))
            self.notices.append(message)
            self.parts.append(Part("notice", [message]))
        elif kind == "permission_request":
            request_id = str(event.get("request_id", ""))
            self.permissions[request_id] = PermissionRecord(
                request_id=request_id,
                tool_name=str(event.get("tool_name", "")),
                input=event.get("input"),
                summary=str(event.get("summary") or ""),
            )
            self.parts.append(Part("question", ref=request_id))
        elif kind == "permission_answered":
            record = self.permissions.get(str(event.get("request_id", "")))
            if record is not None:
                record.decision = "allow" if event.get("decision") == "allow" else "deny"
                record.scope = "session" if event.get("scope") == "session" else "once"
                record.message = event.get("message")
                record.by = "timeout" if event.get("by") == "timeout" else "user"
        elif kind in TERMINAL_EVENTS:
            self.terminal = event

    def _text(self, text: str) -> None:
        self.text_chunks.append(text)
        self.text_length += len(text)
        if self.parts and self.parts[-1].kind == "text":
            self.parts[-1].chunks.append(text)
        else:
            self.parts.append(Part("text", [text]))

    # -- what it adds up to ----------------------------------------------------------------

    @property
    def text(self) -> str:
        return "".join(self.text_chunks)

    def waiting_for_answer(self) -> bool:
        return any(record.decision is None for record in self.permissions.values())

    def end_unanswered(self) -> None:
        """The turn ended with questions still open: say so in their records."""
        for record in self.permissions.values():
            if record.decision is None:
                record.by = "ended"

    def message(self, status: MessageStatus, error: TurnError | None = None) -> Message:
        """The reply as stored (copies: the builder may go on folding)."""
        return Message(
            id=self.reply_id,
            role="assistant",
            content=self.text,
            turn_id=self.turn_id,
            status=status,
            tools=[call.model_copy() for call in self.tools.values()],
            usage=self.usage.model_copy(),
            error=error,
            notices=list(self.notices),
            permissions=[record.model_copy() for record in self.permissions.values()],
        )


def reply_status(
    terminal: Event, interrupted: bool = False
) -> tuple[MessageStatus, TurnError | None]:
    """A terminal event -> the stored reply's status and error."""
    kind = terminal.get("type")
    error = (
        TurnError(code=str(terminal.get("code")), message=str(terminal.get("message")))
        if kind == "error"
        else None
    )
    if interrupted:
        return "interrupted", error
    if kind == "done":
        return "complete", None
    if kind == "cancelled":
        return "cancelled", None
    return "error", error
