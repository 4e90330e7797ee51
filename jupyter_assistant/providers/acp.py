"""Any Agent Client Protocol (ACP) agent as a provider: JSON-RPC 2.0 over the agent's stdio.

One process per turn: ``initialize`` -> ``session/new {cwd, mcpServers: []}`` (or
``session/load`` of the stored session id when the agent advertises ``loadSession``) ->
``session/prompt`` -> ``session/update`` notifications -> the prompt's ``{stopReason}``; then
stdin is closed so that the agent exits. Stop sends ``session/cancel`` (and answers pending
permission requests with ``cancelled``) before the runner's signals.

The client advertises no capabilities (no ``fs/*``, no ``terminal/*``): the agent uses its own
tools in the notebook's folder. Its ``session/request_permission`` requests are answered by
``AcpProvider.permission_policy``.

Checked against gemini 0.61.0 (``gemini --acp``) run against a local Gemini API stand-in;
samples in tests/fakes/wire-samples/acp/. gemini streams the history of a loaded session
*after* answering ``session/load`` (the protocol says before), so after a load this client sends
one extension request as a barrier and takes updates as the turn's only after its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import signal
import time
from typing import Any, ClassVar

from traitlets import Enum, List, Unicode, Union

from .._version import __version__
from ..permissions import inside
from ..traits import StringList
from .base import (
    Event,
    LaunchSpec,
    ParserState,
    Provider,
    ProviderHealth,
    ProviderIO,
    ProviderUnavailable,
    StreamParser,
    TurnRequest,
    provider_environment,
)
from .cli_support import (
    clip,
    command_argv,
    json_object,
    notebook_instructions,
    resolve_command,
    stderr_summary,
    tagged,
)

PROTOCOL_VERSION = 1
SETTING = "c.AcpProvider.command"
NO_COMMAND = (
    "No ACP agent is configured: set c.AcpProvider.command, e.g. ['gemini', '--acp'] "
    "(npm install -g @google/gemini-cli)."
)
AUTH_REQUIRED = -32000  # ACP's "authentication required" error code
BARRIER_METHOD = "_jupyter_assistant/barrier"
HEALTH_TTL = 300.0  # seconds a working initialize answer is reused
# Tool kinds whose effect is limited to the paths the call names.
PATH_KINDS = frozenset({"read", "edit", "delete", "move", "search"})
HARMLESS_KINDS = frozenset({"think"})
PATH_KEYS = (
    "path",
    "file_path",
    "filePath",
    "dir_path",
    "absolute_path",
    "notebook_path",
    "source",
    "destination",
    "old_path",
    "new_path",
)
POLICY_HINT = (
    "To decide such calls yourself set c.AcpProvider.permission_policy = 'ask'; 'allow' allows "
    "everything."
)


def tool_paths(tool_call: dict[str, Any]) -> list[str]:
    """Every file path a tool call names: its locations, its diffs and its raw input."""
    paths: list[str] = []
    for location in tool_call.get("locations") or []:
        if isinstance(location, dict) and isinstance(location.get("path"), str):
            paths.append(location["path"])
    for block in tool_call.get("content") or []:
        if isinstance(block, dict) and block.get("type") == "diff" and block.get("path"):
            paths.append(str(block["path"]))
    raw = tool_call.get("rawInput")
    if isinstance(raw, dict):
        paths += [str(raw[key]) for key in PATH_KEYS if isinstance(raw.get(key), str)]
    return list(dict.fromkeys(paths))


def decide(policy: str, tool_call: dict[str, Any], working_dir: str) -> tuple[str, str]:
    """(allow | reject | ask, why) for a permission request under ``policy``."""
    if policy == "allow":
        return "allow", "c.AcpProvider.permission_policy is 'allow'"
    if policy == "reject":
        return "reject", "c.AcpProvider.permission_policy is 'reject'"
    kind = str(tool_call.get("kind") or "other")
    paths = tool_paths(tool_call)
    if kind in HARMLESS_KINDS:
        verdict, why = "allow", f"a '{kind}' call changes nothing"
    elif kind not in PATH_KINDS:
        verdict, why = "reject", f"a '{kind}' call cannot be confined to the notebook's folder"
    elif not paths:
        verdict, why = "reject", f"the '{kind}' call names no file, so it cannot be confined"
    else:
        outside = [p for p in paths if not inside(p, working_dir)]
        if outside:
            verdict, why = "reject", f"{outside[0]} is outside the notebook's folder"
        else:
            verdict, why = "allow", "every path it names is inside the notebook's folder"
    if verdict == "reject" and policy == "ask":
        return "ask", why
    return verdict, why


def _content_text(blocks: Any) -> str:
    """Tool call content blocks (text, diffs, terminals) as text."""
    parts: list[str] = []
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "content":
            inner = block.get("content") or {}
            if isinstance(inner, dict):
                parts.append(str(inner.get("text", f"[{inner.get('type', 'content')}]")))
        elif block.get("type") == "diff":
            parts.append(f"edited {block.get('path', '')}")
        elif block.get("type") == "terminal":
            parts.append(f"[terminal {block.get('terminalId', '')}]")
    return "\n".join(parts)


def _option(options: list[Any], *kinds: str) -> str | None:
    for kind in kinds:
        for option in options:
            if isinstance(option, dict) and option.get("kind") == kind:
                return str(option.get("optionId"))
    return None


class AcpClient(StreamParser):
    """The client side of one turn's ACP conversation; the runner's interactive parser."""

    interactive = True

    def __init__(
        self,
        request: TurnRequest,
        policy: str = "workdir",
        mode: str | None = None,
        model: str | None = None,
        instructions: str = "",
    ) -> None:
        self.state = ParserState()
        self.resume_failed = False  # a failed load falls back to a new session in-process
        self._request = request
        self._policy = policy
        self._instructions = instructions
        self._setup: list[tuple[str, dict[str, Any]]] = []
        self._mode, self._model = mode, model
        self._io: ProviderIO | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, str] = {}  # our request id -> what it was
        self._session_id: str | None = None
        self._prompt_id: int | None = None
        self._agent = "The ACP agent"
        self._auth_methods: list[str] = []
        self._load_supported = False
        self._tools: set[str] = set()
        self._asks: dict[str, tuple[Any, list[Any]]] = {}  # our request id -> (rpc id, options)
        self._ask_ids = itertools.count(1)
        self._cancel_sent = False
        self._started = time.monotonic()
        self._cost = 0.0

    @property
    def provider_session_id(self) -> str | None:
        return self.state.provider_session_id

    # -- the wire ---------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        if self._io is not None:
            data = json.dumps({"jsonrpc": "2.0", **message}, separators=(",", ":"))
            self._io.write(data.encode() + b"\n")

    def _call(self, method: str, params: dict[str, Any], purpose: str | None = None) -> int:
        rpc_id = next(self._ids)
        self._pending[rpc_id] = purpose or method
        self._send({"id": rpc_id, "method": method, "params": params})
        return rpc_id

    def _reply(self, rpc_id: Any, result: dict[str, Any]) -> None:
        self._send({"id": rpc_id, "result": result})

    # -- InteractiveParser -----------------------------------------------------------------

    def start(self, io: ProviderIO) -> None:
        self._io = io
        self._call(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "clientCapabilities": {
                    "fs": {"readTextFile": False, "writeTextFile": False},
                    "terminal": False,
                },
                "clientInfo": {
                    "name": "jupyter-assistant",
                    "title": "Jupyter Assistant",
                    "version": __version__,
                },
            },
        )

    def interrupt(self) -> bool:
        if self._prompt_id is None or self.state.terminal is not None or self._session_id is None:
            return False
        if not self._cancel_sent:
            self._cancel_sent = True
            self._send({"method": "session/cancel", "params": {"sessionId": self._session_id}})
            # The protocol: pending permission requests are answered "cancelled".
            for rpc_id, _ in self._asks.values():
                self._reply(rpc_id, {"outcome": {"outcome": "cancelled"}})
            self._asks.clear()
        return True

    def answer_permission(
        self, request_id: str, allow: bool, scope: str, message: str | None
    ) -> bool:
        waiting = self._asks.pop(request_id, None)
        if waiting is None:
            return False
        rpc_id, options = waiting
        if allow:
            kinds = ("allow_always", "allow_once") if scope == "session" else ("allow_once",)
            option = _option(options, *kinds, "allow_always")
        else:
            option = _option(options, "reject_once", "reject_always")
        if option is None:
            self._reply(rpc_id, {"outcome": {"outcome": "cancelled"}})
        else:
            self._reply(rpc_id, {"outcome": {"outcome": "selected", "optionId": option}})
        return True

    def feed(self, line: bytes) -> list[Event]:
        message = json_object(line)
        if message is None:
            if line.strip():
                self.state.invalid_lines += 1  # agents may log to stdout; not protocol
            return []
        if "method" in message and "id" in message:
            return self._agent_request(message)
        if "method" in message:
            if message["method"] == "session/update":
                return self._update(message.get("params") or {})
            return []
        if "id" in message:
            return self._response(message)
        return []

    def finish(self, returncode: int, stderr_tail: str) -> list[Event]:
        if self.state.terminal is not None:
            return []
        detail = stderr_summary(stderr_tail)
        stage = "before answering" if self._session_id is None else "before the turn ended"
        event: Event = {
            "type": "error",
            "code": "provider_failed",
            "message": f"{self._agent} exited with code {returncode} {stage}: {detail}. Check "
            f"that {SETTING} starts an ACP agent (e.g. ['gemini', '--acp']).",
        }
        return [self._end(event)]

    # -- responses to our requests ---------------------------------------------------------

    def _response(self, message: dict[str, Any]) -> list[Event]:
        rpc_id = message.get("id")
        purpose = self._pending.pop(rpc_id, None) if isinstance(rpc_id, int) else None
        if purpose is None:
            return []
        error = message.get("error")
        result = message.get("result")
        result = result if isinstance(result, dict) else {}
        if purpose == "initialize":
            return self._initialized(result, error)
        if purpose == "session/new":
            if error:
                return [self._session_error(error)]
            self._session_id = str(result.get("sessionId", ""))
            self.state.provider_session_id = self._session_id
            return self._next_setup_step()
        if purpose == "session/load":
            if error:
                notice = self._notice(
                    f"{self._agent} could not load the earlier conversation "
                    f"({_error_text(error)}); this turn starts a new one.",
                    "warning",
                )
                self._new_session()
                return [notice]
            self._session_id = self._request.provider_session_id
            self.state.provider_session_id = self._session_id
            self._call(BARRIER_METHOD, {}, "barrier")
            return []
        if purpose == "barrier":
            return self._next_setup_step()
        if purpose in ("session/set_mode", "session/set_model"):
            events = []
            if error:
                what = "mode" if purpose.endswith("mode") else "model"
                events.append(
                    self._notice(
                        f"{self._agent} refused the {what}: {_error_text(error)}", "warning"
                    )
                )
            return events + self._next_setup_step()
        if purpose == "session/prompt":
            return self._prompt_done(result, error)
        return []

    def _initialized(self, result: dict[str, Any], error: Any) -> list[Event]:
        if error:
            message = f"{self._agent} refused to start: {_error_text(error)}"
            return [self._end({"type": "error", "code": "provider_failed", "message": message})]
        info = result.get("agentInfo") or {}
        if isinstance(info, dict) and (info.get("title") or info.get("name")):
            self._agent = str(info.get("title") or info.get("name"))
        version = result.get("protocolVersion")
        if version != PROTOCOL_VERSION:
            message = (
                f"{self._agent} speaks ACP protocol version {version}; this client speaks "
                f"{PROTOCOL_VERSION}. Use an agent release for protocol version 1."
            )
            return [self._end({"type": "error", "code": "provider_failed", "message": message})]
        capabilities = result.get("agentCapabilities") or {}
        self._load_supported = bool(
            isinstance(capabilities, dict) and capabilities.get("loadSession")
        )
        self._auth_methods = [
            str(m.get("name") or m.get("id"))
            for m in result.get("authMethods") or []
            if isinstance(m, dict)
        ]
        if self._mode:
            self._setup.append(("session/set_mode", {"modeId": self._mode}))
        if self._model:
            self._setup.append(("session/set_model", {"modelId": self._model}))
        stored = self._request.provider_session_id
        if stored and self._load_supported:
            self._call(
                "session/load",
                {"sessionId": stored, "cwd": self._request.working_dir, "mcpServers": []},
            )
            return []
        self._new_session()
        if stored:
            return [
                self._notice(
                    f"{self._agent} cannot resume conversations (no loadSession); this turn "
                    "starts a new one.",
                    "warning",
                )
            ]
        return []

    def _new_session(self) -> None:
        self._call("session/new", {"cwd": self._request.working_dir, "mcpServers": []})

    def _next_setup_step(self) -> list[Event]:
        """Mode and model first (each waits for its answer), then the prompt."""
        if self._setup:
            method, params = self._setup.pop(0)
            self._call(method, {"sessionId": self._session_id, **params})
            return []
        prompt: list[dict[str, Any]] = []
        if self._instructions:
            prompt.append({"type": "text", "text": tagged("notebook_context", self._instructions)})
        prompt.append({"type": "text", "text": self._request.prompt})
        self._prompt_id = self._call(
            "session/prompt", {"sessionId": self._session_id, "prompt": prompt}
        )
        return []

    def _session_error(self, error: Any) -> Event:
        if isinstance(error, dict) and error.get("code") == AUTH_REQUIRED:
            methods = ", ".join(self._auth_methods) or "its own login"
            message = (
                f"{self._agent} is not logged in ({_error_text(error)}). Log in with the agent's "
                f"own CLI in a terminal on the Jupyter server, or give it an API key through "
                f"c.AcpProvider.env (the agent offers: {methods})."
            )
            return self._end({"type": "error", "code": "not_authenticated", "message": message})
        message = f"{self._agent} could not start a session: {_error_text(error)}"
        return self._end({"type": "error", "code": "provider_failed", "message": message})

    def _prompt_done(self, result: dict[str, Any], error: Any) -> list[Event]:
        self._close()
        if error:
            if isinstance(error, dict) and error.get("code") == AUTH_REQUIRED:
                return [self._session_error(error)]
            message = f"{self._agent} reported an error: {_error_text(error)}"
            return [self._end({"type": "error", "code": "provider_failed", "message": message})]
        events: list[Event] = []
        usage = _usage(result)
        if usage is not None or self._cost:
            input_tokens, output_tokens = usage or (0, 0)
            events.append(
                {
                    "type": "usage",
                    "input_tokens": input_tokens,
                    "output_tokens": output_tokens,
                    "cost_usd": self._cost,
                }
            )
        reason = result.get("stopReason")
        if reason == "cancelled":
            events.append(self._end({"type": "cancelled"}))
            return events
        if reason not in (None, "end_turn"):
            events.append(self._notice(f"{self._agent} stopped: {reason}.", "warning"))
        done: Event = {
            "type": "done",
            "provider_session_id": self._session_id,
            "cost_usd": self._cost,
            "duration_ms": int((time.monotonic() - self._started) * 1000),
        }
        events.append(self._end(done))
        return events

    # -- what the agent sends ----------------------------------------------------------------

    def _update(self, params: dict[str, Any]) -> list[Event]:
        if self._prompt_id is None or self.state.terminal is not None:
            return []  # history replayed by session/load, or anything before our prompt
        if params.get("sessionId") not in (None, self._session_id):
            return []
        update = params.get("update") or {}
        kind = update.get("sessionUpdate")
        if kind in ("agent_message_chunk", "agent_thought_chunk"):
            content = update.get("content") or {}
            if not isinstance(content, dict):
                return []
            text = (
                content.get("text") if content.get("type") == "text" else f"[{content.get('type')}]"
            )
            if not text:
                return []
            etype = "text" if kind == "agent_message_chunk" else "thinking"
            return [{"type": etype, "text": str(text)}]
        if kind in ("tool_call", "tool_call_update"):
            return self._tool_events(update)
        if kind == "plan":
            entries = [
                f"[{'x' if e.get('status') == 'completed' else ' '}] {e.get('content', '')}"
                for e in update.get("entries") or []
                if isinstance(e, dict)
            ]
            return [self._notice("Plan: " + "; ".join(entries), "info")] if entries else []
        if kind == "usage_update":
            cost = update.get("cost")
            if isinstance(cost, dict) and cost.get("currency", "USD") == "USD":
                self._cost = float(cost.get("amount") or 0.0)
        return []

    def _tool_events(self, call: dict[str, Any]) -> list[Event]:
        tool_id = str(call.get("toolCallId", ""))
        events = self._announce(call)
        if call.get("status") in ("completed", "failed"):
            text = _content_text(call.get("content"))
            raw = call.get("rawOutput")
            if raw is not None and not text:
                text = raw if isinstance(raw, str) else json.dumps(raw)
            events.append(
                {
                    "type": "tool_result",
                    "id": tool_id,
                    "content": clip(text),
                    "is_error": call.get("status") == "failed",
                }
            )
        return events

    def _announce(self, call: dict[str, Any]) -> list[Event]:
        tool_id = str(call.get("toolCallId", ""))
        if tool_id in self._tools:
            return []
        self._tools.add(tool_id)
        return [
            {
                "type": "tool_use",
                "id": tool_id,
                "name": _tool_name(call),
                "input": _tool_input(call),
            }
        ]

    def _agent_request(self, message: dict[str, Any]) -> list[Event]:
        rpc_id, method = message.get("id"), message.get("method")
        if method != "session/request_permission":
            # fs/* and terminal/* need capabilities this client does not advertise.
            self._send(
                {"id": rpc_id, "error": {"code": -32601, "message": f"Method not found: {method}"}}
            )
            return []
        params = message.get("params") or {}
        call = params.get("toolCall") or {}
        options = params.get("options") or []
        if not isinstance(call, dict) or self._cancel_sent:
            self._reply(rpc_id, {"outcome": {"outcome": "cancelled"}})
            return []
        events = self._announce(call)
        verdict, why = decide(self._policy, call, self._request.working_dir)
        name, summary = _tool_name(call), str(call.get("title") or _tool_name(call))
        if verdict == "ask":
            request_id = f"acp-{next(self._ask_ids)}"
            self._asks[request_id] = (rpc_id, options)
            events.append(
                {
                    "type": "permission_request",
                    "request_id": request_id,
                    "tool_name": name,
                    "input": _tool_input(call),
                    "summary": f"{summary} ({why})",
                    # Every path the call names, for the engine's approval policy.
                    "paths": tool_paths(call),
                }
            )
            return events
        if verdict == "allow":
            option = _option(options, "allow_once", "allow_always")
            events.append(self._notice(f"Allowed {summary}: {why}.", "info"))
        else:
            option = _option(options, "reject_once", "reject_always")
            events.append(
                {
                    "type": "permission_denied",
                    "tool_name": name,
                    "input": _tool_input(call),
                    "message": f"Refused {summary}: {why}. {POLICY_HINT}",
                }
            )
        if option is None:
            self._reply(rpc_id, {"outcome": {"outcome": "cancelled"}})
        else:
            self._reply(rpc_id, {"outcome": {"outcome": "selected", "optionId": option}})
        return events

    # -- helpers ---------------------------------------------------------------------------

    def _notice(self, message: str, level: str) -> Event:
        return {"type": "notice", "level": level, "message": message}

    def _end(self, event: Event) -> Event:
        self.state.terminal = event
        self._close()
        return event

    def _close(self) -> None:
        # The turn is over for us: closing stdin lets the agent exit on its own.
        if self._io is not None:
            self._io.close()


def _tool_name(call: dict[str, Any]) -> str:
    return str(call.get("kind") or "tool")


def _tool_input(call: dict[str, Any]) -> Any:
    raw = call.get("rawInput")
    if isinstance(raw, dict) and raw:
        return raw
    return {"title": call.get("title"), "paths": tool_paths(call)}


def _usage(result: dict[str, Any]) -> tuple[int, int] | None:
    """Token counts some agents add to the prompt result (gemini: _meta.quota.token_count)."""
    meta = result.get("_meta") or {}
    quota = meta.get("quota") if isinstance(meta, dict) else None
    counts = quota.get("token_count") if isinstance(quota, dict) else None
    if isinstance(counts, dict):
        return int(counts.get("input_tokens") or 0), int(counts.get("output_tokens") or 0)
    return None


def _error_text(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    text = str(error.get("message", "error"))
    data = error.get("data")
    if isinstance(data, dict) and data.get("details"):
        text += f": {data['details']}"
    elif isinstance(data, str):
        text += f": {data}"
    return text


async def acp_handshake(
    argv: list[str], env: dict[str, str], timeout: float = 15.0
) -> dict[str, Any]:
    """Start the agent, send ``initialize`` and return its result (no session, no model call)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    request = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "clientCapabilities": {"fs": {"readTextFile": False, "writeTextFile": False}},
        },
    }
    try:
        proc.stdin.write(json.dumps(request).encode() + b"\n")
        await proc.stdin.drain()

        async def answer() -> dict[str, Any]:
            assert proc.stdout is not None
            while True:
                line = await proc.stdout.readline()
                if not line:
                    raise RuntimeError(
                        f"the agent exited (code {await proc.wait()}) without answering"
                    )
                message = json_object(line)
                if message is not None and message.get("id") == 1:
                    if "error" in message:
                        raise RuntimeError(_error_text(message["error"]))
                    result = message.get("result")
                    return result if isinstance(result, dict) else {}

        return await asyncio.wait_for(answer(), timeout)
    finally:
        with contextlib.suppress(Exception):
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 3.0)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


