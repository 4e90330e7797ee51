"""Warm providers (turns/warm.py) with the REAL Claude Code CLI against the local Messages-API
stand-in, through the real server: a conversation's CLI kept running between its turns."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest

from jupyter_assistant.processes import MARKER_ENV, spawned_providers

from .fakes.anthropic_standin import AnthropicStandIn
from .helpers import (
    answer_permission,
    api,
    create_session,
    events,
    eventually,
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
from .test_follow_notebook import contents
from .test_notebook_tools_claude import result_text, tool_call
from .test_real_claude import find_real_claude

pytestmark = pytest.mark.usefixtures("notebook_dir")


@pytest.fixture(scope="module")
def standin() -> Iterator[AnthropicStandIn]:
    with AnthropicStandIn() as server:
        yield server


@pytest.fixture
def warm_config() -> dict[str, Any]:
    return {}


@pytest.fixture
def assistant_config(warm_config: dict[str, Any]) -> dict[str, Any]:
    return {"warm_agents": True, **warm_config}


@pytest.fixture
def claude_settings(standin: AnthropicStandIn, tmp_path: Path) -> dict[str, Any]:
    return {
        "command": [find_real_claude()],
        "env": standin.cli_env(tmp_path),
        "allowed_tools": ["Bash(sleep:*)"],
    }


@pytest.fixture
def jp_server_config(
    jp_server_config: dict[str, Any], claude_settings: dict[str, Any]
) -> dict[str, Any]:
    return {**jp_server_config, "ClaudeCodeProvider": claude_settings}


@pytest.fixture
def extension(jp_serverapp: Any) -> Any:
    return jp_serverapp.web_app.settings["jupyter_assistant"]


def parked(extension: Any) -> dict[str, int]:
    """Session id -> pid of the warm processes parked between turns."""
    pool = extension.service.runner.warm
    return {warm.session_id: warm.pid for warm in pool.parked()}


def sent_text(standin: AnthropicStandIn) -> str:
    return json.dumps(standin.main_bodies[-1].get("messages", []))


def tree_of(pid: int) -> list[int]:
    """The process and every process carrying its turn marker (its tools, which may have left
    its process group)."""
    marker = psutil.Process(pid).environ()[MARKER_ENV]
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARKER_ENV) == marker:
                found.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


async def done_turn(jp_fetch: Any, sid: str, content: str, **extra: Any) -> list[dict[str, Any]]:
    stream = await run_turn(jp_fetch, sid, content, **extra)
    assert types(stream)[-1] == "done", stream[-1]
    return stream


async def test_the_second_turn_reuses_the_process_and_the_model_gets_the_conversation(
    jp_fetch: Any, extension: Any, standin: AnthropicStandIn, store_dir: Path
) -> None:
    sid = (await create_session(jp_fetch))["id"]
    first = await done_turn(jp_fetch, sid, "Say hi please")
    pid = parked(extension)[sid]
    # Parked, the session is idle: no turn record, a warm record the reaper would find.
    assert json_of(await api(jp_fetch, "sessions", sid))["status"] == "idle"
    assert not (store_dir / "processes" / f"{sid}.json").exists()
    assert json.loads((store_dir / "processes" / "warm" / f"{sid}.json").read_text())["pid"] == pid

    second = await done_turn(jp_fetch, sid, "And again")
    assert parked(extension)[sid] == pid
    assert text_of(second) == "Hello from the stand-in. You said: And again"
    conversation = first[-1]["data"]["provider_session_id"]
    assert second[-1]["data"]["provider_session_id"] == conversation
    sent = sent_text(standin)
    assert "Say hi please" in sent
    assert "Hello from the stand-in. You said: Say hi please" in sent
    assert "And again" in sent
    # The system prompt (the notebook's name) is still the process's.
    assert "analysis/q3.ipynb" in json.dumps(standin.main_bodies[-1]["system"])
    stored = json_of(await api(jp_fetch, "sessions", sid))
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"] * 2
    assert stored["provider_session_id"] == conversation


async def test_a_reused_process_asks_about_a_tool_as_a_cold_one_does(
    jp_fetch: Any, extension: Any, live_events: Any, jp_root_dir: Path
) -> None:
    sid = (await create_session(jp_fetch))["id"]
    await done_turn(jp_fetch, sid, "Hello")
    pid = parked(extension)[sid]
    await post_message(jp_fetch, sid, "RUN_WRITE: notes.txt written by the warm CLI")
    reader = live_events(sid)
    request = await permission_asked(reader)
    response = await answer_permission(jp_fetch, sid, request["request_id"], decision="allow")
    assert response.code == 200, response.body
    stream = await turn_ended(reader)
    assert types(stream)[-1] == "done", stream[-1]
    assert parked(extension)[sid] == pid
    written = await asyncio.to_thread((jp_root_dir / "analysis" / "notes.txt").read_text)
    assert written.strip() == "written by the warm CLI"


async def test_a_killed_warm_process_is_replaced_by_a_resumed_cold_start(
    jp_fetch: Any, extension: Any, standin: AnthropicStandIn, claude_settings: dict[str, Any]
) -> None:
    sid = (await create_session(jp_fetch))["id"]
    first = await done_turn(jp_fetch, sid, "Remember KIWI")
    pid = parked(extension)[sid]
    # The CLI writes its transcript after it printed the result: a kill before that loses
    # the conversation (the next turn then says so and starts a new one).
    conversation = first[-1]["data"]["provider_session_id"]
    config = Path(claude_settings["env"]["CLAUDE_CONFIG_DIR"])

    def transcript_written() -> bool:
        return any(
            "You said: Remember KIWI" in path.read_text()
            for path in config.glob(f"projects/*/{conversation}.jsonl")
        )

    await wait_until(transcript_written, message="the CLI wrote no transcript")
    psutil.Process(pid).kill()
    await wait_until(lambda: pids_alive([pid]) == [], message="the warm CLI did not die")

    stream = await done_turn(jp_fetch, sid, "What did I say?")
    notices = [e["data"] for e in stream if e["event"] == "notice"]
    assert notices == []  # invisible, but for the time
    assert parked(extension)[sid] != pid
    assert "Remember KIWI" in sent_text(standin)  # resumed


async def test_a_process_whose_settings_changed_is_restarted(
    jp_fetch: Any, extension: Any, standin: AnthropicStandIn
) -> None:
    sid = (await create_session(jp_fetch))["id"]
    await done_turn(jp_fetch, sid, "Remember PLUM")
    pid = parked(extension)[sid]
    extension.service.providers.get("claude").permission_mode = "acceptEdits"

    await done_turn(jp_fetch, sid, "And now?")
    assert parked(extension)[sid] != pid
    await wait_until(lambda: pids_alive([pid]) == [], message="the old CLI was not ended")
    assert "Remember PLUM" in sent_text(standin)
    cmdline = psutil.Process(parked(extension)[sid]).cmdline()
    assert cmdline[cmdline.index("--permission-mode") + 1] == "acceptEdits"


async def test_a_turn_with_other_notebook_context_takes_the_same_process(
    jp_fetch: Any, extension: Any, standin: AnthropicStandIn
) -> None:
    sid = (await create_session(jp_fetch))["id"]
    await done_turn(jp_fetch, sid, "Hello")
    pid = parked(extension)[sid]
    context = {"cells": [{"cell_type": "code", "source": "df = load_FIG()"}]}
    await done_turn(jp_fetch, sid, "Look at this", context=context)
    context = {"cells": [{"cell_type": "code", "source": "df = load_PEAR()"}]}
    await done_turn(jp_fetch, sid, "And this", context=context)
    # Each message's context goes with it, not into the system prompt (which a running CLI
    # cannot change): the model gets each in its own message, on the same process.
    assert parked(extension)[sid] == pid
    body = standin.main_bodies[-1]
    assert "load_FIG" not in json.dumps(body["system"])
    assert "load_PEAR" not in json.dumps(body["system"])
    messages = json.dumps(body["messages"])
    assert messages.index("load_FIG") < messages.index("Look at this")
    assert messages.index("load_PEAR") < messages.index("And this")


class TestBounds:
    @pytest.fixture
    def warm_config(self) -> dict[str, Any]:
        return {"max_warm_processes": 1, "warm_idle_seconds": 2.0}

    async def test_the_least_recently_used_process_ends_over_the_cap(
        self, jp_fetch: Any, extension: Any
    ) -> None:
        one = (await create_session(jp_fetch))["id"]
        two = (await create_session(jp_fetch))["id"]
        await done_turn(jp_fetch, one, "First")
        first_pid = parked(extension)[one]
        await done_turn(jp_fetch, two, "Second")
        assert list(parked(extension)) == [two]
        await wait_until(lambda: pids_alive([first_pid]) == [], message="the LRU CLI lives on")

    async def test_a_prewarm_counts_towards_the_cap(self, jp_fetch: Any, extension: Any) -> None:
        one = (await create_session(jp_fetch))["id"]
        two = (await create_session(jp_fetch))["id"]
        await done_turn(jp_fetch, one, "First")
        first_pid = parked(extension)[one]
        assert await prewarm(jp_fetch, two) == "started"
        await wait_until(lambda: list(parked(extension)) == [two], message="not pre-warmed")
        await wait_until(lambda: pids_alive([first_pid]) == [], message="over the cap")

    async def test_an_idle_process_ends_after_the_idle_timeout(
        self, jp_fetch: Any, extension: Any, store_dir: Path
    ) -> None:
        sid = (await create_session(jp_fetch))["id"]
        await done_turn(jp_fetch, sid, "Hello")
        pid = parked(extension)[sid]
        await wait_until(lambda: pids_alive([pid]) == [], message="the idle CLI lives on")
        await wait_until(lambda: parked(extension) == {})
        await wait_until(lambda: not (store_dir / "processes" / "warm" / f"{sid}.json").exists())


async def test_cancel_ends_the_whole_tree_and_the_next_turn_starts_cold(
    jp_fetch: Any, extension: Any, standin: AnthropicStandIn
) -> None:
    sid = (await create_session(jp_fetch))["id"]
    await done_turn(jp_fetch, sid, "Hello")
    pid = parked(extension)[sid]
    await post_message(jp_fetch, sid, "RUN_BASH: sleep 300")

    def sleeping() -> bool:
        for found in tree_of(pid):
            try:
                if "sleep" in psutil.Process(found).name():
                    return True
            except psutil.Error:
                continue
        return False

    await wait_until(sleeping, timeout=60, message="the warm CLI never started `sleep 300`")
    tree = tree_of(pid)
    assert pid in tree and len(tree) >= 2
    response = await api(jp_fetch, "sessions", sid, "cancel", method="POST", body="{}")
    assert json_of(response) == {"cancelled": True}
    assert pids_alive(tree) == []
    assert types(await events(jp_fetch, sid))[-1] == "cancelled"
    assert sid not in parked(extension)

    await done_turn(jp_fetch, sid, "After the stop")
    assert parked(extension)[sid] != pid
    assert "Hello" in sent_text(standin)


async def test_shutdown_and_delete_leave_no_process(
    jp_fetch: Any, extension: Any, store_dir: Path
) -> None:
    one = (await create_session(jp_fetch))["id"]
    two = (await create_session(jp_fetch))["id"]
    await done_turn(jp_fetch, one, "Hello")
    await done_turn(jp_fetch, two, "Hello")
    pids = parked(extension)
    response = await api(jp_fetch, "sessions", one, method="DELETE")
    assert response.code == 204
    assert pids_alive([pids[one]]) == []
    assert list(parked(extension)) == [two]

    await extension.service.stop()  # what the server's shutdown runs (stop_extension)
    assert pids_alive([pids[two]]) == []
    assert parked(extension) == {}
    assert list((store_dir / "processes" / "warm").glob("*.json")) == []


async def test_a_renamed_notebook_ends_its_warm_process(
    jp_fetch: Any, extension: Any, jp_root_dir: Path
) -> None:
    sid = (await create_session(jp_fetch))["id"]
    await done_turn(jp_fetch, sid, "Hello")
    pid = parked(extension)[sid]
    await contents(jp_fetch, "analysis/q3.ipynb", "PATCH", {"path": "q3-moved.ipynb"})
    await wait_until(lambda: pids_alive([pid]) == [], message="the CLI of the old place lives on")

    async def moved() -> bool:
        return bool(json_of(await api(jp_fetch, "sessions", sid))["path"] == "q3-moved.ipynb")

    await eventually(moved)
    await done_turn(jp_fetch, sid, "Where are we?")
    new_pid = parked(extension)[sid]
    assert psutil.Process(new_pid).cwd() == str(await asyncio.to_thread(jp_root_dir.resolve))


async def test_a_renamed_notebook_ends_the_agent_prewarmed_for_its_first_conversation(
    jp_fetch: Any, extension: Any
) -> None:
    body = {"path": "analysis/q3.ipynb"}
    assert json_of(await api(jp_fetch, "prewarm", method="POST", body=body))["prewarm"] == "started"
    await wait_until(lambda: len(parked(extension)) == 1, message="no pre-warmed CLI was parked")
    ((reserved, pid),) = parked(extension).items()
    await contents(jp_fetch, "analysis/q3.ipynb", "PATCH", {"path": "q3-moved.ipynb"})
    await wait_until(lambda: pids_alive([pid]) == [], message="the CLI of the old place lives on")
    # The notebook's first conversation, at its new place, is not the one that waited there.
    assert (await create_session(jp_fetch, path="q3-moved.ipynb"))["id"] != reserved


async def test_the_reaper_ends_the_warm_process_of_a_dead_server(
    jp_fetch: Any, extension: Any, store_dir: Path
) -> None:
    sid = (await create_session(jp_fetch))["id"]
    await done_turn(jp_fetch, sid, "Hello")
    pid = parked(extension)[sid]
    record = store_dir / "processes" / "warm" / f"{sid}.json"
    data = json.loads(record.read_text())
    # As a server that was killed would leave it: an owner that is gone.
    data["owner_pid"], data["owner_create_time"] = 999_999_999, 1.0
    record.write_text(json.dumps(data))
    assert await extension.service.reap_orphans() == 1
    assert pids_alive([pid]) == []
    assert not record.exists()


async def test_a_server_start_reaps_warm_processes_a_killed_server_left(
    extension: Any, store_dir: Path
) -> None:
    # What a server killed with SIGKILL leaves: a warm CLI (here a stand-in process carrying a
    # turn marker) and its record, with no turn record at all.
    import uuid

    marker = str(uuid.uuid4())
    left = await asyncio.create_subprocess_exec(
        "sleep", "300", env={"PATH": "/usr/bin:/bin", MARKER_ENV: marker}
    )
    try:
        sid = str(uuid.uuid4())
        record = {
            "session_id": sid,
            "turn_id": marker,
            "pid": left.pid,
            "pgid": left.pid,
            "create_time": psutil.Process(left.pid).create_time(),
            "owner_pid": 999_999_999,
            "owner_create_time": 1.0,
            "marker": marker,
        }
        warm_dir = store_dir / "processes" / "warm"
        warm_dir.mkdir(parents=True, exist_ok=True)
        (warm_dir / f"{sid}.json").write_text(json.dumps(record))
        extension._reap_if_needed()  # what the extension's start runs
        await extension._reaper
        await asyncio.wait_for(left.wait(), 30)  # ended by the reaper
        assert not (warm_dir / f"{sid}.json").exists()
    finally:
        if left.returncode is None:
            left.kill()
            await left.wait()


# -- pre-warm: the sidebar starts the CLI before the first question ---------------------------


async def prewarm(jp_fetch: Any, sid: str) -> str:
    response = await api(jp_fetch, "sessions", sid, "prewarm", method="POST", body="")
    return str(json_of(response)["prewarm"])


async def test_a_prewarmed_cli_takes_the_first_turn_with_its_notebook_tools(
    jp_fetch: Any, extension: Any, standin: AnthropicStandIn, store_dir: Path, jp_root_dir: Path
) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("total = 41 + 1", id="first-cell")]
    nbformat.write(nb, jp_root_dir / "analysis" / "q3.ipynb")
    sid = (await create_session(jp_fetch))["id"]
    asked = len(standin.main_bodies)
    assert await prewarm(jp_fetch, sid) == "started"
    assert await prewarm(jp_fetch, sid) == "warm"  # starting already: not a second process
    await wait_until(lambda: sid in parked(extension), message="no pre-warmed CLI was parked")
    pid = parked(extension)[sid]
    # Ready once the CLI has listed the notebook tools (its grant ends then).
    await wait_until(lambda: not extension.service.runner.prewarms.running(sid))
    assert parked(extension)[sid] == pid
    assert await prewarm(jp_fetch, sid) == "warm"
    # Waiting, the session is idle (no turn record) and no model was asked anything.
    assert json_of(await api(jp_fetch, "sessions", sid))["status"] == "idle"
    assert not (store_dir / "processes" / f"{sid}.json").exists()
    assert json.loads((store_dir / "processes" / "warm" / f"{sid}.json").read_text())["pid"] == pid
    assert len(standin.main_bodies) == asked

    # The first turn takes it, and the CLI connected to the notebook tools while it waited.
    stream = await done_turn(jp_fetch, sid, tool_call("read_notebook"))
    assert parked(extension)[sid] == pid
    is_error, text = result_text(standin)
    assert not is_error, text
    assert json.loads(text)["cells"][0]["id"] == "first-cell"
    assert "analysis/q3.ipynb" in json.dumps(standin.main_bodies[-1]["system"])
    assert stream[-1]["data"]["provider_session_id"]
    await done_turn(jp_fetch, sid, "And again")
    assert parked(extension)[sid] == pid


async def test_a_notebook_with_no_conversation_gets_its_agent_before_the_first_message(
    jp_fetch: Any, extension: Any, standin: AnthropicStandIn
) -> None:
    async def prewarm_new() -> str:
        body = {"path": "analysis/q3.ipynb"}
        return str(json_of(await api(jp_fetch, "prewarm", method="POST", body=body))["prewarm"])

    assert await prewarm_new() == "started"
    assert await prewarm_new() == "warm"  # one agent per notebook's next conversation
    await wait_until(lambda: len(parked(extension)) == 1, message="no pre-warmed CLI was parked")
    ((reserved, pid),) = parked(extension).items()
    # Nothing is stored until the conversation is made; then it is the one the agent waits for.
    assert json_of(await api(jp_fetch, "sessions"))["sessions"] == []
    sid = (await create_session(jp_fetch))["id"]
    assert sid == reserved
    stream = await done_turn(jp_fetch, sid, tool_call("read_notebook"))
    assert parked(extension)[sid] == pid
    is_error, text = result_text(standin)
    assert not is_error, text  # its notebook tools work
    assert stream[-1]["data"]["provider_session_id"]
    # The next new conversation of the notebook is a new one again.
    assert (await create_session(jp_fetch))["id"] != sid


async def test_a_first_conversation_with_another_provider_ends_the_prewarmed_agent(
    jp_fetch: Any, extension: Any
) -> None:
    body = {"path": "analysis/q3.ipynb"}
    assert json_of(await api(jp_fetch, "prewarm", method="POST", body=body))["prewarm"] == "started"
    await wait_until(lambda: len(parked(extension)) == 1, message="no pre-warmed CLI was parked")
    ((reserved, pid),) = parked(extension).items()
    # The user picks another provider for the notebook's first conversation: the default
    # provider's agent would wait unused until its idle timeout.
    sid = (await create_session(jp_fetch, provider="codex"))["id"]
    assert sid != reserved
    await wait_until(lambda: not psutil.pid_exists(pid), message="the unused agent lives on")
    assert parked(extension) == {}


async def test_a_question_sent_while_the_cli_starts_takes_that_cli(
    jp_fetch: Any, extension: Any
) -> None:
    sid = (await create_session(jp_fetch))["id"]
    before = set(spawned_providers())
    assert await prewarm(jp_fetch, sid) == "started"
    stream = await done_turn(jp_fetch, sid, "Quick question")  # at once: the CLI is starting
    assert text_of(stream) == "Hello from the stand-in. You said: Quick question"
    assert set(spawned_providers()) - before == {parked(extension)[sid]}  # one CLI, not two


async def test_a_prewarm_resumes_the_conversation(
    jp_fetch: Any, extension: Any, standin: AnthropicStandIn
) -> None:
    sid = (await create_session(jp_fetch))["id"]
    first = await done_turn(jp_fetch, sid, "Remember PLUM please")
    old = parked(extension)[sid]
    await extension.service.runner.end_warm(sid)  # as its idle timeout would
    assert pids_alive([old]) == []
    assert await prewarm(jp_fetch, sid) == "started"
    await wait_until(lambda: sid in parked(extension), message="no pre-warmed CLI was parked")
    pid = parked(extension)[sid]
    assert "--resume=" + first[-1]["data"]["provider_session_id"] in psutil.Process(pid).cmdline()
    second = await done_turn(jp_fetch, sid, "What did I ask?")
    assert parked(extension)[sid] == pid
    assert second[-1]["data"]["provider_session_id"] == first[-1]["data"]["provider_session_id"]
    assert "Remember PLUM" in sent_text(standin)


async def test_a_session_deleted_while_its_cli_starts_leaves_no_process(
    jp_fetch: Any, extension: Any, store_dir: Path
) -> None:
    sid = (await create_session(jp_fetch))["id"]
    before = set(spawned_providers())
    assert await prewarm(jp_fetch, sid) == "started"
    await wait_until(lambda: set(spawned_providers()) - before, message="the CLI did not start")
    started = sorted(set(spawned_providers()) - before)
    response = await api(jp_fetch, "sessions", sid, method="DELETE")
    assert response.code == 204
    assert pids_alive(started) == []
    assert not extension.service.runner.prewarms.running(sid)
    assert parked(extension) == {}
    assert list((store_dir / "processes" / "warm").glob("*.json")) == []


async def test_a_prewarm_of_an_unknown_session_is_a_404(jp_fetch: Any) -> None:
    response = await api(jp_fetch, "sessions", "0" * 32, "prewarm", method="POST", body="")
    assert response.code == 404


class TestPrewarmOff:
    @pytest.fixture
    def warm_config(self) -> dict[str, Any]:
        return {"prewarm": False}

    async def test_no_process_starts(self, jp_fetch: Any, extension: Any) -> None:
        sid = (await create_session(jp_fetch))["id"]
        assert await prewarm(jp_fetch, sid) == "off"
        assert parked(extension) == {} and not extension.service.runner.prewarms.running(sid)


class TestTheFakeCli:
    """The fake CLI (tests/fakes/claude) takes a kept process's next turn too, so that the
    other tests can run with warm_agents on."""

    @pytest.fixture
    def claude_settings(self, claude_command: list[str]) -> dict[str, Any]:
        return {"command": claude_command}

    async def test_a_turn_takes_over_a_prewarmed_cli_that_has_not_listed_the_tools(
        self, jp_fetch: Any, extension: Any
    ) -> None:
        # The fake CLI never connects to the notebook tools: the pre-warm waits for that while
        # its process is parked; a question meanwhile takes the process over at once.
        sid = (await create_session(jp_fetch))["id"]
        assert await prewarm(jp_fetch, sid) == "started"
        await wait_until(lambda: sid in parked(extension), message="no pre-warmed CLI was parked")
        pid = parked(extension)[sid]
        assert extension.service.runner.prewarms.running(sid)  # still waiting for the listing
        stream = await done_turn(jp_fetch, sid, "One")
        assert text_of(stream) == "Fake Claude reply. You said: One"
        assert parked(extension)[sid] == pid
        assert not extension.service.runner.prewarms.running(sid)

    async def test_a_second_turn_on_the_same_fake_process(
        self, jp_fetch: Any, extension: Any
    ) -> None:
        sid = (await create_session(jp_fetch))["id"]
        first = await done_turn(jp_fetch, sid, "One")
        pid = parked(extension)[sid]
        second = await done_turn(jp_fetch, sid, "Two")
        assert parked(extension)[sid] == pid
        conversation = first[-1]["data"]["provider_session_id"]
        assert text_of(second) == f"Fake Claude reply. You said: Two resumed:{conversation}"

    async def test_a_kept_processs_turn_costs_its_own_share(
        self, jp_fetch: Any, extension: Any
    ) -> None:
        # The CLI's total_cost_usd is the process's running total; its usage the turn's own.
        sid = (await create_session(jp_fetch))["id"]
        costs = []
        for prompt in ("One", "Two, a little longer", "Three"):
            stream = await done_turn(jp_fetch, sid, prompt)
            (usage,) = [e["data"] for e in stream if e["event"] == "usage"]
            own = usage["input_tokens"] * 5e-6 + usage["output_tokens"] * 25e-6
            assert usage["cost_usd"] == pytest.approx(own), usage  # not the running total
            costs.append(usage["cost_usd"])
        assert len(set(parked(extension).values())) == 1
        stored = json_of(await api(jp_fetch, "sessions", sid))
        assert stored["usage"]["cost_usd"] == pytest.approx(sum(costs))
