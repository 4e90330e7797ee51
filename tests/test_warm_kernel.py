"""Warm providers in a kernel (``%assistant`` / ``%%assistant``, turns/warm.py): a real kernel
keeps its conversation's CLI (the fake, tests/fakes/claude) running between its cells, and ends
it when it shuts down."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from jupyter_assistant.processes import MARKER_ENV

from .conftest import FAKE_CLAUDE_COMMAND
from .helpers import pids_alive
from .kernel_helpers import Kernel, KernelSetup, make_setup


@pytest.fixture
def setup(tmp_path: Path) -> KernelSetup:
    setup = make_setup(tmp_path)
    setup.write_server_config(
        {
            "ClaudeCodeProvider": {"command": FAKE_CLAUDE_COMMAND},
            "AssistantExtension": {"cancel_grace_seconds": 1.0, "warm_agents": True},
        }
    )
    return setup


@pytest.fixture
def kernel(setup: KernelSetup) -> Iterator[Kernel]:
    started = Kernel.start(setup)
    yield started
    started.shutdown()


def clis_of(setup: KernelSetup) -> list[int]:
    """The provider CLIs of this test's store (they inherit its JUPYTER_ASSISTANT_DIR)."""
    found = []
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
        except (psutil.Error, OSError):
            continue
        if MARKER_ENV in env and env.get("JUPYTER_ASSISTANT_DIR") == str(setup.store_dir):
            found.append(proc.pid)
    return found


def test_a_kernel_keeps_its_cli_between_cells_and_ends_it_at_shutdown(
    setup: KernelSetup, kernel: Kernel
) -> None:
    kernel.ok("%load_ext jupyter_assistant")
    first = kernel.ok("%assistant One")
    assert "You said: One" in "".join(first.markdowns())
    (pid,) = clis_of(setup)  # kept running after the cell's turn
    (record,) = (setup.store_dir / "processes" / "warm").glob("*.json")
    assert json.loads(record.read_text())["pid"] == pid

    second = kernel.ok("%assistant Two")
    assert clis_of(setup) == [pid]
    assert "You said: Two resumed:" in "".join(second.markdowns())

    assert kernel.km is not None
    kernel.km.shutdown_kernel(now=False)  # a kernel restart or close from JupyterLab
    deadline = time.monotonic() + 30
    while pids_alive([pid]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pids_alive([pid]) == []
    # cleared once the whole tree is gone (the kernel looks for what is left of it first)
    while record.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not record.exists()
