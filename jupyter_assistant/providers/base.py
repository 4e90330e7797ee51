"""The provider interface: how a turn becomes a command line, and each output line becomes events.

A provider is a traitlets ``Configurable`` (so ``c.ClaudeCodeProvider.model = "..."`` works) that
knows nothing of tornado, IPython or the store. Third-party providers register a subclass under the
entry point group ``jupyter_assistant.providers``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from traitlets import Dict, Unicode
from traitlets.config import LoggingConfigurable

from .. import events

# Re-exported: providers import them from here.
from ..events import TERMINAL_EVENTS as TERMINAL_EVENTS
from ..events import Event as Event

# Environment variables of Jupyter itself that must never reach an agent that runs shell commands.
SECRET_ENV_VARS = frozenset(
    {
        "JUPYTER_TOKEN",
        "JUPYTER_SERVER_TOKEN",
        "JUPYTERHUB_API_TOKEN",
        "JUPYTERHUB_COOKIE_SECRET",
        "JUPYTERHUB_OAUTH_CLIENT_SECRET",
        "JPY_API_TOKEN",
        "JPY_COOKIE_SECRET",
        "JUPYTER_GATEWAY_AUTH_TOKEN",
        "JUPYTER_COOKIE_SECRET",
    }
)


# Set by ipykernel for the kernel itself; an agent's scripts must not inherit them (e.g. the
# inline matplotlib backend makes `python plot.py` fail to show or save as expected).
KERNEL_ENV_PREFIXES = ("JPY_", "PYDEVD_")


def _kernel_only(key: str, value: str) -> bool:
    if key.startswith(KERNEL_ENV_PREFIXES):
        return True
    return key == "MPLBACKEND" and value.startswith("module://matplotlib_inline")


def provider_environment(*overlays: dict[str, str]) -> dict[str, str]:
    """The server's (or kernel's) environment minus Jupyter's own secrets and kernel-only
    variables, plus configured overlays."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in SECRET_ENV_VARS and not _kernel_only(key, value)
    }
    for overlay in overlays:
        env.update(overlay)
    return env


@dataclass(frozen=True)
class NotebookToolsAccess:
    """How a turn's agent reaches the notebook tools: an MCP server over streamable HTTP at
    ``url``, each request carrying ``capability`` in the ``header`` (never Jupyter's token).
    A provider passes it to its CLI in the form that CLI configures MCP servers."""

    name: str  # the MCP server's name ("notebook"): tools show as mcp__notebook__<tool>
    url: str
    header: str
    capability: str

    def headers(self) -> dict[str, str]:
        return {self.header: self.capability}


@dataclass
class TurnRequest:
    session_id: str
    turn_id: str
    prompt: str
    working_dir: str
    notebook_path: str
    provider_session_id: str | None = None
    context: dict[str, Any] | None = None
    model: str | None = None
    # A folder only this user can read (0700), for files a launch needs that must not show on
    # the command line (``private_file``). None: the system's temporary folder.
    scratch_dir: str | None = None
    # The notebook tools for this turn (None: not offered).
    notebook_tools: NotebookToolsAccess | None = None
    # Warm providers (turns/warm.py): the process is kept running after this turn's result
    # (the parser leaves stdin open), and whether this turn reuses one already running (the
    # parser then skips what the process was told when it started).
    keep_process: bool = False
    reuses_process: bool = False
    # A pre-warm (``Provider.prewarms``): start the process and get it ready for the session's
    # next turn, without a prompt (``prompt`` is empty); the parser ends with ``done`` once the
    # process is ready.
    prewarm: bool = False


@dataclass
class LaunchSpec:
    argv: list[str]
    env: dict[str, str]
    stdin: bytes | None = None
    cwd: str = ""
    # Files the runner removes once the process has ended (e.g. ``private_file``'s).
    cleanup: list[str] = field(default_factory=list)
    # Set by a provider whose process can take the session's next turn too (turns/warm.py):
    # what the launch is, apart from what changes every turn and reaches a running process
    # anyway (the prompt, the conversation to resume). A running process is reused only for
    # a launch with the same key; None: one process per turn.
    reuse_key: str | None = None


