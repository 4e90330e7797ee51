"""Just enough of the POSIX shell's grammar for permission rules on shell commands.

An administrator's prefix rule such as ``Bash(pytest:*)`` must allow ``pytest -q`` and nothing
more: not ``pytest -q; touch pwned`` nor ``pytest $(curl evil)``. A deny rule such as
``Bash(rm:*)`` must catch ``true && rm victim.txt``. This module tells whether a command is one
simple command, and splits a compound one into the simple commands it would run. It errs on the
side of "not simple": anything it does not understand (an unclosed quote, a subshell, a
heredoc) is not simple.
"""

from __future__ import annotations

import re

# Outside quotes, any of these makes a command compound, redirected or substituted.
_SPECIAL = set(";&|<>`()\n\r{}")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=\S*$")


def is_simple_command(command: str) -> bool:
    """Whether ``command`` is one simple command: words only, with no list or pipe operators,
    redirections, command or process substitution, subshells, or newlines."""
    quote = ""
    escaped = False
    for index, char in enumerate(command):
        if escaped:
            if char in "\n\r":
                return False  # a line continuation: more than one line
            escaped = False
            continue
        if quote == "'":
            if char == "'":
                quote = ""
            continue
        if char == "\\":
            escaped = True
            continue
        if quote == '"':
            if char == '"':
                quote = ""
            elif char == "`" or command.startswith("$(", index):
                return False
            continue
        if char in "'\"":
            quote = char
        elif char in _SPECIAL or command.startswith("$(", index):
            return False
    return not quote and not escaped and bool(command.strip())


def simple_commands(command: str) -> list[str]:
    """The simple commands a compound command would run, in order, each stripped of leading
    variable assignments: ``a; b && c | d`` -> ``[a, b, c, d]``; the commands inside ``$(...)``,
    backticks and ``( ... )`` subshells are included."""
    found: list[str] = []
    _split(command, found, depth=0)
    return [part for part in found if part]


def _split(command: str, found: list[str], depth: int) -> None:
    if depth > 20:  # nesting this deep is not a real command; keep what was found
        return
    current: list[str] = []
    quote = ""
    index = 0
    length = len(command)

    def flush() -> None:
        text = "".join(current).strip()
        current.clear()
        words = text.split()
        while words and _ASSIGNMENT.match(words[0]):
            words.pop(0)
        if words:
            found.append(text[text.index(words[0]) :])

    while index < length:
        char = command[index]
        if char == "\\" and quote != "'" and index + 1 < length:
            current.append(command[index : index + 2])
            index += 2
            continue
        # Quoted text is literal up to its closing quote, except that substitutions still run
        # inside double quotes.
        substitution = quote != "'" and (command.startswith("$(", index) or char == "`")
        if quote and not substitution:
            current.append(char)
            if char == quote:
                quote = ""
            index += 1
            continue
        inner: str | None = None
        if command.startswith("$(", index):
            inner, index = _balanced(command, index + 2, "(", ")")
        elif char == "`":
            end = command.find("`", index + 1)
            end = length if end < 0 else end
            inner, index = command[index + 1 : end], end + 1
        elif char in "'\"":
            quote = char
            current.append(char)
            index += 1
            continue
        elif char == "(":
            inner, index = _balanced(command, index + 1, "(", ")")
            flush()
        elif char in ";&|\n\r{}":
            flush()
            index += 1
            continue
        if inner is not None:
            current.append(" ")
            _split(inner, found, depth + 1)
            continue
        current.append(char)
        index += 1
    flush()


def _balanced(command: str, start: int, opening: str, closing: str) -> tuple[str, int]:
    """The text from ``start`` up to the matching ``closing``, and the index after it."""
    depth = 1
    index = start
    while index < len(command):
        char = command[index]
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return command[start:index], index + 1
        index += 1
    return command[start:], len(command)
