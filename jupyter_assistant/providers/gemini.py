"""Google's Gemini CLI (``gemini -p --output-format stream-json``) as a provider.

Wire format (checked against gemini 0.61.0 run against a local Gemini API stand-in; samples in
tests/fakes/wire-samples/gemini/): one JSON object per line: ``init`` (session_id, model),
``message`` (role user: the prompt echoed; role assistant with ``delta: true``: reply pieces),
``tool_use`` (tool_name, tool_id, parameters), ``tool_result`` (tool_id, status success|error,
``output`` only for some tools, ``error {type, message}``), ``error`` (non-fatal) and a final
``result`` (status success|error, ``error {type, message}``, ``stats`` with token counts).
Thoughts are not printed in this mode.

Fatal problems end the process with an exit code and a message on stderr, before any JSON:
41 authentication (no key, or a Google login that needs a browser), 42 bad input (including
``--resume`` of an unknown session: "Error resuming session: ..."), 44 sandbox, 52 settings,
53 turn limit, 54 tool failure, 55 untrusted folder. API errors end with a ``result`` of status
error and the HTTP status modulo 256 as exit code (401 -> 145).

Resume: ``--resume <session_id>`` continues a conversation in -p mode, but only from the same
folder (sessions live per project under ~/.gemini/tmp/<project>/chats/) and only while gemini
keeps it (30 days by default, general.sessionRetention).
"""

from __future__ import annotations

import time
from collections.abc import Callable
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
    SetupStep,
    StreamParser,
    TurnRequest,
    provider_environment,
)
from .cli_support import (
    LostConversations,
    clip,
    command_argv,
    json_object,
    notebook_instructions,
    resolve_command,
    stderr_summary,
    tagged,
    version_health,
)

INSTALL_HINT = "npm install -g @google/gemini-cli"
SETTING = "c.GeminiProvider.command"
LOGIN_HINT = (
    "Gemini CLI is not logged in. Set GEMINI_API_KEY in the server's environment "
    "(or c.GeminiProvider.env = {'GEMINI_API_KEY': ...}), or run `gemini` once in a terminal "
    "on the Jupyter server and log in with Google."
)
STDERR_NOISE = (
    "256-color support",
    "Ripgrep is not available",
    "[STARTUP]",
    "YOLO mode is enabled",
    "Full report available at",
)
# Exit codes of gemini's fatal errors (FatalError subclasses in the CLI), with the fix.
EXIT_CODES: dict[int, tuple[str, str]] = {
    41: ("not_authenticated", LOGIN_HINT),
    42: ("provider_failed", "Gemini CLI rejected its input or arguments (exit code 42)."),
    44: (
        "provider_failed",
        "Gemini CLI's sandbox failed (exit code 44); check c.GeminiProvider.sandbox and that "
        "docker or podman works.",
    ),
    52: (
        "provider_failed",
        "Gemini CLI's settings are invalid (exit code 52); check ~/.gemini/settings.json and "
        ".gemini/settings.json in the notebook's folder.",
    ),
    53: (
        "provider_failed",
        "The conversation reached Gemini CLI's turn limit (exit code 53, model.maxSessionTurns); "
        "start a new session.",
    ),
    54: ("provider_failed", "A Gemini CLI tool failed fatally (exit code 54)."),
    55: (
        "provider_failed",
        "Gemini CLI does not trust the notebook's folder (exit code 55); set "
        "c.GeminiProvider.trust_workspace = True or trust the folder with `gemini` in a terminal.",
    ),
}
AUTH_PATTERNS = (
    "api key not valid",
    "api_key_invalid",
    "unauthenticated",
    '"code":401',
    "api key is missing",
    "must specify the gemini_api_key",
    "please set an auth method",
    "manual authorization is required",
)


def _looks_unauthenticated(text: str) -> bool:
    # Compared without blanks: API error bodies come compact or pretty-printed.
    squeezed = "".join(text.lower().split())
    return any("".join(pattern.split()) in squeezed for pattern in AUTH_PATTERNS)


