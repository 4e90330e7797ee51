"""The sidebar when the provider's CLI is installed but not logged in: the set-up card shows
before the first message (the server asked `claude auth status`), and a turn that fails for
want of a login shows the fix once, not in the banner and again in the reply
(test_sidebar.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from .lab import FAKE_CLAUDE, LabServer, open_assistant, open_lab, screenshot


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    # No key, no credentials file, and the CLI says it is logged out.
    server = LabServer(
        tmp_path_factory.mktemp("lab"),
        [str(FAKE_CLAUDE)],
        claude_settings={"env": {"FAKE_CLAUDE_LOGGED_IN": "0", "ANTHROPIC_API_KEY": ""}},
    ).start()
    yield server
    server.stop()


def test_the_set_up_card_shows_before_the_first_message(
    page: Page, lab: LabServer, notebook: str
) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    card = panel.get_by_role("region", name="Set up the assistant")
    expect(card).to_contain_text("Set up Claude Code")
    claude = card.locator('[data-provider="claude"]')
    expect(claude).to_have_attribute("data-state", "not-logged-in")
    expect(claude).to_contain_text("/login")
    # nothing can be sent that cannot run
    expect(panel.get_by_label("Message to the assistant")).to_have_count(0)
    screenshot(panel, "set-up-before-first-message")
