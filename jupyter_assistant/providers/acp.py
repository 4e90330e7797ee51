"""Any Agent Client Protocol (ACP) agent as a provider: JSON-RPC 2.0 over the agent's stdio.

The conversation of a turn is acp_client.py's. The client advertises no capabilities (no
``fs/*``, no ``terminal/*``): the agent uses its own tools in the notebook's folder. Its
``session/request_permission`` requests are answered by ``AcpProvider.permission_policy``
(acp_protocol.py's ``decide``, which uses permissions.py's policy).

Checked against gemini 0.61.0 (``gemini --acp``) run against a local Gemini API stand-in;
samples in tests/fakes/wire-samples/acp/.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import time
from typing import Any, ClassVar

from traitlets import Bool, Enum, List, Unicode, Union

from .acp_client import AcpClient as AcpClient
from .acp_protocol import PROTOCOL_VERSION, error_text, initialize_params
from .acp_protocol import decide as decide
from .base import (
    EditMode,
    LaunchSpec,
    ProviderHealth,
    StreamParser,
    TurnRequest,
    provider_environment,
)
from .cli_provider import CliProvider
from .cli_support import command_argv, json_object

NO_COMMAND = (
    "No ACP agent is configured: set c.AcpProvider.command, e.g. ['gemini', '--acp'] "
    "(npm install -g @google/gemini-cli)."
)
HEALTH_TTL = 300.0  # seconds a working initialize answer is reused


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
    request = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize_params()}
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
                        raise RuntimeError(error_text(message["error"]))
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


class AcpProvider(CliProvider):
    """An agent that speaks the Agent Client Protocol, started with ``command``."""

    name: ClassVar[str] = "acp"
    display_name: ClassVar[str] = "ACP agent"
    install_hint: ClassVar[str] = "set c.AcpProvider.command, e.g. ['gemini', '--acp']"
    cli_name: ClassVar[str] = "ACP agent"
    # An ACP agent is a server: the turn ends when session/prompt answers. Its stdin is closed
    # then; the adapters on npm stay up for seconds more (claude-code-acp and codex-acp 0.16
    # took 10 s, the whole old wait), so it is stopped soon after.
    exit_after_result_seconds: ClassVar[float] = 0.5

    command = Union(
        [List(Unicode()), Unicode()],
        default_value=[],
        help="The agent's command line, e.g. ['gemini', '--acp'] or ['claude-agent-acp'].",
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

    cumulative_cost = Bool(
        True,
        help=(
            "Whether the cost in the agent's usage_update is the session's running total, as "
            "ACP says and claude-agent-acp reports it (a turn then costs what it added to the "
            "total); False for an agent that reports each turn's own cost."
        ),
    ).tag(config=True)

    _health_cache: tuple[float, str, ProviderHealth] | None = None
    # Given in session/new's mcpServers when the agent takes HTTP MCP servers (acp_client.py).
    supports_notebook_tools: ClassVar[bool] = True

    def notebook_edits(self) -> EditMode:
        # Every policy but reject allows edits inside the notebook's folder without asking.
        return "deny" if self.permission_policy == "reject" else "allow"

    def executable_argv(self) -> list[str]:
        return command_argv(self.command) + list(self.extra_args)

    def no_command_message(self) -> str:
        return NO_COMMAND

    def not_found_message(self, executable: str) -> str:
        return f"ACP agent not found ({executable!r}): install it, or fix {self.command_setting}."

    def build_launch(self, request: TurnRequest, base_env: dict[str, str]) -> LaunchSpec:
        env = self.launch_env(base_env)
        argv = self.resolved_argv(env)
        # stdin must be a pipe: the conversation runs over it (the runner does not write this).
        launch = LaunchSpec(argv=argv, env=env, stdin=b"", cwd=request.working_dir)
        # A warm agent (turns/warm.py) takes the session's next session/prompt on the same
        # connection: the same agent, environment and folder, and the same mode and model,
        # which are set when its session starts. (The notebook context goes with each prompt.)
        key = [argv, sorted(env.items()), launch.cwd, self.mode, self.turn_model(request)]
        key += [self.permission_policy, self.cumulative_cost]
        launch.reuse_key = hashlib.sha256(
            json.dumps(key).encode("utf-8", "surrogatepass")
        ).hexdigest()
        return launch

    def create_parser(self, request: TurnRequest) -> StreamParser:
        return AcpClient(
            request,
            policy=self.permission_policy,
            mode=self.mode,
            model=self.turn_model(request),
            instructions=self.instructions(request),
            cumulative_cost=self.cumulative_cost,
        )

    async def health(self) -> ProviderHealth:
        """The agent's answer to ``initialize`` (its name and version). Starting an agent costs
        seconds of CPU (gemini: about 2.5 s), so a working answer is kept for a while."""
        env = provider_environment(self.env)
        key = json.dumps([self.executable_argv(), env], sort_keys=True)
        cached = self._health_cache
        if cached is not None and cached[1] == key and time.monotonic() - cached[0] < HEALTH_TTL:
            return dataclasses.replace(cached[2])
        health = await super().health()
        if health.available:
            self._health_cache = (time.monotonic(), key, dataclasses.replace(health))
        return health

    async def probe(self, argv: list[str], env: dict[str, str], health: ProviderHealth) -> None:
        result = await acp_handshake(argv, env)
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
        # Whether the agent is logged in shows only when a session starts: credentials stay
        # unknown.

    def probe_failed_message(self, argv: list[str], reason: str) -> str:
        return f"{' '.join(argv)} did not answer ACP initialize: {reason}"
