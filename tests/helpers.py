"""Test helpers: Server-Sent Events parsing and turn driving over the real HTTP API."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

if TYPE_CHECKING:
    from jupyter_assistant.service import AssistantService
    from jupyter_assistant.turns import RunnerSettings

Fetch = Callable[..., Awaitable[Any]]
NOTEBOOK = "analysis/q3.ipynb"


def parse_sse(text: str) -> list[dict[str, Any]]:
    """SSE text -> [{"id", "event", "data"}], ignoring comments (keep-alives)."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        data_lines = []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data_lines.append(value)
            else:
                fields[name] = value
        if data_lines or fields:
            events.append(
                {
                    "id": fields.get("id"),
                    "event": fields.get("event", "message"),
                    "data": json.loads("\n".join(data_lines)) if data_lines else None,
                }
            )
    return events


async def api(fetch: Fetch, *parts: str, method: str = "GET", body: Any = None, **kw: Any) -> Any:
    """Call the assistant API; returns the response (raise_error=False)."""
    if body is not None and not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    return await fetch(
        "api", "assistant", *parts, method=method, body=body, raise_error=False, **kw
    )


def json_of(response: Any) -> Any:
    return json.loads(response.body) if response.body else None


async def create_session(fetch: Fetch, path: str = NOTEBOOK, **extra: Any) -> dict[str, Any]:
    response = await api(fetch, "sessions", method="POST", body={"path": path, **extra})
    assert response.code == 201, response.body
    return json_of(response)  # type: ignore[no-any-return]


async def post_message(fetch: Fetch, session_id: str, content: str, **extra: Any) -> str:
    response = await api(
        fetch, "sessions", session_id, "messages", method="POST", body={"content": content, **extra}
    )
    assert response.code == 202, response.body
    return json_of(response)["turn_id"]  # type: ignore[no-any-return]


async def events(
    fetch: Fetch, session_id: str, last_event_id: str | None = None
) -> list[dict[str, Any]]:
    """The whole event stream of the latest turn (returns once the stream ends)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else None
    response = await api(
        fetch, "sessions", session_id, "events", headers=headers, request_timeout=60
    )
    assert response.code == 200, response.body
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return parse_sse(response.body.decode())


async def run_turn(
    fetch: Fetch, session_id: str, content: str, **extra: Any
) -> list[dict[str, Any]]:
    await post_message(fetch, session_id, content, **extra)
    return await events(fetch, session_id)


def types(stream: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in stream]


def text_of(stream: list[dict[str, Any]]) -> str:
    return "".join(e["data"]["text"] for e in stream if e["event"] == "text")


class StreamReader:
    """A live SSE client (tornado streaming_callback): sees events as they arrive."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.headers = headers
        self.buffer = ""
        self.events: list[dict[str, Any]] = []
        self.future: Any = None
        self.closed = False

    def close(self) -> None:
        """Drop the connection like a closed browser tab: the next chunk aborts it."""
        self.closed = True

    def _on_chunk(self, chunk: bytes) -> None:
        if self.closed:
            raise ConnectionAbortedError("client closed the stream")
        self.buffer += chunk.decode()
        while "\n\n" in self.buffer:
            block, self.buffer = self.buffer.split("\n\n", 1)
            self.events.extend(parse_sse(block + "\n\n"))

    def start(self) -> None:
        request = HTTPRequest(
            self.url,
            headers=self.headers,
            streaming_callback=self._on_chunk,
            request_timeout=120,
        )
        self.future = AsyncHTTPClient(force_instance=True).fetch(request, raise_error=False)

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 30
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; events so far: {types(self.events)}")
            if self.future is not None and self.future.done() and not predicate(self.events):
                raise AssertionError(f"stream ended; events: {types(self.events)}")
            await asyncio.sleep(0.01)


async def wait_until(predicate: Callable[[], bool], timeout: float = 20, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message or "condition not met in time")
        await asyncio.sleep(0.02)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 20, message: str = ""
) -> None:
    """Await ``check()`` until it is true (for effects that happen in background tasks)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(message or "condition not met in time")
        await asyncio.sleep(0.02)


def pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def describe_pids(pids: list[int]) -> str:
    """What the live ones of ``pids`` are, for an assertion message: a process left behind
    under load says more by its command line, parent and state than by its number."""
    lines = []
    for pid in pids_alive(pids):
        try:
            proc = psutil.Process(pid)
            marker = proc.environ().get("JUPYTER_ASSISTANT_TURN", "")
            lines.append(
                f"{pid}: ppid={proc.ppid()} status={proc.status()} pgid={os.getpgid(pid)} "
                f"marker={marker!r} cmd={' '.join(proc.cmdline())[:200]}"
            )
        except (psutil.Error, OSError) as exc:
            lines.append(f"{pid}: {exc}")
    return "\n".join(lines)


def engine_with_fake_claude(
    tmp_path: Path, runner: RunnerSettings | None = None
) -> AssistantService:
    """The engine without a server: a store and a root with ``nb.ipynb`` in ``tmp_path``, and
    the fake Claude Code CLI as the provider."""
    from traitlets.config import Config, Configurable

    from jupyter_assistant.providers import ProviderRegistry
    from jupyter_assistant.service import AssistantService, ServiceSettings
    from jupyter_assistant.turns import RunnerSettings

    from .conftest import FAKE_CLAUDE

    root = tmp_path / "root"
    root.mkdir()
    (root / "nb.ipynb").write_text("{}")
    config = Config()
    config.ClaudeCodeProvider.command = [str(FAKE_CLAUDE)]
    settings = ServiceSettings(tmp_path / "store", root, runner=runner or RunnerSettings())
    return AssistantService(settings, ProviderRegistry(parent=Configurable(config=config)))


def events_url(port: int, base_url: str, session_id: str) -> str:
    return f"http://127.0.0.1:{port}{base_url}api/assistant/sessions/{session_id}/events"


async def permission_asked(reader: StreamReader, count: int = 1) -> dict[str, Any]:
    """Wait for the ``count``-th ``permission_request`` of a live stream; returns its data."""
    await reader.wait_for(lambda evs: types(evs).count("permission_request") >= count)
    return [e["data"] for e in reader.events if e["event"] == "permission_request"][count - 1]


async def answer_permission(fetch: Fetch, session_id: str, request_id: str, **body: Any) -> Any:
    return await api(
        fetch, "sessions", session_id, "permissions", request_id, method="POST", body=body
    )


async def turn_ended(reader: StreamReader) -> list[dict[str, Any]]:
    """Wait for a live stream's terminal event and its end; returns all its events."""
    await reader.wait_for(lambda evs: types(evs)[-1:] in (["done"], ["error"], ["cancelled"]))
    await reader.future
    return reader.events