class GeminiStreamParser(StreamParser):
    """``gemini --output-format stream-json`` lines -> events."""

    def __init__(
        self,
        resume_id: str | None = None,
        on_lost: Callable[[str | None], None] | None = None,
        first_events: list[Event] | None = None,
    ) -> None:
        self.state = ParserState()
        self.resume_failed = False
        self._resume_id = resume_id
        self._on_lost = on_lost
        self._first_events = list(first_events or [])
        self._started = time.monotonic()
        self._tool_names: dict[str, str] = {}

    @property
    def provider_session_id(self) -> str | None:
        return self.state.provider_session_id

    def feed(self, line: bytes) -> list[Event]:
        events, self._first_events = self._first_events, []
        return events + self._parse(line)

    def _parse(self, line: bytes) -> list[Event]:
        obj = json_object(line)
        if obj is None:
            if line.strip():
                self.state.invalid_lines += 1
            return []
        kind = obj.get("type")
        if kind == "init":
            if isinstance(obj.get("session_id"), str):
                self.state.provider_session_id = obj["session_id"]
            return []
        if kind == "message":
            if obj.get("role") == "assistant" and obj.get("content"):
                return [{"type": "text", "text": str(obj["content"])}]
            return []
        if kind == "tool_use":
            tool_id = str(obj.get("tool_id", ""))
            name = str(obj.get("tool_name", ""))
            self._tool_names[tool_id] = name
            return [
                {"type": "tool_use", "id": tool_id, "name": name, "input": obj.get("parameters")}
            ]
        if kind == "tool_result":
            return [self._tool_result(obj)]
        if kind == "error":
            message = str(obj.get("message") or obj.get("error") or obj)
            return [{"type": "notice", "level": "warning", "message": message}]
        if kind == "result":
            return self._result(obj)
        return []

    @staticmethod
    def _tool_result(obj: dict[str, Any]) -> Event:
        is_error = obj.get("status") == "error"
        error = obj.get("error")
        if "output" in obj:
            content = str(obj.get("output") or "")
        elif isinstance(error, dict) and error.get("message"):
            content = str(error["message"])
        else:
            content = ""  # gemini prints no output for some tools (list_directory, write_file)
        return {
            "type": "tool_result",
            "id": str(obj.get("tool_id", "")),
            "content": clip(content),
            "is_error": is_error,
        }

    def _result(self, obj: dict[str, Any]) -> list[Event]:
        stats = obj.get("stats") or {}
        events: list[Event] = [
            {
                "type": "usage",
                "input_tokens": int(stats.get("input_tokens") or 0),
                "output_tokens": int(stats.get("output_tokens") or 0),
                "cost_usd": 0.0,  # gemini does not report prices
            }
        ]
        if obj.get("status") == "success":
            duration = stats.get("duration_ms")
            terminal: Event = {
                "type": "done",
                "provider_session_id": self.state.provider_session_id,
                "cost_usd": 0.0,
                "duration_ms": int(duration) if duration else self._elapsed_ms(),
            }
        else:
            error = obj.get("error") or {}
            message = str(error.get("message") if isinstance(error, dict) else error)
            if _looks_unauthenticated(message):
                terminal = {
                    "type": "error",
                    "code": "not_authenticated",
                    "message": f"{LOGIN_HINT} ({message})",
                }
            else:
                terminal = {
                    "type": "error",
                    "code": "provider_failed",
                    "message": f"Gemini CLI reported an error: {message}",
                }
        self.state.terminal = terminal
        events.append(terminal)
        return events

    def _elapsed_ms(self) -> int:
        return int((time.monotonic() - self._started) * 1000)

    def finish(self, returncode: int, stderr_tail: str) -> list[Event]:
        if self.state.terminal is not None:
            return []
        detail = stderr_summary(stderr_tail, STDERR_NOISE)
        if returncode == 42 and self._resume_id and "Error resuming session" in stderr_tail:
            self.resume_failed = True
            if self._on_lost is not None:
                self._on_lost(self._resume_id)
            event: Event = {
                "type": "error",
                "code": "resume_failed",
                "message": f"The earlier Gemini CLI conversation could not be resumed: {detail}",
            }
        elif returncode in EXIT_CODES:
            code, fix = EXIT_CODES[returncode]
            event = {"type": "error", "code": code, "message": f"{fix} Gemini CLI said: {detail}"}
        elif _looks_unauthenticated(stderr_tail):
            event = {"type": "error", "code": "not_authenticated", "message": LOGIN_HINT}
        else:
            event = {
                "type": "error",
                "code": "provider_failed",
                "message": (
                    f"Gemini CLI exited with code {returncode} before finishing the turn: {detail}"
                ),
            }
        self.state.terminal = event
        early, self._first_events = self._first_events, []
        return [*early, event]


