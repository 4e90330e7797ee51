"""A cell's outputs as a model should read them: text cut to a size, tracebacks without colour
codes, HTML tables as text, images attached up to a size (scaled down with Pillow when it is
installed, else only named)."""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


@dataclass(frozen=True)
class OutputLimits:
    # Characters of one output's text the model gets (head and tail kept, the middle cut).
    max_output_chars: int = 4000
    # Largest image (decoded bytes) attached for the model; 0: images are only named.
    max_image_bytes: int = 1_000_000
    # Longest side of an image scaled down to fit (with Pillow).
    max_image_side: int = 1024


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
        attached = [
            payload
            for mime in images
            if (payload := image_payload(mime, data[mime], limits)) is not None
        ]
        if attached:
            summary["image_data"] = attached[:1]  # one picture of a display is enough
    if kind == "execute_result":
        summary["execution_count"] = output.get("execution_count")
    return summary


RASTER = ("image/png", "image/jpeg", "image/gif", "image/webp")


def image_payload(mime: str, data: Any, limits: OutputLimits) -> dict[str, str] | None:
    """An image output for the model as ``{mime, data}`` (base64), within the size limit, or
    None (SVG and other text formats are left to their text; too large without Pillow)."""
    if mime not in RASTER or limits.max_image_bytes <= 0:
        return None
    compact = "".join(_text(data).split())
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) <= limits.max_image_bytes:
        return {"mime": mime, "data": compact}
    smaller = _scaled_down(raw, limits)
    if smaller is None:
        return None
    return {"mime": "image/png", "data": base64.b64encode(smaller).decode("ascii")}


def _scaled_down(raw: bytes, limits: OutputLimits) -> bytes | None:
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(io.BytesIO(raw)) as image:
            image.thumbnail((limits.max_image_side, limits.max_image_side))
            out = io.BytesIO()
            image.save(out, format="PNG", optimize=True)
    except Exception:  # Pillow raises many kinds on a broken image
        return None
    data = out.getvalue()
    return data if len(data) <= limits.max_image_bytes else None
