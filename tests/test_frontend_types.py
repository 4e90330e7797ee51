"""The sidebar's types (labextension/src/types.ts) and docs/rest-api.yml say what the Python
definitions say: every stream event of ``events.py`` with its fields and their types, and the
session summary of ``summaries.py``. types.ts is read with a small parser of the TypeScript it
uses (interfaces, ``extends``, type aliases, unions of primitives and string literals)."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import pytest
import yaml

from jupyter_assistant import events
from jupyter_assistant.summaries import SUMMARY_FIELDS, UNSERVED, SessionSummary

ROOT = Path(__file__).parent.parent
TYPES_TS = (ROOT / "labextension" / "src" / "types.ts").read_text()
SPEC: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "rest-api.yml").read_text())


# -- a small reader of types.ts -------------------------------------------------------------


class Field(typing.NamedTuple):
    optional: bool
    type: frozenset[str]  # the union's members: primitives, or string literals in quotes


def strip_comments(source: str) -> str:
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", source, flags=re.S)


def aliases(source: str) -> dict[str, str]:
    """``export type Name = ...;`` -> its text."""
    found = re.findall(r"^export type (\w+) =\s*([^;]+);", strip_comments(source), flags=re.M)
    return {name: " ".join(text.split()) for name, text in found}


def union(text: str, known: dict[str, str]) -> frozenset[str]:
    """A type's members, with aliases expanded (``'a' | B`` with ``B = 'b' | null``)."""
    members: set[str] = set()
    for part in text.split("|"):
        part = part.strip().replace('"', "'")
        if part in known:
            members |= union(known[part], known)
        elif part:
            members.add(part)
    return frozenset(members)


def interfaces(source: str) -> dict[str, dict[str, Field]]:
    """Every ``export interface`` -> its fields (with those of the interfaces it extends)."""
    code = strip_comments(source)
    known = aliases(source)
    raw: dict[str, tuple[list[str], dict[str, Field]]] = {}
    pattern = r"export interface (\w+)(?:<[^>]*>)?(?: extends ([\w, <>']+))?\s*\{(.*?)\n\}"
    for name, parents, body in re.findall(pattern, code, flags=re.S):
        fields = {
            field: Field(bool(optional), union(kind, known))
            for field, optional, kind in re.findall(r"^\s*(\w+)(\?)?:\s*([^;]+);", body, re.M)
        }
        bases = [p.strip() for p in parents.split(",")] if parents else []
        raw[name] = (bases, fields)

    def resolved(name: str) -> dict[str, Field]:
        bases, fields = raw[name]
        merged: dict[str, Field] = {}
        for base in bases:
            merged.update(resolved(base))
        return {**merged, **fields}

    return {name: resolved(name) for name in raw}


def ts_members(annotation: Any) -> frozenset[str]:
    """A Python field type as the TypeScript union it must be."""
    if annotation is Any:
        return frozenset({"unknown"})
    if annotation is type(None):
        return frozenset({"null"})
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return frozenset(f"'{value}'" for value in typing.get_args(annotation))
    if origin in (Union, types.UnionType):
        return frozenset().union(*(ts_members(arg) for arg in typing.get_args(annotation)))
    return frozenset({{str: "string", int: "number", float: "number", bool: "boolean"}[annotation]})


# -- stream events -------------------------------------------------------------------------


def event_interfaces(source: str) -> dict[str, tuple[str, dict[str, Field]]]:
    """Event type -> (interface name, fields but ``type``): the interfaces with a literal
    ``type`` (``IReceivedEvent`` is the SSE envelope, not an event)."""
    found: dict[str, tuple[str, dict[str, Field]]] = {}
    for name, fields in interfaces(source).items():
        kind = fields.get("type")
        if name.endswith("Event") and kind and len(kind.type) == 1:
            (literal,) = kind.type
            if literal.startswith("'"):
                found[literal.strip("'")] = (name, {k: v for k, v in fields.items() if k != "type"})
    return found


def event_mismatches(source: str, event_fields: dict[str, dict[str, Any]]) -> list[str]:
    """How types.ts differs from ``events.EVENT_FIELDS`` (empty: they agree)."""
    problems = []
    declared = event_interfaces(source)
    for kind in sorted(event_fields.keys() - declared.keys()):
        problems.append(f"{kind}: no interface with type '{kind}' in types.ts")
    for kind in sorted(declared.keys() - event_fields.keys()):
        problems.append(f"{kind}: {declared[kind][0]} is not an event of events.py")
    for kind in sorted(event_fields.keys() & declared.keys()):
        interface, fields = declared[kind]
        python = event_fields[kind]
        for name in sorted(python.keys() - fields.keys()):
            problems.append(f"{interface}: lacks {name} (events.{kind} has it)")
        for name in sorted(fields.keys() - python.keys()):
            problems.append(f"{interface}: has {name}, which events.{kind} does not")
        for name in sorted(python.keys() & fields.keys()):
            field, expected = fields[name], ts_members(python[name])
            if field.optional:  # every event carries all its fields
                problems.append(f"{interface}.{name}: optional, but always sent")
            if field.type != expected:
                want = " | ".join(sorted(expected))
                problems.append(f"{interface}.{name}: {' | '.join(sorted(field.type))}, not {want}")
    # The union the client parses events into names every event interface.
    union_text = aliases(source)["AssistantEvent"]
    members = union(union_text, {k: v for k, v in aliases(source).items() if k != "AssistantEvent"})
    for interface, _ in sorted(declared.values()):
        if interface not in members:
            problems.append(f"AssistantEvent: lacks {interface}")
    return problems


def test_every_event_of_events_py_is_in_types_ts_with_its_fields() -> None:
    assert event_mismatches(TYPES_TS, events.EVENT_FIELDS) == []


