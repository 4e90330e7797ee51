"""%assistant / %%assistant: real kernels (jupyter_client + ipykernel) with the fake Claude CLI,
a real IPython process outside a notebook, and a real Jupyter server sharing the store."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas
import psutil
import pytest

from jupyter_assistant.cell_view import TurnView
from jupyter_assistant.code_blocks import first_code_block
from jupyter_assistant.kernel_config import SERVER_ONLY_SETTINGS, KernelSettings, load_config
from jupyter_assistant.kernel_notebook import find_notebook
from jupyter_assistant.magic_options import split_options
from jupyter_assistant.magics import keep_questions
from jupyter_assistant.processes import ProcessRegistry, terminate_tree
from jupyter_assistant.store import SessionStore
from jupyter_assistant.variables import (
    CONTEXT_CHARS,
    VARIABLE_CHARS,
    summarize_value,
    summarize_variables,
)

from .conftest import FAKE_CLAUDE_COMMAND
from .helpers import (
    NOTEBOOK,
    api,
    describe_pids,
    events,
    json_of,
    pids_alive,
    post_message,
    text_of,
    types,
    wait_until,
)
from .kernel_helpers import (
    Execution,
    Kernel,
    KernelSetup,
    KernelThread,
    make_setup,
    status_of,
)

StartKernel = Callable[[KernelSetup], Kernel]


@pytest.fixture
def setup(tmp_path: Path) -> KernelSetup:
    return make_setup(tmp_path)


@pytest.fixture
def start_kernel() -> Iterator[StartKernel]:
    kernels: list[Kernel] = []

    def start(setup: KernelSetup) -> Kernel:
        kernel = Kernel.start(setup)
        kernels.append(kernel)
        return kernel

    yield start
    for kernel in kernels:
        kernel.shutdown()
        # A test that failed mid-turn leaves a provider whose kernel is gone: stop it.
        if kernel.setup is not None and (kernel.setup.store_dir / "processes").is_dir():
            for record in ProcessRegistry(kernel.setup.store_dir).orphans():
                terminate_tree(record, 1.0)


def stored_sessions(setup: KernelSetup) -> list[dict[str, Any]]:
    """The notebook's sessions as the store has them (newest first), read by this process."""
    store = SessionStore(setup.store_dir)
    return store.list_summaries(os.path.realpath(setup.notebook))


def load_session(setup: KernelSetup, session_id: str) -> Any:
    return SessionStore(setup.store_dir).load(session_id)


def assert_one_line_error(execution: Execution, *needles: str) -> str:
    """The cell failed and showed one line, no traceback."""
    assert status_of(execution) == "error"
    lines = execution.error_lines()
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def body(markdown: str) -> str:
    """A displayed reply without its footer line (*working…*, the cost at the end)."""
    return markdown.rsplit("\n\n*", 1)[0] if "\n\n*" in markdown else ""


# -- pure helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "tokens", "prompt"),
    [
        ("what's in sales.csv?", [], "what's in sales.csv?"),
        (
            "--new --model sonnet  why is  $x {y}?",
            ["--new", "--model", "sonnet"],
            "why is  $x {y}?",
        ),
        ("--with df arr -- explain them", ["--with", "df", "arr"], "explain them"),
        ("--with df,arr --code go", ["--with", "df,arr", "--code"], "go"),
        ("--output=answer tell me", ["--output=answer"], "tell me"),
        ("--provider claude new", ["--provider", "claude"], "new"),
        ("-- --new is a flag", [], "--new is a flag"),
        ("", [], ""),
    ],
)
def test_split_options_keeps_the_prompt_as_written(
    line: str, tokens: list[str], prompt: str
) -> None:
    assert split_options(line) == (tokens, prompt)


def test_questions_are_not_taken_for_help_requests() -> None:
    cell = ["x = 1\n", "%assistant what does x hold?\n", "  %assistant is it 'ok'?"]
    assert keep_questions(cell) == [
        "x = 1\n",
        "get_ipython().run_line_magic('assistant', 'what does x hold?')\n",
        "  get_ipython().run_line_magic('assistant', \"is it 'ok'?\")\n",
    ]
    untouched = ["%assistant no question\n", "%assistant\n", "%assistants x?\n", "x?\n"]
    assert keep_questions(untouched) == untouched
    cell_magic = ["%%assistant\n", "%assistant why?\n"]
    assert keep_questions(cell_magic) == cell_magic


