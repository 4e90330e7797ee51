"""`jupyter assistant`, run as a user runs it (the `jupyter` launcher, a subprocess) against a
real store and a private Jupyter config: doctor, the session commands, and the retention
setting applied by a real server at start-up."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_assistant.models import Message, Session, ToolCall, Usage
from jupyter_assistant.settings import EngineSettings
from jupyter_assistant.store import SessionStore, atomic_write

from .conftest import FAKE_CLAUDE
from .helpers import pids_alive
from .real_server import Server

BIN = Path(sys.executable).parent
OTHER_PROCESS_TURN = Path(__file__).parent / "browser" / "other_process_turn.py"
INSTALL = "npm install -g @anthropic-ai/claude-code"

# A process that owns a turn record of a session, as a server or kernel does mid-turn, without
# touching the session itself (so an old conversation stays old).
LIVE_OWNER = """
import sys, time
from jupyter_assistant.processes import ProcessRegistry
ProcessRegistry(sys.argv[1]).claim(sys.argv[2], "turn-of-a-live-owner")
print("CLAIMED", flush=True)
time.sleep(3600)
"""

REPLY = (
    "Here is the sum per region:\n\n"
    "```python\nimport pandas as pd\ndf = pd.read_csv('sales.csv')\n"
    "df.groupby('region').amount.sum()\n```\n\n"
    "And the files:\n\n```bash\nls *.csv\n```\n\nThen plot it:\n\n"
    "```\ndf.plot()\n```\nDone."
)


@dataclass
class Env:
    """A machine as a new user has it: a home, a Jupyter config folder, a store."""

    home: Path
    config: Path
    store: Path
    root: Path
    env: dict[str, str]

    def write_config(self, data: dict[str, Any]) -> None:
        base = {"AssistantExtension": {"store_dir": str(self.store)}}
        for section, values in data.items():
            base.setdefault(section, {}).update(values)
        (self.config / "jupyter_server_config.json").write_text(json.dumps(base))

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "jupyter"), "assistant", *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )


# The agent CLIs this package knows: whatever the user installed globally (the README's first
# command puts `claude` in /usr/bin), the doctor's tests see none of them.
PROVIDER_CLIS = {"claude", "codex", "gemini"}


@pytest.fixture(scope="session")
def system_bin(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A folder standing in for /usr/bin and /bin: every program in them but the agent CLIs."""
    folder = tmp_path_factory.mktemp("system-bin")
    for source in (Path("/usr/bin"), Path("/bin")):
        if not source.is_dir():
            continue
        for program in source.iterdir():
            target = folder / program.name
            if program.name not in PROVIDER_CLIS and not target.exists():
                target.symlink_to(program)
    return str(folder)


@pytest.fixture
def machine(tmp_path: Path, system_bin: str) -> Env:
    home, config, store, root = (tmp_path / n for n in ("home", "config", "store", "root"))
    for folder in (home, config, root / "analysis"):
        folder.mkdir(parents=True)
    (root / "analysis" / "q3.ipynb").write_text("{}")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTER", "ANTHROPIC_", "CLAUDE_"))
    }
    env.update(
        HOME=str(home),
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        # The venv (jupyter, jupyter-assistant) and the system, but no provider CLI.
        PATH=f"{BIN}{os.pathsep}{system_bin}",
    )
    machine = Env(home, config, store, root, env)
    machine.write_config({})
    return machine


def stamp(days_ago: float) -> str:
    when = datetime.now(timezone.utc) - timedelta(days=days_ago)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_session(
    machine: Env, days_old: float = 0, notebook: str = "analysis/q3.ipynb", title: str = "t"
) -> Session:
    """A stored conversation, last changed ``days_old`` days ago."""
    file = (machine.root / notebook).resolve()
    file.parent.mkdir(parents=True, exist_ok=True)
    file.touch()
    store = SessionStore(machine.store)
    session = Session(
        path=notebook,
        notebook_key=str(file),
        working_dir=str(file.parent),
        provider="claude",
        title=title,
        messages=[
            Message(role="user", content="Sum the amounts per region", context={"active_cell": {}}),
            Message(
                role="assistant",
                content=REPLY,
                tools=[ToolCall(id="t1", name="Bash", input={"command": "ls"}, result="q3.ipynb")],
                usage=Usage(input_tokens=10, output_tokens=20, cost_usd=0.01),
            ),
        ],
    )
    store.create(session)
    if days_old:
        session.created_at = session.updated_at = stamp(days_old)
        data = session.model_dump_json(exclude={"status"}).encode()
        atomic_write(store.session_file(session.id), data)
    return session


