"""The notebook tools on a notebook open in JupyterLab, in headless Chromium, with the REAL Claude
Code CLI against the Messages API stand-in: the agent's cell appears in the open notebook at
once (the browser's relay applies it, labextension/src/notebookRelay.ts), with the assistant's
badge, no "file changed on disk" dialog when the user saves, the notebook's undo of a cell
operation (Z) takes it back, and a run's output shows under the cell as a user's run would. In
the sidebar, an edit's tool card shows its diff and "Go to cell" selects the cell."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from jupyter_assistant.permissions import READ_ONLY_TOOLS

from ..fakes.anthropic_standin import AnthropicStandIn
from ..test_real_claude import find_real_claude
from .lab import (
    LabServer,
    ask,
    copy_for_docs,
    open_assistant,
    open_lab,
    page_screenshot,
    replies,
    screenshot,
    widen_sidebar,
)

DOCS_SHOT = Path(__file__).parent.parent.parent / "docs" / "images" / "notebook-tools.png"
DOCS_CARD_SHOT = DOCS_SHOT.with_name("notebook-tool-card.png")
NOTEBOOK = ".jp-NotebookPanel:visible"


@pytest.fixture(scope="module")
def standin() -> Iterator[AnthropicStandIn]:
    with AnthropicStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, standin: AnthropicStandIn) -> Iterator[LabServer]:
    home = tmp_path_factory.mktemp("lab-notebook-tools")
    env = {
        **standin.cli_env(home),
        # The first turn's CLI waits for the notebook MCP server (loaded on first use).
        "MCP_TIMEOUT": "60000",
    }
    server = LabServer(
        home,
        [find_real_claude()],
        # Cell edits follow the file-edit setting; runs are allowed outright: no approval card.
        claude_settings={"env": env, "permission_mode": "acceptEdits"},
        assistant_settings={
            "permission_allowed_tools": [*READ_ONLY_TOOLS, "mcp__notebook__run_cell"]
        },
    ).start()
    yield server
    server.stop()


def tool_call(name: str, **arguments: Any) -> str:
    return f"RUN_TOOL: {name} {json.dumps(arguments)}"


def cells(page: Page) -> Locator:
    return page.locator(f"{NOTEBOOK} .jp-Notebook .jp-Cell")


def on_disk(lab: LabServer, notebook: str) -> list[dict[str, Any]]:
    return json.loads((lab.root / notebook).read_text())["cells"]  # type: ignore[no-any-return]


def ask_and_wait(panel: Locator, text: str) -> Locator:
    count = replies(panel).count()
    ask(panel, text)
    reply = replies(panel).nth(count)
    expect(reply).to_have_attribute("data-status", "complete", timeout=60_000)
    return reply


def kernel_idle(page: Page) -> None:
    """The notebook's kernel has started (the status bar says Idle), so that a run runs."""
    status = page.locator(".jp-StatusBar-TextItem", has_text="Python 3 (ipykernel) | Idle")
    expect(status).to_be_visible(timeout=60_000)


