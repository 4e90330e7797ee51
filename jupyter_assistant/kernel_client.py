"""The engine inside a kernel: the glue between the magics and ``AssistantService``.

Nothing here imports IPython; ``magics.py`` is the IPython-facing layer. This module:

* finds the notebook the kernel belongs to (``JPY_SESSION_NAME``, then ``__session__``, then
  VS Code's ``__vsc_ipynb_file__``), else keys the session by the working directory;
* reads the same configuration as the server (``c.AssistantExtension.*``,
  ``c.ClaudeCodeProvider.*`` in ``jupyter_server_config.py/.json``) plus the kernel's own IPython
  config on top, without importing jupyter_server (about a second in a kernel);
* runs the asyncio engine on a private event-loop thread, because the kernel's own loop is
  blocked while the cell that runs the magic executes;
* folds a turn's events into a view and publishes it at a bounded rate;
* writes bounded summaries of notebook variables for ``--with``.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import json
import logging
import os
import re
import reprlib
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from jupyter_core.paths import jupyter_config_path, jupyter_runtime_dir
from traitlets.config import Config
from traitlets.config.loader import (
    ConfigFileNotFound,
    JSONFileConfigLoader,
    PyFileConfigLoader,
)

from .settings import STORE_ENV, EngineSettings

if TYPE_CHECKING:
    from .service import AssistantService
    from .turns import Turn

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class PermissionAnswer:
    decision: Literal["allow", "deny"]
    scope: Literal["once", "session"] = "once"
    message: str | None = None


# Answers a permission_request event, or None when no answer could be had.
Decider = Callable[[Mapping[str, Any]], "PermissionAnswer | None"]

# Config files the server reads (traitlets' rule: every config dir, lowest priority first).
SERVER_CONFIG_FILES = ("jupyter_config", "jupyter_server_config")
# A stand-in file name for "no notebook": keys the session by the folder, cannot be a notebook.
NO_NOTEBOOK_NAME = "<ipython>"

# -- which notebook --------------------------------------------------------------------------


@dataclass(frozen=True)
class NotebookRef:
    """The notebook a kernel belongs to, or the working directory outside a notebook."""

    file: str  # absolute path: the store's index key (resolved by the engine)
    folder: str
    source: str  # where it came from: JPY_SESSION_NAME, __session__, __vsc_ipynb_file__, cwd
    display_path: str

    @property
    def in_notebook(self) -> bool:
        return self.source != "cwd"


def server_root(environ: Mapping[str, str]) -> str | None:
    """The root folder of the Jupyter server that started this kernel, if it is on this
    machine: the server is the kernel's ``JPY_PARENT_PID`` and describes itself in
    ``<runtime dir>/jpserver-<pid>.json``."""
    pid = environ.get("JPY_PARENT_PID", "")
    if not pid.isdigit():
        return None
    try:
        info = json.loads((Path(jupyter_runtime_dir()) / f"jpserver-{pid}.json").read_text())
    except (OSError, ValueError):
        return None
    root = info.get("root_dir") if isinstance(info, dict) else None
    return root if isinstance(root, str) and root else None


def _display_path(file: str, root: str | None) -> str:
    """The notebook's path as the server shows it (relative to its root), else its name."""
    if root:
        for base, target in ((root, file), (os.path.realpath(root), os.path.realpath(file))):
            relative = os.path.relpath(target, base)
            if not relative.startswith(os.pardir):
                return relative.replace(os.sep, "/")
    return os.path.basename(file)


