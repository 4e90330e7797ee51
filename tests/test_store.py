"""SessionStore: atomic writes, permissions, locks across processes, corrupt files, listing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jupyter_assistant.errors import NotFound, StoreUnavailable
from jupyter_assistant.models import Message, Session
from jupyter_assistant.store import SessionCorrupt, SessionStore, validate_session_id


def make_session(store: SessionStore, key: str = "/nb/a.ipynb", path: str = "a.ipynb") -> Session:
    session = Session(path=path, notebook_key=key, working_dir="/nb", provider="claude")
    return store.create(session)


def test_create_load_round_trip_and_permissions(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "store")
    session = make_session(store)
    session_file = store.session_file(session.id)
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    for folder in (store.root, store.sessions_dir, store.locks_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    loaded = store.load(session.id)
    assert loaded.id == session.id
    assert loaded.version == 1
    data = json.loads(session_file.read_text())
    assert "status" not in data  # derived from process records, never stored
    assert {"context", "messages", "pending_message", "provider_session_id", "working_dir"} <= set(
        data
    )


def test_existing_world_readable_store_is_tightened(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    SessionStore(root)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o722])
def test_a_store_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    root = tmp_path / "store"
    root.mkdir()
    root.chmod(mode)
    with pytest.raises(StoreUnavailable, match="chmod 700"):
        SessionStore(root)
    assert list(root.iterdir()) == []  # nothing was created in it


def test_a_store_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(root, 4242, 4242)  # give it away
    else:
        root = Path("/usr")  # owned by root, not by us
    with pytest.raises(StoreUnavailable, match="belongs to another user"):
        SessionStore(root)


@pytest.mark.parametrize(
    "bad",
    [
        "../etc/passwd",
        "..",
        "",
        "not-a-uuid",
        "00000000-0000-0000-0000-00000000000G",
        "0000000000000000000000000000000A",
        "{12345678-1234-1234-1234-123456789abc}",
        "12345678-1234-1234-1234-123456789ABC",
        "12345678-1234-1234-1234-123456789abc/../x",
    ],
)
def test_session_ids_are_validated_before_any_path_is_built(tmp_path: Path, bad: str) -> None:
    store = SessionStore(tmp_path / "store")
    with pytest.raises(NotFound):
        validate_session_id(bad)
    with pytest.raises(NotFound):
        store.load(bad)
    assert list(store.sessions_dir.iterdir()) == []


def test_update_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "store")
    session = make_session(store)

    def boom(s: Session) -> None:
        s.messages.append(Message(role="user", content="half"))
        raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        store.update(session.id, boom)
    assert store.load(session.id).messages == []
    store.update(session.id, lambda s: s.messages.append(Message(role="user", content="hi")))
    assert [m.content for m in store.load(session.id).messages] == ["hi"]
    assert [p.name for p in store.sessions_dir.iterdir()] == [f"{session.id}.json"]


def test_temp_files_of_killed_writers_are_swept_before_the_first_write(tmp_path: Path) -> None:
    session = make_session(SessionStore(tmp_path / "store"))
    sessions_dir = tmp_path / "store" / "sessions"
    stale, fresh = sessions_dir / ".dead.json.1.tmp", sessions_dir / ".live.json.2.tmp"
    for temp in (stale, fresh):
        temp.write_bytes(b'{"half": ')
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    store = SessionStore(tmp_path / "store", stale_temp_seconds=60)
    assert [s["id"] for s in store.list_summaries()] == [session.id]
    store.edit(session.id, lambda s: s.messages.append(Message(role="user", content="q")))
    assert not stale.exists()
    assert fresh.exists()  # may belong to a save in progress
    assert [m.content for m in store.load(session.id).messages] == ["q"]


def test_corrupt_file_is_set_aside_and_others_still_list(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "store")
    good = make_session(store, key="/nb/good.ipynb")
    bad = make_session(store, key="/nb/bad.ipynb")
    store.session_file(bad.id).write_text('{"version": 1, "id": ')  # truncated by a bad tool
    fresh = SessionStore(tmp_path / "store")  # a new process: no cached summaries
    rows = fresh.list_summaries()
    assert [row["id"] for row in rows] == [good.id]
    assert not fresh.session_file(bad.id).exists()
    assert len(list(fresh.corrupt_dir.iterdir())) == 1
    assert fresh.problems and bad.id in fresh.problems[0]
    with pytest.raises(NotFound):
        fresh.load(bad.id)


def test_corrupt_file_on_load_is_reported(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "store")
    session = make_session(store)
    store.session_file(session.id).write_bytes(b"\x00\xff garbage")
    with pytest.raises(SessionCorrupt, match="moved to"):
        store.load(session.id)
    assert len(list(store.corrupt_dir.iterdir())) == 1


def test_listing_filters_by_notebook_sorts_newest_first_and_sees_other_writers(
    tmp_path: Path,
) -> None:
    store = SessionStore(tmp_path / "store")
    first = make_session(store, key="/nb/a.ipynb")
    time.sleep(0.01)
    second = make_session(store, key="/nb/a.ipynb")
    other = make_session(store, key="/nb/b.ipynb")
    assert [r["id"] for r in store.list_summaries("/nb/a.ipynb")] == [second.id, first.id]
    assert len(store.list_summaries()) == 3
    # Another process (a kernel) changes a session: our cached listing must notice.
    other_store = SessionStore(tmp_path / "store")
    time.sleep(0.01)
    other_store.update(first.id, lambda s: setattr(s, "title", "renamed elsewhere"))
    rows = store.list_summaries("/nb/a.ipynb")
    assert rows[0]["id"] == first.id and rows[0]["title"] == "renamed elsewhere"
    other_store.delete(other.id)
    assert {r["id"] for r in store.list_summaries()} == {first.id, second.id}


def test_summary_cache_survives_a_restart_without_reparsing(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "store")
    session = make_session(store)
    store.list_summaries()
    assert (store.root / "index.json").exists()
    # Make the session file unparseable *without* changing its stat key: a restarted store
    # must answer from the cache and not parse the file at all.
    path = store.session_file(session.id)
    st = path.stat()
    size = st.st_size
    with open(path, "r+b") as handle:
        handle.write(b"X" * size)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    restarted = SessionStore(tmp_path / "store")
    assert [r["id"] for r in restarted.list_summaries()] == [session.id]


WRITER = textwrap.dedent(
    """
    import sys
    from jupyter_assistant.models import Message
    from jupyter_assistant.store import SessionStore
    store = SessionStore(sys.argv[1])
    for i in range(int(sys.argv[3])):
        store.update(
            sys.argv[2],
            lambda s: s.messages.append(Message(role="user", content=f"{sys.argv[4]}-{i}")),
        )
    """
)


def test_concurrent_writer_processes_lose_nothing(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "store")
    session = make_session(store)
    writers, per_writer = 4, 25
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store.root), session.id, str(per_writer), f"w{n}"]
        )
        for n in range(writers)
    ]
    assert all(proc.wait(timeout=120) == 0 for proc in procs)
    contents = [m.content for m in store.load(session.id).messages]
    assert len(contents) == writers * per_writer
    assert len(set(contents)) == writers * per_writer
    for n in range(writers):  # each writer's messages keep their order
        mine = [c for c in contents if c.startswith(f"w{n}-")]
        assert mine == [f"w{n}-{i}" for i in range(per_writer)]


READER = textwrap.dedent(
    """
    import json, sys, time
    path = sys.argv[1]
    deadline = time.time() + float(sys.argv[2])
    reads = 0
    while time.time() < deadline:
        with open(path, "rb") as handle:
            json.loads(handle.read())  # raises on a half-written file
        reads += 1
    print(reads)
    """
)


def test_a_reader_never_sees_a_half_written_file(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "store")
    session = make_session(store)
    big = "x" * 200_000  # large files make a torn write likely if writes were not atomic
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(store.session_file(session.id)), "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 2.5
    while time.time() < deadline:
        store.update(session.id, lambda s: s.messages.append(Message(role="user", content=big)))
    out, _ = reader.communicate(timeout=30)
    assert reader.returncode == 0
    assert int(out) > 10
