"""Measure 7: 32 concurrent streaming turns: p99 of ``GET sessions`` vs the same server idle, and
the server's RSS growth.

The server allows 32 turns at once (``max_concurrent_turns``; the default is 8). Each turn runs the
fake's ``scenario:slow`` (a text delta every 40 ms for about 12 s), each followed by its own SSE
client; the 32 clients run in a separate process so that they do not compete with the measuring
client for this process's GIL. The measuring client calls ``GET sessions`` (all sessions, and the
one-notebook form the sidebar polls, alternately) every 20 ms on a keep-alive connection: while
the server is idle, while all 32 turns stream, and idle again afterwards. Default checkpointing
(every 2 s per turn) stays on, so the store is written while the list is read.
Target: p99 during the turns <= 50 ms. RSS: before, peak during, and after the turns.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import threading
import time
import urllib.parse
from typing import Any

from _common import (
    TOKEN,
    Client,
    Result,
    Server,
    follow_turn,
    make_notebook,
    percentile,
    print_results,
    rss_mib,
    workspace,
)

TURNS = 32
DELTAS, DELAY = 300, 0.04
LIMIT_MS = 50.0


# -- the 32 stream readers (in their own process) ---------------------------------------------


async def read_stream(port: int, session_id: str, first_text: asyncio.Event) -> tuple[int, bool]:
    """Follow one turn's SSE stream to its end; returns (text events, ended with done)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"GET /api/assistant/sessions/{session_id}/events HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nAuthorization: token {TOKEN}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
    )
    received = bytearray()
    while chunk := await reader.read(65536):
        received += chunk
        if not first_text.is_set() and b"event: text" in received:
            first_text.set()
    writer.close()
    return received.count(b"event: text\n"), b"event: done\n" in received


async def read_all(port: int, session_ids: list[str], streaming: Any) -> list[tuple[int, bool]]:
    firsts = [asyncio.Event() for _ in session_ids]
    tasks = [
        asyncio.create_task(read_stream(port, sid, first))
        for sid, first in zip(session_ids, firsts, strict=True)
    ]
    await asyncio.gather(*(first.wait() for first in firsts))
    streaming.set()  # every turn has sent text: the measuring window opens
    return list(await asyncio.gather(*tasks))


def readers_main(port: int, session_ids: list[str], streaming: Any, results: Any) -> None:
    results.put(asyncio.run(read_all(port, session_ids, streaming)))


# -- the measuring client -----------------------------------------------------------------------


def sample(client: Client, queries: list[str], count: int) -> dict[str, list[float]]:
    """``count`` GETs every 20 ms, cycling through ``queries``; latencies per query."""
    out: dict[str, list[float]] = {q: [] for q in queries}
    for i in range(count):
        query = queries[i % len(queries)]
        started = time.perf_counter()
        client.call("GET", "/sessions" + query)
        out[query].append(time.perf_counter() - started)
        time.sleep(0.02)
    return out


class RssWatch(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopped = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            self.peak = max(self.peak, rss_mib(self.pid))


def run(quick: bool = False) -> list[Result]:
    turns, deltas, samples = (4, 40, 40) if quick else (TURNS, DELTAS, 300)
    env = {"FAKE_COUNT": str(deltas), "FAKE_DELAY": str(DELAY)}
    config = {"AssistantExtension": {"max_concurrent_turns": turns}}
    with workspace("concurrent") as home, Server(home, env=env, config=config) as server:
        client = server.client()
        notebooks = [make_notebook(server.root, f"team/nb{i:02d}.ipynb") for i in range(turns)]
        session_ids = [client.create_session(nb) for nb in notebooks]
        queries = ["", "?path=" + urllib.parse.quote(notebooks[0])]
        # Warm-up: a whole turn, so that the engine is imported before RSS is taken.
        client.call("POST", f"/sessions/{session_ids[0]}/messages", {"content": "scenario:reply"})
        follow_turn(server.port, session_ids[0])
        sample(client, queries, 10)
        rss_before = rss_mib(server.pid)
        idle = sample(client, queries, samples // 2)
        watch = RssWatch(server.pid)
        watch.start()
        busy, outcomes, window = streaming_phase(server, client, session_ids, queries, samples)
        watch.stopped.set()
        watch.join()
        time.sleep(0.5)
        rss_after = rss_mib(server.pid)
        for query, values in sample(client, queries, samples // 2).items():
            idle[query] += values
        client.close()
    complete = sum(1 for events, done in outcomes if done and events > 0)
    if complete != turns:
        raise RuntimeError(f"only {complete} of {turns} turns streamed to their end")
    return rows(turns, idle, busy, rss_before, max(watch.peak, rss_after), rss_after, window)


def streaming_phase(
    server: Server, client: Client, session_ids: list[str], queries: list[str], samples: int
) -> tuple[dict[str, list[float]], list[tuple[int, bool]], float]:
    context = multiprocessing.get_context("spawn")
    streaming, results = context.Event(), context.Queue()
    for sid in session_ids:
        client.call("POST", f"/sessions/{sid}/messages", {"content": "scenario:slow"})
    readers = context.Process(
        target=readers_main, args=(server.port, session_ids, streaming, results)
    )
    readers.start()
    if not streaming.wait(60):
        readers.kill()
        raise RuntimeError("the turns did not all start streaming")
    started = time.perf_counter()
    busy = sample(client, queries, samples)
    window = time.perf_counter() - started
    outcomes = results.get(timeout=120)
    readers.join(30)
    return busy, outcomes, window


def rows(
    turns: int,
    idle: dict[str, list[float]],
    busy: dict[str, list[float]],
    rss_before: float,
    rss_peak: float,
    rss_after: float,
    window: float,
) -> list[Result]:
    every, one = list(idle)
    p99_busy = percentile(busy[every], 99) * 1000
    p99_idle = percentile(idle[every], 99) * 1000
    return [
        Result(
            "7a",
            f"GET sessions p99 during {turns} concurrent streaming turns",
            p99_busy,
            "ms",
            p99_idle,
            compare=f"x{p99_busy / p99_idle:.2f}",
            target=f"p99 <= {LIMIT_MS:g} ms",
            met=p99_busy <= LIMIT_MS,
            notes=[
                f"{len(busy[every])} calls in {window:.1f} s of streaming (median "
                f"{statistics.median(busy[every]) * 1000:.1f} ms), "
                f"{len(idle[every])} idle (median {statistics.median(idle[every]) * 1000:.1f} ms)",
                f"GET sessions?path=NB: p99 {percentile(busy[one], 99) * 1000:.1f} ms streaming, "
                f"{percentile(idle[one], 99) * 1000:.1f} ms idle",
            ],
        ),
        Result(
            "7b",
            f"server RSS growth with {turns} streaming turns (peak - before)",
            rss_peak - rss_before,
            "MiB",
            rss_before,
            compare=f"after the turns {rss_after - rss_before:+.1f} MiB",
            target="reported",
            notes=[
                f"RSS before {rss_before:.1f} MiB (engine loaded), peak {rss_peak:.1f} MiB, "
                f"after {rss_after:.1f} MiB"
            ],
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    print_results(run(parser.parse_args().quick))


if __name__ == "__main__":
    sys.exit(main())
