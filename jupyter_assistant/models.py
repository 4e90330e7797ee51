"""The session schema, stream events and request bodies: one schema, versioned.

Imported lazily (pydantic costs ~100 ms to import), never at server start-up.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

# The version of the session files this code writes; to change it, see migrations.py.
SCHEMA_VERSION = 1

Role = Literal["user", "assistant", "system"]
# "streaming": a reply being written (checkpointed while its turn runs, so other processes see
# it grow and a crash keeps it); "interrupted": its server or kernel died during the turn.
MessageStatus = Literal["complete", "cancelled", "error", "interrupted", "streaming"]
SessionStatus = Literal["idle", "running"]


def utcnow() -> str:
    """ISO 8601 UTC timestamp with milliseconds; sorts lexically."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return str(uuid.uuid4())


class _Model(BaseModel):
    # Unknown keys from a newer writer are kept, so an older reader never drops them on save.
    model_config = ConfigDict(extra="allow")


class ToolCall(_Model):
    id: str
    name: str
    input: Any = None
    result: Any = None
    is_error: bool = False
    # How much reply text (in characters: Unicode code points) came before this call, so that
    # a stored reply shows its text and tool calls in the order they streamed.
    text_offset: int | None = None


class Usage(_Model):
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd = round(self.cost_usd + other.cost_usd, 8)


class TurnError(_Model):
    code: str
    message: str


class PermissionRecord(_Model):
    """A tool call the user was asked about in a turn, and how it was answered."""

    request_id: str
    tool_name: str
    input: Any = None
    summary: str = ""
    decision: Literal["allow", "deny"] | None = None  # None: not answered (yet)
    scope: Literal["once", "session"] = "once"
    message: str | None = None
    # user: answered; timeout: nobody answered in time (denied); ended: the turn ended first
    by: Literal["user", "timeout", "ended"] | None = None


class Approval(_Model):
    """A "for this session" answer: the same tool on the same subject is not asked again."""

    tool_name: str
    pattern: str
    decision: Literal["allow", "deny"] = "allow"
    message: str | None = None
    created_at: str = Field(default_factory=utcnow)


class Message(_Model):
    id: str = Field(default_factory=new_id)
    role: Role
    content: str = ""
    created_at: str = Field(default_factory=utcnow)
    turn_id: str | None = None
    status: MessageStatus = "complete"
    tools: list[ToolCall] = Field(default_factory=list)
    context: dict[str, Any] | None = None
    usage: Usage | None = None
    error: TurnError | None = None
    notices: list[str] = Field(default_factory=list)
    permissions: list[PermissionRecord] = Field(default_factory=list)


class Session(_Model):
    version: int = SCHEMA_VERSION
    id: str = Field(default_factory=new_id)
    path: str
    notebook_key: str
    working_dir: str
    provider: str
    provider_session_id: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    messages: list[Message] = Field(default_factory=list)
    pending_message: Message | None = None
    title: str = ""
    created_at: str = Field(default_factory=utcnow)
    updated_at: str = Field(default_factory=utcnow)
    usage: Usage = Field(default_factory=Usage)
    # The notebook was deleted: the conversation is kept, but no longer follows a file.
    detached: bool = False
    # Why it is detached, in words for the user (deleted, or moved outside the server root).
    detached_reason: str | None = None
    approvals: list[Approval] = Field(default_factory=list)
    # Not persisted as truth: filled in from the process records when served.
    status: SessionStatus = "idle"

    def summary(self) -> dict[str, Any]:
        """Its ``SessionSummary`` (summaries.py: the one definition, pydantic-free)."""
        from .summaries import make_summary

        return make_summary(
            self.id,
            self.path,
            self.notebook_key,
            self.title,
            self.provider,
            self.status,
            self.created_at,
            self.updated_at,
            len(self.messages) + (1 if self.pending_message else 0),
            self.detached,
        )


class CreateSessionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=4096)
    provider: str | None = Field(default=None, min_length=1, max_length=100)
    context: dict[str, Any] | None = None


class PrewarmBody(BaseModel):
    """``POST prewarm``: the notebook whose next new conversation's agent to start."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=4096)


class PostMessageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1)
    context: dict[str, Any] | None = None

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("content must not be blank")
        return value


class RevertBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Overwrite files changed after the turns being undone (the 409 lists them).
    force: StrictBool = False


class PermissionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["allow", "deny"]
    scope: Literal["once", "session"] = "once"
    message: str | None = Field(default=None, max_length=4000)
