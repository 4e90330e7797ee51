"""`%assistant changes` and `%assistant undo` in a real kernel, with the REAL Claude Code CLI
(against the local stand-in) changing a file through Bash in a `%assistant` turn."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_assistant.permissions import READ_ONLY_TOOLS

from .fakes.anthropic_standin import AnthropicStandIn
from .kernel_helpers import Kernel, status_of
from .test_magics_approval import real_claude_setup

COMMAND = "printf 'a,b\\n1,2\\n' > data.csv"


@pytest.fixture(scope="module")
def standin() -> Iterator[AnthropicStandIn]:
    with AnthropicStandIn() as server:
        yield server


@pytest.fixture
def kernel(tmp_path: Path, standin: AnthropicStandIn) -> Iterator[Kernel]:
    allowed = [*READ_ONLY_TOOLS, f"Bash({COMMAND})"]
    setup = real_claude_setup(tmp_path, standin, permission_allowed_tools=allowed)
    (setup.notebook.parent / "data.csv").write_text("old\n")
    started = Kernel.start(setup)
    started.ok("%load_ext jupyter_assistant")
    yield started
    started.shutdown()


def test_a_cells_turn_is_listed_and_undone(kernel: Kernel) -> None:
    assert kernel.setup is not None
    data = kernel.setup.notebook.parent / "data.csv"
    turn = kernel.run(f"%assistant RUN_BASH: {COMMAND}")
    assert status_of(turn) == "ok", turn.error_lines()
    assert data.read_text() == "a,b\n1,2\n"

    listed = kernel.run("%assistant changes")
    assert status_of(listed) == "ok", listed.error_lines()
    (shown,) = listed.markdowns()
    assert shown.startswith("Changed: data.csv")
    assert "-old" in shown and "+a,b" in shown

    data.write_text("the user's edit\n")
    refused = kernel.run("%assistant undo")
    assert "Not undone: data.csv changed after that turn" in refused.stdout()
    assert data.read_text() == "the user's edit\n"

    undone = kernel.run("%assistant --force undo")
    assert status_of(undone) == "ok", undone.error_lines()
    assert undone.stdout().startswith("Undone: the turn's changes to data.csv")
    assert data.read_text() == "old\n"
    again = kernel.run("%assistant undo")
    assert "No turn of this conversation changed files" in again.stdout()
