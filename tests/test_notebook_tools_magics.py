"""`%%assistant` turns get the notebook tools too: a real kernel, started by the real server for
the notebook, runs a `%%assistant` cell with the REAL Claude CLI (against the local stand-in);
the server serves the tools, with the kernel's grant, the kernel's approval policy and the
kernel's own variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_assistant.permissions import READ_ONLY_TOOLS

from .fakes.anthropic_standin import AnthropicStandIn
from .helpers import json_of
from .test_notebook_tools_claude import result_text, tool_call
from .test_notebook_tools_relay import browser  # noqa: F401
from .test_real_claude import claude_env, claude_settings, standin  # noqa: F401

pytestmark = pytest.mark.usefixtures("notebook_dir")
NOTEBOOK = "analysis/q3.ipynb"


@pytest.fixture
def jp_server_config(
    jp_server_config: dict[str, Any],
    claude_settings: dict[str, Any],  # noqa: F811
) -> dict[str, Any]:
    return {**jp_server_config, "ClaudeCodeProvider": claude_settings}


@pytest.fixture
def kernel_settings(claude_settings: dict[str, Any], jp_config_dir: Path) -> None:  # noqa: F811
    """What a kernel reads (the server's config files): the server itself was given its
    settings directly, so a rule here binds the kernel's turns only."""
    config = {
        "ClaudeCodeProvider": claude_settings,
        "AssistantExtension": {
            "permission_allowed_tools": [*READ_ONLY_TOOLS, "mcp__notebook__insert_cell"],
            "permission_denied_tools": ["mcp__notebook__delete_cell"],
        },
    }
    (jp_config_dir / "jupyter_server_config.json").write_text(json.dumps(config))


@pytest.fixture
def notebook_kernel(jp_fetch: Any, jp_serverapp: Any, kernel_settings: None) -> Any:
    """``await notebook_kernel()``: a client of the notebook's own kernel session, which the
    server started (so the kernel has the server's environment), with the magics loaded."""

    async def started() -> Any:
        body = {"path": NOTEBOOK, "type": "notebook", "kernel": {"name": "python3"}}
        response = await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))
        kernel_id = json_of(response)["kernel"]["id"]
        client = jp_serverapp.kernel_manager.get_kernel(kernel_id).client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        await run(client, "%load_ext jupyter_assistant")
        return client

    return started


async def run(client: Any, code: str) -> str:
    """Run ``code`` in the kernel; its text outputs. Fails on an error."""
    texts: list[str] = []

    def collect(message: dict[str, Any]) -> None:
        content = message["content"]
        if message["msg_type"] == "stream":
            texts.append(content["text"])
        elif message["msg_type"] in ("execute_result", "display_data"):
            texts.append(content["data"].get("text/plain", ""))
        elif message["msg_type"] == "error":
            texts.append("\n".join(content["traceback"]))

    reply = await client.execute_interactive(code, output_hook=collect, timeout=180)
    assert reply["content"]["status"] == "ok", texts
    return "".join(texts)


def on_disk(root: Path) -> Any:
    return nbformat.read(root / NOTEBOOK, as_version=4)


async def test_a_cell_turn_edits_the_notebook_and_reads_the_kernels_own_variables(
    notebook_kernel: Any,
    jp_root_dir: Path,
    standin: AnthropicStandIn,  # noqa: F811
) -> None:
    client = await notebook_kernel()
    try:
        await run(client, "revenue = [10, 20, 12]")
        offered = tool_call("insert_cell", source="total = sum(revenue)", cell_type="code")
        await run(client, f"%%assistant\n{offered}")
        (cell,) = on_disk(jp_root_dir).cells
        assert cell.source == "total = sum(revenue)"
        assert cell.metadata["jupyter_assistant"]["turn_id"]
        is_error, text = result_text(standin)
        assert not is_error, text

        # Read from the kernel itself: it is busy running the cell that runs the turn.
        await run(client, f"%%assistant\n{tool_call('kernel_variables', names=['revenue'])}")
        is_error, text = result_text(standin)
        assert not is_error, text
        (variable,) = json.loads(text)["variables"]
        assert variable == {
            "name": "revenue",
            "type": "list",
            "length": 3,
            "repr": "[10, 20, 12]",
        }
    finally:
        client.stop_channels()


