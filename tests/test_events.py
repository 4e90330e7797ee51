"""events.py is the one definition of the stream events: its constructors build exactly the
fields they declare, its JSON schema accepts what they build and refuses what they do not, and
every event a real turn streams (here through the fake Claude CLI, which prints the real wire
format) has exactly the fields its definition names."""

from __future__ import annotations

import asyncio
import inspect
import typing
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest

from jupyter_assistant import events
from jupyter_assistant.turns import RunnerSettings

from .helpers import engine_with_fake_claude

SAMPLES: dict[Any, Any] = {str: "x", int: 3, float: 0.5, bool: True, Any: {"k": [1]}}


def sample(annotation: Any) -> Any:
    """A value of the field's type."""
    if annotation in SAMPLES:
        return SAMPLES[annotation]
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)[0]
    return sample(next(a for a in typing.get_args(annotation) if a is not type(None)))


@pytest.mark.parametrize("name", sorted(events.CONSTRUCTORS))
def test_a_constructor_builds_exactly_the_fields_it_declares(name: str) -> None:
    make = events.CONSTRUCTORS[name]
    values = {field: sample(kind) for field, kind in events.EVENT_FIELDS[name].items()}
    built = make(**values)
    assert built == {"type": name, **values}
    assert list(inspect.signature(make).parameters) == list(events.EVENT_FIELDS[name])
    jsonschema.validate(built, events.json_schema())


def test_the_schema_refuses_a_missing_field_or_a_wrong_type() -> None:
    schema = events.json_schema()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"type": "tool_use", "id": "1", "name": "Bash"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"type": "usage", "input_tokens": "many", "output_tokens": 1,
                             "cost_usd": 0}, schema)  # fmt: skip
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"type": "notice", "level": "loud", "message": "m"}, schema)


def test_the_terminal_events_are_events() -> None:
    assert events.TERMINAL_EVENTS == {"done", "error", "cancelled"} <= events.EVENT_TYPES
    assert events.COALESCED <= events.EVENT_TYPES


# scenario of the fake CLI -> event types its turn must stream (besides turn_started)
SCENARIOS = {
    "tool": {"text", "tool_use", "tool_result", "usage", "done"},
    "thinking": {"thinking", "text", "done"},
    "denied": {"permission_denied", "done"},
    "permission": {"permission_request", "permission_answered", "notice", "done"},
    "crash": {"error"},
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_event_a_turn_streams_matches_its_definition(tmp_path: Path, scenario: str) -> None:
    # The question of scenario "permission" is denied at once: nobody answers here.
    service = engine_with_fake_claude(tmp_path, RunnerSettings(permission_timeout_seconds=0.5))

    async def turn_events() -> list[dict[str, Any]]:
        session = await service.create_session("nb.ipynb")
        turn = await service.post_message(session.id, f"scenario:{scenario}")
        async for _batch in turn.follow():
            pass
        return turn.events

    streamed = asyncio.run(turn_events())
    schema = events.json_schema()
    for event in streamed:
        assert set(event) == {"type", *events.EVENT_FIELDS[event["type"]]}, event
        jsonschema.validate(event, schema)
    assert SCENARIOS[scenario] <= {event["type"] for event in streamed}
    assert streamed[0]["type"] == "turn_started"
    assert streamed[-1]["type"] in events.TERMINAL_EVENTS
