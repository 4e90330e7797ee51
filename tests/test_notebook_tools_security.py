"""Who may call the notebook tools: only a running turn's agent, with its capability, on its
own notebook. The capability is read where an agent finds it (the MCP configuration its CLI is
given) and used as an attacker would use it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from jupyter_assistant.notebook_tools.capabilities import Grant
from jupyter_assistant.notebook_tools.cells import ToolError
from jupyter_assistant.notebook_tools.toolbox import ContentsStorage, NotebookToolbox

from .helpers import api, create_session, post_message, wait_until

pytestmark = pytest.mark.usefixtures("notebook_dir")
MCP_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
}


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    # Edits run without asking, so that a call's effect shows without answering a question.
    claude = {**jp_server_config.get("ClaudeCodeProvider", {}), "permission_mode": "acceptEdits"}
    return {**jp_server_config, "ClaudeCodeProvider": claude}


def read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as file:
        return json.load(file)


async def slow_turn(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, path: str
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Start a turn that runs a while; returns its session id, its CLI's launch and the
    `notebook` MCP server it was configured with."""
    argv_file = tmp_path / f"argv-{path.replace('/', '_')}.json"
    monkeypatch.setenv("FAKE_CLAUDE_ARGV_FILE", str(argv_file))
    monkeypatch.setenv("FAKE_COUNT", "2000")
    monkeypatch.setenv("FAKE_DELAY", "0.05")
    session = await create_session(jp_fetch, path)
    await post_message(jp_fetch, session["id"], "scenario:slow")
    await wait_until(argv_file.exists, message="the CLI did not start")
    launched = json.loads(argv_file.read_text())
    argv = launched["argv"]
    config = read_json(argv[argv.index("--mcp-config") + 1])
    return session["id"], launched, config["mcpServers"]["notebook"]


async def mcp_call(
    url: str, headers: dict[str, str], method: str, params: dict[str, Any]
) -> tuple[int, Any]:
    message = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    request = HTTPRequest(
        url, method="POST", headers={**MCP_HEADERS, **headers}, body=json.dumps(message)
    )
    response = await AsyncHTTPClient().fetch(request, raise_error=False)
    return response.code, json.loads(response.body) if response.body else None


async def call_tool(
    server: dict[str, Any], name: str, headers: dict[str, str] | None = None, **arguments: Any
) -> tuple[int, Any]:
    headers = server["headers"] if headers is None else headers
    return await mcp_call(
        server["url"], headers, "tools/call", {"name": name, "arguments": arguments}
    )


def tool_json(body: Any) -> Any:
    assert not body["result"].get("isError"), body
    return json.loads(body["result"]["content"][0]["text"])


async def test_a_running_turns_capability_reads_and_edits_its_own_notebook(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, jp_root_dir: Path
) -> None:
    sid, _, server = await slow_turn(jp_fetch, monkeypatch, tmp_path, "analysis/q3.ipynb")
    code, body = await mcp_call(server["url"], server["headers"], "tools/list", {})
    assert code == 200, body
    listed = {tool["name"] for tool in body["result"]["tools"]}
    assert listed == {
        "read_notebook",
        "insert_cell",
        "edit_cell",
        "delete_cell",
        "run_cell",
        "kernel_variables",
    }
    code, body = await call_tool(server, "insert_cell", source="x = 1")
    assert code == 200
    inserted = tool_json(body)
    code, body = await call_tool(server, "read_notebook")
    assert tool_json(body)["cells"][0]["id"] == inserted["id"]
    # A stateless server: no event stream to open, no session to end.
    for method in ("GET", "DELETE"):
        request = HTTPRequest(server["url"], method=method, headers=server["headers"])
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        assert response.code == 405, method
    on_disk = nbformat.read(jp_root_dir / "analysis" / "q3.ipynb", as_version=4)
    assert on_disk.cells[0].metadata["jupyter_assistant"]["session_id"] == sid
    await api(jp_fetch, "sessions", sid, "cancel", method="POST", body="{}")