@pytest.fixture
def owners() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def live_owner(machine: Env, session_id: str, owners: list[subprocess.Popen[str]]) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-c", LIVE_OWNER, str(machine.store), session_id],
        stdout=subprocess.PIPE,
        text=True,
    )
    owners.append(proc)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "CLAIMED"
    return proc.pid


def stored_ids(machine: Env) -> set[str]:
    return {path.stem for path in (machine.store / "sessions").glob("*.json")}


# -- help --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["doctor"],
        ["sessions"],
        ["sessions", "list"],
        ["sessions", "show"],
        ["sessions", "export"],
        ["sessions", "delete"],
        ["sessions", "prune"],
    ],
)
def test_every_command_has_help(machine: Env, command: list[str]) -> None:
    result = machine.run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: jupyter assistant {' '.join(command)}".rstrip())


def test_a_missing_or_unknown_command_is_a_usage_error(machine: Env) -> None:
    assert machine.run().returncode == 2
    result = machine.run("sessions", "list", "--bogus")
    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr


# -- doctor ------------------------------------------------------------------------------------


def test_doctor_without_the_cli_fails_with_the_fix_and_the_fix_works(machine: Env) -> None:
    result = machine.run("doctor")
    assert result.returncode == 1, result.stdout
    lines = result.stdout.splitlines()
    claude = next(i for i, line in enumerate(lines) if "Provider claude" in line)
    assert lines[claude].startswith("✗ Provider claude (Claude Code, the default)")
    assert "'claude' is not on PATH" in lines[claude]
    fix = lines[claude + 1]
    assert fix.strip().startswith(f"fix: {INSTALL}")
    assert "add its folder to PATH or set c.ClaudeCodeProvider.command to its path" in fix
    assert lines[-1].startswith("Not ready: fix Provider claude")

    report = json.loads(machine.run("doctor", "--json").stdout)
    assert report["ok"] is False
    check = next(c for c in report["checks"] if c["name"] == "provider:claude")
    assert (check["ok"], check["required"], check["details"]["executable"]) == (False, True, None)

    # Either fix from the message: a folder with `claude` on PATH ...
    folder = machine.home / "bin"
    folder.mkdir()
    (folder / "claude").symlink_to(FAKE_CLAUDE)
    path = f"{folder}{os.pathsep}{machine.env['PATH']}"
    assert machine.run("doctor", env={"PATH": path}).returncode == 0
    # ... or the command setting, here on the command line.
    fixed = machine.run("doctor", f"--ClaudeCodeProvider.command={FAKE_CLAUDE}")
    assert fixed.returncode == 0, fixed.stdout
    assert "command line: ClaudeCodeProvider.command" in fixed.stdout


def test_doctor_with_the_fake_provider_passes(machine: Env) -> None:
    machine.write_config({"ClaudeCodeProvider": {"command": [str(FAKE_CLAUDE)]}})
    result = machine.run("doctor")
    assert result.returncode == 0, result.stdout
    out = result.stdout
    titles = [line.split(":")[0] for line in out.splitlines() if line[:1] in ("✓", "✗")]
    # the order: server extension, labextension, providers (default first), store, config
    assert titles[0].endswith("Server extension")
    assert titles[1].endswith("JupyterLab extension")
    assert titles[2] == "✓ Provider claude (Claude Code, the default)"
    assert titles[-2].endswith("Store") and titles[-1].endswith("Jupyter config")
    assert f"{FAKE_CLAUDE} 2.1.197; credentials found" in out  # `claude auth status` says so
    assert "✓ Server extension: jupyter_assistant" in out
    assert f"✓ Store: {machine.store} does not exist yet" in out
    config_file = machine.config / "jupyter_server_config.json"
    assert f"{config_file}: AssistantExtension.store_dir, ClaudeCodeProvider.command" in out
    assert out.rstrip().splitlines()[-1].startswith("Ready: the default provider 'claude'")
    assert not machine.store.exists()  # the doctor only looks

    report = json.loads(machine.run("doctor", "--json").stdout)
    assert report["ok"] is True
    claude = next(c for c in report["checks"] if c["name"] == "provider:claude")
    assert claude["details"]["version"] == "2.1.197"


