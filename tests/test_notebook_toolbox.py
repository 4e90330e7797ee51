"""The notebook tools as calls on a notebook file, through Jupyter's own contents manager, and
the capabilities that authorize them: each call acts only on its turn's notebook, only while
that turn runs, and a bad call changes nothing on disk."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_server.services.contents.filemanager import AsyncFileContentsManager

from jupyter_assistant.notebook_tools.capabilities import CapabilityRegistry
from jupyter_assistant.notebook_tools.cells import MARK, ToolError
from jupyter_assistant.notebook_tools.outputs import html_as_text
from jupyter_assistant.notebook_tools.toolbox import ContentsStorage, NotebookToolbox


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "analysis").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Q3"), nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, tmp_path / "analysis" / "q3.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "other.ipynb")
    return tmp_path


def toolbox(root: Path) -> NotebookToolbox:
    return NotebookToolbox(ContentsStorage(AsyncFileContentsManager(root_dir=str(root))))


def on_disk(root: Path, path: str = "analysis/q3.ipynb") -> Any:
    return nbformat.read(root / path, as_version=4)


def test_the_tools_change_the_file_as_jupyterlab_would(root: Path) -> None:
    capabilities = CapabilityRegistry()
    grant = capabilities.check(capabilities.issue("s1", "t1", "analysis/q3.ipynb"))
    tools = toolbox(root)

    async def scenario() -> None:
        read = await tools.call(grant, "read_notebook", {})
        assert read["cell_count"] == 2 and read["path"] == "analysis/q3.ipynb"
        code_id = read["cells"][1]["id"]
        added = await tools.call(
            grant, "insert_cell", {"after_id": code_id, "cell_type": "code", "source": "x + 1"}
        )
        assert added["index"] == 2
        await tools.call(grant, "edit_cell", {"id": code_id, "source": "x = 2"})
        await tools.call(grant, "delete_cell", {"index": 0})

    asyncio.run(scenario())
    nb = on_disk(root)
    nbformat.validate(nb)
    assert [c.source for c in nb.cells] == ["x = 2", "x + 1"]
    assert all(c.metadata[MARK] == {"session_id": "s1", "turn_id": "t1"} for c in nb.cells)


BAD_CALLS = [
    ("no such tool", "rm_notebook", {}),
    ("arguments not an object", "read_notebook", ["start"]),
    ("unknown argument", "delete_cell", {"index": 0, "force": True}),
    ("include_outputs not a bool", "read_notebook", {"include_outputs": "yes"}),
    ("edit without source", "edit_cell", {"index": 0}),
    ("unknown cell", "edit_cell", {"id": "nope", "source": "y"}),
    ("index out of range", "delete_cell", {"index": 7}),
    ("bad cell type", "insert_cell", {"cell_type": "heading", "source": "y"}),
]


@pytest.mark.parametrize(("what", "tool", "arguments"), BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_a_bad_call_is_a_tool_error_and_the_file_is_unchanged(
    root: Path, what: str, tool: str, arguments: Any
) -> None:
    capabilities = CapabilityRegistry()
    grant = capabilities.check(capabilities.issue("s1", "t1", "analysis/q3.ipynb"))
    before = (root / "analysis" / "q3.ipynb").read_bytes()
    with pytest.raises(ToolError):
        asyncio.run(toolbox(root).call(grant, tool, arguments))
    assert (root / "analysis" / "q3.ipynb").read_bytes() == before


def test_a_missing_notebook_is_a_tool_error(root: Path) -> None:
    capabilities = CapabilityRegistry()
    grant = capabilities.check(capabilities.issue("s1", "t1", "analysis/gone.ipynb"))
    with pytest.raises(ToolError, match="cannot be read"):
        asyncio.run(toolbox(root).call(grant, "read_notebook", {}))


def test_a_capability_is_for_one_notebook_and_one_turn() -> None:
    capabilities = CapabilityRegistry()
    mine = capabilities.issue("s1", "t1", "analysis/q3.ipynb")
    other_turn = capabilities.issue("s2", "t2", "other.ipynb")
    assert mine != other_turn and len(mine) >= 40
    assert capabilities.check(mine).session_id == "s1"
    assert capabilities.check(mine, "analysis/q3.ipynb").turn_id == "t1"
    with pytest.raises(ToolError, match="only on this session's notebook"):
        capabilities.check(mine, "other.ipynb")
    for forged in ("", "x", mine[:-1], mine.upper()):
        with pytest.raises(ToolError, match="unknown"):
            capabilities.check(forged)
    # The turn ends: its capability with it; another turn's stays.
    assert capabilities.revoke("t1") == 1
    with pytest.raises(ToolError, match="unknown or its turn has ended"):
        capabilities.check(mine)
    assert capabilities.check(other_turn).notebook_path == "other.ipynb"


# -- an HTML table as text (outputs.html_as_text) ---------------------------------------------


def test_a_dataframe_table_is_tab_separated_text() -> None:
    html = (
        "<div>\n<style scoped>\n    .dataframe tbody tr th:only-of-type {\n"
        "        vertical-align: middle;\n    }\n</style>\n"
        '<table border="1" class="dataframe">\n  <thead>\n    <tr style="text-align: right;">'
        "<th></th><th>region</th><th>amount</th></tr>\n  </thead>\n  <tbody>\n"
        "<tr><th>0</th><td>north</td><td>10.5</td></tr>\n"
        "<tr>\n  <th>1</th>\n  <td>south</td>\n  <td>32</td>\n</tr>\n"
        "  </tbody>\n</table>\n<p>2 rows x 2 columns</p>\n</div>"
    )
    assert html_as_text(html) == "\tregion\tamount\n0\tnorth\t10.5\n1\tsouth\t32"


def test_html_without_a_table_is_not_text() -> None:
    assert html_as_text("<p>Hello <b>world</b></p>") is None
    assert html_as_text("<table></table>") is None
    assert html_as_text("<table><tr></tr></table>") is None


def test_table_text_decodes_entities_and_collapses_white_space() -> None:
    html = (
        "<TABLE><TR><TD>a &amp; b</TD><Th>&lt;x&gt; &#39;q&#39;&nbsp;&#x41;</tH></TR>"
        "<tr><td>  spaced \n\t out  </td><td>1 < 2 and 3 > 2</td></tr></TABLE>"
    )
    # &nbsp; is white space too
    assert html_as_text(html) == "a & b\t<x> 'q' A\nspaced out\t1 < 2 and 3 > 2"


def test_table_text_leaves_out_scripts_styles_and_comments() -> None:
    html = (
        "<table><!-- <tr><td>hidden</td></tr> --><tr>"
        "<td><script>var a = '<td>no</td>';</script>shown</td>"
        "<td><style>td > b { color: red }</style>kept<!-- not this --> too</td>"
        "<td><SCRIPT type='text/javascript'>1</Script >last</td></tr></table>"
        "<!DOCTYPE html><?xml version='1.0'?>"
    )
    assert html_as_text(html) == "shown\tkept too\tlast"


def test_table_text_keeps_the_text_of_nested_tags() -> None:
    html = (
        "<table><tr><td><b>bold</b> and <i>it<span>al</span>ic</i><br/>x</td>"
        "<td title='a>b' data-x=\"c>d\"><a href='/x?a=1&amp;b=2'>link</a></td></tr>"
        "<tr><td><table><tr><td>inner</td></tr></table></td><td>after</td></tr></table>"
    )
    # A tag is no space (as on screen); an inner table's row is the row the outer cells go on.
    assert html_as_text(html) == "bold and italicx\tlink\ninner\tafter"


def test_table_text_of_malformed_html() -> None:
    # A cell not ended is ended by the next one, or left out at the end; a cell outside a row
    # starts one; an unterminated comment hides the rest; end tags without a start are ignored.
    assert html_as_text("<table><tr><td>one<td>two</td></tr><tr><th>loose</th>") == "two\nloose"
    assert html_as_text("<table><td>no row</td></table>") == "no row"
    assert html_as_text("<table><tr><td>kept</td><td>unclosed") == "kept"
    assert html_as_text("<table><tr><td>a</td></tr><!-- open <tr><td>b</td></tr>") == "a"
    assert html_as_text("<table></td></tr><tr><td/><td>x</td ></tr></table>") == "\tx"
    assert html_as_text("<table><tr><td-x>no</td-x><td title='open>x</td></tr>") is None
    assert html_as_text("<table><tr><td>" + "<b>" * 5000 + "deep</td></tr></table>") == "deep"
    assert html_as_text("<table<tr><td>odd</td></tr></table>") == "odd"
    # Tags never closed, quotes never closed: no text, and no scan of the rest per "<".
    assert html_as_text("<table>" + '<td title="' * 3000 + "<a " * 3000 + "<!x" * 3000) is None
    rows = "<table>" + ("<tr>" + "<td>x</td> " * 50 + "<b>y</b></tr>") * 50
    assert html_as_text(rows) == "\n".join(["\t".join(["x"] * 50)] * 50)


def test_the_mcp_server_leaves_the_process_logging_alone() -> None:
    # The SDK's MCPServer() calls logging.basicConfig (a handler on the root logger, at INFO,
    # for every logger of the Jupyter server) and logs a line per request at INFO.
    import logging

    from jupyter_assistant.notebook_tools.mcp_server import build_server

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    async def dispatch(capability: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return {}

    build_server(dispatch)
    assert (root.handlers, root.level) == (handlers, level)
    assert not logging.getLogger("mcp.server.streamable_http").isEnabledFor(logging.INFO)
    assert logging.getLogger("mcp.server.streamable_http").isEnabledFor(logging.WARNING)


def test_a_tool_result_is_compact_json_and_its_images_attached() -> None:
    import json

    from jupyter_assistant.notebook_tools.mcp_server import as_content

    result = {
        "cells": [
            {
                "index": 0,
                "outputs": [
                    {
                        "output_type": "display_data",
                        "images": ["image/png"],
                        "image_data": [{"mime": "image/png", "data": "iVBORw0KGgo="}],
                    }
                ],
            }
        ]
    }
    text, image = as_content(result)
    assert text.type == "text" and "\n" not in text.text and ", " not in text.text
    assert json.loads(text.text)["cells"][0]["outputs"][0] == {
        "output_type": "display_data",
        "images": ["image/png (attached: image 1)"],
    }
    assert (image.type, image.mime_type, image.data) == ("image", "image/png", "iVBORw0KGgo=")


def test_the_mcp_server_offers_tools_only(root: Path) -> None:
    # No prompts or resources in its capabilities: a client asks for neither list, and Claude
    # Code gives its model no tools to read resources.
    import json

    from jupyter_assistant.notebook_tools.gateway import NotebookToolsGateway

    gateway = NotebookToolsGateway(toolbox(root), "http://127.0.0.1/api/assistant/mcp")
    headers = [("Content-Type", "application/json"), ("Accept", "application/json")]

    async def ask(method: str, params: dict[str, Any], version: bool = True) -> Any:
        access = gateway.issue("s1", "t1", "analysis/q3.ipynb")
        sent = [*headers, (access.header, access.capability)]
        if version:
            sent.append(("mcp-protocol-version", "2025-06-18"))
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        response = await gateway.handle("POST", sent, json.dumps(body).encode())
        assert response.status == 200
        return json.loads(bytes(response.body))["result"]

    async def scenario() -> None:
        try:
            hello = {"protocolVersion": "2025-06-18", "capabilities": {}}
            hello["clientInfo"] = {"name": "test", "version": "1"}
            init = await ask("initialize", hello, version=False)
            assert init["capabilities"] == {"tools": {"listChanged": False}}
            tools = await ask("tools/list", {})
            assert {t["name"] for t in tools["tools"]} >= {"read_notebook", "run_cell"}
        finally:
            await gateway.close()

    asyncio.run(scenario())


def test_undo_brings_a_closed_notebooks_cells_back_in_its_file(root: Path) -> None:
    """A turn edited the notebook where it was open; it was closed (its edits saved) before
    the undo: the cells go back in the file, the ones already as they were left alone."""
    tools = toolbox(root)
    before = on_disk(root)
    target = nbformat.writes(before)
    saved = on_disk(root)
    saved.cells[1].source = "x = 2"  # the turn's edit, saved by the user
    saved.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
    saved.cells.append(nbformat.v4.new_code_cell("added = 3"))
    saved.cells[0].metadata["tags"] = ["kept"]  # not a change the undo looks at
    nbformat.write(saved, root / "analysis" / "q3.ipynb")

    assert asyncio.run(tools.open_notebook_text("analysis/q3.ipynb")) is None  # not open
    assert asyncio.run(tools.restore_cells("analysis/q3.ipynb", target)) == "file"
    restored = on_disk(root)
    nbformat.validate(restored)
    assert [c.source for c in restored.cells] == ["# Q3", "x = 1"]
    assert restored.cells[1].outputs == []  # the cell as it was, whole
    assert restored.cells[0].metadata["tags"] == ["kept"]  # untouched cell: as it is
    assert [c.id for c in restored.cells] == [c.id for c in before.cells]
