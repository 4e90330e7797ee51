"""Claude Code's control protocol (interactive mode): the parser fed with what the REAL CLI
printed (tests/fakes/wire-samples/control, claude 2.1.197 against the local API stand-in), what
it writes back, the summaries users are shown, and the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jupyter_assistant import events
from jupyter_assistant.providers.base import TurnRequest
from jupyter_assistant.providers.claude_code import ClaudeCodeProvider
from jupyter_assistant.providers.claude_control import (
    INIT_REQUEST_ID,
    ClaudeControlParser,
    summarize,
)

SAMPLES = Path(__file__).parent / "fakes" / "wire-samples" / "control"
CAPTURE_DIR = "/tmp/wire.ctl/project"  # where the samples were captured


class RecordingIO:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert data.endswith(b"\n") and data.count(b"\n") == 1  # one JSON object per line
        self.sent.append(json.loads(data))

    def close(self) -> None:
        self.closed = True


def started(working_dir: str = CAPTURE_DIR) -> tuple[ClaudeControlParser, RecordingIO]:
    parser = ClaudeControlParser("Please RUN_WRITE: notes.txt hello", working_dir)
    io = RecordingIO()
    parser.start(io)
    return parser, io


def lines(name: str, cwd: str = CAPTURE_DIR) -> list[bytes]:
    """A sample's lines, as if it had been captured in ``cwd``."""
    data = (SAMPLES / name).read_bytes().replace(CAPTURE_DIR.encode(), cwd.encode())
    return data.splitlines()


def feed_until_asked(
    parser: ClaudeControlParser, name: str, cwd: str = CAPTURE_DIR
) -> tuple[list[dict[str, Any]], dict[str, Any], list[bytes]]:
    """Feed a sample up to its can_use_tool; returns the events, the request and the rest."""
    events: list[dict[str, Any]] = []
    sample = lines(name, cwd)
    for index, line in enumerate(sample):
        events.extend(parser.feed(line))
        if events and events[-1]["type"] == "permission_request":
            return events, events[-1], sample[index + 1 :]
    raise AssertionError(f"{name} asks nothing")


def test_start_sends_initialize_then_the_prompt_as_the_real_capture_did() -> None:
    _, io = started()
    captured = [json.loads(x) for x in lines("write_allow.stdin.jsonl")[:2]]
    assert [m["type"] for m in io.sent] == ["control_request", "user"]
    assert io.sent[0]["request"] == captured[0]["request"] == {"subtype": "initialize"}
    assert io.sent[1]["message"] == {"role": "user", "content": "Please RUN_WRITE: notes.txt hello"}
    assert set(io.sent[1]) == set(captured[1])
    assert not io.closed


def test_a_write_is_asked_with_a_diff_and_allowed_with_its_input(tmp_path: Path) -> None:
    cwd = str(tmp_path)
    parser, io = started(cwd)
    events, asked, rest = feed_until_asked(parser, "write_allow.jsonl", cwd)
    assert [e["type"] for e in events if e["type"] != "text"][-2:] == [
        "tool_use",
        "permission_request",
    ]
    assert asked["tool_name"] == "Write"
    assert asked["input"] == {
        "file_path": f"{cwd}/notes.txt",
        "content": "hello from the agent\n",
    }
    assert asked["summary"].splitlines() == [
        "--- /dev/null",
        "+++ b/notes.txt",
        "@@ -0,0 +1 @@",
        "+hello from the agent",
    ]
    assert parser.answer_permission(asked["request_id"], True, "once", None) is True
    expected = json.loads(lines("write_allow.stdin.jsonl", cwd)[2])
    expected["response"]["request_id"] = asked["request_id"]
    assert io.sent[-1] == expected  # the answer the real CLI accepted
    assert parser.answer_permission(asked["request_id"], True, "once", None) is False  # once only
    after: list[dict[str, Any]] = []
    for line in rest:
        after.extend(parser.feed(line))
    assert after[-1]["type"] == "done"
    results = [e for e in after if e["type"] == "tool_result"]
    assert results[0]["content"].startswith("File created successfully")
    assert io.closed  # the result is in: the CLI may exit