def private_file(
    request: TurnRequest, text: str, prefix: str = "prompt-", suffix: str = ".md"
) -> str:
    """Write ``text`` to a new file only this user can read (0600) and return its path: for
    what a CLI takes as a file argument but other local users must not see in ``ps`` (a
    notebook's cell, a secret in it). Put the path in ``LaunchSpec.cleanup``."""
    import tempfile

    if request.scratch_dir:
        os.makedirs(request.scratch_dir, mode=0o700, exist_ok=True)
    descriptor, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=request.scratch_dir)
    try:  # mkstemp creates it 0600
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
    except BaseException:
        os.unlink(path)
        raise
    return path


@dataclass
class ProviderHealth:
    name: str
    display_name: str
    available: bool
    version: str | None = None
    problem: str | None = None
    credentials: str = "unknown"  # present | missing | unknown
    executable: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "available": self.available,
            "version": self.version,
            "problem": self.problem,
            "credentials": self.credentials,
            "executable": self.executable,
        }


@dataclass(frozen=True)
class SetupStep:
    """A command to run in a terminal on the Jupyter server to set a provider up, with what to
    do after it (or instead). The sidebar's onboarding card offers it with a Copy button;
    ``jupyter assistant doctor`` prints it as the fix."""

    command: str
    note: str | None = None

    def to_json(self, label: str) -> dict[str, Any]:
        return {"label": label, "command": self.command, "note": self.note}

    def as_sentence(self) -> str:
        """``run `claude`, then type /login`` / ``run `codex login`. Or set ...``"""
        if not self.note:
            return f"run `{self.command}`"
        joint = ", " if self.note[:1].islower() else ". "
        return f"run `{self.command}`{joint}{self.note}"


class ProviderUnavailable(Exception):
    """The turn cannot start (CLI missing, credentials missing): becomes an ``error`` event."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ProviderIO(Protocol):
    """The provider process's stdin, for providers that talk a protocol on it."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class StreamParser:
    """Per-turn, stateful: provider output lines in, normalized events (events.py) out.

    The whole protocol the runner uses; a parser overrides what its provider supports:

    - ``feed`` (required): one output line (without its newline) -> events.
    - ``finish``: called once at process exit; returns a terminal event unless one was fed.
    - ``interactive = True``: the parser drives a protocol over stdin (ACP's JSON-RPC, Claude
      Code's control messages). The runner then keeps stdin open and calls ``start`` right
      after the spawn instead of writing ``LaunchSpec.stdin``; ``feed`` may write replies
      through the same ``io``.
    - ``interrupt``: ask the provider to end the turn through its protocol, before any signal;
      False if it cannot (the runner goes straight to signals).
    - ``answer_permission``: deliver the user's answer to a ``permission_request``; False if
      the request is unknown.
    - ``provider_session_id``: the provider's conversation id once known (for resume).
    - ``resume_failed``: read after ``finish``: the provider could not resume the conversation
      it was given, so the runner retries once with a new one.
    """

    interactive: bool = False
    resume_failed: bool = False

    @property
    def provider_session_id(self) -> str | None:
        return None

    def start(self, io: ProviderIO) -> None:
        return None

    def feed(self, line: bytes) -> list[Event]:
        raise NotImplementedError

    def finish(self, returncode: int, stderr_tail: str) -> list[Event]:
        return []

    def interrupt(self) -> bool:
        return False

    def answer_permission(
        self, request_id: str, allow: bool, scope: str, message: str | None
    ) -> bool:
        return False


@dataclass
class ParserState:
    provider_session_id: str | None = None
    terminal: Event | None = None
    invalid_lines: int = 0


