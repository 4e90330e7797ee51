"""Providers are plugins: the entry point group `jupyter_assistant.providers` (the built-in four and
any installed package), `GET providers` over all of them, and the example provider of
docs/providers.md, installed as a real distribution and run through the HTTP API."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from jupyter_assistant.providers import ENTRY_POINT_GROUP, discover_provider_classes
from jupyter_assistant.providers.acp import AcpProvider
from jupyter_assistant.providers.claude_code import ClaudeCodeProvider
from jupyter_assistant.providers.codex import CodexProvider
from jupyter_assistant.providers.gemini import GeminiProvider

from .conftest import fake_cli
from .helpers import api, create_session, json_of, run_turn, text_of, types

REPO = Path(__file__).parent.parent
FAKES = Path(__file__).parent / "fakes"
DOC = REPO / "docs" / "providers.md"

FAKE_MYCLI = """#!/usr/bin/env python3
import json, sys
if "--version" in sys.argv:
    print("mycli 3.1.4")
    sys.exit(0)
prompt = sys.stdin.read()
if "crash" in prompt:
    sys.stderr.write("mycli: out of cheese\\n")
    sys.exit(2)
resumed = sys.argv[sys.argv.index("--resume") + 1] if "--resume" in sys.argv else None
print(json.dumps({"text": f"mycli says: {prompt}"}))
if resumed:
    print(json.dumps({"text": f" (resumed {resumed})"}))
print("a log line, not protocol")
print(json.dumps({"done": "conversation-1"}))
"""


def doc_setup_steps() -> str:
    """The lines docs/providers.md adds to the example for the onboarding card."""
    section = DOC.read_text().split("## Write your own provider", 1)[1]
    match = re.search(r"```python\n(MyCliProvider\.install_step.*?)```", section, re.S)
    assert match, "docs/providers.md lost the example's set-up steps"
    return match.group(1)


def doc_example() -> str:
    """The provider code block of the "Write your own provider" section."""
    section = DOC.read_text().split("## Write your own provider", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "docs/providers.md lost its example provider"
    return match.group(1)


def install_distribution(site: Path, module: str, code: str, entry_points: str) -> None:
    """A minimal installed distribution (module + dist-info), as pip would leave it."""
    (site / f"{module}.py").write_text(code)
    info = site / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry_points}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on sys.path, like a site-packages the plugins are installed into."""
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


@pytest.fixture
def mycli_plugin(site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    source = doc_example() + "\n" + doc_setup_steps()
    install_distribution(site, "mycli_assistant", source, "mycli = mycli_assistant:MyCliProvider")
    yield site
    sys.modules.pop("mycli_assistant", None)


def test_the_doc_example_is_under_50_lines() -> None:
    assert len(doc_example().splitlines()) < 50


def test_the_built_in_providers_are_entry_points() -> None:
    classes = discover_provider_classes()
    assert classes["claude"] is ClaudeCodeProvider
    assert classes["codex"] is CodexProvider
    assert classes["gemini"] is GeminiProvider
    assert classes["acp"] is AcpProvider


@pytest.mark.usefixtures("mycli_plugin")
def test_an_installed_plugin_is_discovered() -> None:
    classes = discover_provider_classes()
    assert classes["mycli"].__name__ == "MyCliProvider"
    assert classes["mycli"].__module__ == "mycli_assistant"
    assert {"claude", "codex", "gemini", "acp"} <= set(classes)


def test_a_broken_plugin_is_skipped(site: Path, assistant_logs: pytest.LogCaptureFixture) -> None:
    install_distribution(
        site,
        "broken_assistant",
        "raise ImportError('no such dependency')\n",
        "broken = broken_assistant:Provider",
    )
    install_distribution(
        site,
        "notaprovider_assistant",
        "class Thing: pass\n",
        "thing = notaprovider_assistant:Thing",
    )
    classes = discover_provider_classes()
    assert "broken" not in classes and "thing" not in classes
    assert "codex" in classes
    assert "no such dependency" in assistant_logs.text
    sys.modules.pop("notaprovider_assistant", None)


# -- through the server ---------------------------------------------------------------------------


@pytest.fixture
def mycli_command(tmp_path: Path) -> str:
    script = tmp_path / "bin" / "mycli"
    script.parent.mkdir()
    # Run by this interpreter (the doc's provider looks its CLI up by name, so no
    # conftest.fake_cli here): another python3 would get pytest-jupyter's PYTHONPATH.
    script.write_text(FAKE_MYCLI.replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1))
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def jp_server_config(
    jp_server_config: dict[str, Any], mycli_plugin: Path, mycli_command: str, tmp_path: Path
) -> dict[str, Any]:
    (tmp_path / "codex-home").mkdir()
    return {
        **jp_server_config,
        "MyCliProvider": {"command": mycli_command},
        "CodexProvider": {
            "command": fake_cli("codex"),
            "env": {"CODEX_HOME": str(tmp_path / "codex-home"), "CODEX_API_KEY": "k"},
        },
        "GeminiProvider": {"command": fake_cli("gemini"), "env": {"GEMINI_API_KEY": "k"}},
        "AcpProvider": {"command": fake_cli("acp_agent")},
    }


