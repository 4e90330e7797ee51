"""The format of ``index.json``, the summary index saved now and then by a lister
(summary_index.py), so that the first listing after a start reads one file, not every session.

The index file is only a cache of the rows (rebuilt from the session files when it is missing or
damaged), so it is written without fsync. Lines: a CRC of the rest; a header (version, where
the change log was read to); the rows' columns as JSON; then each row's JSON on a line of its
own (JSON text holds no raw newline), newest first. Loading keeps the columns and rows as text
until something needs the rows: until a session changes, "list all" is the row lines with their
status added, without parsing any row.
"""

from __future__ import annotations

import json
import mmap
import zlib
from collections.abc import Sequence
from pathlib import Path

from .summaries import Row, make_row, no_gc

INDEX_FILE = "index.json"
INDEX_VERSION = 2

LogPosition = tuple[int, int]  # (inode, offset) of the change log


def read_index(path: Path) -> tuple[bytes, str, LogPosition | None] | None:
    """(the columns' JSON, the rows' lines, where the change log was read to), or None when the
    file is missing, damaged or of another version."""
    try:
        # Mapped and sliced, not read and split: each copy of a few MB costs milliseconds
        # of page faults in a server's heap.
        with (
            open(path, "rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
            memoryview(data) as view,
        ):
            first = data.find(b"\n")
            second = data.find(b"\n", first + 1)
            third = data.find(b"\n", second + 1)
            if min(first, second, third) < 0:
                return None
            if int(data[:first], 16) != zlib.crc32(view[first + 1 :]):
                return None
            header = json.loads(data[first + 1 : second])
            if header.get("version") != INDEX_VERSION:
                return None
            columns = data[second + 1 : third]
            lines = str(view[third + 1 :], "ascii")
        log_pos = (int(header["log"][0]), int(header["log"][1])) if header["log"] else None
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None
    return columns, lines, log_pos


def parse_rows(columns: bytes, lines: str) -> list[Row]:
    """The rows of ``read_index``'s text, newest first. Raises ValueError, KeyError or
    TypeError when they are not rows."""
    with no_gc():
        meta = json.loads(columns)
        ids, keys, times, notebooks = (
            meta[name] for name in ("ids", "keys", "updated", "notebook_keys")
        )
        texts = lines.split("\n") if ids else []
        if len(keys) != 3 * len(ids):
            raise ValueError("index columns differ in length")
        inos, sizes, mtimes = keys[0::3], keys[1::3], keys[2::3]
        columns_ = zip(ids, inos, sizes, mtimes, times, notebooks, texts, strict=True)
        return list(map(make_row, columns_))


def index_bytes(rows: Sequence[Row], log_pos: LogPosition | None) -> bytes:
    """The file for ``rows`` (newest first)."""
    header = {"version": INDEX_VERSION, "log": log_pos}
    columns = {
        "ids": [row.id for row in rows],
        "keys": [number for row in rows for number in row.key],
        "updated": [row.updated_at for row in rows],
        "notebook_keys": [row.notebook_key for row in rows],
    }
    rest = b"\n".join(
        [
            json.dumps(header, separators=(",", ":")).encode(),
            json.dumps(columns, separators=(",", ":")).encode(),
            "\n".join(row.json for row in rows).encode("ascii"),
        ]
    )
    return b"%08x\n" % zlib.crc32(rest) + rest