class StatefulParser(StreamParser):
    """A parser that keeps its progress in a ``ParserState``: the conversation id it learnt and
    the terminal event once there is one (the built-in parsers all derive from it)."""

    def __init__(self) -> None:
        self.state = ParserState()
        self.resume_failed = False

    @property
    def provider_session_id(self) -> str | None:
        return self.state.provider_session_id

    def end_with(self, terminal: Event) -> Event:
        """Record the turn's terminal event (``finish`` then adds none) and return it."""
        self.state.terminal = terminal
        return terminal

    def finish(self, returncode: int, stderr_tail: str) -> list[Event]:
        if self.state.terminal is not None:
            return []
        return [self.end_with(self.exit_error(returncode, stderr_tail))]

    def exit_error(self, returncode: int, stderr_tail: str) -> Event:
        """The error of a process that ended before the turn did."""
        return events.error("provider_failed", f"The provider exited with code {returncode}.")


EditMode = Literal["allow", "ask", "deny"]


class Provider(LoggingConfigurable):
    """Base class of every provider."""

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    install_hint: ClassVar[str] = ""
    # How to install the CLI and how to log in (None: the provider's `problem` text says how).
    install_step: ClassVar[SetupStep | None] = None
    login_step: ClassVar[SetupStep | None] = None
    # A command a user can run to see whether the CLI is logged in (no model call), if any.
    login_check: ClassVar[str | None] = None
    # The signal that asks the provider to stop its turn cleanly; its children get SIGTERM.
    interrupt_signal: ClassVar[int] = int(signal.SIGTERM)
    # How long the process may take to exit on its own once its result is in, before it is
    # stopped (and the turn's end waits that long): a CLI exits at the end of its input; an
    # agent that is a server (ACP) may stay up.
    exit_after_result_seconds: ClassVar[float] = 10.0

    env = Dict(
        value_trait=Unicode(),
        help="Extra environment variables for this provider's process (e.g. API keys).",
    ).tag(config=True)

    def build_launch(self, request: TurnRequest, base_env: dict[str, str]) -> LaunchSpec:
        raise NotImplementedError

    @classmethod
    def setup_json(cls) -> dict[str, Any]:
        """The ``setup`` of ``GET providers``: the install and login steps, or nulls."""
        return {
            "install": cls.install_step.to_json("Install") if cls.install_step else None,
            "login": cls.login_step.to_json("Log in") if cls.login_step else None,
        }

    def create_parser(self, request: TurnRequest) -> StreamParser:
        raise NotImplementedError

    async def health(self) -> ProviderHealth:
        raise NotImplementedError

    # Whether this provider's CLI can be given the notebook tools (an MCP server over HTTP).
    supports_notebook_tools: ClassVar[bool] = False

    def prewarms(self) -> bool:
        """Whether this provider's process can be started before a turn (``TurnRequest.prewarm``)
        and take the turn as a warm process (turns/warm.py): the sidebar pre-warms a notebook's
        session when it opens it."""
        return False

    def notebook_edits(self) -> EditMode:
        """What the provider's own settings say of file edits, which the notebook tools'
        cell edits follow: ``allow`` (edits run without asking), ``ask`` or ``deny``."""
        return "ask"

    # -- helpers for subclasses ----------------------------------------------------------------

    @staticmethod
    def which(executable: str, path: str | None = None) -> str | None:
        if os.sep in executable:
            return executable if os.access(executable, os.X_OK) else None
        return shutil.which(executable, path=path)

    @staticmethod
    async def read_version(argv: list[str], env: dict[str, str], timeout: float = 15.0) -> str:
        """Run ``argv`` (e.g. ``claude --version``) and return its first output line."""
        returncode, out, _ = await run_briefly(argv, env, timeout, merge_stderr=True)
        text = out.strip()
        if returncode != 0:
            raise RuntimeError(text.splitlines()[-1] if text else f"exit code {returncode}")
        return text.splitlines()[0] if text else ""


async def run_briefly(
    argv: list[str], env: dict[str, str], timeout: float = 15.0, merge_stderr: bool = False
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a short command such as ``--version``, run in a session
    of its own with no stdin; killed and ``asyncio.TimeoutError`` after ``timeout`` seconds.
    ``merge_stderr``: stderr is read with stdout."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if merge_stderr else asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    returncode = proc.returncode if proc.returncode is not None else -1
    return returncode, out.decode(errors="replace"), (err or b"").decode(errors="replace")
