"""A real `jupyter server` process, as a user runs it: the extension is enabled by the installed
config file, conversations survive a restart, and a server killed mid-turn leaves no provider
behind once it starts again."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import FAKE_CLAUDE
from .helpers import describe_pids, pids_alive
from .real_server import Server


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


def new_server(servers: list[Server], dirs: dict[str, Path], **kw: Any) -> Server:
    server = Server(dirs["root"], dirs["store"], dirs["home"]).start(**kw)
    servers.append(server)
    return server


def test_the_conversation_survives_a_restart(servers: list[Server], dirs: dict[str, Path]) -> None:
    server = new_server(servers, dirs)
    session = server.call("POST", "/sessions", {"path": "analysis/q3.ipynb"})
    server.call("POST", f"/sessions/{session['id']}/messages", {"content": "remember me"})
    stream = server.call("GET", f"/sessions/{session['id']}/events")
    assert stream[-1]["event"] == "done"
    before = server.call("GET", f"/sessions/{session['id']}")
    server.stop()

    again = new_server(servers, dirs)
    after = again.call("GET", f"/sessions/{session['id']}")
    assert after["messages"] == before["messages"]
    assert after["provider_session_id"] == before["provider_session_id"]
    listed = again.call("GET", "/sessions?path=analysis/q3.ipynb")["sessions"]
    assert [s["id"] for s in listed] == [session["id"]]
    # and the next turn resumes the same provider conversation
    again.call("POST", f"/sessions/{session['id']}/messages", {"content": "still there?"})
    stream = again.call("GET", f"/sessions/{session['id']}/events")
    assert f"resumed:{before['provider_session_id']}" in "".join(
        e["data"]["text"] for e in stream if e["event"] == "text"
    )


def test_a_server_killed_mid_turn_is_cleaned_up_at_the_next_start(
    servers: list[Server], dirs: dict[str, Path]
) -> None:
    pid_file = dirs["home"] / "pids.json"
    server = new_server(servers, dirs, extra_env={"FAKE_PID_FILE": str(pid_file)})
    session = server.call("POST", "/sessions", {"path": "analysis/q3.ipynb"})
    sid = session["id"]
    server.call("POST", f"/sessions/{sid}/messages", {"content": "scenario:tree"})
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = json.loads(pid_file.read_text())
    assert server.call("GET", f"/sessions/{sid}")["status"] == "running"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the partial reply has been saved once
        partial = server.call("GET", f"/sessions/{sid}")["messages"][-1]
        if partial["role"] == "assistant" and partial["content"]:
            break
        time.sleep(0.05)
    assert partial["status"] == "streaming"

    server.stop(signal.SIGKILL)  # no clean-up possible
    assert pids_alive(pids) == pids  # the provider tree outlived its server

    again = new_server(servers, dirs)
    records = dirs["store"] / "processes"
    deadline = time.monotonic() + 30
    # The reap stops the tree, then ends the turn and removes its record together (under the
    # session's lock): no record left means the reap is over.
    while (pids_alive(pids) or any(records.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pids_alive(pids) == [], describe_pids(pids)
    stored = again.call("GET", f"/sessions/{sid}")
    assert stored["status"] == "idle"
    assert stored["messages"][0]["content"] == "scenario:tree"
    assert stored["messages"][-1]["status"] == "interrupted", (
        stored["messages"][-1],
        server.log.read_text()[-4000:],
        again.log.read_text()[-4000:],
    )
    assert stored["messages"][-1]["content"] == partial["content"]  # the partial reply is kept
    assert stored["messages"][-1]["error"]["code"] == "interrupted"
    assert list(records.iterdir()) == []
    # Said in the server's log, in its format (level, time, logger), not as a bare line.
    reaped = r"\[W [0-9-]+ [0-9:.]+ jupyter_assistant\.turns\.reaping\] Reaping the provider"
    assert re.search(reaped, again.log.read_text())
    assert re.search(
        r"\[I .* Turn \S+ ended as interrupted \(its provider stopped in", again.log.read_text()
    )
    again.call("POST", f"/sessions/{sid}/messages", {"content": "hello after the crash"})
    assert again.call("GET", f"/sessions/{sid}/events")[-1]["event"] == "done"


def test_stopping_the_server_ends_running_turns(
    servers: list[Server], dirs: dict[str, Path]
) -> None:
    pid_file = dirs["home"] / "pids.json"
    server = new_server(servers, dirs, extra_env={"FAKE_PID_FILE": str(pid_file)})
    sid = server.call("POST", "/sessions", {"path": "analysis/q3.ipynb"})["id"]
    server.call("POST", f"/sessions/{sid}/messages", {"content": "scenario:ignore_term"})
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = json.loads(pid_file.read_text())
    server.stop(signal.SIGTERM)  # a clean shutdown (Ctrl-C, `jupyter server stop`)
    assert pids_alive(pids) == []
    again = new_server(servers, dirs)
    assert again.call("GET", f"/sessions/{sid}")["messages"][-1]["status"] == "interrupted"


KERNEL_LIKE = """
import asyncio, sys
from pathlib import Path
from traitlets.config import Config, Configurable
from jupyter_assistant.providers import ProviderRegistry
from jupyter_assistant.service import AssistantService, ServiceSettings

