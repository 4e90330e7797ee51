"""Per-turn checkpoints on real folders: what a turn changed, its undo, conflicts, and a revert
killed midway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from jupyter_assistant.checkpoints import Conflict, ScanRules, TurnCheckpoints, UnknownTurn

SID = "session-1"


def tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".git" not in p.parts
    }


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data.csv").write_text("region,amount\nnorth,10\n")
    (work / "clean.py").write_text("print('clean')\n")
    (work / "data" / "old.txt").write_text("old\n")
    return work


@pytest.fixture
def checkpoints(tmp_path: Path) -> TurnCheckpoints:
    return TurnCheckpoints(tmp_path / "store")


def turn(checkpoints: TurnCheckpoints, folder: Path, turn_id: str, change: object) -> None:
    checkpoints.before_turn(SID, turn_id, str(folder), "q3.ipynb")
    assert callable(change)
    change()
    checkpoints.after_turn(SID, turn_id)


def test_a_turns_changes_are_listed_with_diffs(
    folder: Path, checkpoints: TurnCheckpoints, tmp_path: Path
) -> None:
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / "env").mkdir()
    (folder / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    before_listing = sorted(p.name for p in folder.iterdir())

    def change() -> None:
        (folder / "data.csv").write_text("region,amount\nnorth,10\nsouth,20\n")
        (folder / "new.py").write_text("x = 1\n")
        (folder / "data" / "old.txt").unlink()
        (folder / "image.bin").write_bytes(b"\x89PNG\0\0binary")

    turn(checkpoints, folder, "t1", change)
    result = checkpoints.changes(SID, "t1")
    by_path = {f["path"]: f for f in result["files"]}
    assert {p: f["status"] for p, f in by_path.items()} == {
        "data.csv": "modified",
        "new.py": "added",
        "data/old.txt": "deleted",
        "image.bin": "added",
    }
    assert "+south,20" in by_path["data.csv"]["diff"].splitlines()
    assert by_path["new.py"]["diff"].splitlines()[-1] == "+x = 1"
    assert by_path["data/old.txt"]["diff"].splitlines()[-1] == "-old"
    assert by_path["image.bin"]["binary"] is True
    covered = {n["path"]: n["reason"] for n in result["not_covered"]}
    assert covered == {".git": "ignored", "env": "virtualenv"}
    # Nothing was written into the user's folder.
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*before_listing, "new.py", "image.bin"]
    )
    assert not list(folder.rglob(".*.tmp")) and not list(folder.rglob(".incoming-*"))


def test_a_file_over_the_limit_is_reported_not_kept(tmp_path: Path, folder: Path) -> None:
    checkpoints = TurnCheckpoints(tmp_path / "store", ScanRules(max_file_bytes=1000))
    (folder / "big.parquet").write_bytes(b"x" * 5000)
    turn(checkpoints, folder, "t1", lambda: (folder / "big.parquet").write_bytes(b"y" * 6000))
    result = checkpoints.changes(SID, "t1")
    assert result["files"] == [{"path": "big.parquet", "status": "modified", "too_large": True}]
    assert {"path": "big.parquet", "reason": "too large"} in result["not_covered"]
    undone = checkpoints.revert(SID, "t1")
    assert undone["missed"] == ["big.parquet"]  # said, not silently skipped


def test_undo_restores_each_file_and_keeps_a_users_edit_to_another(
    folder: Path, checkpoints: TurnCheckpoints
) -> None:
    original = tree(folder)

    def change() -> None:
        (folder / "data.csv").write_text("changed\n")
        (folder / "made" / "deep").mkdir(parents=True)
        (folder / "made" / "deep" / "new.txt").write_text("new\n")
        (folder / "clean.py").unlink()

    turn(checkpoints, folder, "t1", change)
    (folder / "notes.md").write_text("the user's own notes\n")  # untouched by the turn
    result = checkpoints.revert(SID, "t1")
    assert result["reverted"] == ["t1"]
    assert tree(folder) == {**original, "notes.md": b"the user's own notes\n"}
    assert checkpoints.changes(SID, "t1")["reverted"] is True


def test_a_file_changed_after_the_turn_is_a_conflict_unless_forced(
    folder: Path, checkpoints: TurnCheckpoints
) -> None:
    turn(checkpoints, folder, "t1", lambda: (folder / "data.csv").write_text("by the agent\n"))
    (folder / "data.csv").write_text("by the user, later\n")
    with pytest.raises(Conflict) as raised:
        checkpoints.revert(SID, "t1")
    assert raised.value.paths == ["data.csv"]
    assert (folder / "data.csv").read_text() == "by the user, later\n"  # nothing changed
    checkpoints.revert(SID, "t1", force=True)
    assert (folder / "data.csv").read_text() == "region,amount\nnorth,10\n"


def test_undoing_the_middle_turn_of_three_undoes_the_third_too(
    folder: Path, checkpoints: TurnCheckpoints
) -> None:
    turn(checkpoints, folder, "t1", lambda: (folder / "a.txt").write_text("1\n"))
    after_first = tree(folder)
    turn(checkpoints, folder, "t2", lambda: (folder / "a.txt").write_text("2\n"))
    turn(checkpoints, folder, "t3", lambda: (folder / "b.txt").write_text("3\n"))
    assert checkpoints.turns(SID) == ["t1", "t2", "t3"]
    result = checkpoints.revert(SID, "t2")
    assert result["reverted"] == ["t2", "t3"]
    assert tree(folder) == after_first
    with pytest.raises(UnknownTurn):
        checkpoints.revert(SID, "no-such-turn")


def test_a_notebooks_cells_are_compared_by_id(folder: Path, checkpoints: TurnCheckpoints) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1", id="keep"),
        nbformat.v4.new_code_cell("y = 2", id="edit"),
        nbformat.v4.new_markdown_cell("# gone", id="gone"),
    ]
    nbformat.write(nb, folder / "q3.ipynb")

    def change() -> None:
        edited = nbformat.read(folder / "q3.ipynb", as_version=4)
        edited.cells[1].source = "y = 3"
        edited.cells[0].outputs = [nbformat.v4.new_output("stream", text="ran\n")]  # no edit
        edited.cells = [*edited.cells[:2], nbformat.v4.new_code_cell("z = 4", id="new")]
        nbformat.write(edited, folder / "q3.ipynb")

    turn(checkpoints, folder, "t1", change)
    cells = checkpoints.changes(SID, "t1")["cells"]
    assert [(c["id"], c["status"]) for c in cells] == [
        ("edit", "modified"),
        ("new", "added"),
        ("gone", "deleted"),
    ]
    assert cells[0]["diff"].splitlines()[-2:] == ["-y = 2", "+y = 3"]


REVERT_SCRIPT = """
import sys
from jupyter_assistant.checkpoints import TurnCheckpoints
print("reverting", flush=True)
TurnCheckpoints(sys.argv[1]).revert("session-1", "t1")
print("done", flush=True)
"""


def test_a_revert_killed_midway_leaves_each_file_old_or_new(
    folder: Path, checkpoints: TurnCheckpoints, tmp_path: Path
) -> None:
    old = {f"f{i:03}.dat": os.urandom(200_000) for i in range(150)}
    new = {name: os.urandom(200_000) for name in old}
    for name, data in old.items():
        (folder / name).write_bytes(data)

    def change() -> None:
        for name, data in new.items():
            (folder / name).write_bytes(data)

    turn(checkpoints, folder, "t1", change)
    process = subprocess.Popen(
        [sys.executable, "-c", REVERT_SCRIPT, str(tmp_path / "store")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "reverting"
    # Killed once some files are back: wait for the first one (a condition, not a time).
    while process.poll() is None and (folder / "f000.dat").read_bytes() != old["f000.dat"]:
        pass
    process.send_signal(signal.SIGKILL)
    process.wait()
    for name in old:
        data = (folder / name).read_bytes()
        assert data in (old[name], new[name]), f"{name} is half-written"
    # A second revert finishes the job (the turn is not marked reverted yet), and removes what
    # the killed one left half-copied beside the files.
    checkpoints.revert("session-1", "t1")
    assert all((folder / name).read_bytes() == data for name, data in old.items())
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["clean.py", "data", "data.csv", *old]
    )


def test_a_huge_folder_is_checkpointed_up_to_the_limits_and_says_so(
    tmp_path: Path, folder: Path
) -> None:
    rules = ScanRules(max_files=3, max_new_bytes=30)
    checkpoints = TurnCheckpoints(tmp_path / "store", rules)
    for name in "abcd":
        (folder / "data" / f"{name}.txt").write_text(name * 20)
    checkpoints.before_turn(SID, "t1", str(folder), "q3.ipynb")
    checkpoints.after_turn(SID, "t1")
    reasons = {n["reason"] for n in checkpoints.changes(SID, "t1")["not_covered"]}
    assert reasons == {"over the file limit", "too large"}


def test_no_checkpoint_takes_the_room_the_conversations_need(tmp_path: Path, folder: Path) -> None:
    import errno
    import shutil

    free = shutil.disk_usage(tmp_path).free
    checkpoints = TurnCheckpoints(tmp_path / "store", ScanRules(min_free_bytes=free + 2**40))
    with pytest.raises(OSError) as refused:
        checkpoints.before_turn(SID, "t1", str(folder), "q3.ipynb")
    assert refused.value.errno == errno.ENOSPC
    assert "MiB free" in str(refused.value)
    assert not (tmp_path / "store" / "checkpoints" / "sessions").exists()  # nothing written
    with pytest.raises(UnknownTurn):
        checkpoints.changes(SID, "t1")


def test_the_checkpoints_of_deleted_sessions_go_with_what_only_they_kept(
    tmp_path: Path, folder: Path, checkpoints: TurnCheckpoints
) -> None:
    turn(checkpoints, folder, "t1", lambda: (folder / "kept.txt").write_text("kept by t1\n"))
    checkpoints.before_turn("gone", "g1", str(folder), "q3.ipynb")
    (folder / "only-gone.txt").write_text("only the deleted session saw this\n")
    checkpoints.after_turn("gone", "g1")
    (folder / "only-gone.txt").unlink()
    blobs = checkpoints.root / "blobs"
    before = {p.name for p in blobs.rglob("*") if p.is_file()}
    # Gone: the file only it kept, and its turn's manifest after (the one that listed it).
    assert checkpoints.sweep(lambda session_id: session_id == SID) == (1, 2)
    assert not (checkpoints.root / "sessions" / "gone").exists()
    after = {p.name for p in blobs.rglob("*") if p.is_file()}
    assert len(before - after) == 2
    # The session that is left still undoes its turn from what was kept.
    assert checkpoints.revert(SID, "t1")["restored"] == ["kept.txt"]
    assert not (folder / "kept.txt").exists()
    assert checkpoints.sweep(lambda session_id: session_id == SID) == (0, 0)


def test_a_sweep_waits_for_a_checkpoint_being_written(
    tmp_path: Path, folder: Path, checkpoints: TurnCheckpoints
) -> None:
    import threading

    turn(checkpoints, folder, "t1", lambda: None)
    # Another process (a kernel's turn) holds the store's lock shared, as a checkpoint does.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys\n"
            f"lock = open({str(checkpoints.root / '.lock')!r}, 'a')\n"
            "fcntl.flock(lock, fcntl.LOCK_SH)\n"
            "print('held', flush=True)\n"
            "sys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline().strip() == "held"
    sweeper = threading.Thread(target=checkpoints.sweep_blobs)
    sweeper.start()
    sweeper.join(0.5)
    waited = sweeper.is_alive()
    holder.stdin.write("\n")
    holder.stdin.flush()
    holder.wait(10)
    sweeper.join(10)
    assert waited, "the sweep ran while a checkpoint held the store"
    assert not sweeper.is_alive()


async def test_server_start_up_removes_the_checkpoints_of_deleted_sessions(
    tmp_path: Path, folder: Path
) -> None:
    import logging

    from jupyter_assistant.models import Session
    from jupyter_assistant.retention import start_housekeeping
    from jupyter_assistant.store import SessionStore

    store = SessionStore(tmp_path / "store")
    live = Session(
        path="q3.ipynb",
        notebook_key=str(folder / "q3.ipynb"),
        working_dir=str(folder),
        provider="claude",
    )
    store.create(live)
    checkpoints = TurnCheckpoints(tmp_path / "store")
    for session_id in (live.id, "deleted-while-the-server-was-down"):
        checkpoints.before_turn(session_id, "t1", str(folder), "q3.ipynb")
        checkpoints.after_turn(session_id, "t1")
    await start_housekeeping(str(tmp_path / "store"), None, logging.getLogger("test"))
    assert checkpoints.turns(live.id) == ["t1"]
    assert checkpoints.turns("deleted-while-the-server-was-down") == []


def _notebook_json(*cells: tuple[str, str]) -> str:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source, id=cell_id) for cell_id, source in cells]
    return str(nbformat.writes(notebook))


def test_cells_changed_where_the_notebook_is_open_are_listed_and_given_back(
    folder: Path, checkpoints: TurnCheckpoints
) -> None:
    (folder / "q3.ipynb").write_text(_notebook_json(("a", "x = 1")))
    on_disk = (folder / "q3.ipynb").read_text()
    open_before = _notebook_json(("a", "x = 1"), ("b", "unsaved = 0"))
    open_after = _notebook_json(("a", "x = 2"), ("b", "unsaved = 0"), ("c", "new = 3"))
    checkpoints.before_turn(SID, "t1", str(folder), "q3.ipynb")
    # Two edits where it is open (the notebook tools): the first before, the last after.
    middle = _notebook_json(("a", "x = 2"), ("b", "unsaved = 0"))
    assert checkpoints.note_live(SID, "t1", open_before, middle)
    assert checkpoints.note_live(SID, "t1", middle, open_after)
    checkpoints.after_turn(SID, "t1")
    assert not checkpoints.note_live(SID, "no-such-turn", open_before, open_after)
    changes = checkpoints.changes(SID, "t1")
    assert changes["files"] == []  # the file was not written
    assert [(c["id"], c["status"]) for c in changes["cells"]] == [
        ("a", "modified"),
        ("c", "added"),
    ]
    # The user edited the new cell since: a conflict, named by the notebook and the cell.
    edited = _notebook_json(("a", "x = 2"), ("b", "unsaved = 0"), ("c", "new = 4"))
    with pytest.raises(Conflict) as conflict:
        checkpoints.revert(SID, "t1", notebook_now=edited)
    assert conflict.value.paths == ["q3.ipynb (cell c)"]
    # An edit to a cell the turn did not change is none of the undo's business.
    untouched = _notebook_json(("a", "x = 2"), ("b", "unsaved = 5"), ("c", "new = 3"))
    undone = checkpoints.revert(SID, "t1", notebook_now=untouched)
    assert undone["cells_target"] == open_before  # for the caller to put in the open notebook
    assert (folder / "q3.ipynb").read_text() == on_disk
    # Kept: before and after; gone: the state between the two edits, which nothing names.
    assert checkpoints.sweep(lambda session_id: True) == (0, 1)


def test_a_turn_that_changed_no_cell_where_it_is_open_gives_none_back(
    folder: Path, checkpoints: TurnCheckpoints
) -> None:
    same = _notebook_json(("a", "x = 1"))
    checkpoints.before_turn(SID, "t1", str(folder), "q3.ipynb")
    (folder / "data.csv").write_text("changed\n")
    checkpoints.after_turn(SID, "t1")
    assert checkpoints.changes(SID, "t1")["cells"] == []
    assert "cells_target" not in checkpoints.revert(SID, "t1", notebook_now=same)


def test_an_unchanged_folder_costs_its_turns_no_new_manifest(
    folder: Path, checkpoints: TurnCheckpoints
) -> None:
    for turn_id in ("t1", "t2", "t3"):
        turn(checkpoints, folder, turn_id, lambda: None)
    records = [checkpoints._read(SID, t) for t in ("t1", "t2", "t3")]
    refs = {r[key]["manifest"] for r in records for key in ("before", "after")}
    assert len(refs) == 1  # one manifest blob for all six checkpoints
    assert all(checkpoints._file(SID, t).stat().st_size < 1000 for t in ("t1", "t2", "t3"))
    (folder / "data.csv").write_text("region,amount\nwest,5\n")
    turn(checkpoints, folder, "t4", lambda: None)
    assert checkpoints._read(SID, "t4")["before"]["manifest"] not in refs


def test_a_sweep_by_another_process_is_not_trusted_past(tmp_path: Path, folder: Path) -> None:
    server = TurnCheckpoints(tmp_path / "store")  # a server's: its caches know the folder
    turn(server, folder, "gone-turn", lambda: None)
    # The command (another process) deletes that conversation and sweeps: the contents only
    # it kept go, though the server's latest manifest still names them.
    command = TurnCheckpoints(tmp_path / "store")
    assert command.sweep(lambda session_id: False)[0] == 1
    assert not [p for p in (server.root / "blobs").rglob("*") if p.is_file()]
    # The server's next turn keeps the files again, so its undo has them.
    server.before_turn("other", "t1", str(folder), "q3.ipynb")
    (folder / "clean.py").write_text("print('changed')\n")
    server.after_turn("other", "t1")
    undone = server.revert("other", "t1")
    assert undone["missed"] == [] and undone["restored"] == ["clean.py"]
    assert (folder / "clean.py").read_text() == "print('clean')\n"
