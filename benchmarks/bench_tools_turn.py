"""Measure 8: a whole turn with the REAL Claude Code CLI, with the notebook tools on vs off.

Two servers side by side, the same but for ``c.AssistantExtension.notebook_tools_enabled``; the
provider is the real ``claude`` CLI (``$JUPYTER_ASSISTANT_REAL_CLAUDE``, else
``.cache/npm/node_modules/.bin/claude``, else the one on ``PATH``) against the local Messages-API
stand-in ``tests/fakes/anthropic_standin.py`` (a subprocess of its own). With the tools on, the
CLI is given ``--mcp-config`` and connects to the server's ``notebook`` MCP endpoint
(``initialize``, ``tools/list`` over streamable HTTP) before its first model request: that is
what this measures, honestly, inside the figure.

Figure: from sending ``POST .../messages`` (then ``GET .../events``, as the sidebar does) until
the first ``text`` event at the client (the first event that comes from the model), tools on,
against the same with the tools off, interleaved; each run in a new session (a new CLI
conversation, no history to resume). ``done`` is reported beside it. Target: the first text
event at most 50 ms later with the tools on.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    REPO,
    Client,
    McpClient,
    Result,
    Server,
    interleave,
    make_notebook,
    mcp_endpoint,
    open_events,
    print_results,
    spread_ms,
    sse_events,
    workspace,
)

STANDIN = REPO / "tests" / "fakes" / "anthropic_standin.py"
PROMPT = "Say hi please"
# A turn that stays alive: the CLI asks whether it may run a command, and nobody answers.
WAIT_PROMPT = "RUN_BASH: sleep 30"
BUDGET_MS = 50.0


def find_real_claude() -> str:
    candidates = [
        os.environ.get("JUPYTER_ASSISTANT_REAL_CLAUDE", ""),
        str(REPO / ".cache" / "npm" / "node_modules" / ".bin" / "claude"),
        shutil.which("claude") or "",
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(
        "measure 8 needs the real Claude Code CLI: run scripts/test.sh (it installs it into "
        ".cache/npm) or set JUPYTER_ASSISTANT_REAL_CLAUDE"
    )


class StandIn:
    """The Messages-API stand-in as a process of its own (not a thread of the client's, whose
    timing it would share), logging every request with its time."""

    def __init__(self, home: Path) -> None:
        self.log = home / "standin-requests.jsonl"
        self.proc = subprocess.Popen(
            [sys.executable, str(STANDIN), "--port", "0", "--log", str(self.log)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().split()
        if line[:1] != ["PORT"]:
            self.stop()
            raise RuntimeError("the stand-in did not start")
        self.base_url = f"http://127.0.0.1:{line[1]}"

    def main_requests(self) -> list[dict[str, Any]]:
        """Every main-agent ``POST /v1/messages`` so far (side-channel ones offer no tools)."""
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text().splitlines() if line]
        return [
            r
            for r in rows
            if r["method"] == "POST"
            and r["path"].split("?", 1)[0] == "/v1/messages"
            and isinstance(r["body"], dict)
            and r["body"].get("tools")
        ]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class Side:
    """One server (tools on or off) and what its turns measured."""

    def __init__(self, home: Path, standin: StandIn, claude: str, tools: bool) -> None:
        self.name = "on" if tools else "off"
        (home / "claude-config").mkdir(parents=True)
        (home / "tmp").mkdir()
        env = {
            "ANTHROPIC_BASE_URL": standin.base_url,
            "ANTHROPIC_API_KEY": "bench-key-for-the-stand-in",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "CLAUDE_CONFIG_DIR": str(home / "claude-config"),
            "TMPDIR": str(home / "tmp"),
        }
        self.server = Server(
            home,
            config={
                "AssistantExtension": {"notebook_tools_enabled": tools},
                "ClaudeCodeProvider": {"command": [claude], "env": env},
            },
        )
        self.standin = standin
        self.client: Client | None = None
        self.runs = 0
        self.started: list[float] = []  # POST -> turn_started
        self.model: list[float] = []  # POST -> the CLI's first model request (at the stand-in)
        self.done: list[float] = []  # POST -> done
        self.offered: set[str] = set()  # the tools the last turn's model request offered

    def start(self) -> None:
        self.server.start()
        self.client = self.server.client()

    def turn(self) -> float:
        """One turn in a new session; returns POST -> the first text event (seconds)."""
        assert self.client is not None
        self.runs += 1
        path = make_notebook(self.server.root, f"turns/nb-{self.runs}.ipynb")
        session_id = self.client.create_session(path)
        seen = len(self.standin.main_requests())
        wall = time.time()
        started = time.perf_counter()
        self.client.call("POST", f"/sessions/{session_id}/messages", {"content": PROMPT})
        response = open_events(self.server.port, session_id)
        first = None
        terminal = detail = ""
        for event in sse_events(response):
            now = time.perf_counter() - started
            if event["event"] == "turn_started":
                self.started.append(now)
            elif event["event"] == "text" and first is None:
                first = now
            elif event["event"] in ("done", "error", "cancelled"):
                terminal = event["event"]
                if terminal == "done":
                    self.done.append(now)
                else:
                    detail = json.dumps(event["data"])[:500]
                break
        response.close()
        if terminal != "done" or first is None:
            raise RuntimeError(f"a turn (tools {self.name}) ended with {terminal!r}: {detail}")
        requests = self.standin.main_requests()[seen:]
        if requests:
            self.model.append(requests[0]["time"] - wall)
            self.offered = {tool["name"] for tool in requests[0]["body"]["tools"]}
        return first

    def handshakes(self, runs: int) -> tuple[list[float], list[float]]:
        """The server's part of the CLI's connection: an MCP handshake (initialize,
        initialized, tools/list) with a running turn's capability, interleaved with
        ``GET /api/status`` on the same kind of connection. The turn (the real CLI asking
        whether it may run a command) is kept waiting, then cancelled."""
        assert self.client is not None
        path = make_notebook(self.server.root, "turns/handshake.ipynb")
        session_id = self.client.create_session(path)
        before = set(self.server.store.rglob("claude-mcp-*.json"))
        self.client.call("POST", f"/sessions/{session_id}/messages", {"content": WAIT_PROMPT})
        deadline = time.monotonic() + 60
        while not (fresh := set(self.server.store.rglob("claude-mcp-*.json")) - before):
            if time.monotonic() > deadline:
                raise RuntimeError("the turn's MCP configuration did not appear")
            time.sleep(0.01)
        mcp = McpClient(*mcp_endpoint(fresh.pop()))
        status = self.server.client()
        try:
            mcp.handshake()  # warm-up
            return interleave(
                runs,
                mcp.handshake,
                lambda: timed(lambda: status.call("GET", "/status", prefix="/api")),
            )
        finally:
            mcp.close()
            status.close()
            self.client.call("POST", f"/sessions/{session_id}/cancel")
            events = open_events(self.server.port, session_id)
            for event in sse_events(events):
                if event["event"] in ("done", "error", "cancelled"):
                    break
            events.close()

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.server.stop()


def timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run(quick: bool = False) -> list[Result]:
    runs = 2 if quick else 15
    claude = find_real_claude()
    with workspace("tools-turn") as home:
        standin = StandIn(home)
        on = Side(home / "on", standin, claude, tools=True)
        off = Side(home / "off", standin, claude, tools=False)
        try:
            on.start()
            off.start()
            for side in (on, off):
                side.turn()  # warm-up: the CLI's first start reads its package from disk
            if not any(name.startswith("mcp__notebook__") for name in on.offered):
                raise RuntimeError("with the tools on, the CLI was not offered the notebook tools")
            if any(name.startswith("mcp__notebook__") for name in off.offered):
                raise RuntimeError("with the tools off, the CLI was offered the notebook tools")
            for side in (on, off):
                side.started.clear()
                side.model.clear()
                side.done.clear()
            with_tools, without = interleave(runs, on.turn, off.turn)
            handshake, status = on.handshakes(3 if quick else 30)
        finally:
            on.stop()
            off.stop()
            standin.stop()
    figure = statistics.median(with_tools) * 1000
    base = statistics.median(without) * 1000
    done_on = statistics.median(on.done) * 1000
    done_off = statistics.median(off.done) * 1000
    paired = [(a - b) * 1000 for a, b in zip(with_tools, without, strict=True)]
    notes = [
        f"{runs} interleaved pairs, each turn a new session; median of per-pair differences "
        f"{statistics.median(paired):+.1f} ms",
        f"first text, tools on: {spread_ms(with_tools)}",
        f"first text, tools off: {spread_ms(without)}",
        f"done, tools on: {spread_ms(on.done)}",
        f"done, tools off: {spread_ms(off.done)}",
        f"turn_started reached the client after {statistics.median(on.started) * 1000:.1f} ms "
        f"(on) / {statistics.median(off.started) * 1000:.1f} ms (off)",
    ]
    if on.model and off.model:
        model_on = statistics.median(on.model) * 1000
        model_off = statistics.median(off.model) * 1000
        notes.append(
            f"the CLI's first model request reached the stand-in {model_on:.0f} ms (on) / "
            f"{model_off:.0f} ms (off) after the POST ({model_on - model_off:+.1f} ms: the "
            "MCP connection, before it)"
        )
    notes.append(f"the CLI: {claude}")
    return [
        Result(
            "8a",
            "real Claude CLI: POST messages -> first text event, notebook tools on vs off",
            figure,
            "ms",
            base,
            compare=f"{figure - base:+.1f} ms",
            target=f"<= off + {BUDGET_MS:g} ms",
            met=figure <= base + BUDGET_MS,
            notes=notes,
        ),
        Result(
            "8b",
            "real Claude CLI: POST messages -> done, notebook tools on vs off",
            done_on,
            "ms",
            done_off,
            compare=f"{done_on - done_off:+.1f} ms",
            target="reported",
        ),
        Result(
            "8c",
            "the server's part of the CLI's MCP connection: initialize + initialized + "
            "tools/list (live capability)",
            statistics.median(handshake) * 1000,
            "ms",
            statistics.median(status) * 1000,
            compare=f"{statistics.median(handshake) / statistics.median(status):.1f} x "
            "GET /api/status",
            target="reported",
            notes=[
                f"handshake: {spread_ms(handshake)}",
                f"GET /api/status on a keep-alive connection: {spread_ms(status)}",
            ],
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    print_results(run(parser.parse_args().quick))


if __name__ == "__main__":
    sys.exit(main())
