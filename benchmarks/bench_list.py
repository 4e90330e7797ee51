"""Measure 6: list the sessions of one notebook, and all sessions, with 10,000 sessions stored.

Via the HTTP API (``GET sessions`` and ``GET sessions?path=NB``, time until the whole body is
received) and via ``SessionStore.list_summaries`` in this process. Cases: steady state (nothing
changed since the last call), right after another process (a kernel) saved one session (the
folder changed, so the store looks at every file's stat, but parses only the changed one), and
the first call after start-up (the summary index on disk is loaded). The very first listing of a
store that has no index yet parses every file once, to build it; it is reported, not targeted.
Target: <= 50 ms each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import TOKEN, Result, Server, print_results, workspace

SESSIONS = 10_000
PER_NOTEBOOK = 10
LIMIT_MS = 50.0


def template() -> dict[str, Any]:
    from jupyter_assistant.models import Message, Session

    session = Session(path="x", notebook_key="x", working_dir="x", provider="claude")
    for i in range(2):
        session.messages.append(
            Message(role="user", content="Plot the sales by region", turn_id=f"t{i}")
        )
        session.messages.append(
            Message(role="assistant", content="Here is the plot. " * 20, turn_id=f"t{i}")
        )
    return json.loads(session.model_dump_json(exclude={"status"}))


def populate(root: Path, store_dir: Path, count: int) -> list[str]:
    """Write ``count`` session files directly (no fsync: this is set-up, not the measure), in
    notebooks of ``PER_NOTEBOOK`` sessions. Returns the notebooks' API paths."""
    import uuid

    from jupyter_assistant.store import SessionStore

    SessionStore(store_dir)  # creates the folders with the store's permissions
    sessions = store_dir / "sessions"
    base = template()
    notebooks = []
    real_root = os.path.realpath(root)
    for n in range(count // PER_NOTEBOOK):
        api_path = f"project{n % 20}/nb{n:04d}.ipynb"
        (root / api_path).parent.mkdir(parents=True, exist_ok=True)
        notebooks.append(api_path)
        for k in range(PER_NOTEBOOK):
            session_id = str(uuid.uuid4())
            stamp = f"2026-01-{1 + n % 28:02d}T10:{k:02d}:00.000Z"
            doc = {
                **base,
                "id": session_id,
                "path": api_path,
                "notebook_key": os.path.join(real_root, api_path),
                "working_dir": os.path.dirname(os.path.join(real_root, api_path)),
                "title": f"Question {k} on notebook {n}",
                "created_at": stamp,
                "updated_at": stamp,
            }
            file = sessions / f"{session_id}.json"
            file.write_text(json.dumps(doc))
            file.chmod(0o600)
    time.sleep(0.2)  # let the folder's mtime age past the store's racy window
    return notebooks


def timed(call: Callable[[], Any], runs: int) -> float:
    """Median milliseconds of ``runs`` calls."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def touch_one(store_dir: Path) -> None:
    """Another process (a kernel) saves one session: a new file in the folder."""
    from jupyter_assistant.store import SessionStore

    other = SessionStore(store_dir)
    session_id = next(p.stem for p in (store_dir / "sessions").glob("*.json"))
    other.update(session_id, lambda s: setattr(s, "title", f"renamed {time.time()}"))


def after_change(store_dir: Path, call: Callable[[], Any], runs: int) -> float:
    samples = []
    for _ in range(runs):
        touch_one(store_dir)
        time.sleep(0.15)  # past the racy window, as a listing a moment later would be
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def http_get(port: int, query: str = "") -> Callable[[], bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"token {TOKEN}"}

    def get() -> bytes:
        conn.request("GET", "/api/assistant/sessions" + query, headers=headers)
        response = conn.getresponse()
        body = response.read()  # the body as received; parsing it is the client's business
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:300]!r}")
        return body

    return get


def direct_rows(store_dir: Path, notebook_key: str, runs: int) -> list[tuple[str, float]]:
    from jupyter_assistant.store import SessionStore

    started = time.perf_counter()
    SessionStore(store_dir).list_summaries()  # no index yet: builds it
    cold = (time.perf_counter() - started) * 1000
    restart = timed(lambda: SessionStore(store_dir).list_summaries(), max(3, runs // 6))
    store = SessionStore(store_dir)
    store.list_summaries()
    return [
        ("store: all sessions, steady", timed(store.list_summaries, runs)),
        ("store: one notebook, steady", timed(lambda: store.list_summaries(notebook_key), runs)),
        (
            "store: all sessions, after another process saved one",
            after_change(store_dir, store.list_summaries, max(3, runs // 3)),
        ),
        ("store: all sessions, first call after start-up (index on disk)", restart),
        ("store: all sessions, first call ever (no index yet: parses every file)", cold),
    ]


def http_rows(home: Path, notebook: str, runs: int, starts: int) -> list[tuple[str, float]]:
    first: list[float] = []
    steady: list[tuple[str, float]] = []
    for start in range(starts):
        server = Server(home)
        server.start()
        try:
            first.append(timed(http_get(server.port), 1))
            if start == starts - 1:  # the last server goes on to the steady-state calls
                steady = http_steady_rows(server, notebook, runs)
        finally:
            server.stop()
    return [
        *steady,
        ("HTTP: all sessions, first call after start-up (index on disk)", statistics.median(first)),
    ]


def http_steady_rows(server: Server, notebook: str, runs: int) -> list[tuple[str, float]]:
    everything = http_get(server.port)
    one = http_get(server.port, "?path=" + urllib.parse.quote(notebook))
    everything()
    return [
        ("HTTP: all sessions, steady", timed(everything, runs)),
        ("HTTP: one notebook, steady", timed(one, runs)),
        (
            "HTTP: all sessions, after another process saved one",
            after_change(server.store, everything, max(3, runs // 3)),
        ),
    ]


def run(quick: bool = False) -> list[Result]:
    # --quick: a tenth of the sessions; the figures are then not comparable to the target.
    runs, starts, count = (3, 1, SESSIONS // 10) if quick else (30, 3, SESSIONS)
    with workspace("list") as home:
        root, store_dir = home / "root", home / "store"
        root.mkdir()
        notebooks = populate(root, store_dir, count)
        notebook = notebooks[len(notebooks) // 2]
        rows = direct_rows(store_dir, os.path.join(os.path.realpath(root), notebook), runs)
        rows = http_rows(home, notebook, runs, starts) + rows
    results = []
    for i, (name, ms) in enumerate(rows):
        targeted = "first call ever" not in name
        results.append(
            Result(
                f"6{chr(ord('a') + i)}",
                f"list, {count:,} stored: {name}",
                ms,
                "ms",
                target=f"<= {LIMIT_MS:g} ms" if targeted else "",
                met=ms <= LIMIT_MS if targeted else None,
            )
        )
    results[0].notes.append(
        f"{count:,} sessions in {count // PER_NOTEBOOK:,} notebooks; medians of {runs} calls"
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    print_results(run(parser.parse_args().quick))


if __name__ == "__main__":
    sys.exit(main())
