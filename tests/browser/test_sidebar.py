"""The Assistant sidebar in a real JupyterLab (base URL /a%40b/, token auth), driven in headless
Chromium against the fake Claude Code CLI."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import Locator, Page, Route, expect

from .lab import (
    FAKE_CLAUDE,
    SIDEBAR,
    LabServer,
    ask,
    copy_for_docs,
    open_assistant,
    open_lab,
    open_notebook_from_path,
    page_screenshot,
    replies,
    screenshot,
    switch_to_tab,
    wait_for_notebook,
    widen_sidebar,
    write_notebook,
)

DOCS_SHOT = Path(__file__).parent.parent.parent / "docs" / "images" / "sidebar.png"


def test_ask_streams_a_reply_with_a_tool_card_and_code_actions(
    page: Page, lab: LabServer, notebook: str
) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    expect(panel.locator(".jp-Assistant-notebook")).to_have_text(notebook.split("/")[-1])
    expect(panel.get_by_text("Ask about this notebook")).to_be_visible()

    ask(panel, "scenario:tool where am I?")
    folder = str((lab.root / "analysis").resolve())
    reply = replies(panel).last
    expect(reply).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(reply).to_contain_text(f"The working directory is: {folder}")
    card = replies(panel).first.locator(".jp-Assistant-tool")
    expect(card.locator(".jp-Assistant-toolName")).to_have_text("Bash")
    expect(card.locator(".jp-Assistant-toolSummary")).to_have_text("pwd")
    expect(card.locator(".jp-Assistant-toolBody")).to_be_hidden()
    card.locator("summary").click()  # expand: input and result
    expect(card.locator(".jp-Assistant-toolBody")).to_contain_text('"command": "pwd"')
    expect(card.locator(".jp-Assistant-toolBody")).to_contain_text(folder)

    # A reply with a code block (the fake echoes the prompt), sent with the active cell as
    # context.
    panel.get_by_label("Include active cell or selection").check()
    ask(panel, "Sum the amounts per region:\n```python\nprint(40 + 2)\n```\nThanks!")
    reply = replies(panel).last
    expect(reply).to_have_attribute("data-status", "complete", timeout=30_000)
    code = reply.locator(".jp-Assistant-codeBlock")
    expect(code.locator("pre")).to_contain_text("print(40 + 2)")
    expect(panel.get_by_text("with cell 1")).to_be_visible()
    sid = lab.sessions(notebook)[0]["id"]
    stored = lab.api("GET", f"sessions/{sid}")["messages"][-2]
    assert stored["context"]["active_cell"]["source"] == "import pandas as pd  # the first cell"

    cells = page.locator(".jp-NotebookPanel:visible .jp-Cell")
    expect(cells).to_have_count(1)
    code.get_by_role("button", name="Insert code as a cell below the active cell").click()
    expect(cells).to_have_count(2)
    expect(cells.nth(1).locator(".cm-content")).to_have_text("print(40 + 2)")
    expect(code.get_by_role("button", name="Copy code")).to_be_visible()

    usage = panel.locator(".jp-Assistant-usage")
    expect(usage).to_contain_text(re.compile(r"\d+ in · \d+ out tokens · \$\d"))
    screenshot(panel, "reply-with-tool-card")
    before = panel.bounding_box()
    widen_sidebar(page, 220)
    after = panel.bounding_box()
    assert before is not None and after is not None
    assert after["width"] > before["width"] + 150  # the panel's layout follows its width
    copy_for_docs(page_screenshot(page, "lab-with-sidebar"), DOCS_SHOT)

    # Raw HTML in a reply is sanitized.
    ask(panel, "<img src=x onerror=alert(1)><script>window.pwned = 1</script>")
    expect(replies(panel).last).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(replies(panel).last.locator("img")).to_have_count(1)
    expect(panel.locator("img[onerror]")).to_have_count(0)
    expect(panel.locator(".jp-Assistant-reply script")).to_have_count(0)
    assert page.evaluate("window.pwned") is None


def test_stop_and_escape_keep_the_partial_reply_marked_cancelled(
    page: Page, lab: LabServer, notebook: str
) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    ask(panel, "scenario:slow count slowly")
    reply = replies(panel).last
    expect(reply).to_contain_text("chunk 3.", timeout=30_000)  # streamed, still running
    expect(reply).to_have_attribute("data-status", "running")
    stop = panel.get_by_role("button", name="Stop the assistant (Escape)")
    stop.click()
    expect(reply).to_have_attribute("data-status", "cancelled", timeout=15_000)
    expect(reply.locator(".jp-Assistant-badge")).to_have_text("Cancelled")
    expect(reply).to_contain_text("chunk 0.")
    expect(reply).not_to_contain_text("chunk 79.")
    screenshot(panel, "cancelled")

    ask(panel, "scenario:hang then wait")
    reply = replies(panel).last
    expect(reply).to_contain_text("Working on it", timeout=30_000)
    panel.get_by_label("Message to the assistant").press("Escape")
    expect(reply).to_have_attribute("data-status", "cancelled", timeout=15_000)
    expect(reply).to_contain_text("Working on it")
    sid = lab.sessions(notebook)[0]["id"]
    stored = lab.api("GET", f"sessions/{sid}")
    assert [m["status"] for m in stored["messages"] if m["role"] == "assistant"] == [
        "cancelled",
        "cancelled",
    ]
    assert stored["status"] == "idle"


def test_a_reload_mid_turn_keeps_streaming_and_the_history(
    page: Page, lab: LabServer, notebook: str
) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    ask(panel, "first question")
    expect(replies(panel).last).to_have_attribute("data-status", "complete", timeout=30_000)
    ask(panel, "scenario:slow second question")
    expect(replies(panel).last).to_contain_text("chunk 2.", timeout=30_000)

    page.reload()
    wait_for_notebook(page, notebook)  # the layout (and the open panel) is restored by then
    panel = open_assistant(page)
    messages = panel.locator(".jp-Assistant-message")
    expect(messages.nth(0)).to_contain_text("first question")
    expect(messages.nth(1)).to_contain_text("You said: first question")
    expect(messages.nth(2)).to_contain_text("scenario:slow second question")
    reply = messages.nth(3)
    expect(reply).to_have_attribute("data-status", "running", timeout=15_000)
    expect(reply).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(reply).to_contain_text("chunk 79.")
    assert reply.inner_text().count("chunk 1.") == 1  # replayed once, not duplicated
    expect(messages).to_have_count(4)


def test_switching_notebooks_switches_conversations(
    page: Page, lab: LabServer, notebook: str
) -> None:
    other = write_notebook(lab.root, "reports/summary.ipynb")
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    ask(panel, "alpha question")
    expect(replies(panel).last).to_have_attribute("data-status", "complete", timeout=30_000)

    open_notebook_from_path(page, other)
    expect(panel.locator(".jp-Assistant-notebook")).to_have_text("summary.ipynb")
    expect(panel.locator(".jp-Assistant-message")).to_have_count(0)
    expect(panel.get_by_text("The assistant runs in")).to_contain_text("reports/")
    ask(panel, "beta question")
    expect(replies(panel).last).to_contain_text("You said: beta question", timeout=30_000)

    switch_to_tab(page, notebook)
    expect(panel.locator(".jp-Assistant-notebook")).to_have_text(notebook.split("/")[-1])
    expect(panel.locator(".jp-Assistant-log")).to_contain_text("alpha question")
    expect(panel.locator(".jp-Assistant-log")).not_to_contain_text("beta question")
    switch_to_tab(page, other)
    expect(panel.locator(".jp-Assistant-log")).to_contain_text("beta question")


def test_new_conversation_and_picking_an_earlier_one(
    page: Page, lab: LabServer, notebook: str
) -> None:
    open_lab(page, lab, notebook)
    page.keyboard.press("Alt+Shift+A")  # opens the panel and puts the cursor in the box
    panel = page.locator(SIDEBAR)
    expect(panel.get_by_label("Message to the assistant")).to_be_focused()
    ask(panel, "the first conversation")
    expect(replies(panel).last).to_have_attribute("data-status", "complete", timeout=30_000)

    panel.get_by_role("button", name="New conversation").click()
    expect(panel.locator(".jp-Assistant-message")).to_have_count(0)
    ask(panel, "the second conversation")
    expect(replies(panel).last).to_have_attribute("data-status", "complete", timeout=30_000)
    assert [s["title"] for s in lab.sessions(notebook)] == [
        "the second conversation",
        "the first conversation",
    ]

    picker = panel.get_by_label("Conversation of this notebook")
    first = lab.sessions(notebook)[1]["id"]
    picker.select_option(first)
    expect(panel.locator(".jp-Assistant-log")).to_contain_text("the first conversation")
    expect(panel.locator(".jp-Assistant-log")).not_to_contain_text("the second conversation")


def test_a_turn_started_through_the_api_appears_without_a_refresh(
    page: Page, lab: LabServer, notebook: str
) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    expect(panel.get_by_text("Ask about this notebook")).to_be_visible()
    # Another tab (or a script) creates the conversation and starts a turn.
    session = lab.api("POST", "sessions", {"path": notebook})
    lab.api(
        "POST", f"sessions/{session['id']}/messages", {"content": "scenario:slow from elsewhere"}
    )
    expect(panel.locator(".jp-Assistant-log")).to_contain_text("from elsewhere", timeout=15_000)
    reply = replies(panel).last
    expect(reply).to_contain_text("chunk", timeout=15_000)
    expect(panel.get_by_role("button", name="Stop the assistant (Escape)")).to_be_visible()
    expect(reply).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(reply).to_contain_text("chunk 79.")


def test_a_missing_login_shows_its_fix_once(page: Page, lab: LabServer, notebook: str) -> None:
    # The server could not tell before (the CLI says it is logged in): the turn fails.
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    ask(panel, "scenario:not_logged_in")
    reply = replies(panel).last
    expect(reply).to_have_attribute("data-status", "error", timeout=30_000)
    banner = panel.get_by_role("alert").filter(has_text="cannot run yet")
    expect(banner).to_contain_text("/login")
    screenshot(panel, "not-logged-in")
    error = lab.api("GET", f"sessions/{lab.sessions(notebook)[0]['id']}")["messages"][-1]["error"]
    assert error["code"] == "not_authenticated"
    # The fix shows once, in the banner; the failed reply points to it.
    expect(banner.locator(".jp-Assistant-bannerText")).to_have_text(error["message"])
    expect(reply.locator(".jp-Assistant-turnError")).to_have_text(
        "This turn could not run: see the fix above."
    )
    assert panel.inner_text().count(error["message"]) == 1


def test_a_turn_run_by_another_process_shows_running_and_stops(
    page: Page, lab: LabServer, notebook: str
) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    ask(panel, "a turn this server runs")  # leaves this server's events of an older turn
    expect(replies(panel).last).to_have_attribute("data-status", "complete", timeout=30_000)
    sid = lab.sessions(notebook)[0]["id"]

    with subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parent / "other_process_turn.py"),
            str(lab.store),
            str(lab.root),
            sid,
            str(FAKE_CLAUDE),
            "scenario:hang from a kernel",
        ],
        stdout=subprocess.PIPE,
        text=True,
    ) as kernel:
        assert kernel.stdout is not None
        assert kernel.stdout.readline().startswith("STARTED")
        log = panel.locator(".jp-Assistant-log")
        expect(log).to_contain_text("from a kernel", timeout=15_000)
        expect(panel.get_by_role("status")).to_contain_text("running in another process")
        # the runner saves the partial reply every 2 s; polling shows it
        reply = replies(panel).last
        expect(reply).to_contain_text("Working on it", timeout=15_000)
        expect(reply).to_have_attribute("data-status", "streaming")
        screenshot(panel, "running-elsewhere")

        panel.get_by_role("button", name="Stop the assistant (Escape)").click()
        assert kernel.stdout.readline().split() == ["FINISHED", "cancelled"]
        assert kernel.wait(30) == 0
    expect(reply).to_have_attribute("data-status", "cancelled", timeout=15_000)
    expect(reply).to_contain_text("Working on it")
    expect(panel.get_by_role("status")).to_have_count(0)
    expect(panel.get_by_role("button", name="Send message")).to_be_visible()


def test_a_kernels_turn_streams_live_in_the_sidebar(
    page: Page, lab: LabServer, notebook: str
) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    ask(panel, "a turn this server runs")
    expect(replies(panel).last).to_have_attribute("data-status", "complete", timeout=30_000)
    sid = lab.sessions(notebook)[0]["id"]

    with subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parent / "other_process_turn.py"),
            str(lab.store),
            str(lab.root),
            sid,
            str(FAKE_CLAUDE),
            "scenario:hang from a cell",
            "--journal",  # as a kernel does
        ],
        stdout=subprocess.PIPE,
        text=True,
    ) as kernel:
        assert kernel.stdout is not None
        assert kernel.stdout.readline().startswith("STARTED")
        log = panel.locator(".jp-Assistant-log")
        expect(log).to_contain_text("from a cell", timeout=15_000)
        # Streamed from the kernel's event journal, as a turn of this server is.
        expect(panel.get_by_role("status")).to_contain_text(
            "The assistant is working", timeout=15_000
        )
        reply = replies(panel).last
        expect(reply).to_contain_text("Working on it", timeout=15_000)
        # the live turn ("running"), not the partial reply saved by a checkpoint ("streaming")
        expect(reply).to_have_attribute("data-status", "running")
        panel.get_by_role("button", name="Stop the assistant (Escape)").click()
        assert kernel.stdout.readline().split() == ["FINISHED", "cancelled"]
        assert kernel.wait(30) == 0
    expect(reply).to_have_attribute("data-status", "cancelled", timeout=15_000)
    expect(reply).to_contain_text("Working on it")
    expect(panel.get_by_role("status")).to_have_count(0)


def test_the_dark_theme_applies_to_the_panel(page: Page, lab: LabServer, notebook: str) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    ask(panel, "hello in the dark")
    expect(replies(panel).last).to_have_attribute("data-status", "complete", timeout=30_000)
    light = luminance(panel.evaluate("node => getComputedStyle(node).backgroundColor"))
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
    page.locator(".lm-Menu-itemLabel").get_by_text("Theme", exact=True).hover()
    page.locator(".lm-Menu-itemLabel").get_by_text("JupyterLab Dark", exact=True).click()
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false", timeout=15_000)
    page.wait_for_timeout(500)  # the theme's CSS variables apply after the attribute flips
    dark = luminance(panel.evaluate("node => getComputedStyle(node).backgroundColor"))
    text = luminance(
        panel.locator(".jp-Assistant-userText").evaluate("node => getComputedStyle(node).color")
    )
    assert light > 0.8 > 0.3 > dark, (light, dark)
    assert text > 0.5  # light text on the dark background
    screenshot(panel, "dark-theme")


def luminance(css_color: str) -> float:
    """Relative brightness (0..1) of an `rgb(...)`/`rgba(...)` colour."""
    red, green, blue = (int(v) for v in re.findall(r"\d+", css_color)[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


def test_cookie_auth_with_the_xsrf_header_is_enough(
    page: Page, lab: LabServer, notebook: str
) -> None:
    """With a login cookie but no token header (a password or a hub login), every request,
    the POSTs and the event stream included, still passes: makeRequest sends the XSRF header."""
    open_lab(page, lab, notebook)  # the ?token= login also set the login cookie
    stripped: list[str] = []

    def without_token(route: Route) -> None:
        headers = {k: v for k, v in route.request.headers.items() if k.lower() != "authorization"}
        stripped.append(route.request.method)
        route.continue_(headers=headers)

    page.route("**/api/assistant/**", without_token)
    panel = open_assistant(page)
    ask(panel, "scenario:slow over the cookie")
    reply = replies(panel).last
    expect(reply).to_contain_text("chunk 1.", timeout=30_000)
    expect(reply).to_have_attribute("data-status", "complete", timeout=30_000)
    assert "POST" in stripped


def at_bottom(log: Locator) -> bool:
    return bool(
        log.evaluate("n => n.scrollHeight - n.scrollTop - n.clientHeight < 5 && n.scrollTop > 0")
    )


def test_the_conversation_opens_at_its_newest_message_and_follows_a_kernels_turn(
    page: Page, lab: LabServer, notebook: str
) -> None:
    session = lab.api("POST", "sessions", {"path": notebook})
    tall = "\n\n".join(f"line {i} of a long question" for i in range(60))
    lab.api("POST", f"sessions/{session['id']}/messages", {"content": tall})
    deadline = time.monotonic() + 30
    while lab.api("GET", f"sessions/{session['id']}")["status"] != "idle":
        assert time.monotonic() < deadline
        time.sleep(0.2)

    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    log = panel.locator(".jp-Assistant-log")
    expect(replies(panel).last).to_contain_text("line 59 of a long question")
    page.wait_for_function(
        "s => { const n = document.querySelector(s); "
        "return n && n.scrollTop > 0 && n.scrollHeight - n.scrollTop - n.clientHeight < 5 }",
        arg=f"{SIDEBAR} .jp-Assistant-log",
    )
    page.reload()
    wait_for_notebook(page, notebook)
    panel = open_assistant(page)
    log = panel.locator(".jp-Assistant-log")
    expect(replies(panel).last).to_contain_text("line 59 of a long question")
    page.wait_for_timeout(1000)  # the replies render (Markdown) after the first layout
    assert at_bottom(log), log.evaluate("n => [n.scrollHeight, n.scrollTop, n.clientHeight]")

    # A turn run in a kernel, streamed through the server: the panel keeps following it.
    with subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parent / "other_process_turn.py"),
            str(lab.store),
            str(lab.root),
            session["id"],
            str(FAKE_CLAUDE),
            "scenario:hang from a cell\n\n" + tall,
            "--journal",
        ],
        stdout=subprocess.PIPE,
        text=True,
    ) as kernel:
        assert kernel.stdout is not None
        assert kernel.stdout.readline().startswith("STARTED")
        reply = replies(panel).last
        expect(reply).to_contain_text("Working on it", timeout=15_000)
        page.wait_for_timeout(1000)
        assert at_bottom(log), log.evaluate("n => [n.scrollHeight, n.scrollTop, n.clientHeight]")
        panel.get_by_role("button", name="Stop the assistant (Escape)").click()
        assert kernel.stdout.readline().split() == ["FINISHED", "cancelled"]
        assert kernel.wait(30) == 0


def provider_pids(lab: LabServer) -> set[int]:
    """The server's provider processes (its children that carry a turn marker)."""
    import psutil

    assert lab.proc is not None
    found = set()
    for child in psutil.Process(lab.proc.pid).children():
        try:
            if "JUPYTER_ASSISTANT_TURN" in child.environ():
                found.add(child.pid)
        except psutil.Error:
            continue
    return found


