"""ACP: the client on real `gemini --acp` and claude-agent-acp transcripts, its permission
policy, and whole turns through the HTTP API with the fake agent (tests/fakes/acp_agent), with the
REAL `gemini --acp` against a local stand-in of the Gemini API, and with the REAL claude-agent-acp
against the stand-in of the Anthropic API."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from jupyter_assistant.providers.acp import AcpClient, AcpProvider, decide
from jupyter_assistant.providers.base import ProviderUnavailable, TurnRequest

from .conftest import fake_cli
from .fakes.anthropic_standin import AnthropicStandIn
from .fakes.gemini_standin import GeminiStandIn
from .fakes.openai_standin import OpenAIStandIn
from .fakes.real_clis import codex_standin_config, find_real, gemini_home_for_standin
from .helpers import (
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

FAKES = Path(__file__).parent / "fakes"
SAMPLES = FAKES / "wire-samples" / "acp"
FAKE_AGENT = FAKES / "acp_agent"
CAPTURE_CWD = "/tmp/probe/proj"  # where the samples were captured


class RecordingIO:
    """The agent's stdin, as the client sees it."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        for line in data.splitlines():
            self.sent.append(json.loads(line))

    def close(self) -> None:
        self.closed = True


def transcript(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SAMPLES / name).read_text().splitlines()]


def from_agent(name: str) -> list[dict[str, Any]]:
    return [t["msg"] for t in transcript(name) if t["dir"] == "agent->client"]


def line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def turn_request(**extra: Any) -> TurnRequest:
    return TurnRequest(
        session_id="s",
        turn_id="t",
        prompt="Say hi please",
        working_dir=CAPTURE_CWD,
        notebook_path="analysis/q3.ipynb",
        **extra,
    )


def started(**kwargs: Any) -> tuple[AcpClient, RecordingIO]:
    request = kwargs.pop("request", None) or turn_request()
    client = AcpClient(request, **kwargs)
    io = RecordingIO()
    client.start(io)
    return client, io


def prompted(name: str = "gemini_reply.jsonl", **kwargs: Any) -> tuple[AcpClient, RecordingIO]:
    """A client that went through initialize and session/new with the real agent's answers."""
    client, io = started(**kwargs)
    messages = from_agent(name)
    client.feed(line(messages[0]))  # initialize
    new = next(m for m in messages if m.get("id") == 2)
    client.feed(line(new))
    assert io.sent[-1]["method"] == "session/prompt"
    return client, io


def of_type(stream: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in stream if e["type"] == kind]


# -- the client, on a real gemini --acp conversation (gemini 0.61.0) -----------------------------


def test_the_handshake_and_a_reply() -> None:
    client, io = started(instructions="You work on analysis/q3.ipynb.")
    init = io.sent[0]
    assert init["method"] == "initialize"
    assert init["params"]["protocolVersion"] == 1
    assert init["params"]["clientCapabilities"] == {
        "fs": {"readTextFile": False, "writeTextFile": False},
        "terminal": False,
        "session": {"notices": {}},  # ACP v1's opt-in to notice updates
    }
    out: list[dict[str, Any]] = []
    for message in from_agent("gemini_reply.jsonl"):
        out += client.feed(line(message))
    sent = [m.get("method") for m in io.sent]
    assert sent == ["initialize", "session/new", "session/prompt"]
    assert io.sent[1]["params"] == {"cwd": CAPTURE_CWD, "mcpServers": []}
    prompt = io.sent[2]["params"]
    assert prompt["sessionId"] == "854fee11-deab-4706-aa57-f822c2b3e5f4"
    assert prompt["prompt"][0]["text"].startswith("<notebook_context>")
    assert prompt["prompt"][1] == {"type": "text", "text": "Say hi please"}
    assert "".join(e["text"] for e in of_type(out, "text")) == (
        "Hello from the stand-in. You said: Say hi please"
    )
    assert of_type(out, "usage") == [
        {"type": "usage", "input_tokens": 149, "output_tokens": 3, "cost_usd": 0.0}
    ]
    assert out[-1]["type"] == "done"
    assert out[-1]["provider_session_id"] == "854fee11-deab-4706-aa57-f822c2b3e5f4"
    assert client.provider_session_id == out[-1]["provider_session_id"]
    assert io.closed  # so that the agent exits
    assert client.finish(0, "") == []


def test_a_warm_agent_keeps_its_stdin_and_its_next_turn_is_only_a_prompt() -> None:
    client, io = started(request=turn_request(keep_process=True))
    out: list[dict[str, Any]] = []
    for message in from_agent("gemini_reply.jsonl"):
        out += client.feed(line(message))
    assert out[-1]["type"] == "done"
    assert not io.closed  # the agent waits for the session's next prompt
    session_id = out[-1]["provider_session_id"]

    request = turn_request(keep_process=True, reuses_process=True, provider_session_id=session_id)
    request.prompt = "And again"
    again, io2 = started(request=request)
    # No initialize, no session/load: the agent runs with that session open.
    assert [m["method"] for m in io2.sent] == ["session/prompt"]
    assert io2.sent[0]["params"]["sessionId"] == session_id
    assert io2.sent[0]["params"]["prompt"][-1] == {"type": "text", "text": "And again"}
    rpc_id = io2.sent[0]["id"]
    assert (
        again.feed(line({"jsonrpc": "2.0", "id": rpc_id, "result": {"stopReason": "end_turn"}}))[
            -1
        ]["type"]
        == "done"
    )
    assert not io2.closed
    failed, io3 = started(request=request)
    [error] = failed.feed(
        line({"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": "x"}})
    )
    assert error["type"] == "error" and io3.closed  # a failed turn's agent is not kept


