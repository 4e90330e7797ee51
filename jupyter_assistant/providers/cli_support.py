"""What the CLI-backed providers share below the provider class: reading a short command's
output, decoding JSON lines (and the parser built on them), the notebook preamble, tidy error
text, and the conversations a CLI lost."""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable
from typing import Any, ClassVar

from .. import events
from .base import Event, StatefulParser, run_briefly

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
MAX_TOOL_TEXT = 100_000
STDERR_LINES = 12


def command_argv(command: list[str] | str) -> list[str]:
    """A ``command`` setting (a list, or a string split like a shell would) as argv."""
    if isinstance(command, str):
        return shlex.split(command)
    return [str(part) for part in command]


async def read_stdout(argv: list[str], env: dict[str, str], timeout: float = 15.0) -> str:
    """The stdout of a short command; stderr is left out (codex prints warnings there first)."""
    returncode, out, err = await run_briefly(argv, env, timeout)
    if returncode != 0:
        raise RuntimeError(f"exit code {returncode}: {stderr_summary(err)}")
    return out.strip()


def version_number(text: str) -> str | None:
    """``codex-cli 0.171.0`` -> ``0.171.0``; ``0.61.0`` -> ``0.61.0``."""
    match = re.search(r"\d+\.\d+[\w.+-]*", text)
    return match.group(0) if match else (text.strip() or None)


def json_object(line: bytes) -> dict[str, Any] | None:
    """One output line as a JSON object, or None (blank, not JSON, or not an object)."""
    line = line.strip()
    if not line.startswith(b"{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def clean_text(text: str) -> str:
    """Terminal colour codes out, surrounding blank space trimmed."""
    return _ANSI.sub("", text).strip()


def stderr_summary(stderr: str, noise: tuple[str, ...] = ()) -> str:
    """The last meaningful stderr lines, without colour codes or lines matching ``noise``."""
    lines = [
        line
        for line in clean_text(stderr).splitlines()
        if line.strip() and not any(n in line for n in noise)
    ]
    return "\n".join(lines[-STDERR_LINES:]) or "no error output"


def clip(text: str, limit: int = MAX_TOOL_TEXT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… [{len(text) - limit} more characters]"


def render_context(context: dict[str, Any]) -> str:
    parts = []
    for key, value in context.items():
        text = value if isinstance(value, str) else json.dumps(value, indent=1, default=str)
        parts.append(f"### {key}\n{text}")
    return "\n\n".join(parts)


def notebook_instructions(
    notebook_path: str, working_dir: str, context: dict[str, Any] | None, extra: str = ""
) -> str:
    """What every agent is told about where it works (the same words Claude Code gets)."""
    lines = [
        f"You are assisting a Jupyter user with the notebook `{notebook_path}`. Your working "
        f"directory is the notebook's folder ({working_dir}); files the user mentions are "
        "relative to it.",
    ]
    if context:
        lines.append(
            "Context sent with this request from the user's notebook:\n\n" + render_context(context)
        )
    if extra:
        lines.append(extra)
    return "\n\n".join(lines)


def tagged(tag: str, text: str) -> str:
    """Text wrapped in ``<tag>…</tag>``, the way the CLIs mark their own injected context."""
    return f"<{tag}>\n{text}\n</{tag}>"


class LostConversations:
    """Conversation ids a CLI failed to resume, so that later turns start a new conversation.

    The runner retries a turn without resuming when a parser reports ``resume_failed``; if that
    retry fails too (a crash, a timeout), the session keeps the lost id, and remembering it
    spares the next turn another failed start."""

    def __init__(self) -> None:
        self._ids: set[str] = set()

    def add(self, conversation_id: str | None) -> None:
        if conversation_id:
            self._ids.add(conversation_id)

    def usable(self, conversation_id: str | None) -> str | None:
        """The id to resume, or None to start a new conversation."""
        return None if conversation_id in self._ids else conversation_id

    def notice(self, conversation_id: str | None, display_name: str) -> Event | None:
        if conversation_id is None or conversation_id not in self._ids:
            return None
        return events.notice(
            f"The earlier {display_name} conversation could not be resumed; this turn starts a "
            "new one.",
            "warning",
        )


class JsonLinesParser(StatefulParser):
    """A parser of a CLI that prints one JSON object a line; other lines are counted, not
    parsed (a CLI may log to stdout).

    ``first_events`` come before the first parsed line's (the notice that a lost conversation
    is not resumed); ``resume_id`` is the conversation this turn resumes and ``on_lost`` hears
    when it could not be (``lost_conversation``)."""

    # How messages name the CLI.
    cli_name: ClassVar[str] = "The CLI"
    # The error of a process that ended for want of a login (empty: not told apart).
    login_hint: ClassVar[str] = ""
    # Parts of stderr lines that say nothing about a failure.
    stderr_noise: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        resume_id: str | None = None,
        on_lost: Callable[[str | None], None] | None = None,
        first_events: list[Event] | None = None,
    ) -> None:
        super().__init__()
        self._resume_id = resume_id
        self._on_lost = on_lost
        self._first_events = list(first_events or [])
        self._started = time.monotonic()

    def feed(self, line: bytes) -> list[Event]:
        # Once per output line (tens of thousands in a long reply): the JSON is read inline.
        line = line.strip()
        try:
            obj = json.loads(line) if line.startswith(b"{") else None
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            events = self.parse(obj)
        else:
            if line:
                self.state.invalid_lines += 1
            events = []
        if self._first_events:
            early, self._first_events = self._first_events, []
            return early + events
        return events

    def parse(self, obj: dict[str, Any]) -> list[Event]:
        """The events of one JSON line."""
        raise NotImplementedError

    def finish(self, returncode: int, stderr_tail: str) -> list[Event]:
        if self.state.terminal is not None:
            return []
        terminal = self.end_with(self.exit_error(returncode, stderr_tail))
        early, self._first_events = self._first_events, []
        return [*early, terminal]

    def exit_error(self, returncode: int, stderr_tail: str) -> Event:
        detail = stderr_summary(stderr_tail, self.stderr_noise)
        known = self.known_exit_error(returncode, stderr_tail, detail)
        if known is not None:
            return known
        if self.login_hint and self.looks_unauthenticated(stderr_tail):
            return events.error("not_authenticated", self.login_hint)
        return self.exited_early(returncode, detail)

    def known_exit_error(self, returncode: int, stderr_tail: str, detail: str) -> Event | None:
        """The error of an exit this CLI explains (a lost conversation, an exit code it
        documents), or None."""
        return None

    def looks_unauthenticated(self, text: str) -> bool:
        return False

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self._started) * 1000)

    def lost_conversation(self, detail: str) -> Event:
        """The CLI could not resume ``resume_id``: the runner retries with a new conversation,
        and later turns skip this one. Returns the turn's error."""
        self.resume_failed = True
        if self._on_lost is not None:
            self._on_lost(self._resume_id)
        return events.error(
            "resume_failed",
            f"The earlier {self.cli_name} conversation could not be resumed: {detail}",
        )

    def exited_early(self, returncode: int, detail: str) -> Event:
        return events.error(
            "provider_failed",
            f"{self.cli_name} exited with code {returncode} before finishing the turn: {detail}",
        )
