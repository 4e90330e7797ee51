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

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from traitlets import Bool, Enum

from .. import events
from .base import (
    EditMode,
    Event,
    LaunchSpec,
    NotebookToolsAccess,
    SetupStep,
    StreamParser,
    TurnRequest,
)
from .cli_provider import CliProvider, command_trait
from .cli_support import JsonLinesParser, clip, tagged

INSTALL_HINT = "npm install -g @google/gemini-cli"
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
# The notebook tools: gemini 0.61.0 reads MCP servers only from settings files. The system ones
# (GEMINI_CLI_SYSTEM_SETTINGS_PATH, ..._DEFAULTS_PATH) are skipped unless root owns them and every
# folder above them, and the workspace's is in the notebook's folder; so a turn gets a private
# GEMINI_CLI_HOME whose .gemini/ holds the user's settings plus the server, every other entry a
# link to the user's own ~/.gemini (logins, sessions for --resume, memory, extensions).
HOME_PREFIX = "gemini-home-"
# Milliseconds gemini waits for a notebook tool call (its default is 10 minutes): the server may
# be asking the user about it; the turn's own time limits still apply.
MCP_TOOL_TIMEOUT_MS = 3_600_000
STALE_HOME_SECONDS = 60.0
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


class GeminiStreamParser(JsonLinesParser):
    """``gemini --output-format stream-json`` lines -> events."""

    cli_name: ClassVar[str] = "Gemini CLI"
    login_hint: ClassVar[str] = LOGIN_HINT
    stderr_noise: ClassVar[tuple[str, ...]] = STDERR_NOISE

    def parse(self, obj: dict[str, Any]) -> list[Event]:
        kind = obj.get("type")
        if kind == "init":
            if isinstance(obj.get("session_id"), str):
                self.state.provider_session_id = obj["session_id"]
            return []
        if kind == "message":
            if obj.get("role") == "assistant" and obj.get("content"):
                return [events.text(str(obj["content"]))]
            return []
        if kind == "tool_use":
            tool_id = str(obj.get("tool_id", ""))
            return [events.tool_use(tool_id, str(obj.get("tool_name", "")), obj.get("parameters"))]
        if kind == "tool_result":
            return [self._tool_result(obj)]
        if kind == "error":
            message = str(obj.get("message") or obj.get("error") or obj)
            return [events.notice(message, "warning")]
        if kind == "result":
            return self._result(obj)
        return []

    @staticmethod
    def _tool_result(obj: dict[str, Any]) -> Event:
        error = obj.get("error")
        if "output" in obj:
            content = str(obj.get("output") or "")
        elif isinstance(error, dict) and error.get("message"):
            content = str(error["message"])
        else:
            content = ""  # gemini prints no output for some tools (list_directory, write_file)
        return events.tool_result(
            str(obj.get("tool_id", "")), clip(content), obj.get("status") == "error"
        )

    def _result(self, obj: dict[str, Any]) -> list[Event]:
        stats = obj.get("stats") or {}
        input_tokens = int(stats.get("input_tokens") or 0)
        output_tokens = int(stats.get("output_tokens") or 0)
        usage = events.usage(input_tokens, output_tokens, 0.0)  # gemini does not report prices
        if obj.get("status") == "success":
            duration = stats.get("duration_ms")
            duration_ms = int(duration) if duration else self.elapsed_ms()
            terminal = events.done(self.state.provider_session_id, 0.0, duration_ms)
        else:
            error = obj.get("error") or {}
            message = str(error.get("message") if isinstance(error, dict) else error)
            if _looks_unauthenticated(message):
                terminal = events.error("not_authenticated", f"{LOGIN_HINT} ({message})")
            else:
                terminal = events.error(
                    "provider_failed", f"Gemini CLI reported an error: {message}"
                )
        return [usage, self.end_with(terminal)]

    def looks_unauthenticated(self, text: str) -> bool:
        return _looks_unauthenticated(text)

    def known_exit_error(self, returncode: int, stderr_tail: str, detail: str) -> Event | None:
        if returncode == 42 and self._resume_id and "Error resuming session" in stderr_tail:
            return self.lost_conversation(detail)
        if returncode in EXIT_CODES:
            code, fix = EXIT_CODES[returncode]
            return events.error(code, f"{fix} Gemini CLI said: {detail}")
        return None


