"""A tool call in a few words: the one description for the cell, the notices and the export.

``tool_detail`` is what a call works on (its command, file, pattern...), for a tool line;
``describe_call`` names the tool with it, for a sentence (``Write (notes.txt)``).
"""

from __future__ import annotations

import json
from typing import Any

# The input keys that say what a call works on, most telling first (Claude Code, Codex, ACP).
TOOL_INPUT_KEYS = ("command", "file_path", "path", "notebook_path", "pattern", "url", "query")
TOOL_DETAIL_CHARS = 120


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > TOOL_DETAIL_CHARS:
        text = text[: TOOL_DETAIL_CHARS - 1] + "…"
    return text


def _named_subject(tool_input: Any) -> str | None:
    """The first of ``TOOL_INPUT_KEYS`` that holds a string (a ``None`` or a list says
    nothing in a few words)."""
    if isinstance(tool_input, dict):
        for key in TOOL_INPUT_KEYS:
            value = tool_input.get(key)
            if isinstance(value, str):
                return value
    return None


def tool_detail(tool_input: Any) -> str:
    """One short line saying what a tool call does: its command or file, else its whole input
    as JSON (a tool line shows something), at most ``TOOL_DETAIL_CHARS`` characters."""
    text = _named_subject(tool_input)
    if text is None:
        if isinstance(tool_input, dict):
            text = json.dumps(tool_input, default=str) if tool_input else ""
        else:
            text = "" if tool_input is None else str(tool_input)
    return _one_line(text)


def describe_call(tool_name: str, tool_input: Any) -> str:
    """``Write (notes.txt)``: a tool call in a few words, for a sentence. Only a named subject
    goes in the brackets: a JSON dump would not read as part of a sentence."""
    subject = _named_subject(tool_input)
    detail = _one_line(subject) if subject is not None else ""
    return f"{tool_name} ({detail})" if detail else tool_name or "a tool"