def agents_started(lab: LabServer, before: set[int], timeout: float = 30) -> set[int]:
    """The provider processes the server started since ``before``, once there is one."""
    deadline = time.monotonic() + timeout
    while not provider_pids(lab) - before:
        assert time.monotonic() < deadline, "no agent was started"
        time.sleep(0.2)
    return provider_pids(lab) - before


def test_opening_the_panel_starts_the_agent_that_takes_the_first_question(
    page: Page, lab: LabServer, notebook: str
) -> None:
    # A conversation the notebook has (as after a restart): the panel shows it and asks the
    # server to start its agent, which then takes the question (warm_agents, prewarm).
    session = lab.api("POST", "sessions", {"path": notebook})
    before = provider_pids(lab)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/prewarm" in r.url else None)
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    started = agents_started(lab, before)
    assert [url.rsplit("/", 2)[-2] for url in asked] == [session["id"]]  # once, for this one
    ask(panel, "Are you ready?")
    expect(replies(panel).last).to_contain_text("Fake Claude reply. You said: Are you ready?")
    assert provider_pids(lab) - before == started  # the same process took it: no second one


def test_a_notebook_with_no_conversation_gets_its_agent_before_the_first_message(
    page: Page, lab: LabServer, notebook: str
) -> None:
    before = provider_pids(lab)
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    started = agents_started(lab, before)
    assert lab.sessions(notebook) == []  # nothing stored until the first message
    ask(panel, "Hello there")
    expect(replies(panel).last).to_contain_text("Fake Claude reply. You said: Hello there")
    assert provider_pids(lab) - before == started  # its first message took that agent
    assert len(lab.sessions(notebook)) == 1