@pytest.mark.usefixtures("notebook_dir")
async def test_providers_lists_all_with_version_and_problem(jp_fetch: Any) -> None:
    body = json_of(await api(jp_fetch, "providers"))
    assert body["default"] == "claude"
    rows = {p["name"]: p for p in body["providers"]}
    assert sorted(rows) == ["acp", "claude", "codex", "gemini", "mycli"]
    versions = {name: row["version"] for name, row in rows.items()}
    assert versions == {
        "acp": "1.2.3",  # from the agent's initialize answer
        "claude": "2.1.197",
        "codex": "0.171.0",
        "gemini": "0.61.0",
        "mycli": "mycli 3.1.4",
    }
    for row in rows.values():
        assert row["available"] is True, row
        assert row["problem"] is None, row
    assert rows["acp"]["display_name"] == "Fake ACP Agent (ACP)"
    assert rows["codex"]["credentials"] == "present"
    assert rows["gemini"]["credentials"] == "present"


@pytest.mark.usefixtures("notebook_dir")
async def test_the_doc_example_runs_turns(jp_fetch: Any) -> None:
    session = await create_session(jp_fetch, provider="mycli")
    first = await run_turn(jp_fetch, session["id"], "hello")
    assert types(first) == ["turn_started", "text", "done"], first
    assert text_of(first) == "mycli says: hello"
    second = await run_turn(jp_fetch, session["id"], "again")
    assert text_of(second) == "mycli says: again (resumed conversation-1)"
    crashed = await run_turn(jp_fetch, session["id"], "crash")
    assert crashed[-1]["data"]["code"] == "provider_failed"
    assert "out of cheese" in crashed[-1]["data"]["message"]


class TestNothingInstalled:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
        missing = str(tmp_path / "nowhere")
        return {
            **jp_server_config,
            "ClaudeCodeProvider": {"command": [f"{missing}/claude"]},
            "CodexProvider": {"command": [f"{missing}/codex"]},
            "GeminiProvider": {"command": [f"{missing}/gemini"]},
            "AcpProvider": {"command": [f"{missing}/agent"]},
            "MyCliProvider": {"command": f"{missing}/mycli"},
        }

    async def test_each_problem_says_how_to_fix_it(self, jp_fetch: Any) -> None:
        rows = {p["name"]: p for p in json_of(await api(jp_fetch, "providers"))["providers"]}
        assert all(row["available"] is False for row in rows.values())
        assert "npm install -g @anthropic-ai/claude-code" in rows["claude"]["problem"]
        assert "npm install -g @openai/codex" in rows["codex"]["problem"]
        assert "npm install -g @google/gemini-cli" in rows["gemini"]["problem"]
        assert "c.AcpProvider.command" in rows["acp"]["problem"]
        assert "pip install mycli" in rows["mycli"]["problem"]
        # The onboarding card's steps, from each provider's install_step and login_step.
        setup = {name: row["setup"] for name, row in rows.items()}
        assert setup["claude"]["install"] == {
            "label": "Install",
            "command": "npm install -g @anthropic-ai/claude-code",
            "note": None,
        }
        assert setup["codex"]["login"]["command"] == "codex login"
        assert "/login" in setup["claude"]["login"]["note"]
        assert setup["acp"] == {"install": None, "login": None}  # its problem says how
        assert setup["mycli"]["install"]["command"] == "pip install mycli"
        assert setup["mycli"]["login"]["command"] == "mycli login"
