"""run_cell and kernel_variables on a real kernel (the notebook's own kernel session, started by
the server), called over the real MCP endpoint with a running turn's capability."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_assistant.permissions import READ_ONLY_TOOLS

from .helpers import eventually, json_of
from .test_notebook_tools_security import call_tool, slow_turn, tool_json

pytestmark = pytest.mark.usefixtures("notebook_dir")


@pytest.fixture
def assistant_config() -> dict[str, Any]:
    # Runs are asked about by default (test_notebook_tools_claude.py); here they are allowed.
    return {"permission_allowed_tools": [*READ_ONLY_TOOLS, "mcp__notebook__run_cell"]}


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    claude = {**jp_server_config.get("ClaudeCodeProvider", {}), "permission_mode": "acceptEdits"}
    return {**jp_server_config, "ClaudeCodeProvider": claude}


@pytest.fixture
def start(jp_fetch: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """``await start()``: the notebook MCP server of a running turn (the server's clean-up
    stops the turn and the kernels it started)."""

    async def started() -> dict[str, Any]:
        _, _, server = await slow_turn(jp_fetch, monkeypatch, tmp_path, "analysis/q3.ipynb")
        return server

    return started


async def insert(server: dict[str, Any], source: str, cell_type: str = "code") -> str:
    code, body = await call_tool(server, "insert_cell", source=source, cell_type=cell_type)
    assert code == 200, body
    return str(tool_json(body)["id"])


def tool_error(body: Any) -> str:
    assert body["result"]["isError"] is True, body
    return str(body["result"]["content"][0]["text"])


def on_disk(root: Path) -> Any:
    return nbformat.read(root / "analysis" / "q3.ipynb", as_version=4)


def on_disk_now(root: Path) -> Any:
    """The file, or None while the contents manager writes it (it writes in place, keeping a
    backup, rather than renaming a new file into place)."""
    try:
        return on_disk(root)
    except nbformat.reader.NotJSONError:
        return None


async def test_a_run_returns_its_outputs_and_saves_them_with_the_cell(
    start: Any, jp_fetch: Any, jp_root_dir: Path
) -> None:
    tools = await start()
    cell_id = await insert(tools, 'x = 6 * 7\nprint("hello")\nx')
    code, body = await call_tool(tools, "run_cell", id=cell_id)
    assert code == 200, body
    run = tool_json(body)
    assert (run["status"], run["execution_count"]) == ("ok", 1)
    assert run["outputs"][0] == {"output_type": "stream", "name": "stdout", "text": "hello\n"}
    assert run["outputs"][1]["text"] == "42"

    def saved() -> bool:
        notebook = on_disk_now(jp_root_dir)
        cell = notebook.cells[0] if notebook else None
        return cell is not None and cell.execution_count == 1 and len(cell.outputs) == 2

    await eventually(lambda: asyncio.to_thread(saved), message="the outputs were not saved")
    nbformat.validate(on_disk(jp_root_dir))
    # The kernel is the notebook's own kernel session: JupyterLab attaches to it on opening.
    sessions = json_of(await jp_fetch("api", "sessions"))
    assert [s["path"] for s in sessions] == ["analysis/q3.ipynb"]
    code, body = await call_tool(tools, "read_notebook")
    assert tool_json(body)["kernel"]["state"] in ("idle", "busy")


async def test_an_error_comes_back_with_its_traceback(
    start: Any,
) -> None:
    tools = await start()
    cell_id = await insert(tools, "1 / 0")
    _, body = await call_tool(tools, "run_cell", id=cell_id)
    run = tool_json(body)
    assert run["status"] == "error"
    (error,) = run["outputs"]
    assert error["ename"] == "ZeroDivisionError"
    assert "1 / 0" in error["text"]
    assert "\x1b[" not in error["text"]


async def test_a_long_run_answers_running_and_its_outputs_show_as_they_come(
    start: Any, jp_root_dir: Path
) -> None:
    tools = await start()
    source = 'import time\nprint("start", flush=True)\ntime.sleep(2)\nprint("end")'
    cell_id = await insert(tools, source)
    _, body = await call_tool(tools, "run_cell", id=cell_id, timeout_seconds=0.5)
    assert tool_json(body)["status"] == "running"
    _, body = await call_tool(tools, "read_notebook")
    (cell,) = tool_json(body)["cells"]
    assert cell["running"] is True
    assert cell["outputs"][0]["text"] == "start\n"
    _, body = await call_tool(tools, "run_cell", id=cell_id)
    assert "still running" in tool_error(body)

    def finished() -> bool:
        notebook = on_disk_now(jp_root_dir)
        outputs = notebook.cells[0].outputs if notebook else []
        return "".join(o.get("text", "") for o in outputs) == "start\nend\n"

    await eventually(lambda: asyncio.to_thread(finished), message="the run was not saved")


async def test_kernel_variables_reads_the_namespace_without_changing_it(
    start: Any,
) -> None:
    tools = await start()
    cell_id = await insert(tools, "answer = 42\nwords = ['a', 'b', 'c']\nimport math")
    await call_tool(tools, "run_cell", id=cell_id)
    _, body = await call_tool(tools, "kernel_variables")
    found = {v["name"]: v for v in tool_json(body)["variables"]}
    assert found["answer"] == {"name": "answer", "type": "int", "repr": "42"}
    assert found["words"]["length"] == 3
    assert "math" not in found  # modules are not variables
    _, body = await call_tool(tools, "kernel_variables", names=["answer", "nope"])
    listed = tool_json(body)
    assert [v["name"] for v in listed["variables"]] == ["answer"]
    assert listed["missing"] == ["nope"]
    # The summary ran in a namespace of its own: nothing was added to the user's.
    probe = await insert(tools, "print(sorted(k for k in dir() if not k.startswith('_')))")
    _, body = await call_tool(tools, "run_cell", id=probe)
    printed = tool_json(body)["outputs"][0]["text"]
    assert "result" not in printed and "user_ns" not in printed and "names" not in printed


async def test_bad_runs_are_tool_errors_and_change_nothing(start: Any, jp_root_dir: Path) -> None:
    tools = await start()
    note = await insert(tools, "# a note", cell_type="markdown")
    before = on_disk(jp_root_dir)
    for arguments, expected in (
        ({"id": note}, "only code cells run"),
        ({"id": "no-such-cell"}, "No cell has the id"),
        ({"index": 5}, "out of range"),
        ({"index": 0, "timeout_seconds": -1}, "timeout_seconds"),
    ):
        code, body = await call_tool(tools, "run_cell", **arguments)
        assert code == 200
        assert expected in tool_error(body), arguments
    assert on_disk(jp_root_dir) == before


async def test_a_run_in_a_dead_kernel_is_a_tool_error(start: Any, jp_serverapp: Any) -> None:
    tools = await start()
    cell_id = await insert(tools, "1 + 1")
    await call_tool(tools, "run_cell", id=cell_id)
    (session,) = await jp_serverapp.session_manager.list_sessions()
    kernel = jp_serverapp.kernel_manager.get_kernel(session["kernel"]["id"])
    kernel.stop_restarter()  # as a kernel that failed to restart stays
    os.kill(kernel.provisioner.pid, signal.SIGKILL)

    async def dead() -> bool:
        return not await kernel.is_alive()

    await eventually(dead)
    _, body = await call_tool(tools, "run_cell", id=cell_id)
    assert "kernel is dead" in tool_error(body)