async def main() -> None:
    config = Config()
    config.ClaudeCodeProvider.command = [sys.argv[3]]
    service = AssistantService(
        ServiceSettings(store_dir=Path(sys.argv[1])),
        ProviderRegistry(parent=Configurable(config=config)),
    )
    session = await service.create_session_for_file(sys.argv[2])
    await service.post_message(session.id, "scenario:tree")
    print(session.id, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_a_kernel_that_dies_mid_turn_is_cleaned_up_by_the_server(
    servers: list[Server], dirs: dict[str, Path]
) -> None:
    pid_file = dirs["home"] / "pids.json"
    server = new_server(
        servers, dirs, extra_args=["--AssistantExtension.reap_interval_seconds=0.3"]
    )
    kernel = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KERNEL_LIKE,
            str(dirs["store"]),
            str(dirs["root"] / "analysis" / "q3.ipynb"),
            str(FAKE_CLAUDE),
        ],
        env={**os.environ, "FAKE_PID_FILE": str(pid_file)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert kernel.stdout is not None
        sid = kernel.stdout.readline().strip()
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = json.loads(pid_file.read_text())
        # The server sees the kernel's turn on the same notebook, running.
        rows = server.call("GET", "/sessions?path=analysis/q3.ipynb")["sessions"]
        assert [(r["id"], r["status"]) for r in rows] == [(sid, "running")]
        kernel.kill()  # the kernel dies mid-turn (OOM, `kill -9`, a crash)
        kernel.wait()
        deadline = time.monotonic() + 30
        while pids_alive(pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pids_alive(pids) == []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            stored = server.call("GET", f"/sessions/{sid}")
            if stored["messages"][-1]["status"] == "interrupted":
                break
            time.sleep(0.05)
        assert stored["status"] == "idle"
        assert stored["messages"][-1]["status"] == "interrupted"
    finally:
        kernel.kill()
        kernel.wait()


def test_a_server_interrupted_without_a_terminal_leaves_no_provider(
    servers: list[Server], dirs: dict[str, Path]
) -> None:
    # JupyterHub stops single-user servers with SIGINT, and with no terminal Jupyter does not
    # run its clean shutdown for it: the extension must still stop what it started.
    pid_file = dirs["home"] / "pids.json"
    server = new_server(servers, dirs, extra_env={"FAKE_PID_FILE": str(pid_file)})
    sid = server.call("POST", "/sessions", {"path": "analysis/q3.ipynb"})["id"]
    server.call("POST", f"/sessions/{sid}/messages", {"content": "scenario:ignore_term"})
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = json.loads(pid_file.read_text())

    def partial_reply() -> str:
        messages = server.call("GET", f"/sessions/{sid}")["messages"]
        return str(messages[-1]["content"]) if messages[-1]["role"] == "assistant" else ""

    # The fake writes its pids, then its text: stop once the server has kept that text (its
    # partial reply is saved every 0.2 s here), so the reply is what the SIGINT must keep.
    while "pids" not in partial_reply() and time.monotonic() < deadline:
        time.sleep(0.05)
    server.stop(signal.SIGINT)
    assert server.proc is not None
    assert server.proc.returncode is not None
    assert pids_alive(pids) == []  # gone when the server is, not only at its next start
    assert list((dirs["store"] / "processes").glob("*.json")) == []
    again = new_server(servers, dirs)
    last = again.call("GET", f"/sessions/{sid}")["messages"][-1]
    assert last["status"] == "interrupted"
    assert "pids" in last["content"]  # the partial reply, as far as it came
