"""``%assistant`` / ``%%assistant``: the notebook's assistant session from a cell.

Thin on purpose: it parses the line, shows results, and turns expected failures into one line.
The work is done by ``kernel_client.KernelAssistant`` and the engine.
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import keyword
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from IPython.core.error import StdinNotImplementedError, UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display, update_display
from traitlets import Float, TraitError

from .code_blocks import first_code_block
from .errors import AssistantError
from .kernel_assistant import KernelAssistant, PermissionAnswer
from .kernel_notebook import NotebookRef
from .toolcalls import tool_detail
from .variables import summarize_variables

if TYPE_CHECKING:
    from .cell_view import TurnView

F = TypeVar("F", bound=Callable[..., Any])

RED, RESET = "\x1b[0;31m", "\x1b[0m"


class AssistantMagicError(Exception):
    """An expected failure (provider missing, not logged in, busy...): shown as one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())  # one line, even for a stderr tail

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return [f"{RED}Assistant:{RESET} {self.message}"]


class TurnInterrupted(KeyboardInterrupt):
    """The kernel was interrupted during a turn, which was cancelled. Still a
    KeyboardInterrupt, so that "Run All" stops here as after any interrupt."""

    def __init__(self, finished_first: bool = False) -> None:
        super().__init__()
        self.finished_first = finished_first  # the turn ended before the interrupt landed

    def _render_traceback_(self) -> list[str]:
        if self.finished_first:
            what = "the turn had already finished; its reply is in the session."
        else:
            what = "the turn was cancelled and its partial reply is kept in the session."
        return [f"{RED}Assistant:{RESET} interrupted; {what}"]


# -- options ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    flag: str
    nargs: int | str  # 0, 1 or "+"
    help: str
    metavar: str | None = None
    dest: str | None = None

    def decorator(self) -> Callable[[F], F]:
        kwargs: dict[str, Any] = {"help": self.help}
        if self.nargs == 0:
            kwargs["action"] = "store_true"
        else:
            kwargs["metavar"] = self.metavar
            if self.nargs == "+":
                kwargs["nargs"] = "+"
                kwargs["action"] = "extend"
                kwargs["default"] = []
        if self.dest:
            kwargs["dest"] = self.dest
        return argument(self.flag, **kwargs)  # type: ignore[no-untyped-call]


OPTIONS = (
    Option("--new", 0, "Start a fresh conversation (a new session for this notebook)."),
    Option(
        "--provider",
        1,
        "Provider, e.g. claude. A provider other than the session's starts a new session.",
        "NAME",
    ),
    Option("--model", 1, "Model for this turn, e.g. sonnet.", "M"),
    Option("--output", 1, "Store the final reply text in this variable.", "VAR"),
    Option("--code", 0, "Put the reply's first code block into the next cell."),
    Option(
        "--allow",
        0,
        "Allow every tool call the agent asks about in this turn, without asking (what the "
        "approval policy denies stays denied).",
    ),
    Option("--deny-all", 0, "Deny every tool call the agent asks about in this turn."),
    Option(
        "--with",
        "+",
        "Send a short summary of these variables along: type, shape, dtypes and first rows of "
        "DataFrames and arrays, a truncated repr otherwise. In the one-line form, end the "
        "list with --.",
        "VAR",
        dest="with_vars",
    ),
)
OPTION_ARITY = {option.flag: option.nargs for option in OPTIONS}
HELP_FLAGS = {"-h", "--help"}

SUBCOMMANDS = {
    "status": "the notebook, store and session this kernel uses",
    "history": "the conversation so far",
    "sessions": "this notebook's sessions, the current one marked *",
    "new": "start a fresh session (with --provider NAME, that provider's)",
    "cancel": "stop the running turn of this notebook's session (e.g. one the sidebar started)",
    "providers": "the providers, whether they are installed, and the default",
    "help": "this help",
}


def declare_options(func: F) -> F:
    for option in reversed(OPTIONS):
        func = option.decorator()(func)
    return magic_arguments()(func)  # type: ignore[no-untyped-call,no-any-return]


def split_options(line: str) -> tuple[list[str], str]:
    """Split a magic line into its leading options and the prompt after them.

    The prompt is returned as written (no shell-style quoting, so "what's" is fine); options
    end at the first word that is neither an option nor an option's value, or at ``--``.
    """
    tokens: list[str] = []
    expect: int | str = 0  # values the last option still takes
    for match in re.finditer(r"\S+", line):
        word = match.group()
        if expect == 1:
            tokens.append(word)
            expect = 0
        elif word == "--":
            return tokens, line[match.end() :].strip()
        elif word.startswith("-"):
            tokens.append(word)
            flag, has_value, _ = word.partition("=")
            expect = 0 if has_value else OPTION_ARITY.get(flag, 0)
        elif expect == "+":
            tokens.append(word)
        else:
            return tokens, line[match.start() :].strip()
    return tokens, ""


