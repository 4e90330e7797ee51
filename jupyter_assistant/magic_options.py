"""The options of ``%assistant`` / ``%%assistant``, and the split of a magic line into its
options and the prompt written after them."""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

F = TypeVar("F", bound=Callable[..., Any])


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
        "--force",
        0,
        "With undo: overwrite the files that changed after the turn (else they are listed and "
        "nothing is changed).",
    ),
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
    "changes": "what the last turn changed in the notebook's folder (with diffs)",
    "undo": "undo the last turn that changed files (--force: even over files changed since)",
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


def variable_names(values: list[str]) -> list[str]:
    names = [name for value in values for name in value.split(",") if name]
    return list(dict.fromkeys(names))  # in order, once each


def check_identifier(name: str, option: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"{option} needs a variable name, not {name!r}.")
