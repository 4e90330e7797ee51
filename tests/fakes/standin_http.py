"""The HTTP plumbing shared by the model-API stand-ins (``openai_standin.py``,
``gemini_standin.py``): a threaded server that records every request and answers with JSON or a
Server-Sent Events stream. Each stand-in only decides *what* to answer. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

# Trigger words in the user's text that script a reply; every stand-in understands them.
PWD_TRIGGER = "RUN_PWD"  # a shell tool call running `pwd`; then `The working directory is: ...`
BASH_TRIGGER = "RUN_BASH:"  # the rest of the line is the command (e.g. `sleep 30` for cancel)
THINK_TRIGGER = "THINK"  # reasoning before the text
ERROR_TRIGGER = "API_ERROR"  # `API_ERROR` -> HTTP 400; `API_ERROR:401` -> that status
# `RUN_TOOL: insert_cell {"source": "1+1"}`: a call of that tool of the `notebook` MCP server
TOOL_TRIGGER = "RUN_TOOL:"


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


@dataclass
class Reply:
    """What to send back: a JSON body, or (``sse`` set) an event stream of ``(event, data)``."""

    status: int = 200
    body: JSON | None = None
    sse: list[tuple[str | None, JSON]] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def error_status(text: str) -> int | None:
    """The HTTP status ``API_ERROR[:NNN]`` in a user text asks for, if any."""
    if ERROR_TRIGGER not in text:
        return None
    rest = text.split(ERROR_TRIGGER, 1)[1]
    digits = rest[1:4] if rest.startswith(":") else ""
    return int(digits) if digits.isdigit() else 400


def command_for(text: str) -> str | None:
    """The shell command a user text asks for, if any."""
    if BASH_TRIGGER in text:
        line = text.split(BASH_TRIGGER, 1)[1].splitlines()[0].strip()
        if line:
            return line
    if PWD_TRIGGER in text:
        return "pwd"
    return None


def tool_call_for(text: str) -> tuple[str, JSON] | None:
    """(tool, arguments) of the notebook tool call a user text asks for (TOOL_TRIGGER), if any."""
    if TOOL_TRIGGER not in text:
        return None
    line = text.split(TOOL_TRIGGER, 1)[1].splitlines()[0].strip()
    tool, _, raw = line.partition(" ")
    arguments = json.loads(raw) if raw.strip() else {}
    return tool, arguments if isinstance(arguments, dict) else {}


def own_words(text: str) -> str:
    """A user text without the ``<tag>…</tag>`` blocks CLIs (and providers) put before it."""
    return re.sub(r"^\s*(<([a-z_]+)>.*?</\2>\s*)+", "", text, flags=re.S).strip()


def chunks(text: str, size: int = 12) -> list[str]:
    # Several deltas per message, like the real APIs, so streaming is visible.
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def estimate_tokens(value: Any) -> int:
    # Plausible, deterministic numbers are enough: the CLIs only sum and display them.
    return max(1, len(json.dumps(value)) // 4)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive + chunked streaming, as the CLIs expect
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass  # the recorded requests replace the default stderr chatter

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _answer(self) -> None:
        body = self._read_body() if self.command == "POST" else None
        request = RecordedRequest(self.command, self.path, dict(self.headers.items()), body)
        owner = self.server.owner
        owner.record(request)
        reply = owner.handle(request)
        if reply.sse is None:
            data = json.dumps(reply.body if reply.body is not None else {}).encode()
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for name, data in reply.sse:
            head = f"event: {name}\n" if name else ""
            self._write_chunk(f"{head}data: {json.dumps(data)}\n\n".encode())
            if owner.delay:
                time.sleep(owner.delay)
        self._write_chunk(b"")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    do_GET = do_POST = do_HEAD = _answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: StandInServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A CLI killed mid-stream (cancel tests) resets the connection: expected.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class StandInServer:
    """Serves in a daemon thread (``with StandIn() as api:``); subclasses implement ``handle``."""

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

    def handle(self, request: RecordedRequest) -> Reply:
        raise NotImplementedError

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bodies(self, predicate: Callable[[RecordedRequest], bool]) -> list[JSON]:
        with self._lock:
            return [r.body for r in self.requests if isinstance(r.body, dict) and predicate(r)]

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)
            if self.log_path:
                with self.log_path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(request.to_json()) + "\n")

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def start(self) -> StandInServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_main(factory: Callable[..., StandInServer], doc: str, argv: Iterable[str]) -> int:
    """``python <standin>.py --port 0 [--log FILE] [--delay S]``: prints ``PORT <n>``, serves."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--log", help="append every request as one JSON line to this file")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between SSE events")
    args = parser.parse_args(list(argv))
    standin = factory(args.host, args.port, args.log, args.delay)
    print(f"PORT {standin.port}", flush=True)  # the parent reads this to learn the port
    with contextlib.suppress(KeyboardInterrupt):
        standin._server.serve_forever()
    return 0
