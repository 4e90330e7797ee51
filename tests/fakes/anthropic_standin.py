#!/usr/bin/env python3
"""A small local stand-in for the Anthropic Messages API.

It lets the REAL ``claude`` CLI run whole turns offline (``ANTHROPIC_BASE_URL`` pointing here),
so tests exercise the genuine wire format instead of a guess. Standard library only.

Script use::

    python anthropic_standin.py --port 0 --log requests.jsonl
    # first stdout line: "PORT <n>"; serves until killed

Fixture use::

    from tests.fakes.anthropic_standin import AnthropicStandIn
    with AnthropicStandIn() as api:          # serves in a daemon thread
        env["ANTHROPIC_BASE_URL"] = api.base_url
        ...
        api.message_bodies                   # JSON bodies of every POST /v1/messages

Behaviour is scripted by the last user message of a main-agent request (see ``Script``):
* default: ``Hello from the stand-in. You said: <text>``, streamed in several text deltas;
* ``RUN_PWD`` in the text: a ``tool_use`` of ``Bash`` running ``pwd``; when the tool_result comes
  back: ``The working directory is: <result>``;
* ``RUN_TOUCH``: Bash ``touch standin_was_here.txt`` (denied under default permissions in -p mode);
  ``RUN_BASH: <command>``: that command (e.g. ``sleep 30`` to test cancelling a real tool run);
* ``RUN_WRITE: <file> <content>``: a ``Write`` of that file (relative names count from the CLI's
  working directory, read from its system prompt) with the rest of the line as content;
* ``RUN_EDIT: <file> <old>=><new>``: a ``Read`` of that file, then (when it comes back) an
  ``Edit`` replacing ``<old>`` with ``<new>``, as the CLI requires a file read before an edit;
* ``RUN_TOOL: <tool> <json arguments>``: a ``tool_use`` of that tool of the ``notebook`` MCP
  server (``mcp__notebook__<tool>``) if the request offers it, else a text saying it is missing;
* ``THINK`` in the text: a thinking block before the text;
* ``API_ERROR`` (``API_ERROR:<status>``): an HTTP error with the real error body shape.
Side-channel requests (no tools, e.g. title or topic generation) get a short plain answer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

PWD_TRIGGER = "RUN_PWD"  # Bash `pwd`: read-only, so the CLI runs it without asking
TOUCH_TRIGGER = "RUN_TOUCH"  # Bash `touch`: writes, so default permissions deny it in -p mode
TOUCH_FILE = "standin_was_here.txt"
BASH_TRIGGER = "RUN_BASH:"  # the rest of the line is the command (e.g. `sleep 30` for cancel tests)
WRITE_TRIGGER = "RUN_WRITE:"  # `RUN_WRITE: notes.txt some text`: the Write tool, asked for
EDIT_TRIGGER = "RUN_EDIT:"  # `RUN_EDIT: clean.py old=>new`: Read, then Edit
WORKDIR_LINE = "Primary working directory: "  # how the CLI's system prompt names its cwd
THINK_TRIGGER = "THINK"
TOOL_TRIGGER = "RUN_TOOL:"  # `RUN_TOOL: insert_cell {"source": "1+1"}`: a notebook MCP tool
MCP_PREFIX = "mcp__notebook__"
ERROR_TRIGGER = "API_ERROR"  # `API_ERROR` -> HTTP 400; `API_ERROR:529` -> that status
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
SIDE_CHANNEL_TEXT = "Stand-in side reply"


@dataclass
class RecordedRequest:
    """One HTTP request as received (body parsed as JSON when it is JSON)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    time: float = field(default_factory=time.time)

    def to_json(self) -> JSON:
        return {
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body": self.body,
        }


def _new_id(prefix: str) -> str:
    return f"{prefix}_standin{uuid.uuid4().hex[:20]}"


def _block_text(block: Any) -> str:
    """Text of one content block (or a bare string); tool_result content may be nested."""
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return ""
    if block.get("type") == "text":
        return str(block.get("text", ""))
    if block.get("type") == "tool_result":
        content = block.get("content", "")
        if isinstance(content, list):
            return "".join(_block_text(b) for b in content)
        return str(content)
    return ""


def _user_text(message: JSON) -> str:
    """The user's own words: text blocks minus the CLI's injected <system-reminder> blocks."""
    content = message.get("content", "")
    if isinstance(content, str):
        return content
    parts = [
        _block_text(b)
        for b in content
        if isinstance(b, dict)
        and b.get("type") == "text"
        and not str(b.get("text", "")).lstrip().startswith("<system-reminder>")
    ]
    return "\n".join(p for p in parts if p).strip()


