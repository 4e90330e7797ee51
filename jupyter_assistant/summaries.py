"""Session summaries: their one definition (``SessionSummary``), and how the store lists them:
one ``Row`` per session (the stat key of its file, what sorting and filtering need, and its JSON
as the HTTP API sends it, encoded once), and the summary of a session file read without
pydantic."""

from __future__ import annotations

import contextlib
import functools
import gc
import json
from collections.abc import Collection, Iterator
from typing import Any, Literal, NamedTuple, TypedDict, cast


class SessionSummary(TypedDict):
    """A session's summary: the one definition of its fields. ``Session.summary()`` and the
    fast path below both build it with ``make_summary``; the HTTP API's ``GET sessions`` sends
    it without the ``UNSERVED`` fields, and docs/rest-api.yml's ``SessionSummary`` and
    labextension/src/types.ts's ``ISessionSummary`` are checked against it by a test.
    (A TypedDict, not a pydantic model: listing must not import pydantic.)"""

    id: str
    path: str
    # The index key (the notebook's resolved absolute file path): kept by the store, not served.
    notebook_key: str
    title: str
    provider: str
    status: Literal["idle", "running"]
    created_at: str
    updated_at: str
    message_count: int
    # The notebook was deleted: the conversation is kept, but no longer follows a file.
    detached: bool


SUMMARY_FIELDS: tuple[str, ...] = tuple(SessionSummary.__annotations__)
# Fields the store keeps but the HTTP API does not send: a file path on the server.
UNSERVED: frozenset[str] = frozenset({"notebook_key"})


def make_summary(
    id: str,
    path: str,
    notebook_key: str,
    title: str,
    provider: str,
    status: Literal["idle", "running"],
    created_at: str,
    updated_at: str,
    message_count: int,
    detached: bool,
) -> dict[str, Any]:
    """A summary from its fields (positional: thousands are made at once when a store without
    an index is first listed). Returned as a plain dict, which is what the store keeps."""
    summary: SessionSummary = {
        "id": id,
        "path": path,
        "notebook_key": notebook_key,
        "title": title,
        "provider": provider,
        "status": status,
        "created_at": created_at,
        "updated_at": updated_at,
        "message_count": message_count,
        "detached": detached,
    }
    return cast("dict[str, Any]", summary)


# The end of a summary row as the HTTP API sends it (a row's JSON is kept without its "}").
IDLE_END = ',"status":"idle"}'
RUNNING_END = ',"status":"running"}'


class Row(NamedTuple):
    """One session's summary as listed: the stat key of the file it was read from, what sorting
    and filtering need, and its JSON as the HTTP API sends it (without ``notebook_key``,
    ``status`` and the closing brace), encoded once. (A tuple: ten thousand of them are made
    at once when the index is loaded.)"""

    id: str
    ino: int
    size: int
    mtime_ns: int
    updated_at: str
    notebook_key: str
    json: str

    @property
    def key(self) -> tuple[int, int, int]:
        return self.ino, self.size, self.mtime_ns


def row_of(key: tuple[int, int, int], summary: dict[str, Any]) -> tuple[Row, dict[str, Any]]:
    """The row of a summary (``Session.summary()``), and the summary as listed."""
    public = {k: v for k, v in summary.items() if k not in UNSERVED and k != "status"}
    encoded = json.dumps(public, separators=(",", ":"))[:-1]
    listed = {**public, "notebook_key": summary["notebook_key"], "status": "idle"}
    row = Row(public["id"], *key, public["updated_at"], summary["notebook_key"], encoded)
    return row, listed


def listed_lines(lines: str, running: Collection[str]) -> str:
    """The JSON array of the index's row lines (newest first), each with its status."""
    if not lines:
        return "[]"
    body = "[" + lines.replace("\n", IDLE_END + ",") + IDLE_END + "]"
    for session_id in running:
        # A row starts with its id, and its first status is its own (a quote inside a JSON
        # string is escaped, so this text cannot occur inside a value).
        start = body.find('{"id":' + json.dumps(session_id) + ",")
        if start >= 0:
            at = body.find(IDLE_END, start)
            body = body[:at] + RUNNING_END + body[at + len(IDLE_END) :]
    return body


# A row from its fields: tuple.__new__ without a Python-level call (10,000 rows at start-up).
make_row = functools.partial(tuple.__new__, Row)


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while thousands of rows or summaries are made at once
    (they hold no cycles): in a server's large heap, the collections their allocations trigger
    cost several times the work itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def order_key(row: Row) -> tuple[str, str]:
    return row.updated_at, row.id


# The fields a summary reads, with the type a file written by this package holds.
_SUMMARY_TEXT = ("id", "path", "notebook_key", "working_dir", "provider", "title")
_SUMMARY_TIMES = ("created_at", "updated_at")


def summary_from_json(data: Any) -> dict[str, Any] | None:
    """``Session.summary()`` of a session file's parsed JSON, without pydantic; None when the
    file is not plainly what this package writes (then the caller validates it properly)."""
    if not isinstance(data, dict) or "status" in data:
        return None
    for name in (*_SUMMARY_TEXT, *_SUMMARY_TIMES):
        if type(data.get(name)) is not str:
            return None
    messages, pending = data.get("messages"), data.get("pending_message", None)
    if type(messages) is not list or not (pending is None or type(pending) is dict):
        return None
    if type(data.get("detached", False)) is not bool or type(data.get("version")) is not int:
        return None
    return make_summary(
        data["id"],
        data["path"],
        data["notebook_key"],
        data["title"],
        data["provider"],
        "idle",
        data["created_at"],
        data["updated_at"],
        len(messages) + (1 if pending is not None else 0),
        data.get("detached", False),
    )
