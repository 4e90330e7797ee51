"""A cell's outputs as a model should read them: text cut to a size, tracebacks without colour
codes, HTML tables as text, images named with their size (not their bytes)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


@dataclass(frozen=True)
class OutputLimits:
    # Characters of one output's text the model gets (head and tail kept, the middle cut).
    max_output_chars: int = 4000


def clip(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters: its start and its end (where a traceback's cause
    and a result's last lines are), with how much was cut between them."""
    if len(text) <= limit:
        return text
    head = max(limit * 2 // 3, 1)
    tail = max(limit - head, 0)
    cut = len(text) - head - tail
    return f"{text[:head]}\n… [{cut} characters cut] …\n{text[len(text) - tail :] if tail else ''}"


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


class _TableText(HTMLParser):
    """An HTML table (a pandas DataFrame's ``text/html``) as tab-separated lines."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            if not self.rows:
                self.rows.append([])
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_as_text(html: str) -> str | None:
    """The text of an HTML table, or None when the HTML holds no table."""
    if "<table" not in html.lower():
        return None
    parser = _TableText()
    parser.feed(html)
    rows = [row for row in parser.rows if row]
    return "\n".join("\t".join(row) for row in rows) if rows else None


def summarize_output(output: dict[str, Any], limits: OutputLimits) -> dict[str, Any]:
    """One nbformat output as ``{output_type, text}`` (plus ``name`` of a stream, ``ename`` and
    ``evalue`` of an error, ``images``: the image types a display held)."""
    kind = str(output.get("output_type", ""))
    limit = limits.max_output_chars
    if kind == "stream":
        text = _text(output.get("text", ""))
        return {
            "output_type": kind,
            "name": output.get("name", "stdout"),
            "text": clip(text, limit),
        }
    if kind == "error":
        traceback = "\n".join(ANSI.sub("", _text(line)) for line in output.get("traceback", []))
        return {
            "output_type": kind,
            "ename": output.get("ename", ""),
            "evalue": output.get("evalue", ""),
            "text": clip(traceback, limit),
        }
    data = output.get("data") or {}
    summary: dict[str, Any] = {"output_type": kind}
    table = html_as_text(_text(data["text/html"])) if "text/html" in data else None
    if table is not None:
        summary["text"] = clip(table, limit)
    elif "text/plain" in data:
        summary["text"] = clip(_text(data["text/plain"]), limit)
    elif "text/markdown" in data:
        summary["text"] = clip(_text(data["text/markdown"]), limit)
    images = sorted(key for key in data if key.startswith("image/"))
    if images:
        summary["images"] = images
    if kind == "execute_result":
        summary["execution_count"] = output.get("execution_count")
    return summary
