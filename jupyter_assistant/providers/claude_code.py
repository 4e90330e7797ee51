"""Claude Code (``claude -p --output-format stream-json``) as a provider.

Wire format (checked against claude 2.1.197, samples in tests/fakes/wire-samples/): one JSON
object per line: ``system/init`` (session_id, cwd), ``stream_event`` (raw API stream events, with
``--include-partial-messages``), ``assistant`` (complete content blocks: text, thinking, tool_use),
``user`` (tool_result blocks) and a final ``result`` in which ``is_error`` (not ``subtype``) tells
failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any, ClassVar

from traitlets import Bool, Enum, List, Unicode, Union

from ..traits import StringList
from .base import (
    Event,
    LaunchSpec,
    ParserState,
    Provider,
    ProviderHealth,
    ProviderUnavailable,
    SetupStep,
    StreamParser,
    TurnRequest,
    private_file,
)

INSTALL_HINT = "npm install -g @anthropic-ai/claude-code"
# Asks the CLI whether it is logged in: no model call. `claude auth status` in words.
LOGIN_CHECK_ARGS = ("auth", "status", "--json")
LOGIN_HINT = (
    "Claude Code is not logged in. Run `claude` in a terminal on the Jupyter server and log in "
    "with /login, or set ANTHROPIC_API_KEY in the server's environment "
    "(or c.ClaudeCodeProvider.env = {'ANTHROPIC_API_KEY': ...})."
)
NO_CONVERSATION = "No conversation found with session ID"
CONTEXT_HEADING = "Context sent with this request from the user's notebook:\n\n"
MAX_TOOL_RESULT_CHARS = 100_000
CONTROL_TYPES = frozenset({"control_request", "control_response", "control_cancel_request"})
# Tools the interactive CLI offers that need a user interface this client does not have.
INTERACTIVE_DISALLOWED = ("AskUserQuestion",)


def _tool_result_text(content: Any) -> str:
    """A tool_result's content is a string or a list of blocks; keep the text."""
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            elif isinstance(block, dict):
                parts.append(f"[{block.get('type', 'content')}]")
            else:
                parts.append(str(block))
        text = "\n".join(parts)
    elif content is None:
        text = ""
    else:
        text = json.dumps(content)
    if len(text) > MAX_TOOL_RESULT_CHARS:
        text = (
            text[:MAX_TOOL_RESULT_CHARS]
            + f"\n… [{len(text) - MAX_TOOL_RESULT_CHARS} more characters]"
        )
    return text


def _looks_unauthenticated(text: str) -> bool:
    lowered = text.lower()
    return any(
        needle in lowered
        for needle in (
            "not logged in",
            "/login",
            "invalid api key",
            "authentication_error",
            "authentication failed",
            "oauth token has expired",
        )
    )


def _denial_message(denial: dict[str, Any]) -> str:
    tool = str(denial.get("tool_name", "a tool"))
    tool_input = denial.get("tool_input") or {}
    detail = ""
    if isinstance(tool_input, dict):
        for key in ("command", "file_path", "path", "url", "pattern"):
            if key in tool_input:
                detail = f" ({key}: {str(tool_input[key])[:200]})"
                break
    rule = tool
    if tool == "Bash" and isinstance(tool_input, dict) and tool_input.get("command"):
        first_word = str(tool_input["command"]).split()[0]
        rule = f"Bash({first_word}:*)"
    return (
        f"Claude Code was not allowed to use {tool}{detail}. To allow it, add {rule!r} to "
        "c.ClaudeCodeProvider.allowed_tools, or choose another "
        "c.ClaudeCodeProvider.permission_mode."
    )