def test_a_loaded_session_ignores_the_replayed_history() -> None:
    # gemini 0.61.0 replays the history *after* answering session/load.
    stored = "854fee11-deab-4706-aa57-f822c2b3e5f4"
    client, io = started(request=turn_request(provider_session_id=stored))
    messages = from_agent("gemini_load.jsonl")
    # Up to the new reply's first chunk: the answers, then the replay that followed them.
    first_new = next(
        i
        for i, m in enumerate(messages)
        if m.get("method") == "session/update"
        and m["params"]["update"].get("content", {}).get("text") == "Hello from t"
    )
    out: list[dict[str, Any]] = []
    for message in messages[:first_new]:
        out += client.feed(line(message))
        if message.get("id") == 2:  # the load answer: the barrier goes out
            assert io.sent[-1]["method"] == "_jupyter_assistant/barrier"
            barrier = io.sent[-1]["id"]
    assert io.sent[1]["method"] == "session/load"
    assert io.sent[1]["params"] == {"sessionId": stored, "cwd": CAPTURE_CWD, "mcpServers": []}
    # Still waiting for the barrier: the replay (old user and agent text) is no reply.
    assert of_type(out, "text") == []
    assert all(m.get("method") != "session/prompt" for m in io.sent)
    out += client.feed(
        line(
            {
                "jsonrpc": "2.0",
                "id": barrier,
                "error": {"code": -32601, "message": "Method not found"},
            }
        )
    )
    assert io.sent[-1]["method"] == "session/prompt"
    out += client.feed(
        line(
            {
                "jsonrpc": "2.0",
                "method": "session/update",
                "params": {
                    "sessionId": stored,
                    "update": {
                        "sessionUpdate": "agent_message_chunk",
                        "content": {"type": "text", "text": "new"},
                    },
                },
            }
        )
    )
    assert of_type(out, "text") == [{"type": "text", "text": "new"}]


def test_a_session_that_cannot_be_loaded_starts_a_new_one() -> None:
    client, io = started(
        request=turn_request(provider_session_id="00000000-0000-4000-8000-000000000000")
    )
    out: list[dict[str, Any]] = []
    for message in from_agent("gemini_load_unknown.jsonl"):
        out += client.feed(line(message))
    (notice,) = of_type(out, "notice")
    assert "Invalid session identifier" in notice["message"]
    assert io.sent[-1]["method"] == "session/new"


def test_an_agent_without_load_starts_a_new_session() -> None:
    client, io = started(request=turn_request(provider_session_id="old"))
    init = from_agent("gemini_reply.jsonl")[0]
    init["result"]["agentCapabilities"]["loadSession"] = False
    (notice,) = client.feed(line(init))
    assert "cannot resume" in notice["message"]
    assert io.sent[-1]["method"] == "session/new"


def test_not_logged_in() -> None:
    client, io = started()
    out: list[dict[str, Any]] = []
    for message in from_agent("gemini_not_authenticated.jsonl"):
        out += client.feed(line(message))
    assert out[-1]["type"] == "error"
    assert out[-1]["code"] == "not_authenticated"
    assert "Gemini API key is missing" in out[-1]["message"]
    assert "Gemini API key" in out[-1]["message"]  # the agent's own auth methods are named
    assert io.closed


def test_tool_calls_thoughts_and_plans() -> None:
    client, _ = prompted()
    sid = "854fee11-deab-4706-aa57-f822c2b3e5f4"
    updates = [m for m in from_agent("gemini_tools.jsonl") if m.get("method") == "session/update"]
    out: list[dict[str, Any]] = []
    for message in updates:
        message["params"]["sessionId"] = sid
        out += client.feed(line(message))
    uses = of_type(out, "tool_use")
    results = of_type(out, "tool_result")
    assert uses[0]["name"] == "search"  # list_directory's ACP kind
    assert [r["is_error"] for r in results] == [False, False, True, False]
    assert "Path not in workspace" in results[2]["content"]
    (thought,) = of_type(out, "thinking")
    assert "thinking it over" in thought["text"]
    plan = {
        "sessionUpdate": "plan",
        "entries": [
            {"content": "Read", "status": "completed"},
            {"content": "Plot", "status": "pending"},
        ],
    }
    (notice,) = client.feed(
        line(
            {
                "jsonrpc": "2.0",
                "method": "session/update",
                "params": {"sessionId": sid, "update": plan},
            }
        )
    )
    assert notice["message"] == "Plan: [x] Read; [ ] Plot"


def permission_requests() -> list[dict[str, Any]]:
    return [
        m
        for name in ("gemini_tools.jsonl", "gemini_permission_rejected.jsonl")
        for m in from_agent(name)
        if m.get("method") == "session/request_permission"
    ]


def test_the_default_policy_allows_edits_inside_the_folder_and_refuses_commands() -> None:
    write, command = permission_requests()
    client, io = prompted()
    allowed = client.feed(line(write))
    assert io.sent[-1] == {
        "jsonrpc": "2.0",
        "id": write["id"],
        "result": {"outcome": {"outcome": "selected", "optionId": "proceed_once"}},
    }
    assert of_type(allowed, "tool_use")[0]["name"] == "edit"
    assert "Allowed Writing to standin_written.txt" in of_type(allowed, "notice")[0]["message"]
    refused = client.feed(line(command))
    assert io.sent[-1]["result"] == {"outcome": {"outcome": "selected", "optionId": "cancel"}}
    (denied,) = of_type(refused, "permission_denied")
    assert denied["tool_name"] == "execute"
    assert "cannot be confined" in denied["message"]
    assert "permission_policy" in denied["message"]


def test_the_policy_decisions(tmp_path: Path) -> None:
    folder = tmp_path / "nb"
    folder.mkdir()
    (tmp_path / "secret").mkdir()
    (folder / "escape").symlink_to(tmp_path / "secret")
    root = str(folder)

    def edit(*paths: str) -> dict[str, Any]:
        return {"kind": "edit", "locations": [{"path": p} for p in paths]}

    assert decide("workdir", edit(str(folder / "a.py"), "b/c.py"), root)[0] == "allow"
    assert decide("workdir", edit(str(tmp_path / "x.py")), root)[0] == "reject"
    assert decide("workdir", edit("../x.py"), root)[0] == "reject"
    assert decide("workdir", edit("escape/key"), root)[0] == "reject"  # a symlink out
    assert decide("workdir", {"kind": "edit", "locations": []}, root)[0] == "reject"
    assert (
        decide("workdir", {"kind": "read", "rawInput": {"file_path": "/etc/passwd"}}, root)[0]
        == "reject"
    )
    assert decide("workdir", {"kind": "think"}, root)[0] == "allow"
    assert (
        decide("workdir", {"kind": "fetch", "rawInput": {"url": "http://x"}}, root)[0] == "reject"
    )
    assert decide("workdir", {"title": "no kind"}, root)[0] == "reject"
    assert decide("ask", {"kind": "execute"}, root)[0] == "ask"
    assert decide("ask", edit("a.py"), root)[0] == "allow"
    assert decide("allow", {"kind": "execute"}, root)[0] == "allow"
    assert decide("reject", edit("a.py"), root)[0] == "reject"