def find_notebook(
    user_ns: Mapping[str, Any],
    environ: Mapping[str, str],
    cwd: str,
    start_dir: str | None = None,
    root: str | None = None,
) -> NotebookRef:
    """The kernel's notebook. ``start_dir`` is the kernel's first working directory, used to
    place a relative ``JPY_SESSION_NAME`` (a server without the session's file name sets it to
    the API path, while the kernel starts in the notebook's folder). ``root`` is the server's
    root folder, for the path shown with the session."""
    candidates = (
        ("JPY_SESSION_NAME", environ.get("JPY_SESSION_NAME")),
        ("__session__", user_ns.get("__session__")),
        ("__vsc_ipynb_file__", user_ns.get("__vsc_ipynb_file__")),
    )
    for source, value in candidates:
        if not isinstance(value, str) or not value.strip():
            continue
        value = value.strip()
        if not os.path.isabs(value):
            value = os.path.join(start_dir or cwd, os.path.basename(value))
        value = os.path.abspath(value)
        return NotebookRef(
            file=value,
            folder=os.path.dirname(value),
            source=source,
            display_path=_display_path(value, root),
        )
    folder = os.path.abspath(cwd)
    return NotebookRef(
        file=os.path.join(folder, NO_NOTEBOOK_NAME),
        folder=folder,
        source="cwd",
        display_path=f"IPython in {folder}",
    )


# -- configuration -----------------------------------------------------------------------------


# AssistantExtension settings that only matter to a server (streams, periodic reaping).
SERVER_ONLY_SETTINGS = frozenset({"sse_keepalive_seconds", "reap_interval_seconds"})

# The engine settings, from the same config section (c.AssistantExtension.*) as the server's.
KernelSettings = EngineSettings


@dataclass
class LoadedConfig:
    config: Config
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _user_config_disabled(environ: Mapping[str, str]) -> bool:
    """JupyterHub's ``disable_user_config``, as its single-user server reads it."""
    return environ.get("JUPYTERHUB_DISABLE_USER_CONFIG", "").lower() not in ("", "0", "false")


def _outside_home(folders: Iterable[str]) -> list[str]:
    home = Path.home().resolve()
    return [f for f in folders if not Path(f).resolve().is_relative_to(home)]


def _load_files(folders: list[str], result: LoadedConfig) -> None:
    for base in SERVER_CONFIG_FILES:
        for folder in reversed(folders):  # lowest priority first, so later files win
            for loader_class, suffix in (
                (PyFileConfigLoader, ".py"),
                (JSONFileConfigLoader, ".json"),
            ):
                loader = loader_class(base + suffix, path=folder)
                try:
                    loaded = loader.load_config()
                except ConfigFileNotFound:
                    continue
                except Exception as exc:  # a broken file is the user's to fix; say which
                    name = loader.full_filename or os.path.join(folder, base + suffix)
                    result.problems.append(f"{name}: {exc}")
                    continue
                result.config.merge(loaded)
                if loader.full_filename not in result.files:
                    result.files.append(loader.full_filename)


def load_config(
    ipython_config: Config | None = None,
    environ: Mapping[str, str] | None = None,
    paths: Iterable[str] | None = None,
) -> LoadedConfig:
    """The settings a kernel uses: the Jupyter server config files, merged as the server merges
    them, with the kernel's own IPython config counting as the user's own config.

    Only ``jupyter_config`` and ``jupyter_server_config`` (``.py`` then ``.json``) are read:
    the server reads ``jupyter_server_config.d/*.json`` for enabling extensions only. A file
    that fails to load is reported and skipped, as the server does. As for the server, the
    folders of ``$JUPYTER_CONFIG_PATH`` (where JupyterHub admins put their policy) outrank the
    user's, and with JupyterHub's ``disable_user_config`` nothing in the home folder is read.
    """
    env = os.environ if environ is None else environ
    folders = list(jupyter_config_path() if paths is None else paths)
    if _user_config_disabled(env):
        folders = _outside_home(folders)
        ipython_config = None
    result = LoadedConfig(Config())
    _load_files(folders, result)
    if ipython_config is not None:
        result.config.merge(ipython_config)
        # ...but what outranks the user's own config still does.
        explicit = {p.rstrip(os.sep) for p in env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep)}
        _load_files([f for f in folders if f.rstrip(os.sep) in explicit - {""}], result)
    return result


# -- the private event loop ----------------------------------------------------------------------