def _estimate_tokens(body: Any) -> int:
    # Plausible, deterministic numbers are enough: the CLI only sums and prices them.
    return max(1, len(json.dumps(body)) // 4)


def _chunks(text: str, size: int = 12) -> list[str]:
    # Several deltas per block, like the real API, so partial-message streaming is visible.
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class Script:
    """Decides the content blocks of a reply from the request body."""

    @staticmethod
    def is_side_channel(body: JSON) -> bool:
        # The main agent always sends its tool list; title/topic/summary helpers send none.
        return not body.get("tools")

    @staticmethod
    def side_channel_text(body: JSON) -> str:
        """A plain answer, or JSON fitting the schema the helper asked for (the title call does)."""
        fmt = (body.get("output_config") or {}).get("format") or {}
        schema = fmt.get("schema") if fmt.get("type") == "json_schema" else None
        if not isinstance(schema, dict):
            return SIDE_CHANNEL_TEXT
        props = schema.get("properties") or {}
        return json.dumps({name: f"{SIDE_CHANNEL_TEXT} {name}" for name in props})

    @staticmethod
    def error_status(body: JSON) -> int | None:
        """The HTTP error status a main-agent request asks for (ERROR_TRIGGER), if any."""
        if Script.is_side_channel(body):
            return None
        messages = body.get("messages") or []
        last: JSON = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        text = _user_text(last)
        if ERROR_TRIGGER not in text:
            return None
        rest = text.split(ERROR_TRIGGER, 1)[1]
        digits = rest[1:4] if rest.startswith(":") else ""
        return int(digits) if digits.isdigit() else 400

    @staticmethod
    def command_for(text: str) -> tuple[str, str] | None:
        """The Bash command (and description) a user text asks for, if any."""
        if BASH_TRIGGER in text:
            line = text.split(BASH_TRIGGER, 1)[1].splitlines()[0].strip()
            if line:
                return line, "Run the requested command"
        if PWD_TRIGGER in text:
            return "pwd", "Print working directory"
        if TOUCH_TRIGGER in text:
            return f"touch {TOUCH_FILE}", "Create a marker file"
        return None

    @staticmethod
    def _absolute(name: str, body: JSON) -> str:
        """A file name relative to the CLI's working directory (from its system prompt)."""
        if not name.startswith("/"):
            system = json.dumps(body.get("system") or "")
            start = system.find(WORKDIR_LINE)
            if start >= 0:
                cwd = system[start + len(WORKDIR_LINE) :].split("\\n", 1)[0]
                name = f"{cwd.rstrip('/')}/{name}"
        return name

    @staticmethod
    def write_for(text: str, body: JSON) -> JSON | None:
        """The Write tool input a user text asks for (WRITE_TRIGGER), if any."""
        if WRITE_TRIGGER not in text:
            return None
        line = text.split(WRITE_TRIGGER, 1)[1].splitlines()[0].strip()
        name, _, content = line.partition(" ")
        if not name:
            return None
        return {"file_path": Script._absolute(name, body), "content": content + "\n"}

    @staticmethod
    def edit_for(text: str, body: JSON) -> JSON | None:
        """The Edit tool input a user text asks for (EDIT_TRIGGER), if any."""
        if EDIT_TRIGGER not in text:
            return None
        line = text.split(EDIT_TRIGGER, 1)[1].splitlines()[0].strip()
        name, _, change = line.partition(" ")
        old, arrow, new = change.partition("=>")
        if not name or not arrow or not old:
            return None
        path = Script._absolute(name, body)
        return {"file_path": path, "old_string": old, "new_string": new}

    @staticmethod
    def tool_use(messages: list[JSON], tool_use_id: Any) -> JSON | None:
        """The earlier tool_use block a tool_result answers."""
        for message in reversed(messages):
            content = message.get("content")
            if message.get("role") != "assistant" or not isinstance(content, list):
                continue
            for block in content:
                if isinstance(block, dict) and block.get("id") == tool_use_id:
                    return block
        return None

    @staticmethod
    def asked(messages: list[JSON]) -> str:
        """The user's latest own text (not a tool result)."""
        for message in reversed(messages):
            if message.get("role") == "user":
                text = _user_text(message)
                if text:
                    return text
        return ""

    @staticmethod
    def notebook_tool_for(text: str, body: JSON) -> JSON | None:
        """The notebook tool call a user text asks for (TOOL_TRIGGER): a tool_use block, or a
        text block saying the tool was not offered."""
        if TOOL_TRIGGER not in text:
            return None
        line = text.split(TOOL_TRIGGER, 1)[1].splitlines()[0].strip()
        tool, _, raw = line.partition(" ")
        name = MCP_PREFIX + tool
        offered = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
        if name not in offered:
            return {"type": "text", "text": f"The tool {name} is not offered."}
        arguments = json.loads(raw) if raw.strip() else {}
        return {"type": "tool_use", "id": _new_id("toolu"), "name": name, "input": arguments}

    @staticmethod
    def tool_command(messages: list[JSON], tool_use_id: Any) -> str | None:
        """The Bash command of the earlier tool_use a tool_result answers."""
        for message in reversed(messages):
            content = message.get("content")
            if message.get("role") != "assistant" or not isinstance(content, list):
                continue
            for block in content:
                if isinstance(block, dict) and block.get("id") == tool_use_id:
                    return str((block.get("input") or {}).get("command"))
        return None

    @staticmethod
    def reply(body: JSON) -> tuple[list[JSON], str]:
        """Return (content blocks, stop_reason)."""
        if Script.is_side_channel(body):
            return [{"type": "text", "text": Script.side_channel_text(body)}], "end_turn"
        messages = body.get("messages") or []
        last: JSON = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        content = last.get("content", "")
        results = (
            [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
            if isinstance(content, list)
            else []
        )
        if results:
            result = results[-1]
            used = Script.tool_use(messages, result.get("tool_use_id")) or {}
            edit = Script.edit_for(Script.asked(messages), body)
            if (
                edit
                and used.get("name") == "Read"
                and (used.get("input") or {}).get("file_path") == edit["file_path"]
                and not result.get("is_error")
            ):
                tool = {"type": "tool_use", "id": _new_id("toolu"), "name": "Edit", "input": edit}
                return [tool], "tool_use"
            out = _block_text(result).strip()
            if result.get("is_error"):
                text = f"The tool failed: {out}"
            elif Script.tool_command(messages, result.get("tool_use_id")) == "pwd":
                text = f"The working directory is: {out}"
            else:
                text = f"The command output is: {out}"
            return [{"type": "text", "text": text}], "end_turn"
        text = _user_text(last)
        notebook_tool = Script.notebook_tool_for(text, body)
        if notebook_tool is not None:
            if notebook_tool["type"] == "text":
                return [notebook_tool], "end_turn"
            intro = {"type": "text", "text": f"I will use {notebook_tool['name']}."}
            return [intro, notebook_tool], "tool_use"
        write = Script.write_for(text, body)
        if write:
            tool = {"type": "tool_use", "id": _new_id("toolu"), "name": "Write", "input": write}
            intro = {"type": "text", "text": f"I will write {write['file_path']}."}
            return [intro, tool], "tool_use"
        edit = Script.edit_for(text, body)
        if edit:
            read = {"file_path": edit["file_path"]}
            tool = {"type": "tool_use", "id": _new_id("toolu"), "name": "Read", "input": read}
            intro = {"type": "text", "text": f"I will edit {edit['file_path']}."}
            return [intro, tool], "tool_use"
        command = Script.command_for(text)
        if command:
            tool = {
                "type": "tool_use",
                "id": _new_id("toolu"),
                "name": "Bash",
                "input": {"command": command[0], "description": command[1]},
            }
            return [{"type": "text", "text": f"I will run {command[0]}."}, tool], "tool_use"
        blocks: list[JSON] = []
        if THINK_TRIGGER in text:
            blocks.append(
                {
                    "type": "thinking",
                    "thinking": "The user wants a reply; thinking it over.",
                    "signature": "standin-signature",
                }
            )
        blocks.append({"type": "text", "text": f"Hello from the stand-in. You said: {text}"})
        return blocks, "end_turn"


def _message(body: JSON, blocks: list[JSON], stop_reason: str) -> JSON:
    return {
        "id": _new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-standin"),
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": _estimate_tokens(body.get("messages")),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": _estimate_tokens(blocks),
            "service_tier": "standard",
        },
    }


def _sse_events(message: JSON) -> list[tuple[str, JSON]]:
    """The event sequence of the real streaming API for one complete message."""
    start = dict(message, content=[], stop_reason=None)
    start["usage"] = dict(message["usage"], output_tokens=1)
    events: list[tuple[str, JSON]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            head: JSON = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": c} for c in _chunks(block["text"])]
        elif kind == "thinking":
            head = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": c} for c in _chunks(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:  # tool_use: input arrives as partial JSON fragments
            head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            raw = json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [{"type": "input_json_delta", "partial_json": c} for c in _chunks(raw, 15)]
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": head},
            )
        )
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        events += [
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        ]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": message["usage"]["output_tokens"]},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive + chunked streaming, as the CLI's fetch expects
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass  # the JSONL request log replaces the default stderr chatter

    # -- helpers -----------------------------------------------------------------
    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _record(self, body: Any) -> None:
        self.server.owner.record(
            RecordedRequest(self.command, self.path, dict(self.headers.items()), body)
        )

    def _common_headers(self) -> None:
        self.send_header("request-id", _new_id("req"))
        self.send_header("anthropic-organization-id", "00000000-0000-0000-0000-000000000000")

    def _send_json(self, status: int, payload: JSON) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self._common_headers()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_error(self, status: int, kind: str, message: str) -> None:
        self._send_json(status, {"type": "error", "error": {"type": kind, "message": message}})

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    # -- verbs -------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._record(None)
        self._send_json(200, {})

    def do_GET(self) -> None:
        self._record(None)
        path = self.path.split("?", 1)[0]
        if path.startswith("/v1/models"):
            model = {
                "type": "model",
                "id": "claude-standin",
                "display_name": "Stand-in",
                "created_at": "2025-01-01T00:00:00Z",
            }
            self._send_json(
                200,
                {
                    "data": [model],
                    "has_more": False,
                    "first_id": "claude-standin",
                    "last_id": "claude-standin",
                },
            )
            return
        self._send_error(404, "not_found_error", f"stand-in: no GET {path}")

    def do_POST(self) -> None:
        body = self._read_body()
        self._record(body)
        path = self.path.split("?", 1)[0]
        if path == "/v1/messages/count_tokens":
            self._send_json(200, {"input_tokens": _estimate_tokens(body)})
            return
        if path != "/v1/messages" or not isinstance(body, dict):
            self._send_error(404, "not_found_error", f"stand-in: no POST {path}")
            return
        status = Script.error_status(body)
        if status:
            kind = ERROR_TYPES.get(status, "api_error")
            self._send_error(status, kind, f"Stand-in: simulated {kind} ({status})")
            return
        blocks, stop_reason = Script.reply(body)
        message = _message(body, blocks, stop_reason)
        if not body.get("stream"):
            self._send_json(200, message)
            return
        self.send_response(200)
        self._common_headers()
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        delay = self.server.owner.delay
        for name, data in _sse_events(message):
            self._write_chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            if delay:
                time.sleep(delay)
        self._write_chunk(b"")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: AnthropicStandIn

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A CLI killed mid-stream (cancel tests) resets the connection: expected, not worth a trace.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class AnthropicStandIn:
    """The stand-in server; start() serves in a daemon thread, stop() shuts it down.

    ``requests`` holds every request received (all paths); ``message_bodies`` only the JSON
    bodies of ``POST /v1/messages``; ``main_bodies`` those of the main agent (requests with tools).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: str | Path | None = None,
        delay: float = 0.0,
    ) -> None:
        self.delay = delay  # seconds between SSE events, to make streaming observable
        self.log_path = Path(log_path) if log_path else None
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server = _Server((host, port), _Handler)
        self._server.owner = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        host = str(self._server.server_address[0])
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"

    def cli_env(self, home: Path) -> dict[str, str]:
        """The environment that points the real Claude Code CLI at this stand-in, its whole
        state (conversations too) kept in ``home``, never in ~/.claude."""
        (home / "claude-config").mkdir(parents=True, exist_ok=True)
        (home / "tmp").mkdir(exist_ok=True)
        return {
            "ANTHROPIC_BASE_URL": self.base_url,
            "ANTHROPIC_API_KEY": "test-key-for-the-stand-in",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "CLAUDE_CONFIG_DIR": str(home / "claude-config"),
            "TMPDIR": str(home / "tmp"),
        }

    @property
    def message_bodies(self) -> list[JSON]:
        with self._lock:
            return [
                r.body
                for r in self.requests
                if r.method == "POST"
                and r.path.split("?", 1)[0] == "/v1/messages"
                and isinstance(r.body, dict)
            ]

    @property
    def main_bodies(self) -> list[JSON]:
        return [b for b in self.message_bodies if not Script.is_side_channel(b)]

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)
            if self.log_path:
                with self.log_path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(request.to_json()) + "\n")

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def start(self) -> AnthropicStandIn:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def __enter__(self) -> AnthropicStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--log", help="append every request as one JSON line to this file")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between SSE events")
    args = parser.parse_args(argv)
    standin = AnthropicStandIn(args.host, args.port, args.log, args.delay)
    print(f"PORT {standin.port}", flush=True)  # the parent reads this to learn the port
    with contextlib.suppress(KeyboardInterrupt):
        standin.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
