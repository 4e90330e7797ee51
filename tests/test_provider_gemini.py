"""Gemini CLI: the parser on real captured output, the command line, and whole turns through the
HTTP API with the fake CLI (tests/fakes/gemini) and with the REAL gemini, against a local stand-in
of the Gemini API (tests/fakes/gemini_standin.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from jupyter_assistant.providers.base import ProviderUnavailable, TurnRequest
from jupyter_assistant.providers.gemini import GeminiProvider, GeminiStreamParser

from .conftest import fake_cli
from .fakes.gemini_standin import GeminiStandIn
from .fakes.real_clis import find_real, gemini_home_for_standin
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
SAMPLES = FAKES / "wire-samples" / "gemini"
FAKE_GEMINI = FAKES / "gemini"
GOOGLE_ENV = (
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_GCA",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_GEMINI_BASE_URL",
)


def parse(name: str, **kwargs: Any) -> tuple[GeminiStreamParser, list[dict[str, Any]]]:
    parser = GeminiStreamParser(**kwargs)
    out: list[dict[str, Any]] = []
    for line in (SAMPLES / name).read_bytes().splitlines():
        out += parser.feed(line)
    return parser, out


def text_of_events(out: list[dict[str, Any]]) -> str:
    return "".join(e["text"] for e in out if e["type"] == "text")


# -- the parser, on real output of gemini 0.61.0 -------------------------------------------------


def test_a_reply_streams_deltas() -> None:
    parser, out = parse("reply.jsonl")
    assert [e["type"] for e in out] == ["text"] * 4 + ["usage", "done"]
    assert text_of_events(out) == "Hello from the stand-in. You said: Say hi please"
    assert out[-2] == {"type": "usage", "input_tokens": 213, "output_tokens": 3, "cost_usd": 0.0}
    assert out[-1]["provider_session_id"] == "eb6cf902-d7fd-423b-9358-485c8b7fc15e"
    assert out[-1]["duration_ms"] == 102
    assert parser.finish(0, "") == []


def test_a_resumed_turn_keeps_the_session_id() -> None:
    _, out = parse("resume.jsonl")
    assert out[-1]["provider_session_id"] == "eb6cf902-d7fd-423b-9358-485c8b7fc15e"
    # The echo of the user's prompt is not reply text.
    assert text_of_events(out) == "Hello from the stand-in. You said: Second turn here"


def test_tool_calls() -> None:
    _, listed = parse("tool_ls.jsonl")
    use = next(e for e in listed if e["type"] == "tool_use")
    result = next(e for e in listed if e["type"] == "tool_result")
    assert use["name"] == "list_directory"
    assert use["input"] == {"dir_path": "."}
    assert result == {"type": "tool_result", "id": use["id"], "content": "", "is_error": False}
    _, shell = parse("tool_shell_yolo.jsonl")
    result = next(e for e in shell if e["type"] == "tool_result")
    assert result["content"] == "/tmp/probe/proj"


def test_a_tool_left_out_by_the_approval_mode() -> None:
    _, out = parse("tool_write_default.jsonl")
    result = next(e for e in out if e["type"] == "tool_result")
    assert result["is_error"] is True
    assert 'Tool "write_file" not found' in result["content"]
    assert out[-1]["type"] == "done"


def test_thoughts_are_not_printed_in_this_mode() -> None:
    _, out = parse("thinking.jsonl")
    assert [e for e in out if e["type"] == "thinking"] == []


def test_api_errors() -> None:
    _, refused = parse("api_error_401.jsonl")
    assert refused[-1]["code"] == "not_authenticated"
    assert "GEMINI_API_KEY" in refused[-1]["message"]
    _, bad = parse("api_error_400.jsonl")
    assert bad[-1]["code"] == "provider_failed"
    assert "Stand-in: simulated error 400" in bad[-1]["message"]


@pytest.mark.parametrize(
    "sample",
    [
        "not_authenticated.stderr",
        "not_authenticated_key_selected.stderr",
        "not_authenticated_oauth.stderr",
    ],
)
def test_exit_41_is_not_authenticated(sample: str) -> None:
    parser = GeminiStreamParser()
    (end,) = parser.finish(41, (SAMPLES / sample).read_text())
    assert end["code"] == "not_authenticated"
    assert "GEMINI_API_KEY" in end["message"]
    assert "\x1b[" not in end["message"]


@pytest.mark.parametrize("sample", ["resume_unknown.stderr", "resume_wrong_cwd.stderr"])
def test_exit_42_when_resuming_is_resume_failed(sample: str) -> None:
    lost: list[str | None] = []
    parser = GeminiStreamParser(resume_id="abc", on_lost=lost.append)
    (end,) = parser.finish(42, (SAMPLES / sample).read_text())
    assert end["code"] == "resume_failed"
    assert parser.resume_failed is True
    assert lost == ["abc"]


def test_other_exit_codes_say_what_to_fix() -> None:
    (untrusted,) = GeminiStreamParser().finish(55, "not running in a trusted directory")
    assert "trust_workspace" in untrusted["message"]
    (limit,) = GeminiStreamParser().finish(53, "")
    assert "maxSessionTurns" in limit["message"]
    (crash,) = GeminiStreamParser().finish(134, "Ripgrep is not available.\nheap out of memory\n")
    assert crash["code"] == "provider_failed"
    assert "heap out of memory" in crash["message"]
    assert "Ripgrep" not in crash["message"]


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


def test_the_command_line(tmp_path: Path) -> None:
    provider = GeminiProvider(command=[str(FAKE_GEMINI)], model="gemini-2.5-pro")
    spec = provider.build_launch(
        request(tmp_path, provider_session_id="sid-1", context={"cell": "df.head()"}),
        {"PATH": "/usr/bin"},
    )
    argv = spec.argv
    assert argv[argv.index("--output-format") + 1] == "stream-json"
    assert argv[argv.index("--approval-mode") + 1] == "auto_edit"
    assert "--skip-trust" in argv
    assert argv[argv.index("--model") + 1] == "gemini-2.5-pro"
    assert argv[argv.index("--resume") + 1] == "sid-1"
    assert argv[-2:] == ["--prompt", ""]  # the prompt itself goes on stdin, not in `ps`
    stdin = spec.stdin.decode() if spec.stdin else ""
    assert stdin.startswith("<notebook_context>\n")
    assert "analysis/q3.ipynb" in stdin and "df.head()" in stdin
    assert stdin.endswith("</notebook_context>\n\nhello")


def test_resume_can_be_turned_off(tmp_path: Path) -> None:
    provider = GeminiProvider(command=[str(FAKE_GEMINI)], resume=False, trust_workspace=False)
    spec = provider.build_launch(request(tmp_path, provider_session_id="sid-1"), {})
    assert "--resume" not in spec.argv
    assert "--skip-trust" not in spec.argv


def test_a_missing_cli_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(ProviderUnavailable) as missing:
        GeminiProvider(command=["no-such-gemini"]).build_launch(request(tmp_path), {})
    assert missing.value.code == "provider_not_found"
    assert "npm install -g @google/gemini-cli" in missing.value.message


def test_credentials(tmp_path: Path) -> None:
    provider = GeminiProvider()
    home = tmp_path / "home"
    home.mkdir()
    assert provider.credentials_state({"HOME": str(home)}) == "missing"
    assert provider.credentials_state({"HOME": str(home), "GEMINI_API_KEY": "k"}) == "present"
    assert (
        provider.credentials_state({"HOME": str(home), "GOOGLE_GENAI_USE_VERTEXAI": "true"})
        == "unknown"
    )
    (home / ".gemini").mkdir()
    (home / ".gemini" / ".env").write_text("GEMINI_API_KEY=k\n")
    assert provider.credentials_state({"HOME": str(home)}) == "present"


# -- whole turns through the HTTP API, with the fake CLI ----------------------------------------


@pytest.fixture
def gemini_home(tmp_path: Path) -> Path:
    home = tmp_path / "gemini-home"
    home.mkdir()
    return home


@pytest.fixture
def gemini_settings(gemini_home: Path) -> dict[str, Any]:
    return {
        "command": fake_cli("gemini"),
        "env": {"HOME": str(gemini_home), "GEMINI_API_KEY": "test-key"},
    }


@pytest.fixture
def jp_server_config(
    jp_server_config: dict[str, Any], gemini_settings: dict[str, Any]
) -> dict[str, Any]:
    return {**jp_server_config, "GeminiProvider": gemini_settings}


@pytest.mark.usefixtures("notebook_dir")
class TestWithTheFakeCli:
    async def test_reply_then_resume(
        self, jp_fetch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        argv_file = tmp_path / "argv.json"
        monkeypatch.setenv("FAKE_GEMINI_ARGV_FILE", str(argv_file))
        session = await create_session(jp_fetch, provider="gemini")
        first = await run_turn(jp_fetch, session["id"], "Say hi")
        assert types(first)[-1] == "done", first[-1]
        assert text_of(first) == "Fake Gemini reply. You said: Say hi"
        sid = first[-1]["data"]["provider_session_id"]
        assert "<notebook_context>" in json.loads(argv_file.read_text())["stdin"]
        second = await run_turn(jp_fetch, session["id"], "Again")
        assert text_of(second) == f"Fake Gemini reply. You said: Again [resumed:{sid}]"
        argv = json.loads(argv_file.read_text())["argv"]
        assert argv[argv.index("--resume") + 1] == sid

    async def test_a_tool_call(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch, provider="gemini")
        stream = await run_turn(jp_fetch, session["id"], "scenario:tool")
        assert types(stream)[-1] == "done", stream[-1]
        use = next(e["data"] for e in stream if e["event"] == "tool_use")
        assert use["name"] == "list_directory"
        assert "sales.csv" in text_of(stream)  # listed in the notebook's folder
        stored = json_of(await api(jp_fetch, "sessions", session["id"]))
        assert stored["messages"][-1]["tools"][0]["name"] == "list_directory"

    async def test_a_lost_session_starts_a_new_one(
        self, jp_fetch: Any, gemini_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        argv_file = tmp_path / "argv.json"
        monkeypatch.setenv("FAKE_GEMINI_ARGV_FILE", str(argv_file))
        session = await create_session(jp_fetch, provider="gemini")
        first = await run_turn(jp_fetch, session["id"], "one")
        sid = first[-1]["data"]["provider_session_id"]
        (gemini_home / ".gemini" / "tmp" / "fake-sessions" / "analysis" / sid).unlink()
        # Known only from the exit code (42) and stderr: the runner runs the turn again.
        second = await run_turn(jp_fetch, session["id"], "two")
        assert types(second)[-1] == "done", second[-1]
        notices = [e["data"]["message"] for e in second if e["event"] == "notice"]
        assert any("could not be resumed" in n for n in notices), notices
        assert "--resume" not in json.loads(argv_file.read_text())["argv"]
        assert second[-1]["data"]["provider_session_id"] != sid

    async def test_cancel_stops_gemini_and_its_shell(
        self, jp_fetch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pid_file = tmp_path / "pids.json"
        monkeypatch.setenv("FAKE_PID_FILE", str(pid_file))
        session = await create_session(jp_fetch, provider="gemini")
        await post_message(jp_fetch, session["id"], "scenario:hang")
        await wait_until(pid_file.exists, message="the fake never wrote its pids")
        pids = json.loads(pid_file.read_text())
        assert pids_alive(pids) == pids
        response = await api(
            jp_fetch, "sessions", session["id"], "cancel", method="POST", body="{}"
        )
        assert json_of(response) == {"cancelled": True}
        assert pids_alive(pids) == []  # the shell too, though it runs in a session of its own
        stream = await events(jp_fetch, session["id"])
        assert types(stream)[-1] == "cancelled"

    async def test_a_crash_reports_the_stderr_tail(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch, provider="gemini")
        stream = await run_turn(jp_fetch, session["id"], "scenario:crash")
        error = stream[-1]["data"]
        assert error["code"] == "provider_failed"
        assert "exited with code 134" in error["message"]
        assert "heap out of memory" in error["message"]

    async def test_a_refused_key_is_not_authenticated(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch, provider="gemini")
        stream = await run_turn(jp_fetch, session["id"], "scenario:api_error")
        assert stream[-1]["data"]["code"] == "not_authenticated"


@pytest.mark.usefixtures("notebook_dir")
class TestFakeCliNotLoggedIn:
    @pytest.fixture
    def gemini_settings(self, gemini_home: Path) -> dict[str, Any]:
        return {"command": fake_cli("gemini"), "env": {"HOME": str(gemini_home)}}

    async def test_exit_41_becomes_not_authenticated(
        self, jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in GOOGLE_ENV:
            monkeypatch.delenv(name, raising=False)
        session = await create_session(jp_fetch, provider="gemini")
        stream = await run_turn(jp_fetch, session["id"], "hello")
        assert stream[-1]["data"]["code"] == "not_authenticated"
        assert "GEMINI_API_KEY" in stream[-1]["data"]["message"]


# -- the REAL gemini ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def standin() -> Iterator[GeminiStandIn]:
    with GeminiStandIn() as server:
        yield server


@pytest.mark.usefixtures("notebook_dir")
class TestRealGeminiNotLoggedIn:
    @pytest.fixture
    def gemini_settings(self, gemini_home: Path) -> dict[str, Any]:
        return {"command": [find_real("gemini")], "env": {"HOME": str(gemini_home)}}

    async def test_not_authenticated_with_the_fix(
        self, jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in GOOGLE_ENV:
            monkeypatch.delenv(name, raising=False)
        providers = json_of(await api(jp_fetch, "providers"))["providers"]
        (gemini,) = [p for p in providers if p["name"] == "gemini"]
        assert gemini["available"] is True
        assert gemini["version"][0].isdigit()
        assert gemini["credentials"] == "missing"
        session = await create_session(jp_fetch, provider="gemini")
        stream = await run_turn(jp_fetch, session["id"], "hello")
        assert types(stream) == ["turn_started", "error"]
        assert stream[-1]["data"]["code"] == "not_authenticated"
        assert "GEMINI_API_KEY" in stream[-1]["data"]["message"]


def standin_settings(
    gemini_home: Path, tmp_path: Path, standin: GeminiStandIn, approval_mode: str = "auto_edit"
) -> dict[str, Any]:
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return {
        "command": [find_real("gemini")],
        "model": "gemini-2.5-pro",  # a set model skips gemini's model router
        "approval_mode": approval_mode,
        "env": {
            "HOME": str(gemini_home_for_standin(gemini_home)),
            "GEMINI_API_KEY": "test-key",
            "GOOGLE_GEMINI_BASE_URL": standin.base_url,
            "TMPDIR": str(tmp_path / "tmp"),
        },
    }


@pytest.mark.usefixtures("notebook_dir")
class TestRealGeminiAgainstTheStandIn:
    @pytest.fixture
    def gemini_settings(
        self, gemini_home: Path, tmp_path: Path, standin: GeminiStandIn
    ) -> dict[str, Any]:
        return standin_settings(gemini_home, tmp_path, standin)

    async def test_reply_resume_and_a_file_edit(
        self, jp_fetch: Any, jp_root_dir: Path, standin: GeminiStandIn
    ) -> None:
        session = await create_session(jp_fetch, provider="gemini")
        first = await run_turn(jp_fetch, session["id"], "Say hi please")
        assert types(first)[-1] == "done", first[-1]
        assert text_of(first) == "Hello from the stand-in. You said: Say hi please"
        sid = first[-1]["data"]["provider_session_id"]
        assert "analysis/q3.ipynb" in json.dumps(standin.generate_bodies[-1]["contents"])

        second = await run_turn(jp_fetch, session["id"], "RUN_WRITE please")
        assert types(second)[-1] == "done", second[-1]
        assert second[-1]["data"]["provider_session_id"] == sid
        use = next(e["data"] for e in second if e["event"] == "tool_use")
        assert use["name"] == "write_file"
        assert (jp_root_dir / "analysis" / "standin_written.txt").read_text() == (
            "written by the stand-in\n"
        )
        # Resumed: the model saw the first exchange.
        assert "Say hi please" in json.dumps(standin.generate_bodies[-1]["contents"])


@pytest.mark.usefixtures("notebook_dir")
class TestRealGeminiYolo:
    @pytest.fixture
    def gemini_settings(
        self, gemini_home: Path, tmp_path: Path, standin: GeminiStandIn
    ) -> dict[str, Any]:
        # yolo offers the shell tool; gemini runs it in a session of its own.
        return standin_settings(gemini_home, tmp_path, standin, approval_mode="yolo")

    async def test_cancel_stops_a_running_shell_command(self, jp_fetch: Any) -> None:
        session = await create_session(jp_fetch, provider="gemini")
        await post_message(jp_fetch, session["id"], "RUN_BASH: sleep 2918")
        sleepers: list[psutil.Process] = []

        def sleeping() -> bool:
            sleepers[:] = [
                p
                for p in psutil.process_iter(["cmdline"])
                if p.info["cmdline"] == ["sleep", "2918"]
            ]
            return bool(sleepers)

        await wait_until(sleeping, timeout=60, message="gemini never ran the command")
        tree = [p.pid for p in sleepers]
        for parent in sleepers[0].parents():
            if parent.pid == os.getpid():
                break
            tree.append(parent.pid)
        response = await api(
            jp_fetch, "sessions", session["id"], "cancel", method="POST", body="{}"
        )
        assert json_of(response) == {"cancelled": True}
        assert pids_alive(tree) == []
        stream = await events(jp_fetch, session["id"])
        assert types(stream)[-1] == "cancelled"