async def test_the_kernels_policy_decides_and_a_run_is_refused_clearly(
    notebook_kernel: Any,
    jp_root_dir: Path,
    standin: AnthropicStandIn,  # noqa: F811
) -> None:
    path = jp_root_dir / NOTEBOOK
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("1 + 1", id="keep-me")]
    nbformat.write(nb, path)
    client = await notebook_kernel()
    try:
        # Denied by the kernel's rules (the server's own settings would have asked).
        await run(client, f"%%assistant\n{tool_call('delete_cell', id='keep-me')}")
        is_error, text = result_text(standin)
        assert is_error and "Denied" in text, text
        assert [c.id for c in on_disk(jp_root_dir).cells] == ["keep-me"]

        await run(client, f"%%assistant\n{tool_call('run_cell', id='keep-me')}")
        is_error, text = result_text(standin)
        assert is_error and "%%assistant" in text and "busy" in text, text
        assert on_disk(jp_root_dir).cells[0].outputs == []
    finally:
        client.stop_channels()


async def test_a_kernels_grant_ends_with_its_turn(
    notebook_kernel: Any,
    jp_root_dir: Path,
    jp_serverapp: Any,
    standin: AnthropicStandIn,  # noqa: F811
) -> None:
    client = await notebook_kernel()
    try:
        await run(client, f"%%assistant\n{tool_call('read_notebook')}")
        is_error, text = result_text(standin)
        assert not is_error, text
        extension = jp_serverapp.web_app.settings["jupyter_assistant"]
        grants = extension.notebook_tools.capabilities.files.dir
        assert not grants.exists() or list(grants.iterdir()) == []
    finally:
        client.stop_channels()


def test_the_grants_of_a_killed_kernel_are_swept_and_never_honoured(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from jupyter_assistant.notebook_tools.capabilities import (
        CapabilityRegistry,
        Grant,
        GrantFiles,
    )
    from jupyter_assistant.notebook_tools.cells import ToolError

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    files = GrantFiles(tmp_path / "grants")
    files.write("dead-kernels-capability", Grant("s1", "t1", NOTEBOOK, gone.pid))
    files.write("live-kernels-capability", Grant("s2", "t2", NOTEBOOK, os.getpid()))
    assert {p.stat().st_mode & 0o777 for p in files.dir.iterdir()} == {0o600}
    registry = CapabilityRegistry(files, running=lambda grant: grant.owner_pid == os.getpid())
    with pytest.raises(ToolError):
        registry.check("dead-kernels-capability")
    assert registry.check("live-kernels-capability").session_id == "s2"
    with pytest.raises(ToolError):  # the live grant names its own notebook only
        registry.check("live-kernels-capability", "other.ipynb")
    for path in files.dir.iterdir():
        os.utime(path, (0, 0))  # written long ago
    files.sweep()
    assert files.read("dead-kernels-capability") is None
    assert files.read("live-kernels-capability") is not None


async def test_a_cell_turns_change_to_the_open_notebook_is_undone_from_the_server(
    notebook_kernel: Any,
    jp_fetch: Any,
    jp_root_dir: Path,
    standin: AnthropicStandIn,  # noqa: F811
    browser: Any,  # noqa: F811
) -> None:
    """The server serves a kernel's turn's tools: a change they make where the notebook is
    open is kept for the kernel's turn, and the sidebar's undo (the server) takes it back."""
    import asyncio

    from .helpers import api

    browser.start()
    await asyncio.sleep(0.3)  # its first poll: the notebook is open
    try:
        client = await notebook_kernel()
        try:
            offered = tool_call("insert_cell", source="added = 1", cell_type="code")
            await run(client, f"%%assistant\n{offered}")
        finally:
            client.stop_channels()
        assert [c.source for c in browser.notebook.cells] == ["live = 1", "added = 1"]
        added = browser.notebook.cells[1].id
        listed = json_of(await api(jp_fetch, "sessions", params={"path": NOTEBOOK}))
        (session,) = listed["sessions"]
        stored = json_of(await api(jp_fetch, "sessions", session["id"]))
        turn_id = stored["messages"][0]["turn_id"]
        changes = json_of(
            await api(jp_fetch, "sessions", session["id"], "turns", turn_id, "changes")
        )
        assert [(c["id"], c["status"]) for c in changes["cells"]] == [(added, "added")]
        undone = await api(
            jp_fetch, "sessions", session["id"], "turns", turn_id, "revert", method="POST", body={}
        )
        assert undone.code == 200, undone.body
        assert json_of(undone)["cells"] == "open"
        assert [c.source for c in browser.notebook.cells] == ["live = 1"]
    finally:
        await browser.stop()