def test_the_notebook_comes_from_jpy_session_name_then_the_namespace_then_the_cwd(
    tmp_path: Path,
) -> None:
    nb = str(tmp_path / "a" / "q3.ipynb")
    other = str(tmp_path / "b" / "x.ipynb")
    found = find_notebook({"__session__": other}, {"JPY_SESSION_NAME": nb}, "/elsewhere")
    assert (found.file, found.source, found.in_notebook) == (nb, "JPY_SESSION_NAME", True)
    found = find_notebook({"__session__": other}, {}, "/elsewhere")
    assert (found.file, found.source) == (other, "__session__")
    found = find_notebook({"__vsc_ipynb_file__": nb}, {}, "/elsewhere")
    assert (found.file, found.source) == (nb, "__vsc_ipynb_file__")
    # A server without the file name sets the API path; the kernel starts in its folder.
    found = find_notebook({}, {"JPY_SESSION_NAME": "a/q3.ipynb"}, "/moved", str(tmp_path / "a"))
    assert found.file == nb
    # Shown as the server shows it, relative to its root, when the root is known.
    assert find_notebook({}, {"JPY_SESSION_NAME": nb}, "/x").display_path == "q3.ipynb"
    found = find_notebook({}, {"JPY_SESSION_NAME": nb}, "/x", root=str(tmp_path))
    assert found.display_path == "a/q3.ipynb"
    found = find_notebook({}, {"JPY_SESSION_NAME": nb}, "/x", root=str(tmp_path / "b"))
    assert found.display_path == "q3.ipynb"
    found = find_notebook({}, {}, str(tmp_path))
    assert not found.in_notebook
    assert found.folder == str(tmp_path)
    assert os.path.dirname(found.file) == str(tmp_path)


def test_kernel_settings_are_the_extension_settings() -> None:
    from jupyter_assistant.app import AssistantExtension

    # The server extension is the kernels' settings class plus server-only settings, so a new
    # engine setting reaches kernels by construction.
    assert issubclass(AssistantExtension, KernelSettings)
    assert set(AssistantExtension.class_own_traits(config=True)) == SERVER_ONLY_SETTINGS
    extension, settings = AssistantExtension(), KernelSettings()
    for name in KernelSettings.class_own_traits(config=True):
        assert getattr(settings, name) == getattr(extension, name), name


def test_kernels_build_the_engine_with_the_servers_settings(tmp_path: Path) -> None:
    """Every engine setting reaches the kernel's engine as it reaches the server's."""
    from traitlets import Dict, Float, Int, List, Unicode
    from traitlets.config import Config

    from jupyter_assistant.app import AssistantExtension
    from jupyter_assistant.kernel_assistant import KernelAssistant

    values: dict[str, Any] = {}
    for name, trait in KernelSettings.class_own_traits(config=True).items():
        if isinstance(trait, Float):
            values[name] = 7.5
        elif isinstance(trait, Int):
            values[name] = 12345
        elif isinstance(trait, List):
            values[name] = ["claude"]
        elif isinstance(trait, Dict):
            values[name] = {"SOME_VAR": "value"}
        elif isinstance(trait, Unicode):
            values[name] = str(tmp_path / "store") if name == "store_dir" else "claude"
    config = Config({"AssistantExtension": values})
    server = AssistantExtension(config=config).service.settings
    client = KernelAssistant(ipython_config=config)
    try:
        kernel = client.service.settings
    finally:
        client.close()
    server.root_dir = None  # a kernel has no server root
    # ... but confines each turn to the root of the server that started it, if there is one
    server.runner.root_dir = None
    assert (server.runner.journal_events, kernel.runner.journal_events) == (False, True)
    server.runner.journal_events = True  # a kernel journals its turns for the server to stream
    assert kernel == server
    assert kernel.runner.max_session_cost_usd == 7.5


def test_server_config_files_are_merged_like_the_server_does(tmp_path: Path) -> None:
    user, system = tmp_path / "user", tmp_path / "system"
    user.mkdir()
    system.mkdir()
    (system / "jupyter_server_config.json").write_text(
        json.dumps({"ClaudeCodeProvider": {"model": "opus", "allowed_tools": ["Bash(ls:*)"]}})
    )
    (user / "jupyter_server_config.py").write_text("c.ClaudeCodeProvider.model = 'sonnet'\n")
    (user / "jupyter_config.json").write_text('{"AssistantExtension": {"idle_timeout_seconds": 7}}')
    (user / "jupyter_server_config.json").write_text("{not json")
    loaded = load_config(environ={}, paths=[str(user), str(system)])  # highest priority first
    assert loaded.config.ClaudeCodeProvider.model == "sonnet"  # the user's wins
    assert loaded.config.ClaudeCodeProvider.allowed_tools == ["Bash(ls:*)"]
    assert KernelSettings(config=loaded.config).idle_timeout_seconds == 7
    assert len(loaded.problems) == 1
    assert str(user / "jupyter_server_config.json") in loaded.problems[0]


