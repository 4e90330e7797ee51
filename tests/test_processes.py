"""Process groups, records, tree termination and orphan reaping, with real processes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from jupyter_assistant.models import new_id
from jupyter_assistant.processes import (
    MARKER_ENV,
    ProcessRecord,
    ProcessRegistry,
    find_tree,
    spawn,
    terminate_tree,
)

# A 3-level tree: leader -> child -> grandchild; each prints its pid. With IGNORE, all ignore
# SIGTERM; with ESCAPE, the grandchild leaves the process group (setsid) as daemons do.
TREE = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    level = int(sys.argv[1]); mode = sys.argv[2]; pidfile = sys.argv[3]
    if mode == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if mode == "escape" and level == 2:
        os.setsid()
    with open(pidfile, "a") as f:
        f.write(f"{os.getpid()}\\n")
    if level < 2:
        subprocess.Popen([sys.executable, __file__, str(level + 1), mode, pidfile])
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
    """
)


def write_tree_script(tmp_path: Path) -> Path:
    script = tmp_path / "tree.py"
    script.write_text(TREE)
    return script


async def start_tree(
    tmp_path: Path, mode: str, turn_id: str
) -> tuple[asyncio.subprocess.Process, list[int]]:
    script = write_tree_script(tmp_path)
    pidfile = tmp_path / f"pids-{mode}"
    proc = await spawn(
        [sys.executable, str(script), "0", mode, str(pidfile)],
        cwd=str(tmp_path),
        env=dict(os.environ),
        turn_id=turn_id,
        stdin=False,
    )
    deadline = time.monotonic() + 20
    pids: list[int] = []
    while time.monotonic() < deadline:
        if pidfile.exists():
            pids = [int(p) for p in pidfile.read_text().split()]
            if len(pids) == 3:
                break
        await asyncio.sleep(0.02)
    assert len(pids) == 3, "the tree did not start"
    return proc, pids


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def registry(tmp_path: Path) -> ProcessRegistry:
    return ProcessRegistry(tmp_path / "store")


async def test_spawn_uses_a_new_process_group_and_marks_the_turn(
    tmp_path: Path, registry: ProcessRegistry
) -> None:
    turn_id = new_id()
    proc, pids = await start_tree(tmp_path, "obey", turn_id)
    try:
        assert os.getpgid(proc.pid) == proc.pid != os.getpgid(0)
        assert psutil.Process(pids[2]).environ()[MARKER_ENV] == turn_id
    finally:
        rec = registry.new_record(new_id(), turn_id, proc.pid)
        registry.write(rec)
        terminate_tree(rec, 1.0)
        await proc.wait()


@pytest.mark.parametrize("mode", ["obey", "ignore", "escape"])
async def test_terminate_tree_leaves_no_process(
    tmp_path: Path, registry: ProcessRegistry, mode: str
) -> None:
    turn_id = new_id()
    session_id = new_id()
    proc, pids = await start_tree(tmp_path, mode, turn_id)
    rec = registry.new_record(session_id, turn_id, proc.pid)
    registry.write(rec)
    assert registry.read(session_id) == rec
    grace = 0.5
    started = time.monotonic()
    result = await asyncio.to_thread(terminate_tree, rec, grace)
    elapsed = time.monotonic() - started
    await proc.wait()
    assert [pid for pid in pids if alive(pid)] == []
    assert result["terminated"] == 3
    if mode == "ignore":
        assert result["killed"] >= 1
        assert elapsed >= grace  # SIGKILL only after the grace period
    else:
        assert result["killed"] == 0


def test_a_reused_pid_is_never_signalled(tmp_path: Path, registry: ProcessRegistry) -> None:
    # A record whose pid now belongs to another process (different start time, no marker).
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        fake = ProcessRecord(
            session_id=new_id(),
            turn_id=new_id(),
            pid=victim.pid,
            pgid=victim.pid,
            create_time=psutil.Process(victim.pid).create_time() - 100.0,
            owner_pid=os.getpid(),
            owner_create_time=psutil.Process().create_time(),
        )
        assert find_tree(fake) == []
        terminate_tree(fake, 0.2)
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_claim_record_and_cancel_flags(registry: ProcessRegistry) -> None:
    session_id, turn_id = new_id(), new_id()
    assert registry.read(session_id) is None
    assert not registry.is_running(session_id)
    claim = registry.claim(session_id, turn_id)
    assert claim.pid == 0
    assert registry.is_running(session_id)
    assert registry.running_sessions() == {session_id}
    assert not registry.cancel_requested(session_id, turn_id)
    registry.request_cancel(session_id, turn_id)
    assert registry.cancel_requested(session_id, turn_id)
    assert not registry.cancel_requested(session_id, new_id())
    registry.clear(session_id, new_id())  # another turn's clear must not remove ours
    assert registry.read(session_id) is not None
    registry.clear(session_id, turn_id)
    assert registry.read(session_id) is None
    assert not registry.cancel_requested(session_id, turn_id)


def test_records_of_dead_owners_are_orphans(tmp_path: Path, registry: ProcessRegistry) -> None:
    owner = subprocess.Popen([sys.executable, "-c", "pass"])
    owner.wait()
    dead = ProcessRecord(
        session_id=new_id(),
        turn_id=new_id(),
        pid=0,
        pgid=0,
        create_time=time.time(),
        owner_pid=owner.pid,
        owner_create_time=time.time() - 5,
    )
    registry.write(dead)
    mine = registry.claim(new_id(), new_id())
    assert [rec.session_id for rec in registry.orphans()] == [dead.session_id]
    assert not registry.is_running(dead.session_id)
    assert registry.is_running(mine.session_id)


def test_an_unreadable_record_is_ignored(registry: ProcessRegistry) -> None:
    session_id = new_id()
    (registry.dir / f"{session_id}.json").write_text(json.dumps({"nonsense": 1}))
    assert registry.read(session_id) is None
    assert registry.all() == []


def test_stop_at_exit_stops_a_provider_spawned_but_not_yet_recorded(tmp_path: Path) -> None:
    """The server can be interrupted between the spawn and the record's write (a loaded
    machine): the last-resort stop finds its providers from the OS, by their marker."""
    from jupyter_assistant.processes import spawn, spawned_providers
    from jupyter_assistant.providers import ProviderRegistry
    from jupyter_assistant.service import AssistantService, ServiceSettings

    service = AssistantService(ServiceSettings(store_dir=tmp_path / "store"), ProviderRegistry())
    service.settings.runner.cancel_grace_seconds = 0.5

    async def scenario() -> int | None:
        proc = await spawn(
            [sys.executable, "-c", "import signal, time; signal.signal(15, 1); time.sleep(60)"],
            cwd=str(tmp_path),
            env=dict(os.environ),
            turn_id=new_id(),
            stdin=False,
        )
        assert proc.pid in spawned_providers()
        assert service.registry.all() == []  # nothing recorded
        service.stop_now()
        return await asyncio.wait_for(proc.wait(), 10)

    returncode = asyncio.run(scenario())
    assert returncode is not None and returncode < 0  # stopped by a signal, not left running
