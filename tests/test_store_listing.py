"""Listing: the change log every writer appends to, the periodic and fallback full scans, the
summary index (its damage ignored), and the pre-encoded JSON rows of summaries_json."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from jupyter_assistant import summary_index as index_module
from jupyter_assistant.errors import StoreUnavailable
from jupyter_assistant.models import Message, Session
from jupyter_assistant.store import SessionStore
from jupyter_assistant.summaries import summary_from_json


def make(store: SessionStore, key: str = "/nb/a.ipynb", title: str = "") -> Session:
    return store.create(
        Session(
            path=key.rsplit("/", 1)[-1],
            notebook_key=key,
            working_dir="/nb",
            provider="claude",
            title=title,
        )
    )


def no_full_scan(store: SessionStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> None:
        raise AssertionError("listed by looking at every file")

    monkeypatch.setattr(store.index, "_full_scan", fail)


def titles(rows: list[dict[str, Any]]) -> dict[str, str]:
    return {row["id"]: row["title"] for row in rows}


def test_changes_by_other_writers_are_read_from_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    lister = SessionStore(root)
    sessions = [make(lister, title=f"s{i}") for i in range(5)]
    assert len(lister.list_summaries()) == 5  # a full scan, the first time
    other = SessionStore(root)  # another process: a kernel
    no_full_scan(lister, monkeypatch)
    other.update(sessions[1].id, lambda s: setattr(s, "title", "renamed"))
    other.edit(sessions[2].id, lambda s: s.messages.append(Message(role="user", content="q")))
    created = make(other, title="new")
    other.delete(sessions[3].id)
    rows = lister.list_summaries()
    assert titles(rows) == {
        sessions[0].id: "s0",
        sessions[1].id: "renamed",
        sessions[2].id: "s2",
        sessions[4].id: "s4",
        created.id: "new",
    }
    assert next(r for r in rows if r["id"] == sessions[2].id)["message_count"] == 1
    order = sorted(rows, key=lambda r: (r["updated_at"], r["id"]), reverse=True)
    assert rows == order  # newest first
    # Nothing changed since: the log is not even read past its end.
    assert lister.list_summaries() == rows


def test_a_change_nobody_logged_is_seen_by_the_periodic_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    lister = SessionStore(root)
    first = make(lister, title="first")
    lister.list_summaries()
    # A writer that does not log (an older version of this package, or a hand edit).
    path = lister.session_file(first.id)
    data = json.loads(path.read_text())
    data["title"] = "edited without logging"
    path.write_text(json.dumps(data))
    assert titles(lister.list_summaries()) == {first.id: "first"}  # until the next full scan
    monkeypatch.setattr(index_module, "FULL_SCAN_SECONDS", 0.0)
    assert titles(lister.list_summaries()) == {first.id: "edited without logging"}


@pytest.mark.parametrize("how", ["deleted", "replaced", "garbled", "truncated"])
def test_a_log_that_cannot_be_trusted_means_a_full_scan(tmp_path: Path, how: str) -> None:
    root = tmp_path / "store"
    lister = SessionStore(root)
    first = make(lister, title="first")
    lister.list_summaries()
    other = SessionStore(root)
    other.update(first.id, lambda s: setattr(s, "title", "changed"))
    log_file = root / "changes.log"
    if how == "deleted":
        log_file.unlink()
    elif how == "replaced":
        log_file.write_bytes(b"")  # e.g. rotated: a new file
        os.replace(log_file, root / "old.log")
        log_file.write_bytes(b"")
    elif how == "garbled":
        with open(log_file, "ab") as handle:
            handle.write(b"not an id\n")
    else:
        with open(log_file, "r+b") as handle:
            handle.truncate(0)
    assert titles(lister.list_summaries()) == {first.id: "changed"}
    # After the scan, the log is used again.
    second = make(other, title="second")
    assert titles(lister.list_summaries()) == {first.id: "changed", second.id: "second"}


def test_the_log_is_replaced_when_it_grows_too_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_module, "CHANGES_MAX_BYTES", 200)
    root = tmp_path / "store"
    lister = SessionStore(root)
    writer = SessionStore(root)
    session = make(writer)
    lister.list_summaries()
    inode = (root / "changes.log").stat().st_ino
    for i in range(8):  # 37 bytes per save
        writer.update(session.id, lambda s, i=i: setattr(s, "title", f"t{i}"))
    assert (root / "changes.log").stat().st_size <= 200
    assert (root / "changes.log").stat().st_ino != inode
    assert titles(lister.list_summaries()) == {session.id: "t7"}


def test_a_restart_reads_the_index_and_the_log_tail_not_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    first = SessionStore(root)
    sessions = [make(first, key=f"/nb/{i % 2}.ipynb", title=f"s{i}") for i in range(6)]
    first.list_summaries()
    assert (root / "index.json").exists()
    SessionStore(root).update(sessions[0].id, lambda s: setattr(s, "title", "after the index"))

    restarted = SessionStore(root)
    no_full_scan(restarted, monkeypatch)
    running = {sessions[3].id}
    listed = json.loads(restarted.summaries_json(running=running))  # from the index's text
    rows = restarted.list_summaries()  # now parsed into rows
    assert titles(rows)[sessions[0].id] == "after the index"
    assert [row["id"] for row in listed] == [row["id"] for row in rows]
    for row, summary in zip(listed, rows, strict=True):
        assert row["status"] == ("running" if row["id"] in running else "idle")
        summary = {k: v for k, v in summary.items() if k not in ("notebook_key", "status")}
        assert {k: v for k, v in row.items() if k != "status"} == summary
    one = json.loads(restarted.summaries_json("/nb/1.ipynb"))
    assert [row["id"] for row in one] == [
        r["id"] for r in rows if r["notebook_key"] == "/nb/1.ipynb"
    ]


def test_the_first_listing_of_a_restart_needs_no_row_parsed(tmp_path: Path) -> None:
    root = tmp_path / "store"
    first = SessionStore(root)
    sessions = [make(first, title=f"s{i}") for i in range(3)]
    first.list_summaries()
    restarted = SessionStore(root)
    text = restarted.summaries_json(running={sessions[1].id})
    assert restarted.index._unparsed is not None  # answered from the index's lines
    statuses = {row["id"]: row["status"] for row in json.loads(text)}
    assert statuses == {sessions[0].id: "idle", sessions[1].id: "running", sessions[2].id: "idle"}
    # A write by this store parses them, and the listing goes on from the rows.
    first_again = restarted.edit(sessions[0].id, lambda s: setattr(s, "title", "edited"))[0]
    assert restarted.index._unparsed is None
    rows = {row["id"]: row for row in json.loads(restarted.summaries_json())}
    assert rows[sessions[0].id]["title"] == first_again.title == "edited"


@pytest.mark.parametrize("damage", ["flip", "truncate", "old-format", "empty"])
def test_a_damaged_index_is_rebuilt_from_the_files(tmp_path: Path, damage: str) -> None:
    root = tmp_path / "store"
    first = SessionStore(root)
    sessions = [make(first, title=f"s{i}") for i in range(3)]
    expected = first.list_summaries()
    index = root / "index.json"
    data = index.read_bytes()
    if damage == "flip":  # inside a row's JSON: still valid JSON, but not what was written
        at = data.rindex(b'"title":"s') + len(b'"title":"s')
        data = data[:at] + b"X" + data[at + 1 :]
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "old-format":
        data = json.dumps({"version": 1, "summaries": {}}).encode()
    else:
        data = b""
    index.write_bytes(data)
    restarted = SessionStore(root)
    assert json.loads(restarted.summaries_json()) == [
        {k: v for k, v in row.items() if k != "notebook_key"} for row in expected
    ]
    assert restarted.list_summaries() == expected
    assert {row["id"] for row in expected} == {s.id for s in sessions}


def test_json_and_dict_listings_agree_and_mark_running_sessions(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "store")
    a = make(store, key="/nb/a.ipynb", title='quotes " and \\ and ,"status":"idle"} é')
    b = make(store, key="/nb/b.ipynb", title="b")
    store.edit(a.id, lambda s: s.messages.append(Message(role="user", content="x")))
    for key in (None, "/nb/a.ipynb", "/nb/none.ipynb"):
        rows = store.list_summaries(key)
        listed = json.loads(store.summaries_json(key, running={b.id}))
        assert [r["id"] for r in listed] == [r["id"] for r in rows]
        for row, summary in zip(listed, rows, strict=True):
            assert row["status"] == ("running" if row["id"] == b.id else "idle")
            assert "notebook_key" not in row
            assert {**row, "status": "idle", "notebook_key": summary["notebook_key"]} == summary
    # The same from an index's lines (a restarted store), titles with JSON in them included.
    store.list_summaries()
    restarted = SessionStore(tmp_path / "store")
    assert json.loads(restarted.summaries_json(running={a.id})) == [
        {**r, "status": "running" if r["id"] == a.id else "idle"}
        for r in json.loads(store.summaries_json())
    ]


def test_the_summary_without_pydantic_is_the_models_summary(tmp_path: Path) -> None:
    session = Session(
        path="x/a.ipynb",
        notebook_key="/root/x/a.ipynb",
        working_dir="/root/x",
        provider="codex",
        title="t",
        detached=True,
        pending_message=Message(role="user", content="waiting"),
        messages=[Message(role="user", content="one"), Message(role="assistant")],
    )
    data = json.loads(session.model_dump_json(exclude={"status"}))
    assert summary_from_json(data) == session.summary()
    data["from_a_newer_version"] = {"kept": True}
    assert summary_from_json(data) == session.summary()
    # Not plainly what this package writes: left to pydantic.
    for broken in ({**data, "title": 5}, {**data, "messages": {}}, {**data, "status": "idle"}):
        assert summary_from_json(broken) is None
    assert summary_from_json([data]) is None


def test_a_file_pydantic_would_refuse_is_set_aside_when_listed(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "store")
    good = make(store, title="good")
    bad = make(store, title="bad")
    path = store.session_file(bad.id)
    data = json.loads(path.read_text())
    data["title"] = 5  # valid JSON, not a session
    path.write_text(json.dumps(data))
    fresh = SessionStore(tmp_path / "store")
    assert titles(fresh.list_summaries()) == {good.id: "good"}
    assert fresh.problems and bad.id in fresh.problems[0]


LOCKER = textwrap.dedent(
    """
    import sys, time
    from jupyter_assistant.store import SessionStore
    store = SessionStore(sys.argv[1])
    with store.lock(sys.argv[2]):
        print("locked", flush=True)
        time.sleep(float(sys.argv[3]))
    """
)


def test_the_lock_excludes_other_processes_and_times_out(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "store", lock_timeout=0.3)
    session = make(store)
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(store.root), session.id, "5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreUnavailable, match="locked by another process"):
            store.update(session.id, lambda s: setattr(s, "title", "blocked"))
    finally:
        holder.kill()
        holder.wait()
    store.update(session.id, lambda s: setattr(s, "title", "free again"))  # released on death
    assert store.load(session.id).title == "free again"


@pytest.mark.filterwarnings("ignore:flock not supported")
def test_without_flock_the_lock_falls_back_to_a_soft_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SessionStore(tmp_path / "store", lock_timeout=0.3)
    session = make(store)

    def no_flock(fd: int, operation: int) -> None:
        raise OSError(errno.ENOSYS, "Function not implemented")  # as some FUSE mounts answer

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with pytest.warns(UserWarning, match="SoftFileLock"):  # filelock's fallback
        store.update(session.id, lambda s: setattr(s, "title", "soft"))
    assert store.load(session.id).title == "soft"
    with store.lock(session.id), pytest.raises(StoreUnavailable, match="locked"):
        store.update(session.id, lambda s: None)


def test_a_lock_error_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SessionStore(tmp_path / "store")
    session = make(store)

    def broken(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", broken)
    with pytest.raises(StoreUnavailable, match="No locks available"):
        store.update(session.id, lambda s: None)


def test_a_file_that_could_not_be_read_during_a_scan_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    lister = SessionStore(root)
    session = make(lister, title="v1")
    lister.list_summaries()
    SessionStore(root).update(session.id, lambda s: setattr(s, "title", "v2"))
    failures = {"left": 1}

    def flaky_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).endswith(f"{session.id}.json") and failures["left"]:
            failures["left"] -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return open(path, *args, **kwargs)

    monkeypatch.setattr(index_module, "open", flaky_open, raising=False)
    monkeypatch.setattr(index_module, "FULL_SCAN_SECONDS", 0.0)  # every listing scans
    os.utime(root / "sessions", ns=(0, 0))  # an old folder mtime: a scan would be trusted
    assert titles(lister.list_summaries()) == {session.id: "v1"}  # the read failed: kept
    assert failures["left"] == 0
    # The failed scan was not trusted, so the next one reads the file although the folder's
    # mtime has not moved since.
    assert titles(lister.list_summaries()) == {session.id: "v2"}


def test_absurdly_nested_json_is_set_aside_and_the_others_still_list(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = SessionStore(root)
    good = make(store, title="good")
    bad = make(store, title="bad")
    store.session_file(bad.id).write_bytes(b"[" * 100_000)
    rows = SessionStore(root).list_summaries()
    assert titles(rows) == {good.id: "good"}
    assert [p.name.split(".")[0] for p in (root / "corrupt").iterdir()] == [bad.id]


def test_a_logged_change_is_read_even_when_the_files_stat_looks_the_same(tmp_path: Path) -> None:
    # On coarse-mtime file systems (1 s, or a jiffy) that reuse inodes, another process's
    # rewrite can leave (inode, size, mtime) as they were: its change-log entry still counts.
    root = tmp_path / "store"
    lister = SessionStore(root)
    session = make(lister, title="aaaa")
    lister.list_summaries()
    path = lister.session_file(session.id)
    before = path.stat()
    data = path.read_bytes().replace(b'"title":"aaaa"', b'"title":"bbbb"')
    with path.open("r+b") as handle:  # same inode, same size
        handle.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime
    with (root / "changes.log").open("a") as log:  # what the other process's store appends
        log.write(session.id + "\n")
    assert titles(lister.list_summaries()) == {session.id: "bbbb"}
    # Its own writes are not read back (their rows were set when they were written).
    lister.update(session.id, lambda s: setattr(s, "title", "cccc"))
    assert titles(lister.list_summaries()) == {session.id: "cccc"}
    assert not lister.index._own_entries  # every entry of its own was matched
