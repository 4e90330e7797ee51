"""Claude Code (``claude -p --output-format stream-json``) as a provider: the command line of a
turn and the CLI's health. Its output is parsed by claude_stream.py (print mode) or
claude_control.py (interactive mode, the default).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path
from typing import ClassVar

from traitlets import Bool, Enum

from ..traits import StringList
from .base import (
    EditMode,
    LaunchSpec,
    SetupStep,
    StreamParser,
    TurnRequest,
    private_file,
    run_briefly,
)
from .claude_control import ClaudeControlParser
from .claude_stream import ClaudeStreamParser
from .cli_provider import CliProvider, command_trait

INSTALL_HINT = "npm install -g @anthropic-ai/claude-code"
# Asks the CLI whether it is logged in: no model call. `claude auth status` in words.
LOGIN_CHECK_ARGS = ("auth", "status", "--json")
# Tools the interactive CLI offers that need a user interface this client does not have.
INTERACTIVE_DISALLOWED = ("AskUserQuestion",)
# How long the CLI waits for an MCP server to connect (its MCP_TIMEOUT), unless set already.
MCP_CONNECT_TIMEOUT_MS = 30_000


class ClaudeCodeProvider(CliProvider):
    """Anthropic's Claude Code CLI, run in print mode with stream-json output."""

    name: ClassVar[str] = "claude"
    display_name: ClassVar[str] = "Claude Code"
    install_step: ClassVar[SetupStep | None] = SetupStep(INSTALL_HINT)
    login_check: ClassVar[str | None] = "claude auth status"
    login_step: ClassVar[SetupStep | None] = SetupStep(
        "claude", "then type /login. Or set ANTHROPIC_API_KEY in the server's environment."
    )
    # On SIGINT the CLI aborts its running tools (which it starts in sessions of their own)
    # and saves the interrupted conversation; on SIGTERM it leaves both behind.
    interrupt_signal: ClassVar[int] = int(signal.SIGINT)
    cli_name: ClassVar[str] = "Claude Code CLI"

    command = command_trait("claude")

    interactive = Bool(
        True,
        help=(
            "Run the CLI with --input-format stream-json --permission-prompt-tool stdio, so "
            "that a tool call it would ask about is decided by the approval policy "
            "(c.AssistantExtension.permission_*) or asked to the user, and Stop first asks it "
            "to interrupt itself. False: print mode (-p with the prompt on stdin), where such "
            "calls are refused."
        ),
    ).tag(config=True)

    permission_mode = Enum(
        ["default", "acceptEdits", "plan", "bypassPermissions", "dontAsk", "auto"],
        default_value=None,
        allow_none=True,
        help=(
            "--permission-mode. Default: 'default' in interactive mode (file edits and shell "
            "commands are asked about), 'acceptEdits' in print mode (edits inside the "
            "notebook's folder run; shell commands need allowed_tools). acceptEdits in "
            "interactive mode lets edits inside the folder run without asking. "
            "bypassPermissions allows everything."
        ),
    ).tag(config=True)

    allowed_tools = StringList(
        default_value=[],
        help="Tools allowed without asking, as Claude Code rules, e.g. ['Bash(ls:*)', 'WebFetch'].",
    ).tag(config=True)

    disallowed_tools = StringList(
        default_value=[], help="Tools the agent must never use, e.g. ['Bash(rm:*)']."
    ).tag(config=True)

    include_partial_messages = True
    supports_notebook_tools: ClassVar[bool] = True

    def notebook_edits(self) -> EditMode:
        mode = self.effective_permission_mode()
        if mode in ("acceptEdits", "bypassPermissions", "auto"):
            return "allow"
        return "deny" if mode in ("plan", "dontAsk") else "ask"

    def build_launch(self, request: TurnRequest, base_env: dict[str, str]) -> LaunchSpec:
        env = self.launch_env(base_env)
        argv = self.resolved_argv(env)
        argv += ["-p", "--output-format", "stream-json", "--verbose"]
        if self.include_partial_messages:
            argv.append("--include-partial-messages")
        if self.interactive:
            argv += ["--input-format", "stream-json", "--permission-prompt-tool", "stdio"]
        argv += ["--permission-mode", self.effective_permission_mode()]
        if request.provider_session_id:
            argv.append(f"--resume={request.provider_session_id}")
        model = self.turn_model(request)
        if model:
            argv += ["--model", model]
        allowed = list(self.allowed_tools)
        cleanup: list[str] = []
        contents: dict[str, str] = {}  # the private files' texts
        tools = request.notebook_tools
        if tools is not None:
            # The capability must not show in `ps`: the MCP configuration is a private file.
            config = {
                "mcpServers": {
                    tools.name: {"type": "http", "url": tools.url, "headers": tools.headers()}
                }
            }
            config_text = json.dumps(config)
            config_file = private_file(request, config_text, "claude-mcp-", ".json")
            cleanup.append(config_file)
            contents[config_file] = config_text
            argv += ["--mcp-config", config_file]
            # The tools' MCP server answers once the server imported its SDK (about a second on
            # the first turn, more on a busy machine): the CLI must not give up on it before.
            env.setdefault("MCP_TIMEOUT", str(MCP_CONNECT_TIMEOUT_MS))
            # The server asks the user about each notebook tool call itself (the same way for
            # every provider), so the CLI does not ask again.
            allowed.append(f"mcp__{tools.name}")
        if allowed:
            argv += ["--allowedTools", *allowed]
        disallowed = [*INTERACTIVE_DISALLOWED] if self.interactive else []
        disallowed += [t for t in self.disallowed_tools if t not in disallowed]
        if disallowed:
            argv += ["--disallowedTools", *disallowed]
        # The system prompt (where the notebook is, append_system_prompt) goes in a private
        # file, never on the command line, which every local user can read in `ps`. The
        # request's notebook context (a cell may hold a secret) goes with the prompt on stdin:
        # a warm CLI cannot change its system prompt, but takes each message's own context.
        system_text = self.instructions(request, with_context=False)
        system_file = private_file(request, system_text, "claude-system-")
        argv += ["--append-system-prompt-file", system_file]
        cleanup.append(system_file)
        contents[system_file] = system_text
        argv += list(self.extra_args)
        # Interactive: the parser sends the prompt as a stream-json message (start()).
        stdin = None if self.interactive else self.prompt_with_context(request).encode()
        launch = LaunchSpec(
            argv=argv, env=env, stdin=stdin, cwd=request.working_dir, cleanup=cleanup
        )
        if self.interactive:
            launch.reuse_key = _reuse_key(launch, contents)
        return launch

    def prewarms(self) -> bool:
        # Interactive mode only: the process is initialized and waits for its first message.
        return bool(self.interactive)

    def effective_permission_mode(self) -> str:
        if self.permission_mode is not None:
            return str(self.permission_mode)
        return "default" if self.interactive else "acceptEdits"

    def create_parser(self, request: TurnRequest) -> StreamParser:
        if self.interactive:
            return ClaudeControlParser(
                None if request.prewarm else self.prompt_with_context(request),
                request.working_dir,
                initialize=not request.reuses_process,
                close_after_result=not request.keep_process,
            )
        return ClaudeStreamParser()

    def credentials_state(self, env: dict[str, str]) -> str:
        if env.get("ANTHROPIC_API_KEY") or env.get("CLAUDE_CODE_OAUTH_TOKEN"):
            return "present"
        config_dir = Path(env.get("CLAUDE_CONFIG_DIR") or Path(env.get("HOME", "~")) / ".claude")
        if (config_dir.expanduser() / ".credentials.json").exists():
            return "present"
        # Logins may also live in the OS keychain, which we do not read.
        return "unknown"

    async def credentials(self, argv: list[str], env: dict[str, str]) -> str:
        if os.environ.get("CLAUDE_CODE_USE_BEDROCK") or os.environ.get("CLAUDE_CODE_USE_VERTEX"):
            return "unknown"
        found = self.credentials_state(env)
        if found == "unknown":
            # No key and no credentials file: the login may be in the OS keychain. The CLI's
            # own `auth status` tells, without a model call (and so without a cost).
            return await self.login_state(argv, env)
        return found

    async def login_state(self, argv: list[str], env: dict[str, str]) -> str:
        """``present``/``missing`` from ``claude auth status --json``; ``unknown`` if this CLI
        cannot tell (an older version, or no answer in time)."""
        try:
            _, out, _ = await run_briefly([*argv, *LOGIN_CHECK_ARGS], env)  # exit 1: logged out
            status = json.loads(out)
        except (OSError, TimeoutError, ValueError):
            return "unknown"
        if not isinstance(status, dict) or not isinstance(status.get("loggedIn"), bool):
            return "unknown"
        return "present" if status["loggedIn"] else "missing"


def _reuse_key(launch: LaunchSpec, contents: dict[str, str]) -> str:
    """What a running CLI was started with, apart from the turn's prompt and the
    conversation it resumes: the command line with the private files' contents in place of
    their (per-turn) names, the environment, the folder. The notebook context is not in
    it (it goes with each message), so a turn with other context takes the same process; the MCP
    configuration holds the notebook tools' capability, which the runner keeps the same
    for the turns of one warm process (each grant still lives only while its turn runs)."""
    parts = [
        "file:" + contents[arg] if arg in contents else arg
        for arg in launch.argv
        if not arg.startswith("--resume=")
    ]
    text = json.dumps([parts, sorted(launch.env.items()), launch.cwd])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
