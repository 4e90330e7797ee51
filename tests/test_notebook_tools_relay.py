"""The notebook tools on a notebook open in a browser: the server hands each change to the
browser (GET/POST notebook-requests) instead of writing the file. Here the browser is a small
HTTP client that holds the notebook open and applies what it is asked to an nbformat notebook,
as labextension/src/notebookRelay.ts does to the open document (tests/browser/ runs the real
one)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from jupyter_assistant.permissions import READ_ONLY_TOOLS

from .helpers import api
from .test_notebook_tools_security import call_tool, slow_turn, tool_json

pytestmark = pytest.mark.usefixtures("notebook_dir")
PATH = "analysis/q3.ipynb"


@pytest.fixture
def assistant_config() -> dict[str, Any]:
    return {"permission_allowed_tools": [*READ_ONLY_TOOLS, "mcp__notebook__run_cell"]}


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    claude = {**jp_server_config.get("ClaudeCodeProvider", {}), "permission_mode": "acceptEdits"}
    return {**jp_server_config, "ClaudeCodeProvider": claude}


class Browser:
    """A JupyterLab stand-in with one notebook open: it long-polls and applies each request."""

    def __init__(self, url: str, headers: dict[str, str], notebook: Any) -> None:
        self.url = url
        self.headers = headers
        self.notebook = notebook
        self.ops: list[dict[str, Any]] = []
        self.fail_with: str | None = None
        self.closing = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """The tab closes: no more polls after the one under way."""
        self.closing = True
        if self.task is not None:
            await self.task

    async def _loop(self) -> None:
        client = AsyncHTTPClient(force_instance=True)
        while not self.closing:
            poll = HTTPRequest(f"{self.url}?path={PATH}&wait=1", headers=self.headers)
            response = await client.fetch(poll, raise_error=False)
            assert response.code == 200, response.body
            for request in json.loads(response.body)["requests"]:
                self.ops.append(request)
                answer = self.apply(request)
                reply = HTTPRequest(
                    f"{self.url}/{request['request_id']}",
                    method="POST",
                    headers=self.headers,
                    body=json.dumps(answer),
                )
                done = await client.fetch(reply, raise_error=False)
                assert done.code == 200, done.body

    def apply(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.fail_with:
            return {"error": self.fail_with}
        cells = self.notebook.cells
        op = request["op"]
        if op == "snapshot":
            return {"result": {"notebook": self.notebook}}
        if op == "insert":
            cells.insert(request["index"], nbformat.from_dict(request["cell"]))
        elif op == "edit":
            (cell,) = [c for c in cells if c.id == request["id"]]
            cell.source = request["source"]
            cell.metadata.update(request["metadata"])
            if request["clear_outputs"]:
                cell.outputs, cell.execution_count = [], None
        elif op == "delete":
            self.notebook.cells = [c for c in cells if c.id != request["id"]]
        elif op == "run":
            (cell,) = [c for c in cells if c.id == request["id"]]
            cell.execution_count = 7
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran live\n")]
            return {"result": {"status": "ok", "execution_count": 7, "outputs": cell.outputs}}
        return {"result": {}}


@pytest.fixture
def browser(jp_http_port: int, jp_base_url: str, jp_auth_header: dict[str, str]) -> Any:
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}api/assistant/notebook-requests"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("live = 1", id="live-cell")]
    return Browser(url, jp_auth_header, notebook)


def on_disk(root: Path) -> Any:
    return nbformat.read(root / "analysis" / "q3.ipynb", as_version=4)


async def test_changes_go_to_the_open_notebook_not_the_file(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, jp_root_dir: Path, browser: Any
) -> None:
    _, _, server = await slow_turn(jp_fetch, monkeypatch, tmp_path, PATH)
    browser.start()
    await asyncio.sleep(0.3)  # its first poll
    try:
        _, body = await call_tool(server, "read_notebook")
        assert [c["id"] for c in tool_json(body)["cells"]] == ["live-cell"]  # the open document

        _, body = await call_tool(server, "insert_cell", source="added = 2", after_id="live-cell")
        inserted = tool_json(body)
        assert inserted["index"] == 1
        insert = next(op for op in browser.ops if op["op"] == "insert")
        assert insert["index"] == 1
        assert insert["cell"]["id"] == inserted["id"]
        assert set(insert["cell"]["metadata"]["jupyter_assistant"]) == {"session_id", "turn_id"}
        assert [c.source for c in browser.notebook.cells] == ["live = 1", "added = 2"]

        _, body = await call_tool(server, "edit_cell", id="live-cell", source="live = 3")
        edit = next(op for op in browser.ops if op["op"] == "edit")
        assert edit["clear_outputs"] is True
        assert browser.notebook.cells[0].source == "live = 3"

        _, body = await call_tool(server, "run_cell", id="live-cell")
        run = tool_json(body)
        assert (run["status"], run["execution_count"]) == ("ok", 7)
        assert run["outputs"][0]["text"] == "ran live\n"

        _, body = await call_tool(server, "delete_cell", index=1)
        assert [c.id for c in browser.notebook.cells] == ["live-cell"]
        # The file was never written: the user saves the open document as usual.
        assert on_disk(jp_root_dir).cells == []
    finally:
        await browser.stop()


async def test_a_browser_error_is_a_tool_error_and_a_gone_browser_means_the_file(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, jp_root_dir: Path, browser: Any
) -> None:
    _, _, server = await slow_turn(jp_fetch, monkeypatch, tmp_path, PATH)
    browser.start()
    await asyncio.sleep(0.3)
    browser.fail_with = "The notebook tab is read-only."
    _, body = await call_tool(server, "insert_cell", source="x = 1")
    assert body["result"]["isError"] is True
    assert body["result"]["content"][0]["text"] == "The notebook tab is read-only."
    await browser.stop()  # the tab closes: the next call finds nobody and works on the file
    _, body = await call_tool(server, "insert_cell", source="to the file")
    assert tool_json(body)["index"] == 0
    assert [c.source for c in on_disk(jp_root_dir).cells] == ["to the file"]


async def test_the_relay_is_behind_jupyters_login_and_checks_its_input(
    jp_fetch: Any, jp_http_port: int, jp_base_url: str
) -> None:
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}api/assistant/notebook-requests"
    for request in (
        HTTPRequest(f"{url}?path={PATH}&wait=0"),
        HTTPRequest(f"{url}/abc", method="POST", body='{"result": {}}'),
    ):
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        assert response.code == 403
    for params in ({}, {"path": PATH, "wait": "x"}, {"path": PATH, "wait": "99"}):
        response = await api(jp_fetch, "notebook-requests", params=params)
        assert response.code == 400, params
    response = await api(jp_fetch, "notebook-requests", params={"path": PATH, "wait": "0"})
    assert json.loads(response.body) == {"requests": []}
    response = await api(jp_fetch, "notebook-requests", "nope", method="POST", body={"result": {}})
    assert response.code == 404
    response = await api(jp_fetch, "notebook-requests", "nope", method="POST", body={"x": 1})
    assert response.code == 400


async def test_a_request_a_poll_took_but_could_not_hand_over_goes_to_the_next_poll() -> None:
    from jupyter_assistant.notebook_tools.relay import BrowserRelay

    relay = BrowserRelay()
    first = asyncio.create_task(relay.poll([PATH], 5))
    await asyncio.sleep(0)
    asking = asyncio.create_task(relay.ask(PATH, {"op": "snapshot"}, 5))
    taken = await first
    assert [r["op"] for r in taken] == ["snapshot"]
    # The handler could not write them (the browser went away): they are put back.
    assert relay.requeue(taken) == 1
    again = await relay.poll([PATH], 5)
    assert [r["request_id"] for r in again] == [r["request_id"] for r in taken]
    assert relay.answer(again[0]["request_id"], {"result": {"notebook": "as open"}})
    assert await asking == {"notebook": "as open"}
    assert relay.requeue(again) == 0  # answered: nothing to put back
    assert await relay.poll([PATH], 0) == []


async def test_undo_takes_back_the_cells_a_turn_changed_in_the_open_notebook(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, jp_root_dir: Path, browser: Any
) -> None:
    from .helpers import events, json_of, wait_until

    # The notebook is open before the turn starts (and the browser's poll is the server's
    # first call to the assistant, as when JupyterLab opens with the notebook).
    browser.start()
    await asyncio.sleep(0.3)
    try:
        sid, _, server = await slow_turn(jp_fetch, monkeypatch, tmp_path, PATH)
        _, body = await call_tool(server, "insert_cell", source="added = 2", after_id="live-cell")
        added = tool_json(body)["id"]
        await call_tool(server, "edit_cell", id="live-cell", source="live = 3")
        await api(jp_fetch, "sessions", sid, "cancel", method="POST", body={})
        stream = await events(jp_fetch, sid)
        turn_id = stream[0]["data"]["turn_id"]

        changes = json_of(await api(jp_fetch, "sessions", sid, "turns", turn_id, "changes"))
        cells = {c["id"]: c for c in changes["cells"]}
        assert {cell_id: c["status"] for cell_id, c in cells.items()} == {
            "live-cell": "modified",
            added: "added",
        }
        assert "+live = 3" in cells["live-cell"]["diff"].splitlines()
        assert changes["files"] == []  # the file was never written

        # The user edits the cell the turn added: the undo says so and changes nothing.
        (mine,) = [c for c in browser.notebook.cells if c.id == added]
        mine.source = "added = 2  # and the user's own comment"
        refused = await api(
            jp_fetch, "sessions", sid, "turns", turn_id, "revert", method="POST", body={}
        )
        assert refused.code == 409, refused.body
        assert json_of(refused)["conflicts"] == [f"q3.ipynb (cell {added})"]
        assert browser.notebook.cells[0].source == "live = 3"

        done = await api(
            jp_fetch,
            "sessions",
            sid,
            "turns",
            turn_id,
            "revert",
            method="POST",
            body={"force": True},
        )
        assert done.code == 200, done.body
        assert json_of(done)["restored"] == ["q3.ipynb"]
        assert json_of(done)["cells"] == "open"  # the browser shows them: no reload from disk
        await wait_until(lambda: [c.id for c in browser.notebook.cells] == ["live-cell"])
        assert browser.notebook.cells[0].source == "live = 1"
        assert on_disk(jp_root_dir).cells == []  # still only the open notebook changed
        again = json_of(await api(jp_fetch, "sessions", sid, "turns", turn_id, "changes"))
        assert again["reverted"] is True
    finally:
        await browser.stop()
