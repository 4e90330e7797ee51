"""The stream events of a turn: one definition of each, by its constructor.

Every event is a plain JSON object (a dict) with a ``type``; it is what the SSE stream sends as
``data:`` and what the kernel's journal stores, so it stays a dict rather than a class. Each
constructor below *is* the event's definition: its parameters are the event's fields, with their
types. ``EVENT_FIELDS`` and ``json_schema()`` are read from the constructors, so the TypeScript
types (labextension/src/types.ts) and docs/rest-api.yml are checked against this one place.

Changing an event: change its constructor; bump ``EVENTS_VERSION`` when a field is removed or
changes its meaning (adding a field is compatible: every reader ignores what it does not know).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, Union

# Version of the event format; readers ignore fields they do not know.
EVENTS_VERSION = 1

Event = dict[str, Any]

NoticeLevel = Literal["info", "warning"]
Decision = Literal["allow", "deny"]
Scope = Literal["once", "session"]
AnsweredBy = Literal["user", "timeout"]


def turn_started(turn_id: str, provider: str) -> Event:
    """The turn began (always the first event)."""
    return {"type": "turn_started", "turn_id": turn_id, "provider": provider}


def text(text: str) -> Event:
    """A piece of the reply's text (a delta; deltas that arrive together are coalesced)."""
    return {"type": "text", "text": text}


def thinking(text: str) -> Event:
    """A piece of the model's visible reasoning (a delta)."""
    return {"type": "thinking", "text": text}


def tool_use(id: str, name: str, input: Any) -> Event:
    """The agent calls a tool."""
    return {"type": "tool_use", "id": id, "name": name, "input": input}


def tool_result(id: str, content: Any, is_error: bool) -> Event:
    """What a tool call returned (``id`` is the ``tool_use``'s)."""
    return {"type": "tool_result", "id": id, "content": content, "is_error": is_error}


def usage(input_tokens: int, output_tokens: int, cost_usd: float) -> Event:
    """The turn's usage so far (replaces the previous one)."""
    return {
        "type": "usage",
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_usd": cost_usd,
    }


def notice(message: str, level: NoticeLevel = "info") -> Event:
    """Something the user should know that is not part of the reply."""
    return {"type": "notice", "level": level, "message": message}


def permission_request(request_id: str, tool_name: str, input: Any, summary: str) -> Event:
    """The agent waits for the user's answer to a tool call (see ``permission_answered``)."""
    return {
        "type": "permission_request",
        "request_id": request_id,
        "tool_name": tool_name,
        "input": input,
        "summary": summary,
    }


def permission_answered(
    request_id: str, decision: Decision, scope: Scope, message: str | None, by: AnsweredBy
) -> Event:
    """A ``permission_request`` got its answer (from the user, or denied when nobody answered)."""
    return {
        "type": "permission_answered",
        "request_id": request_id,
        "decision": decision,
        "scope": scope,
        "message": message,
        "by": by,
    }


def permission_denied(tool_name: str, input: Any, message: str) -> Event:
    """A tool call refused by policy without asking (the message says why)."""
    return {"type": "permission_denied", "tool_name": tool_name, "input": input, "message": message}


def done(provider_session_id: str | None, cost_usd: float, duration_ms: int) -> Event:
    """Terminal: the reply is complete (and stored)."""
    return {
        "type": "done",
        "provider_session_id": provider_session_id,
        "cost_usd": cost_usd,
        "duration_ms": duration_ms,
    }


def error(code: str, message: str) -> Event:
    """Terminal: the turn failed; ``code`` is one of docs/rest-api.yml's turn error codes."""
    return {"type": "error", "code": code, "message": message}


def cancelled() -> Event:
    """Terminal: the turn was stopped (the partial reply is stored)."""
    return {"type": "cancelled"}


CONSTRUCTORS: dict[str, Callable[..., Event]] = {
    make.__name__: make
    for make in (
        turn_started,
        text,
        thinking,
        tool_use,
        tool_result,
        usage,
        notice,
        permission_request,
        permission_answered,
        permission_denied,
        done,
        error,
        cancelled,
    )
}
EVENT_TYPES = frozenset(CONSTRUCTORS)
# Exactly one of these ends every turn.
TERMINAL_EVENTS = frozenset({"done", "error", "cancelled"})
# Deltas: consecutive ones may be merged into one event.
COALESCED = frozenset({"text", "thinking"})


def _field_types(make: Callable[..., Event]) -> dict[str, Any]:
    hints = typing.get_type_hints(make)
    return {name: hints[name] for name in inspect.signature(make).parameters}


# type -> {field: Python type}, read from the constructors.
EVENT_FIELDS: dict[str, dict[str, Any]] = {
    name: _field_types(make) for name, make in CONSTRUCTORS.items()
}


def _schema_of(annotation: Any) -> dict[str, Any]:
    """The JSON schema of one field type (the few kinds events use)."""
    if annotation is Any:
        return {}
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return {"type": "string", "enum": list(typing.get_args(annotation))}
    if origin in (Union, types.UnionType):
        options = [_schema_of(arg) for arg in typing.get_args(annotation)]
        return {"anyOf": options}
    if annotation is type(None):
        return {"type": "null"}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return {"type": simple[annotation]}


def json_schema() -> dict[str, Any]:
    """A JSON schema (draft 2020-12) of every event, keyed by type under ``$defs``."""
    definitions = {}
    for name, fields in EVENT_FIELDS.items():
        definitions[name] = {
            "type": "object",
            "properties": {
                "type": {"const": name},
                **{field: _schema_of(kind) for field, kind in fields.items()},
            },
            "required": ["type", *fields],
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"jupyter_assistant stream events, version {EVENTS_VERSION}",
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name in definitions],
        "$defs": definitions,
    }
