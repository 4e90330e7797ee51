"""The notebook tools for Codex, Gemini CLI and ACP agents: each launch carries the `notebook` MCP
server with the turn's capability, never on the command line; with the fakes through the real
server the capability they were given opens the endpoint; and the REAL codex, gemini and
`gemini --acp` (against the local API stand-ins) connect to it, are offered its tools and call
them, each call approved by the server."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_assistant.providers.acp import AcpProvider
from jupyter_assistant.providers.acp_client import AcpClient
from jupyter_assistant.providers.base import NotebookToolsAccess, TurnRequest
from jupyter_assistant.providers.codex import CAPABILITY_ENV, CodexProvider
from jupyter_assistant.providers.gemini import GeminiProvider

from .conftest import fake_cli
from .fakes.gemini_standin import GeminiStandIn
from .fakes.openai_standin import OpenAIStandIn
from .fakes.real_clis import codex_standin_config, find_real, gemini_home_for_standin
from .helpers import (
    answer_permission,
    api,
    create_session,
    permission_asked,
    post_message,
    run_turn,
    text_of,
    turn_ended,
    types,
    wait_until,
)
from .test_notebook_tools_security import mcp_call

FAKES = Path(__file__).parent / "fakes"
CAPABILITY = "cap-0123456789abcdef"
TOOLS = {"read_notebook", "insert_cell", "edit_cell", "delete_cell", "run_cell", "kernel_variables"}


def access() -> NotebookToolsAccess:
    return NotebookToolsAccess(
        "notebook", "http://127.0.0.1:8888/api/assistant/mcp", "x-assistant-capability", CAPABILITY
    )


def request(tmp_path: Path) -> TurnRequest:
    (tmp_path / "work").mkdir(exist_ok=True)
    return TurnRequest(
        session_id="s",
        turn_id="t",
        prompt="hello",
        working_dir=str(tmp_path / "work"),
        notebook_path="analysis/q3.ipynb",
        scratch_dir=str(tmp_path / "private"),
        notebook_tools=access(),
    )


def on_argv(argv: list[str]) -> bool:
    return any(CAPABILITY in arg for arg in argv)


def write_notebook(root: Path, source: str = "total = 41 + 1") -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, id="first-cell")]
    nbformat.write(nb, root / "analysis" / "q3.ipynb")


def cells(root: Path) -> list[Any]:
    return list(nbformat.read(root / "analysis" / "q3.ipynb", as_version=4).cells)


# -- the launches --------------------------------------------------------------------------------


def test_codex_reads_the_capability_from_its_environment(tmp_path: Path) -> None:
    provider = CodexProvider(command=[str(FAKES / "codex")])
    env = {"PATH": str(FAKES), "HOME": str(tmp_path), "CODEX_API_KEY": "k"}
    spec = provider.build_launch(request(tmp_path), env)
    assert not on_argv(spec.argv)
    assert spec.env[CAPABILITY_ENV] == CAPABILITY
    overrides = [spec.argv[i + 1] for i, arg in enumerate(spec.argv) if arg == "-c"]
    assert 'mcp_servers.notebook.url="http://127.0.0.1:8888/api/assistant/mcp"' in overrides
    assert (
        f'mcp_servers.notebook.env_http_headers={{"x-assistant-capability"="{CAPABILITY_ENV}"}}'
        in overrides
    )
    # codex exec refuses the calls it would ask about; the server asks the user itself.
    assert 'mcp_servers.notebook.default_tools_approval_mode="approve"' in overrides
    assert "mcp_servers.notebook.required=true" in overrides  # its tools in the first request
    without = provider.build_launch(TurnRequest("s", "t", "hello", str(tmp_path), "q3.ipynb"), env)
    assert CAPABILITY_ENV not in without.env
    assert not any(arg.startswith("mcp_servers.") for arg in without.argv)


def test_gemini_gets_a_private_home_with_the_users_settings_and_the_server(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    (home / ".gemini" / "tmp").mkdir(parents=True)
    user_settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "mcpServers": {"mine": {"command": "my-server"}},
    }
    (home / ".gemini" / "settings.json").write_text(json.dumps(user_settings))
    (home / ".gemini" / "oauth_creds.json").write_text("{}")
    provider = GeminiProvider(command=[str(FAKES / "gemini")])
    turn = request(tmp_path)
    spec = provider.build_launch(turn, {"PATH": str(FAKES), "HOME": str(home)})
    assert not on_argv(spec.argv)
    assert CAPABILITY not in json.dumps(spec.env)
    private = Path(spec.env["GEMINI_CLI_HOME"]) / ".gemini"
    assert private.parent.parent == tmp_path / "private"
    settings_file = private / "settings.json"
    assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600
    settings = json.loads(settings_file.read_text())
    assert settings["security"] == user_settings["security"]
    assert settings["mcpServers"]["mine"] == {"command": "my-server"}
    assert settings["mcpServers"]["notebook"] == {
        "httpUrl": "http://127.0.0.1:8888/api/assistant/mcp",
        "headers": {"x-assistant-capability": CAPABILITY},
        "trust": True,
        "timeout": 3_600_000,
    }
    # The user's own files are the ones gemini uses (logins, sessions); theirs stay as they were.
    assert (private / "oauth_creds.json").resolve() == home / ".gemini" / "oauth_creds.json"
    assert (private / "tmp").resolve() == home / ".gemini" / "tmp"
    assert json.loads((home / ".gemini" / "settings.json").read_text()) == user_settings
    assert list(Path(turn.working_dir).iterdir()) == []  # nothing in the notebook's folder
    assert str(settings_file) in spec.cleanup


def test_gemini_goes_without_the_tools_when_the_users_settings_are_unreadable(
    tmp_path: Path,
) -> None:
    (tmp_path / "home" / ".gemini").mkdir(parents=True)
    (tmp_path / "home" / ".gemini" / "settings.json").write_text("{ // a comment\n}")
    provider = GeminiProvider(command=[str(FAKES / "gemini")])
    spec = provider.build_launch(
        request(tmp_path), {"PATH": str(FAKES), "HOME": str(tmp_path / "home")}
    )
    assert "GEMINI_CLI_HOME" not in spec.env


class RecordingIO:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.sent += [json.loads(line) for line in data.splitlines()]

    def close(self) -> None:
        return None


def new_session_params(tmp_path: Path, capabilities: dict[str, Any]) -> dict[str, Any]:
    client = AcpClient(request(tmp_path))
    io = RecordingIO()
    client.start(io)
    answer = {"protocolVersion": 1, "agentCapabilities": capabilities}
    client.feed(json.dumps({"jsonrpc": "2.0", "id": 1, "result": answer}).encode())
    (new,) = [m for m in io.sent if m.get("method") == "session/new"]
    return new["params"]  # type: ignore[no-any-return]


def test_acp_sends_the_server_to_agents_that_take_http_servers(tmp_path: Path) -> None:
    params = new_session_params(tmp_path, {"mcpCapabilities": {"http": True}})
    assert params["mcpServers"] == [
        {
            "type": "http",
            "name": "notebook",
            "url": "http://127.0.0.1:8888/api/assistant/mcp",
            "headers": [{"name": "x-assistant-capability", "value": CAPABILITY}],
        }
    ]
    assert (
        new_session_params(tmp_path, {"mcpCapabilities": {"http": False, "sse": True}})[
            "mcpServers"
        ]
        == []
    )
    assert new_session_params(tmp_path, {})["mcpServers"] == []


def test_cell_edits_follow_each_providers_edit_setting() -> None:
    assert CodexProvider().notebook_edits() == "allow"
    assert CodexProvider(sandbox="read-only").notebook_edits() == "deny"
    assert GeminiProvider().notebook_edits() == "allow"  # auto_edit
    assert GeminiProvider(approval_mode="default").notebook_edits() == "ask"
    assert GeminiProvider(approval_mode="plan").notebook_edits() == "deny"
    assert AcpProvider().notebook_edits() == "allow"  # workdir: edits inside the folder
    assert AcpProvider(permission_policy="reject").notebook_edits() == "deny"
    for provider in (CodexProvider, GeminiProvider, AcpProvider):
        assert provider.supports_notebook_tools


# -- the fakes through the real server: the capability given opens the endpoint --------------


async def list_tools(server: dict[str, Any]) -> set[str]:
    code, body = await mcp_call(server["url"], server["headers"], "tools/list", {})
    assert code == 200, body
    return {tool["name"] for tool in body["result"]["tools"]}


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "codex-home").mkdir()
    (tmp_path / "gemini-home").mkdir()
    return {
        **jp_server_config,
        "CodexProvider": {
            "command": fake_cli("codex"),
            "env": {"CODEX_HOME": str(tmp_path / "codex-home"), "CODEX_API_KEY": "k"},
        },
        "GeminiProvider": {
            "command": fake_cli("gemini"),
            "env": {"HOME": str(tmp_path / "gemini-home"), "GEMINI_API_KEY": "k"},
        },
        "AcpProvider": {
            "command": fake_cli("acp_agent"),
            "env": {"FAKE_ACP_STORE": str(tmp_path / "acp-sessions")},
        },
    }


@pytest.mark.usefixtures("notebook_dir")
class TestWithTheFakes:
    @pytest.mark.parametrize("cli", ["codex", "gemini"])
    async def test_the_server_given_is_reachable_with_its_capability(
        self, jp_fetch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: str
    ) -> None:
        argv_file = tmp_path / "argv.json"
        monkeypatch.setenv(f"FAKE_{cli.upper()}_ARGV_FILE", str(argv_file))
        session = await create_session(jp_fetch, provider=cli)
        await post_message(jp_fetch, session["id"], "scenario:hang")
        await wait_until(argv_file.exists, message=f"the fake {cli} did not start")
        launched = json.loads(argv_file.read_text())
        assert not on_argv(launched["argv"])
        server = launched["mcp_servers"]["notebook"]
        headers = server["http_headers"] if cli == "codex" else server["headers"]
        capability = headers["x-assistant-capability"]
        assert capability and not any(capability in arg for arg in launched["argv"])
        url = server["url"] if cli == "codex" else server["httpUrl"]
        assert url.endswith("/api/assistant/mcp")
        assert await list_tools({"url": url, "headers": headers}) == TOOLS
        await api(jp_fetch, "sessions", session["id"], "cancel", method="POST", body="{}")

    async def test_an_acp_agent_reads_the_notebook_through_its_server(
        self, jp_fetch: Any, jp_root_dir: Path
    ) -> None:
        write_notebook(jp_root_dir)
        session = await create_session(jp_fetch, provider="acp")
        stream = await run_turn(jp_fetch, session["id"], "scenario:notebook_tool")
        assert types(stream)[-1] == "done", stream[-1]
        # The agent's own question was answered by the client; reading asks nobody.
        assert "permission_request" not in types(stream)
        assert "permission_denied" not in types(stream)
        text = text_of(stream)
        assert text.startswith("I will read the notebook.Notebook tool result: ")
        result = json.loads(text.split("Notebook tool result: ", 1)[1])
        assert result["cells"][0]["source"] == "total = 41 + 1"

    async def test_an_acp_agent_without_http_servers_goes_without(
        self, jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("FAKE_ACP_NO_MCP_HTTP", "1")
        session = await create_session(jp_fetch, provider="acp")
        stream = await run_turn(jp_fetch, session["id"], "scenario:notebook_tool")
        assert types(stream)[-1] == "done", stream[-1]
        assert text_of(stream) == "No notebook MCP server was given."


# -- the REAL CLIs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openai() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def gemini_api() -> Iterator[GeminiStandIn]:
    with GeminiStandIn() as server:
        yield server


def tool_call(name: str, **arguments: Any) -> str:
    return f"RUN_TOOL: {name} {json.dumps(arguments)}"


async def an_insert(
    jp_fetch: Any, live_events: Any, jp_root_dir: Path, provider: str, asked: bool
) -> list[dict[str, Any]]:
    """An insert_cell call lands in the file, marked; ``asked``: the provider's edit setting
    says ask, so the server asks first (and the user allows)."""
    session = await create_session(jp_fetch, provider=provider)
    sid = session["id"]
    turn_id = await post_message(jp_fetch, sid, tool_call("insert_cell", source="y = 2"))
    reader = live_events(sid)
    if asked:
        request = await permission_asked(reader)
        assert request["input"]["source"] == "y = 2"
        assert len(cells(jp_root_dir)) == 1  # nothing before the answer
        response = await answer_permission(jp_fetch, sid, request["request_id"], decision="allow")
        assert response.code == 200, response.body
    stream = await turn_ended(reader)
    assert types(stream)[-1] == "done", stream[-1]
    assert ("permission_request" in types(stream)) is asked
    added = cells(jp_root_dir)[-1]
    assert added.source == "y = 2", text_of(stream)
    assert added.metadata["jupyter_assistant"] == {"session_id": sid, "turn_id": turn_id}
    return stream


@pytest.mark.usefixtures("notebook_dir")
class TestRealCodex:
    @pytest.fixture
    def jp_server_config(
        self, jp_server_config: dict[str, Any], tmp_path: Path, openai: OpenAIStandIn
    ) -> dict[str, Any]:
        (tmp_path / "tmp").mkdir()
        codex = {
            "command": [find_real("codex")],
            "model": "gpt-5-codex",  # plain function tools, not code mode
            "config_overrides": codex_standin_config(openai.base_url),
            "env": {
                "CODEX_HOME": str(tmp_path / "codex-home"),
                "STANDIN_API_KEY": "k",
                "TMPDIR": str(tmp_path / "tmp"),
            },
        }
        return {**jp_server_config, "CodexProvider": codex}

    async def test_codex_is_offered_the_tools_and_reads_the_notebook(
        self, jp_fetch: Any, jp_root_dir: Path, openai: OpenAIStandIn
    ) -> None:
        write_notebook(jp_root_dir)
        session = await create_session(jp_fetch, provider="codex")
        stream = await run_turn(jp_fetch, session["id"], tool_call("read_notebook"))
        assert types(stream)[-1] == "done", stream[-1]
        body = openai.response_bodies[-2]  # the request that made the call
        (namespace,) = [t for t in body["tools"] if t.get("name") == "mcp__notebook"]
        assert {tool["name"] for tool in namespace["tools"]} == TOOLS
        result = next(e["data"] for e in stream if e["event"] == "tool_result")
        assert not result["is_error"], result
        assert json.loads(result["content"])["cells"][0]["id"] == "first-cell"
        assert "permission_request" not in types(stream)

    async def test_an_insert_runs_as_codexs_own_edits_do(
        self, jp_fetch: Any, live_events: Any, jp_root_dir: Path
    ) -> None:
        # workspace-write: codex edits files in the folder without asking; cells follow.
        write_notebook(jp_root_dir)
        stream = await an_insert(jp_fetch, live_events, jp_root_dir, "codex", asked=False)
        assert "The notebook tool result is: " in text_of(stream)


@pytest.mark.usefixtures("notebook_dir")
class TestRealGemini:
    @pytest.fixture
    def jp_server_config(
        self, jp_server_config: dict[str, Any], tmp_path: Path, gemini_api: GeminiStandIn
    ) -> dict[str, Any]:
        (tmp_path / "tmp").mkdir()
        gemini = {
            "command": [find_real("gemini")],
            "model": "gemini-2.5-pro",
            "approval_mode": "default",  # edits asked: the server asks about cell edits
            "env": {
                "HOME": str(gemini_home_for_standin(tmp_path / "gemini-home")),
                "GEMINI_API_KEY": "k",
                "GOOGLE_GEMINI_BASE_URL": gemini_api.base_url,
                "TMPDIR": str(tmp_path / "tmp"),
            },
        }
        return {**jp_server_config, "GeminiProvider": gemini}

    async def test_gemini_is_offered_the_tools_and_reads_the_notebook(
        self, jp_fetch: Any, jp_root_dir: Path, gemini_api: GeminiStandIn, tmp_path: Path
    ) -> None:
        write_notebook(jp_root_dir)
        session = await create_session(jp_fetch, provider="gemini")
        stream = await run_turn(jp_fetch, session["id"], tool_call("read_notebook"))
        assert types(stream)[-1] == "done", stream[-1]
        body = gemini_api.generate_bodies[-2]
        offered = {f["name"] for t in body["tools"] for f in t.get("functionDeclarations", [])}
        assert {f"mcp_notebook_{name}" for name in TOOLS} <= offered
        result = next(e["data"] for e in stream if e["event"] == "tool_result")
        assert not result["is_error"], result
        assert json.loads(result["content"])["cells"][0]["id"] == "first-cell"
        # The user's settings file is as it was; the notebook's folder holds no .gemini.
        settings = tmp_path / "gemini-home" / ".gemini" / "settings.json"
        assert "notebook" not in settings.read_text()
        assert not (jp_root_dir / "analysis" / ".gemini").exists()

    async def test_an_insert_waits_for_the_users_answer(
        self, jp_fetch: Any, live_events: Any, jp_root_dir: Path
    ) -> None:
        write_notebook(jp_root_dir)
        stream = await an_insert(jp_fetch, live_events, jp_root_dir, "gemini", asked=True)
        assert "The tool result is: " in text_of(stream)


@pytest.mark.usefixtures("notebook_dir")
class TestRealGeminiAcp:
    @pytest.fixture
    def jp_server_config(
        self, jp_server_config: dict[str, Any], tmp_path: Path, gemini_api: GeminiStandIn
    ) -> dict[str, Any]:
        (tmp_path / "tmp").mkdir()
        acp = {
            "command": [find_real("gemini"), "--acp", "--skip-trust", "-m", "gemini-2.5-pro"],
            "env": {
                "HOME": str(gemini_home_for_standin(tmp_path / "gemini-home")),
                "GEMINI_API_KEY": "k",
                "GOOGLE_GEMINI_BASE_URL": gemini_api.base_url,
                "TMPDIR": str(tmp_path / "tmp"),
            },
        }
        return {**jp_server_config, "AcpProvider": acp}

    async def test_gemini_acp_reads_the_notebook_and_inserts_a_cell(
        self, jp_fetch: Any, live_events: Any, jp_root_dir: Path, gemini_api: GeminiStandIn
    ) -> None:
        write_notebook(jp_root_dir)
        session = await create_session(jp_fetch, provider="acp")
        stream = await run_turn(jp_fetch, session["id"], tool_call("read_notebook"))
        assert types(stream)[-1] == "done", stream[-1]
        body = gemini_api.generate_bodies[-2]
        offered = {f["name"] for t in body["tools"] for f in t.get("functionDeclarations", [])}
        assert {f"mcp_notebook_{name}" for name in TOOLS} <= offered
        assert "first-cell" in text_of(stream)
        assert "permission_denied" not in types(stream)
        # permission_policy workdir: edits inside the folder run without asking; cells follow.
        await an_insert(jp_fetch, live_events, jp_root_dir, "acp", asked=False)
