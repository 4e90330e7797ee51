"""The notebook tools with jupyter-collaboration: while a room holds the notebook, each call works
on its shared document. The collaborator here is a real Y client: pycrdt's provider over a
websocket to the server's room, as JupyterLab's collaborative notebook connects; it sees every
change arrive in its copy of the document. The file is not written by the tools meanwhile."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nbformat
import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from jupyter_assistant.permissions import READ_ONLY_TOOLS

from .helpers import eventually, wait_until
from .test_notebook_tools_relay import Browser
from .test_notebook_tools_security import call_tool, slow_turn, tool_json

# The server part of jupyter-collaboration is in the test extras (pyproject.toml), so this runs
# in CI; an environment without it skips.
pytest.importorskip("jupyter_server_ydoc")
from jupyter_ydoc import YNotebook
from pycrdt import Provider

pytestmark = pytest.mark.usefixtures("notebook_dir")
PATH = "analysis/q3.ipynb"


@pytest.fixture
def assistant_config() -> dict[str, Any]:
    return {"permission_allowed_tools": [*READ_ONLY_TOOLS, "mcp__notebook__run_cell"]}


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    claude = {**jp_server_config.get("ClaudeCodeProvider", {}), "permission_mode": "acceptEdits"}
    extensions = {
        **jp_server_config["ServerApp"]["jpserver_extensions"],
        "jupyter_server_fileid": True,
        "jupyter_server_ydoc": True,
    }
    return {
        **jp_server_config,
        "ServerApp": {**jp_server_config["ServerApp"], "jpserver_extensions": extensions},
        "ClaudeCodeProvider": claude,
        "BaseFileIdManager": {"db_path": str(tmp_path / "file_ids.db")},
        "SQLiteYStore": {"db_path": str(tmp_path / "ystore.db")},
        # jupyter-collaboration does not save the room's document here, so that the file shows
        # what the tools wrote to it under the room: nothing.
        "YDocExtension": {"document_save_delay": None},
    }


class WebsocketChannel:
    """pycrdt's Channel over tornado's websocket client."""

    def __init__(self, connection: WebSocketClientConnection, path: str) -> None:
        self.connection = connection
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> WebsocketChannel:
        return self

    async def __anext__(self) -> bytes:
        message = await self.connection.read_message()
        if message is None:
            raise StopAsyncIteration
        return message if isinstance(message, bytes) else message.encode()

    async def send(self, message: bytes) -> None:
        await self.connection.write_message(message, binary=True)

    async def recv(self) -> bytes:
        return await self.__anext__()


@pytest.fixture
def collaborator(jp_fetch: Any, jp_http_port: int, jp_base_url: str, jp_auth_header: Any) -> Any:
    """``async with collaborator() as notebook``: a YNotebook kept in sync with the room."""

    @asynccontextmanager
    async def connect() -> AsyncIterator[YNotebook]:
        response = await jp_fetch(
            "api", "collaboration", "session", PATH,
            method="PUT", body=json.dumps({"format": "json", "type": "notebook"}),
        )  # fmt: skip
        session = json.loads(response.body)
        room = f"json:notebook:{session['fileId']}"
        url = (
            f"ws://127.0.0.1:{jp_http_port}{jp_base_url}api/collaboration/room/{room}"
            f"?sessionId={session['sessionId']}"
        )
        connection = await websocket_connect(HTTPRequest(url, headers=jp_auth_header))
        notebook = YNotebook()
        try:
            async with Provider(notebook.ydoc, WebsocketChannel(connection, room)) as provider:
                await provider.synced.wait()
                await wait_until(lambda: notebook.cell_number > 0, message="room not loaded")
                yield notebook
        finally:
            connection.close()

    return connect


def write_notebook(root: Path) -> Any:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    notebook.cells = [nbformat.v4.new_code_cell("shared = 1", id="shared-cell")]
    nbformat.write(notebook, root / PATH)
    return (root / PATH).read_text()


def cell_of(notebook: YNotebook, cell_id: str) -> dict[str, Any] | None:
    cells = [notebook.get_cell(i) for i in range(notebook.cell_number)]
    return next((cell for cell in cells if cell["id"] == cell_id), None)


async def test_a_room_gets_the_changes_and_the_outputs_not_the_file(
    jp_fetch: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    jp_root_dir: Path,
    collaborator: Any,
) -> None:
    saved = write_notebook(jp_root_dir)
    _, _, server = await slow_turn(jp_fetch, monkeypatch, tmp_path, PATH)
    async with collaborator() as peer:
        # The collaborator types (not saved): the agent reads the shared document.
        peer.ycells[0]["source"].insert(len("shared = 1"), "  # typed")
        read: dict[str, Any] = {}

        async def typed_seen() -> bool:
            read.update(tool_json((await call_tool(server, "read_notebook"))[1]))
            return bool(read["cells"][0]["source"] == "shared = 1  # typed")

        await eventually(typed_seen, message="the read did not see the collaborator's typing")
        assert [c["id"] for c in read["cells"]] == ["shared-cell"]

        _, body = await call_tool(
            server, "insert_cell", source="print(6 * 7)", after_id="shared-cell"
        )
        inserted = tool_json(body)
        assert inserted["index"] == 1
        await wait_until(lambda: peer.cell_number == 2, message="the insert did not arrive")
        new = peer.get_cell(1)
        assert (new["id"], new["source"], new["cell_type"]) == (
            inserted["id"],
            "print(6 * 7)",
            "code",
        )
        assert set(new["metadata"]["jupyter_assistant"]) == {"session_id", "turn_id"}

        # An edit changes the source's Y text where it differs: the collaborator's copy gets a
        # small delta (not the whole text replaced), in one transaction.
        deltas: list[Any] = []
        text = peer.ycells[0]["source"]
        subscription = text.observe(lambda event: deltas.append(event.delta))
        _, body = await call_tool(
            server, "edit_cell", id="shared-cell", source="shared = 2  # typed"
        )
        assert tool_json(body)["before"] == "shared = 1  # typed"
        await wait_until(lambda: bool(deltas), message="the edit did not arrive")
        assert deltas == [[{"retain": 9}, {"delete": 1}, {"insert": "2"}]]
        text.unobserve(subscription)
        edited = cell_of(peer, "shared-cell")
        assert edited is not None and edited["source"] == "shared = 2  # typed"
        assert "jupyter_assistant" in edited["metadata"]

        # Bad input changes nothing: a tool error, then the next change is the only one seen.
        _, body = await call_tool(server, "edit_cell", id="nope", source="evil()")
        assert body["result"]["isError"] is True
        assert "nope" in body["result"]["content"][0]["text"]

        # A run: in the notebook's kernel, its outputs and count written into the shared cell.
        _, body = await call_tool(server, "run_cell", id=inserted["id"], timeout_seconds=60)
        run = tool_json(body)
        assert run["status"] == "ok"
        assert run["outputs"][0]["text"] == "42\n"

        def ran() -> bool:
            cell = cell_of(peer, inserted["id"])
            return cell is not None and cell["execution_count"] is not None

        await wait_until(ran, timeout=60, message="the run's outputs did not arrive")
        cell = cell_of(peer, inserted["id"])
        assert cell is not None
        assert cell["execution_count"] == run["execution_count"]
        assert [(o["output_type"], o["text"]) for o in cell["outputs"]] == [("stream", "42\n")]
        _, body = await call_tool(server, "read_notebook")
        assert tool_json(body)["cells"][1]["outputs"][0]["text"] == "42\n"

        _, body = await call_tool(server, "delete_cell", id=inserted["id"])
        await wait_until(lambda: peer.cell_number == 1, message="the delete did not arrive")
        assert peer.get_cell(0)["source"] == "shared = 2  # typed"  # the bad edit never came
        # jupyter-collaboration saves the room's document itself (not in this test); the tools
        # never wrote the file under it.
        assert (jp_root_dir / PATH).read_text() == saved


async def test_with_no_room_the_tools_work_on_the_file(
    jp_fetch: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    jp_root_dir: Path,
    jp_serverapp: Any,
) -> None:
    write_notebook(jp_root_dir)
    _, _, server = await slow_turn(jp_fetch, monkeypatch, tmp_path, PATH)
    _, body = await call_tool(server, "insert_cell", source="on_disk = 1", index=0)
    assert tool_json(body)["index"] == 0
    on_disk = nbformat.read(jp_root_dir / PATH, as_version=4)
    assert [c.source for c in on_disk.cells] == ["on_disk = 1", "shared = 1"]
    _, body = await call_tool(server, "edit_cell", id="nope", source="x")
    assert body["result"]["isError"] is True
    assert nbformat.read(jp_root_dir / PATH, as_version=4) == on_disk
    # The tools opened no room of their own.
    extension = jp_serverapp.web_app.settings["jupyter_server_ydoc"]
    document = await extension.get_document(
        path=PATH, content_type="notebook", file_format="json", copy=False
    )
    assert document is None


async def test_the_users_open_notebook_comes_before_the_room(
    jp_fetch: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    jp_root_dir: Path,
    jp_http_port: int,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    jp_serverapp: Any,
    collaborator: Any,
) -> None:
    saved = write_notebook(jp_root_dir)
    _, _, server = await slow_turn(jp_fetch, monkeypatch, tmp_path, PATH)
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}api/assistant/notebook-requests"
    browser = Browser(url, jp_auth_header, nbformat.v4.new_notebook())
    browser.start()
    relay = jp_serverapp.web_app.settings["jupyter_assistant"].notebook_tools.toolbox.relay
    try:
        await wait_until(lambda: relay.is_open(PATH), message="the browser did not poll")
        async with collaborator() as peer:
            _, body = await call_tool(server, "insert_cell", source="both = 1", index=0)
            inserted = tool_json(body)
            # The user's JupyterLab made the change (its undo takes it back; in a collaborative
            # JupyterLab its edit reaches the room from there): the server did not make it too.
            assert [op["op"] for op in browser.ops] == ["snapshot", "insert"]
            assert browser.notebook.cells[0].id == inserted["id"]
            assert peer.cell_number == 1
        assert (jp_root_dir / PATH).read_text() == saved
    finally:
        await browser.stop()


async def test_a_runs_outputs_show_in_the_room_while_it_runs(
    jp_fetch: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    jp_root_dir: Path,
    collaborator: Any,
) -> None:
    write_notebook(jp_root_dir)
    flag = tmp_path / "go-on"
    code = (
        "import os, time\n"
        "print('started', flush=True)\n"
        f"while not os.path.exists({str(flag)!r}):\n"
        "    time.sleep(0.02)\n"
        "print('finished')"
    )
    _, _, server = await slow_turn(jp_fetch, monkeypatch, tmp_path, PATH)
    async with collaborator() as peer:
        tool_json((await call_tool(server, "edit_cell", id="shared-cell", source=code))[1])
        _, body = await call_tool(server, "run_cell", id="shared-cell", timeout_seconds=0)
        assert tool_json(body)["status"] == "running"

        def shown(text: str, state: str) -> bool:
            ycell = peer.ycells[0]
            cell = peer.get_cell(0)
            texts = [o.get("text") for o in cell["outputs"]]
            return texts == [text] and ycell.get("execution_state") == state

        await wait_until(lambda: shown("started\n", "busy"), timeout=60, message="no output yet")
        _, body = await call_tool(server, "read_notebook")
        assert tool_json(body)["cells"][0]["running"] is True
        flag.touch()
        await wait_until(
            lambda: shown("started\nfinished\n", "idle"), timeout=60, message="the run's end"
        )
        assert peer.get_cell(0)["execution_count"] is not None
