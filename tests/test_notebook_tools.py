"""The notebook tools' operations on a notebook: what the model reads, and inserting, editing
and deleting cells, with every bad request refused before anything changes."""

from __future__ import annotations

import copy
from typing import Any

import nbformat
import pytest

from jupyter_assistant.notebook_tools.cells import (
    MARK,
    Author,
    CellLimits,
    ToolError,
    delete_cell,
    edit_cell,
    insert_cell,
    read_cells,
)
from jupyter_assistant.notebook_tools.outputs import OutputLimits, clip, summarize_output

AUTHOR = Author("session-1", "turn-1")
TABLE = (
    '<table border="1" class="dataframe"><thead><tr><th></th><th>region</th><th>amount</th>'
    "</tr></thead><tbody><tr><th>0</th><td>north</td><td>10</td></tr>"
    "<tr><th>1</th><td>south</td><td>32</td></tr></tbody></table>"
)


def notebook() -> Any:
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("import pandas as pd\npd.DataFrame(...)", execution_count=3)
    code.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="loaded 2 rows\n"),
        nbformat.v4.new_output(
            "execute_result",
            data={"text/plain": "  region  amount\n0 north 10", "text/html": TABLE},
            execution_count=3,
        ),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBOR", "text/plain": "<Fig>"}),
        nbformat.v4.new_output(
            "error",
            ename="KeyError",
            evalue="'x'",
            traceback=["\x1b[0;31mKeyError\x1b[0m: 'x'", "  at line 2"],
        ),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# Sales"), code]
    nbformat.validate(nb)
    return nb


def test_the_model_reads_cells_with_their_outputs_summarized() -> None:
    nb = notebook()
    cells = read_cells(nb)
    assert [(c["index"], c["cell_type"]) for c in cells] == [(0, "markdown"), (1, "code")]
    assert cells[0]["id"] == nb.cells[0].id and "outputs" not in cells[0]
    code = cells[1]
    assert code["source"] == "import pandas as pd\npd.DataFrame(...)"
    assert code["execution_count"] == 3
    stream, result, image, error = code["outputs"]
    assert stream == {"output_type": "stream", "name": "stdout", "text": "loaded 2 rows\n"}
    # A DataFrame's HTML table becomes text the model can read, not markup.
    assert result["text"].splitlines() == ["\tregion\tamount", "0\tnorth\t10", "1\tsouth\t32"]
    assert image["images"] == ["image/png"] and "iVBOR" not in str(image)
    assert error["ename"] == "KeyError" and "\x1b" not in error["text"]
    assert read_cells(nb, include_outputs=False)[1].get("outputs") is None
    assert [c["index"] for c in read_cells(nb, start=1)] == [1]
    assert read_cells(nb, start=0, end=0) == []


def test_long_outputs_keep_their_start_and_end() -> None:
    text = "first line\n" + "x" * 10_000 + "\nlast line"
    clipped = clip(text, 300)
    assert clipped.startswith("first line") and clipped.endswith("last line")
    assert "characters cut" in clipped and len(clipped) < 400
    summary = summarize_output(
        {"output_type": "stream", "name": "stderr", "text": text}, OutputLimits(200)
    )
    assert len(summary["text"]) < 300


def test_insert_edit_and_delete_keep_the_notebook_valid_and_marked() -> None:
    nb = notebook()
    first_id = nb.cells[0].id
    inserted = insert_cell(nb, "code", "print(42)", AUTHOR, after_id=first_id)
    assert inserted["index"] == 1
    assert nb.cells[1].metadata[MARK] == {"session_id": "session-1", "turn_id": "turn-1"}
    at_end = insert_cell(nb, "markdown", "Done.", AUTHOR)
    assert at_end["index"] == len(nb.cells) - 1
    nbformat.validate(nb)
    # Editing code drops the outputs of the old code.
    old = nb.cells[2]
    edited = edit_cell(nb, "pd.read_csv('sales.csv')", AUTHOR, cell_id=old.id)
    assert edited["before"] == "import pandas as pd\npd.DataFrame(...)"
    assert old.source == "pd.read_csv('sales.csv')" and old.outputs == []
    assert old.execution_count is None and MARK in old.metadata
    removed = delete_cell(nb, index=0)
    assert removed["id"] == first_id and removed["source"] == "# Sales"
    nbformat.validate(nb)
    assert [c["written_by_assistant"] for c in read_cells(nb)] == [True, True, True]


TEN = CellLimits(max_source_chars=10)
BAD_REQUESTS = [
    ("insert after no cell", lambda nb: insert_cell(nb, "code", "x", AUTHOR, after_id="no")),
    ("insert out of range", lambda nb: insert_cell(nb, "code", "x", AUTHOR, index=9)),
    ("insert a bad cell type", lambda nb: insert_cell(nb, "heading", "x", AUTHOR)),
    ("insert a huge source", lambda nb: insert_cell(nb, "code", "x" * 11, AUTHOR, limits=TEN)),
    ("insert at two places", lambda nb: insert_cell(nb, "raw", "x", AUTHOR, index=0, after_id="a")),
    ("edit an unknown id", lambda nb: edit_cell(nb, "x", AUTHOR, cell_id="nope")),
    ("edit a negative index", lambda nb: edit_cell(nb, "x", AUTHOR, index=-1)),
    ("edit with no cell named", lambda nb: edit_cell(nb, "x", AUTHOR)),
    ("edit with a non-string", lambda nb: edit_cell(nb, 42, AUTHOR, index=0)),  # type: ignore[arg-type]
    ("delete out of range", lambda nb: delete_cell(nb, index=2)),
    ("delete by a bool index", lambda nb: delete_cell(nb, index=True)),
    ("read backwards", lambda nb: read_cells(nb, start=2, end=1)),
]  # fmt: skip


@pytest.mark.parametrize(("what", "call"), BAD_REQUESTS, ids=[what for what, _ in BAD_REQUESTS])
def test_a_bad_request_is_a_clear_error_and_changes_nothing(what: str, call: Any) -> None:
    nb = notebook()
    before = copy.deepcopy(nb)
    with pytest.raises(ToolError) as refused:
        call(nb)
    assert str(refused.value).endswith(".")  # a sentence the model can act on
    assert nb == before
