"""Where the tests find the REAL agent CLIs (installed from the npm registry by scripts/test.sh
into .cache/npm), and the settings that point them at the local API stand-ins.

A missing CLI fails the test with the command that installs it: the real-CLI tests never skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NPM_PACKAGES = {
    "codex": "@openai/codex",
    "gemini": "@google/gemini-cli",
    "claude-agent-acp": "@agentclientprotocol/claude-agent-acp",
    "codex-acp": "@zed-industries/codex-acp",
}


# Installed in a prefix of their own by scripts/test.sh (the default: .cache/npm).
NPM_PREFIXES = {"claude-agent-acp": "npm-acp", "codex-acp": "npm-acp"}


def find_real(name: str) -> str:
    """The real ``name`` CLI: $JUPYTER_ASSISTANT_REAL_<NAME> (dashes as underscores), its
    prefix in .cache (.cache/npm), then PATH."""
    prefix = NPM_PREFIXES.get(name, "npm")
    candidates = [
        os.environ.get(f"JUPYTER_ASSISTANT_REAL_{name.upper().replace('-', '_')}", ""),
        str(REPO / ".cache" / prefix / "node_modules" / ".bin" / name),
        shutil.which(name) or "",
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        f"The real {name} CLI is needed: run scripts/test.sh (it installs it into .cache/npm) "
        f"or `npm install -g {NPM_PACKAGES.get(name, name)}`."
    )


def codex_standin_config(base_url: str, key_env: str = "STANDIN_API_KEY") -> dict[str, str]:
    """CodexProvider.config_overrides that send codex's model requests to the stand-in.

    codex 0.171.0 ignores OPENAI_BASE_URL; a custom model provider with a base_url works."""
    provider = (
        f'{{name="standin",base_url="{base_url}/v1",env_key="{key_env}",wire_api="responses",'
        "request_max_retries=0,stream_max_retries=0}"
    )
    return {"model_provider": '"standin"', "model_providers.standin": provider}


def gemini_home_for_standin(home: Path) -> Path:
    """A HOME whose ~/.gemini/settings.json selects API-key auth, so that gemini 0.61.0 accepts
    GOOGLE_GEMINI_BASE_URL (without it, a base URL selects the "gateway" auth type, which the
    CLI then refuses: "Invalid auth method selected.")."""
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(
        '{"security": {"auth": {"selectedType": "gemini-api-key"}}}'
    )
    return home
