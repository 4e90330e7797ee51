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

# The other Pythons the package supports: the unit and server tests (the engine, the store, the
# HTTP API, the providers' parsers and command lines, processes and stopping) on each, in a
# virtualenv of its own. OTHER_PYTHONS="" leaves them out; a version this machine lacks (neither
# `pythonX.Y` nor pyenv's) is said and left out.
OTHER_PYTHON_TESTS=(
  tests/test_api.py tests/test_rest_api_spec.py tests/test_auth.py tests/test_security.py
  tests/test_store.py tests/test_store_edit.py tests/test_store_listing.py tests/test_migrations.py
  tests/test_events.py tests/test_journal.py tests/test_traits.py tests/test_workdir.py
  tests/test_claude_parser.py tests/test_claude_control.py tests/test_provider_plugins.py
  tests/test_processes.py tests/test_stopping.py tests/test_permissions.py tests/test_checkpoints.py
)
find_python() {
  local found
  found="$(command -v "python$1" 2>/dev/null)" && "$found" --version >/dev/null 2>&1 && { echo "$found"; return; }
  command -v pyenv >/dev/null || return 1
  found="$(ls -d "$(pyenv root)/versions/$1".*/bin/"python$1" 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$found" ] && echo "$found"
}
if [ $# -eq 0 ]; then
  for version in ${OTHER_PYTHONS-3.12 3.13}; do
    if ! other="$(find_python "$version")"; then
      echo "== Python $version: not on this machine, its tests left out"
      continue
    fi
    other_venv=".venv-$version"
    [ -x "$other_venv/bin/python" ] || "$other" -m venv "$other_venv"
    "$other_venv/bin/python" -m pip install --quiet --upgrade pip
    "$other_venv/bin/python" -m pip install --quiet ".[test]"
    echo "== pytest on $("$other_venv/bin/python" --version) (unit and server tests)"
    "$other_venv/bin/python" -m pytest -p no:cacheprovider -q "${OTHER_PYTHON_TESTS[@]}"
  done
fi