def test_the_terminal_events_are_the_same() -> None:
    (listed,) = re.findall(r"TERMINAL_TYPES[^=]*= new Set\(\[([^\]]*)\]\)", TYPES_TS)
    assert {name.strip().strip("'") for name in listed.split(",")} == events.TERMINAL_EVENTS


def test_a_field_added_on_one_side_only_is_found() -> None:
    started = "type: 'turn_started';\n  turn_id: string;\n"
    assert started in TYPES_TS
    extra_ts = TYPES_TS.replace(started, started + "  model: string;\n")
    assert event_mismatches(extra_ts, events.EVENT_FIELDS) == [
        "ITurnStartedEvent: has model, which events.turn_started does not"
    ]
    extra_py = {**events.EVENT_FIELDS, "text": {**events.EVENT_FIELDS["text"], "final": bool}}
    assert event_mismatches(TYPES_TS, extra_py) == ["ITextEvent: lacks final (events.text has it)"]
    retyped = TYPES_TS.replace("  duration_ms: number;", "  duration_ms: string;")
    assert event_mismatches(retyped, events.EVENT_FIELDS) == [
        "IDoneEvent.duration_ms: string, not number"
    ]
    optional = TYPES_TS.replace(
        "  is_error: boolean;\n}\nexport interface IUsageEvent",
        "  is_error?: boolean;\n}\nexport interface IUsageEvent",
    )
    assert event_mismatches(optional, events.EVENT_FIELDS) == [
        "IToolResultEvent.is_error: optional, but always sent"
    ]
    new_type = {**events.EVENT_FIELDS, "checkpoint": {"turn_id": str}}
    assert event_mismatches(TYPES_TS, new_type) == [
        "checkpoint: no interface with type 'checkpoint' in types.ts"
    ]


def spec_event_fields() -> dict[str, set[str]]:
    """The events docs/rest-api.yml's event stream lists: `` `type {a, b}` `` in its text."""
    description = SPEC["paths"]["/sessions/{session_id}/events"]["get"]["description"]
    return {
        kind: {f.strip() for f in fields.split(",") if f.strip()}
        for kind, fields in re.findall(r"`(\w+) \{([^}]*)\}`", description)
    }


def test_the_spec_lists_every_event_with_its_fields() -> None:
    documented = spec_event_fields()
    assert documented == {kind: set(fields) for kind, fields in events.EVENT_FIELDS.items()}
    stream = SPEC["paths"]["/sessions/{session_id}/events"]["get"]["responses"]["200"]
    schema = stream["content"]["text/event-stream"]["schema"]
    assert set(schema["properties"]["event"]["enum"]) == events.EVENT_TYPES


# -- the session summary ---------------------------------------------------------------------

SERVED = [name for name in SUMMARY_FIELDS if name not in UNSERVED]
SUMMARY_TYPES = typing.get_type_hints(SessionSummary)


def openapi_type(annotation: Any) -> dict[str, Any]:
    if typing.get_origin(annotation) is Literal:
        return {"type": "string", "enum": list(typing.get_args(annotation))}
    return {"type": {str: "string", int: "integer", bool: "boolean"}[annotation]}


def test_unserved_fields_are_summary_fields() -> None:
    assert set(SUMMARY_FIELDS) >= UNSERVED
    assert SessionSummary.__required_keys__ == set(SUMMARY_FIELDS)  # never absent


def test_the_spec_summary_is_the_python_one() -> None:
    schema = SPEC["components"]["schemas"]["SessionSummary"]
    assert list(schema["properties"]) == SERVED
    assert set(schema["required"]) == set(SERVED)
    for name in SERVED:
        documented = {k: v for k, v in schema["properties"][name].items() if k in ("type", "enum")}
        assert documented == openapi_type(SUMMARY_TYPES[name]), name


def test_the_typescript_summary_is_the_python_one() -> None:
    fields = interfaces(TYPES_TS)["ISessionSummary"]
    assert set(fields) == set(SERVED)
    for name in SERVED:
        assert fields[name] == Field(False, ts_members(SUMMARY_TYPES[name])), name


@pytest.mark.parametrize(
    ("change", "found"),
    [
        (("  message_count: number;\n", "  message_count: number;\n  size: number;\n"), "size"),
        (("  detached: boolean;\n}", "}"), "detached"),
        (("  detached: boolean;\n}", "  detached?: boolean;\n}"), "detached"),
    ],
)
def test_a_summary_change_on_one_side_only_is_found(change: tuple[str, str], found: str) -> None:
    old, new = change
    summary = TYPES_TS[TYPES_TS.index("export interface ISessionSummary") :]
    assert old in summary
    changed = TYPES_TS.replace(summary, summary.replace(old, new, 1))
    fields = interfaces(changed)["ISessionSummary"]
    differs = [
        name
        for name in set(fields) | set(SERVED)
        if name not in fields
        or name not in SERVED
        or fields[name] != Field(False, ts_members(SUMMARY_TYPES[name]))
    ]
    assert differs == [found]


def test_the_typescript_session_has_the_fields_of_the_python_one() -> None:
    """``GET sessions/{id}`` sends a whole ``Session``: types.ts's ``ISession`` (and the
    records inside it) name exactly its fields."""
    from jupyter_assistant.models import Approval, Message, PermissionRecord, Session, ToolCall

    declared = interfaces(TYPES_TS)
    pairs = {
        "ISession": Session,
        "IMessage": Message,
        "IToolCall": ToolCall,
        "IPermissionRecord": PermissionRecord,
        "IApproval": Approval,
    }
    for interface, model in pairs.items():
        assert set(declared[interface]) == set(model.model_fields), interface