class EngineLoop:
    """An asyncio loop on a daemon thread. The kernel's main thread submits coroutines and
    waits on them; waits are sliced so that a kernel interrupt (SIGINT) lands promptly."""

    WAIT_SLICE = 0.5

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=run, name="jupyter-assistant-engine", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._ensure())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the engine loop and wait. KeyboardInterrupt propagates; the
        coroutine keeps running (callers that must not leave work behind use ``finish``)."""
        return self.wait(self.submit(coro))

    def wait(self, future: concurrent.futures.Future[T]) -> T:
        while True:
            try:
                return future.result(timeout=self.WAIT_SLICE)
            except concurrent.futures.TimeoutError:
                continue

    def finish(self, future: concurrent.futures.Future[T]) -> T:
        """Wait for ``future`` even through further interrupts: used while cancelling, when
        leaving early would leave a provider running."""
        while True:
            try:
                return self.wait(future)
            except KeyboardInterrupt:
                continue

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout)
        if not loop.is_running():
            loop.close()


# -- a turn, as the cell shows it -------------------------------------------------------------


TOOL_INPUT_KEYS = ("command", "file_path", "path", "pattern", "url", "query")
TOOL_DETAIL_CHARS = 120


def tool_detail(tool_input: Any) -> str:
    """One short line saying what a tool call does (its command or file), for the cell."""
    text = ""
    if isinstance(tool_input, dict):
        for key in TOOL_INPUT_KEYS:
            if key in tool_input:
                text = str(tool_input[key])
                break
        else:
            text = json.dumps(tool_input, default=str) if tool_input else ""
    elif tool_input is not None:
        text = str(tool_input)
    text = " ".join(text.split())
    if len(text) > TOOL_DETAIL_CHARS:
        text = text[: TOOL_DETAIL_CHARS - 1] + "…"
    return text


@dataclass
class ToolLine:
    id: str
    name: str
    detail: str
    done: bool = False
    failed: bool = False


@dataclass
class AskLine:
    """A tool approval question of the turn, and how it was answered."""

    request_id: str
    name: str
    detail: str
    summary: str
    outcome: str = ""  # empty while it waits


ANSWERED = {
    ("allow", "once"): "allowed once",
    ("allow", "session"): "allowed for this session",
    ("deny", "once"): "denied",
    ("deny", "session"): "denied for this session",
}
SUMMARY_LINES = 40  # of a question's diff or command, in the cell


@dataclass
class TurnView:
    """A turn's events folded into what the cell shows: text and tool lines in order, then a
    footer. Also the source of ``--output`` (the reply text) and ``--code``."""

    provider: str = ""
    parts: list[list[str] | ToolLine | AskLine | str] = field(default_factory=list)
    tools: dict[str, ToolLine] = field(default_factory=dict)
    asks: dict[str, AskLine] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    terminal: dict[str, Any] | None = None
    after: int = 0  # sequence number of the last event folded

    def fold(self, seq: int, event: Mapping[str, Any]) -> None:
        self.after = seq
        etype = event.get("type")
        if etype == "text":
            if self.parts and isinstance(self.parts[-1], list):
                self.parts[-1].append(str(event.get("text", "")))
            else:
                self.parts.append([str(event.get("text", ""))])
        elif etype == "tool_use":
            line = ToolLine(str(event.get("id", "")), str(event.get("name", "")), "")
            line.detail = tool_detail(event.get("input"))
            self.tools[line.id] = line
            self.parts.append(line)
        elif etype == "tool_result":
            known = self.tools.get(str(event.get("id", "")))
            if known is not None:
                known.done = True
                known.failed = bool(event.get("is_error"))
        elif etype in ("notice", "permission_denied"):
            self.parts.append(str(event.get("message", "")))
        elif etype == "permission_request":
            name = str(event.get("tool_name", ""))
            ask = AskLine(
                str(event.get("request_id", "")),
                name,
                tool_detail(event.get("input")),
                str(event.get("summary", "")),
            )
            self.asks[ask.request_id] = ask
            self.parts.append(ask)
        elif etype == "permission_answered":
            known_ask = self.asks.get(str(event.get("request_id", "")))
            if known_ask is not None:
                key = (str(event.get("decision")), str(event.get("scope")))
                outcome = ANSWERED.get(key, str(event.get("decision")))
                if event.get("by") == "timeout":
                    outcome = "denied: nobody answered in time"
                elif event.get("message"):
                    outcome += f": {event['message']}"
                known_ask.outcome = outcome
        elif etype == "usage":
            self.usage = dict(event)
        elif etype in ("done", "error", "cancelled"):
            self.terminal = dict(event)

    @property
    def finished(self) -> bool:
        return self.terminal is not None

    def tool_state(self, line: ToolLine) -> str:
        """ "stopped" for a tool that Stop ended (no result, or the error of being killed),
        "failed" for one that failed on its own, else ""."""
        stopped = self.terminal is not None and self.terminal.get("type") == "cancelled"
        if stopped and (line.failed or not line.done):
            return "stopped"
        return "failed" if line.failed else ""

    def text(self) -> str:
        """The reply text, as stored in the session."""
        return "".join("".join(part) for part in self.parts if isinstance(part, list))

    def footer(self) -> str:
        if self.terminal is None:
            return "working…"
        bits = []
        ttype = self.terminal.get("type")
        if ttype == "cancelled":
            bits.append("cancelled")
        elif ttype == "error":
            bits.append(f"error: {self.terminal.get('code', 'error')}")
        cost = self.terminal.get("cost_usd", self.usage.get("cost_usd"))
        if cost:
            bits.append(f"${float(cost):.4f}")
        duration = self.terminal.get("duration_ms")
        if duration:
            bits.append(f"{int(duration) / 1000:.1f} s")
        tokens_in, tokens_out = self.usage.get("input_tokens"), self.usage.get("output_tokens")
        if tokens_in or tokens_out:
            bits.append(f"{int(tokens_in or 0):,} tokens in, {int(tokens_out or 0):,} out")
        return " · ".join(bits) if bits else "done"

    def markdown(self) -> str:
        chunks: list[str] = []
        for part in self.parts:
            if isinstance(part, list):
                chunks.append("".join(part))
            elif isinstance(part, ToolLine):
                state = f" — {self.tool_state(part)}" if self.tool_state(part) else ""
                code = part.detail.replace("`", "'")
                detail = f" `{code}`" if code else ""
                chunks.append(f"\n\n> **{part.name}**{detail}{state}\n\n")
            elif isinstance(part, AskLine):
                code = part.detail.replace("`", "'")
                state = part.outcome or "waiting for your answer"
                # A tilde fence: the summary may hold backticks (code the agent writes).
                fence = "~~~~diff" if part.summary.startswith("--- ") else "~~~~"
                body = _clip_lines(part.summary)
                chunks.append(
                    f"\n\n> ❓ **{part.name}** `{code}` — {state}\n\n"
                    + (f"{fence}\n{body}\n~~~~\n\n" if body and not part.outcome else "")
                )
            else:
                chunks.append(f"\n\n> ⚠ {part}\n\n")
        body = "".join(chunks).strip()
        footer = f"*{self.footer()}*"
        return f"{body}\n\n{footer}" if body else footer

    def plain_body(self) -> str:
        chunks: list[str] = []
        for part in self.parts:
            if isinstance(part, list):
                chunks.append("".join(part))
            elif isinstance(part, ToolLine):
                state = f" ({self.tool_state(part)})" if self.tool_state(part) else ""
                chunks.append(f"\n[{part.name}] {part.detail}{state}\n")
            elif isinstance(part, AskLine):
                # Only ever appended to (a terminal prints what is new): the answer goes after.
                chunks.append(f"\n[? {part.name}] {part.detail} — asks for your answer\n")
                chunks.append(f"{_clip_lines(part.summary)}\n" if part.summary else "")
                chunks.append(f"[{part.outcome}]\n" if part.outcome else "")
            else:
                chunks.append(f"\n[!] {part}\n")
        return "".join(chunks)

    def plain(self) -> str:
        body = self.plain_body().strip()
        return f"{body}\n\n-- {self.footer()}" if body else f"-- {self.footer()}"


def _clip_lines(text: str) -> str:
    lines = text.splitlines()
    if len(lines) <= SUMMARY_LINES:
        return text
    return "\n".join([*lines[:SUMMARY_LINES], f"… ({len(lines) - SUMMARY_LINES} more lines)"])


CODE_BLOCK = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*?)^[ \t]*```", re.S | re.M)
PYTHON_LANGS = {"", "python", "py", "python3", "ipython", "ipython3"}


def first_code_block(text: str) -> str | None:
    """The reply's first Python (or untagged) fenced code block, else its first block."""
    blocks = [(m.group(1).lower(), m.group(2)) for m in CODE_BLOCK.finditer(text)]
    for lang, body in blocks:
        if lang in PYTHON_LANGS:
            return body.rstrip("\n")
    return blocks[0][1].rstrip("\n") if blocks else None


