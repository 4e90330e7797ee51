"""One HTTP request from tornado handed to an ASGI application, and its whole response back.

The MCP SDK serves streamable HTTP as an ASGI application; the Jupyter server is tornado. The
notebook tools' endpoint answers with JSON (no server-sent events), so a request is one body in
and one response out, and this glue is all that is needed to serve it from the server's own
port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

Message = MutableMapping[str, Any]
AsgiApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[Message]],
        Callable[[Message], Awaitable[None]],
    ],
    Awaitable[None],
]


@dataclass
class AsgiResponse:
    status: int = 500
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)


async def call_asgi(
    app: AsgiApp,
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    query: str = "",
    client: tuple[str, int] | None = None,
) -> AsgiResponse:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": client,
        "server": None,
        "state": {},
    }
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        # The client stays connected until the response is written: wait to be cancelled.
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}  # pragma: no cover

    response = AsgiResponse()

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            response.status = int(message["status"])
            response.headers = [
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])
            ]
        elif message["type"] == "http.response.body":
            response.body += message.get("body", b"")

    await app(scope, receive, send)
    return response
