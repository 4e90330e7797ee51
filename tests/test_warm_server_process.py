"""Warm providers and a real `jupyter server` process: nothing a server kept running between
turns outlives it, however it stops (its clean shutdown, SIGINT without a terminal as under
JupyterHub, SIGKILL followed by the next start)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from jupyter_assistant.processes import MARKER_ENV

from .helpers import pids_alive
from .real_server import Server

WARM = ["--AssistantExtension.warm_agents=True"]


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "root"
    (root / "analysis").mkdir(parents=True)
    (root / "analysis" / "q3.ipynb").write_text("{}")
    return {"root": root, "store": tmp_path / "store", "home": tmp_path}


@pytest.fixture
def servers(dirs: dict[str, Path]) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop(signal.SIGKILL)


def new_server(
    servers: list[Server], dirs: dict[str, Path], extra_env: dict[str, str] | None = None
) -> Server:
    server = Server(dirs["root"], dirs["store"], dirs["home"]).start(
        extra_env=extra_env, extra_args=WARM
    )
    servers.append(server)
    return server


def providers_of(server: Server) -> list[int]:
    """The server's children that are provider CLIs (they carry the turn marker)."""
    assert server.proc is not None
    found = []
    for child in psutil.Process(server.proc.pid).children():
        try:
            if MARKER_ENV in child.environ():
                found.append(child.pid)
        except psutil.Error:
            continue
    return found


def warm_turn(server: Server) -> tuple[str, int]:
    """A done turn in a new session; returns the session and its parked CLI's pid."""
    sid = server.call("POST", "/sessions", {"path": "analysis/q3.ipynb"})["id"]
    server.call("POST", f"/sessions/{sid}/messages", {"content": "Hello"})
    stream: list[dict[str, Any]] = server.call("GET", f"/sessions/{sid}/events")
    assert stream[-1]["event"] == "done", stream[-1]
    (pid,) = providers_of(server)  # kept running after its turn
    return sid, pid


def wait_gone(pids: list[int], timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while pids_alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids_alive(pids)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_server_leaves_no_warm_process(
    servers: list[Server], dirs: dict[str, Path], how: int
) -> None:
    # SIGTERM runs the clean shutdown; SIGINT without a terminal does not (the exit stop).
    server = new_server(servers, dirs)
    sid, pid = warm_turn(server)
    assert (dirs["store"] / "processes" / "warm" / f"{sid}.json").exists()
    server.stop(how)
    assert server.proc is not None and server.proc.returncode is not None
    assert pids_alive([pid]) == []
    assert list((dirs["store"] / "processes" / "warm").glob("*.json")) == []


def test_a_killed_servers_warm_process_is_ended_by_the_next_start(
    servers: list[Server], dirs: dict[str, Path]
) -> None:
    # A CLI that does not exit when its input ends (the server's end closes it): a hung one.
    server = new_server(servers, dirs, {"FAKE_CLAUDE_STAY_AT_EOF": "1"})
    sid, pid = warm_turn(server)
    server.stop(signal.SIGKILL)  # no shutdown, no exit stop: the CLI is left waiting
    assert pids_alive([pid]) == [pid]
    again = new_server(servers, dirs)
    assert wait_gone([pid]) == []
    record = dirs["store"] / "processes" / "warm" / f"{sid}.json"
    deadline = time.monotonic() + 30
    while record.exists() and time.monotonic() < deadline:  # cleared once its tree is gone
        time.sleep(0.05)
    assert not record.exists()
    # and the conversation goes on, from a cold start
    again.call("POST", f"/sessions/{sid}/messages", {"content": "Still there?"})
    stream = again.call("GET", f"/sessions/{sid}/events")
    assert stream[-1]["event"] == "done", stream[-1]
