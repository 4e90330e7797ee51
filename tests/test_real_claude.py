"""Whole turns with the REAL Claude Code CLI (from the npm registry), against a local stand-in of
the Anthropic Messages API (tests/fakes/anthropic_standin.py), through the real server."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from jupyter_assistant.processes import MARKER_ENV

from .fakes.anthropic_standin import AnthropicStandIn
from .helpers import (
    answer_permission,
    api,
    create_session,
    events,
    json_of,
    permission_asked,
    pids_alive,
    post_message,
    run_turn,
    text_of,
    turn_ended,
    types,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("notebook_dir")
REPO = Path(__file__).parent.parent


def find_real_claude() -> str:
    candidates = [
        os.environ.get("JUPYTER_ASSISTANT_REAL_CLAUDE", ""),
        str(REPO / ".cache" / "npm" / "node_modules" / ".bin" / "claude"),
        shutil.which("claude") or "",
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "The real Claude Code CLI is needed: run scripts/test.sh (it installs it into .cache/npm) "
        "or `npm install -g @anthropic-ai/claude-code`."
    )


@pytest.fixture(scope="module")
def standin() -> Iterator[AnthropicStandIn]:
    with AnthropicStandIn() as server:
        yield server


@pytest.fixture
def claude_env(standin: AnthropicStandIn, tmp_path: Path) -> dict[str, str]:
    return standin.cli_env(tmp_path)


@pytest.fixture
def claude_settings(claude_env: dict[str, str]) -> dict[str, Any]:
    return {"command": [find_real_claude()], "env": claude_env}


@pytest.fixture
def jp_server_config(
    jp_server_config: dict[str, Any], claude_settings: dict[str, Any]
) -> dict[str, Any]:
    return {**jp_server_config, "ClaudeCodeProvider": claude_settings}


def messages_text(body: dict[str, Any]) -> str:
    return json.dumps(body.get("messages", []))


async def test_providers_reports_the_real_version(jp_fetch: Any) -> None:
    body = json_of(await api(jp_fetch, "providers"))
    (claude,) = [p for p in body["providers"] if p["name"] == "claude"]
    assert claude["available"] is True
    assert claude["version"][0].isdigit()


async def test_a_plain_reply_then_a_resumed_follow_up(
    jp_fetch: Any, standin: AnthropicStandIn
) -> None:
    session = await create_session(jp_fetch)
    sid = session["id"]
    first = await run_turn(jp_fetch, sid, "Say hi please")
    assert types(first)[-1] == "done", first[-1]
    assert text_of(first) == "Hello from the stand-in. You said: Say hi please"
    claude_session = first[-1]["data"]["provider_session_id"]
    assert claude_session
    # The notebook's name reached the model through the appended system prompt.
    assert "analysis/q3.ipynb" in json.dumps(standin.main_bodies[-1]["system"])

    second = await run_turn(jp_fetch, sid, "And again")
    assert types(second)[-1] == "done", second[-1]
    assert second[-1]["data"]["provider_session_id"] == claude_session
    # Resumed: the model received the first exchange along with the new prompt.
    sent = messages_text(standin.main_bodies[-1])
    assert "Say hi please" in sent
    assert "Hello from the stand-in. You said: Say hi please" in sent
    assert "And again" in sent

    stored = json_of(await api(jp_fetch, "sessions", sid))
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"] * 2
    assert stored["messages"][-1]["content"] == "Hello from the stand-in. You said: And again"
    assert stored["usage"]["output_tokens"] > 0


async def test_a_tool_call_runs_in_the_notebook_folder(jp_fetch: Any, jp_root_dir: Path) -> None:
    folder = str((jp_root_dir / "analysis").resolve())
    session = await create_session(jp_fetch)
    stream = await run_turn(jp_fetch, session["id"], "RUN_PWD please")
    assert types(stream)[-1] == "done", stream[-1]
    use = next(e["data"] for e in stream if e["event"] == "tool_use")
    result = next(e["data"] for e in stream if e["event"] == "tool_result")
    assert (use["name"], use["input"]["command"]) == ("Bash", "pwd")
    assert result["content"].strip() == folder
    assert text_of(stream).endswith(f"The working directory is: {folder}")
    stored = json_of(await api(jp_fetch, "sessions", session["id"]))
    assert stored["messages"][-1]["tools"][0]["result"].strip() == folder


class TestPrintMode:
    """The CLI in print mode (c.ClaudeCodeProvider.interactive = False): the prompt on stdin, a
    tool it would ask about is refused, and the turn says which setting allows it."""

    @pytest.fixture
    def claude_settings(self, claude_env: dict[str, str]) -> dict[str, Any]:
        return {"command": [find_real_claude()], "env": claude_env, "interactive": False}

    async def test_a_reply(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "Say hi please")
        assert types(stream)[-1] == "done", stream[-1]
        assert text_of(stream) == "Hello from the stand-in. You said: Say hi please"

    async def test_a_refused_tool_is_reported_with_the_setting_that_allows_it(
        self, jp_fetch: Any
    ) -> None:
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "RUN_BASH: curl http://example.invalid")
        assert types(stream)[-1] == "done", stream[-1]
        denied = [e["data"] for e in stream if e["event"] == "permission_denied"]
        assert [d["tool_name"] for d in denied] == ["Bash"]
        assert "Bash(curl:*)" in denied[0]["message"]
        assert "allowed_tools" in denied[0]["message"]


class TestNotLoggedIn:
    @pytest.fixture
    def claude_settings(self, claude_env: dict[str, str]) -> dict[str, Any]:
        env = {k: v for k, v in claude_env.items() if k != "ANTHROPIC_API_KEY"}
        return {"command": [find_real_claude()], "env": env}

    async def test_not_authenticated_with_the_fix(
        self, jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "hello")
        assert types(stream) == ["turn_started", "usage", "error"]
        assert stream[-1]["data"]["code"] == "not_authenticated"
        assert "/login" in stream[-1]["data"]["message"]


class TestCancelARunningTool:
    @pytest.fixture
    def claude_settings(self, claude_env: dict[str, str]) -> dict[str, Any]:
        return {
            "command": [find_real_claude()],
            "env": claude_env,
            "allowed_tools": ["Bash(sleep:*)"],
        }

    async def test_cancel_stops_the_cli_and_its_tool_processes(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch)
        sid = session["id"]
        turn_id = await post_message(jp_fetch, sid, "RUN_BASH: sleep 300")

        def turn_processes() -> list[psutil.Process]:
            found = []
            for proc in psutil.process_iter():
                try:
                    if proc.environ().get(MARKER_ENV) == turn_id:
                        found.append(proc)
                except (psutil.Error, OSError):
                    continue
            return found

        def sleeping() -> bool:
            for proc in turn_processes():
                try:
                    if "sleep" in proc.name():
                        return True
                except psutil.Error:
                    continue
            return False

        await wait_until(sleeping, timeout=60, message="the CLI never started `sleep 300`")
        pids = [proc.pid for proc in turn_processes()]
        assert len(pids) >= 2  # the CLI and at least its tool's shell or sleep
        response = await api(jp_fetch, "sessions", sid, "cancel", method="POST", body="{}")
        assert json_of(response) == {"cancelled": True}
        assert pids_alive(pids) == []
        assert turn_processes() == []
        stream = await events(jp_fetch, sid)
        assert types(stream)[-1] == "cancelled"
        stored = json_of(await api(jp_fetch, "sessions", sid))
        assert stored["messages"][-1]["status"] == "cancelled"
        assert stored["messages"][-1]["tools"][0]["input"]["command"] == "sleep 300"


# -- tool approval: the agent asks to Write a file into the notebook's folder -------------------


def tool_results_sent(standin: AnthropicStandIn) -> list[dict[str, Any]]:
    """The tool_result blocks the CLI sent to the model in its latest request."""
    messages = standin.main_bodies[-1]["messages"]
    return [
        block
        for message in messages
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]


class TestToolApproval:
    async def test_allow_writes_the_file(
        self, jp_fetch: Any, live_events: Any, jp_root_dir: Path, standin: AnthropicStandIn
    ) -> None:
        target = jp_root_dir / "analysis" / "notes.txt"
        session = await create_session(jp_fetch)
        sid = session["id"]
        await post_message(jp_fetch, sid, "RUN_WRITE: notes.txt hello from the agent")
        reader = live_events(sid)
        request = await permission_asked(reader)
        assert request["tool_name"] == "Write"
        assert request["input"]["file_path"] == str(target.resolve())
        assert "+hello from the agent" in request["summary"].splitlines()
        assert not target.exists()
        response = await answer_permission(jp_fetch, sid, request["request_id"], decision="allow")
        assert response.code == 200, response.body
        stream = await turn_ended(reader)
        assert types(stream)[-1] == "done", stream[-1]
        assert target.read_text() == "hello from the agent\n"
        (sent,) = tool_results_sent(standin)
        assert not sent.get("is_error")
        assert "File created successfully" in json.dumps(sent["content"])
        stored = json_of(await api(jp_fetch, "sessions", sid))
        assert stored["messages"][-1]["permissions"][0]["decision"] == "allow"

    async def test_deny_writes_nothing_and_the_agent_is_told(
        self, jp_fetch: Any, live_events: Any, jp_root_dir: Path, standin: AnthropicStandIn
    ) -> None:
        session = await create_session(jp_fetch)
        sid = session["id"]
        await post_message(jp_fetch, sid, "RUN_WRITE: notes.txt hello from the agent")
        reader = live_events(sid)
        request = await permission_asked(reader)
        response = await answer_permission(
            jp_fetch, sid, request["request_id"], decision="deny", message="keep the folder clean"
        )
        assert response.code == 200, response.body
        stream = await turn_ended(reader)
        assert types(stream)[-1] == "done", stream[-1]
        assert not (jp_root_dir / "analysis" / "notes.txt").exists()
        (sent,) = tool_results_sent(standin)  # what the model was told
        assert sent["is_error"] is True
        assert sent["content"] == "The user denied this tool call: keep the folder clean"
        assert text_of(stream).endswith(
            "The tool failed: The user denied this tool call: keep the folder clean"
        )

    async def test_a_session_answer_is_not_asked_again(
        self, jp_fetch: Any, live_events: Any, jp_root_dir: Path
    ) -> None:
        target = jp_root_dir / "analysis" / "notes.txt"
        session = await create_session(jp_fetch)
        sid = session["id"]
        await post_message(jp_fetch, sid, "RUN_WRITE: notes.txt first version")
        reader = live_events(sid)
        request = await permission_asked(reader)
        response = await answer_permission(
            jp_fetch, sid, request["request_id"], decision="allow", scope="session"
        )
        assert response.code == 200, response.body
        assert types(await turn_ended(reader))[-1] == "done"
        assert target.read_text() == "first version\n"

        # The next turn (the CLI resumes the conversation) writes the same file: not asked.
        second = await run_turn(jp_fetch, sid, "RUN_WRITE: notes.txt second version")
        assert types(second)[-1] == "done", second[-1]
        assert "permission_request" not in types(second)
        notices = [e["data"]["message"] for e in second if e["event"] == "notice"]
        assert any("you allowed this for the rest of the session" in n for n in notices)
        assert target.read_text() == "second version\n"

    async def test_a_write_outside_the_folder_is_denied_without_asking(
        self, jp_fetch: Any, jp_root_dir: Path, standin: AnthropicStandIn
    ) -> None:
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "RUN_WRITE: ../escaped.txt out")
        assert types(stream)[-1] == "done", stream[-1]
        assert "permission_request" not in types(stream)
        assert "permission_denied" in types(stream)
        assert not (jp_root_dir / "escaped.txt").exists()
        (sent,) = tool_results_sent(standin)
        assert sent["is_error"] is True
        assert "outside the notebook's folder" in sent["content"]

    async def test_cancel_while_asking_stops_the_cli(self, jp_fetch: Any, live_events: Any) -> None:
        session = await create_session(jp_fetch)
        sid = session["id"]
        turn_id = await post_message(jp_fetch, sid, "RUN_WRITE: notes.txt never")
        reader = live_events(sid)
        await permission_asked(reader)
        response = await api(jp_fetch, "sessions", sid, "cancel", method="POST", body="{}")
        assert json_of(response) == {"cancelled": True}
        stream = await turn_ended(reader)
        assert types(stream)[-1] == "cancelled"
        alive = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if proc.environ().get(MARKER_ENV) == turn_id:
                    alive.append(proc.pid)
        assert alive == []
        reply = json_of(await api(jp_fetch, "sessions", sid))["messages"][-1]
        assert reply["status"] == "cancelled"
        assert reply["permissions"][0]["by"] == "ended"


class TestToolApprovalWithoutAnswer:
    @pytest.fixture
    def assistant_config(self) -> dict[str, Any]:
        return {"permission_timeout_seconds": 3.0}

    async def test_no_answer_is_a_denial_after_the_timeout(
        self, jp_fetch: Any, live_events: Any, jp_root_dir: Path, standin: AnthropicStandIn
    ) -> None:
        session = await create_session(jp_fetch)
        sid = session["id"]
        await post_message(jp_fetch, sid, "RUN_WRITE: notes.txt unanswered")
        reader = live_events(sid)
        request = await permission_asked(reader)
        stream = await turn_ended(reader)
        assert types(stream)[-1] == "done", stream[-1]
        assert not (jp_root_dir / "analysis" / "notes.txt").exists()
        notice = next(e["data"]["message"] for e in stream if e["event"] == "notice")
        assert "Nobody answered the request to use Write" in notice
        (sent,) = tool_results_sent(standin)
        assert sent["is_error"] is True
        assert "Nobody answered within 3 seconds" in sent["content"]
        late = await answer_permission(jp_fetch, sid, request["request_id"], decision="allow")
        assert late.code == 409


class TestAdminRulesOnCompoundCommands:
    """docs/security.md recommends prefix rules such as `Bash(pytest:*)`: they must not let a
    compound command through, and a deny rule must catch any part of one (the real CLI asks,
    the policy decides)."""

    @pytest.fixture
    def assistant_config(self) -> dict[str, Any]:
        return {
            "permission_allowed_tools": ["Bash(pytest:*)"],
            "permission_denied_tools": ["Bash(rm:*)"],
        }

    async def test_a_prefix_rule_asks_about_a_compound_command(
        self, jp_fetch: Any, live_events: Any, jp_root_dir: Path
    ) -> None:
        session = await create_session(jp_fetch)
        sid = session["id"]
        await post_message(jp_fetch, sid, "RUN_BASH: pytest --version; touch pwned.txt")
        reader = live_events(sid)
        request = await permission_asked(reader)
        assert request["input"]["command"] == "pytest --version; touch pwned.txt"
        response = await answer_permission(jp_fetch, sid, request["request_id"], decision="deny")
        assert response.code == 200, response.body
        stream = await turn_ended(reader)
        assert types(stream)[-1] == "done", stream[-1]
        assert not (jp_root_dir / "analysis" / "pwned.txt").exists()

    async def test_a_deny_rule_refuses_part_of_a_compound_command(
        self, jp_fetch: Any, jp_root_dir: Path
    ) -> None:
        victim = jp_root_dir / "analysis" / "victim.txt"
        victim.write_text("keep me")
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "RUN_BASH: true && rm victim.txt")
        assert types(stream)[-1] == "done", stream[-1]
        assert "permission_request" not in types(stream)
        (denied,) = [e["data"] for e in stream if e["event"] == "permission_denied"]
        assert "Bash(rm:*)" in denied["message"]
        assert victim.read_text() == "keep me"
