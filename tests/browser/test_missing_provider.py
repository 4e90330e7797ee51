"""The sidebar when the provider's CLI is not installed: a banner with the install command."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .lab import LabServer, ask, open_assistant, open_lab, replies, screenshot

INSTALL = "npm install -g @anthropic-ai/claude-code"


@pytest.fixture(scope="module")
def claude_command(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return [str(tmp_path_factory.mktemp("nowhere") / "claude")]


def test_a_missing_cli_shows_the_banner_with_the_install_command(
    page: Page, lab: LabServer, notebook: str, claude_command: list[str]
) -> None:
    assert not Path(claude_command[0]).exists()
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    banner = panel.get_by_role("alert").filter(has_text="cannot run yet")
    expect(banner).to_contain_text("Claude Code cannot run yet")
    expect(banner).to_contain_text(INSTALL)
    screenshot(panel, "missing-provider")

    # Sending anyway ends the turn with the same fix, and the panel stays usable.
    ask(panel, "hello?")
    reply = replies(panel).last
    expect(reply).to_have_attribute("data-status", "error", timeout=30_000)
    expect(reply.locator(".jp-Assistant-turnError")).to_contain_text(INSTALL)
    expect(panel.get_by_label("Message to the assistant")).to_be_enabled()
    expect(panel.get_by_role("button", name="Check again")).to_be_visible()
