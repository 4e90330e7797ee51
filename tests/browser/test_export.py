"""Export conversation from the sidebar: a new notebook beside the current one (opened, and a
valid nbformat 4 notebook on disk), or a Markdown download that reads exactly like
`jupyter assistant sessions export --format md`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
from playwright.sync_api import Locator, Page, expect

from .lab import (
    TOKEN,
    LabServer,
    ask,
    open_assistant,
    open_lab,
    replies,
    screenshot,
    switch_to_tab,
    wait_for_notebook,
)

QUESTION = "Sum it:\n```python\nprint(40 + 2)\n```\nThanks!"


def contents(lab: LabServer, path: str) -> dict[str, Any]:
    """A file as JupyterLab's contents API serves it."""
    url = f"{lab.url}api/contents/{urllib.parse.quote(path)}"
    request = urllib.request.Request(url, headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def export(panel: Locator, choice: str, shot: str | None = None) -> None:
    panel.get_by_role("button", name="Export conversation").click()
    if shot:
        screenshot(panel, shot)
    panel.get_by_role("menuitem", name=choice).click()


def converse(page: Page, lab: LabServer, notebook: str) -> Locator:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    expect(panel.get_by_role("button", name="Export conversation")).to_be_disabled()
    ask(panel, "scenario:tool where am I?")
    expect(replies(panel).last).to_have_attribute("data-status", "complete", timeout=30_000)
    # The fake echoes the question, so this reply holds a Python code block.
    ask(panel, QUESTION)
    expect(replies(panel)).to_have_count(2)
    second = replies(panel).nth(1)
    expect(second).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(second).to_contain_text("You said: Sum it:")
    return panel


def test_export_opens_a_new_notebook_beside_the_current_one(
    page: Page, lab: LabServer, notebook: str
) -> None:
    panel = converse(page, lab, notebook)
    export(panel, "Open as a new notebook", shot="export-menu")
    folder, name = notebook.rsplit("/", 1)
    exported = f"{folder}/{name.removesuffix('.ipynb')}-conversation.ipynb"
    wait_for_notebook(page, exported)  # opened in a tab of its own

    model = contents(lab, exported)
    assert model["type"] == "notebook"
    nb = nbformat.from_dict(model["content"])
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata["kernelspec"]["name"] == "python3"  # the original notebook's kernel
    session_id = lab.sessions(notebook)[0]["id"]
    assert nb.metadata["jupyter_assistant"]["session_id"] == session_id
    code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    assert code == ["print(40 + 2)"]
    markdown = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    assert "where am I?" in markdown
    assert "- **Bash** `pwd`" in markdown
    expect(page.locator(".jp-NotebookPanel:visible .jp-CodeCell")).to_have_count(1)

    # Exporting again never overwrites: the next file gets a number.
    switch_to_tab(page, notebook)
    export(open_assistant(page), "Open as a new notebook")
    wait_for_notebook(page, exported.replace("-conversation", "-conversation-2"))
    assert (lab.root / exported).exists()


def test_export_downloads_the_markdown_transcript_the_command_also_writes(
    page: Page, lab: LabServer, notebook: str, tmp_path: Path
) -> None:
    panel = converse(page, lab, notebook)
    with page.expect_download() as download_info:
        export(panel, "Download as Markdown")
    download = download_info.value
    name = notebook.rsplit("/", 1)[-1].removesuffix(".ipynb")
    assert download.suggested_filename == f"{name}-conversation.md"
    text = Path(download.path()).read_text(encoding="utf-8")
    assert "```python\nprint(40 + 2)\n```" in text

    session_id = lab.sessions(notebook)[0]["id"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path)  # no config: the store is named on the line
    command = subprocess.run(
        [
            str(Path(sys.executable).parent / "jupyter"),
            "assistant",
            "sessions",
            "export",
            session_id,
            "--format",
            "md",
            f"--AssistantExtension.store_dir={lab.store}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert command.returncode == 0, command.stderr
    assert text == command.stdout  # the sidebar and the command write the same transcript
