"""The sidebar when the provider's CLI is not installed: an onboarding card in place of the
message box, with the install and login commands to copy, until "Check again" finds the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .lab import FAKE_CLAUDE, LabServer, ask, open_assistant, open_lab, replies, screenshot

INSTALL = "npm install -g @anthropic-ai/claude-code"


@pytest.fixture(scope="module")
def claude_command(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return [str(tmp_path_factory.mktemp("nowhere") / "claude")]


def test_a_missing_cli_shows_the_onboarding_card_until_it_is_installed(
    page: Page, lab: LabServer, notebook: str, claude_command: list[str]
) -> None:
    cli = Path(claude_command[0])
    assert not cli.exists()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    card = panel.get_by_role("region", name="Set up the assistant")
    expect(card).to_contain_text("Set up Claude Code")
    expect(card).to_contain_text("not found")
    # The card takes the message box's place: nothing can be sent that cannot run.
    expect(panel.get_by_label("Message to the assistant")).to_have_count(0)
    expect(panel.get_by_role("alert").filter(has_text="cannot run yet")).to_have_count(0)

    claude = card.locator('[data-provider="claude"]')
    expect(claude).to_have_attribute("data-state", "not-installed")
    expect(claude.locator("code")).to_have_text([INSTALL, "claude"])
    expect(claude).to_contain_text("then type /login")
    copy = claude.get_by_role("button", name=f"Copy: {INSTALL}")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == INSTALL
    claude.get_by_role("button", name="Copy: claude").click()
    assert page.evaluate("navigator.clipboard.readText()") == "claude"
    # The other providers, with their own commands, one click away.
    others = card.locator("details.jp-Assistant-otherProviders")
    others.locator("summary").click()
    expect(others.locator('[data-provider="codex"] code').first).to_have_text(
        "npm install -g @openai/codex"
    )
    screenshot(panel, "onboarding")

    # Still missing: checking again changes nothing.
    check = card.get_by_role("button", name="Check again")
    check.click()
    expect(check).to_be_enabled()
    expect(claude).to_have_attribute("data-state", "not-installed")

    # The user installs the CLI (here: the fake one, where the config points) and checks again.
    cli.symlink_to(FAKE_CLAUDE)
    check.click()
    expect(card).to_have_count(0)
    ask(panel, "hello now that it is installed")
    reply = replies(panel).last
    expect(reply).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(reply).to_contain_text("hello now that it is installed")