def test_doctor_asks_the_cli_whether_it_is_logged_in(machine: Env) -> None:
    machine.write_config({"ClaudeCodeProvider": {"command": [str(FAKE_CLAUDE)]}})
    logged_out = machine.run("doctor", env={"FAKE_CLAUDE_LOGGED_IN": "0"})
    assert logged_out.returncode == 1, logged_out.stdout
    line = next(line for line in logged_out.stdout.splitlines() if "Provider claude" in line)
    assert line.startswith("✗") and "not logged in" in line
    assert "fix: " in logged_out.stdout and "login" in logged_out.stdout.lower()
    assert logged_out.stdout.rstrip().splitlines()[-1].startswith("Not ready")


def test_doctor_says_what_is_unknown_about_a_login_and_how_to_check(machine: Env) -> None:
    machine.write_config({"ClaudeCodeProvider": {"command": [str(FAKE_CLAUDE)]}})
    result = machine.run("doctor", env={"FAKE_CLAUDE_LOGGED_IN": "old"})  # no `auth status`
    assert result.returncode == 0, result.stdout
    out = result.stdout
    assert "login unknown (no API key or credentials file found" in out
    assert "note: to check it, run `claude auth status` in a terminal" in out
    assert out.rstrip().splitlines()[-1] == (
        "Ready, except that the login of the default provider 'claude' is unknown: "
        "run `claude auth status` to check it."
    )


@pytest.mark.parametrize("mode", [0o755, 0o777])
def test_doctor_fails_on_a_store_other_users_can_read(machine: Env, mode: int) -> None:
    machine.write_config({"ClaudeCodeProvider": {"command": [str(FAKE_CLAUDE)]}})
    make_session(machine)
    machine.store.chmod(mode)
    result = machine.run("doctor")
    assert result.returncode == 1, result.stdout
    line = next(line for line in result.stdout.splitlines() if "Store" in line)
    assert line.startswith(f"✗ Store: {machine.store}: other users can read or write it")
    assert f"(mode {mode:o})" in line
    assert f"fix: chmod -R go-rwx {machine.store}" in result.stdout
    assert (machine.store.stat().st_mode & 0o777) == mode  # reported, not changed
    machine.store.chmod(0o700)
    fixed = machine.run("doctor")
    assert fixed.returncode == 0, fixed.stdout
    assert f"✓ Store: {machine.store} is private (700), yours and writable; 1 conversation" in (
        fixed.stdout
    )


def test_doctor_names_a_disabled_extension_and_the_command_to_enable_it(machine: Env) -> None:
    machine.write_config(
        {
            "ClaudeCodeProvider": {"command": [str(FAKE_CLAUDE)]},
            "ServerApp": {"jpserver_extensions": {"jupyter_assistant": False}},
        }
    )
    labconfig = machine.config / "labconfig"
    labconfig.mkdir()
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"jupyter-assistant": True}})
    )
    result = machine.run("doctor")
    assert result.returncode == 1, result.stdout
    out = result.stdout
    assert "✗ Server extension: jupyter_assistant is disabled" in out
    assert "c.ServerApp.jpserver_extensions['jupyter_assistant'] = True" in out
    assert "✗ JupyterLab extension (optional): jupyter-assistant" in out
    assert "fix: jupyter labextension enable jupyter-assistant" in out

    # The sidebar is optional (the magics work without it): only the server extension fails.
    machine.write_config({"ClaudeCodeProvider": {"command": [str(FAKE_CLAUDE)]}})
    result = machine.run("doctor")
    assert result.returncode == 0, result.stdout
    assert "✗ JupyterLab extension (optional)" in result.stdout


def test_doctor_reports_a_broken_config_file(machine: Env) -> None:
    (machine.config / "jupyter_server_config.py").write_text(
        "c = get_config()\nthis is not python\n"
    )
    machine.write_config({"ClaudeCodeProvider": {"command": [str(FAKE_CLAUDE)]}})
    result = machine.run("doctor")
    assert result.returncode == 1
    assert "✗ Jupyter config: " in result.stdout
    assert str(machine.config / "jupyter_server_config.py") in result.stdout


