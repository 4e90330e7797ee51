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
    busy_warm = await api(jp_fetch, "sessions", sid, "prewarm", method="POST", body="")
    check(busy_warm, "/sessions/{session_id}/prewarm", "post")
    cancel = await api(jp_fetch, "sessions", sid, "cancel", method="POST", body="{}")
    check(cancel, "/sessions/{session_id}/cancel", "post")
    unknown = await api(jp_fetch, "sessions", "nope", "prewarm", method="POST", body="")
    check(unknown, "/sessions/{session_id}/prewarm", "post")
    new = await api(jp_fetch, "prewarm", method="POST", body={"path": "analysis/q3.ipynb"})
    check(new, "/prewarm", "post")
    check(await api(jp_fetch, "prewarm", method="POST", body={"path": "../x"}), "/prewarm", "post")
    check(await api(jp_fetch, "prewarm", method="POST", body={"x": 1}), "/prewarm", "post")
    check(await api(jp_fetch, "sessions", sid), "/sessions/{session_id}", "get")
    check(await api(jp_fetch, "sessions", sid, method="DELETE"), "/sessions/{session_id}", "delete")
    other = await create_session(jp_fetch)
    await post_message(jp_fetch, other["id"], "hi")
    too_big = await api(
        jp_fetch, "sessions", other["id"], "messages", method="POST", body={"content": "x" * 2**21}
    )
    check(too_big, "/sessions/{session_id}/messages", "post")


# -- what the spec accepts is what the server accepts ----------------------------------------


def spec_accepts(schema: Any, value: Any) -> bool:
    try:
        jsonschema.validate(value, to_json_schema(schema))
    except jsonschema.ValidationError:
        return False
    return True


BODY_SCHEMAS = SPEC["components"]["schemas"]
NOTEBOOK_PATH = BODY_SCHEMAS["NotebookPath"]
PATH_EXAMPLES = [
    "", ".", "./", "/", "//", "./.", "a/..", "../x.ipynb", "a/../b.ipynb", "/etc/x.ipynb",
    "\\x.ipynb", "a\\b.ipynb", "~/x.ipynb", "x\x01.ipynb", "x\x7f.ipynb", " /x.ipynb",
    "x.ipynb", " x.ipynb ", "...", "..x.ipynb", ".x.ipynb", "a/..b", "./x.ipynb", "x//y/../",
    "x~.ipynb", "analysis/q3.ipynb", "analysis//q3.ipynb", "analysis/./q3.ipynb", "é.ipynb",
]  # fmt: skip


def test_the_notebook_path_schema_is_the_servers_path_rule() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from jupyter_assistant.errors import BadRequest
    from jupyter_assistant.workdir import normalize_api_path

    def server_accepts(path: str) -> bool:
        try:
            normalize_api_path(path)
        except BadRequest:
            return False
        return True

    for path in PATH_EXAMPLES:
        assert spec_accepts(NOTEBOOK_PATH, path) == server_accepts(path), repr(path)

    @settings(max_examples=3000, deadline=None)
    @given(st.text(alphabet="/.\\~a \x00\x1f\x7fé", max_size=8))
    def agree(path: str) -> None:
        assert spec_accepts(NOTEBOOK_PATH, path) == server_accepts(path), repr(path)

    agree()


BLANKS = [" ", "\t\n", "\x0b\x0c\r", "\x1c\x1d\x1e\x1f", "\x85\xa0", "\u3000\u2028\u2000\u205f"]


def test_the_message_schema_refuses_exactly_blank_content() -> None:
    content = BODY_SCHEMAS["PostMessageBody"]["properties"]["content"]
    every_space = "".join(c for c in map(chr, range(0x110000)) if c.isspace())
    assert not spec_accepts(content, every_space)
    for space in every_space:
        assert not spec_accepts(content, space), hex(ord(space))
    for text in ["x", " x ", "\ufeff", "\u200b", "\x00", "\x1b"]:  # not str.isspace
        assert spec_accepts(content, text), repr(text)


@pytest.mark.usefixtures("notebook_dir")
async def test_the_server_refuses_what_the_spec_refuses(jp_fetch: Any, jp_root_dir: Path) -> None:
    """GET sessions?path=, POST sessions {path, provider}, POST messages {content}: each value
    the spec refuses gets 400 from the server, each one it accepts does not (the examples'
    folders exist: a missing one is the 400 the schema cannot say)."""
    for folder in (" ", "a"):
        (jp_root_dir / folder).mkdir()
    get_schema = SPEC["paths"]["/sessions"]["get"]["parameters"][0]["schema"]
    post_schema = BODY_SCHEMAS["CreateSessionBody"]
    for path in PATH_EXAMPLES:
        listed = await api(jp_fetch, "sessions", params={"path": path})
        assert (listed.code != 400) == spec_accepts(get_schema, path), (repr(path), listed.body)
        assert listed.code in (200, 400)
        created = await api(jp_fetch, "sessions", method="POST", body={"path": path})
        accepted = spec_accepts(post_schema, {"path": path})
        assert (created.code != 400) == accepted, (repr(path), created.body)
        assert created.code in (201, 400)
    # The providers: the names GET providers lists, no others (plugins: no enum in the spec).
    provider = post_schema["properties"]["provider"]
    assert "enum" not in provider and "`GET providers`" in provider["description"]
    assert "`400`" in provider["description"]
    names = [p["name"] for p in json_of(await api(jp_fetch, "providers"))["providers"]]
    for name in names:
        body = {"path": "analysis/q3.ipynb", "provider": name}
        assert spec_accepts(post_schema, body)
        created = await api(jp_fetch, "sessions", method="POST", body=body)
        assert created.code == 201, created.body
    for name in ["0", "claude ", "CLAUDE"]:
        body = {"path": "analysis/q3.ipynb", "provider": name}
        refused = await api(jp_fetch, "sessions", method="POST", body=body)
        assert refused.code == 400 and all(n in json_of(refused)["message"] for n in names)
    # Blank messages.
    message_schema = BODY_SCHEMAS["PostMessageBody"]
    sid = (await create_session(jp_fetch))["id"]
    for blank in BLANKS:
        assert not spec_accepts(message_schema, {"content": blank}), repr(blank)
        refused = await api(
            jp_fetch, "sessions", sid, "messages", method="POST", body={"content": blank}
        )
        assert refused.code == 400, repr(blank)
    for text in [" x ", "\ufeff"]:
        assert spec_accepts(message_schema, {"content": text})
        stream = await run_turn(jp_fetch, sid, text)
        assert stream[-1]["event"] == "done", stream


def concrete(path: str) -> list[str]:
    values = {"session_id": "12345678-1234-4234-8234-123456789abc", "turn_id": "t1"}
    return [
        values.get(part[1:-1], "r1") if part.startswith("{") else part
        for part in path.strip("/").split("/")
    ]


@pytest.mark.usefixtures("notebook_dir")
async def test_without_credentials_every_operation_is_403_as_documented(jp_fetch: Any) -> None:
    assert "answers `403`, never `401`" in " ".join(SPEC["info"]["description"].split())
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert "403" in operation["responses"] and "401" not in operation["responses"]
            body = "{}" if method in ("post", "put", "patch") else None
            response = await api(
                jp_fetch, *concrete(path), method=method.upper(), body=body,
                headers={"Authorization": ""},
            )  # fmt: skip
            assert response.code == 403, (method, path, response.code)
            check(response, path, method)
