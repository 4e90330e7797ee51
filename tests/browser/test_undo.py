"""Undo a turn from the sidebar, in headless Chromium, with the REAL Claude Code CLI (against the
Messages API stand-in) changing files on disk through Bash: the changes line under the reply,
its diff view (folded when long), Undo this turn with the later turns named first, the files
back on disk, Undone after a reload; a file the user changed since is a conflict, and
Overwrite them forces the undo; Keep hides the buttons for good. An undo that restored the open
notebook's file reloads it; a cell the agent added through the notebook tools is listed with Go
to cell and taken out of the open notebook."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from jupyter_assistant.permissions import READ_ONLY_TOOLS

from ..fakes.anthropic_standin import AnthropicStandIn
from ..test_real_claude import find_real_claude
from .lab import (
    NOTEBOOK_JSON,
    LabServer,
    ask,
    copy_for_docs,
    open_assistant,
    open_lab,
    page_screenshot,
    replies,
    screenshot,
    wait_for_notebook,
    widen_sidebar,
)

DOCS_SHOT = Path(__file__).parent.parent.parent / "docs" / "images" / "undo.png"
NOTEBOOK = ".jp-NotebookPanel:visible"

EDIT = (
    "printf 'region,amount\\nnorth,10\\nsouth,25\\neast,7\\nwest,5\\n' > sales.csv"
    " && printf 'import pandas as pd\\n\\ndf = pd.read_csv(\"sales.csv\")\\n' > clean.py"
    " && rm old.txt"
)
# What the user says; the stand-in runs the command of the line after it.
ASK_EDIT = "Fix the south figure, add west, and start a cleaning script"
NUMBERS = "seq 1 60 > numbers.txt"
NOTES = "printf 'v2\\n' > notes.txt"
KEPT = "printf 'kept\\n' > kept.txt"
# The agent's version of a notebook, copied over it (the rule allows one simple command).
COPY_NOTEBOOK = "Bash(cp next.json *)"


@pytest.fixture(scope="module")
def standin() -> Iterator[AnthropicStandIn]:
    with AnthropicStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, standin: AnthropicStandIn) -> Iterator[LabServer]:
    home = tmp_path_factory.mktemp("lab-undo")
    server = LabServer(
        home,
        [find_real_claude()],
        # The first turn's CLI waits for the notebook MCP server (loaded on first use); cell
        # edits follow the file-edit setting, so the notebook tools' calls ask nothing.
        claude_settings={
            "env": {**standin.cli_env(home), "MCP_TIMEOUT": "60000"},
            "permission_mode": "acceptEdits",
        },
        # Exactly these commands run without an approval card.
        assistant_settings={
            "permission_allowed_tools": [
                *READ_ONLY_TOOLS,
                *(f"Bash({c})" for c in (EDIT, NUMBERS, NOTES, KEPT)),
                COPY_NOTEBOOK,
            ]
        },
    ).start()
    yield server
    server.stop()


def ask_and_wait(panel: Locator, text: str) -> Locator:
    count = replies(panel).count()
    ask(panel, text)
    reply = replies(panel).nth(count)
    expect(reply).to_have_attribute("data-status", "complete", timeout=60_000)
    expect(reply.locator(".jp-Assistant-permission")).to_have_count(0)  # allowed, not asked
    return reply


def changes_of(reply: Locator) -> Locator:
    return reply.locator(".jp-Assistant-changes")


def entry(changes: Locator, path: str) -> Locator:
    return changes.locator(f'.jp-Assistant-change[data-path="{path}"]')


def lines_of(block: Locator, kind: str) -> Locator:
    return block.locator(f".jp-Assistant-changeLine.jp-mod-{kind}")


def choose_theme(page: Page, theme: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
    page.locator(".lm-Menu-itemLabel").get_by_text("Theme", exact=True).hover()
    page.locator(".lm-Menu-itemLabel").get_by_text(theme, exact=True).click()


def rgba(css_color: str) -> tuple[float, float, float, float]:
    """An `rgb(...)`, `rgba(...)` or `color(srgb ...)` colour as 0..1 values with alpha."""
    values = [float(v) for v in re.findall(r"[\d.]+", css_color)]
    if css_color.startswith("color(srgb"):
        red, green, blue = values[:3]
    else:
        red, green, blue = (v / 255 for v in values[:3])
    return red, green, blue, values[3] if len(values) > 3 else 1.0


def luminance(css_color: str, over: str = "rgb(0, 0, 0)") -> float:
    """Relative brightness (0..1) of a colour, a translucent one seen over `over`."""
    red, green, blue, alpha = rgba(css_color)
    base = rgba(over)
    mixed = [alpha * c + (1 - alpha) * b for c, b in zip((red, green, blue), base[:3], strict=True)]
    return 0.2126 * mixed[0] + 0.7152 * mixed[1] + 0.0722 * mixed[2]


def test_the_changes_line_its_diff_and_undo_of_a_turn_and_the_one_after(
    page: Page, lab: LabServer, notebook: str
) -> None:
    folder = (lab.root / notebook).parent
    (folder / "sales.csv").write_text("region,amount\nnorth,10\nsouth,20\neast,7\n")
    (folder / "old.txt").write_text("old\n")
    open_lab(page, lab, notebook)
    panel = open_assistant(page)

    first = ask_and_wait(panel, f"{ASK_EDIT}\nRUN_BASH: {EDIT}")
    assert (folder / "clean.py").exists() and not (folder / "old.txt").exists()
    changes = changes_of(first)
    toggle = changes.locator(".jp-Assistant-changesToggle")
    expect(toggle).to_have_text("▸Changed: clean.py (new), old.txt (deleted), sales.csv")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(changes.locator(".jp-Assistant-changesDiff")).to_have_count(0)

    # The diff view opens from the line, with the keyboard.
    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    sales = entry(changes, "sales.csv")
    expect(sales.locator(".jp-Assistant-changeStatus")).to_have_text("changed")
    expect(lines_of(sales, "remove")).to_have_text(["-south,20"])
    expect(lines_of(sales, "add")).to_have_text(["+south,25", "+west,5"])
    expect(lines_of(sales, "context").first).to_have_text(" region,amount")
    clean = entry(changes, "clean.py")
    expect(clean.locator(".jp-Assistant-changeStatus")).to_have_text("new")
    expect(lines_of(clean, "add")).to_have_text(
        ["+import pandas as pd", "+", '+df = pd.read_csv("sales.csv")']
    )
    expect(lines_of(entry(changes, "old.txt"), "remove")).to_have_text(["-old"])
    # Tab order: the line, then Undo, then Keep.
    page.keyboard.press("Tab")
    expect(changes.get_by_role("button", name="Undo this turn")).to_be_focused()
    page.keyboard.press("Tab")
    expect(changes.get_by_role("button", name="Keep")).to_be_focused()
    widen_sidebar(page, 160)
    page.evaluate("document.activeElement.blur()")  # no focus ring in the docs' picture
    copy_for_docs(screenshot(panel, "undo"), DOCS_SHOT)

    # A long diff is folded: its first 40 lines, then the rest on "Show 21 more lines".
    second = ask_and_wait(panel, f"RUN_BASH: {NUMBERS}")
    assert (folder / "numbers.txt").read_text().splitlines()[-1] == "60"
    later = changes_of(second)
    expect(later.locator(".jp-Assistant-changesText")).to_have_text("Changed: numbers.txt (new)")
    later.locator(".jp-Assistant-changesToggle").click()
    numbers = entry(later, "numbers.txt")
    expect(numbers.locator(".jp-Assistant-changeLine")).to_have_count(40)
    more = numbers.get_by_role("button", name="Show 21 more lines")
    expect(more).to_have_attribute("aria-expanded", "false")
    more.click()
    expect(numbers.locator(".jp-Assistant-changeLine")).to_have_count(61)
    expect(numbers.locator(".jp-Assistant-changeLine").last).to_have_text("+60")
    expect(numbers.get_by_role("button", name="Show fewer lines")).to_have_attribute(
        "aria-expanded", "true"
    )

    # Undo of the first turn names the later one first; it goes too.
    changes.get_by_role("button", name="Undo this turn").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text(f"This also undoes your later message: 'RUN_BASH: {NUMBERS}'.")
    dialog.get_by_role("button", name="Undo 2 turns").click()
    expect(changes.locator(".jp-Assistant-changesUndone")).to_have_text("Undone")
    expect(later.locator(".jp-Assistant-changesUndone")).to_have_text("Undone")
    expect(changes.get_by_role("button", name="Undo this turn")).to_have_count(0)
    expect(later.get_by_role("button", name="Undo this turn")).to_have_count(0)
    expect(toggle).to_be_focused()  # the buttons went: the keyboard stays on the line
    assert (folder / "sales.csv").read_text() == "region,amount\nnorth,10\nsouth,20\neast,7\n"
    assert (folder / "old.txt").read_text() == "old\n"
    assert not (folder / "clean.py").exists()
    assert not (folder / "numbers.txt").exists()

    # After a reload, from the server.
    page.reload()
    wait_for_notebook(page, notebook)  # the layout (and the open panel) is restored by then
    panel = open_assistant(page)
    expect(replies(panel)).to_have_count(2)
    for reply in (replies(panel).nth(0), replies(panel).nth(1)):
        expect(changes_of(reply).locator(".jp-Assistant-changesUndone")).to_have_text("Undone")
        expect(reply.get_by_role("button", name="Undo this turn")).to_have_count(0)
    first = changes_of(replies(panel).nth(0))
    expect(first.locator(".jp-Assistant-changesText")).to_have_text(
        "Changed: clean.py (new), old.txt (deleted), sales.csv"
    )

    # The diff reads in the dark theme too: light text on a dark tint.
    first.locator(".jp-Assistant-changesToggle").click()
    added = lines_of(entry(first, "sales.csv"), "add").first
    choose_theme(page, "JupyterLab Dark")
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false", timeout=15_000)
    page.wait_for_timeout(500)  # the theme's CSS variables apply after the attribute flips
    style = "(n, p) => getComputedStyle(p ? n.parentElement : n)[p ? 'backgroundColor' : 'color']"
    text = luminance(added.evaluate(style, False))
    tint = added.evaluate("n => getComputedStyle(n).backgroundColor")
    shown = luminance(tint, over=added.evaluate(style, True))  # over the diff's background
    assert text > 0.6 and shown < 0.45, (text, shown, tint)
    screenshot(panel, "undo-dark")
    choose_theme(page, "JupyterLab Light")
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "true", timeout=15_000)


def test_a_file_changed_since_is_a_conflict_and_keep_stays_after_a_reload(
    page: Page, lab: LabServer, notebook: str
) -> None:
    folder = (lab.root / notebook).parent
    (folder / "notes.txt").write_text("v1\n")
    open_lab(page, lab, notebook)
    panel = open_assistant(page)

    reply = ask_and_wait(panel, f"RUN_BASH: {NOTES}")
    changes = changes_of(reply)
    expect(changes.locator(".jp-Assistant-changesText")).to_have_text("Changed: notes.txt")
    (folder / "notes.txt").write_text("the user's own edit\n")

    # Cancel leaves the user's edit and the turn as they are.
    changes.get_by_role("button", name="Undo this turn").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("Files changed since this turn")
    expect(dialog.locator("li")).to_have_text(["notes.txt"])
    page_screenshot(page, "undo-conflict")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    assert (folder / "notes.txt").read_text() == "the user's own edit\n"
    expect(changes.locator(".jp-Assistant-changesUndone")).to_have_count(0)

    # Overwrite them forces it.
    changes.get_by_role("button", name="Undo this turn").click()
    dialog.get_by_role("button", name="Overwrite them").click()
    expect(changes.locator(".jp-Assistant-changesUndone")).to_have_text("Undone")
    assert (folder / "notes.txt").read_text() == "v1\n"

    # Keep: no buttons for that turn, the line stays, after a reload too.
    kept = changes_of(ask_and_wait(panel, f"RUN_BASH: {KEPT}"))
    expect(kept.locator(".jp-Assistant-changesText")).to_have_text("Changed: kept.txt (new)")
    kept.get_by_role("button", name="Keep").click()
    expect(kept.get_by_role("button", name="Undo this turn")).to_have_count(0)
    expect(kept.get_by_role("button", name="Keep")).to_have_count(0)
    page.reload()
    wait_for_notebook(page, notebook)  # the layout (and the open panel) is restored by then
    panel = open_assistant(page)
    expect(replies(panel)).to_have_count(2)
    kept = changes_of(replies(panel).nth(1))
    expect(kept.locator(".jp-Assistant-changesText")).to_have_text("Changed: kept.txt (new)")
    expect(kept.get_by_role("button", name="Keep")).to_have_count(0)
    expect(kept.locator(".jp-Assistant-changesUndone")).to_have_count(0)
    assert (folder / "kept.txt").read_text() == "kept\n"


def save(page: Page) -> None:
    page.locator(f"{NOTEBOOK} .jp-Notebook").first.click(position={"x": 5, "y": 5})
    # Wait for the server's answer to the save: a notebook that is not dirty shows no sign
    # of a save under way, and the file is rewritten in place until the answer comes.
    with page.expect_response(
        lambda r: r.request.method == "PUT" and "/api/contents/" in r.url
    ) as answer:
        page.keyboard.press("Control+s")
    assert answer.value.ok, answer.value.status


def reload_from_disk(page: Page) -> None:
    """File > Reload Notebook from Disk, as a user looks at the file the agent wrote."""
    page.locator(f"{NOTEBOOK} .jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.locator(".lm-MenuBar-itemLabel", has_text="File").click()
    page.locator(".lm-Menu-itemLabel", has_text="Reload Notebook from Disk").click()


def test_an_undo_that_restores_the_open_notebook_reloads_it_from_disk(
    page: Page, lab: LabServer, notebook: str
) -> None:
    folder = (lab.root / notebook).parent
    name = notebook.rsplit("/", 1)[-1]
    agents = json.loads(json.dumps(NOTEBOOK_JSON))
    agents["cells"][0]["source"] = ["import pandas as pd  # edited by the agent"]
    agents["cells"].append({**agents["cells"][0], "id": "agent-cell", "source": ["x = 42"]})
    (folder / "next.json").write_text(json.dumps(agents))
    open_lab(page, lab, notebook)
    status = page.locator(".jp-StatusBar-TextItem", has_text="Python 3 (ipykernel) | Idle")
    expect(status).to_be_visible(timeout=60_000)  # the kernel's metadata is in
    save(page)
    dirty = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-dirty")
    expect(dirty).to_have_count(0)
    saved = (lab.root / notebook).read_text()
    panel = open_assistant(page)
    cells = page.locator(f"{NOTEBOOK} .jp-Cell")

    # The agent overwrites the notebook's file; the user reloads it to look at that version.
    reply = ask_and_wait(panel, f"RUN_BASH: cp next.json {name}")
    changes = changes_of(reply)
    expect(changes.locator(".jp-Assistant-changesText")).to_contain_text("Changed: ")
    reload_from_disk(page)
    expect(cells).to_have_count(2)

    # Undo puts the file back and the open notebook shows it, asking nothing, also at the save.
    changes.get_by_role("button", name="Undo this turn").click()
    expect(changes.locator(".jp-Assistant-changesUndone")).to_have_text("Undone")
    assert (lab.root / notebook).read_text() == saved
    expect(cells).to_have_count(1)
    expect(cells.first.locator(".jp-InputArea-editor")).to_have_text(
        "import pandas as pd  # the first cell"
    )
    expect(page.locator(".jp-Dialog")).to_have_count(0)
    save(page)
    expect(dirty).to_have_count(0)
    expect(page.locator(".jp-Dialog")).to_have_count(0)  # no "File Changed" question
    assert [c["id"] for c in json.loads((lab.root / notebook).read_text())["cells"]] == [
        "first-cell"
    ]

    # With unsaved changes in the notebook, the reload asks first.
    changes = changes_of(ask_and_wait(panel, f"RUN_BASH: cp next.json {name}"))
    reload_from_disk(page)
    expect(cells).to_have_count(2)
    cells.nth(1).locator(".jp-InputArea-editor").click()
    page.keyboard.type(" # mine, not saved")
    expect(dirty).to_have_count(1)
    changes.get_by_role("button", name="Undo this turn").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("Reload the notebook from disk?")
    expect(dialog).to_contain_text(f"The undo put {name} back as it was before the turn.")
    dialog.get_by_role("button", name="Reload").click()
    expect(cells).to_have_count(1)
    expect(dirty).to_have_count(0)
    assert (lab.root / notebook).read_text() == saved


def test_a_cell_the_agent_added_to_the_open_notebook_is_listed_and_undone_there(
    page: Page, lab: LabServer, notebook: str
) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    cells = page.locator(f"{NOTEBOOK} .jp-Cell")
    insert = {"source": "x = 42", "index": 0}
    reply = ask_and_wait(panel, f"RUN_TOOL: insert_cell {json.dumps(insert)}")
    expect(cells).to_have_count(2)  # in the open notebook (its file is as it was)

    changes = changes_of(reply)
    expect(changes.locator(".jp-Assistant-changesText")).to_have_text("Changed: 1 cell")
    changes.locator(".jp-Assistant-changesToggle").click()
    cell = changes.locator(".jp-Assistant-change[data-cell-id]")
    expect(cell.locator(".jp-Assistant-changeStatus")).to_have_text("new")
    expect(lines_of(cell, "add")).to_have_text(["+x = 42"])
    # Go to cell selects the agent's cell in the notebook.
    cell_id = cell.get_attribute("data-cell-id")
    cell.get_by_role("button", name=f"Go to cell {cell_id} in the notebook").click()
    expect(cells.first).to_have_class(re.compile(r"\bjp-mod-active\b"))

    # Undo takes the cell out of the open notebook, without a reload or a question.
    changes.get_by_role("button", name="Undo this turn").click()
    expect(changes.locator(".jp-Assistant-changesUndone")).to_have_text("Undone")
    expect(cells).to_have_count(1)
    expect(cells.first.locator(".jp-InputArea-editor")).to_have_text(
        "import pandas as pd  # the first cell"
    )
    expect(page.locator(".jp-Dialog")).to_have_count(0)
    expect(cell.get_by_role("button", name=f"cell {cell_id} was deleted")).to_be_disabled()
