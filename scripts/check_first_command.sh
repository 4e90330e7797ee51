#!/usr/bin/env bash
# Runs the README's first command literally (its first ```sh block), as a new user would: in a
# fresh clone of this repository's HEAD, with a fresh HOME. Then checks that JupyterLab serves
# /lab with the assistant's extension and that api/assistant/providers answers, and stops the
# server and everything it started. Exit code 0 only if all of that worked.
#   JUPYTER_ASSISTANT_FIRST_COMMAND_TIMEOUT: seconds to wait for the server (default 900)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
first_command="$(awk '/^```sh$/ {block++; next} /^```$/ {if (block == 1) exit; next} block == 1' README.md)"
if [ -z "$first_command" ]; then
  echo "check_first_command: no first command in README.md (its first \`\`\`sh block)" >&2
  exit 1
fi

work="$(mktemp -d)"
home="$work/home"
mkdir "$home"
git clone --quiet "$repo" "$work/clone"
server_pid=""
stop() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM -- "-$server_pid" 2>/dev/null || true
    for _ in $(seq 1 30); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 1
    done
    kill -KILL -- "-$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop EXIT

echo "== README first command, in $work/clone with HOME=$home: $first_command"
# Its own session and process group, so that the server and all it started stop together.
(cd "$work/clone" && HOME="$home" exec setsid bash -euo pipefail -c "$first_command") \
  >"$work/first-command.log" 2>&1 </dev/null &
server_pid=$!

jupyter="$work/clone/.venv/bin/jupyter"
deadline=$((SECONDS + ${JUPYTER_ASSISTANT_FIRST_COMMAND_TIMEOUT:-900}))
info=""
while [ $SECONDS -lt $deadline ]; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "check_first_command: the first command ended before a server answered:" >&2
    tail -n 40 "$work/first-command.log" >&2
    exit 1
  fi
  if [ -x "$jupyter" ]; then
    info="$(HOME="$home" "$jupyter" server list --json 2>/dev/null | head -n 1 || true)"
    [ -n "$info" ] && break
  fi
  sleep 2
done
if [ -z "$info" ]; then
  echo "check_first_command: no server after the timeout:" >&2
  tail -n 40 "$work/first-command.log" >&2
  exit 1
fi
url="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["url"])' "$info")"
token="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["token"])' "$info")"
echo "== server at $url (install and start took ${SECONDS}s)"

ok=1
lab="$(curl -sf -H "Authorization: token $token" "${url}lab" || true)"
if grep -q '"jupyter-assistant"' <<<"$lab"; then
  echo "ok: /lab answers and loads the jupyter-assistant extension"
else
  echo "FAIL: /lab does not answer, or does not list the jupyter-assistant extension" >&2
  ok=0
fi
providers="$(curl -sf -H "Authorization: token $token" "${url}api/assistant/providers" || true)"
if python3 - "$providers" <<'EOF'
import json, sys
rows = {row["name"]: row for row in json.loads(sys.argv[1] or "{}").get("providers", [])}
claude = rows.get("claude", {})
print(f"  claude: available={claude.get('available')} version={claude.get('version')}")
sys.exit(0 if claude.get("available") else 1)
EOF
then
  echo "ok: api/assistant/providers answers, Claude Code available"
else
  echo "FAIL: api/assistant/providers did not list an available Claude Code: $providers" >&2
  ok=0
fi
[ $ok = 1 ] || { tail -n 40 "$work/first-command.log" >&2; exit 1; }
