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
