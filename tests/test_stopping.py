"""One stop sequence, run by the process that owns the turn, whoever asks.

A turn owned by another process (a kernel running ``%%assistant``) stopped from here gets the
same graceful stop as one stopped where it runs: the provider is asked to interrupt itself
through its protocol before any signal. If the owner does not act (it is frozen), the asker
stops the provider's process tree itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jupyter_assistant.processes import MARKER_ENV, identity_alive
from jupyter_assistant.providers import ProviderRegistry
from jupyter_assistant.service import AssistantService, ServiceSettings
from jupyter_assistant.turns import RunnerSettings

from .conftest import FAKE_CLAUDE
from .helpers import describe_pids, engine_with_fake_claude, pids_alive

OTHER_PROCESS_TURN = Path(__file__).parent / "browser" / "other_process_turn.py"


def control_messages(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


async def until(check: Any, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    root = tmp_path / "root"
    root.mkdir()
    (root / "nb.ipynb").write_text("{}")
    store = tmp_path / "store"
    log = tmp_path / "control.jsonl"
    monkeypatch.setenv("FAKE_CONTROL_LOG", str(log))
    monkeypatch.setenv("FAKE_COUNT", "400")
    monkeypatch.setenv("FAKE_DELAY", "0.05")
    service = AssistantService(
        ServiceSettings(
            store_dir=store, root_dir=root, runner=RunnerSettings(cancel_grace_seconds=2.0)
        ),
        ProviderRegistry(),
    )
    return {"root": root, "store": store, "log": log, "service": service}


def start_other_process_turn(setup: dict[str, Any], session_id: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    argv = [
        sys.executable,
        str(OTHER_PROCESS_TURN),
        str(setup["store"]),
        str(setup["root"]),
        session_id,
        str(FAKE_CLAUDE),
        "scenario:slow",
    ]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)


async def owner_streaming(setup: dict[str, Any], session_id: str) -> subprocess.Popen[str]:
    """Another process running a turn of ``session_id``, once its CLI has started."""
    owner = start_other_process_turn(setup, session_id)
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline().startswith("STARTED")
        await until(lambda: bool(control_messages(setup["log"])))
    except BaseException:
        owner.kill()
        raise
    return owner


def test_a_stop_from_another_process_interrupts_the_provider_gracefully(
    setup: dict[str, Any],
) -> None:
    service: AssistantService = setup["service"]

    async def scenario() -> None:
        session = await service.create_session("nb.ipynb")
        owner = await owner_streaming(setup, session.id)
        try:
            assert owner.stdout is not None
            assert service.runner.is_running(session.id)
            assert await service.cancel(session.id)
            # The owner ran the stop: the provider was asked to interrupt itself first.
            requests = [m.get("request", {}) for m in control_messages(setup["log"])]
            assert {"subtype": "interrupt"} in [{"subtype": r.get("subtype")} for r in requests]
            assert owner.stdout.readline().split() == ["FINISHED", "cancelled"]
            assert await asyncio.to_thread(owner.wait, 30) == 0
        finally:
            owner.kill()
        stored = await service.get_session(session.id)
        assert stored.messages[-1].status == "cancelled"
        assert not service.runner.is_running(session.id)

    asyncio.run(scenario())


def test_a_frozen_owner_is_stopped_for_by_the_asker(setup: dict[str, Any]) -> None:
    """The fallback: an owner that does not act within its grace period (here: stopped with
    SIGSTOP) has its provider's process tree stopped by the asker."""
    service: AssistantService = setup["service"]

    async def scenario() -> None:
        session = await service.create_session("nb.ipynb")
        owner = await owner_streaming(setup, session.id)
        try:
            assert owner.stdout is not None
            record = service.registry.read(session.id)
            assert record is not None
            os.kill(owner.pid, signal.SIGSTOP)
            assert await service.cancel(session.id)
            assert not identity_alive(record.pid, record.create_time), "the provider outlived it"
            os.kill(owner.pid, signal.SIGCONT)
            # The owner, thawed, finds its provider gone and the stop asked: the turn is
            # cancelled, not failed.
            assert owner.stdout.readline().split() == ["FINISHED", "cancelled"]
        finally:
            os.kill(owner.pid, signal.SIGCONT)
            owner.kill()
            owner.wait(30)
        stored = await service.get_session(session.id)
        assert stored.messages[-1].status == "cancelled"

    asyncio.run(scenario())


