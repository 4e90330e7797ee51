"""The Claude Code stream-json parser, fed with output captured from the real CLI
(tests/fakes/wire-samples, recorded with claude 2.1.197 against the local API stand-in)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from jupyter_assistant.providers.base import TurnRequest
from jupyter_assistant.providers.claude_code import ClaudeCodeProvider
from jupyter_assistant.providers.claude_stream import ClaudeStreamParser

SAMPLES = Path(__file__).parent / "fakes" / "wire-samples"


def parse(
    name: str, returncode: int = 0, stderr: str = ""
) -> tuple[list[dict[str, Any]], ClaudeStreamParser]:
    parser = ClaudeStreamParser()
    events: list[dict[str, Any]] = []
    for line in (SAMPLES / name).read_bytes().splitlines():
        events.extend(parser.feed(line))
    events.extend(parser.finish(returncode, stderr))
    return events, parser


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def final_text(name: str) -> str:
    for line in (SAMPLES / name).read_text().splitlines():
        obj = json.loads(line)
        if obj.get("type") == "result":
            return str(obj.get("result", ""))
    raise AssertionError("no result line")


def test_reply_streams_deltas_without_repeating_the_full_message() -> None:
    events, parser = parse("reply.jsonl")
    text = "".join(e["text"] for e in of_type(events, "text"))
    assert text == final_text("reply.jsonl")
    assert len(of_type(events, "text")) > 1  # it streamed
    assert events[-1]["type"] == "done"
    assert events[-1]["provider_session_id"] == parser.provider_session_id
    assert events[-1]["cost_usd"] > 0
    usage = of_type(events, "usage")[0]
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] > 0


def test_without_partial_messages_the_full_message_is_the_text() -> None:
    events, _ = parse("no_partial.jsonl")
    assert "".join(e["text"] for e in of_type(events, "text")) == final_text("no_partial.jsonl")
    assert events[-1]["type"] == "done"


def test_tool_use_and_result_are_paired() -> None:
    events, _ = parse("tool_pwd.jsonl")
    uses, results = of_type(events, "tool_use"), of_type(events, "tool_result")
    assert [u["name"] for u in uses] == ["Bash"]
    assert uses[0]["input"]["command"] == "pwd"
    assert results[0]["id"] == uses[0]["id"]
    assert results[0]["is_error"] is False
    assert results[0]["content"].startswith("/")
    assert events.index(uses[0]) < events.index(results[0])
    assert events[-1]["type"] == "done"


def test_thinking_is_its_own_event() -> None:
    events, _ = parse("thinking.jsonl")
    assert of_type(events, "thinking")
    assert "".join(e["text"] for e in of_type(events, "text")) == final_text("thinking.jsonl")


def test_permission_denials_say_what_was_refused_and_how_to_allow_it() -> None:
    events, _ = parse("tool_denied.jsonl")
    denied = of_type(events, "permission_denied")
    assert len(denied) == 1
    assert denied[0]["tool_name"] == "Bash"
    assert "c.ClaudeCodeProvider.allowed_tools" in denied[0]["message"]
    assert "Bash(touch:*)" in denied[0]["message"]
    assert events[-1]["type"] == "done"


def test_not_logged_in_is_not_authenticated_with_the_fix() -> None:
    events, _ = parse("not_logged_in.jsonl", returncode=1)
    assert of_type(events, "text") == []  # the synthetic failure message is not reply text
    assert events[-1]["type"] == "error"
    assert events[-1]["code"] == "not_authenticated"
    assert "/login" in events[-1]["message"]
    assert "ANTHROPIC_API_KEY" in events[-1]["message"]


@pytest.mark.parametrize("name", ["unreachable.jsonl", "api_error_400.jsonl"])
def test_api_failures_are_provider_failed_with_the_cli_text(name: str) -> None:
    events, _ = parse(name, returncode=1)
    assert events[-1]["type"] == "error"
    assert events[-1]["code"] == "provider_failed"
    assert final_text(name) in events[-1]["message"]


def test_a_lost_conversation_is_flagged_for_a_fresh_start() -> None:
    events, parser = parse("resume_wrong_cwd.jsonl", returncode=1)
    assert parser.resume_failed
    assert events[-1]["code"] == "resume_failed"


def test_killed_without_a_result_is_provider_failed_with_stderr() -> None:
    events, _ = parse("signal_TERM.jsonl", returncode=-15, stderr="boom: it broke\n")
    assert events[-1]["type"] == "error"
    assert events[-1]["code"] == "provider_failed"
    assert "boom: it broke" in events[-1]["message"]


def test_garbage_lines_are_counted_not_fatal() -> None:
    parser = ClaudeStreamParser()
    assert parser.feed(b"not json") == []
    assert parser.feed(b"[1, 2]") == []
    assert parser.feed(b"\xff\xfe") == []
    assert parser.state.invalid_lines == 3


def test_print_mode_command_line_resumes_and_sends_the_notebook_context_with_the_prompt(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "claude"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    provider = ClaudeCodeProvider(
        command=[str(fake)],
        allowed_tools=["Bash(ls:*)"],
        model="sonnet",
        extra_args=["--x"],
        interactive=False,
    )
    request = TurnRequest(
        session_id="s",
        turn_id="t",
        prompt="summarise sales.csv",
        working_dir=str(tmp_path),
        notebook_path="analysis/q3.ipynb",
        provider_session_id="abc",
        context={"cell": "df.head()"},
    )
    launch = provider.build_launch(request, {"PATH": "/usr/bin"})
    argv = launch.argv
    assert argv[0] == str(fake)
    assert argv[1:5] == ["-p", "--output-format", "stream-json", "--verbose"]
    assert "--include-partial-messages" in argv
    assert "--resume=abc" in argv
    assert argv[argv.index("--permission-mode") + 1] == "acceptEdits"
    assert argv[argv.index("--model") + 1] == "sonnet"
    assert argv[argv.index("--allowedTools") + 1] == "Bash(ls:*)"
    assert not any("df.head()" in arg for arg in argv)  # `ps` shows argv to everyone
    system_file = Path(argv[argv.index("--append-system-prompt-file") + 1])
    assert launch.cleanup == [str(system_file)]
    assert stat.S_IMODE(system_file.stat().st_mode) == 0o600
    system = system_file.read_text()
    assert "analysis/q3.ipynb" in system
    assert argv[-1] == "--x"
    # The prompt, after its context, goes on stdin, not argv.
    assert launch.stdin == (
        b"<notebook_context>\n### cell\ndf.head()\n</notebook_context>\n\nsummarise sales.csv"
    )
    assert launch.cwd == str(tmp_path)
    assert "--input-format" not in argv
    assert type(provider.create_parser(request)) is ClaudeStreamParser


def test_text_blocks_around_a_tool_call_are_separate_paragraphs() -> None:
    events, _ = parse("tool_pwd.jsonl")
    text = "".join(e["text"] for e in of_type(events, "text"))
    assert text.startswith("I will run pwd.\n\nThe working directory is: /")
    partial_off, _ = parse("no_partial.jsonl")
    assert "\n\n" not in "".join(e["text"] for e in of_type(partial_off, "text"))


def test_the_provider_environment_drops_secrets_and_kernel_only_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyter_assistant.providers.base import provider_environment

    monkeypatch.setenv("JUPYTER_TOKEN", "t")
    monkeypatch.setenv("JPY_SESSION_NAME", "/nb.ipynb")
    monkeypatch.setenv("PYDEVD_USE_FRAME_EVAL", "NO")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("KEEP_ME", "1")
    env = provider_environment({"ADDED": "2"})
    assert not {"JUPYTER_TOKEN", "JPY_SESSION_NAME", "PYDEVD_USE_FRAME_EVAL", "MPLBACKEND"} & set(
        env
    )
    assert env["KEEP_ME"] == "1"
    assert env["ADDED"] == "2"
    monkeypatch.setenv("MPLBACKEND", "Agg")  # a backend the user chose is kept
    assert provider_environment()["MPLBACKEND"] == "Agg"
