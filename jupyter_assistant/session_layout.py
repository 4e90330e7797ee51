"""How ``SessionStore.edit`` writes a session without parsing or serializing its history.

A session file is written as its other fields followed by its messages
(``{<fields>,"messages":[<m1>,<m2>,...]}``). The store keeps, for the sessions it wrote last, a
``Layout``: the bytes it wrote, in chunks, with where each message's JSON lies. An edit that
appends or replaces messages makes a new layout from the old chunks (unchanged bytes, no copy)
and the newly serialized parts; ``holds`` checks that the file on disk is still exactly what a
layout describes (another process may have written it since).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from .models import Message, Session

# Between a session's other fields and its messages, in every file the store writes.
MESSAGES_KEY = b',"messages":['
FILE_END = b"]}"
# Chunks of messages kept apart in a layout before the older ones are merged into one.
MAX_CHUNKS = 16


class _NotLoaded:
    """Kept inside a MessageLog's own list storage, so that code reading it below the Python
    level (a pydantic or json dump of the session) fails instead of seeing no messages."""

    def __repr__(self) -> str:
        return "<stored messages, not loaded>"


_NOT_LOADED = _NotLoaded()


class MessageLog(list["Message"]):
    """``session.messages`` inside ``SessionStore.edit``: the stored history, write-only.

    ``append`` adds a message, ``put`` replaces the message with the same id (or appends), and
    ``len`` counts them all. The stored messages are not loaded, so reading them (iterating,
    indexing, ``in``) raises TypeError: a change that needs them goes through
    ``SessionStore.update``, which loads and re-serializes everything. The messages given to
    ``append``/``put`` are serialized when ``change`` returns, so changes made to them inside
    ``change`` are saved too."""

    __slots__ = ("_added", "_replaced", "_stored_ids")

    def __init__(self, stored_ids: Sequence[str]) -> None:
        super().__init__()
        list.append(self, _NOT_LOADED)  # type: ignore[misc]
        self._stored_ids = stored_ids
        self._replaced: dict[int, Message] = {}
        self._added: list[Message] = []

    def __len__(self) -> int:
        return len(self._stored_ids) + len(self._added)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __repr__(self) -> str:
        return f"<MessageLog: {len(self)} messages, not loaded>"

    def append(self, message: Message) -> None:
        self._added.append(checked(message))

    def put(self, message: Message) -> None:
        """Replace the message with ``message.id`` (searched from the end), or append."""
        message = checked(message)
        for index in range(len(self._added) - 1, -1, -1):
            if self._added[index].id == message.id:
                self._added[index] = message
                return
        for index in range(len(self._stored_ids) - 1, -1, -1):
            if self._stored_ids[index] == message.id:
                self._replaced[index] = message
                return
        self._added.append(message)

    def _not_loaded(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(
            "The stored messages are not loaded in SessionStore.edit (it only appends or "
            "replaces them); use SessionStore.update to read or change them in place."
        )

    __iter__ = __reversed__ = __getitem__ = __setitem__ = __delitem__ = _not_loaded
    __contains__ = __iadd__ = __imul__ = __add__ = __mul__ = __rmul__ = _not_loaded
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _not_loaded
    extend = insert = pop = remove = index = count = _not_loaded
    sort = reverse = clear = copy = _not_loaded


# Plain classes rather than dataclasses: this module is imported by the server's first listing,
# and generating a dataclass's methods costs about a millisecond each.
class Chunk:
    """Whole messages as this store wrote them, comma-separated: ``base[start:stop]``, with each
    message's end (relative to ``start``) and id. Never changed once made."""

    __slots__ = ("base", "ends", "ids", "start", "stop")

    def __init__(
        self, base: bytes, start: int, stop: int, ends: tuple[int, ...], ids: tuple[str, ...]
    ) -> None:
        self.base, self.start, self.stop, self.ends, self.ids = base, start, stop, ends, ids

    @classmethod
    def of(cls, messages: Sequence[Message]) -> Chunk:
        encoded = [checked(m).model_dump_json().encode() for m in messages]
        ends, pos = [], -1
        for data in encoded:
            pos += 1 + len(data)
            ends.append(pos)
        base = b",".join(encoded)
        return cls(base, 0, len(base), tuple(ends), tuple(m.id for m in messages))

    def replace(self, index: int, message: Message) -> list[Chunk]:
        """This chunk with its message ``index`` replaced: up to three chunks, the unchanged
        messages on either side still pointing into ``base`` (nothing copied)."""
        out = []
        if index > 0:
            stop = self.start + self.ends[index - 1]
            out.append(Chunk(self.base, self.start, stop, self.ends[:index], self.ids[:index]))
        out.append(Chunk.of([message]))
        if index + 1 < len(self.ids):
            after = self.ends[index] + 1
            ends = tuple(end - after for end in self.ends[index + 1 :])
            out.append(Chunk(self.base, self.start + after, self.stop, ends, self.ids[index + 1 :]))
        return out

    def view(self) -> memoryview:
        return memoryview(self.base)[self.start : self.stop]


