"""The notebook tools through the REAL Claude Code CLI (against the local Messages-API stand-in)
and the real server: the CLI is given the `notebook` MCP server, calls its tools, and each call
is approved, served on the notebook file and answered to the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from .fakes.anthropic_standin import AnthropicStandIn
from .helpers import (
    answer_permission,
    api,
    create_session,
    json_of,
    permission_asked,
    post_message,
    run_turn,
    text_of,
    turn_ended,
    types,
)
from .test_real_claude import claude_env, claude_settings, standin, tool_results_sent  # noqa: F401

pytestmark = pytest.mark.usefixtures("notebook_dir")
TOOLS = [
    "read_notebook",
    "insert_cell",
    "edit_cell",
    "delete_cell",
    "run_cell",
    "kernel_variables",
]


@pytest.fixture
def jp_server_config(
    jp_server_config: dict[str, Any],
    claude_settings: dict[str, Any],  # noqa: F811
) -> dict[str, Any]:
    return {**jp_server_config, "ClaudeCodeProvider": claude_settings}


def notebook(root: Path) -> Any:
    return nbformat.read(root / "analysis" / "q3.ipynb", as_version=4)


def tool_call(name: str, **arguments: Any) -> str:
    return f"RUN_TOOL: {name} {json.dumps(arguments)}"


def result_text(server: AnthropicStandIn) -> tuple[bool, str]:
    """Whether the latest tool result the CLI sent the model is an error, and its text."""
    sent = tool_results_sent(server)[-1]
    content = sent["content"]
    text = content if isinstance(content, str) else "".join(b.get("text", "") for b in content)
    return bool(sent.get("is_error")), text


async def test_the_cli_is_offered_every_notebook_tool(
    jp_fetch: Any,
    standin: AnthropicStandIn,  # noqa: F811
) -> None:
    session = await create_session(jp_fetch)
    stream = await run_turn(jp_fetch, session["id"], "Say hi")
    assert types(stream)[-1] == "done", stream[-1]
    offered = {tool["name"] for tool in standin.main_bodies[-1]["tools"]}
    assert {f"mcp__notebook__{name}" for name in TOOLS} <= offered


async def test_read_notebook_runs_without_asking(
    jp_fetch: Any,
    jp_root_dir: Path,
    standin: AnthropicStandIn,  # noqa: F811
) -> None:
    path = jp_root_dir / "analysis" / "q3.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("total = 41 + 1", id="first-cell")]
    nbformat.write(nb, path)
    session = await create_session(jp_fetch)
    stream = await run_turn(jp_fetch, session["id"], tool_call("read_notebook"))
    assert types(stream)[-1] == "done", stream[-1]
    assert "permission_request" not in types(stream)
    is_error, text = result_text(standin)
    assert not is_error, text
    result = json.loads(text)
    assert result["cells"][0]["id"] == "first-cell"
    assert result["cells"][0]["source"] == "total = 41 + 1"


async def test_an_insert_is_asked_then_lands_in_the_file_marked(
    jp_fetch: Any,
    live_events: Any,
    jp_root_dir: Path,
    standin: AnthropicStandIn,  # noqa: F811
) -> None:
    session = await create_session(jp_fetch)
    sid = session["id"]
    turn_id = await post_message(
        jp_fetch, sid, tool_call("insert_cell", source="import pandas as pd", cell_type="code")
    )
    reader = live_events(sid)
    request = await permission_asked(reader)
    assert request["tool_name"] == "mcp__notebook__insert_cell"
    assert request["input"]["source"] == "import pandas as pd"
    assert request["summary"].splitlines()[-1] == "+import pandas as pd"  # shown as a diff
    assert notebook(jp_root_dir).cells == []  # nothing before the answer
    response = await answer_permission(jp_fetch, sid, request["request_id"], decision="allow")
    assert response.code == 200, response.body
    stream = await turn_ended(reader)
    assert types(stream)[-1] == "done", stream[-1]
    (cell,) = notebook(jp_root_dir).cells
    assert cell.source == "import pandas as pd"
    assert cell.metadata["jupyter_assistant"] == {"session_id": sid, "turn_id": turn_id}
    is_error, text = result_text(standin)
    assert not is_error, text
    assert json.loads(text)["id"] == cell.id


async def test_a_denied_edit_changes_nothing_and_the_model_is_told(
    jp_fetch: Any,
    live_events: Any,
    jp_root_dir: Path,
    standin: AnthropicStandIn,  # noqa: F811
) -> None:
    session = await create_session(jp_fetch)
    sid = session["id"]
    await post_message(jp_fetch, sid, tool_call("insert_cell", source="rm_everything()"))
    reader = live_events(sid)
    request = await permission_asked(reader)
    await answer_permission(
        jp_fetch, sid, request["request_id"], decision="deny", message="not that"
    )
    stream = await turn_ended(reader)
    assert types(stream)[-1] == "done", stream[-1]
    assert notebook(jp_root_dir).cells == []
    is_error, text = result_text(standin)
    assert is_error
    assert "not that" in text
    assert text_of(stream).startswith("I will use mcp__notebook__insert_cell.")


async def test_a_bad_call_is_a_tool_error_the_model_sees(
    jp_fetch: Any,
    jp_root_dir: Path,
    standin: AnthropicStandIn,  # noqa: F811
) -> None:
    session = await create_session(jp_fetch)
    stream = await run_turn(jp_fetch, session["id"], tool_call("read_notebook", start=7))
    assert types(stream)[-1] == "done", stream[-1]
    is_error, text = result_text(standin)
    assert is_error
    assert "start" in text and "7" in text
    stored = json_of(await api(jp_fetch, "sessions", session["id"]))
    assert stored["messages"][-1]["status"] == "complete"


async def test_a_run_asks_like_bash_and_allow_for_the_session_is_not_asked_again(
    jp_fetch: Any,
    live_events: Any,
    jp_root_dir: Path,
    standin: AnthropicStandIn,  # noqa: F811
) -> None:
    path = jp_root_dir / "analysis" / "q3.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(6 * 7)", id="the-cell")]
    nbformat.write(nb, path)
    session = await create_session(jp_fetch)
    sid = session["id"]
    await post_message(jp_fetch, sid, tool_call("run_cell", id="the-cell"))
    reader = live_events(sid)
    request = await permission_asked(reader)
    assert request["tool_name"] == "mcp__notebook__run_cell"
    assert request["summary"] == "print(6 * 7)"  # the user sees the code that will run
    response = await answer_permission(
        jp_fetch, sid, request["request_id"], decision="allow", scope="session"
    )
    assert response.code == 200, response.body
    stream = await turn_ended(reader)
    assert types(stream)[-1] == "done", stream[-1]
    is_error, text = result_text(standin)
    assert not is_error, text
    run = json.loads(text)
    assert run["status"] == "ok"
    assert run["outputs"][0]["text"] == "42\n"

    again = await run_turn(jp_fetch, sid, tool_call("run_cell", id="the-cell"))
    assert types(again)[-1] == "done", again[-1]
    assert "permission_request" not in types(again)
    assert json.loads(result_text(standin)[1])["execution_count"] == 2
