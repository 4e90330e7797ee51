"""Fixtures of the sidebar's end-to-end tests: one `jupyter lab` server and one headless Chromium
per module (with the fake Claude CLI), a fresh page and notebook per test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from .lab import FAKE_CLAUDE, LabServer, launch, write_notebook


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> None:
    """These tests are synchronous (Playwright runs its own loop): pytest-jupyter's autouse
    loop fixture would pick up Playwright's loop and close it under it."""


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> None:
    """No pytest-jupyter server here: the tests run `jupyter lab` as a process."""


# Module scope, not session: Playwright's sync API keeps an event loop marked as running in
# this thread while it lives, which would break pytest-jupyter's async tests that run later.
@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    browser = launch(playwright_instance)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def claude_command() -> list[str]:
    """Override in a module to configure another provider command."""
    return [str(FAKE_CLAUDE)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, claude_command: list[str]) -> Iterator[LabServer]:
    server = LabServer(tmp_path_factory.mktemp("lab"), claude_command).start()
    yield server
    server.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


@pytest.fixture
def notebook(lab: LabServer, request: pytest.FixtureRequest) -> str:
    """A notebook of this test's own, in a subfolder: its conversations are its own."""
    name = re.sub(r"[^A-Za-z0-9]+", "_", request.node.name)[:60]
    return write_notebook(lab.root, f"analysis/{name}.ipynb")


@pytest.fixture
def lab_root(lab: LabServer) -> Path:
    return lab.root
