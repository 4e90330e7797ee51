"""The argument parser of ``jupyter assistant``: its commands are declared by ``add_command``
(a conversation ID, options, ``--json``, the function that runs it), so that every command takes
its arguments in the same order and in the same words."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO


class Parser(argparse.ArgumentParser):
    """Errors: the usage line and the message on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


# A command's function: (its arguments, the cli's Context, the output) -> exit status.
Command = Callable[[argparse.Namespace, Any, TextIO], int]
# An argument of a command: add_argument's flags (or name) and options.
Option = tuple[tuple[str, ...], dict[str, Any]]


def option(*flags: str, **kwargs: Any) -> Option:
    return flags, kwargs


def required_choice(
    parser: argparse.ArgumentParser, dest: str, metavar: str
) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    """The subcommands of ``parser``, one of which must be given."""
    choice = parser.add_subparsers(dest=dest, metavar=metavar, parser_class=Parser)
    choice.required = True
    return choice


def add_command(
    group: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    run: Command,
    help: str,
    description: str | None = None,
    *,
    takes_id: bool = False,
    options: Sequence[Option] = (),
    json_help: str | None = None,
) -> None:
    """A command that calls ``run``: its arguments are a conversation ID (``takes_id``), then
    ``options``, then ``--json`` (with ``json_help``)."""
    command = group.add_parser(name, help=help, description=description)
    if takes_id:
        command.add_argument("id", metavar="ID")
    for flags, kwargs in options:
        command.add_argument(*flags, **kwargs)
    if json_help:
        command.add_argument("--json", action="store_true", help=json_help)
    command.set_defaults(run=run)