def test_text_before_a_tool_call_shows_above_its_card_with_the_folder_it_ran_in(
    page: Page, lab: LabServer, notebook: str
) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    ask(panel, "scenario:tool where am I?")
    reply = replies(panel).last
    expect(reply).to_have_attribute("data-status", "complete", timeout=30_000)

    def check(reply: Locator) -> None:
        card = reply.locator(".jp-Assistant-tool")
        expect(card.locator(".jp-Assistant-toolWhere")).to_have_text("in analysis/")
        text = reply.get_by_text("I will run pwd.")
        expect(text).to_be_visible()
        text_box, card_box = text.bounding_box(), card.bounding_box()
        assert text_box is not None and card_box is not None
        assert text_box["y"] + text_box["height"] <= card_box["y"] + 1  # text above the card

    check(reply)
    page.reload()
    wait_for_notebook(page, notebook)
    panel = open_assistant(page)
    check(replies(panel).last)


def test_a_narrow_sidebar_wraps_titles_and_commands_and_a_stopped_tool_is_not_an_error(
    page: Page, lab: LabServer, notebook: str
) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    widen_sidebar(page, -600)  # as narrow as it goes
    box = panel.bounding_box()
    assert box is not None and box["width"] < 320, box
    name = "a_rather_long_file_name_that_does_not_fit_in_a_narrow_sidebar_at_all.txt"
    ask(panel, f"scenario:permission write:{name} please write the notes file for me")
    question = panel.locator(".jp-Assistant-permission").last
    expect(question).to_have_attribute("data-state", "waiting", timeout=30_000)
    said = replies(panel).last.locator(".jp-Assistant-reply").first
    expect(said).to_contain_text("I will write")
    assert said.evaluate("n => n.scrollWidth <= n.clientWidth + 1"), "the reply text is cut"
    command = question.locator(".jp-Assistant-toolSummary")
    expect(command).to_contain_text(name)
    assert command.evaluate("n => n.scrollWidth <= n.clientWidth + 1"), "the command is cut"
    assert command.evaluate("n => n.getBoundingClientRect().right") <= box["x"] + box["width"]
    title = panel.locator(".jp-Assistant-conversationTitle")
    expect(title).to_contain_text(lab.sessions(notebook)[0]["title"])  # all of it
    assert title.evaluate("n => n.scrollWidth <= n.clientWidth + 1"), "the title is cut"
    screenshot(panel, "narrow-approval")

    panel.get_by_role("button", name="Stop the assistant (Escape)").click()
    reply = replies(panel).last
    expect(reply).to_have_attribute("data-status", "cancelled", timeout=30_000)

    def check(reply: Locator) -> None:
        card = reply.locator(".jp-Assistant-tool")
        expect(card).to_have_attribute("data-state", "stopped")
        expect(card.locator(".jp-Assistant-toolState")).to_have_text("stopped")
        expect(card).not_to_have_class(re.compile(r"jp-mod-error"))

    check(reply)
    page.reload()
    wait_for_notebook(page, notebook)
    panel = open_assistant(page)
    check(replies(panel).last)
