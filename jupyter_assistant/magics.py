"""``%assistant`` / ``%%assistant``: the notebook's assistant session from a cell.

Thin on purpose: it parses the line (``magic_options``), shows results (``magic_output``), asks
tool approval questions (``cell_approval``), and turns expected failures into one line. The
work is done by ``kernel_assistant.KernelAssistant`` and the engine.
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.display import display
from traitlets import Float, TraitError

from .cell_approval import CellApprover
from .code_blocks import first_code_block
from .errors import AssistantError
from .kernel_assistant import KernelAssistant, TurnStartInterrupted
from .kernel_notebook import NotebookRef
from .magic_options import (
    HELP_FLAGS,
    SUBCOMMANDS,
    check_identifier,
    declare_options,
    split_options,
    variable_names,
)
from .magic_output import (
    AssistantMagicError,
    CellDisplay,
    TerminalStream,
    TurnInterrupted,
    describe_changes,
    interruptible,
    when,
)
from .variables import summarize_variables

if TYPE_CHECKING:
    from .cell_view import TurnView

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
        self.client = KernelAssistant(ipython_config=shell.config, namespace=lambda: shell.user_ns)
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
        with_vars = variable_names(args.with_vars)
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
            check_identifier(args.output, "--output")
        user_ns = self.ip.user_ns
        for name in with_vars:
            check_identifier(name, "--with")
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
        try:  # the first turn of a kernel loads the engine here: the moment to stop it
            session, note = self.client.session_for_turn(notebook, args.provider, args.new)
        except KeyboardInterrupt:
            raise TurnInterrupted(started=False) from None
        if note:
            print(f"Assistant: {note}")
        with interruptible():
            self._run_turn(session["id"], prompt, context, args)

    def _run_turn(
        self, session_id: str, prompt: str, context: dict[str, Any] | None, args: argparse.Namespace
    ) -> None:
        from .cell_view import TurnView  # pydantic: loaded with the first turn, not the magic

        view = TurnView()
        publish = CellDisplay() if self.in_kernel else TerminalStream()
        mode = "allow" if args.allow else "deny" if args.deny_all else None
        turn = None
        # Every instant of the cell from the start on is covered: an interrupt between the
        # start and the follow would otherwise leave the turn (and its provider) running.
        try:
            turn = self.client.start_turn(session_id, prompt, context, args.model)
            view.provider = turn.provider
            publish(view)
            approver = CellApprover(mode, lambda rid: self.client.question_state(turn, rid))
            self.client.follow(turn, view, publish, self.update_interval, approver)
        except TurnStartInterrupted as exc:
            # start_turn stopped the turn if it had started (its end is stored).
            raise TurnInterrupted(started=exc.started) from None
        except KeyboardInterrupt:
            if turn is None:
                raise
            self.client.cancel_turn(turn, view)
            publish(view)
            finished_first = bool(view.terminal and view.terminal.get("type") == "done")
            raise TurnInterrupted(finished_first) from None
        except BaseException:
            if turn is not None:
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
        allowed = {"new": {"--provider"}, "undo": {"--force"}}.get(name, set())
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
        elif name in ("changes", "undo"):
            current = self.client.current_session(notebook)
            if current is None:
                print("No conversation yet for this notebook; nothing to undo.")
            elif name == "changes":
                self._show(*describe_changes(self.client.last_changes(current["id"])))
            else:
                print(self.client.undo_last(current["id"], force=args.force))
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
                f"{mark} {row['id']}  {when(row['updated_at'])}  {row['provider']}  "
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
            md.append(f"**{who}**{state} · {when(message.created_at)}\n\n{message.content}")
            plain.append(f"--- {who}{state} · {when(message.created_at)}\n{message.content}")
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
