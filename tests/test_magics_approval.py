"""Tool approval in a cell: a real kernel runs `%assistant` with the REAL Claude Code CLI against
the Messages API stand-in, which asks to Write a file into the notebook's folder. The cell asks
with input() (this client answers the kernel's input_request, as a notebook frontend does), or
follows --allow / --deny-all; a frontend without input gets the policy's answer (deny)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_assistant.cell_approval import parse_answer
from jupyter_assistant.cell_view import TurnView
from jupyter_assistant.kernel_assistant import PermissionAnswer
from jupyter_assistant.store import SessionStore

from .fakes.anthropic_standin import AnthropicStandIn
from .helpers import NOTEBOOK, api, eventually, json_of
from .kernel_helpers import Execution, Kernel, KernelSetup, KernelThread, make_setup, status_of
from .test_real_claude import find_real_claude, tool_results_sent


@pytest.fixture(scope="module")
def standin() -> Iterator[AnthropicStandIn]:
    with AnthropicStandIn() as server:
        yield server


def real_claude_setup(
    tmp_path: Path, standin: AnthropicStandIn, notebook: Path | None = None, **assistant: Any
) -> KernelSetup:
    setup = make_setup(tmp_path, notebook)
    env = standin.cli_env(tmp_path)
    setup.write_server_config(
        {
            "ClaudeCodeProvider": {"command": [find_real_claude()], "env": env},
            "AssistantExtension": {"cancel_grace_seconds": 1.0, **assistant},
        }
    )
    return setup


@pytest.fixture
def kernel(tmp_path: Path, standin: AnthropicStandIn) -> Iterator[Kernel]:
    started = Kernel.start(real_claude_setup(tmp_path, standin))
    started.ok("%load_ext jupyter_assistant")
    yield started
    started.shutdown()


def notes(kernel: Kernel) -> Path:
    assert kernel.setup is not None
    return kernel.setup.notebook.parent / "notes.txt"


def last_reply(kernel: Kernel) -> Any:
    assert kernel.setup is not None
    store = SessionStore(kernel.setup.store_dir)
    [summary] = store.list_summaries()
    return store.load(summary["id"]).messages[-1]


def asked_prompts(execution: Execution) -> list[str]:
    return [m["content"]["prompt"] for m in execution.input_requests]


def test_the_cell_asks_and_allow_writes_the_file(kernel: Kernel) -> None:
    execution = kernel.run(
        "%assistant RUN_WRITE: notes.txt hello from the cell", allow_stdin=True, answers=["y"]
    )
    assert status_of(execution) == "ok", execution.error_lines()
    [prompt] = asked_prompts(execution)
    assert prompt.startswith(f"Allow Write {notes(kernel)}? y = once, s = for this session")
    # The question showed the diff before it was answered, then its outcome.
    assert any("+hello from the cell" in md for md in execution.markdowns())
    final = execution.markdowns()[-1]
    assert "— allowed once" in final
    assert notes(kernel).read_text() == "hello from the cell\n"
    reply = last_reply(kernel)
    assert reply.status == "complete"
    assert [(p.decision, p.by) for p in reply.permissions] == [("allow", "user")]


def test_deny_with_a_reason_tells_the_agent(kernel: Kernel, standin: AnthropicStandIn) -> None:
    execution = kernel.run(
        "%assistant RUN_WRITE: notes.txt nope", allow_stdin=True, answers=["n not in this folder"]
    )
    assert status_of(execution) == "ok", execution.error_lines()
    assert len(asked_prompts(execution)) == 1
    assert not notes(kernel).exists()
    (sent,) = tool_results_sent(standin)
    assert sent["is_error"] is True
    assert sent["content"] == "The user denied this tool call: not in this folder"
    assert "— denied: not in this folder" in execution.markdowns()[-1]


def test_a_session_answer_is_not_asked_again_in_the_next_cell(kernel: Kernel) -> None:
    first = kernel.run("%assistant RUN_WRITE: notes.txt one", allow_stdin=True, answers=["s"])
    assert status_of(first) == "ok", first.error_lines()
    assert len(asked_prompts(first)) == 1
    assert "— allowed for this session" in first.markdowns()[-1]
    second = kernel.run("%assistant RUN_WRITE: notes.txt two", allow_stdin=True)
    assert status_of(second) == "ok", second.error_lines()
    assert asked_prompts(second) == []  # not asked again
    assert "you allowed this for the rest of the session" in second.markdowns()[-1]
    assert notes(kernel).read_text() == "two\n"


def test_allow_and_deny_all_options_answer_without_asking(
    kernel: Kernel, standin: AnthropicStandIn
) -> None:
    denied = kernel.run("%assistant --deny-all RUN_WRITE: notes.txt x", allow_stdin=True)
    assert status_of(denied) == "ok", denied.error_lines()
    assert asked_prompts(denied) == []
    assert not notes(kernel).exists()
    (sent,) = tool_results_sent(standin)
    assert "the user denies every tool call this turn" in sent["content"]
    allowed = kernel.run("%assistant --allow RUN_WRITE: notes.txt y", allow_stdin=True)
    assert status_of(allowed) == "ok", allowed.error_lines()
    assert asked_prompts(allowed) == []
    assert notes(kernel).read_text() == "y\n"


def test_a_frontend_without_input_gets_the_policy_answer(
    kernel: Kernel, standin: AnthropicStandIn
) -> None:
    execution = kernel.run("%assistant RUN_WRITE: notes.txt x", allow_stdin=False)
    assert status_of(execution) == "ok", execution.error_lines()
    assert not notes(kernel).exists()
    (sent,) = tool_results_sent(standin)
    assert "nobody can answer in this notebook" in sent["content"]
    assert "--allow" in sent["content"]


def test_no_answer_is_denied_after_the_timeout(tmp_path: Path, standin: AnthropicStandIn) -> None:
    kernel = Kernel.start(real_claude_setup(tmp_path, standin, permission_timeout_seconds=3.0))
    try:
        kernel.ok("%load_ext jupyter_assistant")
        execution = kernel.run("%assistant RUN_WRITE: notes.txt x", allow_stdin=True)  # no answer
        assert status_of(execution) == "ok", execution.error_lines()
        assert len(asked_prompts(execution)) == 1
        assert "no answer in time; the tool call was denied" in execution.stdout()
        assert "— denied: nobody answered in time" in execution.markdowns()[-1]
        assert not notes(kernel).exists()
        (sent,) = tool_results_sent(standin)
        assert "Nobody answered within 3 seconds" in sent["content"]
        reply = last_reply(kernel)
        assert reply.status == "complete"
        assert reply.permissions[0].by == "timeout"
        assert kernel.value("1 + 1") == 2  # the kernel goes on
    finally:
        kernel.shutdown()


@pytest.mark.usefixtures("notebook_dir")
async def test_the_server_sends_answers_for_a_kernels_turn_back_to_the_kernel(
    jp_fetch: Any,
    jp_root_dir: Path,
    store_dir: Path,
    tmp_path: Path,
    standin: AnthropicStandIn,
    live_events: Any,
) -> None:
    setup = real_claude_setup(tmp_path, standin, notebook=jp_root_dir / NOTEBOOK)
    setup.store_dir = store_dir  # the server's store
    in_thread = KernelThread()
    kernel = await in_thread(Kernel.start, setup)
    try:
        await in_thread(kernel.ok, "%load_ext jupyter_assistant")
        execution = kernel.execute("%assistant RUN_WRITE: notes.txt from the kernel", True)
        await in_thread(
            kernel.wait_for, execution, lambda e: bool(e.input_requests), 120, "the question"
        )
        [listed] = json_of(await api(jp_fetch, "sessions", params={"path": NOTEBOOK}))["sessions"]
        assert listed["status"] == "running"
        # The sidebar streaming the kernel's turn is told where the question is answered.
        reader = live_events(listed["id"])
        await reader.wait_for(
            lambda got: any("Answer it in the cell" in e["data"].get("message", "") for e in got)
        )
        assert "permission_request" not in [e["event"] for e in reader.events]
        # The question is in the partial reply the kernel saves; the sidebar cannot answer it.
        asked: list[dict[str, Any]] = []

        async def saved() -> bool:
            reply = json_of(await api(jp_fetch, "sessions", listed["id"]))["messages"][-1]
            asked[:] = reply.get("permissions") or []
            return bool(asked)

        await eventually(saved, message="the kernel never saved its question")
        assert asked[0]["decision"] is None
        request_id = asked[0]["request_id"]
        response = await api(
            jp_fetch, "sessions", listed["id"], "permissions", request_id, method="POST",
            body={"decision": "allow"},
        )  # fmt: skip
        assert response.code == 409
        assert "another process" in json_of(response)["message"]
        kernel.reply_input("y")
        await in_thread(kernel.finish, execution)
        assert status_of(execution) == "ok", execution.error_lines()
        await reader.wait_for(lambda got: got[-1]["event"] == "done")
        await reader.future  # the stream ends with the turn
        assert (jp_root_dir / "analysis" / "notes.txt").read_text() == "from the kernel\n"
        assert json.loads((await api(jp_fetch, "sessions", listed["id"])).body)["status"] == "idle"

        # Stopped from the sidebar while the cell asks: the cell gives its question up and ends.
        execution = kernel.execute("%assistant RUN_WRITE: other.txt stopped", True)
        await in_thread(
            kernel.wait_for, execution, lambda e: bool(e.input_requests), 120, "the question"
        )
        response = await api(jp_fetch, "sessions", listed["id"], "cancel", method="POST", body="{}")
        assert json_of(response) == {"cancelled": True}
        await in_thread(kernel.finish, execution)
        assert "the turn ended before an answer" in execution.stdout()
        assert any("The turn was cancelled" in line for line in execution.error_lines())
        assert not (jp_root_dir / "analysis" / "other.txt").exists()
    finally:
        await in_thread(kernel.shutdown)
        in_thread.close()


def test_answers_typed_into_the_prompt() -> None:
    assert parse_answer("y") == PermissionAnswer("allow")
    assert parse_answer(" Yes ") == PermissionAnswer("allow")
    assert parse_answer("s") == PermissionAnswer("allow", "session")
    assert parse_answer("n too risky") == PermissionAnswer("deny", message="too risky")
    assert parse_answer("n: later") == PermissionAnswer("deny", message="later")
    assert parse_answer("no") == PermissionAnswer("deny")
    assert parse_answer("") == PermissionAnswer("deny")  # nothing typed: the safe answer
    assert parse_answer("why?") == PermissionAnswer("deny", message="why?")


def test_the_cell_shows_the_question_then_its_outcome() -> None:
    view = TurnView()
    view.fold(1, {"type": "text", "text": "I will write it."})
    diff = "--- /dev/null\n+++ b/notes.txt\n@@ -0,0 +1 @@\n+hi"
    asked = {"type": "permission_request", "request_id": "r1", "tool_name": "Write"}
    view.fold(2, {**asked, "input": {"file_path": "/nb/notes.txt"}, "summary": diff})
    waiting = view.markdown()
    assert "> ❓ **Write** `/nb/notes.txt` — waiting for your answer" in waiting
    assert f"~~~~diff\n{diff}\n~~~~" in waiting
    plain_before = view.plain_body()
    answered = {"request_id": "r1", "decision": "deny", "scope": "once", "by": "user"}
    view.fold(3, {"type": "permission_answered", **answered, "message": "not now"})
    assert "— denied: not now" in view.markdown()
    assert "+hi" not in view.markdown()  # answered: the diff folds away
    assert view.plain_body().startswith(plain_before)  # a terminal only appends
    assert view.plain_body().endswith("[denied: not now]\n")
    timed_out = {**answered, "request_id": "r2", "by": "timeout", "message": None}
    view.fold(4, {**asked, "request_id": "r2", "input": {"command": "ls"}, "summary": "$ ls"})
    view.fold(5, {"type": "permission_answered", **timed_out})
    assert "— denied: nobody answered in time" in view.markdown()