# -- variables for --with ----------------------------------------------------------------------

VARIABLE_CHARS = 4000  # per variable
CONTEXT_CHARS = 24000  # all variables of one message
HEAD_ROWS = 5

_repr = reprlib.Repr()
_repr.maxstring = 400
_repr.maxother = 400
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 20
_repr.maxlevel = 3


def _type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    top = module.split(".")[0]
    if module == "builtins":
        return cls.__qualname__
    return (
        f"{top}.{cls.__qualname__}"
        if top in ("pandas", "numpy")
        else f"{module}.{cls.__qualname__}"
    )


def _is(value: Any, package: str, *names: str) -> bool:
    """Is ``value`` one of ``package``'s ``names`` (or a subclass), without importing it."""
    return any(
        cls.__module__.split(".")[0] == package and cls.__name__ in names
        for cls in type(value).__mro__
    )


def _safe(describe: Callable[[], str]) -> str:
    try:
        return describe()
    except Exception as exc:  # a broken __repr__ must not break the turn
        return f"<could not describe: {type(exc).__name__}: {exc}>"


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 40].rstrip() + f"\n… [{len(text) - limit + 40} more characters]"


def summarize_value(name: str, value: Any) -> str:
    """A bounded description: type, then shape/dtypes/head for DataFrames and arrays, else a
    truncated repr. Never imports pandas or numpy (a value of theirs means they are loaded)."""
    lines = [f"#### `{name}`: {_type_name(value)}"]
    if _is(value, "pandas", "DataFrame"):
        lines.append(f"shape: {_safe(lambda: str(value.shape))}")
        lines.append(
            "dtypes: "
            + _safe(
                lambda: (
                    ", ".join(f"{col}: {dtype}" for col, dtype in list(value.dtypes.items())[:50])
                    + (f", … ({value.shape[1] - 50} more columns)" if value.shape[1] > 50 else "")
                )
            )
        )
        head = _safe(lambda: value.head(HEAD_ROWS).to_string(max_cols=20, max_colwidth=40))
        lines.append(f"first {HEAD_ROWS} rows:\n```\n{head}\n```")
    elif _is(value, "pandas", "Series"):
        lines.append(
            f"length: {_safe(lambda: str(len(value)))}, dtype: {_safe(lambda: str(value.dtype))}"
        )
        head = _safe(lambda: value.head(HEAD_ROWS).to_string(max_rows=HEAD_ROWS))
        lines.append(f"first {HEAD_ROWS} values:\n```\n{head}\n```")
    elif _is(value, "numpy", "ndarray") or _is(value, "numpy", "matrix"):
        lines.append(
            f"shape: {_safe(lambda: str(value.shape))}, dtype: {_safe(lambda: str(value.dtype))}"
        )
        lines.append(f"```\n{_safe(lambda: _numpy_preview(value))}\n```")
    else:
        size = _safe(lambda: str(len(value))) if hasattr(value, "__len__") else None
        if size is not None and not size.startswith("<"):
            lines.append(f"length: {size}")
        lines.append(f"```\n{_safe(lambda: _repr.repr(value))}\n```")
    return _truncate("\n".join(lines), VARIABLE_CHARS)


