#!/usr/bin/env python3
"""Capture the REAL Claude Code control protocol (``--input-format stream-json
--permission-prompt-tool stdio``) against the Messages API stand-in, for wire-samples/control/.

Usage::

    python3 capture_claude_control.py CLAUDE OUT_DIR

Each capture runs the CLI in ``OUT_DIR/project`` with an isolated ``CLAUDE_CONFIG_DIR``, sends
``control_request {initialize}`` and the prompt as a stream-json ``user`` line, answers every
``can_use_tool`` as the capture says, and closes stdin when the ``result`` arrives (the CLI waits
for more input otherwise). It writes ``NAME.jsonl`` (the CLI's stdout) and ``NAME.stdin.jsonl``
(what was sent). Standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fakes.anthropic_standin import AnthropicStandIn

JSON = dict[str, Any]


@dataclass
class Capture:
    name: str
    prompt: str
    answer: str  # allow | deny | allow_without_input | interrupt | none
    args: list[str] = field(default_factory=list)
    interrupt_after: float | None = None  # seconds after the start: send an interrupt
    delay: float = 0.0  # stand-in seconds between SSE events
    api_key: bool = True


CAPTURES = [
    Capture("write_allow", "Please RUN_WRITE: notes.txt hello from the agent", "allow"),
    Capture("write_deny", "Please RUN_WRITE: notes.txt hello from the agent", "deny"),
    Capture("write_outside_deny", "Please RUN_WRITE: ../outside.txt escaped", "deny"),
    Capture("bash_touch_allow", "Please RUN_TOUCH now", "allow"),
    Capture("allow_without_updated_input", "Please RUN_WRITE: n2.txt hi", "allow_without_input"),
    Capture("interrupt_while_asking", "Please RUN_TOUCH now", "interrupt"),
    Capture("interrupt_running_tool", "Please RUN_BASH: sleep 297", "none", interrupt_after=4.0),
    Capture("interrupt_streaming", "Say hi please", "none", interrupt_after=1.5, delay=0.4),
    Capture("reply", "Say hi please", "none"),
    Capture("not_logged_in", "hello", "none", api_key=False),
]

DENY_MESSAGE = "The user denied this: not now, please."


def run(claude: str, out: Path, capture: Capture, api: AnthropicStandIn) -> None:
    project = out / "project"
    config = out / f"config-{capture.name}"
    shutil.rmtree(config, ignore_errors=True)
    config.mkdir(parents=True)
    (out / "tmp").mkdir(exist_ok=True)
    for leftover in ("notes.txt", "standin_was_here.txt", "n2.txt"):
        (project / leftover).unlink(missing_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ANTHROPIC_BASE_URL": api.base_url,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "CLAUDE_CONFIG_DIR": str(config),
        "HOME": str(out / "home"),
        "TMPDIR": str(out / "tmp"),
    }
    if capture.api_key:
        env["ANTHROPIC_API_KEY"] = "test"
    api.delay = capture.delay
    argv = [
        claude, "-p", "--output-format", "stream-json", "--verbose", "--include-partial-messages",
        "--input-format", "stream-json", "--permission-prompt-tool", "stdio",
        "--permission-mode", "default", *capture.args,
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, cwd=project, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    sent: list[JSON] = []
    lock = threading.Lock()

    def send(obj: JSON) -> None:
        with lock:
            sent.append(obj)
            if not proc.stdin.closed:
                proc.stdin.write(json.dumps(obj).encode() + b"\n")
                proc.stdin.flush()

    def interrupt() -> None:
        request = {"subtype": "interrupt"}
        send({"type": "control_request", "request_id": "interrupt-1", "request": request})

    send({"type": "control_request", "request_id": "init-1", "request": {"subtype": "initialize"}})
    send(
        {
            "type": "user",
            "message": {"role": "user", "content": capture.prompt},
            "parent_tool_use_id": None,
            "session_id": "",
        }
    )
    if capture.interrupt_after is not None:
        threading.Timer(capture.interrupt_after, interrupt).start()
    lines: list[str] = []
    started = time.monotonic()
    for raw in proc.stdout:
        line = raw.decode().rstrip("\n")
        lines.append(line)
        obj = json.loads(line)
        if obj.get("type") == "control_request" and obj["request"].get("subtype") == "can_use_tool":
            rid, tool_input = obj["request_id"], obj["request"]["input"]
            if capture.answer == "allow":
                answer: JSON | None = {"behavior": "allow", "updatedInput": tool_input}
            elif capture.answer == "allow_without_input":
                answer = {"behavior": "allow"}
            elif capture.answer == "deny":
                answer = {"behavior": "deny", "message": DENY_MESSAGE}
            else:
                answer = None
            if answer is not None:
                send(
                    {
                        "type": "control_response",
                        "response": {"subtype": "success", "request_id": rid, "response": answer},
                    }
                )
            elif capture.answer == "interrupt":
                interrupt()
        if obj.get("type") == "result":
            with lock:
                proc.stdin.close()
    rc = proc.wait()
    (out / f"{capture.name}.jsonl").write_text("\n".join(lines) + "\n")
    (out / f"{capture.name}.stdin.jsonl").write_text("".join(json.dumps(s) + "\n" for s in sent))
    print(f"{capture.name}: rc {rc}, {time.monotonic() - started:.2f} s, {len(lines)} lines")


def main() -> int:
    claude, out = sys.argv[1], Path(sys.argv[2]).resolve()
    (out / "project").mkdir(parents=True, exist_ok=True)
    (out / "home").mkdir(exist_ok=True)
    only = set(sys.argv[3:])
    with AnthropicStandIn() as api:
        for capture in CAPTURES:
            if not only or capture.name in only:
                run(claude, out, capture, api)
    return 0


if __name__ == "__main__":
    sys.exit(main())
