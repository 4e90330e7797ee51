"""A tool call in a few words, for notices, the cell and the export."""

from __future__ import annotations

from typing import Any

DETAIL_KEYS = ("command", "file_path", "path", "notebook_path", "url", "pattern")
DETAIL_CHARS = 120


def describe_call(tool_name: str, tool_input: Any) -> str:
    """``Write (notes.txt)``: a tool call in a few words, for notices."""
    detail = ""
    if isinstance(tool_input, dict):
        for key in DETAIL_KEYS:
            if isinstance(tool_input.get(key), str):
                detail = tool_input[key]
                break
    detail = " ".join(detail.split())
    if len(detail) > DETAIL_CHARS:
        detail = detail[: DETAIL_CHARS - 1] + "…"
    return f"{tool_name} ({detail})" if detail else tool_name or "a tool"
