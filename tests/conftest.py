"""Shared fixtures: a real Jupyter server (pytest-jupyter) with the extension, a private store,
and the fake Claude Code CLI from tests/fakes."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]

FAKES = Path(__file__).parent / "fakes"
FAKE_CLAUDE = FAKES / "claude"


def fake_cli(name: str) -> list[str]:
    """A fake CLI of tests/fakes as a provider command, run by this interpreter: its
    ``#!/usr/bin/env python3`` may find another Python, which pytest-jupyter's PYTHONPATH (this
    interpreter's sys.path) then breaks ("SRE module mismatch" on Python 3.12 and 3.13)."""
    return [sys.executable, str(FAKES / name)]


FAKE_CLAUDE_COMMAND = fake_cli("claude")


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "assistant-store"


@pytest.fixture
def notebook_dir(jp_root_dir: Path) -> Path:
    folder = jp_root_dir / "analysis"
    folder.mkdir()
    (folder / "q3.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    )
    (folder / "sales.csv").write_text("region,amount\nnorth,10\nsouth,20\n")
    return folder


@pytest.fixture
def claude_command() -> list[str]:
    return list(FAKE_CLAUDE_COMMAND)


@pytest.fixture
def assistant_config() -> dict[str, Any]:
    """Override in a test module to change AssistantExtension settings."""
    return {}


@pytest.fixture
def jp_server_config(
    store_dir: Path, claude_command: list[str], assistant_config: dict[str, Any]
) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_assistant": True}},
        "AssistantExtension": {
            "store_dir": str(store_dir),
            "cancel_grace_seconds": 1.0,
            **assistant_config,
        },
        "ClaudeCodeProvider": {"command": claude_command},
    }


@pytest.fixture(autouse=True)
def _no_leaked_store_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The extension exports its store dir for kernels; keep tests independent of each other.
    monkeypatch.setenv("JUPYTER_ASSISTANT_DIR", os.environ.get("JUPYTER_ASSISTANT_DIR", ""))
    monkeypatch.delenv("JUPYTER_ASSISTANT_DIR")


@pytest.fixture
def assistant_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog`` for the package's loggers: once a server has loaded the extension they log
    through the server's log, which does not propagate to the root logger caplog listens on."""
    package = logging.getLogger("jupyter_assistant")
    package.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG, logger="jupyter_assistant")
    try:
        yield caplog
    finally:
        package.removeHandler(caplog.handler)


@pytest.fixture
def live_events(jp_http_port: int, jp_base_url: str, jp_auth_header: dict[str, str]) -> Any:
    """``live_events(session_id)``: a started StreamReader on the session's event stream."""
    from .helpers import StreamReader, events_url

    def start(session_id: str) -> StreamReader:
        reader = StreamReader(events_url(jp_http_port, jp_base_url, session_id), jp_auth_header)
        reader.start()
        return reader

    return start