class GeminiProvider(CliProvider):
    """Google's Gemini CLI in headless mode (``-p``) with stream-json output."""

    name: ClassVar[str] = "gemini"
    display_name: ClassVar[str] = "Gemini CLI"
    install_step: ClassVar[SetupStep | None] = SetupStep(INSTALL_HINT)
    login_step: ClassVar[SetupStep | None] = SetupStep(
        "gemini", "then log in with Google. Or set GEMINI_API_KEY in the server's environment."
    )
    # gemini's launcher ignores SIGINT and SIGTERM; its worker process stops on SIGTERM, and the
    # runner sends SIGTERM to every process of the turn, the tool shells included.
    cli_name: ClassVar[str] = "Gemini CLI"
    login_hint: ClassVar[str | None] = LOGIN_HINT

    command = command_trait("gemini", example="['npx', '@google/gemini-cli']")

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

    supports_notebook_tools: ClassVar[bool] = True

    def notebook_edits(self) -> EditMode:
        # auto_edit and yolo run file edits without asking; default asks (headless gemini only
        # leaves the edit tools out, but the server can ask); plan makes no edits.
        if self.approval_mode in ("auto_edit", "yolo"):
            return "allow"
        return "deny" if self.approval_mode == "plan" else "ask"

    def build_launch(self, request: TurnRequest, base_env: dict[str, str]) -> LaunchSpec:
        env = self.launch_env(base_env)
        argv = self.resolved_argv(env)
        cleanup: list[str] = []
        if request.notebook_tools is not None:
            home = self.notebook_tools_home(request, request.notebook_tools, env, cleanup)
            if home is not None:
                env["GEMINI_CLI_HOME"] = home
        argv += ["--output-format", "stream-json", "--approval-mode", self.approval_mode]
        if self.trust_workspace:
            argv.append("--skip-trust")
        if self.sandbox:
            argv.append("--sandbox")
        model = self.turn_model(request)
        if model:
            argv += ["--model", model]
        resume_id = self.resume_id(request)
        if resume_id:
            argv += ["--resume", resume_id]
        argv += list(self.extra_args)
        # gemini has no flag for extra instructions: they go before the prompt, marked up the
        # way gemini marks its own context. -p "" + stdin keeps the prompt out of `ps`.
        argv += ["--prompt", ""]
        prompt = tagged("notebook_context", self.instructions(request)) + "\n\n" + request.prompt
        return LaunchSpec(
            argv=argv, env=env, stdin=prompt.encode(), cwd=request.working_dir, cleanup=cleanup
        )

    def notebook_tools_home(
        self,
        request: TurnRequest,
        tools: NotebookToolsAccess,
        env: dict[str, str],
        cleanup: list[str],
    ) -> str | None:
        """A private GEMINI_CLI_HOME for the turn (HOME_PREFIX above): ``.gemini/settings.json``
        is the user's own settings with ``mcpServers.<name>`` added (0600: it holds the
        capability); the rest links to the user's files. None (and no notebook tools) if the
        user's settings cannot be read as JSON."""
        user_home = Path(env.get("GEMINI_CLI_HOME") or env.get("HOME") or "~").expanduser()
        user_dir = user_home / ".gemini"
        try:
            text = (user_dir / "settings.json").read_text(encoding="utf-8")
            settings = json.loads(text)
        except FileNotFoundError:
            settings = {}
        except (OSError, ValueError) as exc:
            self.log.warning(
                "Gemini CLI gets no notebook tools: %s is unreadable (%s)",
                user_dir / "settings.json",
                exc,
            )
            return None
        if not isinstance(settings, dict):
            return None
        servers = settings.get("mcpServers")
        settings["mcpServers"] = {
            **(servers if isinstance(servers, dict) else {}),
            tools.name: {
                "httpUrl": tools.url,
                "headers": tools.headers(),
                # The server asks the user about each call itself: gemini does not ask again
                # (and, headless, it could not: it would leave the tools out).
                "trust": True,
                "timeout": MCP_TOOL_TIMEOUT_MS,
            },
        }
        scratch = request.scratch_dir or tempfile.gettempdir()
        os.makedirs(scratch, mode=0o700, exist_ok=True)
        sweep_homes(scratch)
        home = Path(tempfile.mkdtemp(prefix=HOME_PREFIX, dir=scratch))  # 0700
        overlay = home / ".gemini"
        overlay.mkdir(mode=0o700)
        # Sessions must land in the user's folder, or --resume would not find them next turn.
        (user_dir / "tmp").mkdir(parents=True, exist_ok=True)
        for entry in sorted(user_dir.iterdir()):
            if entry.name != "settings.json":
                (overlay / entry.name).symlink_to(entry)
                cleanup.append(str(overlay / entry.name))
        if (user_home / ".env").exists():  # gemini's last place to look for a key
            (home / ".env").symlink_to(user_home / ".env")
            cleanup.append(str(home / ".env"))
        descriptor = os.open(overlay / "settings.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(settings, file)
        cleanup.append(str(overlay / "settings.json"))
        return str(home)

    def resumes(self) -> bool:
        return bool(self.resume)

    def create_parser(self, request: TurnRequest) -> StreamParser:
        return self.resuming_parser(GeminiStreamParser, request)

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


def sweep_homes(scratch: str) -> None:
    """Remove the GEMINI_CLI_HOMEs of ended turns: the runner removes a launch's files (its
    settings.json first among them), not folders, nor what gemini wrote there itself."""
    now = time.time()
    for home in Path(scratch).glob(HOME_PREFIX + "*"):
        try:
            ended = not (home / ".gemini" / "settings.json").exists()
            if ended and now - home.stat().st_mtime > STALE_HOME_SECONDS:
                shutil.rmtree(home)  # removes the links, never what they point to
        except OSError:
            continue
