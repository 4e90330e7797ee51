"""The client side of one turn's Agent Client Protocol conversation: JSON-RPC 2.0 over the
agent's stdio (acp.py has the provider; acp_protocol.py what the messages mean).

A turn: ``initialize`` -> ``session/new {cwd, mcpServers}`` (or ``session/load`` of the stored
session id when the agent advertises ``loadSession``) -> ``session/prompt`` -> ``session/update``
notifications -> the prompt's ``{stopReason}``; then stdin is closed so that the agent exits.
A warm agent (turns/warm.py: ``TurnRequest.keep_process``) keeps its stdin open instead, and
the session's next turn on it (``reuses_process``) is only a ``session/prompt`` in the same
session, on the same connection. Stop sends ``session/cancel`` (and answers pending permission
requests with ``cancelled``) before the runner's signals.

gemini 0.61.0 streams the history of a loaded session *after* answering ``session/load`` (the
protocol says before), so after a load this client sends one extension request as a barrier
and takes updates as the turn's only after its answer.

``mcpServers`` holds the notebook tools (an MCP server over HTTP, with the turn's capability in a
header) when the turn has them and the agent advertises ``mcpCapabilities.http``; else it is
empty (every agent must take stdio servers, which this server does not offer).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from .. import events
from .acp_costs import CostLedger, turn_cost
from .acp_protocol import (
    AUTH_REQUIRED,
    METHOD_NOT_FOUND,
    POLICY_HINT,
    PROTOCOL_VERSION,
    ROOT_HINT,
    content_text,
    decide,
    error_text,
    initialize_params,
    notebook_tool_call,
    notice_update,
    option_id,
    prompt_usage,
    root_refusal,
    tool_input,
    tool_name,
    tool_paths,
    warning_chunk,
)
from .base import Event, ProviderIO, TurnRequest
from .cli_support import JsonLinesParser, clip, stderr_summary, tagged

SETTING = "c.AcpProvider.command"
BARRIER_METHOD = "_jupyter_assistant/barrier"


class AcpClient(JsonLinesParser):
    """The client side of one turn's ACP conversation; the runner's interactive parser."""

    interactive = True

    def __init__(
        self,
        request: TurnRequest,
        policy: str = "workdir",
        mode: str | None = None,
        model: str | None = None,
        instructions: str = "",
        cumulative_cost: bool = True,
    ) -> None:
        # resume_failed stays False: a failed load falls back to a new session in-process.
        super().__init__()
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
        self._mcp_http = False
        self._tools: set[str] = set()
        self._asks: dict[str, tuple[Any, list[Any]]] = {}  # our request id -> (rpc id, options)
        self._ask_ids = itertools.count(1)
        self._cancel_sent = False
        # The cost the agent reports (usage_update): the session's running total as ACP says
        # (acp_costs.py), so the turn costs what it added to the total before it; or, with
        # cumulative_cost False, the turn's own.
        self._cumulative = cumulative_cost
        self._costs = CostLedger(request.scratch_dir)
        self._cost_before: float | None = None
        self._cost_total: float | None = None

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

    def _outcome(self, rpc_id: Any, option: str | None) -> None:
        """Answer a permission request with the option chosen (None: none fits: cancelled)."""
        if option is None:
            self._reply(rpc_id, {"outcome": {"outcome": "cancelled"}})
        else:
            self._reply(rpc_id, {"outcome": {"outcome": "selected", "optionId": option}})

    # -- the protocol the runner drives ----------------------------------------------------

    def start(self, io: ProviderIO) -> None:
        self._io = io
        running = self._request.provider_session_id
        if self._request.reuses_process and running:
            # The agent runs, initialized, its session open (an earlier turn's): prompt it.
            self._session_id = running
            self.state.provider_session_id = running
            self._mcp_http = self._request.notebook_tools is not None  # given at session/new
            self._cost_before = self._costs.total(running)
            self._next_setup_step()
            return
        self._call("initialize", initialize_params())

    def interrupt(self) -> bool:
        if self._prompt_id is None or self.state.terminal is not None or self._session_id is None:
            return False
        if not self._cancel_sent:
            self._cancel_sent = True
            self._send({"method": "session/cancel", "params": {"sessionId": self._session_id}})
            # The protocol: pending permission requests are answered "cancelled".
            for rpc_id, _ in self._asks.values():
                self._outcome(rpc_id, None)
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
            option = option_id(options, *kinds, "allow_always")
        else:
            option = option_id(options, "reject_once", "reject_always")
        self._outcome(rpc_id, option)
        return True

    def parse(self, obj: dict[str, Any]) -> list[Event]:
        if "method" in obj and "id" in obj:
            return self._agent_request(obj)
        if "method" in obj:
            if obj["method"] == "session/update":
                return self._update(obj.get("params") or {})
            return []
        if "id" in obj:
            return self._response(obj)
        return []

    def exit_error(self, returncode: int, stderr_tail: str) -> Event:
        detail = stderr_summary(stderr_tail)
        stage = "before answering" if self._session_id is None else "before the turn ended"
        if root_refusal(stderr_tail):
            message = f"{self._agent} exited with code {returncode} {stage}: {detail}. {ROOT_HINT}"
            return events.error("provider_failed", message)
        return events.error(
            "provider_failed",
            f"{self._agent} exited with code {returncode} {stage}: {detail}. Check "
            f"that {SETTING} starts an ACP agent (e.g. ['gemini', '--acp']).",
        )

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
            self._cost_before = 0.0
            return self._next_setup_step()
        if purpose == "session/load":
            if error:
                notice = events.notice(
                    f"{self._agent} could not load the earlier conversation "
                    f"({error_text(error)}); this turn starts a new one.",
                    "warning",
                )
                self._new_session()
                return [notice]
            self._session_id = self._request.provider_session_id
            self.state.provider_session_id = self._session_id
            if self._session_id:
                self._cost_before = self._costs.total(self._session_id)
            self._call(BARRIER_METHOD, {}, "barrier")
            return []
        if purpose == "barrier":
            return self._next_setup_step()
        if purpose in ("session/set_mode", "session/set_model"):
            refused: list[Event] = []
            if error:
                what = "mode" if purpose.endswith("mode") else "model"
                refusal = f"{self._agent} refused the {what}: {error_text(error)}"
                refused.append(events.notice(refusal, "warning"))
            return refused + self._next_setup_step()
        if purpose == "session/prompt":
            return self._prompt_done(result, error)
        return []

    def _initialized(self, result: dict[str, Any], error: Any) -> list[Event]:
        if error:
            message = f"{self._agent} refused to start: {error_text(error)}"
            return [self.end_with(events.error("provider_failed", message))]
        info = result.get("agentInfo") or {}
        if isinstance(info, dict) and (info.get("title") or info.get("name")):
            self._agent = str(info.get("title") or info.get("name"))
        version = result.get("protocolVersion")
        if version != PROTOCOL_VERSION:
            message = (
                f"{self._agent} speaks ACP protocol version {version}; this client speaks "
                f"{PROTOCOL_VERSION}. Use an agent release for protocol version 1."
            )
            return [self.end_with(events.error("provider_failed", message))]
        capabilities = result.get("agentCapabilities") or {}
        capabilities = capabilities if isinstance(capabilities, dict) else {}
        self._load_supported = bool(capabilities.get("loadSession"))
        mcp = capabilities.get("mcpCapabilities")
        self._mcp_http = isinstance(mcp, dict) and mcp.get("http") is True
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
                {
                    "sessionId": stored,
                    "cwd": self._request.working_dir,
                    "mcpServers": self._mcp_servers(),
                },
            )
            return []
        self._new_session()
        if stored:
            return [
                events.notice(
                    f"{self._agent} cannot resume conversations (no loadSession); this turn "
                    "starts a new one.",
                    "warning",
                )
            ]
        return []

    def _new_session(self) -> None:
        params = {"cwd": self._request.working_dir, "mcpServers": self._mcp_servers()}
        self._call("session/new", params)

    def _mcp_servers(self) -> list[dict[str, Any]]:
        """The notebook tools as an ACP HTTP MCP server, if the turn has them and the agent
        takes HTTP servers; the capability goes over the agent's stdin, never its argv."""
        tools = self._request.notebook_tools
        if tools is None or not self._mcp_http:
            return []
        headers = [{"name": name, "value": value} for name, value in tools.headers().items()]
        return [{"type": "http", "name": tools.name, "url": tools.url, "headers": headers}]

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
        if root_refusal(error_text(error)):
            message = f"{self._agent} could not start a session: {error_text(error)}. {ROOT_HINT}"
            return self.end_with(events.error("provider_failed", message))
        if isinstance(error, dict) and error.get("code") == AUTH_REQUIRED:
            methods = ", ".join(self._auth_methods) or "its own login"
            message = (
                f"{self._agent} is not logged in ({error_text(error)}). Log in with the agent's "
                f"own CLI in a terminal on the Jupyter server, or give it an API key through "
                f"c.AcpProvider.env (the agent offers: {methods})."
            )
            return self.end_with(events.error("not_authenticated", message))
        message = f"{self._agent} could not start a session: {error_text(error)}"
        return self.end_with(events.error("provider_failed", message))

    def _prompt_done(self, result: dict[str, Any], error: Any) -> list[Event]:
        if not self._request.keep_process or error or result.get("stopReason") == "cancelled":
            self._close()  # a warm agent waits for the next prompt; a failed one is not kept
        if error:
            if isinstance(error, dict) and error.get("code") == AUTH_REQUIRED:
                return [self._session_error(error)]
            if root_refusal(error_text(error)):
                return [self._session_error(error)]
            message = f"{self._agent} reported an error: {error_text(error)}"
            return [self.end_with(events.error("provider_failed", message))]
        out: list[Event] = []
        usage = prompt_usage(result)
        cost = self._turn_cost()
        if usage is not None or cost:
            input_tokens, output_tokens = usage or (0, 0)
            out.append(events.usage(input_tokens, output_tokens, cost))
        reason = result.get("stopReason")
        if reason == "cancelled":
            out.append(self.end_with(events.cancelled()))
            return out
        if reason not in (None, "end_turn"):
            out.append(events.notice(f"{self._agent} stopped: {reason}.", "warning"))
        out.append(self.end_with(events.done(self._session_id, cost, self.elapsed_ms())))
        return out

    def _turn_cost(self) -> float:
        if self._cost_total is None:
            return 0.0
        if not self._cumulative:
            return self._cost_total
        return turn_cost(self._cost_total, self._cost_before)

    # -- what the agent sends ----------------------------------------------------------------

    def _update(self, params: dict[str, Any]) -> list[Event]:
        update = params.get("update") or {}
        update = update if isinstance(update, dict) else {}
        kind = update.get("sessionUpdate")
        if kind == "notice" and self.state.terminal is None:
            # Not history: shown whenever it comes (an agent may warn while the session starts).
            said, level = notice_update(update)
            return [events.notice(said, level)] if said else []
        if self._prompt_id is None or self.state.terminal is not None:
            return []  # history replayed by session/load, or anything before our prompt
        if params.get("sessionId") not in (None, self._session_id):
            return []
        if kind in ("agent_message_chunk", "agent_thought_chunk"):
            content = update.get("content") or {}
            if not isinstance(content, dict):
                return []
            text = (
                content.get("text") if content.get("type") == "text" else f"[{content.get('type')}]"
            )
            if not text:
                return []
            warning = warning_chunk(update, str(text)) if kind == "agent_message_chunk" else None
            if warning is not None:
                return [events.notice(f"{self._agent} reported a warning: {warning}", "warning")]
            make = events.text if kind == "agent_message_chunk" else events.thinking
            return [make(str(text))]
        if kind in ("tool_call", "tool_call_update"):
            return self._tool_events(update)
        if kind == "plan":
            entries = [
                f"[{'x' if e.get('status') == 'completed' else ' '}] {e.get('content', '')}"
                for e in update.get("entries") or []
                if isinstance(e, dict)
            ]
            return [events.notice("Plan: " + "; ".join(entries))] if entries else []
        if kind == "usage_update":
            cost = update.get("cost")
            if isinstance(cost, dict) and cost.get("currency", "USD") == "USD":
                self._cost_total = float(cost.get("amount") or 0.0)
                if self._cumulative and self._session_id:
                    # At once: a turn stopped before its answer has still spent it.
                    self._costs.record(self._session_id, self._cost_total)
        return []

    def _tool_events(self, call: dict[str, Any]) -> list[Event]:
        tool_id = str(call.get("toolCallId", ""))
        out = self._announce(call)
        if call.get("status") in ("completed", "failed"):
            text = content_text(call.get("content"))
            raw = call.get("rawOutput")
            if raw is not None and not text:
                text = raw if isinstance(raw, str) else json.dumps(raw)
            out.append(events.tool_result(tool_id, clip(text), call.get("status") == "failed"))
        return out

    def _announce(self, call: dict[str, Any]) -> list[Event]:
        tool_id = str(call.get("toolCallId", ""))
        if tool_id in self._tools:
            return []
        self._tools.add(tool_id)
        return [events.tool_use(tool_id, tool_name(call), tool_input(call))]

    def _agent_request(self, message: dict[str, Any]) -> list[Event]:
        rpc_id, method = message.get("id"), message.get("method")
        if method != "session/request_permission":
            # fs/* and terminal/* need capabilities this client does not advertise.
            error = {"code": METHOD_NOT_FOUND, "message": f"Method not found: {method}"}
            self._send({"id": rpc_id, "error": error})
            return []
        params = message.get("params") or {}
        call = params.get("toolCall") or {}
        options = params.get("options") or []
        if not isinstance(call, dict) or self._cancel_sent:
            self._outcome(rpc_id, None)
            return []
        out = self._announce(call)
        tools = self._request.notebook_tools
        if tools is not None and self._mcp_http and notebook_tool_call(call, tools.name):
            # The server asks the user about each notebook tool call itself (as for every
            # provider): the agent's own question is answered yes, once.
            self._outcome(rpc_id, option_id(options, "allow_once", "allow_always"))
            return out
        verdict, why = decide(self._policy, call, self._request.working_dir)
        name, summary = tool_name(call), str(call.get("title") or tool_name(call))
        if verdict == "ask":
            request_id = f"acp-{next(self._ask_ids)}"
            self._asks[request_id] = (rpc_id, options)
            asked = events.permission_request(
                request_id, name, tool_input(call), f"{summary} ({why})"
            )
            # Every path the call names, for the engine's approval policy.
            out.append({**asked, "paths": tool_paths(call)})
            return out
        if verdict == "allow":
            option = option_id(options, "allow_once", "allow_always")
            out.append(events.notice(f"Allowed {summary}: {why}."))
        else:
            option = option_id(options, "reject_once", "reject_always")
            message_text = f"Refused {summary}: {why}. {POLICY_HINT}"
            out.append(events.permission_denied(name, tool_input(call), message_text))
        self._outcome(rpc_id, option)
        return out

    # -- helpers ---------------------------------------------------------------------------

    def end_with(self, terminal: Event) -> Event:
        # The turn is over for us: closing stdin lets the agent exit on its own (a warm one
        # after a done waits for the session's next prompt instead).
        if not (self._request.keep_process and terminal["type"] == "done"):
            self._close()
        return super().end_with(terminal)

    def _close(self) -> None:
        if self._io is not None:
            self._io.close()
