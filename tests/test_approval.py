"""Tool approval through the HTTP API, with the fake Claude Code CLI speaking the control
protocol as the real one does (tests/fakes/wire-samples/control): the turn pauses on a
`permission_request`, the answer (or its absence) goes back to the agent, answers "for this
session" are kept, and the engine's rules (timeouts, idle watchdog, errors) hold.

The same flows with the REAL CLI are in test_real_claude.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from .helpers import (
    answer_permission,
    api,
    create_session,
    json_of,
    permission_asked,
    post_message,
    run_turn,
    text_of,
    turn_ended,
    types,
)

pytestmark = pytest.mark.usefixtures("notebook_dir")


async def test_allow_once_runs_the_tool_and_the_answer_is_kept(
    jp_fetch: Any,
    live_events: Any,
    notebook_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    jp_serverapp: Any,
) -> None:
    control_log = tmp_path / "control.jsonl"
    monkeypatch.setenv("FAKE_CONTROL_LOG", str(control_log))
    session = await create_session(jp_fetch)
    sid = session["id"]
    await post_message(jp_fetch, sid, "scenario:permission please save a note")
    reader = live_events(sid)
    request = await permission_asked(reader)
    target = notebook_dir / "fake_written.txt"
    assert request["tool_name"] == "Write"
    assert request["input"]["file_path"] == str(target)
    assert request["summary"].splitlines()[:2] == ["--- /dev/null", "+++ b/fake_written.txt"]
    assert set(request) == {"type", "request_id", "tool_name", "input", "summary"}
    assert not target.exists()
    # While it waits, the stored partial reply shows the question unanswered.
    running = json_of(await api(jp_fetch, "sessions", sid))
    assert running["status"] == "running"

    response = await answer_permission(jp_fetch, sid, request["request_id"], decision="allow")
    assert response.code == 200, response.body
    assert json_of(response) == {"answered": True}
    stream = await turn_ended(reader)
    assert types(stream)[-1] == "done"
    assert target.read_text() == "written by the fake agent\n"
    (answered,) = [e["data"] for e in stream if e["event"] == "permission_answered"]
    assert answered == {
        "type": "permission_answered",
        "request_id": request["request_id"],
        "decision": "allow",
        "scope": "once",
        "message": None,
        "by": "user",
    }
    stored = json_of(await api(jp_fetch, "sessions", sid))
    (record,) = stored["messages"][-1]["permissions"]
    assert record["request_id"] == request["request_id"]
    assert (record["decision"], record["scope"], record["by"]) == ("allow", "once", "user")
    assert record["summary"] == request["summary"]
    assert stored["approvals"] == []  # "once" is not remembered
    # The CLI got the answer with the input to run; its stdin stays open for the session's
    # next turn (warm_agents), until the warm process is ended (then the CLI exits).
    received = [json.loads(line) for line in control_log.read_text().splitlines()]
    assert [m["type"] for m in received] == ["control_request", "control_response"]
    await jp_serverapp.web_app.settings["jupyter_assistant"].service.runner.end_warm(sid)
    received = [json.loads(line) for line in control_log.read_text().splitlines()]
    assert [m["type"] for m in received] == ["control_request", "control_response", "stdin_closed"]
    assert received[1]["response"]["response"] == {
        "behavior": "allow",
        "updatedInput": request["input"],
    }
    again = await answer_permission(jp_fetch, sid, request["request_id"], decision="deny")
    assert again.code == 409  # the turn is over


async def test_deny_tells_the_agent_why_and_nothing_is_written(
    jp_fetch: Any, live_events: Any, notebook_dir: Path
) -> None:
    session = await create_session(jp_fetch)
    sid = session["id"]
    await post_message(jp_fetch, sid, "scenario:permission")
    reader = live_events(sid)
    request = await permission_asked(reader)
    response = await answer_permission(
        jp_fetch, sid, request["request_id"], decision="deny", message="use the other folder"
    )
    assert response.code == 200, response.body
    stream = await turn_ended(reader)
    assert types(stream)[-1] == "done"
    assert not (notebook_dir / "fake_written.txt").exists()
    told = "The user denied this tool call: use the other folder"
    (result,) = [e["data"] for e in stream if e["event"] == "tool_result"]
    assert (result["content"], result["is_error"]) == (told, True)
    assert text_of(stream).endswith(f"The tool failed: {told}")
    # The user's own answer is not reported again as a setting to change.
    assert "permission_denied" not in types(stream)
    record = json_of(await api(jp_fetch, "sessions", sid))["messages"][-1]["permissions"][0]
    assert (record["decision"], record["message"]) == ("deny", "use the other folder")


async def test_a_session_answer_is_not_asked_again_in_this_or_later_turns(
    jp_fetch: Any, live_events: Any, notebook_dir: Path
) -> None:
    session = await create_session(jp_fetch)
    sid = session["id"]
    await post_message(jp_fetch, sid, "scenario:permission_twice")
    reader = live_events(sid)
    request = await permission_asked(reader)
    response = await answer_permission(
        jp_fetch, sid, request["request_id"], decision="allow", scope="session"
    )
    assert response.code == 200, response.body
    stream = await turn_ended(reader)
    assert types(stream)[-1] == "done"
    assert types(stream).count("permission_request") == 1  # the second call was not asked
    notices = [e["data"]["message"] for e in stream if e["event"] == "notice"]
    assert any("allowed this for the rest of the session" in n for n in notices)
    assert [e["data"]["is_error"] for e in stream if e["event"] == "tool_result"] == [False] * 2
    stored = json_of(await api(jp_fetch, "sessions", sid))
    (approval,) = stored["approvals"]
    assert approval["tool_name"] == "Write"
    assert approval["pattern"] == str((notebook_dir / "fake_written.txt").resolve())
    assert approval["decision"] == "allow"

    (notebook_dir / "fake_written.txt").unlink()
    later = await run_turn(jp_fetch, sid, "scenario:permission once more")
    assert types(later)[-1] == "done"
    assert "permission_request" not in types(later)
    assert (notebook_dir / "fake_written.txt").exists()
    # Another conversation of the same notebook asks again.
    other = await create_session(jp_fetch)
    await post_message(jp_fetch, other["id"], "scenario:permission")
    other_reader = live_events(other["id"])
    await permission_asked(other_reader)
    await api(jp_fetch, "sessions", other["id"], "cancel", method="POST", body="{}")
    await turn_ended(other_reader)


async def test_a_path_outside_the_folder_is_denied_without_asking(
    jp_fetch: Any, notebook_dir: Path
) -> None:
    session = await create_session(jp_fetch)
    stream = await run_turn(jp_fetch, session["id"], "scenario:permission write:../escape.txt")
    assert types(stream)[-1] == "done"
    assert "permission_request" not in types(stream)
    (denied,) = [e["data"] for e in stream if e["event"] == "permission_denied"]
    assert "outside the notebook's folder" in denied["message"]
    assert "permission_extra_dirs" in denied["message"]
    (result,) = [e["data"] for e in stream if e["event"] == "tool_result"]
    assert result["is_error"] and "outside the notebook's folder" in result["content"]
    assert not (notebook_dir.parent / "escape.txt").exists()
    stored = json_of(await api(jp_fetch, "sessions", session["id"]))
    assert "outside the notebook's folder" in stored["messages"][-1]["notices"][0]


async def test_cancel_while_waiting_ends_the_turn_as_usual(
    jp_fetch: Any,
    live_events: Any,
    notebook_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    control_log = tmp_path / "control.jsonl"
    monkeypatch.setenv("FAKE_CONTROL_LOG", str(control_log))
    session = await create_session(jp_fetch)
    sid = session["id"]
    await post_message(jp_fetch, sid, "scenario:permission")
    reader = live_events(sid)
    request = await permission_asked(reader)
    response = await api(jp_fetch, "sessions", sid, "cancel", method="POST", body="{}")
    assert json_of(response) == {"cancelled": True}
    stream = await turn_ended(reader)
    assert types(stream)[-1] == "cancelled"
    assert not (notebook_dir / "fake_written.txt").exists()
    # Stop asked the CLI to interrupt itself (before any signal), after the initialize.
    received = [json.loads(line) for line in control_log.read_text().splitlines()]
    subtypes = [m["request"]["subtype"] for m in received if m["type"] == "control_request"]
    assert subtypes == ["initialize", "interrupt"]
    stored = json_of(await api(jp_fetch, "sessions", sid))
    assert stored["status"] == "idle"
    reply = stored["messages"][-1]
    assert reply["status"] == "cancelled"
    (record,) = reply["permissions"]
    assert (record["request_id"], record["decision"], record["by"]) == (
        request["request_id"],
        None,
        "ended",
    )


async def test_answer_errors(jp_fetch: Any, live_events: Any) -> None:
    session = await create_session(jp_fetch)
    sid = session["id"]
    idle = await answer_permission(jp_fetch, sid, "nope", decision="allow")
    assert idle.code == 409
    assert "No turn is running" in json_of(idle)["message"]
    unknown_session = await answer_permission(
        jp_fetch, "6f1f7b8e-0000-4000-8000-000000000000", "x", decision="allow"
    )
    assert unknown_session.code == 404

    await post_message(jp_fetch, sid, "scenario:permission")
    reader = live_events(sid)
    request = await permission_asked(reader)
    unknown = await answer_permission(jp_fetch, sid, "no-such-request", decision="allow")
    assert unknown.code == 404
    assert "no-such-request" in json_of(unknown)["message"]
    for bad in ({"decision": "maybe"}, {"decision": "allow", "scope": "forever"}, {}):
        response = await answer_permission(jp_fetch, sid, request["request_id"], **bad)
        assert response.code == 400, bad
    assert (
        await answer_permission(jp_fetch, sid, request["request_id"], decision="deny")
    ).code == 200
    twice = await answer_permission(jp_fetch, sid, request["request_id"], decision="allow")
    assert twice.code == 404
    assert "not waiting any more: it was answered (deny, by user)" in json_of(twice)["message"]
    assert types(await turn_ended(reader))[-1] == "done"


class TestNoAnswer:
    @pytest.fixture
    def assistant_config(self) -> dict[str, Any]:
        # An idle timeout shorter than the wait: waiting for the user is not idleness.
        return {"permission_timeout_seconds": 3.0, "idle_timeout_seconds": 1.0}

    async def test_denied_after_the_timeout_and_said_clearly(
        self, jp_fetch: Any, live_events: Any, notebook_dir: Path
    ) -> None:
        session = await create_session(jp_fetch)
        sid = session["id"]
        await post_message(jp_fetch, sid, "scenario:permission")
        reader = live_events(sid)
        request = await permission_asked(reader)
        stream = await turn_ended(reader)
        assert types(stream)[-1] == "done"  # not an idle timeout while it waited
        (answered,) = [e["data"] for e in stream if e["event"] == "permission_answered"]
        assert (answered["request_id"], answered["decision"], answered["by"]) == (
            request["request_id"],
            "deny",
            "timeout",
        )
        notice = next(e["data"]["message"] for e in stream if e["event"] == "notice")
        assert "Nobody answered the request to use Write" in notice
        assert "within 3 s, so it was denied" in notice
        assert "permission_timeout_seconds" in notice
        (result,) = [e["data"] for e in stream if e["event"] == "tool_result"]
        assert result["is_error"]
        assert "Nobody answered within 3 seconds" in result["content"]  # the agent is told
        assert not (notebook_dir / "fake_written.txt").exists()
        late = await answer_permission(jp_fetch, sid, request["request_id"], decision="allow")
        assert late.code == 409
        reply = json_of(await api(jp_fetch, "sessions", sid))["messages"][-1]
        assert reply["permissions"][0]["by"] == "timeout"
        assert notice in reply["notices"]


class TestIdleWhileWaiting:
    @pytest.fixture
    def assistant_config(self) -> dict[str, Any]:
        return {"idle_timeout_seconds": 1.0}

    async def test_a_question_waiting_longer_than_the_idle_timeout_is_still_answered(
        self, jp_fetch: Any, live_events: Any, notebook_dir: Path
    ) -> None:
        session = await create_session(jp_fetch)
        sid = session["id"]
        await post_message(jp_fetch, sid, "scenario:permission")
        reader = live_events(sid)
        request = await permission_asked(reader)
        await asyncio.sleep(2.5)  # well past the idle timeout, with no output at all
        assert json_of(await api(jp_fetch, "sessions", sid))["status"] == "running"
        response = await answer_permission(jp_fetch, sid, request["request_id"], decision="allow")
        assert response.code == 200, response.body
        assert types(await turn_ended(reader))[-1] == "done"
        assert (notebook_dir / "fake_written.txt").exists()


class TestPrintMode:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: dict[str, Any]) -> dict[str, Any]:
        claude = {**jp_server_config["ClaudeCodeProvider"], "interactive": False}
        return {**jp_server_config, "ClaudeCodeProvider": claude}

    async def test_print_mode_refuses_instead_of_asking(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "scenario:permission")
        assert types(stream)[-1] == "done"
        assert "permission_request" not in types(stream)
        (denied,) = [e["data"] for e in stream if e["event"] == "permission_denied"]
        assert "allowed_tools" in denied["message"]