def test_ask_the_user() -> None:
    _, command = permission_requests()
    client, io = prompted(policy="ask")
    out = client.feed(line(command))
    (asked,) = of_type(out, "permission_request")
    assert asked["tool_name"] == "execute"
    assert "touch marker2.txt" in asked["summary"]
    before = len(io.sent)
    assert client.answer_permission("no-such-request", True, "once", None) is False
    assert client.answer_permission(asked["request_id"], True, "session", None) is True
    assert io.sent[before:] == [
        {
            "jsonrpc": "2.0",
            "id": command["id"],
            "result": {"outcome": {"outcome": "selected", "optionId": "proceed_always"}},
        }
    ]
    assert client.answer_permission(asked["request_id"], True, "once", None) is False  # once
    (asked_again,) = of_type(client.feed(line(dict(command, id=7))), "permission_request")
    client.answer_permission(asked_again["request_id"], False, "once", "no")
    assert io.sent[-1]["result"]["outcome"]["optionId"] == "cancel"


def test_stop_cancels_the_prompt_and_pending_questions() -> None:
    client, io = started()
    assert client.interrupt() is False  # nothing to cancel through the protocol yet
    client, io = prompted(policy="ask")
    _, command = permission_requests()
    client.feed(line(command))
    assert client.interrupt() is True
    sid = "854fee11-deab-4706-aa57-f822c2b3e5f4"
    assert {"jsonrpc": "2.0", "method": "session/cancel", "params": {"sessionId": sid}} in io.sent
    assert io.sent[-1] == {
        "jsonrpc": "2.0",
        "id": command["id"],
        "result": {"outcome": {"outcome": "cancelled"}},
    }
    prompt_id = next(m["id"] for m in io.sent if m.get("method") == "session/prompt")
    out = client.feed(
        line({"jsonrpc": "2.0", "id": prompt_id, "result": {"stopReason": "cancelled"}})
    )
    assert out[-1] == {"type": "cancelled"}


def test_mode_and_model_are_set_before_the_prompt() -> None:
    client, io = started(mode="autoEdit", model="gemini-2.5-pro")
    messages = from_agent("gemini_reply.jsonl")
    client.feed(line(messages[0]))
    client.feed(line(next(m for m in messages if m.get("id") == 2)))
    assert io.sent[-1]["method"] == "session/set_mode"
    assert io.sent[-1]["params"]["modeId"] == "autoEdit"
    out = client.feed(
        line(
            {
                "jsonrpc": "2.0",
                "id": io.sent[-1]["id"],
                "error": {"code": -32602, "message": "Invalid mode"},
            }
        )
    )
    assert "refused the mode" in out[0]["message"]
    assert io.sent[-1]["method"] == "session/set_model"
    client.feed(line({"jsonrpc": "2.0", "id": io.sent[-1]["id"], "result": {}}))
    assert io.sent[-1]["method"] == "session/prompt"


def test_requests_needing_capabilities_we_do_not_advertise_are_refused() -> None:
    client, io = prompted()
    client.feed(
        line(
            {
                "jsonrpc": "2.0",
                "id": 9,
                "method": "fs/read_text_file",
                "params": {"path": "/etc/passwd"},
            }
        )
    )
    assert io.sent[-1]["id"] == 9
    assert io.sent[-1]["error"]["code"] == -32601


def test_failures() -> None:
    client, io = started()
    (end,) = client.finish(127, "bash: gemin: command not found\n")
    assert end["code"] == "provider_failed"
    assert "before answering" in end["message"] and "command not found" in end["message"]
    client, io = started()
    init = from_agent("gemini_reply.jsonl")[0]
    init["result"]["protocolVersion"] = 2
    (end,) = client.feed(line(init))
    assert "protocol version 2" in end["message"]
    client, io = prompted()
    prompt_id = io.sent[-1]["id"]
    error = {"code": -32603, "message": "Internal error", "data": {"details": "quota exceeded"}}
    (end,) = client.feed(line({"jsonrpc": "2.0", "id": prompt_id, "error": error}))
    assert end["code"] == "provider_failed"
    assert "quota exceeded" in end["message"]
    assert client.feed(b"some log line the agent printed") == []


# -- claude-agent-acp 0.101.0 (real transcripts, against the Anthropic API stand-in) -----------


def claude_agent(name: str, until_id: int | None = None) -> list[dict[str, Any]]:
    """The agent's messages of a real claude-agent-acp transcript, up to the answer ``until_id``."""
    messages = from_agent(f"claude_agent_{name}.jsonl")
    if until_id is not None:
        end = next(
            i for i, m in enumerate(messages) if m.get("id") == until_id and "method" not in m
        )
        messages = messages[: end + 1]
    return messages