class ClaudeStreamParser(StreamParser):
    """stream-json lines -> events. Text is streamed from deltas and not repeated when the
    complete ``assistant`` message of the same API message follows."""

    def __init__(self) -> None:
        self.state = ParserState()
        self._streamed: set[str] = set()  # API message ids whose text/thinking arrived as deltas
        self._current_message: str | None = None
        self._auth_failed = False
        self.resume_failed = False
        # Separate text blocks of one turn ("I will run pwd." ... tool ... "The directory is")
        # are joined with a paragraph break, as a reader expects.
        self._text_so_far = False
        self._new_text_block = False

    @property
    def provider_session_id(self) -> str | None:
        return self.state.provider_session_id

    def feed(self, line: bytes) -> list[Event]:
        line = line.strip()
        if not line:
            return []
        try:
            obj = json.loads(line)
        except ValueError:
            self.state.invalid_lines += 1
            return []
        if not isinstance(obj, dict):
            self.state.invalid_lines += 1
            return []
        kind = obj.get("type")
        if isinstance(obj.get("session_id"), str) and kind in ("system", "result"):
            self.state.provider_session_id = obj["session_id"]
        if kind == "stream_event":
            return self._stream_event(obj.get("event") or {})
        if kind == "assistant":
            return self._assistant(obj)
        if kind == "user":
            return self._user(obj)
        if kind == "result":
            return self._result(obj)
        if kind in CONTROL_TYPES:
            return self._control(obj)
        return []

    def _control(self, obj: dict[str, Any]) -> list[Event]:
        """Control protocol messages; only the interactive mode has any (claude_control.py)."""
        return []

    def _reported(self, denial: dict[str, Any]) -> bool:
        """Whether a denial in the result was already reported as it happened."""
        return False

    def _stream_event(self, event: dict[str, Any]) -> list[Event]:
        etype = event.get("type")
        if etype == "message_start":
            self._current_message = (event.get("message") or {}).get("id")
            return []
        if etype == "content_block_start":
            if (event.get("content_block") or {}).get("type") == "text":
                self._new_text_block = True
            return []
        if etype != "content_block_delta":
            return []
        delta = event.get("delta") or {}
        dtype = delta.get("type")
        if dtype == "text_delta" and delta.get("text"):
            self._mark_streamed()
            return [{"type": "text", "text": self._block_text(delta["text"])}]
        if dtype == "thinking_delta" and delta.get("thinking"):
            self._mark_streamed()
            return [{"type": "thinking", "text": delta["thinking"]}]
        return []

    def _block_text(self, text: str) -> str:
        if self._new_text_block and self._text_so_far:
            text = "\n\n" + text
        self._new_text_block = False
        self._text_so_far = True
        return text

    def _mark_streamed(self) -> None:
        if self._current_message:
            self._streamed.add(self._current_message)

    def _assistant(self, obj: dict[str, Any]) -> list[Event]:
        message = obj.get("message") or {}
        if obj.get("error"):
            # A synthetic message that reports a failure ("Not logged in"): it becomes the
            # turn's error, not reply text.
            if obj.get("error") == "authentication_failed":
                self._auth_failed = True
            return []
        streamed = message.get("id") in self._streamed
        events: list[Event] = []
        for block in message.get("content") or []:
            if not isinstance(block, dict):
                continue
            btype = block.get("type")
            if btype == "text" and not streamed and block.get("text"):
                self._new_text_block = True
                events.append({"type": "text", "text": self._block_text(block["text"])})
            elif btype == "thinking" and not streamed and block.get("thinking"):
                events.append({"type": "thinking", "text": block["thinking"]})
            elif btype == "tool_use":
                events.append(
                    {
                        "type": "tool_use",
                        "id": str(block.get("id", "")),
                        "name": str(block.get("name", "")),
                        "input": block.get("input"),
                    }
                )
        return events

    def _user(self, obj: dict[str, Any]) -> list[Event]:
        content = (obj.get("message") or {}).get("content")
        if not isinstance(content, list):
            return []
        return [
            {
                "type": "tool_result",
                "id": str(block.get("tool_use_id", "")),
                "content": _tool_result_text(block.get("content")),
                "is_error": bool(block.get("is_error", False)),
            }
            for block in content
            if isinstance(block, dict) and block.get("type") == "tool_result"
        ]

    def _result(self, obj: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        usage = obj.get("usage") or {}
        input_tokens = sum(
            int(usage.get(key) or 0)
            for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
        cost = float(obj.get("total_cost_usd") or 0.0)
        events.append(
            {
                "type": "usage",
                "input_tokens": input_tokens,
                "output_tokens": int(usage.get("output_tokens") or 0),
                "cost_usd": cost,
            }
        )
        for denial in obj.get("permission_denials") or []:
            if isinstance(denial, dict) and not self._reported(denial):
                events.append(
                    {
                        "type": "permission_denied",
                        "tool_name": str(denial.get("tool_name", "")),
                        "input": denial.get("tool_input"),
                        "message": _denial_message(denial),
                    }
                )
        if obj.get("is_error"):
            errors = [str(e) for e in obj.get("errors") or []]
            text = str(obj.get("result") or "; ".join(errors) or "Claude Code reported an error.")
            if any(NO_CONVERSATION in e for e in errors) or NO_CONVERSATION in text:
                self.resume_failed = True
                terminal: Event = {
                    "type": "error",
                    "code": "resume_failed",
                    "message": f"The earlier Claude Code conversation could not be resumed: {text}",
                }
            elif self._auth_failed or _looks_unauthenticated(text):
                terminal = {"type": "error", "code": "not_authenticated", "message": LOGIN_HINT}
            else:
                terminal = {
                    "type": "error",
                    "code": "provider_failed",
                    "message": f"Claude Code reported an error: {text}",
                }
        else:
            terminal = {
                "type": "done",
                "provider_session_id": self.state.provider_session_id,
                "cost_usd": cost,
                "duration_ms": int(obj.get("duration_ms") or 0),
            }
        self.state.terminal = terminal
        events.append(terminal)
        return events

    def finish(self, returncode: int, stderr_tail: str) -> list[Event]:
        if self.state.terminal is not None:
            return []
        detail = stderr_tail.strip() or "no error output"
        if self.state.invalid_lines:
            detail += (
                f" (it also printed {self.state.invalid_lines} line(s) that were not stream-json: "
                "is c.ClaudeCodeProvider.command really Claude Code?)"
            )
        if _looks_unauthenticated(stderr_tail):
            terminal: Event = {"type": "error", "code": "not_authenticated", "message": LOGIN_HINT}
        else:
            terminal = {
                "type": "error",
                "code": "provider_failed",
                "message": (
                    f"Claude Code exited with code {returncode} before finishing the turn: {detail}"
                ),
            }
        self.state.terminal = terminal
        return [terminal]


def _render_context(context: dict[str, Any]) -> str:
    parts = []
    for key, value in context.items():
        text = value if isinstance(value, str) else json.dumps(value, indent=1, default=str)
        parts.append(f"### {key}\n{text}")
    return "\n\n".join(parts)


class ClaudeCodeProvider(Provider):
    """Anthropic's Claude Code CLI, run in print mode with stream-json output."""

    name: ClassVar[str] = "claude"
    display_name: ClassVar[str] = "Claude Code"
    install_hint: ClassVar[str] = INSTALL_HINT
    install_step: ClassVar[SetupStep | None] = SetupStep(INSTALL_HINT)
    login_check: ClassVar[str | None] = "claude auth status"
    login_step: ClassVar[SetupStep | None] = SetupStep(
        "claude", "then type /login. Or set ANTHROPIC_API_KEY in the server's environment."
    )
    # On SIGINT the CLI aborts its running tools (which it starts in sessions of their own)
    # and saves the interrupted conversation; on SIGTERM it leaves both behind.
    interrupt_signal: ClassVar[int] = int(signal.SIGINT)

    command = Union(
        [List(Unicode()), Unicode()],
        default_value=["claude"],
        help="The Claude Code executable, with any leading arguments (e.g. ['npx', 'claude']).",
    ).tag(config=True)

    model = Unicode(
        None, allow_none=True, help="Model name or alias passed as --model (default: the CLI's)."
    ).tag(config=True)

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

    extra_args = StringList(
        default_value=[], help="Further command-line arguments, appended as given."
    ).tag(config=True)

    append_system_prompt = Unicode(
        "", help="Text appended to the system prompt of every turn (after the notebook context)."
    ).tag(config=True)

    include_partial_messages = True

    def executable_argv(self) -> list[str]:
        command = self.command
        if isinstance(command, str):
            import shlex

            command = shlex.split(command)
        return list(command) or ["claude"]

    def system_prompt(self, request: TurnRequest) -> str:
        lines = [
            f"You are assisting a Jupyter user with the notebook `{request.notebook_path}`. "
            f"Your working directory is the notebook's folder ({request.working_dir}); files "
            "the user mentions are relative to it.",
        ]
        if request.context:
            lines.append(CONTEXT_HEADING + _render_context(request.context))
        if self.append_system_prompt:
            lines.append(self.append_system_prompt)
        return "\n\n".join(lines)

    def build_launch(self, request: TurnRequest, base_env: dict[str, str]) -> LaunchSpec:
        argv = self.executable_argv()
        env = {**base_env, **self.env}
        resolved = self.which(argv[0], env.get("PATH"))
        if resolved is None:
            raise ProviderUnavailable(
                "provider_not_found",
                f"Claude Code CLI not found ({argv[0]!r}): {INSTALL_HINT}, "
                "or set c.ClaudeCodeProvider.command to its path.",
            )
        argv[0] = resolved
        argv += ["-p", "--output-format", "stream-json", "--verbose"]
        if self.include_partial_messages:
            argv.append("--include-partial-messages")
        if self.interactive:
            argv += ["--input-format", "stream-json", "--permission-prompt-tool", "stdio"]
        argv += ["--permission-mode", self.effective_permission_mode()]
        if request.provider_session_id:
            argv.append(f"--resume={request.provider_session_id}")
        model = request.model or self.model
        if model:
            argv += ["--model", model]
        if self.allowed_tools:
            argv += ["--allowedTools", *self.allowed_tools]
        disallowed = [*INTERACTIVE_DISALLOWED] if self.interactive else []
        disallowed += [t for t in self.disallowed_tools if t not in disallowed]
        if disallowed:
            argv += ["--disallowedTools", *disallowed]
        # The system prompt holds the notebook's context (a cell may hold a secret): it goes in
        # a private file, never on the command line, which every local user can read in `ps`.
        system_file = private_file(request, self.system_prompt(request), "claude-system-")
        argv += ["--append-system-prompt-file", system_file]
        argv += list(self.extra_args)
        # Interactive: the parser sends the prompt as a stream-json message (start()).
        stdin = None if self.interactive else request.prompt.encode()
        return LaunchSpec(
            argv=argv, env=env, stdin=stdin, cwd=request.working_dir, cleanup=[system_file]
        )

    def effective_permission_mode(self) -> str:
        if self.permission_mode is not None:
            return str(self.permission_mode)
        return "default" if self.interactive else "acceptEdits"

    def create_parser(self, request: TurnRequest) -> StreamParser:
        if self.interactive:
            from .claude_control import ClaudeControlParser

            return ClaudeControlParser(request.prompt, request.working_dir)
        return ClaudeStreamParser()

    def credentials_state(self, env: dict[str, str]) -> str:
        if env.get("ANTHROPIC_API_KEY") or env.get("CLAUDE_CODE_OAUTH_TOKEN"):
            return "present"
        config_dir = Path(env.get("CLAUDE_CONFIG_DIR") or Path(env.get("HOME", "~")) / ".claude")
        if (config_dir.expanduser() / ".credentials.json").exists():
            return "present"
        # Logins may also live in the OS keychain, which we do not read.
        return "unknown"

    async def health(self) -> ProviderHealth:
        from .base import provider_environment

        env = provider_environment(self.env)
        argv = self.executable_argv()
        health = ProviderHealth(self.name, self.display_name, available=False)
        resolved = self.which(argv[0], env.get("PATH"))
        if resolved is None:
            health.problem = (
                f"Claude Code CLI not found ({argv[0]!r}): {INSTALL_HINT}, "
                "or set c.ClaudeCodeProvider.command to its path."
            )
            return health
        health.executable = resolved
        try:
            version = await self.read_version([resolved, *argv[1:], "--version"], env)
        except Exception as exc:  # any failure to run it is reported, not raised
            health.problem = f"{resolved} --version failed: {exc}"
            return health
        health.version = version.split(" ")[0] if version else None
        health.available = True
        health.credentials = self.credentials_state(env)
        if os.environ.get("CLAUDE_CODE_USE_BEDROCK") or os.environ.get("CLAUDE_CODE_USE_VERTEX"):
            health.credentials = "unknown"
        elif health.credentials == "unknown":
            # No key and no credentials file: the login may be in the OS keychain. The CLI's
            # own `auth status` tells, without a model call (and so without a cost).
            health.credentials = await self.login_state([resolved, *argv[1:]], env)
        return health

    async def login_state(self, argv: list[str], env: dict[str, str]) -> str:
        """``present``/``missing`` from ``claude auth status --json``; ``unknown`` if this CLI
        cannot tell (an older version, or no answer in time)."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                *LOGIN_CHECK_ARGS,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except OSError:
            return "unknown"
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 15.0)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return "unknown"
        try:
            status = json.loads(out.decode(errors="replace"))  # exit 1 when logged out
        except ValueError:
            return "unknown"
        if not isinstance(status, dict) or not isinstance(status.get("loggedIn"), bool):
            return "unknown"
        return "present" if status["loggedIn"] else "missing"
