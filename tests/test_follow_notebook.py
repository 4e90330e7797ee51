"""Sessions follow their notebook through renames and moves made in JupyterLab (the contents
API), and are kept, detached, when it is deleted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .helpers import api, create_session, eventually, json_of, run_turn, types

pytestmark = pytest.mark.usefixtures("notebook_dir")


async def contents(fetch: Any, path: str, method: str, body: Any = None) -> Any:
    response = await fetch(
        "api",
        "contents",
        *path.split("/"),
        method=method,
        body=json.dumps(body) if body is not None else None,
        raise_error=False,
    )
    assert response.code in (200, 201, 204), response.body
    return response


async def listed(fetch: Any, path: str) -> list[str]:
    response = await api(fetch, "sessions", params={"path": path})
    if response.code != 200:
        return []
    return [row["id"] for row in json_of(response)["sessions"]]


async def test_a_renamed_notebook_keeps_its_session(jp_fetch: Any, jp_root_dir: Path) -> None:
    session = await create_session(jp_fetch)
    (jp_root_dir / "reports").mkdir()
    await contents(jp_fetch, "analysis/q3.ipynb", "PATCH", {"path": "reports/q3-final.ipynb"})

    async def followed() -> bool:
        return await listed(jp_fetch, "reports/q3-final.ipynb") == [session["id"]]

    await eventually(followed, message="the session did not follow the rename")
    moved = json_of(await api(jp_fetch, "sessions", session["id"]))
    assert moved["path"] == "reports/q3-final.ipynb"
    assert moved["working_dir"] == str((jp_root_dir / "reports").resolve())
    assert await listed(jp_fetch, "reports/q3-final.ipynb") == [session["id"]]
    assert await listed(jp_fetch, "analysis/q3.ipynb") == []
    # the next turn runs in the new folder
    stream = await run_turn(jp_fetch, session["id"], "scenario:tool where now?")
    result = next(e["data"] for e in stream if e["event"] == "tool_result")
    assert result["content"].strip() == str((jp_root_dir / "reports").resolve())


async def test_a_renamed_folder_carries_its_notebooks_sessions(
    jp_fetch: Any, jp_root_dir: Path
) -> None:
    session = await create_session(jp_fetch)
    other = await create_session(jp_fetch, path="other.ipynb")
    await contents(jp_fetch, "analysis", "PATCH", {"path": "analysis-2026"})

    async def followed() -> bool:
        return await listed(jp_fetch, "analysis-2026/q3.ipynb") == [session["id"]]

    await eventually(followed, message="the session did not follow the folder rename")
    assert json_of(await api(jp_fetch, "sessions", session["id"]))["path"] == (
        "analysis-2026/q3.ipynb"
    )
    assert json_of(await api(jp_fetch, "sessions", other["id"]))["path"] == "other.ipynb"
    assert await listed(jp_fetch, "analysis-2026/q3.ipynb") == [session["id"]]


async def test_a_deleted_notebook_keeps_its_session_detached(jp_fetch: Any) -> None:
    session = await create_session(jp_fetch)
    assert types(await run_turn(jp_fetch, session["id"], "hello"))[-1] == "done"
    await contents(jp_fetch, "analysis/q3.ipynb", "DELETE")

    async def detached() -> bool:
        rows = json_of(await api(jp_fetch, "sessions"))["sessions"]
        return bool(rows) and rows[0]["detached"] is True

    await eventually(detached, message="the session was not marked detached")
    stored = json_of(await api(jp_fetch, "sessions", session["id"]))
    assert stored["detached"] is True
    assert len(stored["messages"]) == 2  # the conversation is kept
    rows = json_of(await api(jp_fetch, "sessions"))["sessions"]
    assert [(r["id"], r["detached"]) for r in rows] == [(session["id"], True)]


async def test_a_notebook_moved_through_a_symlink_out_of_the_root_is_detached(
    jp_fetch: Any, jp_root_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (jp_root_dir / "linkout").symlink_to(outside, target_is_directory=True)
    session = await create_session(jp_fetch)
    before = json_of(await api(jp_fetch, "sessions", session["id"]))
    await contents(jp_fetch, "analysis/q3.ipynb", "PATCH", {"path": "linkout/q3.ipynb"})

    async def detached() -> bool:
        return bool(json_of(await api(jp_fetch, "sessions", session["id"]))["detached"])

    await eventually(detached, message="the session was not detached")
    after = json_of(await api(jp_fetch, "sessions", session["id"]))
    assert after["working_dir"] == before["working_dir"] != str(outside)
    assert after["path"] == before["path"]
    assert "outside the server root" in after["detached_reason"]
    # the next turn does not run in the folder outside the root
    stream = await run_turn(jp_fetch, session["id"], "scenario:tool where now?")
    ran_in = [e["data"]["content"].strip() for e in stream if e["event"] == "tool_result"]
    assert str(outside) not in ran_in


async def test_a_folder_swapped_for_a_symlink_refuses_the_next_turn(
    jp_fetch: Any, jp_root_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    session = await create_session(jp_fetch)
    assert types(await run_turn(jp_fetch, session["id"], "hello"))[-1] == "done"
    folder = jp_root_dir / "analysis"
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()
    folder.symlink_to(outside, target_is_directory=True)
    stream = await run_turn(jp_fetch, session["id"], "scenario:tool where now?")
    assert types(stream)[-1] == "error"
    error = stream[-1]["data"]
    assert error["code"] == "unsafe_working_dir"
    assert str(outside) in error["message"]
    assert "tool_result" not in types(stream)
