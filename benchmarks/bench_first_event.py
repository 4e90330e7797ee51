"""Measure 3: from ``POST messages`` to the first event at the client, vs spawning the same fake
directly and reading its first line.

Server figure: from sending ``POST .../messages`` (202), then ``GET .../events`` as the sidebar
does, until the first ``text`` event, the first one that comes from the provider. (``turn_started``
comes earlier, before the provider runs; it is in the notes.) Baseline: spawning the same command
(argv, cwd, stdin as the server ran it) until its first text delta line, which the fake prints
right after its first line. Target: at most the baseline + 15 ms.
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
    recorded_invocation,
    spawn_fake,
    sse_events,
    workspace,
)

PROMPT = "scenario:reply Hello"
BUDGET_MS = 15.0


def through_server(
    server: Server, client: Client, session_id: str, started_at: list[float]
) -> float:
    started = time.perf_counter()
    client.call("POST", f"/sessions/{session_id}/messages", {"content": PROMPT})
    response = open_events(server.port, session_id)
    first = None
    for event in sse_events(response):
        if event["event"] == "turn_started":
            started_at.append(time.perf_counter() - started)
        elif event["event"] == "text" and first is None:
            first = time.perf_counter() - started
        elif event["event"] in ("done", "error", "cancelled"):
            break  # read to the end: the next turn may only start after this one
    response.close()
    if first is None:
        raise RuntimeError("the turn produced no text event")
    return first


def direct(argv: list[str], cwd: str) -> float:
    started = time.perf_counter()
    proc = spawn_fake(argv, cwd, {})
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(prompt_input(argv, PROMPT))
    proc.stdin.close()
    first = None
    for line in proc.stdout:
        if first is None and b'"text_delta"' in line:
            first = time.perf_counter() - started
    proc.wait()
    if first is None:
        raise RuntimeError("the fake printed no text delta")
    return first


def run(quick: bool = False) -> list[Result]:
    runs = 2 if quick else 21
    with workspace("first-event") as home:
        argv_file = home / "argv.json"
        with Server(home, env={"FAKE_CLAUDE_ARGV_FILE": str(argv_file)}) as server:
            client = server.client()
            session_id = client.create_session(make_notebook(server.root, "latency/nb.ipynb"))
            started_at: list[float] = []
            through_server(server, client, session_id, [])  # warm-up; records the command
            argv, cwd = recorded_invocation(Path(argv_file))
            served, baseline = interleave(
                runs,
                lambda: through_server(server, client, session_id, started_at),
                lambda: direct(argv, cwd),
            )
            client.close()
    figure = statistics.median(served) * 1000
    base = statistics.median(baseline) * 1000
    return [
        Result(
            "3",
            "POST messages -> first text event at the client",
            figure,
            "ms",
            base,
            compare=f"{figure - base:+.1f} ms",
            target=f"<= baseline + {BUDGET_MS:g} ms",
            met=figure <= base + BUDGET_MS,
            notes=[
                f"{runs} interleaved runs; server {min(served) * 1000:.1f}.."
                f"{max(served) * 1000:.1f} ms, direct {min(baseline) * 1000:.1f}.."
                f"{max(baseline) * 1000:.1f} ms",
                f"turn_started reached the client after {statistics.median(started_at) * 1000:.1f}"
                " ms (median)",
            ],
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    print_results(run(parser.parse_args().quick))


if __name__ == "__main__":
    sys.exit(main())
