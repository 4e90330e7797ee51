"""The README's commands work as written: its curl walk-through pasted whole into a shell (with
the real Claude Code CLI and the local Messages-API stand-in), and its test command lints only
the project's own files (notebooks a user leaves in the checkout are not linted)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from .test_real_claude import find_real_claude

REPO = Path(__file__).parent.parent


def sh_blocks() -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", (REPO / "README.md").read_text(), re.M | re.S)


def test_ci_runs_the_readmes_test_command_as_written() -> None:
    """CI (.ci/run) ends with the README's test command, its second sh block, word for word
    (its first command is run from the README itself by scripts/check_first_command.sh)."""
    test_command = sh_blocks()[1].strip()
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert ci[-1] == test_command
    assert "scripts/check_first_command.sh" in ci


def test_the_curl_walk_through_works_pasted_whole(tmp_path: Path) -> None:
    blocks = [b for b in sh_blocks() if "$B/sessions" in b]
    assert len(blocks) == 2, "the README's curl section: the walk-through and its follow-up"
    home = tmp_path / "home"
    home.mkdir()
    # The README's `pip install .` has no real-time collaboration; the tests' virtualenv has
    # it (the test extras), and jupyter-server-ydoc 3 prints a traceback of its own when a
    # server stops ("WebsocketServer not running"). Off, as the README's user has it.
    (home / ".jupyter").mkdir()
    (home / ".jupyter" / "jupyter_server_config.json").write_text(
        '{"ServerApp": {"jpserver_extensions": {"jupyter_server_ydoc": false}}}'
    )
    venv = Path(os.environ.get("VIRTUAL_ENV", "") or Path(sys.executable).parent.parent)
    # The README runs from a checkout with its .venv: this checkout, with this interpreter's.
    work = tmp_path / "checkout"
    work.mkdir()
    (work / ".venv").symlink_to(venv)
    (work / "tests").symlink_to(REPO / "tests")
    claude_bin = str(Path(find_real_claude()).parent)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTER", "ANTHROPIC_", "CLAUDE_", "PYTEST"))
    }
    env.update(HOME=str(home), PATH=f"{claude_bin}{os.pathsep}{env.get('PATH', '')}")
    script = "\n".join(blocks) + "\nkill $(jobs -p) 2>/dev/null; wait\n"
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        with_group = [p for p in psutil.process_iter() if _in_group(p, proc.pid)]
        if with_group:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "Traceback" not in out, out
    assert "curl:" not in out, out  # no failed call
    assert '"name": "claude"' in out and '"available": true' in out
    streams = out.split("event: turn_started")
    assert len(streams) == 4, out  # the first turn, the follow-up, the stopped turn
    assert str((home / "demo" / "analysis").resolve()) in streams[1]  # pwd ran there
    assert "event: done" in streams[1] and "event: done" in streams[2]
    assert "sleep 60" in streams[3]
    assert "event: cancelled" in streams[3], streams[3]
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "60"]]


def _in_group(process: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(process.pid) == pgid
    except OSError:
        return False


@pytest.mark.parametrize("command", ["check", "format --check"])
def test_the_test_command_lints_only_the_projects_own_files(command: str) -> None:
    script = (REPO / "scripts" / "test.sh").read_text()
    (linted,) = re.findall(r"^LINTED=\((.*)\)$", script, re.M)
    paths = linted.split()
    assert f'ruff" {command} "${{LINTED[@]}}"' in script  # those paths, not the whole tree
    assert f'ruff" {command} .' not in script
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    # every Python file of the project is linted (none left out by the narrower paths)
    assert [f for f in tracked if not f.startswith(tuple(p + "/" for p in paths))] == []
