"""A conversation as a readable Markdown transcript, or as a notebook (nbformat v4) whose cells
are the conversation: Markdown cells, with the Python code blocks of the replies as code cells.

The one exporter: ``jupyter assistant sessions export`` writes these, and the sidebar downloads
them from ``GET sessions/{id}/export?format=md|ipynb``.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import nbformat

from ._version import __version__
from .code_blocks import CODE_BLOCK, PYTHON_LANGS
from .models import Message, Session
from .toolcalls import tool_detail

ROLE_NAMES = {"user": "You", "assistant": "Assistant", "system": "System"}
STATUS_NOTES = {
    "cancelled": "cancelled",
    "error": "failed",
    "interrupted": "interrupted",
    "streaming": "still being written",
}
# Export format -> its media type (what the HTTP API answers with).
FORMATS = {"md": "text/markdown; charset=utf-8", "ipynb": "application/x-ipynb+json"}
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def title_of(session: Session) -> str:
    name = session.path.rsplit("/", 1)[-1] or session.path
    return session.title.strip() or f"Conversation about {name}"


def _stamp(value: str) -> str:
    """``2025-03-01T09:30:12.345Z`` -> ``2025-03-01 09:30 UTC`` (as stored, in UTC)."""
    match = re.match(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d)", value)
    return f"{match.group(1)} {match.group(2)} UTC" if match else value


def _heading(message: Message) -> str:
    role = ROLE_NAMES.get(message.role, message.role)
    note = STATUS_NOTES.get(message.status)
    return f"{role} · {_stamp(message.created_at)}" + (f" ({note})" if note else "")


def _context_note(message: Message) -> str | None:
    if not message.context:
        return None
    return "*Sent with: " + ", ".join(k.replace("_", " ") for k in message.context) + "*"


def _tools_note(message: Message) -> str | None:
    if not message.tools:
        return None
    lines = []
    for tool in message.tools:
        detail = tool_detail(tool.input).replace("`", "'")
        failed = " (failed)" if tool.is_error else ""
        lines.append(f"- **{tool.name or 'tool'}**" + (f" `{detail}`" if detail else "") + failed)
    return "Tools used:\n\n" + "\n".join(lines)


def _error_note(message: Message) -> str | None:
    if message.error is None:
        return None
    return f"> ⚠ {message.error.code}: {message.error.message}"


def _notes(message: Message) -> list[str]:
    notes = [f"> {notice}" for notice in message.notices]
    notes += [n for n in (_tools_note(message), _error_note(message)) if n]
    return notes


def _messages(session: Session) -> list[Message]:
    messages = list(session.messages)
    if session.pending_message is not None:
        messages.append(session.pending_message)
    return messages


def _header(session: Session) -> list[str]:
    usage = session.usage
    return [
        f"# {title_of(session)}",
        "\n".join(
            [
                f"- Notebook: `{session.path}`",
                f"- Provider: {session.provider}",
                f"- Conversation: `{session.id}`",
                f"- Started {_stamp(session.created_at)}, last active {_stamp(session.updated_at)}",
                f"- Usage: {usage.input_tokens:,} tokens in, {usage.output_tokens:,} out, "
                f"${usage.cost_usd:.4f}",
            ]
        ),
    ]


def to_markdown(session: Session) -> str:
    """A readable transcript: a header, then each message under a heading."""
    parts = _header(session)
    for message in _messages(session):
        parts.append(f"## {_heading(message)}")
        context = _context_note(message)
        if context:
            parts.append(context)
        if message.content.strip():
            parts.append(message.content.strip())
        parts += _notes(message)
    return "\n\n".join(parts) + "\n"


def split_code(text: str) -> list[tuple[str, str]]:
    """``text`` as ``("markdown", ...)`` and ``("code", ...)`` pieces, in order: fenced blocks
    in Python (or untagged) become code; blocks in other languages stay in the Markdown, since
    a notebook's kernel would run them as Python."""
    pieces: list[tuple[str, str]] = []
    position = 0
    for match in CODE_BLOCK.finditer(text):
        if match.group(1).lower() not in PYTHON_LANGS:
            continue
        before = text[position : match.start()].strip()
        if before:
            pieces.append(("markdown", before))
        code = match.group(2).rstrip("\n")
        if code.strip():
            pieces.append(("code", code))
        # the closing fence: skip it and the rest of its line
        end = text.find("\n", match.end())
        position = len(text) if end < 0 else end + 1
    rest = text[position:].strip()
    if rest:
        pieces.append(("markdown", rest))
    return pieces


def _cell(kind: str, source: str) -> dict[str, Any]:
    cell: dict[str, Any] = {
        "cell_type": kind,
        "id": uuid.uuid4().hex[:8],
        "metadata": {},
        "source": source,
    }
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def to_notebook(session: Session) -> dict[str, Any]:
    """A notebook (nbformat 4.5) of the conversation, validated against nbformat's schema."""
    cells = [_cell("markdown", "\n\n".join(_header(session)))]
    for message in _messages(session):
        head = [f"**{_heading(message)}**"]
        context = _context_note(message)
        if context:
            head.append(context)
        if message.role == "assistant":
            pieces = split_code(message.content)
        else:  # the user's own code blocks are what they asked about: kept as written
            pieces = [("markdown", message.content.strip())] if message.content.strip() else []
        # The heading shares the first Markdown piece's cell, so a short reply is one cell.
        if pieces and pieces[0][0] == "markdown":
            head.append(pieces.pop(0)[1])
        cells.append(_cell("markdown", "\n\n".join(head)))
        cells += [_cell(kind, text) for kind, text in pieces]
        notes = _notes(message)
        if notes:
            cells.append(_cell("markdown", "\n\n".join(notes)))
    notebook: dict[str, Any] = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": dict(KERNELSPEC),
            "language_info": {"name": "python"},
            "jupyter_assistant": {
                "session_id": session.id,
                "notebook": session.path,
                "provider": session.provider,
                "exported_by": f"jupyter_assistant {__version__}",
            },
        },
        "cells": cells,
    }
    nbformat.validate(notebook)
    return notebook


def to_ipynb(session: Session) -> str:
    # As nbformat.writes lays a notebook out (sorted keys, indent 1), so diffs stay small.
    return json.dumps(to_notebook(session), sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def render(session: Session, fmt: str) -> str:
    if fmt == "md":
        return to_markdown(session)
    if fmt == "ipynb":
        return to_ipynb(session)
    raise ValueError(f"unknown export format {fmt!r}: use md or ipynb")


__all__ = ["FORMATS", "render", "split_code", "title_of", "to_ipynb", "to_markdown", "to_notebook"]