# -- sessions ----------------------------------------------------------------------------------


def test_list_show_and_the_notebook_filter(machine: Env) -> None:
    first = make_session(machine, days_old=2, title="Sum per region")
    other = make_session(machine, notebook="other/b.ipynb", title="Another notebook")
    rows = machine.run("sessions", "list").stdout.splitlines()
    header = ["ID", "STATUS", "LAST", "ACTIVE", "MSGS", "PROVIDER", "NOTEBOOK", "TITLE"]
    assert rows[0].split() == header
    assert [row.split()[0] for row in rows[1:]] == [other.id, first.id]  # newest first

    listed = json.loads(
        machine.run(
            "sessions", "list", "--notebook", str(machine.root / "analysis/q3.ipynb"), "--json"
        ).stdout
    )
    assert [(s["id"], s["status"]) for s in listed["sessions"]] == [(first.id, "idle")]

    shown = machine.run("sessions", "show", first.id[:8])  # a unique prefix is enough
    assert shown.returncode == 0, shown.stderr
    assert "# Sum per region" in shown.stdout
    assert "Sum the amounts per region" in shown.stdout
    assert "df.groupby('region').amount.sum()" in shown.stdout
    as_json = json.loads(machine.run("sessions", "show", first.id, "--json").stdout)
    assert as_json["id"] == first.id and as_json["status"] == "idle"
    assert len(as_json["messages"]) == 2

    missing = machine.run("sessions", "show", "00000000-0000-4000-8000-000000000000")
    assert missing.returncode == 1
    assert "Unknown conversation" in missing.stderr


def test_show_lists_each_turns_changes(machine: Env) -> None:
    from jupyter_assistant.checkpoints import TurnCheckpoints

    session = make_session(machine, title="Clean the data")
    store = SessionStore(machine.store)
    folder = machine.root / "analysis"
    (folder / "data.csv").write_text("region,amount\nnorth,10\n")
    checkpoints = TurnCheckpoints(machine.store)
    prompts = ["Add a south row", "Write clean.py", "Say hello"]

    def ask(prompt: str, change: Any) -> str:
        message = Message(role="user", content=prompt, turn_id=f"turn-{len(prompt)}")
        assert message.turn_id is not None
        checkpoints.before_turn(session.id, message.turn_id, str(folder), "q3.ipynb")
        change()
        checkpoints.after_turn(session.id, message.turn_id)

        def add(stored: Session) -> None:
            stored.messages.append(message)

        store.edit(session.id, add)
        return message.turn_id

    ask(prompts[0], lambda: (folder / "data.csv").write_text("region,amount\nsouth,20\n"))
    second = ask(prompts[1], lambda: (folder / "clean.py").write_text("print(1)\n"))
    ask(prompts[2], lambda: None)
    unchecked = Message(role="user", content="Checkpoints were off", turn_id="turn-off")
    store.edit(session.id, lambda stored: stored.messages.append(unchecked))
    checkpoints.revert(session.id, second)

    shown = machine.run("sessions", "show", session.id)
    assert shown.returncode == 0, shown.stderr
    listed = shown.stdout.split("## Changes by turn")[1].strip().splitlines()
    # Numbered as the user's messages: the first one (no turn id: stored before turns had
    # ids) is not listed.
    assert listed[0].startswith("2. “Add a south row” [turn-15]: Changed: data.csv")
    assert listed[1].startswith("3. “Write clean.py” [turn-14]: Changed: clean.py (new)")
    assert listed[1].endswith("(undone)")
    assert listed[2] == "4. “Say hello” [turn-9]: no changes (undone)"
    assert listed[3] == "5. “Checkpoints were off” [turn-off]: no checkpoint"
    assert len(listed) == 4
    as_json = json.loads(machine.run("sessions", "show", session.id, "--json").stdout)
    turns = as_json["turn_changes"]
    assert [t["number"] for t in turns] == [2, 3, 4, 5]
    assert [t["changes"] is None for t in turns] == [False, False, False, True]
    files = turns[0]["changes"]["files"]
    assert [(f["path"], f["status"]) for f in files] == [("data.csv", "modified")]
    assert "+south,20" in files[0]["diff"]