def _variable_names(values: list[str]) -> list[str]:
    names = [name for value in values for name in value.split(",") if name]
    return list(dict.fromkeys(names))  # in order, once each


def _check_identifier(name: str, option: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"{option} needs a variable name, not {name!r}.")


# -- output ----------------------------------------------------------------------------------


class CellDisplay:
    """A turn as one display in the cell output, updated in place."""

    def __init__(self) -> None:
        self.display_id = uuid.uuid4().hex
        self.shown = False

    def __call__(self, view: TurnView) -> None:
        bundle = {"text/markdown": view.markdown(), "text/plain": view.plain()}
        if self.shown:
            update_display(bundle, raw=True, display_id=self.display_id)  # type: ignore[no-untyped-call]
        else:
            display(bundle, raw=True, display_id=self.display_id)  # type: ignore[no-untyped-call]
            self.shown = True


class TerminalStream:
    """A turn in a terminal (plain IPython): print what is new, then the footer."""

    def __init__(self) -> None:
        self.printed = ""

    def __call__(self, view: TurnView) -> None:
        body = view.plain_body()
        if body.startswith(self.printed) and len(body) > len(self.printed):
            print(body[len(self.printed) :], end="", flush=True)
            self.printed = body
        if view.finished:
            print(f"\n-- {view.footer()}", flush=True)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt while a turn runs. ipykernel arranges that for ordinary
    cells, but in a cell with top-level ``await`` its handler only schedules a callback on the
    kernel's event loop, which this blocking magic holds: the interrupt would be lost."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread (e.g. ipykernel's subshells)
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


NO_STDIN = (
    "nobody can answer in this notebook (its frontend takes no input); use %%assistant --allow, "
    "or have the administrator allow it in c.AssistantExtension.permission_allowed_tools"
)
GIVEN_UP = {
    "timeout": "no answer in time; the tool call was denied.",
    "ended": "the turn ended before an answer; there is nothing to answer any more.",
    "answered": "the question was answered elsewhere.",
}
WATCH_SECONDS = 0.25  # how often a pending input() checks that its question still waits


class CellApprover:
    """Answers the tool approval questions of one cell's turn: as ``--allow``/``--deny-all``
    say, else by asking with ``input()`` (in a kernel: an input box in the notebook). A
    frontend that takes no input gets the policy's answer for an open question: deny.
    ``state(request_id)`` says whether a question still waits; once it does not (nobody
    answered in time, or the turn ended), the input prompt is given up with a simulated
    interrupt, the one way out of ``input()``."""

    def __init__(self, mode: str | None, state: Callable[[str], str]) -> None:
        self.mode = mode  # "allow" | "deny" | None (ask)
        self.state = state

    def __call__(self, event: Mapping[str, Any]) -> PermissionAnswer | None:
        if self.mode == "allow":
            return PermissionAnswer("allow")
        if self.mode == "deny":
            return PermissionAnswer("deny", message="the user denies every tool call this turn")
        what = f"{event.get('tool_name', 'a tool')} {tool_detail(event.get('input'))}".strip()
        prompt = f"Allow {what}? y = once, s = for this session, n = deny (n REASON) > "
        try:
            reply = self._input(prompt, str(event.get("request_id", "")))
        except StdinNotImplementedError:
            return PermissionAnswer("deny", message=NO_STDIN)
        except EOFError:
            reply = "n"
        if reply is None:
            return None
        return parse_answer(reply)

    def _input(self, prompt: str, request_id: str) -> str | None:
        """``input(prompt)``, or None once the question does not wait any more."""
        if threading.current_thread() is not threading.main_thread():
            return input(prompt)  # no way to give it up from here: wait for the user
        phase = {"now": "asking", "why": ""}
        lock = threading.Lock()
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(WATCH_SECONDS):
                why = self.state(request_id)
                if why == "waiting":
                    continue
                with lock:
                    if phase["now"] == "asking":
                        phase["now"], phase["why"] = "given up", why
                        _thread.interrupt_main()
                return

        watcher = threading.Thread(target=watch, name="assistant-question", daemon=True)
        given_up = returned = False
        watcher.start()
        try:
            try:
                reply = input(prompt)
                returned = True
            finally:
                stop.set()
                with lock:
                    given_up = phase["now"] == "given up"
                    phase["now"] = "done"
                if given_up and returned:
                    time.sleep(1.0)  # the simulated interrupt is on its way: take it here
            return reply
        except KeyboardInterrupt:
            if not given_up:
                raise  # the user's own interrupt: it cancels the turn
            print(f"Assistant: {GIVEN_UP.get(phase['why'], 'the question is over.')}")
            return None


