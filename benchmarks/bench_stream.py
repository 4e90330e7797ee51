"""Measure 2: 20,000 text deltas from a fast fake provider to an SSE client through the server,
vs the same fake's stdout read directly by a Python reader.

Server figure: from sending ``POST messages`` until the terminal ``done`` event arrives at an SSE
client (which then has all 20,000 characters of text; the server may coalesce deltas that arrive
together into fewer events). Baseline: spawning the very same command (argv, cwd, stdin as the
server ran it) and reading its stdout line by line to the end. Target: ratio <= 1.3.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from _common import (
    Client,
    Result,
    Server,
    interleave,
    make_notebook,
    open_events,
    print_results,
    prompt_input,
    ratio_row,
    recorded_invocation,
    spawn_fake,
    sse_events,
    workspace,
)

COUNT = 20_000
PROMPT = "scenario:flood"
LIMIT = 1.3


def through_server(server: Server, client: Client, notebook: str, counts: list[int]) -> float:
    session_id = client.create_session(notebook)  # a fresh session: every run does equal work
    started = time.perf_counter()
    client.call("POST", f"/sessions/{session_id}/messages", {"content": PROMPT})
    response = open_events(server.port, session_id)
    text = 0
    events = 0
    for event in sse_events(response):
        if event["event"] == "text":
            text += len(event["data"]["text"])
            events += 1
        elif event["event"] == "done":
            break
        elif event["event"] in ("error", "cancelled"):
            raise RuntimeError(f"the flood turn ended with {event}")
    elapsed = time.perf_counter() - started
    response.close()
    if text != COUNT:
        raise RuntimeError(f"the client got {text} characters, not {COUNT}")
    counts.append(events)
    return elapsed


def direct(argv: list[str], cwd: str) -> float:
    started = time.perf_counter()
    proc = spawn_fake(argv, cwd, {"FAKE_COUNT": str(COUNT)})
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(prompt_input(argv, PROMPT))
    proc.stdin.close()
    lines = sum(1 for _ in proc.stdout)
    proc.wait()
    elapsed = time.perf_counter() - started
    if lines < COUNT:
        raise RuntimeError(f"the fake printed {lines} lines")
    return elapsed


def run(quick: bool = False) -> list[Result]:
    runs = 2 if quick else 11
    with workspace("stream") as home:
        argv_file = home / "argv.json"
        env = {"FAKE_COUNT": str(COUNT), "FAKE_CLAUDE_ARGV_FILE": str(argv_file)}
        with Server(home, env=env) as server:
            notebook = make_notebook(server.root, "flood/run.ipynb")
            client = server.client()
            counts: list[int] = []
            # Warm-up: imports the engine, records the command for the baseline.
            through_server(server, client, notebook, counts)
            argv, cwd = recorded_invocation(Path(argv_file))
            served, baseline = interleave(
                runs,
                lambda: through_server(server, client, notebook, counts),
                lambda: direct(argv, cwd),
            )
            client.close()
    row = ratio_row(
        "2",
        f"{COUNT:,} deltas, fake provider -> server -> SSE client",
        statistics.median(served) * 1000,
        statistics.median(baseline) * 1000,
        "ms",
        LIMIT,
    )
    row.notes += [
        f"{runs} interleaved runs; server {min(served) * 1000:.0f}..{max(served) * 1000:.0f} ms, "
        f"direct {min(baseline) * 1000:.0f}..{max(baseline) * 1000:.0f} ms",
        f"the client received the {COUNT:,} deltas as {statistics.median(counts):.0f} "
        "coalesced text events (median)",
    ]
    return [row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    print_results(run(parser.parse_args().quick))


if __name__ == "__main__":
    sys.exit(main())
