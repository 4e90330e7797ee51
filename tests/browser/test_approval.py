"""Tool approval in the sidebar, in headless Chromium, with the REAL Claude Code CLI against the
Messages API stand-in, which asks to Write a file into the notebook's folder: the approval card
shows the diff, is answered with the keyboard or the mouse, and shows its outcome, also after
a reload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from ..fakes.anthropic_standin import AnthropicStandIn
from ..test_real_claude import find_real_claude, tool_results_sent
from .lab import LabServer, ask, open_assistant, open_lab, replies, screenshot, wait_for_notebook

PERMISSION_TIMEOUT = 8.0  # long enough to click on 2 busy cores; the no-answer test waits it out


@pytest.fixture(scope="module")
def standin() -> Iterator[AnthropicStandIn]:
    with AnthropicStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, standin: AnthropicStandIn) -> Iterator[LabServer]:
    home = tmp_path_factory.mktemp("lab-approval")
    env = standin.cli_env(home)
    server = LabServer(
        home,
        [find_real_claude()],
        claude_settings={"env": env},
        assistant_settings={"permission_timeout_seconds": PERMISSION_TIMEOUT},
    ).start()
    yield server
    server.stop()


def card(panel: Locator) -> Locator:
    return panel.locator(".jp-Assistant-permission").last


def notes_name(notebook: str) -> str:
    """A file of this test's own (the tests' notebooks share a folder)."""
    return f"notes_{Path(notebook).stem}.txt"


def notes(lab: LabServer, notebook: str) -> Path:
    return lab.root / Path(notebook).parent / notes_name(notebook)


def test_allow_once_from_the_keyboard_and_the_outcome_after_a_reload(
    page: Page, lab: LabServer, notebook: str
) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    ask(panel, f"RUN_WRITE: {notes_name(notebook)} hello from the sidebar")
    question = card(panel)
    expect(question).to_have_attribute("data-state", "waiting", timeout=30_000)
    expect(question).to_have_attribute("role", "group")
    expect(question.locator(".jp-Assistant-toolName")).to_have_text("Write")
    summary = question.locator(".jp-Assistant-permissionSummary")
    expect(summary.locator(".jp-mod-add")).to_have_text("+hello from the sidebar\n")
    expect(summary).to_contain_text(f"+++ b/{notes_name(notebook)}")
    assert not notes(lab, notebook).exists()
    screenshot(panel, "approval-card")

    allow = question.get_by_role("button", name="Allow once")
    allow.focus()
    expect(allow).to_be_focused()
    page.keyboard.press("Enter")
    reply = replies(panel).last
    expect(reply).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(question).to_have_attribute("data-state", "allow")
    expect(question.locator(".jp-Assistant-permissionOutcome")).to_have_text("Allowed once")
    expect(question.get_by_role("button")).to_have_count(0)  # answered: no buttons
    assert notes(lab, notebook).read_text() == "hello from the sidebar\n"

    page.reload()
    wait_for_notebook(page, notebook)
    panel = open_assistant(page)
    stored = card(panel)
    expect(stored.locator(".jp-Assistant-permissionOutcome")).to_have_text("Allowed once")
    stored.get_by_text("What it asked").click()
    expect(stored.locator(".jp-Assistant-permissionSummary")).to_contain_text("+hello")


def test_deny_with_a_reason_tells_the_agent(
    page: Page, lab: LabServer, notebook: str, standin: AnthropicStandIn
) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    ask(panel, f"RUN_WRITE: {notes_name(notebook)} nope")
    question = card(panel)
    expect(question).to_have_attribute("data-state", "waiting", timeout=30_000)
    reason = question.get_by_label("Reason for denying (optional, the assistant is told)")
    reason.fill("not in this folder")
    reason.press("Enter")
    reply = replies(panel).last
    expect(reply).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(question.locator(".jp-Assistant-permissionOutcome")).to_have_text(
        "Denied: not in this folder"
    )
    expect(reply).to_contain_text("The user denied this tool call: not in this folder")
    assert not notes(lab, notebook).exists()
    (sent,) = tool_results_sent(standin)
    assert sent["content"] == "The user denied this tool call: not in this folder"


def test_allow_for_this_session_is_not_asked_again(
    page: Page, lab: LabServer, notebook: str
) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    ask(panel, f"RUN_WRITE: {notes_name(notebook)} first")
    question = card(panel)
    expect(question).to_have_attribute("data-state", "waiting", timeout=30_000)
    question.get_by_role("button", name="Allow for this session").click()
    expect(replies(panel).last).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(question.locator(".jp-Assistant-permissionOutcome")).to_have_text(
        "Allowed for this session"
    )

    ask(panel, f"RUN_WRITE: {notes_name(notebook)} second")
    reply = replies(panel).nth(1)
    expect(reply).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(reply.locator(".jp-Assistant-permission")).to_have_count(0)  # not asked
    expect(reply).to_contain_text("you allowed this for the rest of the session")
    assert notes(lab, notebook).read_text() == "second\n"
    [session] = lab.sessions(notebook)
    approvals = lab.api("GET", f"sessions/{session['id']}")["approvals"]
    assert [(a["tool_name"], a["decision"]) for a in approvals] == [("Write", "allow")]


def test_no_answer_is_a_denial_after_the_timeout(page: Page, lab: LabServer, notebook: str) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    ask(panel, f"RUN_WRITE: {notes_name(notebook)} unanswered")
    question = card(panel)
    expect(question).to_have_attribute("data-state", "waiting", timeout=30_000)
    reply = replies(panel).last
    expect(reply).to_have_attribute("data-status", "complete", timeout=PERMISSION_TIMEOUT * 4000)
    expect(question.locator(".jp-Assistant-permissionOutcome")).to_have_text(
        "Denied: nobody answered in time"
    )
    expect(reply).to_contain_text("Nobody answered the request to use Write")
    assert not notes(lab, notebook).exists()


def test_stop_while_asking_ends_the_turn(page: Page, lab: LabServer, notebook: str) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    ask(panel, f"RUN_WRITE: {notes_name(notebook)} stopped")
    question = card(panel)
    expect(question).to_have_attribute("data-state", "waiting", timeout=30_000)
    panel.get_by_role("button", name="Stop the assistant (Escape)").click()
    reply = replies(panel).last
    expect(reply).to_have_attribute("data-status", "cancelled", timeout=30_000)
    expect(question.locator(".jp-Assistant-permissionOutcome")).to_have_text(
        "Not answered: the turn ended first"
    )
    assert not notes(lab, notebook).exists()