def turn_processes(turn_ids: set[str]) -> list[str]:
    """Live processes that carry the marker of one of ``turn_ids`` (a warm provider and its
    children carry the marker of the turn that started it)."""
    import psutil

    left = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARKER_ENV) in turn_ids and proc.status() != "zombie":
                left.append(f"{proc.pid} {' '.join(proc.cmdline())[-120:]}")
        except psutil.Error:
            continue
    return left


async def until_published_end(turn: Any) -> None:
    """Read the turn's events up to its end, as the sidebar and a cell do."""
    seen = 0
    while (batch := await turn.next_batch(seen)) is not None:
        seen = batch[-1][0]


def test_a_stop_at_any_moment_of_a_turn_leaves_no_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stop (the sidebar's, a cell's interrupt: the same call) at moments spread over a turn
    whose CLI starts a child and a grandchild: before the spawn, while the tree starts, while
    it streams; on a cold start and on a warm process. Once the turn's end is published, no
    process of it is left (issue 19: one was, once, after a kernel interrupt under load)."""
    # The CLI leaves its children when interrupted: only the stop sequence can end them.
    monkeypatch.setenv("FAKE_TREE_LEAVES_CHILDREN", "1")
    service = engine_with_fake_claude(tmp_path)
    moments = random.Random(19)  # fixed: a failure names its moment and can be replayed

    async def scenario() -> None:
        session = await service.create_session("nb.ipynb")
        started: set[str] = set()
        try:
            for i in range(8):
                warm = i % 2 == 1
                if warm:  # a finished turn first: the next one runs on its kept process
                    done = await service.post_message(session.id, "scenario:reply warm")
                    started.add(done.id)
                    await until_published_end(done)
                    assert service.runner.warm is not None
                    assert service.runner.warm.holds(session.id)
                turn = await service.post_message(session.id, f"scenario:tree {i}")
                started.add(turn.id)
                delay = moments.uniform(0.0, 1.0)
                await asyncio.sleep(delay)
                await service.cancel(session.id)
                await until_published_end(turn)
                left = await asyncio.to_thread(turn_processes, started)
                assert left == [], f"stop {i} ({'warm' if warm else 'cold'}) at {delay:.3f} s"
        finally:
            await service.runner.shutdown()

    asyncio.run(scenario())


def test_a_message_to_a_session_whose_owner_died_mid_turn_first_stops_what_it_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel (or server) killed mid-turn leaves its CLI running and its process record; the
    reaper comes by only every reap_interval_seconds. A message sent before then stops that CLI
    and ends its turn as interrupted before its own turn starts: clearing the dead owner's
    record alone left the CLI running with nothing left to find it."""
    pid_file = tmp_path / "pids.json"
    monkeypatch.setenv("FAKE_PID_FILE", str(pid_file))
    service = engine_with_fake_claude(tmp_path)

    async def scenario() -> None:
        session = await service.create_session("nb.ipynb")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
        argv = [sys.executable, str(OTHER_PROCESS_TURN), str(tmp_path / "store")]
        argv += [str(tmp_path / "root"), session.id, str(FAKE_CLAUDE), "scenario:tree"]
        owner = await asyncio.to_thread(
            lambda: subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
        )
        try:
            assert owner.stdout is not None
            assert (await asyncio.to_thread(owner.stdout.readline)).startswith("STARTED")
            await until(pid_file.exists)
        finally:
            owner.kill()  # mid-turn, no clean-up possible
            owner.wait()
        pids = json.loads(pid_file.read_text())
        assert pids_alive(pids) == pids  # the CLI's tree outlived its owner
        try:
            turn = await service.post_message(session.id, "scenario:reply after the crash")
            await until_published_end(turn)
            assert turn.events[-1]["type"] == "done"
            assert pids_alive(pids) == [], describe_pids(pids)
            stored = await service.get_session(session.id)
            replies = [m for m in stored.messages if m.role == "assistant"]
            assert [m.status for m in replies] == ["interrupted", "complete"]
            assert replies[0].error is not None and replies[0].error.code == "interrupted"
        finally:
            await service.runner.shutdown()
            for pid in pids_alive(pids):
                os.kill(pid, signal.SIGKILL)

    asyncio.run(scenario())
