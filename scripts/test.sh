#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then lint, type-check and test.
#   - a virtualenv in .venv with the package and its test extras (a real `pip install .`)
#   - the real Claude Code, Codex and Gemini CLIs from the npm registry, in .cache/npm, and the ACP
#     adapters claude-agent-acp and codex-acp in .cache/npm-acp (used by the end-to-end tests)
#   - Debian's chromium (as root, if missing) for the sidebar's browser tests in tests/browser
# Extra arguments go to pytest, e.g. scripts/test.sh -k store -x
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet ".[test]"

CLAUDE_PKG="@anthropic-ai/claude-code"
if [ ! -x .cache/npm/node_modules/.bin/claude ]; then
  mkdir -p .cache/npm
  npm install --prefix .cache/npm --no-audit --no-fund --loglevel=error "$CLAUDE_PKG"
fi
export JUPYTER_ASSISTANT_REAL_CLAUDE="$PWD/.cache/npm/node_modules/.bin/claude"
# JupyterHub's proxy, for tests/hub (a real hub with two users).
if [ ! -x .cache/npm/node_modules/.bin/configurable-http-proxy ]; then
  npm install --prefix .cache/npm --no-audit --no-fund --loglevel=error configurable-http-proxy@5
fi
# Codex and Gemini CLI, at the versions tests/fakes/wire-samples were captured with.
[ -x .cache/npm/node_modules/.bin/codex ] && [ -x .cache/npm/node_modules/.bin/gemini ] || npm install --prefix .cache/npm --no-audit --no-fund --loglevel=error @openai/codex@0.171.0 @google/gemini-cli@0.61.0
export JUPYTER_ASSISTANT_REAL_CODEX="$PWD/.cache/npm/node_modules/.bin/codex" JUPYTER_ASSISTANT_REAL_GEMINI="$PWD/.cache/npm/node_modules/.bin/gemini"
# The ACP adapters of Claude Code and Codex, at the versions of wire-samples/acp/claude_agent_*.jsonl
# and codex_acp_*.jsonl, in a prefix of their own (each brings its own agent: the Claude Agent
# SDK's Claude Code, codex-acp's Codex).
[ -x .cache/npm-acp/node_modules/.bin/claude-agent-acp ] && [ -x .cache/npm-acp/node_modules/.bin/codex-acp ] || npm install --prefix .cache/npm-acp --no-audit --no-fund --loglevel=error @agentclientprotocol/claude-agent-acp@0.101.0 @zed-industries/codex-acp@0.16.0
export JUPYTER_ASSISTANT_REAL_CLAUDE_AGENT_ACP="$PWD/.cache/npm-acp/node_modules/.bin/claude-agent-acp" JUPYTER_ASSISTANT_REAL_CODEX_ACP="$PWD/.cache/npm-acp/node_modules/.bin/codex-acp"

# Playwright drives this browser; it downloads none of its own.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
VENV_BIN="$(cd "$VENV/bin" && pwd)"

# Only the project's own paths: notebooks or exports a user left in the checkout are not linted.
LINTED=(jupyter_assistant tests benchmarks)
echo "== ruff"; "$VENV/bin/ruff" check "${LINTED[@]}" && "$VENV/bin/ruff" format --check "${LINTED[@]}"
echo "== mypy"; "$VENV/bin/mypy"
echo "== labextension: prettier, jest"
(cd labextension && export PATH="$VENV_BIN:$PATH" && jlpm install --immutable >/dev/null \
  && jlpm prettier:check && jlpm test --ci)
# The slowest tests are listed at the end: where CI time goes.
echo "== pytest"; "$VENV/bin/python" -m pytest -p no:cacheprovider --durations=40 "$@"