def test_the_admins_policy_outranks_the_users_own_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from traitlets.config import Config

    home = tmp_path / "home"
    policy, user = tmp_path / "etc" / "policy", home / ".jupyter"
    policy.mkdir(parents=True)
    user.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    limits = {"max_session_cost_usd": 0.01, "allowed_providers": ["claude"]}
    (policy / "jupyter_server_config.json").write_text(json.dumps({"AssistantExtension": limits}))
    (user / "jupyter_server_config.json").write_text(
        json.dumps({"AssistantExtension": {"max_session_cost_usd": 100, "max_message_bytes": 200}})
    )
    ipython = Config(
        {"AssistantExtension": {"allowed_providers": ["claude", "x"], "idle_timeout_seconds": 9}}
    )
    env = {"JUPYTER_CONFIG_PATH": str(policy)}
    folders = [str(policy), str(user)]  # as jupyter_config_path() orders them

    settings = KernelSettings(config=load_config(ipython, env, folders).config)
    assert settings.max_session_cost_usd == 0.01  # the policy holds...
    assert settings.allowed_providers == ["claude"]
    assert settings.max_message_bytes == 200  # ...and the user's other settings apply
    assert settings.idle_timeout_seconds == 9

    # JupyterHub's disable_user_config: nothing the user controls is read.
    loaded = load_config(ipython, {**env, "JUPYTERHUB_DISABLE_USER_CONFIG": "1"}, folders)
    settings = KernelSettings(config=loaded.config)
    assert (settings.max_session_cost_usd, settings.allowed_providers) == (0.01, ["claude"])
    assert (settings.max_message_bytes, settings.idle_timeout_seconds) == (1024 * 1024, 600)
    assert loaded.files == [str(policy / "jupyter_server_config.json")]


def test_first_code_block_prefers_python() -> None:
    text = "Run this:\n```bash\nls\n```\nthen\n```python\nx = 1\ny = 2\n```\n"
    assert first_code_block(text) == "x = 1\ny = 2"
    assert first_code_block("```sql\nselect 1\n```") == "select 1"
    assert first_code_block("```\nplain()\n```") == "plain()"
    assert first_code_block("no code here") is None


def test_variable_summaries_are_bounded_and_safe() -> None:
    frame = pandas.DataFrame({"region": ["north", "south"] * 50, "amount": range(100)})
    summary = summarize_value("df", frame)
    assert "pandas.DataFrame" in summary
    assert "shape: (100, 2)" in summary
    assert "amount: int64" in summary
    assert "north" in summary
    assert "99" not in summary.split("first 5 rows")[1]  # only the head
    array = summarize_value("arr", pandas.Series(range(10_000)).to_numpy().reshape(100, 100))
    assert "numpy.ndarray" in array
    assert "shape: (100, 100), dtype: int64" in array
    assert len(array) < 2000
    huge = summarize_value("big", list(range(1_000_000)))
    assert "length: 1000000" in huge
    assert len(huge) < 600

    class Weird:
        def __repr__(self) -> str:
            raise RuntimeError("no repr for you")

    assert "<Weird instance at 0x" in summarize_value("w", Weird())  # a failing repr is fine

    class BrokenFrame(pandas.DataFrame):
        def head(self, n: int = 5) -> Any:
            raise RuntimeError("no head")

    broken = summarize_value("b", BrokenFrame({"a": [1]}))
    assert "shape: (1, 1)" in broken
    assert "could not describe: RuntimeError: no head" in broken
    assert len(summarize_value("s", "x" * 100_000)) <= VARIABLE_CHARS
    many = {f"v{i}": "y" * 10_000 for i in range(100)}
    combined = summarize_variables(many, many)
    assert len(combined) < CONTEXT_CHARS + 1000
    assert "left out to keep the request small: " in combined


def test_turn_view_shows_text_tools_and_the_cost() -> None:
    view = TurnView()
    events: list[dict[str, Any]] = [
        {"type": "turn_started", "turn_id": "t", "provider": "claude"},
        {"type": "text", "text": "I will "},
        {"type": "text", "text": "look."},
        {"type": "tool_use", "id": "1", "name": "Bash", "input": {"command": "ls `-la`"}},
        {"type": "tool_result", "id": "1", "content": "x", "is_error": True},
        {"type": "text", "text": "Done."},
        {"type": "usage", "input_tokens": 1200, "output_tokens": 30, "cost_usd": 0.0123},
    ]
    for seq, event in enumerate(events, 1):
        view.fold(seq, event)
    assert view.markdown().endswith("*working…*")
    view.fold(len(events) + 1, {"type": "done", "cost_usd": 0.0123, "duration_ms": 2300})
    assert view.text() == "I will look.Done."
    assert view.markdown() == (
        "I will look.\n\n> **Bash** `ls '-la'` — failed\n\nDone.\n\n"
        "*$0.0123 · 2.3 s · 1,200 tokens in, 30 out*"
    )
    assert "[Bash] ls `-la` (failed)" in view.plain()


