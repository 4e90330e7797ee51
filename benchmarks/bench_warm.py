"""Measure 11: a follow-up turn with a warm Claude Code process vs a cold start (issue 17).

Two servers side by side, the same but for ``c.AssistantExtension.warm_agents``; the provider
is the REAL ``claude`` CLI (as in measure 8: ``$JUPYTER_ASSISTANT_REAL_CLAUDE``, else
``.cache/npm/node_modules/.bin/claude``, else ``claude`` on ``PATH``) against the local
Messages-API stand-in (a model that answers at once, in a process of its own), so that what is
measured is the product and the CLI, not a model.

11a: a follow-up turn (the conversation has had a turn already) from sending ``POST
.../messages`` (then ``GET .../events``, as the sidebar does) until ``done`` at the client, warm
server vs cold server (which starts the CLI and resumes the conversation every turn),
interleaved, the same session on each side throughout. 11b: the same turn written straight to
a running ``claude --input-format stream-json`` process (a ``user`` line in, its ``result`` line
out): the floor of 11a. Target (issue 17): 11a warm within 100 ms of 11b. 11c: the RSS of one
warm CLI process tree, and the server's own RSS with 4 warm sessions (reported, no target).
11d: the first turn after the sidebar opened a notebook's conversation with pre-warm (``POST
.../prewarm``, then the question PREWARM_PAUSE seconds later, as a user would type it), on a
third server that keeps one warm process, so that each pre-warm starts a CLI anew (resuming
the conversation) for one of two sessions in turn. Target (issue 17): within 150 ms of 11a.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    Client,
    Result,
    Server,
    make_notebook,
    open_events,
    print_results,
    rss_mib,
    spread_ms,
    sse_events,
    workspace,
)
from bench_tools_turn import StandIn, find_real_claude, rotate

PROMPT = "Say hi please"
BUDGET_MS = 100.0
PREWARM_BUDGET_MS = 150.0
# Between opening the sidebar and the question: time for the CLI to start (about a second at
# rest), as a user reading the panel and typing gives it.
PREWARM_PAUSE = 4.0


def cli_env(home: Path, standin: StandIn) -> dict[str, str]:
    (home / "claude-config").mkdir(parents=True, exist_ok=True)
    (home / "tmp").mkdir(exist_ok=True)
    return {
        "ANTHROPIC_BASE_URL": standin.base_url,
        "ANTHROPIC_API_KEY": "bench-key-for-the-stand-in",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "CLAUDE_CONFIG_DIR": str(home / "claude-config"),
        "TMPDIR": str(home / "tmp"),
    }


class Side:
    """One server, warm or cold, and its session."""

    def __init__(
        self, home: Path, standin: StandIn, claude: str, warm: bool, max_warm: int = 4
    ) -> None:
        self.name = "warm" if warm else "cold"
        self.server = Server(
            home,
            config={
                "AssistantExtension": {"warm_agents": warm, "max_warm_processes": max_warm},
                "ClaudeCodeProvider": {"command": [claude], "env": cli_env(home, standin)},
            },
        )
        self.client: Client | None = None
        self.session_id = ""
        self.notebooks = 0

    def start(self) -> None:
        self.server.start()
        self.client = self.server.client()
        self.session_id = self.new_session()

    def new_session(self) -> str:
        assert self.client is not None
        self.notebooks += 1
        path = make_notebook(self.server.root, f"warm/nb-{self.notebooks}.ipynb")
        return self.client.create_session(path)

    def turn(self, session_id: str | None = None) -> float:
        """One turn; returns POST -> done at the client (seconds)."""
        assert self.client is not None
        sid = session_id or self.session_id
        started = time.perf_counter()
        self.client.call("POST", f"/sessions/{sid}/messages", {"content": PROMPT})
        response = open_events(self.server.port, sid)
        terminal, detail, took = "", "", 0.0
        for event in sse_events(response):
            if event["event"] in ("done", "error", "cancelled"):
                took = time.perf_counter() - started
                terminal, detail = event["event"], json.dumps(event["data"])[:500]
                break
        response.close()
        if terminal != "done":
            raise RuntimeError(f"a turn ({self.name}) ended with {terminal!r}: {detail}")
        return took

    def prewarm(self, session_id: str) -> str:
        assert self.client is not None
        return str(self.client.call("POST", f"/sessions/{session_id}/prewarm", {})["prewarm"])

    def providers(self) -> list[int]:
        """The server's provider processes (its direct children that are CLIs)."""
        import psutil

        found = []
        for child in psutil.Process(self.server.pid).children():
            try:
                if "JUPYTER_ASSISTANT_TURN" in child.environ():
                    found.append(child.pid)
            except psutil.Error:
                continue
        return found

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.server.stop()


