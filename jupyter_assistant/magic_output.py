"""What a magic shows: a turn in the cell output (one display updated in place) or in a
terminal, and its expected failures as one line instead of a traceback."""

from __future__ import annotations

import contextlib
import signal
import threading
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from IPython.display import display, update_display

if TYPE_CHECKING:
    from .cell_view import TurnView

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

    def __init__(self, finished_first: bool = False, started: bool = True) -> None:
        super().__init__()
        self.finished_first = finished_first  # the turn ended before the interrupt landed
        self.started = started  # False: the interrupt came before the turn had started

    def _render_traceback_(self) -> list[str]:
        if not self.started:
            what = "the turn had not started; nothing was sent."
        elif self.finished_first:
            what = "the turn had already finished; its reply is in the session."
        else:
            what = "the turn was cancelled and its partial reply is kept in the session."
        return [f"{RED}Assistant:{RESET} interrupted; {what}"]


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


def when(timestamp: str) -> str:
    """A stored timestamp as the listings show it: ``2025-03-01 09:30``."""
    return timestamp[:16].replace("T", " ")


def describe_changes(latest: tuple[str, dict[str, Any]] | None) -> tuple[str, str]:
    """``%assistant changes``: the last changed turn's files and cells with their diffs, as
    Markdown and as text."""
    from .checkpoints.changes import changes_line

    if latest is None:
        text = "No turn of this conversation changed files (or they were undone)."
        return text, text
    _, changes = latest
    md = [changes_line(changes) + " — `%assistant undo` takes it back."]
    plain = [md[0].replace("`", "")]
    for entry in changes["files"]:
        detail = entry.get("diff") or ("(binary)" if entry.get("binary") else "(too large)")
        md.append(f"**{entry['path']}** ({entry['status']})\n\n```diff\n{detail}\n```")
        plain.append(f"--- {entry['path']} ({entry['status']})\n{detail}")
    for cell in changes["cells"]:
        md.append(f"**cell {cell['id']}** ({cell['status']})\n\n```diff\n{cell['diff']}\n```")
        plain.append(f"--- cell {cell['id']} ({cell['status']})\n{cell['diff']}")
    return "\n\n".join(md), "\n".join(plain)
