"""A full or read-only disk: a clear JSON error, no partial file, the old session intact."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import api, create_session, json_of

pytestmark = pytest.mark.usefixtures("notebook_dir")

STORE_BYTES = 512 * 1024


@pytest.fixture
def store_dir(tmp_path: Path) -> Iterator[Path]:
    """The store on a small tmpfs of its own, so that it can be filled or made read-only."""
    if os.geteuid() != 0:
        pytest.fail("mounting a small tmpfs for the store needs root (CI runs as root)")
    mount = tmp_path / "small-disk"
    mount.mkdir(mode=0o700)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={STORE_BYTES},mode=0700", "tmpfs", str(mount)],
        check=True,
    )
    try:
        yield mount / "assistant"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int) -> None:
    """Fill the file system until only about ``leave`` bytes are free."""
    stats = os.statvfs(disk)
    free = stats.f_bavail * stats.f_frsize
    with open(disk / "filler", "wb") as handle:
        handle.write(b"\0" * max(0, free - leave))


def remount(disk: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(disk)], check=True)


def leftovers(store: Path) -> list[str]:
    return sorted(p.name for p in (store / "sessions").iterdir() if p.name.startswith("."))


async def test_disk_full_is_507_and_changes_nothing(jp_fetch: Any, store_dir: Path) -> None:
    session = await create_session(jp_fetch)
    sid = session["id"]
    before = (store_dir / "sessions" / f"{sid}.json").read_bytes()
    fill(store_dir.parent, leave=16 * 1024)
    response = await api(
        jp_fetch, "sessions", sid, "messages", method="POST", body={"content": "x" * 100_000}
    )
    assert response.code == 507, response.body
    assert "space" in json_of(response)["message"]
    assert set(json_of(response)) == {"message"}
    assert (store_dir / "sessions" / f"{sid}.json").read_bytes() == before  # intact
    assert leftovers(store_dir) == []  # no partial temp file
    stored = json_of(await api(jp_fetch, "sessions", sid))
    assert stored["status"] == "idle"  # not left looking busy
    assert stored["messages"] == []
    created = await api(jp_fetch, "sessions", method="POST", body={"path": "analysis/q3.ipynb"})
    assert created.code in (201, 507)  # a small file may still fit
    (store_dir.parent / "filler").unlink()
    ok = await api(jp_fetch, "sessions", sid, "messages", method="POST", body={"content": "hi"})
    assert ok.code == 202


async def test_read_only_store_is_a_clear_500(jp_fetch: Any, store_dir: Path) -> None:
    session = await create_session(jp_fetch)
    sid = session["id"]
    remount(store_dir.parent, "ro")
    try:
        response = await api(
            jp_fetch, "sessions", sid, "messages", method="POST", body={"content": "hello"}
        )
        assert response.code == 500, response.body
        assert "read-only" in json_of(response)["message"]
        refused = await api(jp_fetch, "sessions", method="POST", body={"path": "analysis/q3.ipynb"})
        assert refused.code == 500
        assert "read-only" in json_of(refused)["message"]
        # reading still works
        assert json_of(await api(jp_fetch, "sessions", sid))["messages"] == []
        assert len(json_of(await api(jp_fetch, "sessions"))["sessions"]) == 1
    finally:
        remount(store_dir.parent, "rw")


async def test_a_reply_that_cannot_be_stored_ends_with_an_error_and_keeps_the_conversation(
    jp_fetch: Any, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .helpers import run_turn, types

    session = await create_session(jp_fetch)
    sid = session["id"]
    # Room for the turn's start (its process record and private launch files), not its reply.
    fill(store_dir.parent, leave=20 * 1024)
    monkeypatch.setenv("FAKE_COUNT", "60000")  # a 60 KB reply: more than the disk holds
    stream = await run_turn(jp_fetch, sid, "scenario:flood write a lot")
    assert types(stream)[-1] == "error", stream[-1]  # never `done` for a reply not stored
    error = stream[-1]["data"]
    assert error["code"] == "storage_full"
    assert "space" in error["message"]
    stored = json_of(await api(jp_fetch, "sessions", sid))
    assert stored["status"] == "idle"
    assert stored["provider_session_id"]  # the next turn resumes the provider's conversation
    assert stored["messages"][-1]["status"] == "error"
    assert stored["messages"][-1]["error"]["code"] == "storage_full"
    (store_dir.parent / "filler").unlink()
    again = await run_turn(jp_fetch, sid, "and now?")
    assert types(again)[-1] == "done"