async def test_no_capability_a_forged_one_or_jupyters_token_is_refused(
    jp_fetch: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    jp_serverapp: Any,
    jp_root_dir: Path,
) -> None:
    sid, _, server = await slow_turn(jp_fetch, monkeypatch, tmp_path, "analysis/q3.ipynb")
    token = jp_serverapp.identity_provider.token
    refused = [
        {},
        {"X-Assistant-Capability": "forged"},
        {"Authorization": "Bearer forged"},
        {"Authorization": f"token {token}"},
        {"X-Assistant-Capability": server["headers"]["x-assistant-capability"][:-1]},
    ]
    for headers in refused:
        code, body = await call_tool(server, "insert_cell", headers=headers, source="evil()")
        assert code == 403, (headers, body)
        assert "capability" in body["message"]
    # GET and DELETE are refused the same way without a capability.
    for method in ("GET", "DELETE"):
        response = await AsyncHTTPClient().fetch(
            HTTPRequest(server["url"], method=method), raise_error=False
        )
        assert response.code == 403
    assert nbformat.read(jp_root_dir / "analysis" / "q3.ipynb", as_version=4).cells == []
    await api(jp_fetch, "sessions", sid, "cancel", method="POST", body="{}")


async def test_the_capability_ends_with_its_turn(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sid, _, server = await slow_turn(jp_fetch, monkeypatch, tmp_path, "analysis/q3.ipynb")
    code, _ = await call_tool(server, "read_notebook")
    assert code == 200
    response = await api(jp_fetch, "sessions", sid, "cancel", method="POST", body="{}")
    assert response.code == 200
    code, body = await call_tool(server, "read_notebook")
    assert code == 403, body


async def test_a_capability_acts_on_its_own_notebook_only(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, jp_root_dir: Path
) -> None:
    other = jp_root_dir / "analysis" / "other.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), other)
    sid_a, _, server_a = await slow_turn(jp_fetch, monkeypatch, tmp_path, "analysis/q3.ipynb")
    sid_b, _, server_b = await slow_turn(jp_fetch, monkeypatch, tmp_path, "analysis/other.ipynb")
    assert server_a["headers"] != server_b["headers"]
    code, body = await call_tool(server_a, "insert_cell", source="in_a = 1")
    assert code == 200, body
    # A notebook named in the arguments is not a way to another one: there is no such argument.
    code, body = await call_tool(
        server_a, "read_notebook", path="analysis/other.ipynb", notebook="analysis/other.ipynb"
    )
    assert tool_json(body)["path"] == "analysis/q3.ipynb"
    assert nbformat.read(other, as_version=4).cells == []
    code, body = await call_tool(server_b, "read_notebook")
    assert tool_json(body)["cells"] == []
    for sid in (sid_a, sid_b):
        await api(jp_fetch, "sessions", sid, "cancel", method="POST", body="{}")


async def test_the_agent_never_receives_jupyters_token(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, jp_serverapp: Any
) -> None:
    monkeypatch.setenv("JUPYTER_TOKEN", jp_serverapp.identity_provider.token)
    sid, launched, server = await slow_turn(jp_fetch, monkeypatch, tmp_path, "analysis/q3.ipynb")
    token = jp_serverapp.identity_provider.token
    assert "JUPYTER_TOKEN" not in launched["env_names"]
    assert token not in json.dumps(launched)
    assert token not in json.dumps(server)
    # The capability is not on the command line either (any local user can read `ps`).
    assert server["headers"]["x-assistant-capability"] not in " ".join(launched["argv"])
    # The CLI waits for the tools' server as long as its first start may take.
    assert "MCP_TIMEOUT" in launched["env_names"]
    await api(jp_fetch, "sessions", sid, "cancel", method="POST", body="{}")


async def test_no_path_outside_the_server_root(jp_serverapp: Any, jp_root_dir: Path) -> None:
    outside = jp_root_dir.parent / "outside.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), outside)
    toolbox = NotebookToolbox(ContentsStorage(jp_serverapp.contents_manager))
    for path in ("../outside.ipynb", str(outside), "analysis/../../outside.ipynb"):
        with pytest.raises(ToolError):
            await toolbox.call(Grant("s", "t", path), "read_notebook", {})