def merged(chunks: Sequence[Chunk]) -> Chunk:
    """One chunk for several (one copy of their bytes)."""
    ends: list[int] = []
    pos = 0
    for chunk in chunks:
        ends.extend(end + pos for end in chunk.ends)
        pos += chunk.stop - chunk.start + 1
    base = b",".join(chunk.view() for chunk in chunks)
    ids = tuple(chain.from_iterable(chunk.ids for chunk in chunks))
    return Chunk(base, 0, len(base), tuple(ends), ids)


class Layout:
    """A session file as this store wrote it: ``head`` (``{<other fields>,"messages":[``), the
    messages in chunks (with commas between them), then ``]}``. Only bytes, never changed once
    made: nothing in it can change after the write it describes. An edit adds a chunk, or
    splits the chunk of a replaced message, instead of copying the history; past MAX_CHUNKS
    the older chunks are merged."""

    __slots__ = ("chunks", "head")

    def __init__(self, head: bytes, chunks: tuple[Chunk, ...]) -> None:
        self.head, self.chunks = head, chunks

    def pieces(self) -> Iterator[tuple[bytes, int, int]]:
        """The file as (buffer, start, stop) pieces."""
        yield self.head, 0, len(self.head)
        for number, chunk in enumerate(self.chunks):
            if number:
                yield b",", 0, 1
            yield chunk.base, chunk.start, chunk.stop
        yield FILE_END, 0, len(FILE_END)

    def buffers(self) -> list[memoryview]:
        return [memoryview(base)[start:stop] for base, start, stop in self.pieces()]

    def size(self) -> int:
        return sum(stop - start for _, start, stop in self.pieces())

    def ids(self) -> tuple[str, ...]:
        return tuple(chain.from_iterable(chunk.ids for chunk in self.chunks))

    def head_json(self) -> bytes:
        """The session's JSON without its messages."""
        return self.head[: -len(MESSAGES_KEY)] + b"}"


def checked(message: Message) -> Message:
    from .models import Message

    if not isinstance(message, Message):
        raise TypeError(f"a session's messages are Message objects, not {type(message)}")
    return message


def head_of(session: Session) -> bytes:
    head = session.model_dump_json(exclude={"messages", "status"}).encode()
    if not (head.startswith(b"{") and head.endswith(b"}")) or head == b"{}":
        raise ValueError("a session serializes to a non-empty JSON object")
    return head[:-1] + MESSAGES_KEY


def layout_of(session: Session) -> Layout:
    """Serialize a whole session, each message on its own (to know where it lies); the last
    message in a chunk of its own, as it is the one a running turn replaces."""
    messages = session.messages
    groups = [messages[:-1], messages[-1:]] if len(messages) > 1 else [messages]
    return Layout(head_of(session), tuple(Chunk.of(group) for group in groups if group))


def edited(layout: Layout, head: Session, messages: MessageLog) -> Layout:
    """The file after an edit: the unchanged messages as they were (bytes of ``layout``), the
    other fields and the replaced and added messages serialized now."""
    chunks = list(layout.chunks)
    for index in sorted(messages._replaced, reverse=True):
        first = 0
        for number, chunk in enumerate(chunks):
            if index < first + len(chunk.ids):
                chunks[number : number + 1] = chunk.replace(
                    index - first, messages._replaced[index]
                )
                break
            first += len(chunk.ids)
    if messages._added:
        chunks.append(Chunk.of(messages._added))
    if len(chunks) > MAX_CHUNKS:  # the newest stay apart: they are the ones a turn replaces
        chunks[:-2] = [merged(chunks[:-2])]
    return Layout(head_of(head), tuple(chunks))


def holds(path: Path, layout: Layout) -> bool:
    """Whether the file holds exactly what ``layout`` describes. Read, not mapped: a mapped file
    that another program truncates during the comparison would kill the process (SIGBUS), and
    reading a 1 MB session from the page cache costs about 0.05 ms."""
    try:
        with open(path, "rb", buffering=0) as handle:
            size = layout.size()
            if os.fstat(handle.fileno()).st_size != size:
                return False
            data = handle.read(size + 1)
    except OSError:
        return False
    if len(data) != size:
        return False
    view = memoryview(data)
    pos = 0
    for base, start, stop in layout.pieces():
        if not base.startswith(view[pos : pos + stop - start], start):
            return False
        pos += stop - start
    return True
