"""HTTP API handlers: they translate HTTP to the engine (``service.py``) and back, nothing more.

All under ``{base_url}api/assistant/``, JSON, behind Jupyter's authentication and authorization
(``auth_resource = "assistant"``). Errors are always ``{"message": ...}`` JSON.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from jupyter_server.auth.decorator import allow_unauthenticated, authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.iostream import StreamClosedError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .app import AssistantExtension
    from .service import AssistantService

AUTH_RESOURCE = "assistant"
UUID_RE = r"[^/]+"  # validated (UUID, canonical form) by the engine, so a bad id is a JSON 404

M = TypeVar("M", bound="BaseModel")
# Nesting deeper than this is no real request (a notebook's context is a few levels deep), and
# would reach Python's recursion limit when validated or stored.
MAX_JSON_DEPTH = 64
TOO_DEEP = f"The request body is nested more than {MAX_JSON_DEPTH} levels deep."


def json_depth(value: Any) -> int:
    """How deeply ``value`` (parsed JSON) nests lists and objects, without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


F = TypeVar("F", bound=Callable[..., Awaitable[None]])


def engine_errors(method: F) -> F:
    """Turn engine errors into JSON HTTP errors with their status and message."""

    @wraps(method)
    async def wrapper(self: AssistantHandler, *args: Any, **kwargs: Any) -> None:
        from .errors import AssistantError

        try:
            await method(self, *args, **kwargs)
        except AssistantError as exc:
            # The message is an argument, never a format: a "%" in it stays one "%".
            raise web.HTTPError(exc.status, "%s", exc.message) from exc

    return wrapper  # type: ignore[return-value]


class AssistantHandler(ExtensionHandlerMixin, APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def assistant(self) -> AssistantExtension:
        return self.extensionapp  # type: ignore[return-value]

    @property
    def service(self) -> AssistantService:
        return self.assistant.service

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Always {"message": ...}; never a traceback, whatever went wrong.
        self.set_header("Content-Type", "application/json")
        message: str = self._reason
        exc_info = kwargs.get("exc_info")
        if exc_info and isinstance(exc_info[1], web.HTTPError):
            err = exc_info[1]
            if err.log_message:
                template = str(err.log_message)
                message = template % err.args if err.args else template
        elif exc_info:
            message = "Internal error in the assistant extension; see the server log."
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        self.finish(json.dumps({"message": message}))

    @classmethod
    def allowed_methods(cls) -> list[str]:
        return [m.upper() for m in ("get", "post", "delete") if m in vars(cls)] + ["OPTIONS"]

    def parse_body(self, model: type[M]) -> M:
        """Validate the JSON body against ``model``; any problem is a 400 naming the field."""
        from pydantic import ValidationError

        limit = self.assistant.max_message_bytes * 2 + 65536
        if len(self.request.body) > limit:
            raise web.HTTPError(413, f"Request body over {limit} bytes")
        try:
            data = json.loads(self.request.body or b"null")
        except RecursionError:
            raise web.HTTPError(400, TOO_DEEP) from None
        except ValueError:
            raise web.HTTPError(400, "The request body must be JSON.") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "The request body must be a JSON object.")
        if json_depth(data) > MAX_JSON_DEPTH:
            raise web.HTTPError(400, TOO_DEEP)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
                for err in exc.errors()
            )
            raise web.HTTPError(400, "%s", f"Invalid request: {problems}") from None

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data))


class ProvidersHandler(AssistantHandler):
    @web.authenticated
    @authorized
    @engine_errors
    async def get(self) -> None:
        flags = self.get_query_arguments("refresh")
        if any(flag not in ("0", "1", "true", "false") for flag in flags):
            raise web.HTTPError(400, "refresh must be 1, true, 0 or false")
        refresh = bool(flags) and flags[-1] in ("1", "true")
        self.write_json(await self.service.providers_info(refresh=refresh))