class AcpProvider(Provider):
    """An agent that speaks the Agent Client Protocol, started with ``command``."""

    name: ClassVar[str] = "acp"
    display_name: ClassVar[str] = "ACP agent"
    install_hint: ClassVar[str] = "set c.AcpProvider.command, e.g. ['gemini', '--acp']"

    command = Union(
        [List(Unicode()), Unicode()],
        default_value=[],
        help="The agent's command line, e.g. ['gemini', '--acp'] or ['claude-agent-acp'].",
    ).tag(config=True)

    model = Unicode(
        None, allow_none=True, help="Model id sent with session/set_model (if the agent has it)."
    ).tag(config=True)

    mode = Unicode(
        None,
        allow_none=True,
        help="Session mode id sent with session/set_mode (gemini: default, autoEdit, yolo, plan).",
    ).tag(config=True)

    permission_policy = Enum(
        ["workdir", "ask", "reject", "allow"],
        default_value="workdir",
        help=(
            "How the agent's permission requests are answered. workdir: allow calls whose every "
            "path is inside the notebook's folder (read, edit, delete, move, search), refuse the "
            "rest (shell commands, fetches, unknown kinds); ask: allow the same, ask the user "
            "about the rest; reject: refuse all; allow: allow all."
        ),
    ).tag(config=True)

    extra_args = StringList(
        default_value=[], help="Further arguments for the agent, appended as given."
    ).tag(config=True)

    append_system_prompt = Unicode(
        "", help="Text added to the notebook context sent with each prompt."
    ).tag(config=True)

    _health_cache: tuple[float, str, ProviderHealth] | None = None

    def executable_argv(self) -> list[str]:
        return command_argv(self.command) + list(self.extra_args)

    def build_launch(self, request: TurnRequest, base_env: dict[str, str]) -> LaunchSpec:
        env = {**base_env, **self.env}
        if not command_argv(self.command):
            raise ProviderUnavailable("provider_not_found", NO_COMMAND)
        argv = resolve_command(self.executable_argv(), env, self.display_name, NO_COMMAND, SETTING)
        # stdin must be a pipe: the conversation runs over it (the runner does not write this).
        return LaunchSpec(argv=argv, env=env, stdin=b"", cwd=request.working_dir)

    def create_parser(self, request: TurnRequest) -> StreamParser:
        instructions = notebook_instructions(
            request.notebook_path, request.working_dir, request.context, self.append_system_prompt
        )
        return AcpClient(
            request,
            policy=self.permission_policy,
            mode=self.mode,
            model=request.model or self.model,
            instructions=instructions,
        )

    async def health(self) -> ProviderHealth:
        """The agent's answer to ``initialize`` (its name and version). Starting an agent costs
        seconds of CPU (gemini: about 2.5 s), so a working answer is kept for a while."""
        env = provider_environment(self.env)
        argv = self.executable_argv()
        key = json.dumps([argv, env], sort_keys=True)
        cached = self._health_cache
        if cached is not None and cached[1] == key and time.monotonic() - cached[0] < HEALTH_TTL:
            return dataclasses.replace(cached[2])
        health = await self._check(argv, env)
        if health.available:
            self._health_cache = (time.monotonic(), key, dataclasses.replace(health))
        return health

    async def _check(self, argv: list[str], env: dict[str, str]) -> ProviderHealth:
        health = ProviderHealth(self.name, self.display_name, available=False)
        if not command_argv(self.command):
            health.problem = NO_COMMAND
            return health
        resolved = self.which(argv[0], env.get("PATH"))
        if resolved is None:
            health.problem = f"ACP agent not found ({argv[0]!r}): install it, or fix {SETTING}."
            return health
        health.executable = resolved
        try:
            result = await acp_handshake([resolved, *argv[1:]], env)
        except Exception as exc:  # any failure to start it is reported, not raised
            reason = str(exc) or type(exc).__name__
            health.problem = f"{' '.join(argv)} did not answer ACP initialize: {reason}"
            return health
        info = result.get("agentInfo") or {}
        if isinstance(info, dict):
            health.version = str(info["version"]) if info.get("version") else None
            title = info.get("title") or info.get("name")
            if title:
                health.display_name = f"{title} (ACP)"
        if result.get("protocolVersion") != PROTOCOL_VERSION:
            health.problem = (
                f"The agent speaks ACP protocol version {result.get('protocolVersion')}; this "
                f"client speaks {PROTOCOL_VERSION}."
            )
            return health
        health.available = True
        # Whether the agent is logged in shows only when a session starts.
        health.credentials = "unknown"
        return health