def test_a_denial_carries_the_message_the_agent_is_told() -> None:
    parser, io = started()
    _, asked, rest = feed_until_asked(parser, "write_deny.jsonl")
    message = "The user denied this: not now, please."
    assert parser.answer_permission(asked["request_id"], False, "once", message) is True
    assert io.sent[-1]["response"]["response"] == {"behavior": "deny", "message": message}
    after = [e for line in rest for e in parser.feed(line)]
    (result,) = [e for e in after if e["type"] == "tool_result"]
    assert result == {
        "type": "tool_result",
        "id": result["id"],
        "content": message,
        "is_error": True,
    }
    assert after[-1]["type"] == "done"
    # The result lists the denial; it was the user's answer, not a setting to change.
    assert b'"permission_denials":[{"tool_name":"Write"' in rest[-1]
    assert not [e for e in after if e["type"] == "permission_denied"]


def test_a_shell_command_shows_the_command_and_the_path_the_cli_found() -> None:
    parser, _ = started()
    _, asked, _ = feed_until_asked(parser, "bash_touch_allow.jsonl")
    assert asked["tool_name"] == "Bash"
    assert asked["summary"] == "$ touch standin_was_here.txt\n# Create a marker file"
    assert asked["paths"] == [f"{CAPTURE_DIR}/standin_was_here.txt"]  # the CLI's blocked_path


def test_interrupt_while_asking_withdraws_the_question() -> None:
    parser, io = started()
    _, asked, rest = feed_until_asked(parser, "interrupt_while_asking.jsonl")
    assert parser.interrupt() is True
    assert io.sent[-1] == {
        "type": "control_request",
        "request_id": "jupyter-assistant-interrupt",
        "request": {"subtype": "interrupt"},
    }
    assert parser.interrupt() is True  # asked already: not sent twice
    assert sum(1 for m in io.sent if m["type"] == "control_request") == 2
    assert parser.answer_permission(asked["request_id"], True, "once", None) is False
    after = [e for line in rest for e in parser.feed(line)]
    assert after[-1]["type"] == "error"  # the runner reports it as cancelled
    assert io.closed
    assert parser.interrupt() is False  # over


def test_the_cli_withdrawing_a_question_makes_it_unanswerable() -> None:
    parser, _ = started()
    _, asked, _ = feed_until_asked(parser, "interrupt_while_asking.jsonl")
    cancel = {"type": "control_cancel_request", "request_id": asked["request_id"]}
    assert parser.feed(json.dumps(cancel).encode()) == []
    assert parser.answer_permission(asked["request_id"], False, "once", "late") is False


def test_control_requests_other_than_permissions_are_refused() -> None:
    parser, io = started()
    hook = {"type": "control_request", "request_id": "h1", "request": {"subtype": "hook_callback"}}
    assert parser.feed(json.dumps(hook).encode()) == []
    assert io.sent[-1]["response"]["subtype"] == "error"
    assert io.sent[-1]["response"]["request_id"] == "h1"


def test_replies_and_failures_parse_as_in_print_mode() -> None:
    for name, final in (("reply.jsonl", "done"), ("not_logged_in.jsonl", "error")):
        parser, io = started()
        events = [e for line in lines(name) for e in parser.feed(line)]
        assert events[-1]["type"] == final, name
        assert io.closed
    assert events[-1]["code"] == "not_authenticated"


# -- summaries ----------------------------------------------------------------------------------


