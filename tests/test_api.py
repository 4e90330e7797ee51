"""The HTTP API against a real Jupyter server (base URL /a%40b/) and the fake Claude Code CLI."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from .helpers import (
    NOTEBOOK,
    StreamReader,
    api,
    create_session,
    events,
    json_of,
    pids_alive,
    post_message,
    run_turn,
    text_of,
    types,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("notebook_dir")

TERMINALS = {"done", "error", "cancelled"}


def assert_json_error(response: Any, code: int) -> str:
    assert response.code == code, response.body
    assert response.headers["Content-Type"].startswith("application/json")
    body = json_of(response)
    assert set(body) == {"message"}, body  # never a traceback
    assert body["message"]
    return str(body["message"])


# -- providers ---------------------------------------------------------------------------------


async def test_providers_lists_claude_with_its_version(jp_fetch: Any) -> None:
    response = await api(jp_fetch, "providers")
    assert response.code == 200
    body = json_of(response)
    assert body["default"] == "claude"
    (claude,) = [p for p in body["providers"] if p["name"] == "claude"]
    assert claude["available"] is True
    assert claude["display_name"] == "Claude Code"
    assert claude["version"]
    assert claude["problem"] is None


@pytest.mark.parametrize(("logged_in", "credentials"), [("1", "present"), ("0", "missing")])
async def test_providers_asks_the_cli_whether_it_is_logged_in(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch, logged_in: str, credentials: str
) -> None:
    # no key and no credentials file: `claude auth status` tells (the sidebar then shows its
    # set-up card before the first message, not after a failed one)
    for name in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FAKE_CLAUDE_LOGGED_IN", logged_in)
    body = json_of(await api(jp_fetch, "providers", params={"refresh": "1"}))
    (claude,) = [p for p in body["providers"] if p["name"] == "claude"]
    assert claude["available"] is True
    assert claude["credentials"] == credentials


class TestMissingCli:
    @pytest.fixture
    def claude_command(self, tmp_path: Path) -> list[str]:
        return [str(tmp_path / "no-such-claude")]

    async def test_provider_is_unavailable_with_the_install_command(self, jp_fetch: Any) -> None:
        body = json_of(await api(jp_fetch, "providers"))
        (claude,) = [p for p in body["providers"] if p["name"] == "claude"]
        assert claude["available"] is False
        assert "npm install -g @anthropic-ai/claude-code" in claude["problem"]
        # The sidebar's onboarding card offers the same commands, with Copy buttons.
        assert claude["setup"]["install"]["command"] == "npm install -g @anthropic-ai/claude-code"
        assert claude["setup"]["login"]["command"] == "claude"

    async def test_a_turn_ends_with_provider_not_found(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "hello")
        assert types(stream) == ["turn_started", "error"]
        assert stream[-1]["data"]["code"] == "provider_not_found"
        assert "npm install" in stream[-1]["data"]["message"]
        stored = json_of(await api(jp_fetch, "sessions", session["id"]))
        assert stored["status"] == "idle"
        assert stored["messages"][-1]["status"] == "error"


# -- sessions ----------------------------------------------------------------------------------


async def test_create_get_list_delete(jp_fetch: Any, jp_root_dir: Path, store_dir: Path) -> None:
    session = await create_session(jp_fetch, context={"kernel": "python3"})
    assert session["path"] == NOTEBOOK
    assert session["working_dir"] == str((jp_root_dir / "analysis").resolve())
    assert session["provider"] == "claude"
    assert session["status"] == "idle"
    assert session["messages"] == []
    assert session["pending_message"] is None
    assert session["context"] == {"kernel": "python3"}
    assert session["version"] == 1
    assert (store_dir / "sessions" / f"{session['id']}.json").exists()

    got = json_of(await api(jp_fetch, "sessions", session["id"]))
    assert got["id"] == session["id"]

    other = await create_session(jp_fetch, path="other.ipynb")
    listed = json_of(await api(jp_fetch, "sessions"))["sessions"]
    assert {s["id"] for s in listed} == {session["id"], other["id"]}
    assert set(listed[0]) >= {
        "id",
        "path",
        "title",
        "provider",
        "status",
        "created_at",
        "updated_at",
        "message_count",
    }
    mine = json_of(await api(jp_fetch, "sessions", params={"path": NOTEBOOK}))["sessions"]
    assert [s["id"] for s in mine] == [session["id"]]
    # ?path= matches the notebook's resolved file, however the path is spelled
    same = json_of(await api(jp_fetch, "sessions", params={"path": "analysis//./q3.ipynb"}))
    assert [s["id"] for s in same["sessions"]] == [session["id"]]

    response = await api(jp_fetch, "sessions", session["id"], method="DELETE")
    assert response.code == 204
    assert_json_error(await api(jp_fetch, "sessions", session["id"]), 404)
    assert_json_error(await api(jp_fetch, "sessions", session["id"], method="DELETE"), 404)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("not json", "JSON"),
        ([1, 2], "object"),
        ({}, "path"),
        ({"path": ""}, "path"),
        ({"path": 5}, "path"),
        ({"path": NOTEBOOK, "surprise": 1}, "surprise"),
        ({"path": "../outside.ipynb"}, ".."),
        ({"path": "/etc/passwd"}, "absolute"),
        ({"path": "nowhere/x.ipynb"}, "does not exist"),
        ({"path": "%2e%2e/%2e%2e/etc/passwd"}, "does not exist"),  # no URL-decoding of bodies
        ({"path": "\uff0e\uff0e/x.ipynb"}, "does not exist"),  # fullwidth dots are not ..
        ({"path": "analysis/../../x.ipynb"}, ".."),
        ({"path": "analysis\\..\\..\\x.ipynb"}, "backslash"),
        ({"path": "analysis/q3.ipynb\u0000"}, "control"),
        ({"path": NOTEBOOK, "provider": "nope"}, "Unknown provider"),
        ({"path": NOTEBOOK, "context": "text"}, "context"),
    ],
)
async def test_create_rejects_bad_bodies_and_creates_nothing(
    jp_fetch: Any, store_dir: Path, body: Any, needle: str
) -> None:
    raw = body if isinstance(body, str) else json.dumps(body)
    message = assert_json_error(await api(jp_fetch, "sessions", method="POST", body=raw), 400)
    assert needle in message
    sessions_dir = store_dir / "sessions"
    assert not sessions_dir.exists() or list(sessions_dir.glob("*.json")) == []


async def test_a_percent_in_an_error_message_is_shown_once(jp_fetch: Any) -> None:
    body = {"path": "%2e%2e/100%/x.ipynb"}
    message = assert_json_error(await api(jp_fetch, "sessions", method="POST", body=body), 400)
    assert "'%2e%2e/100%'" in message, message
    assert "%%" not in message
    bad = {"path": NOTEBOOK, "provider": {"100%": 1}}
    message = assert_json_error(await api(jp_fetch, "sessions", method="POST", body=bad), 400)
    assert "%%" not in message


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [1000, 100_000])
async def test_a_deeply_nested_body_is_a_400(jp_fetch: Any, depth: int) -> None:
    raw = '{"path": "analysis/q3.ipynb", "context": {"x": ' + "[" * depth + "]" * depth + "}}"
    message = assert_json_error(await api(jp_fetch, "sessions", method="POST", body=raw), 400)
    assert "nested" in message


async def test_a_deeply_nested_context_is_a_400_and_changes_nothing(jp_fetch: Any) -> None:
    session = await create_session(jp_fetch)
    body = {"content": "hi", "context": {"cell": nested(500)}}
    response = await api(jp_fetch, "sessions", session["id"], "messages", method="POST", body=body)
    assert "nested" in assert_json_error(response, 400)
    stored = json_of(await api(jp_fetch, "sessions", session["id"]))
    assert stored["messages"] == [] and stored["status"] == "idle"


async def test_symlink_out_of_the_root_is_refused(
    jp_fetch: Any, jp_root_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, jp_root_dir / "escape")
    message = assert_json_error(
        await api(jp_fetch, "sessions", method="POST", body={"path": "escape/x.ipynb"}), 400
    )
    assert "outside the server root" in message


@pytest.mark.parametrize(
    "bad_id", ["nope", "..%2F..%2Fetc", "12345678-1234-1234-1234-123456789ABC", "0" * 32]
)
async def test_unknown_or_malformed_ids_are_404(jp_fetch: Any, bad_id: str) -> None:
    for parts, method, body in [
        (("sessions", bad_id), "GET", None),
        (("sessions", bad_id), "DELETE", None),
        (("sessions", bad_id, "messages"), "POST", {"content": "hi"}),
        (("sessions", bad_id, "events"), "GET", None),
        (("sessions", bad_id, "cancel"), "POST", {}),
        (("sessions", bad_id, "permissions", "r1"), "POST", {"decision": "allow"}),
    ]:
        assert_json_error(await api(jp_fetch, *parts, method=method, body=body), 404)


async def test_unknown_well_formed_id_is_404(jp_fetch: Any) -> None:
    missing = "12345678-1234-4234-8234-123456789abc"
    assert_json_error(await api(jp_fetch, "sessions", missing), 404)
    response = await api(
        jp_fetch, "sessions", missing, "messages", method="POST", body={"content": "x"}
    )
    assert_json_error(response, 404)


# -- a turn ------------------------------------------------------------------------------------


async def test_a_turn_streams_stores_and_resumes(
    jp_fetch: Any,
    jp_serverapp: Any,
    jp_root_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv_file = tmp_path / "argv.json"
    monkeypatch.setenv("FAKE_CLAUDE_ARGV_FILE", str(argv_file))
    monkeypatch.setenv("JUPYTER_TOKEN", "do-not-leak-me")
    session = await create_session(jp_fetch)
    sid = session["id"]

    stream = await run_turn(jp_fetch, sid, "list the csv files here", context={"cell": "df.head()"})
    kinds = types(stream)
    assert kinds[0] == "turn_started"
    assert kinds[-1] == "done"
    assert "text" in kinds  # (deltas that arrive together are coalesced; see the slow test)
    assert "usage" in kinds
    turn_id = stream[0]["data"]["turn_id"]
    assert [e["id"] for e in stream] == [f"{turn_id}:{n}" for n in range(1, len(stream) + 1)]
    done = stream[-1]["data"]
    assert done["provider_session_id"]
    assert done["cost_usd"] > 0
    reply = text_of(stream)
    assert "list the csv files here" in reply

    launched = json.loads(argv_file.read_text())
    assert launched["cwd"] == str((jp_root_dir / "analysis").resolve())
    # The context goes with the prompt (a warm CLI takes each message's own context).
    assert launched["stdin"] == (
        "<notebook_context>\n### cell\ndf.head()\n</notebook_context>\n\nlist the csv files here"
    )
    assert "JUPYTER_TOKEN" not in launched["env_names"]
    assert not any(a.startswith("--resume") for a in launched["argv"])
    # The context (a cell may hold a secret) is not on the command line, which `ps` shows to
    # every local user; nor is the system prompt, which is in a file only this user can read,
    # gone after the turn.
    assert "--append-system-prompt" not in launched["argv"]
    assert not any("df.head()" in arg for arg in launched["argv"])
    system_file = launched["argv"][launched["argv"].index("--append-system-prompt-file") + 1]
    assert stat.S_IMODE(launched["append_system_prompt_file_mode"]) == 0o600
    assert not await asyncio.to_thread(os.path.exists, system_file)
    system_prompt = launched["append_system_prompt"]
    assert "analysis/q3.ipynb" in system_prompt
    assert "df.head()" not in system_prompt

    stored = json_of(await api(jp_fetch, "sessions", sid))
    assert stored["status"] == "idle"
    assert stored["pending_message"] is None
    assert stored["provider_session_id"] == done["provider_session_id"]
    user, assistant = stored["messages"]
    assert (user["role"], user["content"], user["turn_id"]) == (
        "user",
        "list the csv files here",
        turn_id,
    )
    assert user["context"] == {"cell": "df.head()"}
    assert (assistant["role"], assistant["status"], assistant["turn_id"]) == (
        "assistant",
        "complete",
        turn_id,
    )
    assert assistant["content"] == reply
    assert stored["usage"]["cost_usd"] == pytest.approx(done["cost_usd"])
    assert stored["title"] == "list the csv files here"
    summary = json_of(await api(jp_fetch, "sessions", params={"path": NOTEBOOK}))["sessions"][0]
    assert summary["message_count"] == 2

    # The follow-up resumes the same provider conversation, in a CLI started anew (as after
    # warm_idle_seconds: the warm process that took the turn is ended first).
    await jp_serverapp.web_app.settings["jupyter_assistant"].service.runner.end_warm(sid)
    stream2 = await run_turn(jp_fetch, sid, "and summarise sales.csv")
    assert types(stream2)[-1] == "done"
    assert f"--resume={done['provider_session_id']}" in json.loads(argv_file.read_text())["argv"]
    assert f"resumed:{done['provider_session_id']}" in text_of(stream2)
    stored = json_of(await api(jp_fetch, "sessions", sid))
    assert len(stored["messages"]) == 4
    assert stored["usage"]["cost_usd"] == pytest.approx(2 * done["cost_usd"])


async def test_tool_calls_run_in_the_notebook_folder(jp_fetch: Any, jp_root_dir: Path) -> None:
    session = await create_session(jp_fetch)
    stream = await run_turn(jp_fetch, session["id"], "scenario:tool where am I?")
    kinds = types(stream)
    assert kinds.index("tool_use") < kinds.index("tool_result") < kinds.index("done")
    use = next(e["data"] for e in stream if e["event"] == "tool_use")
    result = next(e["data"] for e in stream if e["event"] == "tool_result")
    assert use["name"] == "Bash"
    assert result["id"] == use["id"]
    assert result["content"].strip() == str((jp_root_dir / "analysis").resolve())
    stored = json_of(await api(jp_fetch, "sessions", session["id"]))
    (tool,) = stored["messages"][-1]["tools"]
    assert tool["name"] == "Bash"
    assert tool["result"].strip() == str((jp_root_dir / "analysis").resolve())
    assert tool["is_error"] is False
    # the text before the call ("I will run pwd.") is placed before it after a reload too
    before = stored["messages"][-1]["content"][: tool["text_offset"]]
    assert before.rstrip().endswith("I will run pwd."), stored["messages"][-1]["content"]


async def test_permission_denials_reach_the_user(jp_fetch: Any) -> None:
    session = await create_session(jp_fetch)
    stream = await run_turn(jp_fetch, session["id"], "scenario:denied")
    denied = [e["data"] for e in stream if e["event"] == "permission_denied"]
    assert denied
    assert "allowed_tools" in denied[0]["message"]
    stored = json_of(await api(jp_fetch, "sessions", session["id"]))
    assert stored["messages"][-1]["notices"] == [denied[0]["message"]]


@pytest.mark.parametrize(
    ("scenario", "code", "needle"),
    [
        ("not_logged_in", "not_authenticated", "/login"),
        ("crash", "provider_failed", "simulated crash"),
        ("exit_now", "provider_failed", "code 5"),
    ],
)
async def test_provider_failures_end_in_a_clear_error(
    jp_fetch: Any, scenario: str, code: str, needle: str
) -> None:
    session = await create_session(jp_fetch)
    stream = await run_turn(jp_fetch, session["id"], f"scenario:{scenario}")
    assert types(stream)[-1] == "error"
    assert stream[-1]["data"]["code"] == code
    assert needle in stream[-1]["data"]["message"]
    stored = json_of(await api(jp_fetch, "sessions", session["id"]))
    assert stored["status"] == "idle"
    assert stored["messages"][-1]["status"] == "error"
    assert stored["messages"][-1]["error"]["code"] == code
    # the session is usable again
    assert types(await run_turn(jp_fetch, session["id"], "hello again"))[-1] == "done"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"content": ""}, 400),
        ({"content": "   "}, 400),
        ({}, 400),
        ({"content": 3}, 400),
        ({"content": "hi", "extra": True}, 400),
        ({"content": "x" * (1024 * 1024 + 1)}, 413),
        ({"content": "hi", "context": {"cell": "y" * (1024 * 1024)}}, 413),
    ],
)
async def test_bad_messages_are_refused_and_store_nothing(
    jp_fetch: Any, body: dict[str, Any], code: int
) -> None:
    session = await create_session(jp_fetch)
    response = await api(jp_fetch, "sessions", session["id"], "messages", method="POST", body=body)
    assert_json_error(response, code)
    stored = json_of(await api(jp_fetch, "sessions", session["id"]))
    assert stored["messages"] == []
    assert stored["pending_message"] is None
    assert stored["status"] == "idle"


async def test_events_before_any_turn_end_at_once(jp_fetch: Any) -> None:
    session = await create_session(jp_fetch)
    assert await events(jp_fetch, session["id"]) == []


# -- concurrency, cancel, reconnect ------------------------------------------------------------


def stream_url(jp_serverapp: Any, jp_base_url: str, jp_http_port: int, session_id: str) -> str:
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}api/assistant/sessions/{session_id}/events"


async def test_one_turn_at_a_time_then_cancel_keeps_the_partial_reply(
    jp_fetch: Any,
    jp_serverapp: Any,
    jp_base_url: str,
    jp_http_port: int,
    jp_auth_header: dict[str, str],
) -> None:
    session = await create_session(jp_fetch)
    sid = session["id"]
    await post_message(jp_fetch, sid, "scenario:hang")
    reader = StreamReader(stream_url(jp_serverapp, jp_base_url, jp_http_port, sid), jp_auth_header)
    reader.start()
    await reader.wait_for(lambda evs: "text" in types(evs))

    running = json_of(await api(jp_fetch, "sessions", sid))
    assert running["status"] == "running"
    listed = json_of(await api(jp_fetch, "sessions", params={"path": NOTEBOOK}))["sessions"]
    assert listed[0]["status"] == "running"
    busy = await api(jp_fetch, "sessions", sid, "messages", method="POST", body={"content": "more"})
    assert_json_error(busy, 409)

    response = await api(jp_fetch, "sessions", sid, "cancel", method="POST", body="{}")
    assert response.code == 200
    assert json_of(response) == {"cancelled": True}
    await reader.wait_for(lambda evs: types(evs)[-1:] == ["cancelled"])
    await reader.future
    stored = json_of(await api(jp_fetch, "sessions", sid))
    assert stored["status"] == "idle"
    assert stored["messages"][-1]["status"] == "cancelled"
    assert stored["messages"][-1]["content"]  # the partial reply is kept
    again = await api(jp_fetch, "sessions", sid, "cancel", method="POST", body="{}")
    assert json_of(again) == {"cancelled": False}


async def test_cancel_kills_a_tree_that_ignores_sigterm(
    jp_fetch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pids.json"
    monkeypatch.setenv("FAKE_PID_FILE", str(pid_file))
    session = await create_session(jp_fetch)
    await post_message(jp_fetch, session["id"], "scenario:ignore_term")
    await wait_until(pid_file.exists, message="the fake never wrote its pids")
    pids = json.loads(pid_file.read_text())
    assert len(pids) == 3
    assert pids_alive(pids) == pids
    response = await api(jp_fetch, "sessions", session["id"], "cancel", method="POST", body="{}")
    assert json_of(response) == {"cancelled": True}
    assert pids_alive(pids) == []  # gone by the time cancel answers
    stream = await events(jp_fetch, session["id"])
    assert types(stream)[-1] == "cancelled"


async def test_deleting_a_running_session_stops_its_provider(
    jp_fetch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    pid_file = tmp_path / "pids.json"
    monkeypatch.setenv("FAKE_PID_FILE", str(pid_file))
    session = await create_session(jp_fetch)
    await post_message(jp_fetch, session["id"], "scenario:tree")
    await wait_until(pid_file.exists)
    pids = json.loads(pid_file.read_text())
    assert (await api(jp_fetch, "sessions", session["id"], method="DELETE")).code == 204
    assert pids_alive(pids) == []
    assert not (store_dir / "sessions" / f"{session['id']}.json").exists()
    assert list((store_dir / "processes").iterdir()) == []


async def test_reconnect_with_last_event_id_misses_nothing(jp_fetch: Any) -> None:
    session = await create_session(jp_fetch)
    full = await run_turn(jp_fetch, session["id"], "scenario:slow tell me a story")
    assert types(full)[-1] == "done"
    for cut in (1, 3, len(full) - 1):
        rest = await events(jp_fetch, session["id"], last_event_id=full[cut - 1]["id"])
        assert rest == full[cut:]
    # An id of another (older) turn replays the latest turn from its start.
    assert await events(jp_fetch, session["id"], last_event_id="other-turn:5") == full


async def test_live_stream_sees_events_as_they_happen(
    jp_fetch: Any,
    jp_serverapp: Any,
    jp_base_url: str,
    jp_http_port: int,
    jp_auth_header: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_COUNT", "10")
    monkeypatch.setenv("FAKE_DELAY", "0.2")
    session = await create_session(jp_fetch)
    await post_message(jp_fetch, session["id"], "scenario:slow")
    reader = StreamReader(
        stream_url(jp_serverapp, jp_base_url, jp_http_port, session["id"]), jp_auth_header
    )
    reader.start()
    # Some text arrives while the turn is still running (it takes ~2 s in all).
    await reader.wait_for(lambda evs: types(evs).count("text") >= 2)
    assert "done" not in types(reader.events)
    await reader.wait_for(lambda evs: types(evs)[-1:] == ["done"])
    response = await reader.future
    assert response.code == 200


# -- timeouts and limits -----------------------------------------------------------------------


class TestIdleTimeout:
    @pytest.fixture
    def assistant_config(self) -> dict[str, Any]:
        return {"idle_timeout_seconds": 1.0, "cancel_grace_seconds": 0.5}

    async def test_a_silent_provider_times_out(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "scenario:silent")
        # (the interrupted CLI may still report its usage before the end)
        assert [t for t in types(stream) if t != "usage"] == ["turn_started", "error"]
        assert stream[-1]["data"]["code"] == "timeout"
        assert "idle_timeout_seconds" in stream[-1]["data"]["message"]
        stored = json_of(await api(jp_fetch, "sessions", session["id"]))
        assert stored["status"] == "idle"


class TestTurnTimeout:
    @pytest.fixture
    def assistant_config(self) -> dict[str, Any]:
        # Room for the CLI's start and the turn's checkpoint on a busy machine before the
        # first text (the fake prints one every 0.1 s for 10 s).
        return {"turn_timeout_seconds": 4.0, "cancel_grace_seconds": 0.5}

    async def test_a_long_turn_times_out_and_keeps_its_partial_reply(
        self, jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("FAKE_COUNT", "100")
        monkeypatch.setenv("FAKE_DELAY", "0.1")
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "scenario:slow")
        assert stream[-1]["data"]["code"] == "timeout"
        assert "turn_timeout_seconds" in stream[-1]["data"]["message"]
        stored = json_of(await api(jp_fetch, "sessions", session["id"]))
        assert stored["messages"][-1]["content"]


class TestConcurrencyLimit:
    @pytest.fixture
    def assistant_config(self) -> dict[str, Any]:
        return {"max_concurrent_turns": 1}

    async def test_turns_over_the_limit_are_409(self, jp_fetch: Any) -> None:
        first = await create_session(jp_fetch)
        second = await create_session(jp_fetch)
        await post_message(jp_fetch, first["id"], "scenario:hang")
        response = await api(
            jp_fetch, "sessions", second["id"], "messages", method="POST", body={"content": "hi"}
        )
        assert "max_concurrent_turns" in assert_json_error(response, 409)
        await api(jp_fetch, "sessions", first["id"], "cancel", method="POST", body="{}")
        assert types(await run_turn(jp_fetch, second["id"], "hi"))[-1] == "done"


# -- permissions endpoint ------------------------------------------------------------------------


async def test_permission_answers_are_validated(jp_fetch: Any) -> None:
    session = await create_session(jp_fetch)
    sid = session["id"]
    bad = await api(
        jp_fetch, "sessions", sid, "permissions", "r1", method="POST", body={"decision": "maybe"}
    )
    assert "decision" in assert_json_error(bad, 400)
    idle = await api(
        jp_fetch, "sessions", sid, "permissions", "r1", method="POST", body={"decision": "allow"}
    )
    assert_json_error(idle, 409)


async def test_nul_characters_in_the_context_do_not_break_the_turn(jp_fetch: Any) -> None:
    session = await create_session(jp_fetch)
    stream = await run_turn(
        jp_fetch, session["id"], "hi\u0000there", context={"c\u0000": "a\u0000b"}
    )
    assert types(stream)[-1] == "done"


class TestCostCap:
    @pytest.fixture
    def assistant_config(self) -> dict[str, Any]:
        return {"max_session_cost_usd": 0.01}  # a fake reply costs $0.00882

    async def test_a_conversation_over_its_cost_cap_takes_no_more_turns(
        self, jp_fetch: Any
    ) -> None:
        session = await create_session(jp_fetch)
        sid = session["id"]
        assert types(await run_turn(jp_fetch, sid, "one"))[-1] == "done"
        second = await run_turn(jp_fetch, sid, "two")  # passes the cap with its final result
        assert types(second)[-1] == "done"
        notices = [e["data"]["message"] for e in second if e["event"] == "notice"]
        assert any("max_session_cost_usd" in n for n in notices)
        refused = await api(
            jp_fetch, "sessions", sid, "messages", method="POST", body={"content": "three"}
        )
        assert "start a new conversation" in assert_json_error(refused, 403)
        stored = json_of(await api(jp_fetch, "sessions", sid))
        assert len(stored["messages"]) == 4
        assert stored["pending_message"] is None
        assert stored["status"] == "idle"
        # a new conversation for the same notebook starts from zero
        fresh = await create_session(jp_fetch)
        assert types(await run_turn(jp_fetch, fresh["id"], "again"))[-1] == "done"


async def test_a_cancelled_reply_keeps_its_text_once(
    jp_fetch: Any, jp_base_url: str, jp_http_port: int, jp_auth_header: dict[str, str]
) -> None:
    session = await create_session(jp_fetch)
    sid = session["id"]
    await post_message(jp_fetch, sid, "scenario:hang")
    reader = StreamReader(stream_url(None, jp_base_url, jp_http_port, sid), jp_auth_header)
    reader.start()
    await reader.wait_for(lambda evs: "text" in types(evs))
    response = await api(jp_fetch, "sessions", sid, "cancel", method="POST", body="{}")
    assert json_of(response) == {"cancelled": True}
    await reader.wait_for(lambda evs: types(evs)[-1:] == ["cancelled"])
    stored = json_of(await api(jp_fetch, "sessions", sid))
    assert stored["messages"][-1]["status"] == "cancelled"
    # The interrupted CLI restates the partial message under its id: not repeated.
    assert stored["messages"][-1]["content"] == text_of(reader.events) == "Working on it"


async def test_a_large_context_travels_on_stdin(
    jp_fetch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv_file = tmp_path / "argv.json"
    monkeypatch.setenv("FAKE_CLAUDE_ARGV_FILE", str(argv_file))
    session = await create_session(jp_fetch)
    big = "x = 1\n" * 40_000  # 240 KB: over the 128 KiB limit of one command-line argument
    stream = await run_turn(jp_fetch, session["id"], "explain", context={"cell": big})
    assert types(stream)[-1] == "done"
    launched = json.loads(argv_file.read_text())
    # With the prompt, on stdin: no limit of one command-line argument.
    assert big in launched["stdin"] and launched["stdin"].endswith("\n\nexplain")
    assert big not in launched["append_system_prompt"]
    assert all(len(arg.encode()) < 1024 for arg in launched["argv"])


class TestProviderPolicy:
    @pytest.fixture
    def assistant_config(self) -> dict[str, Any]:
        return {"allowed_providers": ["codex"]}  # the default, claude, is not allowed

    async def test_only_allowed_providers_and_a_default_among_them(self, jp_fetch: Any) -> None:
        body = json_of(await api(jp_fetch, "providers"))
        assert [p["name"] for p in body["providers"]] == ["codex"]
        assert body["default"] == "codex"
        session = await create_session(jp_fetch)
        assert session["provider"] == "codex"
        refused = await api(
            jp_fetch, "sessions", method="POST", body={"path": NOTEBOOK, "provider": "claude"}
        )
        assert "Unknown provider" in assert_json_error(refused, 400)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["claude"], ["claude"]),
        (["claude,codex"], ["claude", "codex"]),
        (['["claude", "gemini"]'], ["claude", "gemini"]),
        (["claude", "codex"], ["claude", "codex"]),
        ([], []),
    ],
)
def test_allowed_providers_accept_command_line_forms(given: list[str], expected: list[str]) -> None:
    from jupyter_assistant.settings import EngineSettings

    assert EngineSettings(allowed_providers=given).allowed_providers == expected


def test_allowed_providers_from_a_single_command_line_option() -> None:
    # What `--AssistantExtension.allowed_providers=claude` gives the extension (a lazy value).
    from traitlets.config import KVArgParseConfigLoader

    from jupyter_assistant.settings import EngineSettings

    for argv, expected in [
        (["--AssistantExtension.allowed_providers=claude"], ["claude"]),
        (["--AssistantExtension.allowed_providers=claude,codex"], ["claude", "codex"]),
    ]:
        config = KVArgParseConfigLoader(argv=argv, classes=[EngineSettings]).load_config()
        assert EngineSettings(config=config).allowed_providers == expected
