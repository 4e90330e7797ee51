"""Measure 5: append one message to a stored session of 1,000 messages (fsync included), vs a
bare fsync'd atomic write of the same bytes.

Figure: ``SessionStore.edit`` appending one assistant message, as a turn's end does (lock, check
that the file is the one this store last wrote, serialize the new message, temp file, fsync,
rename, fsync of the folder). ``SessionStore.update`` (any change: parse and serialize the whole
history) is reported beside it. Baseline: the
physical limit, the bytes of the resulting file written the same crash-safe way with nothing
else (temp file, write, fsync, rename, fsync of the folder), in the same folder. The session grows
by one message per run; each baseline run writes the file its append just produced.
Target: ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _common import Result, print_results, ratio_row, workspace

MESSAGES = 1000
LIMIT = 1.5
# A plausible exchange: a short question, a longer answer that ran one tool.
QUESTION = "Why does the groupby in cell 4 drop the rows with a missing region? " * 2
ANSWER = (
    "The groupby drops NaN keys by default (dropna=True). Pass dropna=False to keep them, or "
    "fill the missing regions first with df['region'].fillna('unknown'). " * 6
)
TOOL_RESULT = "region,amount\nnorth,10\nsouth,20\n,7\n" * 12


def build_session(root: Path) -> tuple[Any, str]:
    from jupyter_assistant.models import Message, Session, ToolCall
    from jupyter_assistant.store import SessionStore

    store = SessionStore(root)
    session = Session(
        path="analysis/q3.ipynb",
        notebook_key=str(root / "analysis" / "q3.ipynb"),
        working_dir=str(root / "analysis"),
        provider="claude",
        title="Why does the groupby drop rows?",
    )
    for i in range(MESSAGES // 2):
        turn = f"turn-{i}"
        session.messages.append(Message(role="user", content=QUESTION, turn_id=turn))
        tool = ToolCall(
            id=f"toolu_{i}", name="Read", input={"file_path": "sales.csv"}, result=TOOL_RESULT
        )
        session.messages.append(
            Message(role="assistant", content=ANSWER, turn_id=turn, tools=[tool])
        )
    store.create(session)
    return store, session.id


def append_once(store: Any, session_id: str, method: str = "edit") -> float:
    from jupyter_assistant.models import Message

    message = Message(role="assistant", content=ANSWER, turn_id="bench")
    write = getattr(store, method)
    started = time.perf_counter()
    write(session_id, lambda session: session.messages.append(message))
    return time.perf_counter() - started


def bare_write(folder: Path, data: bytes) -> float:
    """temp file, write, fsync, rename, fsync the folder: what any crash-safe save must do."""
    target = folder / "baseline.json"
    tmp = folder / ".baseline.json.tmp"
    started = time.perf_counter()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return time.perf_counter() - started


def phases(store: Any, session_id: str) -> str:
    """Where an append's time goes, apart from the write itself (medians of 5)."""
    from jupyter_assistant.models import Session

    raw = store.session_file(session_id).read_bytes()
    parse, dump = [], []
    for _ in range(5):
        started = time.perf_counter()
        session = Session.model_validate_json(raw)
        parse.append(time.perf_counter() - started)
        started = time.perf_counter()
        session.model_dump_json(exclude={"status"})
        dump.append(time.perf_counter() - started)
    return (
        f"of which parsing the {len(raw) / 1024:.0f} KiB file takes "
        f"{statistics.median(parse) * 1000:.1f} ms and serializing it "
        f"{statistics.median(dump) * 1000:.1f} ms"
    )


def run(quick: bool = False) -> list[Result]:
    runs = 4 if quick else 40
    with workspace("append") as home:
        store, session_id = build_session(home / "store")
        path = store.session_file(session_id)
        append_once(store, session_id)  # warm-up
        appends, writes = [], []
        for i in range(runs):
            # Alternate the order, so that a change in disk or CPU load hits both alike.
            if i % 2:
                writes.append(bare_write(path.parent, path.read_bytes()))
            appends.append(append_once(store, session_id))
            if not i % 2:
                writes.append(bare_write(path.parent, path.read_bytes()))
        updates = [append_once(store, session_id, "update") for _ in range(max(3, runs // 4))]
        size = path.stat().st_size
        breakdown = phases(store, session_id)
    row = ratio_row(
        "5",
        f"append 1 message to a {MESSAGES:,}-message session (fsync'd)",
        statistics.median(appends) * 1000,
        statistics.median(writes) * 1000,
        "ms",
        LIMIT,
    )
    row.notes += [
        f"{runs} interleaved runs; file {size / 1024:.0f} KiB; append "
        f"{min(appends) * 1000:.1f}..{max(appends) * 1000:.1f} ms, bare write "
        f"{min(writes) * 1000:.1f}..{max(writes) * 1000:.1f} ms",
        f"SessionStore.update (parses and serializes everything) appending the same: "
        f"{statistics.median(updates) * 1000:.1f} ms (median)",
        breakdown,
    ]
    return [row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    print_results(run(parser.parse_args().quick))


if __name__ == "__main__":
    sys.exit(main())