def test_edits_are_shown_as_a_diff_against_the_file_on_disk(tmp_path: Path) -> None:
    (tmp_path / "clean.py").write_text("import pandas as pd\ndf = pd.read_csv('a.csv')\n")
    edit = {
        "file_path": str(tmp_path / "clean.py"),
        "old_string": "a.csv",
        "new_string": "sales.csv",
    }
    assert summarize("Edit", edit, str(tmp_path)).splitlines() == [
        "--- a/clean.py",
        "+++ b/clean.py",
        "@@ -1,2 +1,2 @@",
        " import pandas as pd",
        "-df = pd.read_csv('a.csv')",
        "+df = pd.read_csv('sales.csv')",
    ]
    multi = {
        "file_path": "clean.py",  # relative: from the working dir
        "edits": [
            {"old_string": "pandas as pd", "new_string": "polars as pl"},
            {"old_string": "pd.read_csv", "new_string": "pl.read_csv"},
        ],
    }
    diff = summarize("MultiEdit", multi, str(tmp_path))
    assert "+import polars as pl" in diff and "+df = pl.read_csv('a.csv')" in diff
    missing = dict(edit, old_string="nowhere")
    assert "not in the file:\nnowhere" in summarize("Edit", missing, str(tmp_path))
    overwrite = {"file_path": str(tmp_path / "clean.py"), "content": "print(1)\n"}
    assert "-import pandas as pd" in summarize("Write", overwrite, str(tmp_path))
    (tmp_path / "blob.bin").write_bytes(b"\xff\xfe\x00\x81")
    binary = {"file_path": str(tmp_path / "blob.bin"), "content": "x"}
    assert summarize("Write", binary, str(tmp_path)) == "Write blob.bin (a binary file)"


def test_other_tools_show_their_command_url_or_input(tmp_path: Path) -> None:
    assert summarize("Bash", {"command": "ls"}, str(tmp_path)) == "$ ls"
    fetch = {"url": "https://example.org", "prompt": "summarise"}
    assert summarize("WebFetch", fetch, str(tmp_path)) == "https://example.org\nsummarise"
    assert summarize("Mystery", {"b": 1}, str(tmp_path)) == '{\n "b": 1\n}'
    long = summarize("Write", {"file_path": "big.txt", "content": "x\n" * 30_000}, str(tmp_path))
    assert long.endswith("more characters]") and len(long) < 21_000


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture
def fake_cli(tmp_path: Path) -> Path:
    fake = tmp_path / "claude"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    return fake


def request_for(tmp_path: Path) -> TurnRequest:
    return TurnRequest(
        session_id="s",
        turn_id="t",
        prompt="tidy the data",
        working_dir=str(tmp_path),
        notebook_path="analysis/q3.ipynb",
        context={"cell": "df.head()"},
    )


def test_interactive_mode_is_the_default(fake_cli: Path, tmp_path: Path) -> None:
    provider = ClaudeCodeProvider(command=[str(fake_cli)], disallowed_tools=["WebFetch"])
    request = request_for(tmp_path)
    launch = provider.build_launch(request, {"PATH": "/usr/bin"})
    argv = launch.argv
    assert argv[argv.index("--input-format") + 1] == "stream-json"
    assert argv[argv.index("--permission-prompt-tool") + 1] == "stdio"
    # Edits and commands are asked about, not pre-allowed.
    assert argv[argv.index("--permission-mode") + 1] == "default"
    start = argv.index("--disallowedTools") + 1
    assert argv[start : start + 2] == ["AskUserQuestion", "WebFetch"]
    assert launch.stdin is None  # the prompt goes as a stream-json message
    parser = provider.create_parser(request)
    assert isinstance(parser, ClaudeControlParser)
    io = RecordingIO()
    parser.start(io)
    # The notebook context goes with the message (a warm CLI cannot change its system prompt).
    assert io.sent[1]["message"]["content"] == (
        "<notebook_context>\n### cell\ndf.head()\n</notebook_context>\n\ntidy the data"
    )


def test_an_explicit_permission_mode_is_kept(fake_cli: Path, tmp_path: Path) -> None:
    provider = ClaudeCodeProvider(command=[str(fake_cli)], permission_mode="acceptEdits")
    argv = provider.build_launch(request_for(tmp_path), {"PATH": "/usr/bin"}).argv
    assert argv[argv.index("--permission-mode") + 1] == "acceptEdits"


