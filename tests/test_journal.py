"""Event journals: what a kernel's turn writes and the server streams (journal.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_assistant import events
from jupyter_assistant.journal import EventJournal, JournalReader, journal_path
from jupyter_assistant.models import Session
from jupyter_assistant.store import SessionStore

SID = "3f0c6a55-7a36-4c6e-9d8f-0f0b1c1e2d3a"


def test_a_journal_is_private_replaces_the_sessions_older_ones_and_goes_with_it(
    tmp_path: Path,
) -> None:
    store = SessionStore(tmp_path)
    session = store.create(
        Session(path="a.ipynb", notebook_key="/a.ipynb", working_dir="/", provider="claude")
    )
    first = EventJournal.open(tmp_path, session.id, "turn-1")
    first.write({"type": "turn_started", "turn_id": "turn-1"})
    first.close()
    second = EventJournal.open(tmp_path, session.id, "turn-2")
    second.write({"type": "text", "text": "hi"})
    assert not first.path.exists()  # the session's next turn replaces it
    assert second.path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "turns").stat().st_mode & 0o777 == 0o700
    assert json.loads(second.path.read_text()) == {"type": "text", "text": "hi"}
    second.close()
    second.write({"type": "text", "text": "after close: dropped"})  # never raises
    store.delete(session.id)
    assert list((tmp_path / "turns").iterdir()) == []


@pytest.mark.parametrize("turn_id", ["", "../x", "a/b", "a.b"])
def test_turn_ids_cannot_name_other_paths(tmp_path: Path, turn_id: str) -> None:
    with pytest.raises(ValueError):
        journal_path(tmp_path, SID, turn_id)


async def test_the_reader_follows_the_writer_from_any_event_on(tmp_path: Path) -> None:
    path = journal_path(tmp_path, SID, "t1")
    path.parent.mkdir()
    lines = [
        {"type": "turn_started", "turn_id": "t1", "provider": "claude"},
        {"type": "text", "text": "Hel"},
        {"type": "permission_request", "request_id": "r1", "tool_name": "Write", "summary": "x"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"type": "te')
    reader = JournalReader(path, "t1", writer_alive=lambda: True)
    batch = await reader.next_batch(0, timeout=0.2)
    assert batch is not None and [seq for seq, _ in batch] == [1, 2, 3]  # not the half line
    assert batch[:2] == [(1, lines[0]), (2, lines[1])]
    # The question is answered in the notebook cell: the sidebar is told so, not asked.
    assert batch[2][1]["type"] == "notice"
    assert "allow: x. Answer it in the cell" in batch[2][1]["message"]
    assert await reader.next_batch(3, timeout=0.1) == []  # nothing new yet: a keep-alive
    with path.open("a") as handle:
        answered = events.permission_answered("r1", "allow", "once", None, "user")
        handle.write(f'xt", "text": "lo"}}\nnot json\n{json.dumps(answered)}\n')
        handle.write('{"type": "done", "cost_usd": 0}\n')
    batch = await reader.next_batch(3, timeout=1)
    assert batch == [(4, {"type": "text", "text": "lo"}), (7, {"type": "done", "cost_usd": 0})]
    assert await reader.next_batch(7, timeout=1) is None  # over
    # A client that reconnects with Last-Event-ID t1:2 gets what follows.
    again = JournalReader(path, "t1", writer_alive=lambda: True)
    assert [seq for seq, _ in await again.next_batch(2, timeout=1) or []] == [3, 4, 7]


async def test_a_dead_writer_ends_the_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_assistant import journal

    monkeypatch.setattr(journal, "ALIVE_CHECK_SECONDS", 0.0)
    path = journal_path(tmp_path, SID, "t1")
    path.parent.mkdir()
    path.write_text(json.dumps({"type": "text", "text": "partial"}) + "\n")
    reader = JournalReader(path, "t1", writer_alive=lambda: False)
    assert await reader.next_batch(0, timeout=5) == [(1, {"type": "text", "text": "partial"})]
    assert await reader.next_batch(1, timeout=5) is None  # a killed kernel: no terminal event