class DirectCli:
    """``claude --input-format stream-json`` run directly: each turn a ``user`` line written
    to the same process, until its ``result`` line."""

    def __init__(self, home: Path, standin: StandIn, claude: str) -> None:
        folder = home / "direct"
        folder.mkdir(parents=True)
        argv = [claude, "-p", "--output-format", "stream-json", "--verbose"]
        argv += ["--include-partial-messages", "--input-format", "stream-json"]
        argv += ["--permission-prompt-tool", "stdio", "--permission-mode", "default"]
        self.proc = subprocess.Popen(
            argv,
            cwd=folder,
            env={**os.environ, **cli_env(home / "direct-home", standin)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._send(
            {"type": "control_request", "request_id": "i", "request": {"subtype": "initialize"}}
        )

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def turn(self) -> float:
        assert self.proc.stdout is not None
        started = time.perf_counter()
        self._send(
            {
                "type": "user",
                "message": {"role": "user", "content": PROMPT},
                "parent_tool_use_id": None,
                "session_id": "",
            }
        )
        for line in self.proc.stdout:
            if line.startswith(b'{"type":"result"'):
                return time.perf_counter() - started
        raise RuntimeError("the CLI ended without a result")

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def tree_rss_mib(pid: int) -> float:
    import psutil

    total = rss_mib(pid)
    for child in psutil.Process(pid).children(recursive=True):
        try:
            total += rss_mib(child.pid)
        except psutil.Error:
            continue
    return total


def run(quick: bool = False) -> list[Result]:
    runs = 2 if quick else 15
    claude = find_real_claude()
    with workspace("warm") as home:
        standin = StandIn(home)
        warm = Side(home / "warm", standin, claude, warm=True)
        cold = Side(home / "cold", standin, claude, warm=False)
        opened = Side(home / "prewarm", standin, claude, warm=True, max_warm=1)
        direct: DirectCli | None = None
        try:
            for side in (warm, cold, opened):
                side.start()
                side.turn()  # the first turn of the conversation: cold on both sides
            # Two conversations, one warm process: each pre-warm starts a CLI anew.
            second = opened.new_session()
            opened.turn(second)  # its CLI now parked, the first one's ended
            targets = itertools.cycle([opened.session_id, second])

            def turn_after_prewarm() -> float:
                session_id = next(targets)
                answer = opened.prewarm(session_id)
                if answer != "started":
                    raise RuntimeError(f"the pre-warm was answered {answer!r}")
                time.sleep(PREWARM_PAUSE)
                return opened.turn(session_id)

            direct = DirectCli(home, standin, claude)
            direct.turn()
            if not warm.providers():
                raise RuntimeError("the warm server kept no CLI running after its turn")
            if cold.providers():
                raise RuntimeError("the cold server kept a CLI running after its turn")
            warm_times, cold_times, direct_times, opened_times = rotate(
                runs, warm.turn, cold.turn, direct.turn, turn_after_prewarm
            )
            (pid,) = warm.providers()
            one_cli = tree_rss_mib(pid)
            server_one = rss_mib(warm.server.pid)
            for _ in range(3):
                warm.turn(warm.new_session())
            pids = warm.providers()
            if len(pids) != 4:
                raise RuntimeError(f"4 warm sessions kept {len(pids)} CLIs running")
            server_four = rss_mib(warm.server.pid)
            clis_four = sum(tree_rss_mib(p) for p in pids)
        finally:
            if direct is not None:
                direct.stop()
            for side in (warm, cold, opened):
                side.stop()
            standin.stop()
    figure = statistics.median(warm_times) * 1000
    base = statistics.median(direct_times) * 1000
    cold_ms = statistics.median(cold_times) * 1000
    opened_ms = statistics.median(opened_times) * 1000
    return [
        Result(
            "11a",
            "follow-up turn, POST -> done, warm (real Claude CLI, API stand-in)",
            figure,
            "ms",
            cold_ms,
            compare=f"{figure - cold_ms:+.0f} ms",
            notes=[
                f"{runs} rounds, warm, cold and direct in rotated order, the same conversation on "
                "each side; baseline: the cold server (CLI start and --resume every turn)",
                f"warm: {spread_ms(warm_times)}",
                f"cold: {spread_ms(cold_times)}",
            ],
        ),
        Result(
            "11b",
            "follow-up turn, warm through the product vs written to a running CLI",
            figure,
            "ms",
            base,
            compare=f"{figure - base:+.1f} ms",
            target=f"<= baseline + {BUDGET_MS:g} ms",
            met=figure <= base + BUDGET_MS,
            notes=[
                f"direct (a user line to a running CLI until its result): {spread_ms(direct_times)}"
            ],
        ),
        Result(
            "11c",
            "RSS: one warm CLI tree; the server with 4 warm sessions",
            one_cli,
            "MiB",
            notes=[
                f"4 warm CLI trees: {clis_four:.0f} MiB in all",
                f"server RSS: {server_one:.0f} MiB with 1 warm session, {server_four:.0f} MiB "
                "with 4",
            ],
        ),
        Result(
            "11d",
            "first turn after the sidebar opened the conversation, pre-warmed, vs a warm turn",
            opened_ms,
            "ms",
            figure,
            compare=f"{opened_ms - figure:+.1f} ms",
            target=f"<= baseline + {PREWARM_BUDGET_MS:g} ms",
            met=opened_ms <= figure + PREWARM_BUDGET_MS,
            notes=[
                f"POST prewarm, {PREWARM_PAUSE:g} s, then the question; a CLI started anew "
                "each time (one warm process, two conversations in turn); baseline: 11a warm",
                f"after pre-warm: {spread_ms(opened_times)}",
            ],
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    print_results(run(parser.parse_args().quick))


if __name__ == "__main__":
    sys.exit(main())