# -- warm processes (turns/warm.py) ---------------------------------------------------------------


def test_a_kept_process_keeps_stdin_open_and_a_reused_one_is_not_initialized_again(
    fake_cli: Path, tmp_path: Path
) -> None:
    provider = ClaudeCodeProvider(command=[str(fake_cli)])
    request = request_for(tmp_path)
    request.keep_process = True
    first, io = provider.create_parser(request), RecordingIO()
    first.start(io)
    assert [m["type"] for m in io.sent] == ["control_request", "user"]
    events = [e for line in lines("reply.jsonl") for e in first.feed(line)]
    assert events[-1]["type"] == "done"
    assert not io.closed  # the CLI waits for the next turn's message

    request.reuses_process = True
    second, again = provider.create_parser(request), RecordingIO()
    second.start(again)
    assert [m["type"] for m in again.sent] == ["user"]
    assert again.sent[0]["message"]["content"].endswith("\n\ntidy the data")


def init_answer(subtype: str = "success") -> bytes:
    """The real CLI's answer to our initialize (control/reply.jsonl's first line)."""
    answer = json.loads(lines("reply.jsonl")[0])
    answer["response"]["request_id"] = INIT_REQUEST_ID
    answer["response"]["subtype"] = subtype
    if subtype == "error":
        answer["response"]["error"] = "no such option"
    return json.dumps(answer).encode()


def test_a_prewarm_only_initializes_and_is_done_when_the_cli_answers(
    fake_cli: Path, tmp_path: Path
) -> None:
    provider = ClaudeCodeProvider(command=[str(fake_cli)])
    assert provider.prewarms()
    request = request_for(tmp_path)
    request.prompt, request.context = "", None
    request.prewarm = request.keep_process = True
    parser, io = provider.create_parser(request), RecordingIO()
    parser.start(io)
    assert [m["type"] for m in io.sent] == ["control_request"]  # no message: none was asked
    assert parser.feed(b'{"type":"control_response","response":{"request_id":"other"}}') == []
    assert parser.feed(init_answer()) == [events.done(None, 0.0, 0)]
    assert not io.closed  # it waits for the session's next turn

    failed = provider.create_parser(request)
    failed.start(RecordingIO())
    [error] = failed.feed(init_answer("error"))
    assert error["type"] == "error" and "no such option" in error["message"]
    provider.interactive = False  # print mode takes its prompt when it starts
    assert not provider.prewarms()


def test_a_stopped_turn_of_a_kept_process_closes_stdin_at_its_result() -> None:
    parser = ClaudeControlParser("p", CAPTURE_DIR, close_after_result=False)
    io = RecordingIO()
    parser.start(io)
    assert parser.interrupt()
    events = [e for line in lines("interrupt_streaming.jsonl") for e in parser.feed(line)]
    assert events[-1]["type"] == "error"  # the interrupted result
    assert io.closed


def test_the_reuse_key_ignores_the_conversation_the_file_names_and_the_context(
    fake_cli: Path, tmp_path: Path
) -> None:
    provider = ClaudeCodeProvider(command=[str(fake_cli)])
    env = {"PATH": "/usr/bin"}
    request = request_for(tmp_path)
    request.scratch_dir = str(tmp_path / "private")
    first = provider.build_launch(request, env)
    request.provider_session_id = "conversation-1"
    resumed = provider.build_launch(request, env)
    assert first.cleanup != resumed.cleanup  # new private files each turn
    assert first.reuse_key is not None and first.reuse_key == resumed.reuse_key
    request.context = {"cell": "df.tail()"}  # it goes with the message, not the system prompt
    assert provider.build_launch(request, env).reuse_key == first.reuse_key
    provider.permission_mode = "acceptEdits"
    assert provider.build_launch(request, env).reuse_key != first.reuse_key
    provider.permission_mode = None
    assert provider.build_launch(request, {**env, "X": "1"}).reuse_key != first.reuse_key
    provider.interactive = False  # print mode: one prompt per process
    assert provider.build_launch(request, env).reuse_key is None