def test_export_markdown_and_a_notebook_that_round_trips(machine: Env, tmp_path: Path) -> None:
    session = make_session(machine, title="Sum per region")
    markdown = machine.run("sessions", "export", session.id, "--format", "md")
    assert markdown.returncode == 0, markdown.stderr
    text = markdown.stdout
    assert text.startswith("# Sum per region\n")
    assert "## You · " in text and "## Assistant · " in text
    assert REPLY in text
    assert "- **Bash** `ls`" in text

    target = tmp_path / "out" / "conversation.ipynb"
    refused = machine.run("sessions", "export", session.id, "--format", "md", "-o", str(target))
    assert refused.returncode == 1  # no such folder: said, not a traceback
    assert "No such file or directory" in refused.stderr and "Traceback" not in refused.stderr
    target.parent.mkdir()
    result = machine.run("sessions", "export", session.id, "--format", "ipynb", "-o", str(target))
    assert result.returncode == 0, result.stderr
    notebook = nbformat.read(target, as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4 and notebook.nbformat_minor == 5
    assert notebook.metadata["jupyter_assistant"]["session_id"] == session.id
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    # The Python (and untagged) blocks of the reply are code cells; the bash block is not.
    assert code == [
        "import pandas as pd\ndf = pd.read_csv('sales.csv')\ndf.groupby('region').amount.sum()",
        "df.plot()",
    ]
    markdown_cells = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert "```bash\nls *.csv\n```" in markdown_cells
    assert "Sum the amounts per region" in markdown_cells
    assert "Here is the sum per region:" in markdown_cells and "Done." in markdown_cells
    kinds = [c.cell_type for c in notebook.cells]
    # header, the question, the reply (heading and first paragraph), code, text, code, text,
    # the tools it used
    assert kinds == ["markdown"] * 3 + ["code", "markdown", "code", "markdown", "markdown"]
    # and it round-trips through nbformat unchanged
    assert nbformat.reads(nbformat.writes(notebook), as_version=4) == notebook


def test_delete_takes_the_conversations_checkpoints(machine: Env) -> None:
    from jupyter_assistant.checkpoints import TurnCheckpoints

    gone, kept = make_session(machine), make_session(machine, notebook="b/b.ipynb")
    checkpoints = TurnCheckpoints(machine.store)
    for session, name in ((gone, "analysis"), (kept, "b")):
        folder = machine.root / name
        checkpoints.before_turn(session.id, "t1", str(folder), "x.ipynb")
        (folder / f"{name}.csv").write_text(f"only {name} wrote this\n")
        checkpoints.after_turn(session.id, "t1")
    deleted = machine.run("sessions", "delete", gone.id)
    assert deleted.returncode == 0, deleted.stderr
    assert checkpoints.turns(gone.id) == [] and checkpoints.turns(kept.id) == ["t1"]
    # What only the deleted conversation's turn kept went; the other's is still there.
    for name, there in (("analysis", False), ("b", True)):
        digest = hashlib.sha256(f"only {name} wrote this\n".encode()).hexdigest()
        assert checkpoints.blobs.has(digest) is there, name
    assert "analysis.csv" not in json.dumps(checkpoints.changes(kept.id, "t1"))


def test_delete_refuses_a_running_conversation_unless_forced(machine: Env, tmp_path: Path) -> None:
    idle = make_session(machine)
    busy = make_session(machine)
    assert machine.run("sessions", "delete", idle.id).returncode == 0
    assert stored_ids(machine) == {busy.id}

    pid_file = tmp_path / "pids.json"
    with subprocess.Popen(
        [
            sys.executable,
            str(OTHER_PROCESS_TURN),
            str(machine.store),
            str(machine.root),
            busy.id,
            str(FAKE_CLAUDE),
            "scenario:tree",
        ],
        env={**os.environ, "FAKE_PID_FILE": str(pid_file)},
        stdout=subprocess.PIPE,
        text=True,
    ) as kernel:
        assert kernel.stdout is not None
        assert kernel.stdout.readline().startswith("STARTED")
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = json.loads(pid_file.read_text())

        refused = machine.run("sessions", "delete", busy.id)
        assert refused.returncode == 1
        assert "is running a turn" in refused.stderr and "--force" in refused.stderr
        assert stored_ids(machine) == {busy.id}
        assert pids_alive(pids) == pids

        forced = machine.run("sessions", "delete", busy.id, "--force")
        assert forced.returncode == 0, forced.stderr
        assert stored_ids(machine) == set()
        assert pids_alive(pids) == []  # the provider's whole tree was stopped
        # The kernel that ran the turn was told it was cancelled, not that it crashed.
        assert kernel.stdout.readline().split() == ["FINISHED", "cancelled"]
        assert kernel.wait(30) == 0
    assert stored_ids(machine) == set()  # its last save did not bring the session back
    assert list((machine.store / "processes").glob("*.json")) == []


def test_prune_removes_exactly_the_old_idle_conversations(
    machine: Env, owners: list[subprocess.Popen[str]]
) -> None:
    old = [make_session(machine, days_old=45), make_session(machine, days_old=31)]
    old_running = make_session(machine, days_old=60)
    recent = [make_session(machine, days_old=29), make_session(machine)]
    live_owner(machine, old_running.id, owners)
    everything = {s.id for s in [*old, old_running, *recent]}

    dry = machine.run("sessions", "prune", "--older-than", "30d", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert set(planned["removed"]) == {s.id for s in old}
    assert planned["running"] == [old_running.id]
    assert stored_ids(machine) == everything  # a dry run removes nothing

    result = machine.run("sessions", "prune", "--older-than", "30d")
    assert result.returncode == 0, result.stderr
    assert f"Kept {old_running.id} (running)" in result.stdout
    assert "Removed 2 conversation(s) idle for more than 30d." in result.stdout
    assert stored_ids(machine) == {old_running.id, *(s.id for s in recent)}

    # Once its turn's owner is gone, it is an old idle conversation like the others.
    owners[0].kill()
    owners[0].wait()
    again = json.loads(machine.run("sessions", "prune", "--older-than", "30d", "--json").stdout)
    assert again["removed"] == [old_running.id]
    assert stored_ids(machine) == {s.id for s in recent}
    assert machine.run("sessions", "prune", "--older-than", "soon").returncode == 1


# -- retention at server start-up ----------------------------------------------------------------


def test_the_server_applies_max_session_age_days_at_start_up(
    machine: Env, owners: list[subprocess.Popen[str]]
) -> None:
    old = make_session(machine, days_old=10)
    old_running = make_session(machine, days_old=10)
    recent = make_session(machine, days_old=2)
    live_owner(machine, old_running.id, owners)
    server = Server(machine.root, machine.store, machine.home)
    try:
        server.start(extra_args=["--AssistantExtension.max_session_age_days=7"])
        deadline = time.monotonic() + 60
        while "Assistant: removed" not in server.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "removed 1 conversation(s) idle for more than 7 days" in server.log.read_text()
        listed = server.call("GET", "/sessions")["sessions"]
        assert {(s["id"], s["status"]) for s in listed} == {
            (old_running.id, "running"),
            (recent.id, "idle"),
        }
        assert old.id not in stored_ids(machine)
    finally:
        server.stop(signal.SIGTERM)


def test_retention_is_off_by_default_and_checked() -> None:
    assert EngineSettings().max_session_age_days is None
    assert EngineSettings(max_session_age_days=7).max_session_age_days == 7.0
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_session_age_days must be > 0"):
            EngineSettings(max_session_age_days=bad)


def test_list_tells_apart_the_same_path_under_two_roots(machine: Env, tmp_path: Path) -> None:
    first = make_session(machine, title="Under the first root")
    other_root = tmp_path / "second-root"
    (other_root / "analysis").mkdir(parents=True)
    file = other_root / "analysis" / "q3.ipynb"
    file.write_text("{}")
    second = Session(
        path="analysis/q3.ipynb",
        notebook_key=str(file.resolve()),
        working_dir=str(file.parent.resolve()),
        provider="claude",
        title="Under the second root",
    )
    SessionStore(machine.store).create(second)
    unique = make_session(machine, notebook="other/b.ipynb", title="Only one")
    listed = machine.run("sessions", "list")
    assert listed.returncode == 0, listed.stderr
    line = {row.split()[0]: row for row in listed.stdout.splitlines()[1:]}
    assert str((machine.root / "analysis" / "q3.ipynb").resolve()) in line[first.id]
    assert str(file.resolve()) in line[second.id]
    assert " other/b.ipynb " in line[unique.id]  # a path shown once stays short
