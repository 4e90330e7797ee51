"""Undo a turn through the server, with the REAL Claude Code CLI (against the local stand-in)
changing files through Bash: the changes listed with diffs, the undo of a turn and those after
it, a user's later edit kept, conflicts, and what the agent is told next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jupyter_assistant.permissions import READ_ONLY_TOOLS

from .fakes.anthropic_standin import AnthropicStandIn
from .helpers import api, create_session, json_of, post_message, run_turn, types
from .test_real_claude import claude_env, claude_settings, messages_text, standin  # noqa: F401

pytestmark = pytest.mark.usefixtures("notebook_dir")


COMMANDS = [
    "printf 'region,amount\\nwest,5\\n' > sales.csv",
    "printf 'fresh\\n' > clean.py",
    "rm old.txt",
    "printf 'x\\n' > made.txt",
]


@pytest.fixture
def assistant_config() -> dict[str, Any]:
    # Exactly these commands run without asking (a redirect is no simple command for a rule
    # with a wildcard, which would ask).
    return {
        "permission_allowed_tools": [
            *READ_ONLY_TOOLS,
            *(f"Bash({c})" for c in COMMANDS),
            "Write",
            "Edit",
        ]
    }


@pytest.fixture
def jp_server_config(
    jp_server_config: dict[str, Any],
    claude_settings: dict[str, Any],  # noqa: F811
) -> dict[str, Any]:
    return {**jp_server_config, "ClaudeCodeProvider": claude_settings}


async def bash(fetch: Any, sid: str, command: str) -> str:
    stream = await run_turn(fetch, sid, f"RUN_BASH: {command}")
    assert types(stream)[-1] == "done", stream[-1]
    assert "permission_denied" not in types(stream), stream
    return str(stream[0]["data"]["turn_id"])


async def changes(fetch: Any, sid: str, turn_id: str) -> dict[str, Any]:
    response = await api(fetch, "sessions", sid, "turns", turn_id, "changes")
    assert response.code == 200, response.body
    return json_of(response)  # type: ignore[no-any-return]


async def revert(fetch: Any, sid: str, turn_id: str, **body: Any) -> Any:
    return await api(fetch, "sessions", sid, "turns", turn_id, "revert", method="POST", body=body)


async def test_changes_made_through_bash_are_listed_and_undone(
    jp_fetch: Any,
    notebook_dir: Path,
    standin: AnthropicStandIn,  # noqa: F811
) -> None:
    (notebook_dir / "old.txt").write_text("old\n")
    sid = (await create_session(jp_fetch))["id"]
    first = await bash(jp_fetch, sid, COMMANDS[0])
    assert (notebook_dir / "sales.csv").read_text() == "region,amount\nwest,5\n"
    listed = await changes(jp_fetch, sid, first)
    (entry,) = listed["files"]
    assert entry["path"] == "sales.csv" and entry["status"] == "modified"
    assert {"-north,10", "-south,20", "+west,5"} <= set(entry["diff"].splitlines())

    second = await bash(jp_fetch, sid, COMMANDS[1])
    third = await bash(jp_fetch, sid, COMMANDS[2])
    assert [f["status"] for f in (await changes(jp_fetch, sid, second))["files"]] == ["added"]
    assert (await changes(jp_fetch, sid, third))["files"][0] == {
        "path": "old.txt",
        "status": "deleted",
        "diff": "--- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-old",
    }
    (notebook_dir / "notes.md").write_text("mine\n")  # the user's, touched by no turn

    # Undo the middle turn: the third is undone too; the first stays; the user's file stays.
    response = await revert(jp_fetch, sid, second)
    assert response.code == 200, response.body
    assert json_of(response)["reverted"] == [second, third]
    assert not (notebook_dir / "clean.py").exists()
    assert (notebook_dir / "old.txt").read_text() == "old\n"
    assert (notebook_dir / "sales.csv").read_text() == "region,amount\nwest,5\n"
    assert (notebook_dir / "notes.md").read_text() == "mine\n"
    assert (await changes(jp_fetch, sid, third))["reverted"] is True

    # The agent is told with the next message.
    await run_turn(jp_fetch, sid, "What now?")
    told = messages_text(standin.main_bodies[-1])
    assert "the user undid turns 2, 3 of this conversation" in told

    # A file changed since the turn: a conflict, nothing overwritten; force overwrites.
    (notebook_dir / "sales.csv").write_text("the user's own edit\n")
    response = await revert(jp_fetch, sid, first)
    assert response.code == 409
    assert json_of(response)["conflicts"] == ["sales.csv"]
    assert (notebook_dir / "sales.csv").read_text() == "the user's own edit\n"
    response = await revert(jp_fetch, sid, first, force=True)
    assert response.code == 200, response.body
    assert (notebook_dir / "sales.csv").read_text() == "region,amount\nnorth,10\nsouth,20\n"


async def test_changes_made_through_write_and_edit_are_listed_and_undone(
    jp_fetch: Any,
    notebook_dir: Path,
    standin: AnthropicStandIn,  # noqa: F811
) -> None:
    (notebook_dir / "clean.py").write_text("df = load()\ndf = df.dropna()\n")
    sid = (await create_session(jp_fetch))["id"]
    stream = await run_turn(jp_fetch, sid, "RUN_EDIT: clean.py dropna()=>fillna(0)")
    assert types(stream)[-1] == "done", stream[-1]
    edited = str(stream[0]["data"]["turn_id"])
    assert "Edit" in [e["data"]["name"] for e in stream if e["event"] == "tool_use"]
    assert (notebook_dir / "clean.py").read_text() == "df = load()\ndf = df.fillna(0)\n"
    stream = await run_turn(jp_fetch, sid, "RUN_WRITE: summary.md Sales went up.")
    assert types(stream)[-1] == "done", stream[-1]
    written = str(stream[0]["data"]["turn_id"])
    assert (notebook_dir / "summary.md").read_text() == "Sales went up.\n"

    (entry,) = (await changes(jp_fetch, sid, edited))["files"]
    assert (entry["path"], entry["status"]) == ("clean.py", "modified")
    assert {"-df = df.dropna()", "+df = df.fillna(0)"} <= set(entry["diff"].splitlines())
    (entry,) = (await changes(jp_fetch, sid, written))["files"]
    assert (entry["path"], entry["status"]) == ("summary.md", "added")

    response = await revert(jp_fetch, sid, edited)  # and the Write after it
    assert response.code == 200, response.body
    assert json_of(response)["reverted"] == [edited, written]
    assert (notebook_dir / "clean.py").read_text() == "df = load()\ndf = df.dropna()\n"
    assert not (notebook_dir / "summary.md").exists()


async def test_bad_undo_requests_change_nothing(
    jp_fetch: Any,
    notebook_dir: Path,
    standin: AnthropicStandIn,  # noqa: F811
) -> None:
    sid = (await create_session(jp_fetch))["id"]
    turn_id = await bash(jp_fetch, sid, COMMANDS[3])
    assert (await revert(jp_fetch, sid, "no-such-turn")).code == 404
    response = await api(jp_fetch, "sessions", sid, "turns", "no-such-turn", "changes")
    assert response.code == 404 and "message" in json_of(response)
    assert (await revert(jp_fetch, sid, turn_id, force="yes")).code == 400
    assert (await revert(jp_fetch, sid, turn_id, everything=True)).code == 400
    other = "00000000-0000-4000-8000-000000000000"
    assert (await revert(jp_fetch, other, turn_id)).code == 404
    assert (notebook_dir / "made.txt").read_text() == "x\n"

    # While a turn runs, no undo.
    await post_message(jp_fetch, sid, "RUN_BASH: sleep 30")
    response = await revert(jp_fetch, sid, turn_id)
    assert response.code == 409 and "running" in json_of(response)["message"]
    assert (notebook_dir / "made.txt").read_text() == "x\n"
    await api(jp_fetch, "sessions", sid, "cancel", method="POST", body={})