class SessionsHandler(AssistantHandler):
    @web.authenticated
    @authorized
    @engine_errors
    async def get(self) -> None:
        # Not through the service: the first listing must not wait for the engine to load.
        # As sent: tornado's own reading would strip spaces and blank out control characters,
        # so that "?path=%01x" were "x" while POST sessions refuses it (docs/rest-api.yml).
        values = self.request.query_arguments.get("path")
        path = self.decode_argument(values[-1], name="path") if values else None
        listing, running_here = self.assistant.listing, self.assistant.running_here()
        body = await asyncio.to_thread(listing.as_json, path, running_here)
        self.set_header("Content-Type", "application/json")
        self.finish(body)

    @web.authenticated
    @authorized
    @engine_errors
    async def post(self) -> None:
        from .models import CreateSessionBody

        body = self.parse_body(CreateSessionBody)
        session = await self.service.create_session(body.path, body.provider, body.context)
        self.set_header("Location", self.request.path.rstrip("/") + "/" + session.id)
        self.write_json(session.model_dump(mode="json"), status=201)


class SessionHandler(AssistantHandler):
    @web.authenticated
    @authorized
    @engine_errors
    async def get(self, session_id: str) -> None:
        session = await self.service.get_session(session_id)
        self.write_json(session.model_dump(mode="json"))

    @web.authenticated
    @authorized
    @engine_errors
    async def delete(self, session_id: str) -> None:
        await self.service.delete_session(session_id)
        self.set_status(204)
        self.finish()


class MessagesHandler(AssistantHandler):
    @web.authenticated
    @authorized
    @engine_errors
    async def post(self, session_id: str) -> None:
        from .models import PostMessageBody
        from .store import validate_session_id

        validate_session_id(session_id)
        body = self.parse_body(PostMessageBody)
        turn = await self.service.post_message(session_id, body.content, body.context)
        self.write_json({"turn_id": turn.id}, status=202)


class CancelHandler(AssistantHandler):
    @web.authenticated
    @authorized
    @engine_errors
    async def post(self, session_id: str) -> None:
        self.write_json({"cancelled": await self.service.cancel(session_id)})


class PrewarmHandler(AssistantHandler):
    """``POST sessions/{id}/prewarm``: start the session's agent now, in the background, so
    that its next question skips the CLI's start-up (``warm_agents`` with ``prewarm``)."""

    @web.authenticated
    @authorized
    @engine_errors
    async def post(self, session_id: str) -> None:
        self.write_json({"prewarm": await self.service.prewarm(session_id)})


class PrewarmNewHandler(AssistantHandler):
    """``POST prewarm {path}``: start the agent of the notebook's next new conversation (one
    it has none of yet); ``POST sessions`` for that notebook then makes the conversation that
    takes it."""

    @web.authenticated
    @authorized
    @engine_errors
    async def post(self) -> None:
        from .models import PrewarmBody

        body = self.parse_body(PrewarmBody)
        self.write_json({"prewarm": await self.service.prewarm_new(body.path)})


class TurnChangesHandler(AssistantHandler):
    """``GET sessions/{id}/turns/{turn_id}/changes``: what the turn changed (checkpoints/)."""

    @web.authenticated
    @authorized
    @engine_errors
    async def get(self, session_id: str, turn_id: str) -> None:
        self.write_json(await self.service.turn_changes(session_id, turn_id))


class TurnRevertHandler(AssistantHandler):
    """``POST sessions/{id}/turns/{turn_id}/revert {force?}``: undo the turn and those after it;
    409 while a turn runs, 409 with ``conflicts`` when files changed since (unless force)."""

    @web.authenticated
    @authorized
    async def post(self, session_id: str, turn_id: str) -> None:
        from .errors import AssistantError, ChangedSince
        from .models import RevertBody

        body = self.parse_body(RevertBody)
        try:
            result = await self.service.revert_turn(session_id, turn_id, body.force)
        except ChangedSince as exc:
            self.set_status(409)
            self.finish({"message": exc.message, "conflicts": exc.conflicts})
            return
        except AssistantError as exc:
            raise web.HTTPError(exc.status, "%s", exc.message) from exc
        self.write_json(result)


class PermissionHandler(AssistantHandler):
    @web.authenticated
    @authorized
    @engine_errors
    async def post(self, session_id: str, request_id: str) -> None:
        from .models import PermissionBody
        from .store import validate_session_id

        validate_session_id(session_id)
        body = self.parse_body(PermissionBody)
        await self.service.answer_permission(session_id, request_id, body)
        self.write_json({"answered": True})