def test_a_tool_that_stop_ended_shows_as_stopped_not_failed() -> None:
    view = TurnView()
    events: list[dict[str, Any]] = [
        {"type": "tool_use", "id": "1", "name": "Bash", "input": {"command": "sleep 60"}},
        {"type": "tool_use", "id": "2", "name": "Bash", "input": {"command": "false"}},
        {"type": "tool_result", "id": "2", "content": "killed", "is_error": True},
        {"type": "cancelled"},
    ]
    for seq, event in enumerate(events, 1):
        view.fold(seq, event)
    assert "`sleep 60` — stopped" in view.markdown()
    assert "`false` — stopped" in view.markdown()
    assert "failed" not in view.markdown()
    assert "[Bash] sleep 60 (stopped)" in view.plain()


# -- a real kernel -----------------------------------------------------------------------------


def test_a_reply_streams_into_one_display_updated_in_place(
    setup: KernelSetup, start_kernel: StartKernel
) -> None:
    setup.env.update(FAKE_DELAY="0.4", FAKE_COUNT="6")
    kernel = start_kernel(setup)
    kernel.ok("%load_ext jupyter_assistant")
    execution = kernel.ok("%%assistant\nscenario:slow tell me a story")

    shown = execution.of_type("display_data")
    updates = execution.of_type("update_display_data")
    assert len(shown) == 1
    display_id = shown[0]["content"]["transient"]["display_id"]
    assert updates
    assert {u["content"]["transient"]["display_id"] for u in updates} == {display_id}
    markdowns = execution.markdowns()
    final = markdowns[-1]
    assert "chunk 0. chunk 1." in final
    assert re.search(r"\*\$\d+\.\d{4} · ", final), final  # the cost at the end
    # Streamed: the reply grew over several updates, each extending the one before.
    bodies = [body(md) for md in markdowns]
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(bodies))
    assert len({b for b in bodies if b and b != bodies[-1]}) >= 2

    [summary] = stored_sessions(setup)
    session = load_session(setup, summary["id"])
    assert session.working_dir == os.path.realpath(setup.notebook.parent)
    assert [(m.role, m.status) for m in session.messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert session.messages[1].content.strip() == body(final)

    # A flood of deltas still gives a bounded number of updates.
    kernel.ok("import os; os.environ['FAKE_COUNT'] = '3000'")
    flood = kernel.ok("%assistant scenario:flood")
    assert len(flood.of_type("update_display_data")) < 100
    assert len(flood.of_type("display_data")) == 1


def test_output_code_and_prompts_taken_literally(
    setup: KernelSetup, start_kernel: StartKernel
) -> None:
    kernel = start_kernel(setup)
    kernel.ok("%load_ext jupyter_assistant")
    kernel.ok("y = 'EXPANDED'")
    cell = (
        "%%assistant --output answer --code\n"
        "scenario:reply Write it with $y and {y}:\n"
        "```python\n"
        "x = 41 + 1\n"
        "```\n"
    )
    execution = kernel.ok(cell)
    [payload] = execution.payloads()
    assert payload["source"] == "set_next_input"
    assert payload["text"] == "x = 41 + 1"
    assert payload["replace"] is False
    answer = kernel.value("answer")
    assert answer.startswith(
        "Fake Claude reply. You said: scenario:reply Write it with $y and {y}:"
    )
    assert "EXPANDED" not in answer
    [summary] = stored_sessions(setup)
    assert load_session(setup, summary["id"]).messages[-1].content == answer

    # One line, with an apostrophe (no shell-style quoting) and nothing expanded.
    line = kernel.ok("%assistant --output second what's $y {y}?")
    assert "You said: what's $y {y}? " in kernel.value("second")
    assert line.payloads() == []
    no_code = kernel.ok("%assistant --code no code here")
    assert "the reply has no code block" in no_code.stdout()
    assert no_code.payloads() == []


def test_with_sends_bounded_variable_summaries(
    setup: KernelSetup, start_kernel: StartKernel, tmp_path: Path
) -> None:
    argv_file = tmp_path / "argv.json"
    setup.env["FAKE_CLAUDE_ARGV_FILE"] = str(argv_file)
    kernel = start_kernel(setup)
    kernel.ok("%load_ext jupyter_assistant")
    kernel.ok(
        "import numpy as np, pandas as pd\n"
        "df = pd.DataFrame({'region': ['north', 'south', 'east'], 'amount': [10, 20, 30]})\n"
        "arr = np.arange(12).reshape(3, 4)\n"
        "big = list(range(100_000))\n"
    )
    kernel.ok("%assistant --with df arr,big -- what do these hold?")
    invocation = json.loads(argv_file.read_text())
    # The summaries go with the question, on stdin (a warm CLI takes each message's own).
    sent = invocation["stdin"]
    assert sent.startswith("<notebook_context>\n") and sent.endswith("\n\nwhat do these hold?")
    argv = invocation["argv"]
    assert "--append-system-prompt" not in argv  # the context stays off the command line
    assert not any("numpy" in arg for arg in argv)
    assert "numpy" not in invocation["append_system_prompt"]
    for needle in (
        "`df`: pandas.DataFrame",
        "shape: (3, 2)",
        "dtypes: region: ",
        "amount: int64",
        "north",
        "`arr`: numpy.ndarray",
        "shape: (3, 4), dtype: int64",
        "`big`: list",
        "length: 100000",
    ):
        assert needle in sent, needle
    assert len(sent) < 8000
    [summary] = stored_sessions(setup)
    user_message = load_session(setup, summary["id"]).messages[0]
    assert "`arr`: numpy.ndarray" in user_message.context["variables"]

    # A name that is not a variable: one line, and nothing is sent or stored.
    missing = kernel.run("%assistant --with df nothere -- hi")
    assert_one_line_error(missing, "No variable 'nothere'", "--with df -- your question")
    assert stored_sessions(setup)[0]["message_count"] == 2


def test_subcommands_with_the_extension_loaded_by_config(
    setup: KernelSetup, start_kernel: StartKernel
) -> None:
    setup.write_ipython_config("c.InteractiveShellApp.extensions = ['jupyter_assistant']\n")
    kernel = start_kernel(setup)

    status = kernel.ok("%assistant status").stdout()  # no %load_ext: loaded by config
    assert f"Notebook: {setup.notebook} (from JPY_SESSION_NAME)" in status
    assert f"Store: {setup.store_dir}" in status
    assert str(setup.config_dir / "jupyter_server_config.json") in status
    assert "Session: none yet" in status
    assert (
        "claude (default) — Claude Code: available, version 2.1.197"
        in kernel.ok("%assistant providers").stdout()
    )
    help_text = kernel.ok("%assistant help").stdout()
    for needle in ("--with VAR", "--output VAR", "history", "cancel", "providers"):
        assert needle in help_text
    assert kernel.ok("%assistant").stdout() == help_text  # no prompt: the help
    assert "No conversation yet" in kernel.ok("%assistant history").stdout()

    kernel.ok("%assistant scenario:reply first question")
    [first] = stored_sessions(setup)
    history = kernel.ok("%assistant history")
    [shown] = history.markdowns()
    assert "**You**" in shown
    assert "first question" in shown
    assert "Fake Claude reply. You said: scenario:reply first question" in shown
    status = kernel.ok("%assistant status").stdout()
    assert f"Session: {first['id']} · claude · 2 messages · idle" in status

    new = kernel.ok("%assistant new").stdout()
    second = stored_sessions(setup)[0]
    assert second["id"] != first["id"]
    assert f"New session {second['id']} (claude)" in new
    listing = kernel.ok("%assistant sessions").stdout().splitlines()
    assert listing[0].startswith(f"* {second['id']}")
    assert listing[1].startswith(f"  {first['id']}")
    kernel.ok("%assistant scenario:reply into the new one")
    assert load_session(setup, second["id"]).messages[0].content.endswith("into the new one")
    kernel.ok("%assistant --new scenario:reply and a third")
    assert len(stored_sessions(setup)) == 3

    assert "No turn is running" in kernel.ok("%assistant cancel").stdout()
    assert_one_line_error(kernel.run("%assistant --output x status"), "takes no options")
    assert_one_line_error(kernel.run("%assistant --bogus hi"), "unrecognized arguments")
    assert_one_line_error(kernel.run("%%assistant status\nhello"), "options only")
    assert_one_line_error(kernel.run("%%assistant --new\n  \n  "), "Write the prompt")

    kernel.ok("%unload_ext jupyter_assistant")
    assert status_of(kernel.run("%assistant status")) == "error"
    kernel.ok("%load_ext jupyter_assistant")
    assert "Session: " in kernel.ok("%assistant status").stdout()


@pytest.mark.parametrize(
    ("scenario", "before"),
    [
        ("tree", ""),
        ("ignore_term", ""),
        # A cell with top-level await runs as a coroutine, under another SIGINT handler.
        ("tree", "import asyncio\nawait asyncio.sleep(0)\n"),
    ],
    ids=["tree", "ignore_term", "async-cell"],
)
def test_interrupting_the_kernel_cancels_the_turn(
    setup: KernelSetup, start_kernel: StartKernel, tmp_path: Path, scenario: str, before: str
) -> None:
    pid_file = tmp_path / "pids.json"
    setup.env["FAKE_PID_FILE"] = str(pid_file)
    kernel = start_kernel(setup)
    kernel.ok("%load_ext jupyter_assistant")
    execution = kernel.execute(f"{before}%assistant scenario:{scenario} do something long")
    kernel.wait_for(execution, lambda e: any("pids:" in md for md in e.markdowns()), what="pids")
    pids = json.loads(pid_file.read_text())
    assert len(pids) == 3
    assert pids_alive(pids) == pids

    kernel.interrupt()
    kernel.finish(execution)
    assert_one_line_error(execution, "interrupted; the turn was cancelled")
    assert execution.reply is not None
    assert execution.reply["content"]["ename"] == "TurnInterrupted"
    assert pids_alive(pids) == []  # the cell ends only once the whole tree is gone
    assert execution.markdowns()[-1].endswith("*cancelled*")
    [summary] = stored_sessions(setup)
    assert summary["status"] == "idle"
    reply = load_session(setup, summary["id"]).messages[-1]
    assert reply.status == "cancelled"
    assert "pids:" in reply.content  # the partial reply is kept
    assert list((setup.store_dir / "processes").glob("*.json")) == []

    # The kernel answers the next cell, and the session takes the next turn.
    assert kernel.value("1 + 1") == 2
    kernel.ok("%assistant scenario:reply still there?")
    assert load_session(setup, summary["id"]).messages[-1].status == "complete"


def test_an_interrupt_while_the_turn_starts_stops_it_and_says_so(
    setup: KernelSetup, start_kernel: StartKernel, tmp_path: Path
) -> None:
    """The Stop button pressed as the cell starts its turn (here: while the turn waits for the
    session, which this test holds locked): the turn that then starts is stopped before the
    cell ends, and the cell says what became of it, not a bare KeyboardInterrupt."""
    pid_file = tmp_path / "pids.json"
    setup.env["FAKE_PID_FILE"] = str(pid_file)
    kernel = start_kernel(setup)
    kernel.ok("%load_ext jupyter_assistant")
    kernel.ok("%assistant scenario:reply first")
    [summary] = stored_sessions(setup)
    store = SessionStore(setup.store_dir)
    assert kernel.km is not None
    kernel_process = psutil.Process(kernel.km.provisioner.pid)  # type: ignore[union-attr]
    lock_file = str(store.locks_dir / f"{summary['id']}.lock")
    with store.lock(summary["id"]):
        execution = kernel.execute("%assistant scenario:tree started while interrupted")
        # The kernel is starting the turn once it waits for the session's lock.
        deadline = time.monotonic() + 60
        while lock_file not in [f.path for f in kernel_process.open_files()]:
            assert time.monotonic() < deadline, "the kernel never waited for the session"
            time.sleep(0.02)
        kernel.interrupt()
        time.sleep(0.5)  # the interrupt lands while the start still waits
    kernel.finish(execution)
    assert_one_line_error(execution, "interrupted; the turn was cancelled")
    stored = load_session(setup, summary["id"])
    assert [m.content for m in stored.messages if m.role == "user"][-1] == (
        "scenario:tree started while interrupted"
    )
    assert stored.messages[-1].status == "cancelled"
    if pid_file.exists():  # the CLI had started its tree: none of it is left
        pids = json.loads(pid_file.read_text())
        assert pids_alive(pids) == [], describe_pids(pids)
    assert list((setup.store_dir / "processes").glob("*.json")) == []
    kernel.ok("%assistant scenario:reply next")  # and the session takes the next turn
    assert load_session(setup, summary["id"]).messages[-1].status == "complete"


def test_expected_failures_are_one_line(setup: KernelSetup, start_kernel: StartKernel) -> None:
    kernel = start_kernel(setup)
    kernel.ok("%load_ext jupyter_assistant")
    assert_one_line_error(
        kernel.run("%assistant scenario:not_logged_in hello"), "not logged in", "/login"
    )
    assert_one_line_error(
        kernel.run("%assistant scenario:crash hello"), "exited with code 3", "simulated crash"
    )
    assert_one_line_error(kernel.run("%assistant --provider nope hello"), "Unknown provider 'nope'")
    assert_one_line_error(kernel.run("%assistant --output 2x hello"), "--output needs a variable")
    assert_one_line_error(kernel.run("%assistant --model"), "expected one argument")
    assert kernel.value("1 + 1") == 2


# -- outside a notebook ------------------------------------------------------------------------


def run_ipython(
    cwd: Path, ipython_dir: Path, store: Path, config_dir: Path, commands: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("JPY_SESSION_NAME",)}
    env.update(
        JUPYTER_ASSISTANT_DIR=str(store),
        IPYTHONDIR=str(ipython_dir),
        JUPYTER_CONFIG_DIR=str(config_dir),
    )
    return subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=nocolor", "-c", commands],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_plain_ipython_keys_the_session_by_the_working_directory(tmp_path: Path) -> None:
    folder, ipython_dir, store = tmp_path / "project", tmp_path / "ipython", tmp_path / "store"
    config_dir = tmp_path / "empty-config"
    folder.mkdir()
    config_dir.mkdir()
    profile = ipython_dir / "profile_default"
    profile.mkdir(parents=True)
    # Provider settings from the IPython profile alone (no Jupyter server config here).
    (profile / "ipython_config.py").write_text(
        f"c.InteractiveShellApp.extensions = ['jupyter_assistant']\n"
        f"c.ClaudeCodeProvider.command = {FAKE_CLAUDE_COMMAND!r}\n"
    )
    done = run_ipython(folder, ipython_dir, store, config_dir, "%assistant scenario:tool hi")
    assert done.returncode == 0, done.stderr
    assert (
        f"not in a notebook; the session is keyed by the working directory {folder}" in done.stdout
    )
    assert f"The working directory is: {os.path.realpath(folder)}" in done.stdout
    assert "[Bash] pwd" in done.stdout
    [summary] = SessionStore(store).list_summaries()
    session = SessionStore(store).load(summary["id"])
    assert session.working_dir == os.path.realpath(folder)
    assert [m.status for m in session.messages] == ["complete", "complete"]

    (profile / "ipython_config.py").write_text(
        "c.InteractiveShellApp.extensions = ['jupyter_assistant']\n"
        "c.ClaudeCodeProvider.command = ['/nonexistent/claude']\n"
    )
    missing = run_ipython(folder, ipython_dir, store, config_dir, "%assistant hi")
    output = re.sub(r"\x1b\[[0-9;]*m", "", missing.stdout + missing.stderr)  # no colours
    assert "Traceback" not in output
    [line] = [line for line in output.splitlines() if line.startswith("Assistant: Claude")]
    assert "Claude Code CLI not found" in line
    assert "npm install -g @anthropic-ai/claude-code" in line


# -- the same session as the server ------------------------------------------------------------


@pytest.fixture
def shared_config(jp_config_dir: Path) -> Path:
    """One jupyter_server_config.json for the server and the kernels it starts, in the
    server's config dir (written before the server starts)."""
    config = jp_config_dir / "jupyter_server_config.json"
    config.write_text(
        json.dumps(
            {
                "ClaudeCodeProvider": {"command": FAKE_CLAUDE_COMMAND},
                "AssistantExtension": {"cancel_grace_seconds": 1.0},
            }
        )
    )
    return config


@pytest.mark.usefixtures("notebook_dir")
async def test_a_kernel_the_server_starts_shares_the_notebooks_session(
    shared_config: Path,
    jp_fetch: Any,
    jp_serverapp: Any,
    jp_root_dir: Path,
    store_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    live_events: Any,
) -> None:
    pid_file = tmp_path / "pids.json"
    monkeypatch.setenv("FAKE_PID_FILE", str(pid_file))  # the server's kernels inherit it
    # What JupyterLab does when it opens the notebook: a session with a kernel.
    body = {"path": NOTEBOOK, "name": "q3.ipynb", "type": "notebook", "kernel": {"name": "python3"}}
    response = await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))
    kernel_id = json_of(response)["kernel"]["id"]
    manager = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    in_thread = KernelThread()
    kernel = await in_thread(Kernel.attach, manager.get_connection_info())
    try:
        await in_thread(kernel.ok, "%load_ext jupyter_assistant")
        status = (await in_thread(kernel.ok, "%assistant status")).stdout()
        notebook_file = jp_root_dir / "analysis" / "q3.ipynb"
        assert f"Notebook: {notebook_file} (from JPY_SESSION_NAME)" in status
        assert f"Store: {store_dir}" in status  # exported by the server to its kernels
        assert str(shared_config) in status

        # A turn by the magic is in the notebook's history on the server.
        await in_thread(kernel.ok, "%assistant scenario:reply first question")
        response = await api(jp_fetch, "sessions", params={"path": NOTEBOOK})
        [listed] = json_of(response)["sessions"]
        assert (listed["status"], listed["message_count"]) == ("idle", 2)
        assert listed["path"] == NOTEBOOK  # as the server names it, though the kernel made it
        sid = listed["id"]

        # A running one is seen as running, and the sidebar's Stop (POST cancel) ends it.
        execution = kernel.execute("%assistant scenario:tree second question")
        await wait_until(pid_file.exists, timeout=60, message="the fake never started")
        pids = json.loads(pid_file.read_text())
        [listed] = json_of(await api(jp_fetch, "sessions", params={"path": NOTEBOOK}))["sessions"]
        assert listed["status"] == "running"
        running = json_of(await api(jp_fetch, "sessions", sid))
        assert running["status"] == "running"
        assert running["messages"][-1]["content"] == "scenario:tree second question"
        # The sidebar streams it live, from the event journal the kernel writes.
        reader = live_events(sid)
        await reader.wait_for(lambda got: "pids:" in text_of(got))
        assert types(reader.events)[0] == "turn_started"
        turn_id = reader.events[0]["data"]["turn_id"]
        assert {e["id"].rsplit(":", 1)[0] for e in reader.events} == {turn_id}
        response = await api(jp_fetch, "sessions", sid, "cancel", method="POST", body="{}")
        assert json_of(response) == {"cancelled": True}
        await reader.wait_for(lambda got: types(got)[-1] == "cancelled")
        await reader.future  # and the stream ends there
        await in_thread(kernel.finish, execution)
        assert_one_line_error(execution, "The turn was cancelled")
        assert pids_alive(pids) == [], describe_pids(pids)
        stored = json_of(await api(jp_fetch, "sessions", sid))
        assert stored["status"] == "idle"
        assert stored["messages"][-1]["role"] == "assistant"
        assert stored["messages"][-1]["status"] == "cancelled"
        assert "pids:" in stored["messages"][-1]["content"]

        # The notebook's Stop button (the server's kernel interrupt) cancels a turn too.
        pid_file.unlink()
        execution = kernel.execute("%assistant scenario:tree third question")
        await wait_until(pid_file.exists, timeout=60, message="the fake never started")
        pids = json.loads(pid_file.read_text())
        response = await jp_fetch("api", "kernels", kernel_id, "interrupt", method="POST", body="")
        assert response.code == 204
        await in_thread(kernel.finish, execution)
        assert_one_line_error(execution, "interrupted; the turn was cancelled")
        assert pids_alive(pids) == [], describe_pids(pids)
        stored = json_of(await api(jp_fetch, "sessions", sid))
        assert [m["status"] for m in stored["messages"][-2:]] == ["complete", "cancelled"]

        # The other way round: a turn the sidebar started is seen, refused and stopped in a cell.
        await post_message(jp_fetch, sid, "scenario:hang from the sidebar")
        status = (await in_thread(kernel.ok, "%assistant status")).stdout()
        assert f"Session: {sid} · claude · 7 messages · running" in status
        busy = await in_thread(kernel.run, "%assistant scenario:reply me too")
        assert_one_line_error(busy, "A turn is already running for this session")
        cancelled = (await in_thread(kernel.ok, "%assistant cancel")).stdout()
        assert "Cancelled the running turn of this notebook's session." in cancelled
        assert types(await events(jp_fetch, sid))[-1] == "cancelled"

        # And the kernel goes on with the same session.
        await in_thread(kernel.ok, "%assistant scenario:reply fourth")
        stored = json_of(await api(jp_fetch, "sessions", sid))
        assert stored["messages"][-1]["status"] == "complete"
        assert [m["status"] for m in stored["messages"][-4:-2]] == ["complete", "cancelled"]
        assert len(stored["messages"]) == 10
    finally:
        await in_thread(kernel.shutdown)
        in_thread.close()


def test_shutting_the_kernel_down_mid_turn_stops_the_provider(
    setup: KernelSetup, start_kernel: StartKernel, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids.json"
    setup.env["FAKE_PID_FILE"] = str(pid_file)
    kernel = start_kernel(setup)
    kernel.ok("%load_ext jupyter_assistant")
    execution = kernel.execute("%assistant scenario:ignore_term do something long")
    kernel.wait_for(execution, lambda e: any("pids:" in md for md in e.markdowns()), what="pids")
    pids = json.loads(pid_file.read_text())
    assert pids_alive(pids) == pids
    assert kernel.km is not None
    kernel.km.shutdown_kernel(now=False)  # a kernel restart or close from JupyterLab
    deadline = time.monotonic() + 30
    while pids_alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pids_alive(pids) == []
    [summary] = stored_sessions(setup)
    assert summary["status"] == "idle"
    assert load_session(setup, summary["id"]).messages[-1].status in ("cancelled", "interrupted")
