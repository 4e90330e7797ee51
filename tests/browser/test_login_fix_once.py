"""A turn that fails because the CLI is not logged in (the server could not tell before): the
fix shows once, in the banner, and the failed reply points to it instead of repeating it."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .lab import LabServer, ask, open_assistant, open_lab, replies, screenshot


def test_a_turn_failing_for_a_login_shows_the_fix_once(
    page: Page, lab: LabServer, notebook: str
) -> None:
    open_lab(page, lab, notebook)
    panel = open_assistant(page)
    ask(panel, "scenario:not_logged_in hello")
    reply = replies(panel).last
    expect(reply).to_have_attribute("data-status", "error", timeout=30_000)
    banner = panel.get_by_role("alert").filter(has_text="cannot run yet")
    expect(banner).to_have_count(1)
    fix = banner.locator(".jp-Assistant-bannerText").inner_text()
    assert "log" in fix.lower()
    expect(reply.locator(".jp-Assistant-turnError")).to_have_text(
        "This turn could not run: see the fix above."
    )
    assert panel.inner_text().count(fix) == 1
    screenshot(panel, "login-fix-once")