class ExportHandler(AssistantHandler):
    """The conversation as a file, rendered by ``export.py``: the same text as ``jupyter
    assistant sessions export`` writes, so the sidebar and the command never differ."""

    @web.authenticated
    @authorized
    @engine_errors
    async def get(self, session_id: str) -> None:
        from .export import FORMATS, render

        fmt = self.get_query_argument("format", "")
        if fmt not in FORMATS:
            raise web.HTTPError(400, "format must be one of: %s", ", ".join(FORMATS))
        session = await self.service.get_session(session_id)
        # Off the event loop: a long conversation's notebook takes a while to validate.
        text = await asyncio.to_thread(render, session, fmt)
        self.finish(text, set_content_type=FORMATS[fmt])


class EventsHandler(AssistantHandler):
    """Server-Sent Events of the session's latest turn, from ``Last-Event-ID`` on."""

    _closed = False

    def on_connection_close(self) -> None:
        self._closed = True

    @web.authenticated
    @authorized
    @engine_errors
    async def get(self, session_id: str) -> None:
        last_event_id = self.request.headers.get("Last-Event-ID") or self.get_query_argument(
            "last_event_id", None
        )
        turn, after = self.service.events_of(session_id, last_event_id)
        # APIHandler.finish() would force application/json: set the stream's type first.
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache, no-transform")
        self.set_header("X-Accel-Buffering", "no")
        self.set_status(200)
        if turn is None:
            self.finish(set_content_type="text/event-stream; charset=utf-8")
            return
        keepalive = self.assistant.sse_keepalive_seconds
        try:
            self.write(f": stream of turn {turn.id}\n\n")
            await self.flush()
            while not self._closed:
                batch = await turn.next_batch(after, keepalive)
                if batch is None:
                    break
                if not batch:
                    self.write(": keep-alive\n\n")
                    await self.flush()
                    continue
                after = batch[-1][0]
                self.write(
                    "".join(
                        f"id: {turn.id}:{seq}\nevent: {event['type']}\n"
                        f"data: {json.dumps(event)}\n\n"
                        for seq, event in batch
                    )
                )
                await self.flush()
        except StreamClosedError:
            return
        if not self._closed:
            self.finish(set_content_type="text/event-stream; charset=utf-8")


class NotebookToolsHandler(AssistantHandler):
    """``/api/assistant/mcp``: the ``notebook`` MCP server (streamable HTTP) for the agents.

    Not behind Jupyter's login, on purpose: an agent never gets Jupyter's token. Each request
    must carry a live capability instead (issued for one turn, for one notebook, revoked when
    the turn ends); without one it gets a 403 before anything else is read.
    """

    def check_xsrf_cookie(self) -> None:
        # Authorization is a header a page on another site cannot set without a CORS
        # preflight that Jupyter refuses, and no cookie is used: no XSRF to check.
        return None

    @allow_unauthenticated
    async def post(self) -> None:
        from .notebook_tools.capabilities import capability_of

        gateway = self.assistant.notebook_tools
        if gateway is None:
            raise web.HTTPError(
                404, "The notebook tools are off (c.AssistantExtension.notebook_tools)."
            )
        capability = capability_of(self.request.headers)
        if not gateway.authorized(capability):
            raise web.HTTPError(
                403, "No live capability: the notebook tools serve only a running turn's agent."
            )
        if self.request.method != "POST":
            # A stateless server offers no event stream (GET) and keeps no session (DELETE).
            self.set_header("Allow", "POST")
            raise web.HTTPError(405, "The notebook tools answer POST only.")
        response = await gateway.handle(
            "POST", list(self.request.headers.get_all()), self.request.body, capability
        )
        self.set_status(response.status)
        for name, value in response.headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.set_header(name, value)
        await self.finish(bytes(response.body))

    get = delete = post