def parse_answer(reply: str) -> PermissionAnswer:
    """``y``/``yes`` allow once, ``s``/``session`` allow for the session; anything else denies
    (``n REASON`` tells the agent why)."""
    word, _, rest = reply.strip().partition(" ")
    word = word.lower().rstrip(":,")
    if word in ("y", "yes", "allow"):
        return PermissionAnswer("allow")
    if word in ("s", "session"):
        return PermissionAnswer("allow", "session")
    reason = rest.strip() if word in ("n", "no", "deny") else reply.strip()
    return PermissionAnswer("deny", message=reason or None)


def _when(timestamp: str) -> str:
    return timestamp[:16].replace("T", " ")


# -- the magics ------------------------------------------------------------------------------


@magics_class
class AssistantMagics(Magics):
    """``%assistant`` and ``%%assistant``. Configurable as ``c.AssistantMagics.*``."""

    update_interval = Float(
        0.25, help="Seconds between updates of a streaming reply in the cell output."
    ).tag(config=True)

    def __init__(self, shell: InteractiveShell, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        self.ip = shell
        self.client = KernelAssistant(ipython_config=shell.config)
        self._told_no_notebook = False
        self._told = False

    @property
    def in_kernel(self) -> bool:
        return getattr(self.ip, "kernel", None) is not None

    @no_var_expand
    @declare_options
    @line_cell_magic
    def assistant(self, line: str, cell: str | None = None) -> None:
        """Ask the notebook's AI assistant (the session the sidebar shows).

        %assistant [options] PROMPT     one line
        %%assistant [options]           the cell body is the prompt
        %assistant SUBCOMMAND           status | history | sessions | new | cancel |
                                        providers | help

        The reply streams into the cell output; tool calls are shown as short lines, the
        cost at the end. Interrupting the kernel cancels the turn. The prompt is sent as
        written: IPython does not expand $names or {expressions} in it. Examples:

            %assistant what's in sales.csv?
            %assistant --with df -- why is the amount column an object?
            %%assistant --output answer --code
            Write a function that loads sales.csv into a DataFrame.
        """
        try:
            self._dispatch(line, cell)
        except AssistantError as exc:
            raise AssistantMagicError(exc.message) from None
        except TraitError as exc:
            raise AssistantMagicError(f"Invalid assistant configuration: {exc}") from None

    # -- parsing ---------------------------------------------------------------------------

    def _dispatch(self, line: str, cell: str | None) -> None:
        tokens, rest = split_options(line)
        if HELP_FLAGS & set(tokens):
            self._help()
            return
        args = _magic_function().parser.parse_args(tokens)
        with_vars = _variable_names(args.with_vars)
        if cell is not None:
            if rest:
                raise UsageError(
                    "The %%assistant line takes options only; write the prompt in the cell body."
                )
            prompt = cell.strip()
            if not prompt:
                raise UsageError("Write the prompt in the body of the %%assistant cell.")
        else:
            words = rest.split()
            if len(words) == 1 and words[0] in SUBCOMMANDS:
                self._subcommand(words[0], args, tokens)
                return
            if not rest:
                if tokens:
                    raise UsageError(
                        "No prompt: %assistant [options] PROMPT (see %assistant help)."
                    )
                self._help()
                return
            prompt = rest
        if args.output is not None:
            _check_identifier(args.output, "--output")
        user_ns = self.ip.user_ns
        for name in with_vars:
            _check_identifier(name, "--with")
            if name not in user_ns:
                raise UsageError(
                    f"No variable {name!r} in the notebook (--with). In the one-line form, end "
                    "the list of variables with --: %assistant --with df -- your question"
                )
        self._ask(prompt, args, with_vars)

    # -- a turn ----------------------------------------------------------------------------

    def _notebook(self) -> NotebookRef:
        notebook = self.client.notebook(self.ip.user_ns)
        if not self._told:
            self._told = True  # once per kernel: these do not change
            for problem in self.client.config_problems():
                print(f"Assistant: skipped a config file that failed to load: {problem}")
        if not notebook.in_notebook and not self._told_no_notebook:
            self._told_no_notebook = True
            print(
                "Assistant: not in a notebook; the session is keyed by the working directory "
                f"{notebook.folder}"
            )
        return notebook

    def _ask(self, prompt: str, args: argparse.Namespace, with_vars: list[str]) -> None:
        notebook = self._notebook()
        context = None
        if with_vars:
            context = {"variables": summarize_variables(with_vars, self.ip.user_ns)}
        session, note = self.client.session_for_turn(notebook, args.provider, args.new)
        if note:
            print(f"Assistant: {note}")
        with interruptible():
            self._run_turn(session["id"], prompt, context, args)

    def _run_turn(
        self, session_id: str, prompt: str, context: dict[str, Any] | None, args: argparse.Namespace
    ) -> None:
        from .cell_view import TurnView  # pydantic: loaded with the first turn, not the magic

        turn = self.client.start_turn(session_id, prompt, context, args.model)
        view = TurnView(provider=turn.provider)
        publish = CellDisplay() if self.in_kernel else TerminalStream()
        publish(view)
        mode = "allow" if args.allow else "deny" if args.deny_all else None
        approver = CellApprover(mode, lambda rid: self.client.question_state(turn, rid))
        try:
            self.client.follow(turn, view, publish, self.update_interval, approver)
        except KeyboardInterrupt:
            self.client.cancel_turn(turn, view)
            publish(view)
            finished_first = bool(view.terminal and view.terminal.get("type") == "done")
            raise TurnInterrupted(finished_first) from None
        except BaseException:
            self.client.cancel_turn(turn, view)  # nothing may outlive the cell
            raise
        self._after(view, args)

    def _after(self, view: TurnView, args: argparse.Namespace) -> None:
        terminal = view.terminal or {"type": "error", "message": "The turn ended without a result."}
        if terminal["type"] == "cancelled":
            raise AssistantMagicError(
                "The turn was cancelled (from the sidebar or %assistant cancel); its partial "
                "reply is kept in the session."
            )
        if terminal["type"] != "done":
            raise AssistantMagicError(str(terminal.get("message") or "The turn failed."))
        text = view.text()
        if args.output:
            self.ip.user_ns[args.output] = text
        if args.code:
            code = first_code_block(text)
            if code is None:
                print("Assistant: the reply has no code block; the next cell is unchanged.")
            else:
                self.ip.set_next_input(code, replace=False)

    # -- subcommands -------------------------------------------------------------------------

    def _subcommand(self, name: str, args: argparse.Namespace, tokens: list[str]) -> None:
        allowed = {"--provider"} if name == "new" else set()
        extra = [t for t in tokens if t.partition("=")[0].startswith("-")]
        if any(t.partition("=")[0] not in allowed for t in extra):
            raise UsageError(f"`%assistant {name}` takes no options (see %assistant help).")
        if name == "help":
            self._help()
            return
        if name == "providers":
            self._providers()
            return
        notebook = self._notebook()
        if name == "status":
            self._status(notebook)
        elif name == "sessions":
            self._sessions(notebook)
        elif name == "history":
            self._history(notebook)
        elif name == "new":
            current = self.client.current_session(notebook)
            session = self.client.create_session(
                notebook, args.provider, current["path"] if current else None
            )
            print(
                f"New session {session['id']} ({session['provider']}) for {session['path']}; "
                "the next %assistant continues it."
            )
        elif name == "cancel":
            current = self.client.current_session(notebook)
            if current is not None and self.client.cancel(current["id"]):
                print("Cancelled the running turn of this notebook's session.")
            else:
                print("No turn is running for this notebook's session.")

    def _help(self) -> None:
        lines = [_magic_function().__doc__ or "", "subcommands:"]
        lines += [f"  {name:<10} {text}" for name, text in SUBCOMMANDS.items()]
        lines.append("A prompt that is just one of these words: use %%assistant, or put -- first.")
        print("\n".join(lines))

    def _show(self, markdown: str, plain: str) -> None:
        if self.in_kernel:
            bundle = {"text/markdown": markdown, "text/plain": plain}
            display(bundle, raw=True)  # type: ignore[no-untyped-call]
        else:
            print(plain)

    def _status(self, notebook: NotebookRef) -> None:
        settings = self.client.configure()
        if notebook.in_notebook:
            where = f"Notebook: {notebook.file} (from {notebook.source})"
        else:
            where = (
                f"Not in a notebook: sessions are keyed by the working directory {notebook.folder}"
            )
        files = self.client.loaded.files if self.client.loaded else []
        lines = [
            where,
            f"Store: {settings.store_dir}",
            "Config: " + (", ".join(files) if files else "no Jupyter server config files"),
        ]
        current = self.client.current_session(notebook)
        if current is None:
            lines.append("Session: none yet; %assistant PROMPT starts one.")
        else:
            session = self.client.get_session(current["id"])
            count = len(session.messages) + (session.pending_message is not None)
            lines.append(
                f"Session: {session.id} · {session.provider} · {count} messages "
                f"· {session.status} · ${session.usage.cost_usd:.4f} · {session.title!r}"
            )
        print("\n".join(lines))

    def _sessions(self, notebook: NotebookRef) -> None:
        rows = self.client.sessions(notebook)
        if not rows:
            print("No sessions for this notebook yet; %assistant PROMPT starts one.")
            return
        for index, row in enumerate(rows):
            mark = "*" if index == 0 else " "
            print(
                f"{mark} {row['id']}  {_when(row['updated_at'])}  {row['provider']}  "
                f"{row['message_count']} messages  {row['status']}  {row['title']!r}"
            )

    def _history(self, notebook: NotebookRef) -> None:
        current = self.client.current_session(notebook)
        if current is None:
            print("No conversation yet for this notebook; %assistant PROMPT starts one.")
            return
        session = self.client.get_session(current["id"])
        messages = list(session.messages)
        if session.pending_message is not None:
            messages.append(session.pending_message)
        md: list[str] = []
        plain: list[str] = []
        for message in messages:
            who = "You" if message.role == "user" else message.role.capitalize()
            state = "" if message.status == "complete" else f" ({message.status})"
            md.append(f"**{who}**{state} · {_when(message.created_at)}\n\n{message.content}")
            plain.append(f"--- {who}{state} · {_when(message.created_at)}\n{message.content}")
            for tool in message.tools:
                md.append(f"> **{tool.name}**{' — failed' if tool.is_error else ''}")
                plain.append(f"[{tool.name}]{' (failed)' if tool.is_error else ''}")
            if message.error is not None:
                md.append(f"> ⚠ {message.error.message}")
                plain.append(f"[!] {message.error.message}")
        self._show("\n\n".join(md), "\n".join(plain))

    def _providers(self) -> None:
        info = self.client.providers()
        for row in info["providers"]:
            default = " (default)" if row["name"] == info["default"] else ""
            if row["available"]:
                state = f"available, version {row['version']}"
            else:
                state = f"not available: {row['problem']}"
            print(f"{row['name']}{default} — {row['display_name']}: {state}")

    def close(self) -> None:
        self.client.close()


# -- loading ------------------------------------------------------------------------------------

# A one-line prompt: "%assistant" alone on its line (indented or not), then the prompt.
ONE_LINE_FORM = re.compile(r"^([ \t]*)%assistant[ \t]+(.*?)[ \t]*(\r?\n)?$")


def keep_questions(lines: list[str]) -> list[str]:
    """An input transformer: IPython reads a line ending in ``name?`` as a help request (it
    would run ``%pinfo name``), and a question to the assistant often ends that way. Such a
    line becomes the call IPython itself makes for a line magic, so the question arrives."""
    if not lines or lines[0].lstrip().startswith("%%"):
        return lines  # a cell magic's body is its own business
    result = []
    for line in lines:
        match = ONE_LINE_FORM.match(line)
        if match and match.group(2).endswith("?"):
            indent, prompt = match.group(1), match.group(2)
            line = f"{indent}get_ipython().run_line_magic('assistant', {prompt!r})\n"
        result.append(line)
    return result


def register(ipython: InteractiveShell) -> None:
    unregister(ipython)  # %reload_ext: never twice
    ipython.register_magics(AssistantMagics(ipython))
    ipython.input_transformers_cleanup.append(keep_questions)


def unregister(ipython: InteractiveShell) -> None:
    manager = ipython.magics_manager
    instance = manager.registry.pop("AssistantMagics", None)
    if isinstance(instance, AssistantMagics):
        instance.close()
    for kind in ("line", "cell"):
        manager.magics[kind].pop("assistant", None)
    while keep_questions in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.remove(keep_questions)


def _magic_function() -> Any:
    """The ``assistant`` function, which carries the option parser magic_arguments built."""
    return vars(AssistantMagics)["assistant"]
