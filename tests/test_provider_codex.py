"""Codex: the parser on real captured output, the command line, and whole turns through the HTTP
API with the fake CLI (tests/fakes/codex) and with the REAL codex against a local stand-in of the
Responses API (tests/fakes/openai_standin.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from jupyter_assistant.providers.base import ProviderUnavailable, TurnRequest
from jupyter_assistant.providers.codex import CodexProvider, CodexStreamParser

from .conftest import fake_cli
from .fakes.openai_standin import OpenAIStandIn
from .fakes.real_clis import codex_standin_config, find_real
from .helpers import (
    api,
    create_session,
    events,
    json_of,
    pids_alive,
    post_message,
    run_turn,
    text_of,
    types,
    wait_until,
)

FAKES = Path(__file__).parent / "fakes"
SAMPLES = FAKES / "wire-samples" / "codex"
FAKE_CODEX = FAKES / "codex"


def parse(name: str) -> tuple[CodexStreamParser, list[dict[str, Any]]]:
    parser = CodexStreamParser()
    out: list[dict[str, Any]] = []
    for line in (SAMPLES / name).read_bytes().splitlines():
        out += parser.feed(line)
    return parser, out


def of_type(stream: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in stream if e["type"] == kind]


# -- the parser, on real output of codex-cli 0.171.0 ---------------------------------------------


def test_a_reply() -> None:
    parser, out = parse("reply.jsonl")
    assert [e["type"] for e in out] == ["notice", "text", "usage", "done"]
    assert "Model metadata for `gpt-5-codex` not found" in out[0]["message"]
    assert out[1]["text"] == "Hello from the stand-in. You said: Say hi please"
    assert out[2] == {
        "type": "usage",
        "input_tokens": 5264,
        "output_tokens": 55,
        "cost_usd": 0.0,
    }
    assert out[3]["provider_session_id"] == "01a21817-1413-7c81-bd5e-ac942e8dd12b"
    assert parser.provider_session_id == out[3]["provider_session_id"]
    assert parser.finish(0, "") == []


def test_a_resumed_turn_keeps_the_thread_id() -> None:
    _, first = parse("reply.jsonl")
    _, second = parse("resume.jsonl")
    assert second[-1]["provider_session_id"] == first[-1]["provider_session_id"]
    assert text_of_events(second) == "Hello from the stand-in. You said: Second turn here"


def text_of_events(out: list[dict[str, Any]]) -> str:
    return "".join(e["text"] for e in out if e["type"] == "text")


def test_a_command_becomes_tool_use_and_tool_result() -> None:
    _, out = parse("tool_pwd.jsonl")
    (use,) = of_type(out, "tool_use")
    (result,) = of_type(out, "tool_result")
    assert use == {
        "type": "tool_use",
        "id": "item_2",
        "name": "shell",
        "input": {"command": "/bin/bash -lc pwd"},
    }
    assert result == {
        "type": "tool_result",
        "id": "item_2",
        "content": "/tmp/probe/proj\n",
        "is_error": False,
    }
    # Two agent messages stay two paragraphs.
    assert text_of_events(out) == "I will run pwd.\n\nThe working directory is: /tmp/probe/proj"


def test_a_file_change_is_a_tool_call() -> None:
    _, out = parse("file_change.jsonl")
    (use,) = of_type(out, "tool_use")
    (result,) = of_type(out, "tool_result")
    assert use["name"] == "apply_patch"
    assert use["input"]["changes"] == [{"path": "/tmp/probe/proj/standin_patch.txt", "kind": "add"}]
    assert result["content"] == "add /tmp/probe/proj/standin_patch.txt"
    assert result["is_error"] is False


def test_reasoning_becomes_thinking() -> None:
    _, out = parse("thinking.jsonl")
    assert of_type(out, "thinking") == [
        {"type": "thinking", "text": "The user wants a reply; thinking it over."}
    ]


def test_a_sandbox_refusal_reaches_the_model_but_shows_no_command() -> None:
    # A fact of codex 0.171.0: a command the read-only sandbox refused prints no
    # command_execution item; the model sees the failure and says so.
    _, out = parse("touch_read-only.jsonl")
    assert of_type(out, "tool_use") == []
    assert "Read-only file system" in text_of_events(out)
    assert out[-1]["type"] == "done"


def test_a_command_in_the_workspace_sandbox() -> None:
    _, out = parse("touch_workspace-write.jsonl")
    (result,) = of_type(out, "tool_result")
    assert result["is_error"] is False
    assert out[-1]["type"] == "done"


@pytest.mark.parametrize(
    ("sample", "code"),
    [
        ("api_error_401.jsonl", "not_authenticated"),
        ("missing_key.jsonl", "not_authenticated"),
        ("api_error_400.jsonl", "provider_failed"),
    ],
)
def test_failed_turns(sample: str, code: str) -> None:
    parser, out = parse(sample)
    assert out[-1]["type"] == "error"
    assert out[-1]["code"] == code
    if code == "not_authenticated":
        assert "codex login" in out[-1]["message"]
    else:
        assert "Stand-in: simulated error 400" in out[-1]["message"]
    assert parser.finish(1, "") == []  # exactly one terminal event


def test_retries_are_notices_and_the_turn_goes_on() -> None:
    parser, out = parse("no_credentials_offline.jsonl")
    assert {e["type"] for e in out} == {"notice"}
    assert out[0]["message"].startswith("Reconnecting... 2/5")
    (end,) = parser.finish(-15, "")
    assert end["code"] == "provider_failed"


def test_a_signal_mid_turn_ends_without_a_result() -> None:
    parser, out = parse("signal_INT.jsonl")
    assert out[-1]["type"] == "tool_use"
    stderr = (SAMPLES / "signal_INT.stderr").read_text()
    (end,) = parser.finish(1, stderr)
    assert end["code"] == "provider_failed"
    assert "Untrusted project-local configuration" not in end["message"]  # noise dropped
    assert "failed to record rollout items" in end["message"]


def test_an_unknown_thread_is_resume_failed() -> None:
    parser = CodexStreamParser()
    (end,) = parser.finish(1, (SAMPLES / "resume_unknown.stderr").read_text())
    assert end["code"] == "resume_failed"
    assert parser.resume_failed is True


def test_garbage_lines_are_counted_not_raised() -> None:
    parser = CodexStreamParser()
    assert parser.feed(b"not json at all") == []
    assert parser.feed(b"[1, 2]") == []
    assert parser.feed(b"") == []
    assert parser.state.invalid_lines == 2


# -- the command line ------------------------------------------------------------------------


def request(tmp_path: Path, **extra: Any) -> TurnRequest:
    return TurnRequest(
        session_id="s",
        turn_id="t",
        prompt="hello",
        working_dir=str(tmp_path),
        notebook_path="analysis/q3.ipynb",
        **extra,
    )


def launch_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": str(FAKES), "HOME": str(tmp_path), **extra}


def test_safe_defaults_on_the_command_line(tmp_path: Path) -> None:
    provider = CodexProvider(command=[str(FAKE_CODEX)])
    spec = provider.build_launch(request(tmp_path), launch_env(tmp_path, CODEX_API_KEY="k"))
    argv = spec.argv
    assert argv[:6] == [
        str(FAKE_CODEX),
        "exec",
        "--json",
        "--skip-git-repo-check",
        "-C",
        str(tmp_path),
    ]
    assert argv[argv.index("--sandbox") + 1] == "workspace-write"
    assert 'approval_policy="never"' in argv
    assert "sandbox_workspace_write.network_access=false" in argv
    assert "sandbox_workspace_write.exclude_slash_tmp=true" in argv
    assert "sandbox_workspace_write.exclude_tmpdir_env_var=true" in argv
    instructions = next(a for a in argv if a.startswith("developer_instructions="))
    assert "analysis/q3.ipynb" in json.loads(instructions.split("=", 1)[1])
    assert argv[-1] == "-"
    assert "resume" not in argv
    assert spec.stdin == b"hello"
    assert spec.cwd == str(tmp_path)


def test_a_large_context_goes_on_stdin_not_on_the_command_line(tmp_path: Path) -> None:
    # One argument may hold 128 KiB on Linux; a message may carry 1 MiB of context.
    provider = CodexProvider(command=[str(FAKE_CODEX)])
    context = {"cell output": "x" * 300_000}
    spec = provider.build_launch(
        request(tmp_path, context=context), launch_env(tmp_path, CODEX_API_KEY="k")
    )
    assert max(len(arg) for arg in spec.argv) < 10_000
    stdin = spec.stdin.decode() if spec.stdin else ""
    assert stdin.startswith("<notebook_context>\n### cell output\nxxx")
    assert stdin.endswith("</notebook_context>\n\nhello")


def test_resume_model_and_settings(tmp_path: Path) -> None:
    provider = CodexProvider(
        command=[str(FAKE_CODEX)],
        sandbox="read-only",
        model="gpt-5.5",
        config_overrides={"model_reasoning_effort": '"high"'},
        extra_args=["--ephemeral"],
    )
    spec = provider.build_launch(
        request(tmp_path, provider_session_id="thread-1"), launch_env(tmp_path, CODEX_API_KEY="k")
    )
    argv = spec.argv
    assert argv[-3:] == ["resume", "thread-1", "-"]  # exec options come before `resume`
    assert argv[argv.index("--model") + 1] == "gpt-5.5"
    assert 'model_reasoning_effort="high"' in argv
    assert "--ephemeral" in argv
    assert not any(a.startswith("sandbox_workspace_write.") for a in argv)


def test_credentials_are_checked_before_spawning(tmp_path: Path) -> None:
    provider = CodexProvider(command=[str(FAKE_CODEX)])
    with pytest.raises(ProviderUnavailable) as refused:
        provider.build_launch(request(tmp_path), launch_env(tmp_path))
    assert refused.value.code == "not_authenticated"
    assert "codex login" in refused.value.message
    # A login file is enough.
    (tmp_path / ".codex").mkdir()
    (tmp_path / ".codex" / "auth.json").write_text("{}")
    provider.build_launch(request(tmp_path), launch_env(tmp_path))
    # So is a model provider of the user's own (its key cannot be checked here).
    other = tmp_path / "other-home"
    (other / "codex").mkdir(parents=True)
    (other / "codex" / "config.toml").write_text('model_provider = "ollama"\n[tui]\nx = 1\n')
    env = launch_env(tmp_path, CODEX_HOME=str(other / "codex"))
    assert provider.credentials_state(env) == "unknown"


def test_a_lost_thread_is_not_resumed_again(tmp_path: Path) -> None:
    # If the runner's retry without resume fails too, the session still names the lost thread.
    provider = CodexProvider(command=[str(FAKE_CODEX)])
    lost = request(tmp_path, provider_session_id="thread-1")
    env = launch_env(tmp_path, CODEX_API_KEY="k")
    assert "resume" in provider.build_launch(lost, env).argv
    parser = provider.create_parser(lost)
    parser.finish(1, (SAMPLES / "resume_unknown.stderr").read_text())
    assert "resume" not in provider.build_launch(lost, env).argv
    (notice,) = provider.create_parser(lost).feed(b"")
    assert "could not be resumed" in notice["message"]


def test_openai_api_key_is_passed_as_codex_api_key(tmp_path: Path) -> None:
    # codex 0.171.0 sends CODEX_API_KEY and ignores OPENAI_API_KEY (checked with the stand-in).
    provider = CodexProvider(command=[str(FAKE_CODEX)])
    spec = provider.build_launch(request(tmp_path), launch_env(tmp_path, OPENAI_API_KEY="sk-x"))
    assert spec.env["CODEX_API_KEY"] == "sk-x"


def test_a_missing_cli_says_how_to_install_it(tmp_path: Path) -> None:
    provider = CodexProvider(command=["no-such-codex"])
    with pytest.raises(ProviderUnavailable) as missing:
        provider.build_launch(request(tmp_path), launch_env(tmp_path, CODEX_API_KEY="k"))
    assert missing.value.code == "provider_not_found"
    assert "npm install -g @openai/codex" in missing.value.message


# -- whole turns through the HTTP API, with the fake CLI ----------------------------------------


@pytest.fixture
def codex_home(tmp_path: Path) -> Path:
    home = tmp_path / "codex-home"
    home.mkdir()
    return home


@pytest.fixture
def codex_settings(codex_home: Path) -> dict[str, Any]:
    return {
        "command": fake_cli("codex"),
        "env": {"CODEX_HOME": str(codex_home), "CODEX_API_KEY": "test-key"},
    }


@pytest.fixture
def jp_server_config(
    jp_server_config: dict[str, Any], codex_settings: dict[str, Any]
) -> dict[str, Any]:
    extension = {**jp_server_config["AssistantExtension"], "default_provider": "codex"}
    return {**jp_server_config, "AssistantExtension": extension, "CodexProvider": codex_settings}


@pytest.mark.usefixtures("notebook_dir")
class TestWithTheFakeCli:
    async def test_reply_then_resume(
        self, jp_fetch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        argv_file = tmp_path / "argv.json"
        monkeypatch.setenv("FAKE_CODEX_ARGV_FILE", str(argv_file))
        session = await create_session(jp_fetch)  # the configured default provider
        assert session["provider"] == "codex"
        first = await run_turn(jp_fetch, session["id"], "Say hi")
        assert types(first)[-1] == "done", first[-1]
        assert text_of(first).startswith("Fake Codex reply. You said: Say hi")
        thread = first[-1]["data"]["provider_session_id"]
        recorded = json.loads(argv_file.read_text())
        assert recorded["cwd"].endswith("analysis")
        assert "JUPYTER_TOKEN" not in recorded["env_names"]

        second = await run_turn(jp_fetch, session["id"], "Again")
        assert types(second)[-1] == "done", second[-1]
        assert text_of(second).endswith(f"[resumed:{thread}]")
        assert json.loads(argv_file.read_text())["argv"][-3:] == ["resume", thread, "-"]
        stored = json_of(await api(jp_fetch, "sessions", session["id"]))
        assert stored["provider_session_id"] == thread
        assert stored["usage"]["input_tokens"] == 2 * 5264

    async def test_a_large_context_reaches_codex(
        self, jp_fetch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        argv_file = tmp_path / "argv.json"
        monkeypatch.setenv("FAKE_CODEX_ARGV_FILE", str(argv_file))
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "hi", context={"df": "row\n" * 80_000})
        assert types(stream)[-1] == "done", stream[-1]
        assert "row\n" * 80_000 in json.loads(argv_file.read_text())["stdin"]

    async def test_a_tool_call_runs_in_the_notebook_folder(
        self, jp_fetch: Any, jp_root_dir: Path
    ) -> None:
        folder = str((jp_root_dir / "analysis").resolve())
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "scenario:tool")
        assert types(stream) == [
            "turn_started",
            "text",
            "tool_use",
            "tool_result",
            "text",
            "usage",
            "done",
        ]
        result = next(e["data"] for e in stream if e["event"] == "tool_result")
        assert result["content"].strip() == folder
        stored = json_of(await api(jp_fetch, "sessions", session["id"]))
        assert stored["messages"][-1]["tools"][0]["name"] == "shell"

    async def test_a_lost_thread_starts_a_new_one(
        self, jp_fetch: Any, codex_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        argv_file = tmp_path / "argv.json"
        monkeypatch.setenv("FAKE_CODEX_ARGV_FILE", str(argv_file))
        session = await create_session(jp_fetch)
        first = await run_turn(jp_fetch, session["id"], "one")
        thread = first[-1]["data"]["provider_session_id"]
        (codex_home / "fake-threads" / thread).unlink()  # codex forgot it
        # codex tells only by exit code and stderr ("no rollout found"); the parser reports
        # resume_failed from finish() and the runner runs the turn again on a new thread.
        second = await run_turn(jp_fetch, session["id"], "two")
        assert types(second)[-1] == "done", second[-1]
        notices = [e["data"]["message"] for e in second if e["event"] == "notice"]
        assert any("could not be resumed" in n for n in notices), notices
        assert "resume" not in json.loads(argv_file.read_text())["argv"]
        new_thread = second[-1]["data"]["provider_session_id"]
        assert new_thread != thread
        third = await run_turn(jp_fetch, session["id"], "four")
        assert text_of(third).endswith(f"[resumed:{new_thread}]")

    async def test_cancel_stops_codex_and_its_sandboxed_command(
        self, jp_fetch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pid_file = tmp_path / "pids.json"
        monkeypatch.setenv("FAKE_PID_FILE", str(pid_file))
        session = await create_session(jp_fetch)
        await post_message(jp_fetch, session["id"], "scenario:hang")
        await wait_until(pid_file.exists, message="the fake never wrote its pids")
        pids = json.loads(pid_file.read_text())
        assert pids_alive(pids) == pids
        response = await api(
            jp_fetch, "sessions", session["id"], "cancel", method="POST", body="{}"
        )
        assert json_of(response) == {"cancelled": True}
        assert pids_alive(pids) == []
        stream = await events(jp_fetch, session["id"])
        assert types(stream)[-1] == "cancelled"
        stored = json_of(await api(jp_fetch, "sessions", session["id"]))
        assert stored["messages"][-1]["status"] == "cancelled"
        assert stored["messages"][-1]["content"] == "I will run sleep 291."

    async def test_a_crash_reports_the_stderr_tail(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "scenario:crash")
        assert types(stream)[-1] == "error"
        error = stream[-1]["data"]
        assert error["code"] == "provider_failed"
        assert "exited with code 101" in error["message"]
        assert "fake: simulated crash" in error["message"]
        assert "PATH aliases" not in error["message"]

    async def test_a_refused_key_is_not_authenticated(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "scenario:not_authenticated")
        assert stream[-1]["data"]["code"] == "not_authenticated"
        assert "codex login" in stream[-1]["data"]["message"]


@pytest.mark.usefixtures("notebook_dir")
class TestWithoutCredentials:
    @pytest.fixture
    def codex_settings(self, codex_home: Path) -> dict[str, Any]:
        return {"command": fake_cli("codex"), "env": {"CODEX_HOME": str(codex_home)}}

    async def test_the_turn_is_refused_before_codex_starts(
        self, jp_fetch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in ("CODEX_API_KEY", "OPENAI_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        argv_file = tmp_path / "argv.json"
        monkeypatch.setenv("FAKE_CODEX_ARGV_FILE", str(argv_file))
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "hello")
        assert types(stream) == ["turn_started", "error"]
        assert stream[-1]["data"]["code"] == "not_authenticated"
        assert not argv_file.exists()  # never started
        providers = json_of(await api(jp_fetch, "providers"))["providers"]
        (codex,) = [p for p in providers if p["name"] == "codex"]
        assert codex["available"] is True
        assert codex["credentials"] == "missing"
        assert "codex login" in codex["problem"]


# -- the REAL codex ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def standin() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as server:
        yield server


@pytest.mark.usefixtures("notebook_dir")
class TestRealCodex:
    @pytest.fixture
    def codex_settings(self, codex_home: Path, tmp_path: Path) -> dict[str, Any]:
        return {"command": [find_real("codex")], "env": {"CODEX_HOME": str(codex_home)}}

    async def test_no_credentials_is_refused_with_the_fix_and_health_has_the_version(
        self, jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in ("CODEX_API_KEY", "OPENAI_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        providers = json_of(await api(jp_fetch, "providers"))["providers"]
        (codex,) = [p for p in providers if p["name"] == "codex"]
        assert codex["available"] is True
        assert codex["version"][0].isdigit()
        assert codex["credentials"] == "missing"
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "hello")
        assert types(stream) == ["turn_started", "error"]
        assert stream[-1]["data"]["code"] == "not_authenticated"
        assert "codex login" in stream[-1]["data"]["message"]


@pytest.mark.usefixtures("notebook_dir")
class TestRealCodexAgainstTheStandIn:
    @pytest.fixture
    def codex_settings(
        self, codex_home: Path, tmp_path: Path, standin: OpenAIStandIn
    ) -> dict[str, Any]:
        (tmp_path / "tmp").mkdir()
        return {
            "command": [find_real("codex")],
            # gpt-5-codex gets plain function tools (exec_command); the default model gets
            # code-mode tools instead.
            "model": "gpt-5-codex",
            "config_overrides": codex_standin_config(standin.base_url),
            "env": {
                "CODEX_HOME": str(codex_home),
                "STANDIN_API_KEY": "test-key",
                "TMPDIR": str(tmp_path / "tmp"),
            },
        }

    async def test_reply_tool_and_resume(
        self, jp_fetch: Any, jp_root_dir: Path, standin: OpenAIStandIn
    ) -> None:
        folder = str((jp_root_dir / "analysis").resolve())
        session = await create_session(jp_fetch)
        first = await run_turn(jp_fetch, session["id"], "Say hi please")
        assert types(first)[-1] == "done", first[-1]
        assert text_of(first) == "Hello from the stand-in. You said: Say hi please"
        thread = first[-1]["data"]["provider_session_id"]
        body = standin.response_bodies[-1]
        assert "analysis/q3.ipynb" in json.dumps(body["input"])  # developer_instructions
        assert body["model"] == "gpt-5-codex"

        second = await run_turn(jp_fetch, session["id"], "Please RUN_PWD now")
        assert types(second)[-1] == "done", second[-1]
        assert second[-1]["data"]["provider_session_id"] == thread
        result = next(e["data"] for e in second if e["event"] == "tool_result")
        assert result["content"].strip() == folder
        assert text_of(second).endswith(f"The working directory is: {folder}")
        # Resumed: the model saw the first exchange.
        assert "Say hi please" in json.dumps(standin.response_bodies[-1]["input"])

    async def test_the_sandbox_keeps_writes_in_the_notebook_folder(
        self, jp_fetch: Any, jp_root_dir: Path, tmp_path: Path
    ) -> None:
        outside = tmp_path / "outside.txt"
        session = await create_session(jp_fetch)
        stream = await run_turn(
            jp_fetch, session["id"], f"RUN_BASH: touch inside.txt && touch {outside}"
        )
        assert types(stream)[-1] == "done", stream[-1]
        assert (jp_root_dir / "analysis" / "inside.txt").exists()
        assert not outside.exists()
        assert "Read-only file system" in text_of(stream)

    async def test_cancel_stops_a_running_command(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch)
        await post_message(jp_fetch, session["id"], "RUN_BASH: sleep 2917")
        sleepers: list[psutil.Process] = []

        def sleeping() -> bool:
            sleepers[:] = [
                p
                for p in psutil.process_iter(["cmdline"])
                if p.info["cmdline"] == ["sleep", "2917"]
            ]
            return bool(sleepers)

        await wait_until(sleeping, timeout=60, message="codex never ran the command")
        tree = [p.pid for p in sleepers]
        for parent in sleepers[0].parents():
            if parent.pid == os.getpid():
                break
            tree.append(parent.pid)  # the sandbox, codex and its launcher
        response = await api(
            jp_fetch, "sessions", session["id"], "cancel", method="POST", body="{}"
        )
        assert json_of(response) == {"cancelled": True}
        assert pids_alive(tree) == []
        stream = await events(jp_fetch, session["id"])
        assert types(stream)[-1] == "cancelled"

    async def test_a_refused_key_is_not_authenticated(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch)
        stream = await run_turn(jp_fetch, session["id"], "API_ERROR:401 please")
        assert types(stream)[-1] == "error"
        assert stream[-1]["data"]["code"] == "not_authenticated"
