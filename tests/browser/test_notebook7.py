"""Notebook 7 (the `notebook` package): its right sidebar is closed until View > Right Sidebar >
Show Assistant, so the Assistant opens there the first time a notebook is open, and afterwards
stays as the user left it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from .lab import SIDEBAR, TOKEN, LabServer, ask, replies

pytest.importorskip("notebook", minversion="7", reason="Notebook 7 is in the test extras")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, claude_command: list[str]) -> Iterator[LabServer]:
    server = LabServer(tmp_path_factory.mktemp("nb7"), claude_command, app="notebook").start()
    yield server
    server.stop()


def open_notebook7(page: Page, server: LabServer, notebook: str) -> None:
    page.goto(f"{server.url}notebooks/{notebook}?token={TOKEN}")
    expect(page.locator(".jp-NotebookPanel .jp-Cell").first).to_be_visible(timeout=60_000)


def toggle_from_the_view_menu(page: Page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="View").click()
    page.locator(".lm-Menu-itemLabel", has_text="Right Sidebar").hover()
    page.locator(".lm-Menu-itemLabel", has_text="Show Assistant").click()


def test_the_assistant_opens_the_first_time_then_stays_as_left(
    page: Page, lab: LabServer, notebook: str
) -> None:
    open_notebook7(page, lab, notebook)
    panel = page.locator(SIDEBAR)
    expect(panel).to_be_visible()  # no click: shown the first time
    ask(panel, "Say hi please")
    expect(replies(panel).last).to_contain_text("You said: Say hi please", timeout=30_000)
    # The user closes it: the next visit leaves it closed.
    toggle_from_the_view_menu(page)
    expect(panel).to_be_hidden()
    page.reload()
    expect(page.locator(".jp-NotebookPanel .jp-Cell").first).to_be_visible(timeout=60_000)
    # Once the Assistant is in the menu, the plugin has run (and would have opened it).
    page.locator(".lm-MenuBar-itemLabel", has_text="View").click()
    page.locator(".lm-Menu-itemLabel", has_text="Right Sidebar").hover()
    expect(page.locator(".lm-Menu-itemLabel", has_text="Show Assistant")).to_be_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    # And the menu still opens it.
    toggle_from_the_view_menu(page)
    expect(panel).to_be_visible()
