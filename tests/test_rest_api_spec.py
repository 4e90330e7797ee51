"""docs/rest-api.yml stays true: a valid OpenAPI document, the same routes as the server, and
the real server's responses match its schemas."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from openapi_spec_validator import validate

from jupyter_assistant.handlers import NotFoundHandler, routes

from .helpers import (
    api,
    create_session,
    eventually,
    json_of,
    parse_sse,
    post_message,
    run_turn,
)

SPEC_FILE = Path(__file__).parent.parent / "docs" / "rest-api.yml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_FILE.read_text())


def test_the_spec_is_valid_openapi() -> None:
    validate(copy.deepcopy(SPEC))


def route_template(pattern: str) -> str:
    path = pattern.removeprefix("/api/assistant").removesuffix("/?")
    return re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", path)


def api_routes() -> list[tuple[str, Any]]:
    return [(p, h) for p, h in routes() if h is not NotFoundHandler]


def test_the_spec_and_the_server_have_the_same_routes() -> None:
    served = {route_template(pattern) for pattern, _ in api_routes()}
    assert served == set(SPEC["paths"])
    for pattern, handler in api_routes():
        methods = {m for m in ("get", "post", "delete", "put", "patch") if m in vars(handler)}
        assert methods == set(SPEC["paths"][route_template(pattern)]) - {"parameters"}, pattern


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: resolve $refs, turn `nullable` into a null type."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return to_json_schema(SPEC["components"]["schemas"][name])
    out = {key: to_json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def check(response: Any, path: str, method: str) -> None:
    """Assert the response's status is documented for this operation and its body matches."""
    operation = SPEC["paths"][path][method]
    documented = operation["responses"]
    assert str(response.code) in documented, f"{method} {path}: {response.code} not in the spec"
    spec_response = documented[str(response.code)]
    if "$ref" in spec_response:
        spec_response = SPEC["components"]["responses"][spec_response["$ref"].rsplit("/", 1)[-1]]
    content = spec_response.get("content")
    if not content:
        assert not response.body
        return
    media = response.headers["Content-Type"].split(";")[0]
    assert media in content
    if media in ("application/json", "application/x-ipynb+json"):
        jsonschema.validate(json_of(response), to_json_schema(content[media]["schema"]))
    elif media == "text/event-stream":
        for event in parse_sse(response.body.decode()):
            raw = {"id": event["id"], "event": event["event"], "data": json.dumps(event["data"])}
            jsonschema.validate(raw, to_json_schema(content[media]["schema"]))


@pytest.mark.usefixtures("notebook_dir")
async def test_real_responses_match_the_spec(jp_fetch: Any) -> None:
    check(await api(jp_fetch, "providers"), "/providers", "get")
    check(
        await api(jp_fetch, "sessions", method="POST", body={"path": "../x"}), "/sessions", "post"
    )
    created = await api(jp_fetch, "sessions", method="POST", body={"path": "analysis/q3.ipynb"})
    check(created, "/sessions", "post")
    sid = json_of(created)["id"]
    check(await api(jp_fetch, "sessions", sid, "events"), "/sessions/{session_id}/events", "get")
    await run_turn(jp_fetch, sid, "scenario:tool hello")
    check(await api(jp_fetch, "sessions", sid, "events"), "/sessions/{session_id}/events", "get")
    check(await api(jp_fetch, "providers", params={"refresh": "x"}), "/providers", "get")
    export = "/sessions/{session_id}/export"
    for params in ({"format": "md"}, {"format": "ipynb"}, {"format": "x"}):
        check(await api(jp_fetch, "sessions", sid, "export", params=params), export, "get")
    check(await api(jp_fetch, "sessions", "nope", "export", params={"format": "md"}), export, "get")
    await run_turn(jp_fetch, sid, "scenario:crash")
    # A tool approval: the question shows in the saved partial reply, then is answered.
    await post_message(jp_fetch, sid, "scenario:permission")
    waiting: list[Any] = []

    async def asked() -> bool:
        reply = json_of(await api(jp_fetch, "sessions", sid))["messages"][-1]
        waiting[:] = reply.get("permissions") or [] if reply["role"] == "assistant" else []
        return bool(waiting)

    await eventually(asked, message="the question was never saved")
    check(await api(jp_fetch, "sessions", sid), "/sessions/{session_id}", "get")
    answered = await api(
        jp_fetch, "sessions", sid, "permissions", waiting[0]["request_id"], method="POST",
        body={"decision": "allow", "scope": "session"},
    )  # fmt: skip
    check(answered, "/sessions/{session_id}/permissions/{request_id}", "post")
    check(await api(jp_fetch, "sessions", sid, "events"), "/sessions/{session_id}/events", "get")
    check(await api(jp_fetch, "sessions"), "/sessions", "get")
    check(await api(jp_fetch, "sessions", params={"path": "analysis/q3.ipynb"}), "/sessions", "get")
    check(await api(jp_fetch, "sessions", sid), "/sessions/{session_id}", "get")
    check(await api(jp_fetch, "sessions", "nope"), "/sessions/{session_id}", "get")
    posted = await api(
        jp_fetch, "sessions", sid, "messages", method="POST", body={"content": "scenario:hang"}
    )
    check(posted, "/sessions/{session_id}/messages", "post")
    busy = await api(jp_fetch, "sessions", sid, "messages", method="POST", body={"content": "x"})
    check(busy, "/sessions/{session_id}/messages", "post")
    check(await api(jp_fetch, "sessions", sid), "/sessions/{session_id}", "get")
    permission = await api(
        jp_fetch, "sessions", sid, "permissions", "r1", method="POST", body={"decision": "deny"}
    )
    check(permission, "/sessions/{session_id}/permissions/{request_id}", "post")
    cancel = await api(jp_fetch, "sessions", sid, "cancel", method="POST", body="{}")
    check(cancel, "/sessions/{session_id}/cancel", "post")
    check(await api(jp_fetch, "sessions", sid), "/sessions/{session_id}", "get")
    check(await api(jp_fetch, "sessions", sid, method="DELETE"), "/sessions/{session_id}", "delete")
    other = await create_session(jp_fetch)
    await post_message(jp_fetch, other["id"], "hi")
    too_big = await api(
        jp_fetch, "sessions", other["id"], "messages", method="POST", body={"content": "x" * 2**21}
    )
    check(too_big, "/sessions/{session_id}/messages", "post")