def test_an_insert_shows_at_once_is_saved_without_a_dialog_and_a_run_shows_its_output(
    page: Page, lab: LabServer, notebook: str
) -> None:
    open_lab(page, lab, notebook)
    kernel_idle(page)
    panel = open_assistant(page)

    reply = ask_and_wait(panel, tool_call("insert_cell", source="print(6*7)"))
    expect(reply).to_contain_text("mcp__notebook__insert_cell")
    expect(cells(page)).to_have_count(2)  # in the open notebook, without a reload
    cell = cells(page).nth(1)
    expect(cell.locator(".jp-InputArea-editor")).to_have_text("print(6*7)")
    badge = cell.locator(".jp-Assistant-cellBadge")
    expect(badge).to_have_text("assistant")
    expect(badge).to_have_attribute("title", "Written by the assistant")
    expect(cells(page).first.locator(".jp-Assistant-cellBadge")).to_have_count(0)
    # The change went into the open document, not under it: the file is as it was.
    assert [c["id"] for c in on_disk(lab, notebook)] == ["first-cell"]

    reply = ask_and_wait(panel, tool_call("run_cell", index=1))
    expect(reply.locator(".jp-Assistant-permission")).to_have_count(0)  # allowed, not asked
    expect(cell.locator(".jp-OutputArea-output")).to_have_text("42")
    expect(cell.locator(".jp-InputPrompt")).to_have_text("[1]:")
    copy_for_docs(page_screenshot(page, "notebook-tools"), DOCS_SHOT)

    # The user saves: no "File Changed" dialog (the file was not written under the notebook),
    # and the file has the agent's cell, marked, with the run's output.
    page.locator(f"{NOTEBOOK} .jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    expect(page.locator(f"{NOTEBOOK} .jp-mod-dirty, .lm-TabBar-tab.jp-mod-dirty")).to_have_count(0)
    expect(page.locator(".jp-Dialog")).to_have_count(0)
    saved = on_disk(lab, notebook)
    assert ["".join(c["source"]) for c in saved] == [
        "import pandas as pd  # the first cell",
        "print(6*7)",
    ]
    [session] = lab.sessions(notebook)
    assert saved[1]["metadata"]["jupyter_assistant"]["session_id"] == session["id"]
    assert "".join(saved[1]["outputs"][0]["text"]) == "42\n"


def test_the_notebooks_undo_takes_back_the_agents_insert(
    page: Page, lab: LabServer, notebook: str
) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    ask_and_wait(panel, tool_call("insert_cell", source="x = 'from the agent'", index=0))
    expect(cells(page)).to_have_count(2)
    agents = cells(page).first
    expect(agents.locator(".jp-InputArea-editor")).to_have_text("x = 'from the agent'")
    expect(agents.locator(".jp-Assistant-cellBadge")).to_be_visible()

    # Command mode in the notebook (the user's own cell selected), as after the user's own insert.
    cells(page).nth(1).locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    expect(page.locator(f"{NOTEBOOK} .jp-Notebook.jp-mod-commandMode")).to_have_count(1)
    # JupyterLab's own undo of a cell operation (Edit > Undo Cell Operation) is Z in command
    # mode; Ctrl+Z undoes typing in the active cell's editor.
    page.keyboard.press("z")
    expect(cells(page)).to_have_count(1)
    expect(cells(page).first.locator(".jp-InputArea-editor")).to_contain_text("the first cell")
    expect(page.locator(".jp-Dialog")).to_have_count(0)


def test_an_edits_tool_card_shows_its_diff_and_goes_to_the_cell(
    page: Page, lab: LabServer, notebook: str
) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    ask_and_wait(panel, tool_call("insert_cell", source="x = 1\nprint(x)"))
    expect(cells(page)).to_have_count(2)
    reply = ask_and_wait(panel, tool_call("edit_cell", index=1, source="x = 2\nprint(x)"))
    expect(cells(page).nth(1).locator(".jp-InputArea-editor")).to_contain_text("x = 2")

    card = reply.locator('.jp-Assistant-nbTool[data-tool="edit_cell"]')
    expect(card.locator(".jp-Assistant-nbToolSummary")).to_have_text("Edited cell 1")
    expect(card.locator(".jp-Assistant-nbDiffLine.jp-mod-remove")).to_have_text(["-x = 1"])
    expect(card.locator(".jp-Assistant-nbDiffLine.jp-mod-add")).to_have_text(["+x = 2"])
    expect(card.locator(".jp-Assistant-nbDiffLine.jp-mod-context")).to_have_text([" print(x)"])
    screenshot(reply, "notebook-tool-card-narrow")  # the sidebar's default width
    widen_sidebar(page, 160)
    copy_for_docs(screenshot(reply, "notebook-tool-card"), DOCS_CARD_SHOT)

    # The user's own cell is the active one; Go to cell makes the edited cell active instead.
    expect(cells(page).first).to_have_class(re.compile(r"\bjp-mod-active\b"))
    go = card.get_by_role("button", name="Go to cell 1 in the notebook")
    go.focus()
    page.keyboard.press("Enter")  # a button: the keyboard reaches it
    expect(cells(page).nth(1)).to_have_class(re.compile(r"\bjp-mod-active\b"))
    expect(cells(page).nth(1)).to_have_class(re.compile(r"\bjp-mod-selected\b"))
    expect(cells(page).first).not_to_have_class(re.compile(r"\bjp-mod-active\b"))
    expect(page.locator(f"{NOTEBOOK} .jp-Notebook.jp-mod-commandMode")).to_have_count(1)

    # A long diff shows its first 40 lines, and the rest on "Show all".
    long_source = "\n".join(f"y{i} = {i}" for i in range(45))
    long_reply = ask_and_wait(panel, tool_call("edit_cell", index=1, source=long_source))
    long_card = long_reply.locator('.jp-Assistant-nbTool[data-tool="edit_cell"]')
    lines = long_card.locator(".jp-Assistant-nbDiffLine")
    expect(lines).to_have_count(40)
    show_all = long_card.get_by_role("button", name="Show all 48 lines")
    expect(show_all).to_have_attribute("aria-expanded", "false")
    show_all.click()
    expect(lines).to_have_count(48)
    expect(lines.last).to_have_text("+y44 = 44")
    expect(long_card.get_by_role("button", name="Show fewer lines")).to_have_attribute(
        "aria-expanded", "true"
    )

    # Once the agent deletes the cell, the card says so instead of going nowhere.
    ask_and_wait(panel, tool_call("delete_cell", index=1))
    expect(cells(page)).to_have_count(1)
    gone = card.get_by_role("button", name="cell 1 was deleted")
    expect(gone).to_be_disabled()
    expect(gone).to_have_text("Cell deleted")
    expect(gone).to_have_attribute("title", re.compile("no longer in the notebook"))

    # The card in the dark theme, to look at (its colours are the theme's variables); then the
    # light theme again, for the other tests of this server.
    use_theme(page, "JupyterLab Dark", light=False)
    long_card.get_by_role("button", name="Show fewer lines").click()
    card.scroll_into_view_if_needed()
    expect(gone).to_be_visible()
    screenshot(reply, "notebook-tool-card-dark")
    use_theme(page, "JupyterLab Light", light=True)


def use_theme(page: Page, name: str, *, light: bool) -> None:
    """Switch JupyterLab's theme through the command palette, as a user would."""
    page.keyboard.press("Control+Shift+c")
    page.keyboard.type(f"Use Theme: {name}")
    page.keyboard.press("Enter")
    expect(page.locator(f"body[data-jp-theme-light='{str(light).lower()}']")).to_have_count(1)
