"""A real `jupyter lab` process for the sidebar's end-to-end tests, and the steps a user takes
in it (open a notebook, open the Assistant panel, ask), written with Playwright against Debian's
Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Locator, Page, expect

CHROMIUM = os.environ.get("JUPYTER_ASSISTANT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
TOKEN = "sidebar-e2e-token"
BASE_URL = "/a%40b/"  # a base_url that needs quoting, on purpose
ARTIFACTS = Path(__file__).parent / "artifacts"
FAKE_CLAUDE = Path(__file__).parent.parent / "fakes" / "claude"
SIDEBAR = "#jupyter-assistant-sidebar"

# A notebook with a kernelspec, so that opening it starts a kernel without asking which one.
NOTEBOOK_JSON = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "first-cell",
            "metadata": {},
            "outputs": [],
            "source": ["import pandas as pd  # the first cell"],
        }
    ],
    "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_notebook(root: Path, path: str) -> str:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(NOTEBOOK_JSON))
    return path


class LabServer:
    """`python -m jupyter lab` (or `app`: `notebook` for Notebook 7) on a free port with a
    private config, data and store."""

    def __init__(
        self,
        home: Path,
        claude_command: list[str],
        claude_settings: dict[str, Any] | None = None,
        assistant_settings: dict[str, Any] | None = None,
        app: str = "lab",
    ) -> None:
        self.app = app
        self.home = home
        self.root = home / "root"
        self.store = home / "store"
        self.claude_command = claude_command
        # More c.ClaudeCodeProvider / c.AssistantExtension settings (e.g. the real CLI's env).
        self.claude_settings = claude_settings or {}
        self.assistant_settings = assistant_settings or {}
        self.port = free_port()
        self.log = home / "lab.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{BASE_URL}"

    def start(self) -> LabServer:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.home / "config"
        (config / "labconfig").mkdir(parents=True, exist_ok=True)
        # No news/announcement toasts over the panel; in JupyterLab, none of the buttons and
        # menus that Notebook 7 (in the test extras for test_notebook7.py) adds to it either.
        disabled = {"@jupyterlab/apputils-extension:announcements": True}
        if self.app == "lab":
            disabled["@jupyter-notebook/lab-extension"] = True
        (config / "labconfig" / "page_config.json").write_text(
            json.dumps({"disabledExtensions": disabled})
        )
        (config / "jupyter_server_config.json").write_text(
            json.dumps(
                {
                    "ServerApp": {
                        "jpserver_extensions": {"jupyter_assistant": True},
                        "base_url": BASE_URL,
                        "root_dir": str(self.root),
                        "open_browser": False,
                        "port": self.port,
                        "ip": "127.0.0.1",
                        "allow_root": True,  # CI runs as root
                    },
                    "IdentityProvider": {"token": TOKEN},
                    "LabApp": {
                        "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                        "news_url": None,
                        "workspaces_dir": str(self.home / "workspaces"),
                    },
                    "AssistantExtension": {
                        "store_dir": str(self.store),
                        "cancel_grace_seconds": 1.0,
                        **self.assistant_settings,
                    },
                    "ClaudeCodeProvider": {"command": self.claude_command, **self.claude_settings},
                }
            )
        )
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(config),
            "JUPYTER_DATA_DIR": str(self.home / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.home / "runtime"),
            # The fake CLI's `scenario:slow`: 80 chunks, one every 0.1 s (about 8 s).
            "FAKE_COUNT": "80",
            "FAKE_DELAY": "0.1",
        }
        env.pop("JUPYTER_ASSISTANT_DIR", None)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyter", self.app],
                env=env,
                cwd=self.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"jupyter {self.app} exited early:\n{self.log.read_text()[-4000:]}"
                )
            try:
                self.api("GET", "providers")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.3)
        raise RuntimeError(f"jupyter {self.app} did not start:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the assistant API with the token, as another tab or a script would."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}api/assistant/{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def sessions(self, notebook: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"path": notebook})
        return self.api("GET", f"sessions?{query}")["sessions"]  # type: ignore[no-any-return]


def launch(playwright: Any) -> Browser:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium), "
            "or point JUPYTER_ASSISTANT_CHROMIUM at a Chromium binary."
        )
    return playwright.chromium.launch(  # type: ignore[no-any-return]
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
    )


# -- what a user does ------------------------------------------------------------------------


def open_lab(page: Page, server: LabServer, notebook: str) -> None:
    """Open JupyterLab on a notebook (as a link to it would) and wait until it shows. Each
    notebook gets a workspace of its own, so tests do not restore each other's tabs."""
    workspace = notebook.replace("/", "-").replace(".ipynb", "")
    page.goto(f"{server.url}lab/workspaces/{workspace}/tree/{notebook}?token={TOKEN}")
    wait_for_notebook(page, notebook)


def wait_for_notebook(page: Page, notebook: str) -> None:
    name = notebook.rsplit("/", 1)[-1]
    tab = page.locator(".jp-mod-current.lm-TabBar-tab", has_text=name)
    expect(tab).to_be_visible(timeout=60_000)
    expect(page.locator(".jp-NotebookPanel:visible .jp-Cell").first).to_be_visible(timeout=30_000)


def open_notebook_from_path(page: Page, notebook: str) -> None:
    """File > Open from Path…, as a user opens a second notebook."""
    page.locator(".lm-MenuBar-itemLabel", has_text="File").click()
    page.locator(".lm-Menu-itemLabel", has_text="Open from Path…").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input").fill(notebook)
    dialog.locator("button.jp-mod-accept").click()
    wait_for_notebook(page, notebook)


def switch_to_tab(page: Page, notebook: str) -> None:
    name = notebook.rsplit("/", 1)[-1]
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=name).click()
    expect(page.locator(".jp-mod-current.lm-TabBar-tab", has_text=name)).to_be_visible()


def open_assistant(page: Page) -> Locator:
    """Click the Assistant tab of the right sidebar (unless the panel already shows)."""
    panel = page.locator(SIDEBAR)
    if not panel.is_visible():
        page.locator('.jp-SideBar.jp-mod-right li[data-id="jupyter-assistant-sidebar"]').click()
    expect(panel).to_be_visible()
    return panel


def widen_sidebar(page: Page, by: int) -> None:
    """Drag the right sidebar's edge to the left, as a user makes the panel wider."""
    handles = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:not(.lm-mod-hidden)")
    box = handles.last.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - by, y, steps=5)
    page.mouse.up()


def ask(panel: Locator, text: str) -> None:
    """Type a message and press Enter (lines joined with Shift+Enter)."""
    box = panel.get_by_label("Message to the assistant")
    box.click()
    for i, line in enumerate(text.split("\n")):
        if i:
            box.press("Shift+Enter")
        box.press_sequentially(line)
    box.press("Enter")


def replies(panel: Locator) -> Locator:
    return panel.locator('.jp-Assistant-message[data-role="assistant"]')


def screenshot(panel: Locator, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    panel.screenshot(path=str(path))
    return path


def page_screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def copy_for_docs(shot: Path, target: Path) -> None:
    """Refresh the README's screenshot when asked to (SIDEBAR_SCREENSHOT_UPDATE=1)."""
    if os.environ.get("SIDEBAR_SCREENSHOT_UPDATE") == "1":
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