class GeminiProvider(Provider):
    """Google's Gemini CLI in headless mode (``-p``) with stream-json output."""

    name: ClassVar[str] = "gemini"
    display_name: ClassVar[str] = "Gemini CLI"
    install_hint: ClassVar[str] = INSTALL_HINT
    install_step: ClassVar[SetupStep | None] = SetupStep(INSTALL_HINT)
    login_step: ClassVar[SetupStep | None] = SetupStep(
        "gemini", "then log in with Google. Or set GEMINI_API_KEY in the server's environment."
    )
    # gemini's launcher ignores SIGINT and SIGTERM; its worker process stops on SIGTERM, and the
    # runner sends SIGTERM to every process of the turn, the tool shells included.

    command = Union(
        [List(Unicode()), Unicode()],
        default_value=["gemini"],
        help="The Gemini CLI executable, with any leading arguments.",
    ).tag(config=True)

    model = Unicode(None, allow_none=True, help="Model passed as -m (default: gemini's own).").tag(
        config=True
    )

    approval_mode = Enum(
        ["default", "auto_edit", "yolo", "plan"],
        default_value="auto_edit",
        help=(
            "--approval-mode. In -p mode gemini cannot ask, so tools needing approval are simply "
            "not offered: default = read-only tools; auto_edit (the default here) adds file "
            "edits, which gemini confines to the notebook's folder; yolo adds shell commands."
        ),
    ).tag(config=True)

    trust_workspace = Bool(
        True,
        help="Pass --skip-trust: trust the notebook's folder for the turn. Without it gemini "
        "0.61 refuses to run in a folder not trusted before (exit code 55).",
    ).tag(config=True)

    sandbox = Bool(False, help="Pass --sandbox (runs tools in a docker/podman container).").tag(
        config=True
    )

    resume = Bool(
        True,
        help="Continue the earlier conversation with --resume <session id>. Off: every turn "
        "starts a new gemini conversation.",
    ).tag(config=True)

    extra_args = StringList(
        default_value=[], help="Further gemini arguments, appended as given."
    ).tag(config=True)

    append_system_prompt = Unicode(
        "", help="Text added to the notebook context given with each prompt."
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lost = LostConversations()

    def executable_argv(self) -> list[str]:
        return command_argv(self.command) or ["gemini"]

    def build_launch(self, request: TurnRequest, base_env: dict[str, str]) -> LaunchSpec:
        env = {**base_env, **self.env}
        argv = resolve_command(self.executable_argv(), env, "Gemini CLI", INSTALL_HINT, SETTING)
        argv += ["--output-format", "stream-json", "--approval-mode", self.approval_mode]
        if self.trust_workspace:
            argv.append("--skip-trust")
        if self.sandbox:
            argv.append("--sandbox")
        model = request.model or self.model
        if model:
            argv += ["--model", model]
        resume_id = self._resume_id(request)
        if resume_id:
            argv += ["--resume", resume_id]
        argv += list(self.extra_args)
        # gemini has no flag for extra instructions: they go before the prompt, marked up the
        # way gemini marks its own context. -p "" + stdin keeps the prompt out of `ps`.
        argv += ["--prompt", ""]
        preamble = notebook_instructions(
            request.notebook_path, request.working_dir, request.context, self.append_system_prompt
        )
        prompt = tagged("notebook_context", preamble) + "\n\n" + request.prompt
        return LaunchSpec(argv=argv, env=env, stdin=prompt.encode(), cwd=request.working_dir)

    def _resume_id(self, request: TurnRequest) -> str | None:
        return self._lost.usable(request.provider_session_id) if self.resume else None

    def create_parser(self, request: TurnRequest) -> StreamParser:
        notice = self._lost.notice(request.provider_session_id, self.display_name)
        return GeminiStreamParser(
            resume_id=self._resume_id(request),
            on_lost=self._lost.add,
            first_events=[notice] if notice and self.resume else [],
        )

    def credentials_state(self, env: dict[str, str]) -> str:
        """present: a key or a Google login file is there; missing: nothing gemini could use;
        unknown: a method we cannot check here (Vertex AI, application default credentials)."""
        if env.get("GEMINI_API_KEY"):
            return "present"
        home = Path(env.get("HOME") or "~").expanduser()
        for dotenv in (home / ".gemini" / ".env", home / ".env"):
            try:
                if "GEMINI_API_KEY=" in dotenv.read_text(encoding="utf-8"):
                    return "present"
            except OSError:
                continue
        if (home / ".gemini" / "oauth_creds.json").is_file():
            return "present"
        if any(
            env.get(name)
            for name in (
                "GOOGLE_GENAI_USE_VERTEXAI",
                "GOOGLE_GENAI_USE_GCA",
                "GOOGLE_APPLICATION_CREDENTIALS",
                "CLOUD_SHELL",
                "GEMINI_CLI_USE_COMPUTE_ADC",
            )
        ):
            return "unknown"
        if (home / ".gemini" / "settings.json").is_file():
            return "unknown"  # may name an auth method whose login we cannot see
        return "missing"

    async def health(self) -> ProviderHealth:
        env = provider_environment(self.env)
        health = await version_health(self, self.executable_argv(), env, INSTALL_HINT, SETTING)
        if not health.available:
            return health
        health.credentials = self.credentials_state(env)
        if health.credentials == "missing":
            health.problem = LOGIN_HINT
        return health
