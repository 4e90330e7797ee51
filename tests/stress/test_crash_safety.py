"""Crash safety and concurrency of the store, with real processes killed at random points.

Fast in CI; `JUPYTER_ASSISTANT_STRESS=full` runs the long version (see the README)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jupyter_assistant.models import Session
from jupyter_assistant.store import SessionStore

FULL = os.environ.get("JUPYTER_ASSISTANT_STRESS") == "full"
pytestmark = pytest.mark.timeout(1800 if FULL else 600)

WRITER = textwrap.dedent(
    """
    import sys
    from jupyter_assistant.models import Message
    from jupyter_assistant.store import SessionStore

    store = SessionStore(sys.argv[1])
    session_id, tag, total = sys.argv[2], sys.argv[3], int(sys.argv[4])
    mine = [m.content for m in store.load(session_id).messages if m.content.startswith(tag)]
    start = max((int(c.split("-")[1]) for c in mine), default=-1) + 1
    for i in range(start, total):
        # Both write paths: edit (a turn's: splices the stored bytes) and update (parses all).
        write = store.edit if i % 2 else store.update
        write(session_id, lambda s: s.messages.append(Message(role="user", content=f"{tag}-{i}")))
        print(i, flush=True)  # acknowledged: the save returned
    """
)


def report(name: str, **figures: object) -> None:
    print(f"\n[stress] {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def new_session(root: Path) -> tuple[SessionStore, str]:
    store = SessionStore(root)
    session = store.create(
        Session(path="a.ipynb", notebook_key="/nb/a.ipynb", working_dir="/nb", provider="claude")
    )
    return store, session.id


def test_sigkill_during_saves_loses_no_acknowledged_message(tmp_path: Path) -> None:
    total = 500 if FULL else 40
    store, sid = new_session(tmp_path / "store")
    acked: set[int] = set()
    kills = 0
    rng = random.Random(os.environ.get("JUPYTER_ASSISTANT_STRESS_SEED", "7"))
    started = time.monotonic()
    stored: set[int] = set()
    # Until every message is stored (a save can land without its ack: killed in between).
    while len(stored) < total:
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store.root), sid, "w", str(total)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        # Let it save a random number of times, then kill it at a random point of a save.
        for _ in range(rng.randint(1, 15)):
            line = writer.stdout.readline()
            if not line:
                break
            acked.add(int(line))
        time.sleep(rng.uniform(0, 0.004))
        if writer.poll() is None:
            writer.send_signal(signal.SIGKILL)
            kills += 1
        rest, _ = writer.communicate()
        acked.update(int(line) for line in rest.split())
        # After every kill, the file must be readable and hold every acknowledged message.
        contents = [m.content for m in SessionStore(store.root).load(sid).messages]
        assert len(contents) == len(set(contents)), "a message was stored twice"
        stored = {int(c.split("-")[1]) for c in contents}
        assert acked <= stored, f"acknowledged but lost: {sorted(acked - stored)[:10]}"
    assert stored == set(range(total))
    assert list(store.root.glob("corrupt/*")) == []
    killed_mid_save = [p.name for p in store.sessions_dir.iterdir() if p.name.startswith(".")]
    # The next writer sweeps them, before its first save.
    SessionStore(store.root, stale_temp_seconds=0).update(sid, lambda s: None)
    leftovers = [p.name for p in store.sessions_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    report(
        "sigkill during saves",
        saves=total,
        kills=kills,
        unreadable=0,
        lost=0,
        temp_files_swept=len(killed_mid_save),
        seconds=round(time.monotonic() - started, 1),
    )


def test_concurrent_writers_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    per_writer = 200 if FULL else 30
    writers = 4
    store, sid = new_session(tmp_path / "store")
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store.root), sid, f"k{n}", str(per_writer)],
            stdout=subprocess.DEVNULL,
        )
        for n in range(writers)
    ]
    assert all(proc.wait(timeout=600) == 0 for proc in procs)
    contents = [m.content for m in store.load(sid).messages]
    expected = {f"k{n}-{i}" for n in range(writers) for i in range(per_writer)}
    assert len(contents) == len(set(contents)) == len(expected)
    assert set(contents) == expected
    report(
        "concurrent writers",
        writers=writers,
        saves=writers * per_writer,
        lost=0,
        duplicates=0,
        seconds=round(time.monotonic() - started, 1),
        saves_per_second=round(writers * per_writer / (time.monotonic() - started)),
    )
    json.dumps(contents)  # the history stays serializable


def test_the_server_and_kernel_like_writers_share_a_session(tmp_path: Path) -> None:
    from ..real_server import Server

    turns = 10 if FULL else 3
    per_writer = 100 if FULL else 20
    root = tmp_path / "root"
    (root / "analysis").mkdir(parents=True)
    (root / "analysis" / "q3.ipynb").write_text("{}")
    server = Server(root, tmp_path / "store", tmp_path).start(
        extra_args=["--AssistantExtension.checkpoint_interval_seconds=0.05"]
    )
    try:
        sid = server.call("POST", "/sessions", {"path": "analysis/q3.ipynb"})["id"]
        started = time.monotonic()
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(server.store), sid, f"k{n}", str(per_writer)],
                stdout=subprocess.DEVNULL,
            )
            for n in range(4)
        ]
        for turn in range(turns):
            server.call("POST", f"/sessions/{sid}/messages", {"content": f"scenario:slow t{turn}"})
            assert server.call("GET", f"/sessions/{sid}/events")[-1]["event"] == "done"
        assert all(proc.wait(timeout=600) == 0 for proc in procs)
        messages = server.call("GET", f"/sessions/{sid}")["messages"]
    finally:
        server.stop()
    ids = [m["id"] for m in messages]
    assert len(ids) == len(set(ids)), "a message was stored twice"
    written = {m["content"] for m in messages if m["content"].startswith("k")}
    assert written == {f"k{n}-{i}" for n in range(4) for i in range(per_writer)}
    replies = [m for m in messages if m["role"] == "assistant"]
    assert len(replies) == turns
    assert all(m["status"] == "complete" for m in replies)
    asked = [m["content"] for m in messages if m["content"].startswith("scenario:slow")]
    assert asked == [f"scenario:slow t{turn}" for turn in range(turns)]
    report(
        "server + 4 writers",
        turns=turns,
        writer_saves=4 * per_writer,
        lost=0,
        duplicates=0,
        seconds=round(time.monotonic() - started, 1),
    )