def fed(client: AcpClient, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        out += client.feed(line(message))
    return out


def test_claude_agent_acp_reports_the_sessions_running_cost(tmp_path: Path) -> None:
    # A new session: its first turn costs the whole total (0.011628), with ACP's usage tokens.
    client, _ = started(request=turn_request(scratch_dir=str(tmp_path)))
    out = fed(client, claude_agent("notice"))
    assert of_type(out, "usage") == [
        {"type": "usage", "input_tokens": 2646, "output_tokens": 20, "cost_usd": 0.011628}
    ]
    assert out[-1]["type"] == "done" and out[-1]["cost_usd"] == 0.011628
    # The next turn, in a new process, loads it: the agent's total (0.022804) counts the first
    # turn too, so this turn cost the difference.
    conversation = "7750f247-8314-438c-86e6-83403ccf360f"
    request = turn_request(scratch_dir=str(tmp_path), provider_session_id=conversation)
    client, io = started(request=request)
    out = fed(client, claude_agent("load"))
    assert [m.get("method") for m in io.sent] == [
        "initialize", "session/load", "_jupyter_assistant/barrier", "session/prompt",
    ]  # fmt: skip
    (usage,) = of_type(out, "usage")
    assert (usage["input_tokens"], usage["output_tokens"]) == (2689, 21)
    assert usage["cost_usd"] == pytest.approx(0.022804 - 0.011628)
    assert out[-1]["type"] == "done" and out[-1]["cost_usd"] == usage["cost_usd"]
    assert of_type(out, "text")  # the replayed history before the answer is not the reply
    assert "Say hello please" not in "".join(e["text"] for e in of_type(out, "text"))


def test_a_loaded_session_without_a_known_total_counts_all_of_it(tmp_path: Path) -> None:
    request = turn_request(
        scratch_dir=str(tmp_path), provider_session_id="7750f247-8314-438c-86e6-83403ccf360f"
    )
    client, _ = started(request=request)
    out = fed(client, claude_agent("load"))
    assert out[-1]["cost_usd"] == pytest.approx(0.022804)
    # An agent that reports each turn's own cost: cumulative_cost = False.
    client, _ = started(request=turn_request(), cumulative_cost=False)
    assert fed(client, claude_agent("notice"))[-1]["cost_usd"] == 0.011628


def test_claude_agent_acp_warnings_are_notices_not_reply_text() -> None:
    # With clientCapabilities.session.notices it sends a notice update.
    client, _ = started()
    out = fed(client, claude_agent("notice"))
    (notice,) = of_type(out, "notice")
    assert notice["level"] == "warning"
    assert notice["message"].startswith("Claude reported a warning: We're changing auto mode")
    text = "".join(e["text"] for e in of_type(out, "text"))
    assert text == "Hello from the stand-in. You said: Say hello please"
    # An agent that did not see the capability: "**Warning:** ..." as text, tagged in _meta.
    client, _ = started()
    out = fed(client, claude_agent("reply", until_id=3))
    (notice,) = of_type(out, "notice")
    assert notice["message"].startswith("Claude Agent reported a warning: We're changing auto")
    assert "**Warning:**" not in notice["message"]
    text = "".join(e["text"] for e in of_type(out, "text"))
    assert text == "Hello from the stand-in. You said: Say hello please"


def test_codex_acp_warnings_are_notices_not_reply_text() -> None:
    # codex-acp 0.16.0 forwards Codex's warning events as an agent_message_chunk of their own,
    # before the answer (against the OpenAI stand-in, with a model Codex has no metadata for).
    client, io = started()
    out = fed(client, from_agent("codex_acp_warning.jsonl"))
    assert [m.get("method") for m in io.sent] == ["initialize", "session/new", "session/prompt"]
    assert "".join(e["text"] for e in of_type(out, "text")) == (
        "Hello from the stand-in. You said: Say hi please"
    )
    (notice,) = of_type(out, "notice")
    assert notice["level"] == "warning"
    assert notice["message"] == (
        "Codex reported a warning: Model metadata for `gpt-5-codex` not found. Defaulting to "
        "fallback metadata; this can degrade performance and cause issues."
    )
    assert out[-1]["type"] == "done"


def test_claude_agent_acp_as_root_says_to_set_is_sandbox() -> None:
    client, io = started()
    out = fed(client, claude_agent("root_refused"))
    assert out[-1]["type"] == "error" and out[-1]["code"] == "provider_failed"
    message = out[-1]["message"]
    assert "--dangerously-skip-permissions cannot be used with root/sudo privileges" in message
    assert "c.AcpProvider.env = {'IS_SANDBOX': '1'}" in message
    assert io.closed
    # The same refusal on the agent's stderr (an agent that exits instead of answering).
    client, io = started()
    stderr = (
        "--dangerously-skip-permissions cannot be used with root/sudo privileges for security "
        "reasons\n"
    )
    (end,) = client.finish(1, stderr)
    assert "IS_SANDBOX is exactly 1" in end["message"]


def test_the_provider_needs_a_command(tmp_path: Path) -> None:
    with pytest.raises(ProviderUnavailable) as missing:
        AcpProvider().build_launch(turn_request(), {})
    assert missing.value.code == "provider_not_found"
    assert "c.AcpProvider.command" in missing.value.message
    spec = AcpProvider(command=[str(FAKE_AGENT)], extra_args=["--x"]).build_launch(
        turn_request(), {}
    )
    assert spec.argv == [str(FAKE_AGENT), "--x"]
    assert spec.stdin == b""  # a pipe for the conversation


# -- whole turns through the HTTP API, with the fake agent ---------------------------------------


@pytest.fixture
def agent_log(tmp_path: Path) -> Path:
    return tmp_path / "acp-received.jsonl"


@pytest.fixture
def acp_settings(tmp_path: Path, agent_log: Path) -> dict[str, Any]:
    return {
        "command": fake_cli("acp_agent"),
        "env": {"FAKE_ACP_STORE": str(tmp_path / "acp-sessions"), "FAKE_ACP_LOG": str(agent_log)},
    }


@pytest.fixture
def jp_server_config(
    jp_server_config: dict[str, Any], acp_settings: dict[str, Any]
) -> dict[str, Any]:
    extension = {**jp_server_config["AssistantExtension"], "default_provider": "acp"}
    return {**jp_server_config, "AssistantExtension": extension, "AcpProvider": acp_settings}


def received(agent_log: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in agent_log.read_text().splitlines()]


def stream_url(port: int, base_url: str, session_id: str) -> str:
    return f"http://127.0.0.1:{port}{base_url}api/assistant/sessions/{session_id}/events"


@pytest.mark.usefixtures("notebook_dir")
class TestWithTheFakeAgent:
    async def test_a_warm_agent_takes_the_next_prompt_then_a_new_one_loads_the_session(
        self, jp_fetch: Any, agent_log: Path, jp_serverapp: Any
    ) -> None:
        runner = jp_serverapp.web_app.settings["jupyter_assistant"].service.runner
        session = await create_session(jp_fetch)
        assert session["provider"] == "acp"
        first = await run_turn(jp_fetch, session["id"], "Say hi")
        assert types(first)[-1] == "done", first[-1]
        assert text_of(first) == "Fake ACP reply. You said: Say hi"
        acp_session = first[-1]["data"]["provider_session_id"]
        (warm,) = runner.warm.parked()  # warm_agents: the agent waits for the next prompt
        second = await run_turn(jp_fetch, session["id"], "Again")
        assert text_of(second) == "Fake ACP reply. You said: Again [turn 2]"
        assert runner.warm.parked() == [warm] and warm.alive()
        assert second[-1]["data"]["provider_session_id"] == acp_session
        # Its warm process ended (idle timeout, a restart): a new one loads the session.
        await runner.end_warm(session["id"])
        assert not warm.alive()
        third = await run_turn(jp_fetch, session["id"], "Once more")
        assert text_of(third) == "Fake ACP reply. You said: Once more [turn 3]"
        methods = [m.get("method") for m in received(agent_log)]
        assert methods == [
            "initialize", "session/new", "session/prompt", "session/prompt",
            "initialize", "session/load", "_jupyter_assistant/barrier", "session/prompt",
        ]  # fmt: skip
        assert third[-1]["data"]["provider_session_id"] == acp_session

    async def test_the_turn_ends_when_the_prompt_is_answered_not_when_the_agent_exits(
        self, jp_fetch: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, jp_serverapp: Any
    ) -> None:
        # An agent that stays up after its stdin closed (issue 19, item 1): `done` waited
        # for it (10 s); the agent is stopped soon after the answer instead.
        lingered = tmp_path / "lingered"
        monkeypatch.setenv("FAKE_ACP_LINGER", str(lingered))
        monkeypatch.setenv("FAKE_PID_FILE", str(tmp_path / "pids.json"))
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "Say hi")
        assert types(stream)[-1] == "done", stream[-1]
        assert not lingered.exists(), "done came only after the agent lingered 8 s"
        stored = json_of(await api(jp_fetch, "sessions", session["id"]))
        assert stored["status"] == "idle"
        assert stored["messages"][-1]["content"] == "Fake ACP reply. You said: Say hi"
        # Kept for the next prompt (warm_agents) until it is ended, which an agent that stays
        # up after its stdin closed does not outlive either.
        await jp_serverapp.web_app.settings["jupyter_assistant"].service.runner.end_warm(
            session["id"]
        )
        agents = [
            p
            for p in psutil.process_iter(["environ"])
            if (p.info["environ"] or {}).get("FAKE_ACP_LINGER") == str(lingered)
        ]
        assert agents == [], "the agent outlived its turn"

    async def test_a_conversation_that_cannot_be_loaded_is_said_and_stored(
        self, jp_fetch: Any, tmp_path: Path, jp_serverapp: Any
    ) -> None:
        # Issue 19, item 4: the notice showed live but was not in the stored session.
        session = await create_session(jp_fetch)
        first = await run_turn(jp_fetch, session["id"], "Say hi")
        assert types(first)[-1] == "done", first[-1]
        runner = jp_serverapp.web_app.settings["jupyter_assistant"].service.runner
        await runner.end_warm(session["id"])  # the next turn's agent loads the session
        for stored_session in (tmp_path / "acp-sessions").iterdir():
            stored_session.unlink()  # the agent lost it (as gemini --acp does in one minute)
        second = await run_turn(jp_fetch, session["id"], "Again")
        assert types(second)[-1] == "done", second[-1]
        live = [e["data"]["message"] for e in second if e["event"] == "notice"]
        assert any("could not load the earlier conversation" in n for n in live), live
        stored = json_of(await api(jp_fetch, "sessions", session["id"]))
        assert stored["messages"][-1]["role"] == "assistant"
        assert stored["messages"][-1]["notices"] == live
        new_id = second[-1]["data"]["provider_session_id"]
        assert new_id and new_id != first[-1]["data"]["provider_session_id"]
        assert stored["provider_session_id"] == new_id  # the next turn loads the new one

    async def test_claude_agent_acp_turns_cost_what_they_add(
        self, jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # claude-agent-acp reports the session's running total, which a loaded session (each
        # turn a new process) goes on counting: three turns must not cost 1 + 2 + 3 turns.
        monkeypatch.setenv("FAKE_ACP_AGENT", "claude-agent-acp")
        session = await create_session(jp_fetch)
        costs = []
        for prompt in ("Say hi", "Again", "Once more"):
            stream = await run_turn(jp_fetch, session["id"], prompt)
            assert types(stream)[-1] == "done", stream[-1]
            (usage,) = [e["data"] for e in stream if e["event"] == "usage"]
            assert usage["input_tokens"] > 2000 and usage["output_tokens"] > 0
            assert usage["cost_usd"] == stream[-1]["data"]["cost_usd"]
            costs.append(usage["cost_usd"])
        assert all(0.011 < cost < 0.012 for cost in costs), costs
        stored = json_of(await api(jp_fetch, "sessions", session["id"]))
        assert stored["usage"]["cost_usd"] == pytest.approx(sum(costs))
        assert stored["messages"][-1]["usage"]["cost_usd"] == costs[-1]

    async def test_agent_warnings_are_notices_not_reply_text(
        self, jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for agent, warning in (
            ("claude-agent-acp", "We're changing auto mode"),
            ("codex-acp", "Model metadata for `gpt-5-codex` not found"),
        ):
            monkeypatch.setenv("FAKE_ACP_AGENT", agent)
            session = await create_session(jp_fetch)
            stream = await run_turn(jp_fetch, session["id"], "scenario:warning Say hello please")
            assert types(stream)[-1] == "done", stream[-1]
            assert text_of(stream) == "Fake ACP reply. You said: scenario:warning Say hello please"
            notices = [e["data"] for e in stream if e["event"] == "notice"]
            assert [n["level"] for n in notices] == ["warning"], notices
            assert warning in notices[0]["message"]
            (reply,) = json_of(await api(jp_fetch, "sessions", session["id"]))["messages"][1:]
            assert warning not in reply["content"] and warning in reply["notices"][0]

    async def test_claude_agent_acp_as_root_needs_is_sandbox(
        self, jp_fetch: Any, monkeypatch: pytest.MonkeyPatch, acp_settings: dict[str, Any]
    ) -> None:
        monkeypatch.setenv("FAKE_ACP_AGENT", "claude-agent-acp")
        monkeypatch.setenv("FAKE_ACP_AS_ROOT", "1")
        monkeypatch.setenv("IS_SANDBOX", "yes")  # as this machine's containers have it
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "Say hi")
        error = stream[-1]["data"]
        assert stream[-1]["event"] == "error" and error["code"] == "provider_failed"
        assert "root/sudo privileges" in error["message"]
        assert "c.AcpProvider.env = {'IS_SANDBOX': '1'}" in error["message"]
        # As it says: with IS_SANDBOX=1 in the provider's env (or none) the same agent works.
        monkeypatch.setenv("IS_SANDBOX", "1")
        stream = await run_turn(jp_fetch, session["id"], "Say hi")
        assert types(stream)[-1] == "done", stream[-1]
        monkeypatch.delenv("IS_SANDBOX")
        stream = await run_turn(jp_fetch, session["id"], "Say hi")
        assert types(stream)[-1] == "done", stream[-1]

    async def test_a_tool_call_in_the_notebook_folder(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "scenario:tool")
        assert types(stream)[-1] == "done", stream[-1]
        result = next(e["data"] for e in stream if e["event"] == "tool_result")
        assert "sales.csv" in result["content"]
        usage = next(e["data"] for e in stream if e["event"] == "usage")
        assert usage["input_tokens"] == 416

    async def test_permissions_follow_the_policy(self, jp_fetch: Any, jp_root_dir: Path) -> None:
        session = await create_session(jp_fetch)
        inside = await run_turn(jp_fetch, session["id"], "scenario:permission_inside")
        assert text_of(inside).endswith("Permission outcome: proceed_once")
        assert (jp_root_dir / "analysis" / "fake_acp_written.txt").exists()
        assert "notice" in types(inside)
        for scenario in ("permission_outside", "permission_execute"):
            refused = await run_turn(jp_fetch, session["id"], f"scenario:{scenario}")
            assert text_of(refused).endswith("Permission outcome: cancel"), scenario
            (denied,) = [e["data"] for e in refused if e["event"] == "permission_denied"]
            assert "permission_policy" in denied["message"]
        assert not (jp_root_dir / "outside_the_notebook_folder.txt").exists()
        assert not (jp_root_dir / "analysis" / "marker2.txt").exists()
        stored = json_of(await api(jp_fetch, "sessions", session["id"]))
        assert "permission_policy" in stored["messages"][-1]["notices"][0]

    async def test_cancel_sends_session_cancel_and_leaves_no_process(
        self, jp_fetch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, agent_log: Path
    ) -> None:
        pid_file = tmp_path / "pids.json"
        monkeypatch.setenv("FAKE_PID_FILE", str(pid_file))
        session = await create_session(jp_fetch)
        await post_message(jp_fetch, session["id"], "scenario:hang")
        await wait_until(pid_file.exists, message="the fake never wrote its pids")
        pids = json.loads(pid_file.read_text())
        response = await api(
            jp_fetch, "sessions", session["id"], "cancel", method="POST", body="{}"
        )
        assert json_of(response) == {"cancelled": True}
        assert pids_alive(pids) == []
        assert "session/cancel" in [m.get("method") for m in received(agent_log)]
        stream = await events(jp_fetch, session["id"])
        assert types(stream)[-1] == "cancelled"
        stored = json_of(await api(jp_fetch, "sessions", session["id"]))
        assert stored["messages"][-1]["status"] == "cancelled"

    async def test_an_agent_that_ignores_cancel_is_killed(
        self, jp_fetch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pid_file = tmp_path / "pids.json"
        monkeypatch.setenv("FAKE_PID_FILE", str(pid_file))
        session = await create_session(jp_fetch)
        await post_message(jp_fetch, session["id"], "scenario:ignore_cancel")
        await wait_until(pid_file.exists, message="the fake never wrote its pids")
        pids = json.loads(pid_file.read_text())
        response = await api(
            jp_fetch, "sessions", session["id"], "cancel", method="POST", body="{}"
        )
        assert json_of(response) == {"cancelled": True}
        assert pids_alive(pids) == []
        assert types(await events(jp_fetch, session["id"]))[-1] == "cancelled"

    async def test_a_crash_reports_the_stderr_tail(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "scenario:crash")
        error = stream[-1]["data"]
        assert error["code"] == "provider_failed"
        assert "exited with code 3" in error["message"]
        assert "fake agent crashed" in error["message"]

    async def test_an_error_answer_to_the_prompt(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "scenario:prompt_error")
        assert stream[-1]["data"]["code"] == "provider_failed"
        assert "quota exceeded" in stream[-1]["data"]["message"]

    async def test_history_replayed_after_the_load_answer_is_not_reply_text(
        self, jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("FAKE_ACP_LATE_REPLAY", "1")
        session = await create_session(jp_fetch)
        await run_turn(jp_fetch, session["id"], "first")
        second = await run_turn(jp_fetch, session["id"], "second")
        assert text_of(second) == "Fake ACP reply. You said: second [turn 2]"


@pytest.mark.usefixtures("notebook_dir")
class TestAskPolicy:
    @pytest.fixture
    def acp_settings(self, acp_settings: dict[str, Any]) -> dict[str, Any]:
        return {**acp_settings, "permission_policy": "ask"}

    async def test_the_user_answers_a_permission_request(
        self,
        jp_fetch: Any,
        jp_root_dir: Path,
        jp_http_port: int,
        jp_base_url: str,
        jp_auth_header: dict[str, str],
    ) -> None:
        session = await create_session(jp_fetch)
        sid = session["id"]
        await post_message(jp_fetch, sid, "scenario:permission_execute")
        reader = StreamReader(stream_url(jp_http_port, jp_base_url, sid), jp_auth_header)
        reader.start()
        await reader.wait_for(lambda evs: "permission_request" in types(evs))
        asked = next(e["data"] for e in reader.events if e["event"] == "permission_request")
        assert asked["tool_name"] == "execute"
        assert "touch marker2.txt" in asked["summary"]
        answer = await api(
            jp_fetch, "sessions", sid, "permissions", asked["request_id"], method="POST",
            body={"decision": "allow", "scope": "once"},
        )  # fmt: skip
        assert answer.code == 200, answer.body
        await reader.wait_for(lambda evs: types(evs)[-1:] == ["done"])
        assert text_of(reader.events).endswith("Permission outcome: proceed_once")
        assert (jp_root_dir / "analysis" / "marker2.txt").exists()


@pytest.mark.usefixtures("notebook_dir")
class TestFakeAgentLoggedOut:
    @pytest.fixture
    def acp_settings(self, acp_settings: dict[str, Any]) -> dict[str, Any]:
        return {**acp_settings, "env": {**acp_settings["env"], "FAKE_ACP_LOGGED_OUT": "1"}}

    async def test_not_authenticated(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "hello")
        assert types(stream) == ["turn_started", "error"]
        assert stream[-1]["data"]["code"] == "not_authenticated"
        assert "Fake API key" in stream[-1]["data"]["message"]


@pytest.mark.usefixtures("notebook_dir")
class TestNoAgentConfigured:
    @pytest.fixture
    def acp_settings(self) -> dict[str, Any]:
        return {}

    async def test_provider_not_found_with_the_setting_to_change(self, jp_fetch: Any) -> None:
        providers = json_of(await api(jp_fetch, "providers"))["providers"]
        (acp,) = [p for p in providers if p["name"] == "acp"]
        assert acp["available"] is False
        assert "c.AcpProvider.command" in acp["problem"]
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "hello")
        assert stream[-1]["data"]["code"] == "provider_not_found"


# -- the REAL gemini --acp ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def standin() -> Iterator[GeminiStandIn]:
    with GeminiStandIn() as server:
        yield server


@pytest.mark.usefixtures("notebook_dir")
class TestRealGeminiAcp:
    @pytest.fixture
    def acp_settings(self, tmp_path: Path, standin: GeminiStandIn) -> dict[str, Any]:
        (tmp_path / "tmp").mkdir()
        home = gemini_home_for_standin(tmp_path / "gemini-home")
        return {
            "command": [find_real("gemini"), "--acp", "--skip-trust", "-m", "gemini-2.5-pro"],
            "env": {
                "HOME": str(home),
                "GEMINI_API_KEY": "test-key",
                "GOOGLE_GEMINI_BASE_URL": standin.base_url,
                "TMPDIR": str(tmp_path / "tmp"),
            },
        }

    async def test_reply_warm_follow_up_load_and_the_permission_policy(
        self, jp_fetch: Any, jp_root_dir: Path, standin: GeminiStandIn, jp_serverapp: Any
    ) -> None:
        providers = json_of(await api(jp_fetch, "providers"))["providers"]
        (acp,) = [p for p in providers if p["name"] == "acp"]
        assert acp["available"] is True, acp
        assert acp["display_name"] == "Gemini CLI (ACP)"
        assert acp["version"][0].isdigit()

        session = await create_session(jp_fetch)
        first = await run_turn(jp_fetch, session["id"], "Say hi please")
        assert types(first)[-1] == "done", first[-1]
        assert text_of(first) == "Hello from the stand-in. You said: Say hi please"
        acp_session = first[-1]["data"]["provider_session_id"]

        # A follow-up at once (issue 19, item 4): the warm agent takes it in the same session,
        # on the same connection, so nothing has to be loaded. Edits inside the folder are
        # allowed, shell commands refused (below).
        runner = jp_serverapp.web_app.settings["jupyter_assistant"].service.runner
        (warm,) = runner.warm.parked()
        second = await run_turn(jp_fetch, session["id"], "RUN_WRITE please")
        assert types(second)[-1] == "done", second[-1]
        notices = [e["data"]["message"] for e in second if e["event"] == "notice"]
        assert not any("could not load" in n for n in notices), notices
        assert second[-1]["data"]["provider_session_id"] == acp_session
        assert runner.warm.parked() == [warm]
        assert "Say hi please" in json.dumps(standin.generate_bodies[-1]["contents"])
        assert (jp_root_dir / "analysis" / "standin_written.txt").exists()

        # A new agent process loads the session. Gemini 0.61.0 names a session's file after
        # the minute it was last opened; a session/load in the same minute as the turn before
        # rewrites that file first and then finds nothing ("No previous sessions found"): the
        # client then starts a new session, with a notice.
        await runner.end_warm(session["id"])
        third = await run_turn(jp_fetch, session["id"], "RUN_BASH: touch marker2.txt")
        assert types(third)[-1] == "done", third[-1]
        notices = [e["data"]["message"] for e in third if e["event"] == "notice"]
        if any("could not load" in n for n in notices):
            assert any("No previous sessions found" in n for n in notices), notices
        else:
            assert third[-1]["data"]["provider_session_id"] == acp_session
        assert not text_of(third).startswith("Hello from the stand-in")  # no replayed history
        assert "permission_denied" in types(third)
        assert not (jp_root_dir / "analysis" / "marker2.txt").exists()


@pytest.mark.usefixtures("notebook_dir")
class TestRealGeminiAcpAllowAll:
    @pytest.fixture
    def acp_settings(self, tmp_path: Path, standin: GeminiStandIn) -> dict[str, Any]:
        home = gemini_home_for_standin(tmp_path / "gemini-home")
        return {
            "command": [find_real("gemini"), "--acp", "--skip-trust", "-m", "gemini-2.5-pro"],
            "permission_policy": "allow",
            "env": {
                "HOME": str(home),
                "GEMINI_API_KEY": "test-key",
                "GOOGLE_GEMINI_BASE_URL": standin.base_url,
            },
        }

    async def test_cancel_stops_a_running_command(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch)
        await post_message(jp_fetch, session["id"], "RUN_BASH: sleep 2919")
        sleepers: list[psutil.Process] = []

        def sleeping() -> bool:
            sleepers[:] = [
                p
                for p in psutil.process_iter(["cmdline"])
                if p.info["cmdline"] == ["sleep", "2919"]
            ]
            return bool(sleepers)

        await wait_until(sleeping, timeout=60, message="gemini never ran the command")
        tree = [p.pid for p in sleepers]
        for parent in sleepers[0].parents():
            if parent.pid == os.getpid():
                break
            tree.append(parent.pid)
        response = await api(
            jp_fetch, "sessions", session["id"], "cancel", method="POST", body="{}"
        )
        assert json_of(response) == {"cancelled": True}
        assert pids_alive(tree) == []
        assert types(await events(jp_fetch, session["id"]))[-1] == "cancelled"


@pytest.mark.usefixtures("notebook_dir")
class TestRealGeminiAcpLoggedOut:
    @pytest.fixture
    def acp_settings(self, tmp_path: Path) -> dict[str, Any]:
        (tmp_path / "empty-home").mkdir()
        return {
            "command": [find_real("gemini"), "--acp", "--skip-trust"],
            "env": {"HOME": str(tmp_path / "empty-home")},
        }

    async def test_not_authenticated_with_the_fix(
        self, jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL"):
            monkeypatch.delenv(name, raising=False)
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "hello")
        assert types(stream) == ["turn_started", "error"]
        assert stream[-1]["data"]["code"] == "not_authenticated"
        assert "Gemini API key is missing" in stream[-1]["data"]["message"]


async def test_health_starts_the_agent_once_in_a_while(tmp_path: Path) -> None:
    log = tmp_path / "received.jsonl"
    provider = AcpProvider(command=fake_cli("acp_agent"), env={"FAKE_ACP_LOG": str(log)})
    first = await provider.health()
    second = await provider.health()
    assert first.available and second.available
    assert (first.version, first.display_name) == ("1.2.3", "Fake ACP Agent (ACP)")
    assert second == first
    assert [json.loads(x)["method"] for x in log.read_text().splitlines()] == ["initialize"]
    provider.env = {"FAKE_ACP_LOG": str(log), "OTHER": "1"}  # another setup: asked again
    await provider.health()
    assert len(log.read_text().splitlines()) == 2


# -- the REAL claude-agent-acp (@agentclientprotocol/claude-agent-acp) ---------------------------


@pytest.fixture(scope="module")
def anthropic_standin() -> Iterator[AnthropicStandIn]:
    with AnthropicStandIn() as server:
        yield server


@pytest.mark.usefixtures("notebook_dir")
class TestRealClaudeAgentAcp:
    @pytest.fixture
    def acp_settings(self, tmp_path: Path, anthropic_standin: AnthropicStandIn) -> dict[str, Any]:
        env = {**anthropic_standin.cli_env(tmp_path), "HOME": str(tmp_path), "IS_SANDBOX": "1"}
        return {"command": [find_real("claude-agent-acp")], "env": env}

    async def test_turns_cost_what_they_add_and_warnings_are_notices(
        self, jp_fetch: Any, anthropic_standin: AnthropicStandIn
    ) -> None:
        session = await create_session(jp_fetch)
        first = await run_turn(jp_fetch, session["id"], "Say hi please")
        assert types(first)[-1] == "done", first[-1]
        assert text_of(first).startswith("Hello from the stand-in.")
        # Claude Code warns that the stand-in is no gateway for auto mode: a notice, not text.
        assert "Warning" not in text_of(first)
        notices = [e["data"]["message"] for e in first if e["event"] == "notice"]
        assert any("auto mode" in n for n in notices), notices
        # A follow-up on the warm agent (the same connection and session): its running total
        # goes on.
        second = await run_turn(jp_fetch, session["id"], "And again please")
        assert types(second)[-1] == "done", second[-1]
        assert second[-1]["data"]["provider_session_id"] == first[-1]["data"]["provider_session_id"]
        assert "Say hi please" in json.dumps(anthropic_standin.main_bodies[-1]["messages"])
        costs = []
        for stream in (first, second):
            (usage,) = [e["data"] for e in stream if e["event"] == "usage"]
            assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
            costs.append(usage["cost_usd"])
        # Each turn costs about the same (one short exchange), not the running total.
        assert 0 < costs[1] < 1.5 * costs[0], costs
        stored = json_of(await api(jp_fetch, "sessions", session["id"]))
        assert stored["usage"]["cost_usd"] == pytest.approx(sum(costs))


@pytest.mark.usefixtures("notebook_dir")
class TestRealClaudeAgentAcpWithAnotherIsSandbox:
    @pytest.fixture
    def acp_settings(self, tmp_path: Path, anthropic_standin: AnthropicStandIn) -> dict[str, Any]:
        # IS_SANDBOX=yes, as some containers have it: claude-agent-acp then asks Claude Code
        # for --dangerously-skip-permissions, which as root it allows only with IS_SANDBOX=1.
        env = {**anthropic_standin.cli_env(tmp_path), "HOME": str(tmp_path), "IS_SANDBOX": "yes"}
        return {"command": [find_real("claude-agent-acp")], "env": env}

    async def test_as_root_the_error_says_what_to_set(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "Say hi please")
        if os.geteuid() != 0:  # the refusal is for root only (CI runs as root)
            assert types(stream)[-1] == "done", stream[-1]
            return
        assert stream[-1]["event"] == "error", stream[-1]
        message = stream[-1]["data"]["message"]
        assert "cannot be used with root/sudo privileges" in message
        assert "c.AcpProvider.env = {'IS_SANDBOX': '1'}" in message


# -- the REAL codex-acp (@zed-industries/codex-acp) ----------------------------------------------


@pytest.fixture(scope="module")
def openai_standin() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as server:
        yield server


@pytest.mark.usefixtures("notebook_dir")
class TestRealCodexAcp:
    @pytest.fixture
    def acp_settings(self, tmp_path: Path, openai_standin: OpenAIStandIn) -> dict[str, Any]:
        (tmp_path / "codex-home").mkdir()
        overrides = {**codex_standin_config(openai_standin.base_url), "model": '"gpt-5-codex"'}
        return {
            "command": [find_real("codex-acp")],
            "extra_args": [arg for k, v in overrides.items() for arg in ("-c", f"{k}={v}")],
            "env": {"CODEX_HOME": str(tmp_path / "codex-home"), "STANDIN_API_KEY": "test-key"},
        }

    async def test_its_warning_is_a_notice_not_reply_text(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "Say hi please")
        assert types(stream)[-1] == "done", stream[-1]
        assert text_of(stream).startswith("Hello from the stand-in.")
        assert "Model metadata" not in text_of(stream)
        notices = [e["data"]["message"] for e in stream if e["event"] == "notice"]
        assert any("Model metadata for `gpt-5-codex` not found" in n for n in notices), notices
        stored = json_of(await api(jp_fetch, "sessions", session["id"]))
        assert "Model metadata" not in stored["messages"][-1]["content"]
