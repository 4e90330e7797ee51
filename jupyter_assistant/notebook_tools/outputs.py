"""A cell's outputs as a model should read them: text cut to a size, tracebacks without colour
codes, HTML tables as text, images attached up to a size (scaled down with Pillow when it is
installed, else only named)."""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass
from html import unescape
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


# The scan must stay linear in the text's length (an output is whatever a program printed):
# no two neighbouring repeats match the same character, and nothing but a comment, a script or a
# style runs over a "<". A tag's attributes: after a space or "/", up to ">", with values
# quoted with either quote (that may hold ">", not "<").
_ATTRS = r"""(?:[\s/][^>"'<]*(?:(?:"[^"<]*"|'[^'<]*')[^>"'<]*)*)?"""
# A cell that holds only text (groups: its attributes, its text).
_TEXT_CELL = rf"<t[dh]({_ATTRS})>([^<]*)</t[dh]\s*>"
_ANY_TEXT_CELL = rf"<t[dh]{_ATTRS}>[^<]*</t[dh]\s*>"
# The markup of an HTML text, found in one pass (split on it, with its groups): a comment (to
# its end, or to the text's end when it is not closed), a <script> or <style> element with its
# content, a whole row of cells that hold only text (group 1: its cells), a whole cell of text
# (groups 2-3: its attributes and its text), a start or end tag (groups 4-6: "/" of an end
# tag, the name, the attributes), a declaration or a processing instruction. A "<" that starts
# none of these ("1 < 2") is text, as it is for a browser. The rows and cells of text are the
# common case (a DataFrame), matched whole rather than tag by tag.
_MARKUP = re.compile(
    r"<(?:!--.*?(?:-->|\Z)"
    rf"|script{_ATTRS}>.*?(?:</script\s*>|\Z)"
    rf"|style{_ATTRS}>.*?(?:</style\s*>|\Z)"
    rf"|tr{_ATTRS}>((?:\s*{_ANY_TEXT_CELL})+)\s*</tr\s*>"
    rf"|t[dh]({_ATTRS})>([^<]*)</t[dh]\s*>"
    rf"|(/?)([a-z][^\s/<>]*)({_ATTRS})>"
    r"|[!?][^<>]*>)",
    re.IGNORECASE | re.DOTALL,
)
_GROUPS = 6
_CELLS = re.compile(_TEXT_CELL, re.IGNORECASE)
_TABLE = re.compile(r"<table", re.IGNORECASE)


def _clean(text: str) -> str:
    """A cell's text: its character references decoded, white space collapsed."""
    return " ".join((unescape(text) if "&" in text else text).split())


def html_as_text(html: str) -> str | None:
    """The text of an HTML table (a pandas DataFrame's ``text/html``) as tab-separated lines,
    or None when the HTML holds no table.

    A ``<tr>`` starts a row, a ``<td>`` or ``<th>`` a cell (and ends a cell not yet ended), a
    ``</td>`` or ``</th>`` ends it; a cell never ended is left out. Other tags, comments,
    ``<script>`` and ``<style>`` are not text; character references are decoded. (A scan with
    one regular expression: ``html.parser`` took 1.2-1.5 ms for a 20-row DataFrame.)"""
    if _TABLE.search(html) is None:
        return None
    parts = _MARKUP.split(html)
    rows: list[list[str]] = []
    cell: list[str] | None = None  # the pieces of text (between tags) of the cell being read
    tokens = zip(*(parts[start :: _GROUPS + 1] for start in range(1, _GROUPS + 2)), strict=True)
    for row_cells, cell_attrs, cell_text, closing, name, attrs, text in tokens:
        if row_cells is not None:  # <tr><td>text</td>...</tr>
            # <td/>: started and ended at once, what follows it is outside it
            rows.append(
                [
                    "" if found_attrs.endswith("/") else _clean(found_text)
                    for found_attrs, found_text in _CELLS.findall(row_cells)
                ]
            )
            cell = None
        elif cell_attrs is not None:  # <td>text</td>
            if not rows:
                rows.append([])
            rows[-1].append("" if cell_attrs.endswith("/") else _clean(cell_text))
            cell = None
        elif name is not None:
            name = name.lower()
            if name == "tr":
                if not closing:
                    rows.append([])
            elif name in ("td", "th"):
                if not closing:
                    cell = []
                    closing = "/" if attrs.endswith("/") else ""
                if closing and cell is not None:
                    if not rows:
                        rows.append([])
                    rows[-1].append(_clean("".join(map(_decoded, cell))))
                    cell = None
        if cell is not None and text:
            cell.append(text)
    kept = [row for row in rows if row]
    return "\n".join("\t".join(row) for row in kept) if kept else None


def _decoded(piece: str) -> str:
    return unescape(piece) if "&" in piece else piece


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