class NotebookRequestsHandler(AssistantHandler):
    """``GET notebook-requests?path=...&wait=20``: JupyterLab long-polls with the notebooks it
    has open, and gets the notebook tools' requests on them (notebook_tools/relay.py)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        from .notebook_tools.relay import MAX_PATHS

        relay = browser_relay(self)
        paths = self.get_arguments("path")
        if not 0 < len(paths) <= MAX_PATHS or any(not p or len(p) > 4096 for p in paths):
            raise web.HTTPError(400, f"Give 1 to {MAX_PATHS} notebook paths (`path=`).")
        try:
            wait = float(self.get_argument("wait", "20"))
        except ValueError:
            raise web.HTTPError(400, "wait must be a number of seconds.") from None
        if not 0 <= wait <= 60:
            raise web.HTTPError(400, "wait must be between 0 and 60 seconds.")
        poll = asyncio.ensure_future(relay.poll(paths, wait))
        self._poll: asyncio.Future[Any] | None = poll
        try:
            requests = await poll
        except asyncio.CancelledError:
            return  # the browser went away before anything was taken
        try:
            if getattr(self, "_gone", False):
                raise StreamClosedError()
            await self.finish({"requests": requests})
        except StreamClosedError:
            # Gone while they were handed over: the next poll (a reload, another tab) gets them.
            relay.requeue(requests)

    def on_connection_close(self) -> None:
        self._gone = True
        poll = getattr(self, "_poll", None)
        if poll is not None:
            poll.cancel()


def browser_relay(handler: AssistantHandler) -> Any:
    """The relay to the notebooks open in browsers (a 404 when the notebook tools are off)."""
    gateway = handler.assistant.notebook_tools
    if gateway is None or gateway.toolbox.relay is None:
        raise web.HTTPError(
            404, "The notebook tools are off (c.AssistantExtension.notebook_tools_enabled)."
        )
    return gateway.toolbox.relay


class NotebookRequestHandler(AssistantHandler):
    """``POST notebook-requests/{request_id}``: JupyterLab's answer to one request."""

    @web.authenticated
    @authorized
    async def post(self, request_id: str) -> None:
        relay = browser_relay(self)
        try:  # a run's outputs may be large (images): no message-size limit here
            body = json.loads(self.request.body or b"null")
        except (ValueError, RecursionError):
            raise web.HTTPError(400, "The request body must be JSON.") from None
        if not isinstance(body, dict) or not (
            isinstance(body.get("result"), dict) or isinstance(body.get("error"), str)
        ):
            raise web.HTTPError(400, 'The body must be {"result": {...}} or {"error": "..."}.')
        if not relay.answer(request_id, body):
            raise web.HTTPError(404, f"No notebook request {request_id!r} is waiting.")
        self.finish({"answered": True})


class NotFoundHandler(AssistantHandler):
    """Any other path under the API prefix: a JSON 404, not Jupyter's HTML page."""

    @web.authenticated
    @authorized
    async def get(self, rest: str) -> None:
        raise web.HTTPError(404, "No such assistant API endpoint; see docs/rest-api.yml")

    post = delete = put = patch = get


def routes() -> list[tuple[str, type[AssistantHandler]]]:
    prefix = r"/api/assistant"
    sid = rf"(?P<session_id>{UUID_RE})"
    return [
        (rf"{prefix}/providers/?", ProvidersHandler),
        (rf"{prefix}/sessions/?", SessionsHandler),
        (rf"{prefix}/sessions/{sid}/?", SessionHandler),
        (rf"{prefix}/sessions/{sid}/messages/?", MessagesHandler),
        (rf"{prefix}/sessions/{sid}/events/?", EventsHandler),
        (rf"{prefix}/sessions/{sid}/cancel/?", CancelHandler),
        (rf"{prefix}/sessions/{sid}/prewarm/?", PrewarmHandler),
        (rf"{prefix}/prewarm/?", PrewarmNewHandler),
        (rf"{prefix}/sessions/{sid}/export/?", ExportHandler),
        (rf"{prefix}/sessions/{sid}/permissions/(?P<request_id>[^/]+)/?", PermissionHandler),
        (rf"{prefix}/sessions/{sid}/turns/(?P<turn_id>[^/]+)/changes/?", TurnChangesHandler),
        (rf"{prefix}/sessions/{sid}/turns/(?P<turn_id>[^/]+)/revert/?", TurnRevertHandler),
        (rf"{prefix}/mcp/?", NotebookToolsHandler),
        (rf"{prefix}/notebook-requests/?", NotebookRequestsHandler),
        (rf"{prefix}/notebook-requests/(?P<request_id>[^/]+)/?", NotebookRequestHandler),
        (rf"{prefix}(?P<rest>/.*)?", NotFoundHandler),
    ]
