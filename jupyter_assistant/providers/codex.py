"""OpenAI's Codex CLI (``codex exec --json``) as a provider.

Wire format (checked against codex-cli 0.171.0 run against a local Responses API stand-in; samples
in tests/fakes/wire-samples/codex/): one JSON object per line: ``thread.started`` (thread_id, the
id ``codex exec resume`` takes), ``turn.started``, ``item.started`` / ``item.completed`` with an
``item`` of type ``agent_message`` (whole text, no deltas), ``reasoning``, ``command_execution``,
``file_change``, ``mcp_tool_call``, ``web_search``, ``todo_list`` or ``error`` (a non-fatal
warning), top-level ``error`` (retries: "Reconnecting... 2/5 (...)"), and a final
``turn.completed`` (usage) or ``turn.failed`` (error.message). A failed resume prints nothing on
stdout: rc 1 and ``thread/resume failed: no rollout found for thread id <id>`` on stderr.

Without credentials and without network codex does not fail: it retries for minutes. So the
credentials are checked before spawning: ``CODEX_API_KEY`` or ``$CODEX_HOME/auth.json`` (codex
0.171.0 ignores ``OPENAI_API_KEY``; when only that one is set it is passed on as ``CODEX_API_KEY``).
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any, ClassVar

from traitlets import Bool, Dict, Enum, Unicode

from .. import events
from .base import (
    EditMode,
    Event,
    LaunchSpec,
    NotebookToolsAccess,
    ProviderUnavailable,
    SetupStep,
    StreamParser,
    TurnRequest,
)
from .cli_provider import CliProvider, command_trait
from .cli_support import JsonLinesParser, clip

INSTALL_HINT = "npm install -g @openai/codex"
LOGIN_HINT = (
    "Codex is not logged in. Run `codex login` in a terminal on the Jupyter server, or set "
    "CODEX_API_KEY (or OPENAI_API_KEY) in the server's environment "
    "(or c.CodexProvider.env = {'CODEX_API_KEY': ...})."
)
NO_ROLLOUT = "no rollout found for thread id"
# stderr lines codex prints on every run that say nothing about a failure
STDERR_NOISE = ("could not create PATH aliases", "Untrusted project-local configuration")
AUTH_PATTERNS = (
    "401 unauthorized",
    "invalid_api_key",
    "incorrect api key",
    "missing environment variable",
    "not logged in",
    "please log in",
    "codex login",
)
# The environment variable codex reads the notebook tools' capability from (env_http_headers):
# on the command line it would show in `ps` to every local user.
CAPABILITY_ENV = "JUPYTER_ASSISTANT_NOTEBOOK_CAPABILITY"
# Seconds codex waits for a notebook tool call: the server may be asking the user about it
# (codex's own default is 60 s); the turn's own time limits still apply.
MCP_TOOL_TIMEOUT = 3600
_MODEL_PROVIDER = re.compile(r"""^\s*model_provider\s*=\s*["']([^"']+)["']""")


def _looks_unauthenticated(text: str) -> bool:
    lowered = text.lower()
    return any(pattern in lowered for pattern in AUTH_PATTERNS)


def _toml_string(text: str) -> str:
    # A JSON string with ASCII escapes is also a valid TOML basic string.
    return json.dumps(text)


def notebook_tools_config(tools: NotebookToolsAccess) -> list[str]:
    """The ``-c`` overrides that give codex the notebook MCP server (streamable HTTP). The
    capability is not among them: codex reads it from CAPABILITY_ENV (``env_http_headers``)."""
    server = f"mcp_servers.{tools.name}"
    headers = f"{{{_toml_string(tools.header)}={_toml_string(CAPABILITY_ENV)}}}"
    return [
        f"{server}.url={_toml_string(tools.url)}",
        f"{server}.env_http_headers={headers}",
        # The server asks the user about each call itself; codex exec would otherwise refuse
        # the calls it wants approved ("requires approval, but approval policy is never").
        f'{server}.default_tools_approval_mode="approve"',
        f"{server}.tool_timeout_sec={MCP_TOOL_TIMEOUT}",
        # Without it codex 0.171.0 may send the first model request before the server has
        # answered, without its tools (seen with a busy Jupyter server).
        f"{server}.required=true",
    ]


class CodexStreamParser(JsonLinesParser):
    """``codex exec --json`` lines -> events."""

    cli_name: ClassVar[str] = "Codex"
    login_hint: ClassVar[str] = LOGIN_HINT
    stderr_noise: ClassVar[tuple[str, ...]] = STDERR_NOISE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tools_announced: set[str] = set()
        self._text_emitted = False

    def parse(self, obj: dict[str, Any]) -> list[Event]:
        kind = obj.get("type")
        if kind == "thread.started" and isinstance(obj.get("thread_id"), str):
            self.state.provider_session_id = obj["thread_id"]
            return []
        if kind in ("item.started", "item.updated", "item.completed"):
            item = obj.get("item")
            if isinstance(item, dict):
                return self._item(item, completed=kind == "item.completed")
            return []
        if kind == "error":
            # Retries and transient problems; the turn goes on (or ends with turn.failed).
            return [events.notice(str(obj.get("message", "")), "warning")]
        if kind == "turn.completed":
            return self._completed(obj.get("usage") or {})
        if kind == "turn.failed":
            error = obj.get("error") or {}
            message = str(error.get("message") if isinstance(error, dict) else error)
            return [self.end_with(self._failure(message))]
        return []

    def _item(self, item: dict[str, Any], *, completed: bool) -> list[Event]:
        itype = item.get("type")
        item_id = str(item.get("id", ""))
        if itype == "agent_message":
            if not completed or not item.get("text"):
                return []
            text = str(item["text"])
            # Each agent message is whole; keep separate messages apart.
            if self._text_emitted:
                text = "\n\n" + text
            self._text_emitted = True
            return [events.text(text)]
        if itype == "reasoning":
            thought = item.get("text")
            return [events.thinking(str(thought))] if completed and thought else []
        if itype == "error":
            return [events.notice(str(item.get("message", "")), "warning")] if completed else []
        if itype == "todo_list":
            if not completed:
                return []
            entries = [
                f"[{'x' if e.get('completed') else ' '}] {e.get('text', '')}"
                for e in item.get("items") or []
                if isinstance(e, dict)
            ]
            return [events.notice("Plan: " + "; ".join(entries))]
        tool = self._tool(itype, item)
        if tool is None:
            return []
        name, tool_input, result, is_error = tool
        out: list[Event] = []
        if item_id not in self._tools_announced:
            self._tools_announced.add(item_id)
            out.append(events.tool_use(item_id, name, tool_input))
        if completed:
            out.append(events.tool_result(item_id, clip(result), is_error))
        return out

    @staticmethod
    def _tool(itype: Any, item: dict[str, Any]) -> tuple[str, Any, str, bool] | None:
        """(name, input, result text, is_error) of a tool-like item, None for other items."""
        status = item.get("status")
        failed = status in ("failed", "declined")
        if itype == "command_execution":
            code = item.get("exit_code")
            output = str(item.get("aggregated_output") or "")
            if code not in (0, None):
                output = f"{output}\n[exit code {code}]".lstrip("\n")
            return (
                "shell",
                {"command": item.get("command")},
                output,
                failed or code not in (0, None),
            )
        if itype == "file_change":
            changes = [c for c in item.get("changes") or [] if isinstance(c, dict)]
            summary = "\n".join(f"{c.get('kind', 'update')} {c.get('path', '')}" for c in changes)
            return "apply_patch", {"changes": changes}, summary, failed
        if itype == "mcp_tool_call":
            name = f"{item.get('server', 'mcp')}.{item.get('tool', 'tool')}"
            error = item.get("error")
            if isinstance(error, dict) and error.get("message"):
                return name, item.get("arguments"), str(error["message"]), True
            result = item.get("result")
            if isinstance(result, dict):
                blocks = result.get("content") or []
                text = "\n".join(
                    str(b.get("text", "")) for b in blocks if isinstance(b, dict) and "text" in b
                )
            else:
                text = json.dumps(result) if result is not None else ""
            return name, item.get("arguments"), text, failed
        if itype == "web_search":
            return "web_search", {"query": item.get("query")}, str(item.get("query") or ""), failed
        return None

    def _completed(self, usage: dict[str, Any]) -> list[Event]:
        input_tokens = int(usage.get("input_tokens") or 0)
        output_tokens = int(usage.get("output_tokens") or 0)
        # codex does not report prices
        done = events.done(self.state.provider_session_id, 0.0, self.elapsed_ms())
        return [events.usage(input_tokens, output_tokens, 0.0), self.end_with(done)]

    @staticmethod
    def _failure(message: str) -> Event:
        if _looks_unauthenticated(message):
            return events.error("not_authenticated", f"{LOGIN_HINT} ({message})")
        return events.error("provider_failed", f"Codex reported an error: {message}")

    def looks_unauthenticated(self, text: str) -> bool:
        return _looks_unauthenticated(text)

    def known_exit_error(self, returncode: int, stderr_tail: str, detail: str) -> Event | None:
        if NO_ROLLOUT in stderr_tail:
            return self.lost_conversation(detail)
        if "Error finding codex home" in stderr_tail:
            return events.error(
                "provider_failed",
                f"Codex cannot use its home folder: {detail}. Create the folder that "
                "CODEX_HOME names, or unset CODEX_HOME (default ~/.codex).",
            )
        return None


class CodexProvider(CliProvider):
    """OpenAI's Codex CLI, run with ``codex exec --json``, sandboxed to the notebook's folder."""

    name: ClassVar[str] = "codex"
    display_name: ClassVar[str] = "Codex"
    install_step: ClassVar[SetupStep | None] = SetupStep(INSTALL_HINT)
    login_check: ClassVar[str | None] = "codex login status"
    login_step: ClassVar[SetupStep | None] = SetupStep(
        "codex login", "Or set OPENAI_API_KEY (or CODEX_API_KEY) in the server's environment."
    )
    # codex stops its sandboxed commands itself on SIGINT (checked: `sleep` in a tool is gone)
    interrupt_signal: ClassVar[int] = int(signal.SIGINT)
    cli_name: ClassVar[str] = "Codex CLI"
    login_hint: ClassVar[str | None] = LOGIN_HINT

    command = command_trait("codex", example="['npx', '@openai/codex']")

    sandbox = Enum(
        ["read-only", "workspace-write", "danger-full-access"],
        default_value="workspace-write",
        help=(
            "--sandbox for the commands codex runs. workspace-write lets them write only inside "
            "the notebook's folder (no network unless network_access); read-only writes nothing; "
            "danger-full-access removes the sandbox."
        ),
    ).tag(config=True)

    approval_policy = Enum(
        ["never", "on-request"],
        default_value="never",
        help=(
            "When codex asks before running a command. A notebook turn cannot answer codex's "
            "questions, so 'never' (the default) returns a sandbox refusal to the model instead."
        ),
    ).tag(config=True)

    network_access = Bool(
        False, help="Let sandboxed commands use the network (workspace-write only)."
    ).tag(config=True)

    writable_tmp = Bool(
        False,
        help="Let sandboxed commands also write /tmp and $TMPDIR (codex's own default; off here "
        "so that the agent writes only inside the notebook's folder).",
    ).tag(config=True)

    config_overrides = Dict(
        value_trait=Unicode(),
        default_value={},
        help="Codex config overrides passed as -c key=value (values are TOML), e.g. "
        "{'model_provider': 'azure', 'model_reasoning_effort': '\"high\"'}.",
    ).tag(config=True)

    check_credentials = Bool(
        True,
        help="Refuse to start a turn when no codex credentials are found (codex would retry "
        "for minutes instead of failing). Checked only for OpenAI's own model provider.",
    ).tag(config=True)

    supports_notebook_tools: ClassVar[bool] = True

    def notebook_edits(self) -> EditMode:
        # The sandbox decides codex's own file edits: read-only makes none; the others let
        # edits in the notebook's folder run without asking (approval_policy never).
        return "deny" if self.sandbox == "read-only" else "allow"

    # -- credentials ----------------------------------------------------------------------

    def codex_home(self, env: dict[str, str]) -> Path:
        if env.get("CODEX_HOME"):
            return Path(env["CODEX_HOME"]).expanduser()
        return Path(env.get("HOME") or "~").expanduser() / ".codex"

    def uses_custom_model_provider(self, env: dict[str, str]) -> bool:
        """True when codex talks to another model provider (whose keys we cannot check)."""
        if "model_provider" in self.config_overrides or "--oss" in self.extra_args:
            return True
        if any(arg.startswith("model_provider=") for arg in self.extra_args):
            return True
        try:
            text = (self.codex_home(env) / "config.toml").read_text(encoding="utf-8")
        except OSError:
            return False
        for line in text.splitlines():
            if line.lstrip().startswith("["):
                break  # only top-level keys choose the provider
            match = _MODEL_PROVIDER.match(line)
            if match:
                return match.group(1) != "openai"
        return False

    def credentials_state(self, env: dict[str, str]) -> str:
        if self.uses_custom_model_provider(env):
            return "unknown"
        if env.get("CODEX_API_KEY") or env.get("OPENAI_API_KEY"):
            return "present"
        if (self.codex_home(env) / "auth.json").is_file():
            return "present"
        return "missing"

    # -- a turn ----------------------------------------------------------------------------

    def build_launch(self, request: TurnRequest, base_env: dict[str, str]) -> LaunchSpec:
        env = self.launch_env(base_env)
        argv = self.resolved_argv(env)
        if self.check_credentials and self.credentials_state(env) == "missing":
            raise ProviderUnavailable("not_authenticated", LOGIN_HINT)
        if not env.get("CODEX_API_KEY") and env.get("OPENAI_API_KEY"):
            # codex exec reads CODEX_API_KEY only; users expect OPENAI_API_KEY to work.
            env["CODEX_API_KEY"] = env["OPENAI_API_KEY"]
        argv += ["exec", "--json", "--skip-git-repo-check", "-C", request.working_dir]
        argv += [
            "--sandbox",
            self.sandbox,
            "-c",
            f"approval_policy={_toml_string(self.approval_policy)}",
        ]
        if self.sandbox == "workspace-write":
            network = "true" if self.network_access else "false"
            argv += ["-c", f"sandbox_workspace_write.network_access={network}"]
            if not self.writable_tmp:
                argv += ["-c", "sandbox_workspace_write.exclude_slash_tmp=true"]
                argv += ["-c", "sandbox_workspace_write.exclude_tmpdir_env_var=true"]
        model = self.turn_model(request)
        if model:
            argv += ["--model", model]
        for key, value in self.config_overrides.items():
            argv += ["-c", f"{key}={value}"]
        if request.notebook_tools is not None:
            for override in notebook_tools_config(request.notebook_tools):
                argv += ["-c", override]
            env[CAPABILITY_ENV] = request.notebook_tools.capability
        # The notebook's context can be large: it goes on stdin with the prompt, because one
        # command-line argument is limited to 128 KiB on Linux.
        instructions = self.instructions(request, with_context=False)
        argv += ["-c", f"developer_instructions={_toml_string(instructions)}"]
        argv += list(self.extra_args)
        resume_id = self.resume_id(request)
        if resume_id:
            argv += ["resume", resume_id]
        argv.append("-")  # the prompt comes on stdin
        prompt = self.prompt_with_context(request)
        return LaunchSpec(argv=argv, env=env, stdin=prompt.encode(), cwd=request.working_dir)

    def create_parser(self, request: TurnRequest) -> StreamParser:
        return self.resuming_parser(CodexStreamParser, request)