def _numpy_preview(value: Any) -> str:
    import numpy  # present: the value is a numpy array

    return str(numpy.array2string(value, threshold=50, edgeitems=3, max_line_width=100))


def summarize_variables(names: Iterable[str], user_ns: Mapping[str, Any]) -> str:
    """Summaries of the named notebook variables, within ``CONTEXT_CHARS`` in all."""
    parts: list[str] = []
    used = 0
    names = list(names)
    for index, name in enumerate(names):
        summary = summarize_value(name, user_ns[name])
        if used + len(summary) > CONTEXT_CHARS:
            rest = ", ".join(names[index:])
            parts.append(f"(left out to keep the request small: {rest})")
            break
        parts.append(summary)
        used += len(summary)
    return "\n\n".join(parts)


# -- the client ------------------------------------------------------------------------------


class KernelAssistant:
    """The engine in this kernel: the notebook, settings, service and turns. One per kernel."""

    def __init__(self, ipython_config: Config | None = None, start_dir: str | None = None) -> None:
        self.ipython_config = ipython_config or Config()
        self.start_dir = start_dir or os.getcwd()
        self.engine = EngineLoop()
        self._service: AssistantService | None = None
        self.settings: KernelSettings | None = None
        self.loaded: LoadedConfig | None = None
        self._reaped = False
        self._root: str | None = None  # the server's root folder ("" if unknown), once read

    # -- setup ---------------------------------------------------------------------------------

    def configure(self) -> KernelSettings:
        if self.settings is None:
            loaded = load_config(self.ipython_config)
            settings = KernelSettings(config=loaded.config)
            # A server that started this kernel told it where its store is: that wins over files.
            if os.environ.get(STORE_ENV):
                settings.store_dir = os.environ[STORE_ENV]
            self.loaded, self.settings = loaded, settings
        return self.settings

    @property
    def service(self) -> AssistantService:
        if self._service is None:
            from .providers import ProviderRegistry
            from .service import AssistantService

            settings = self.configure()
            service_settings = settings.service_settings(root_dir=None)
            # The server streams this kernel's turns to the sidebar from their journals.
            service_settings.runner.journal_events = True
            # Each turn's folder stays inside the root of the server that started this kernel.
            service_settings.runner.root_dir = server_root(os.environ)
            self._service = AssistantService(
                service_settings,
                # Providers are children of the settings, so c.ClaudeCodeProvider.* applies.
                ProviderRegistry(parent=settings, allowed=settings.allowed_providers),
            )
            # A kernel shut down mid-turn (restart, close, `exit`) stops its provider too.
            atexit.register(self.close)
        if not self._reaped:
            # Providers left by a kernel that was killed mid-turn are stopped here too.
            self._reaped = True
            self.engine.run(self._service.start())
        return self._service

    def config_problems(self) -> list[str]:
        self.configure()
        return list(self.loaded.problems) if self.loaded else []

    def close(self) -> None:
        """Stop any turn this kernel runs and the engine thread (extension unload, exit)."""
        if self._service is not None:
            with contextlib.suppress(Exception):
                self.engine.finish(self.engine.submit(self._service.stop()))
        self.engine.close()
        self._service = None

    # -- sessions ------------------------------------------------------------------------------

    def notebook(self, user_ns: Mapping[str, Any]) -> NotebookRef:
        if self._root is None:
            self._root = server_root(os.environ) or ""
        return find_notebook(user_ns, os.environ, os.getcwd(), self.start_dir, self._root)

    def sessions(self, notebook: NotebookRef) -> list[dict[str, Any]]:
        """The notebook's sessions, most recently used first."""
        service = self.service
        return self.engine.run(service.sessions_for_file(notebook.file))

    def current_session(self, notebook: NotebookRef) -> dict[str, Any] | None:
        """The session the sidebar shows for this notebook: its most recently used one."""
        rows = self.sessions(notebook)
        return rows[0] if rows else None

    def create_session(
        self, notebook: NotebookRef, provider: str | None = None, display_path: str | None = None
    ) -> dict[str, Any]:
        service = self.service
        session = self.engine.run(
            service.create_session_for_file(
                notebook.file, display_path or notebook.display_path, provider=provider
            )
        )
        return session.summary()

    def session_for_turn(
        self, notebook: NotebookRef, provider: str | None, new: bool
    ) -> tuple[dict[str, Any], str | None]:
        """The session a prompt goes to, and a note to show when a new one had to be made."""
        current = self.current_session(notebook)
        # Keep the API path a server gave the notebook's earlier sessions (the kernel only
        # knows the file).
        display = current["path"] if current else None
        if (
            current is not None
            and not new
            and (provider is None or provider == current["provider"])
        ):
            return current, None
        session = self.create_session(notebook, provider, display)
        note = None
        if current is not None and not new:
            note = (
                f"Started a new session with provider {session['provider']!r} "
                f"(this notebook's session uses {current['provider']!r})."
            )
        return session, note

    def get_session(self, session_id: str) -> Any:
        service = self.service
        return self.engine.run(service.get_session(session_id))

    def providers(self) -> dict[str, Any]:
        service = self.service
        return self.engine.run(service.providers_info(refresh=True))

    def cancel(self, session_id: str) -> bool:
        service = self.service
        return self.engine.finish(self.engine.submit(service.cancel(session_id)))

    # -- turns -----------------------------------------------------------------------------------

    def start_turn(
        self,
        session_id: str,
        prompt: str,
        context: dict[str, Any] | None = None,
        model: str | None = None,
    ) -> Turn:
        service = self.service
        future = self.engine.submit(service.post_message(session_id, prompt, context, model))
        try:
            return self.engine.wait(future)
        except KeyboardInterrupt:
            # Interrupted while the turn was starting: it may have started; stop it.
            with contextlib.suppress(Exception):
                turn = self.engine.finish(future)
                self.engine.finish(self.engine.submit(service.cancel(turn.session_id)))
            raise

    def follow(
        self,
        turn: Turn,
        view: TurnView,
        publish: Callable[[TurnView], None],
        interval: float,
        decide: Decider | None = None,
    ) -> None:
        """Fold the turn's events into ``view`` and call ``publish`` at most once per
        ``interval`` seconds, until the turn is over (the last call shows the end). A tool
        approval question is shown at once and answered with ``decide`` (if given)."""
        last_publish = time.monotonic()
        while not view.finished:
            # Events that arrive meanwhile pile up in the turn's buffer and come as one batch.
            wait = last_publish + interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            batch = self.engine.run(turn.next_batch(view.after))
            if batch is None:
                break  # over, and everything was read
            for seq, event in batch:
                view.fold(seq, event)
                if event["type"] == "permission_request" and decide is not None:
                    publish(view)
                    self._decide(turn, view, event, decide)
            publish(view)
            last_publish = time.monotonic()

    @staticmethod
    def question_state(turn: Turn, request_id: str) -> str:
        """``waiting``, or why a question is not waiting any more: ``answered``, ``timeout``
        or ``ended``. Read from another thread than the engine's: plain attribute reads."""
        record = turn.permissions.get(request_id)
        if record is not None and record.by == "timeout":
            return "timeout"
        if record is not None and record.decision is not None:
            return "answered"
        return "ended" if turn.finished or record is None else "waiting"

    def _decide(
        self, turn: Turn, view: TurnView, event: Mapping[str, Any], decide: Decider
    ) -> None:
        answer = decide(event)
        if answer is None:
            return  # no answer could be had: the engine denies it when its time is up
        from .errors import AssistantError
        from .models import PermissionBody

        body = PermissionBody(decision=answer.decision, scope=answer.scope, message=answer.message)
        try:
            self.engine.run(
                self.service.answer_permission(turn.session_id, str(event["request_id"]), body)
            )
        except AssistantError as exc:
            # Too late: it timed out, or the turn ended (the next events say how).
            view.parts.append(f"Your answer came too late: {exc.message}")

    def cancel_turn(self, turn: Turn, view: TurnView) -> None:
        """Stop the turn (the provider's whole process tree) and fold what it left, including
        the terminal event. Waits through further interrupts: leaving early would leave the
        provider running."""
        service = self.service
        self.engine.finish(self.engine.submit(service.cancel(turn.session_id)))
        while not view.finished:
            batch = self.engine.finish(self.engine.submit(turn.next_batch(view.after)))
            if batch is None:
                break
            for seq, event in batch:
                view.fold(seq, event)
