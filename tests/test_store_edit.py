"""SessionStore.edit, a turn's write path: it splices the bytes of the unchanged messages, so
these tests check that what it writes is what update() (which parses and serializes everything)
would have written, and that no change made in place can be lost on either path."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic_core import PydanticSerializationError

from jupyter_assistant.models import Message, Session, ToolCall, TurnError
from jupyter_assistant.session_layout import MessageLog
from jupyter_assistant.store import SessionStore
from jupyter_assistant.turns import mark_interrupted, put_reply


def new_session(store: SessionStore, messages: int = 0) -> Session:
    session = Session(
        path="a.ipynb", notebook_key="/nb/a.ipynb", working_dir="/nb", provider="claude"
    )
    for i in range(messages):
        session.messages.append(
            Message(
                role="assistant" if i % 2 else "user",
                content=f"message {i} é ✓",
                turn_id=f"t{i // 2}",
                tools=[ToolCall(id=f"tool{i}", name="Read", input={"file_path": "x.csv"})],
                context={"cell": i},
            )
        )
    return store.create(session)


def stored(store: SessionStore, session_id: str) -> list[dict[str, object]]:
    """The messages as the file holds them (plain JSON, no pydantic)."""
    data = json.loads(store.session_file(session_id).read_bytes())
    return data["messages"]  # type: ignore[no-any-return]


def dumped(messages: list[Message]) -> list[dict[str, object]]:
    return [json.loads(m.model_dump_json()) for m in messages]


def test_edit_appends_and_replaces_by_id(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "store")
    session = new_session(store, messages=5)
    expected = list(session.messages)
    added = Message(role="user", content="a question")

    def add(s: Session) -> str:
        s.messages.append(added)
        return "done"

    head, result = store.edit(session.id, add)
    assert result == "done"
    assert isinstance(head.messages, MessageLog) and len(head.messages) == 6
    expected.append(added)
    # Replace the first, a middle and the last message; replace one added in the same edit.
    first = expected[0].model_copy(update={"content": "first, edited"})
    middle = expected[3].model_copy(update={"status": "error"})
    reply = Message(role="assistant", content="draft", status="streaming")
    final = reply.model_copy(update={"content": "final answer", "status": "complete"})

    def change(s: Session) -> None:
        put_reply(s, first)
        put_reply(s, middle)
        s.messages.append(reply)
        s.messages.put(final)  # the reply added above, replaced by id

    store.edit(session.id, change)
    expected[0], expected[3] = first, middle
    expected.append(final)
    assert stored(store, session.id) == dumped(expected)
    assert store.load(session.id).messages == expected


def test_edit_changes_the_other_fields_like_update(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "store")
    session = new_session(store, messages=3)
    pending = Message(role="user", content="next question", turn_id="t9")

    def claim(s: Session) -> None:
        s.pending_message = pending
        s.title = "A title"
        s.usage.input_tokens += 7

    store.edit(session.id, claim)

    def start(s: Session) -> Message:
        assert s.pending_message is not None
        prompt = s.pending_message
        s.messages.append(prompt)
        s.pending_message = None
        return prompt

    head, prompt = store.edit(session.id, start)
    assert prompt.content == "next question" and head.pending_message is None
    loaded = store.load(session.id)
    assert (loaded.title, loaded.usage.input_tokens, loaded.pending_message) == ("A title", 7, None)
    assert loaded.messages[-1] == pending
    summary = store.list_summaries()[0]
    assert summary["message_count"] == 4 and summary["title"] == "A title"


def test_stored_messages_cannot_be_read_or_changed_in_place_through_edit(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "store")
    session = new_session(store, messages=2)
    before = store.session_file(session.id).read_bytes()
    attempts = [
        lambda s: s.messages[0],
        lambda s: s.messages[-1].content,
        lambda s: list(s.messages),
        lambda s: [m for m in s.messages],
        lambda s: "x" in s.messages,
        lambda s: s.messages.pop(),
        lambda s: s.messages.insert(0, Message(role="user")),
        lambda s: s.messages.extend([Message(role="user")]),
        lambda s: s.messages.remove(None),
        lambda s: s.messages.sort(),
        lambda s: s.messages.__setitem__(0, Message(role="user")),
        lambda s: s.messages == [],
        lambda s: mark_interrupted(s, "t0"),  # a change that needs update()
    ]
    for attempt in attempts:
        with pytest.raises(TypeError, match="not loaded"):
            store.edit(session.id, attempt)

    def replace_the_list(s: Session) -> None:
        s.messages = []

    with pytest.raises(TypeError, match="update"):
        store.edit(session.id, replace_the_list)
    with pytest.raises(TypeError, match="Message"):
        store.edit(session.id, lambda s: s.messages.append({"role": "user"}))  # type: ignore[arg-type]
    # Dumping the half-loaded session fails instead of showing no messages.
    with pytest.raises(PydanticSerializationError):
        store.edit(session.id, lambda s: s.model_dump_json())
    assert store.session_file(session.id).read_bytes() == before  # nothing was written


def test_changes_made_in_place_are_saved_on_both_paths(tmp_path: Path) -> None:
    """The prototype that reused each message's JSON by object identity lost a change made in
    place (mark_interrupted). Here: edit never hands out a stored message, update serializes
    everything, and a message given to edit is serialized after the change returns."""
    store = SessionStore(tmp_path / "store")
    session = new_session(store, messages=4)
    reply = Message(role="assistant", content="part", turn_id="t1", status="streaming")
    store.edit(session.id, lambda s: put_reply(s, reply))  # the layout is now remembered

    # A change inside edit, to a message given to it, after handing it over.
    note = Message(role="system", content="note")

    def grow(s: Session) -> None:
        s.messages.put(reply)
        reply.content += " and more"  # in place, after put()
        reply.tools.append(ToolCall(id="late", name="Bash"))
        s.messages.append(note)
        note.notices.append("added after append()")

    store.edit(session.id, grow)
    assert stored(store, session.id)[-2]["content"] == "part and more"
    assert stored(store, session.id)[-2]["tools"][0]["id"] == "late"  # type: ignore[index]
    assert stored(store, session.id)[-1]["notices"] == ["added after append()"]

    # The same object changed again and put again: saved again (never reused by identity).
    reply.content += ", last"
    store.edit(session.id, lambda s: put_reply(s, reply))
    assert stored(store, session.id)[-2]["content"] == "part and more, last"

    # In-place changes to stored messages, as the reaper and the kernels make them.
    def in_place(s: Session) -> None:
        mark_interrupted(s, "t1")
        s.messages[0].content = "edited in place"
        s.messages[0].tools[0].result = {"rows": 3}
        assert s.messages[2].context is not None
        s.messages[2].context["cell"] = 99
        s.messages[1].notices.append("a notice")

    store.update(session.id, in_place)
    after = stored(store, session.id)
    assert after[0]["content"] == "edited in place"
    assert after[0]["tools"][0]["result"] == {"rows": 3}  # type: ignore[index]
    assert after[2]["context"] == {"cell": 99}
    assert after[1]["notices"] == ["a notice"]
    reply_after = after[-2]
    assert reply_after["status"] == "interrupted"
    assert reply_after["error"]["code"] == "interrupted"  # type: ignore[index]
    # ... and the next edit starts from what update wrote, keeping all of it.
    store.edit(session.id, lambda s: s.messages.append(Message(role="user", content="again")))
    assert stored(store, session.id)[:-1] == after


def test_a_returned_session_is_the_callers_copy(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "store")
    session = new_session(store, messages=2)
    returned, _ = store.update(session.id, lambda s: None)
    returned.messages[0].content = "changed by the caller after the save"
    store.update(session.id, lambda s: None)  # nothing of the caller's object is reused
    store.edit(session.id, lambda s: None)
    assert stored(store, session.id)[0]["content"] == "message 0 é ✓"


def test_a_file_changed_by_another_writer_is_parsed_again(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "store")
    session = new_session(store, messages=3)
    store.edit(session.id, lambda s: s.messages.append(Message(role="user", content="mine")))
    path = store.session_file(session.id)

    # Another writer: same length, same mtime (a stat key would not see it); only the bytes do.
    st = path.stat()
    raw = path.read_bytes()
    assert b"message 1" in raw
    path.write_bytes(raw.replace(b"message 1", b"MESSAGE 1"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    store.edit(session.id, lambda s: s.messages.append(Message(role="user", content="again")))
    contents = [m["content"] for m in stored(store, session.id)]
    assert contents[1] == "MESSAGE 1 é ✓" and contents[-2:] == ["mine", "again"]

    # Another store (another process) appends: this store's next edit keeps that message.
    other = SessionStore(tmp_path / "store")
    other.edit(session.id, lambda s: s.messages.append(Message(role="user", content="theirs")))
    store.edit(session.id, lambda s: s.messages.append(Message(role="user", content="last")))
    assert [m["content"] for m in stored(store, session.id)][-3:] == ["again", "theirs", "last"]


def test_a_failed_change_writes_nothing_and_the_next_edit_is_whole(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "store")
    session = new_session(store, messages=2)
    store.edit(session.id, lambda s: s.messages.append(Message(role="user", content="one")))
    before = store.session_file(session.id).read_bytes()

    def boom(s: Session) -> None:
        s.messages.append(Message(role="user", content="half"))
        s.title = "half"
        raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        store.edit(session.id, boom)
    assert store.session_file(session.id).read_bytes() == before
    store.edit(session.id, lambda s: s.messages.append(Message(role="user", content="two")))
    loaded = store.load(session.id)
    assert [m.content for m in loaded.messages][-2:] == ["one", "two"] and loaded.title == ""


def test_random_edits_and_updates_match_a_plain_list(tmp_path: Path) -> None:
    """Appends, replacements anywhere (splitting the remembered chunks, past MAX_CHUNKS so they
    are merged), in-place changes through update, and another store's writes, in a seeded
    random order: after each, the file holds exactly the reference list."""
    store = SessionStore(tmp_path / "store")
    other = SessionStore(tmp_path / "store")
    session = new_session(store, messages=3)
    expected = list(session.messages)
    rng = random.Random(6)
    for step in range(120):
        action = rng.random()
        if action < 0.35:
            message = Message(role="user", content=f"added {step}")
            expected.append(message)
            store.edit(session.id, lambda s, m=message: s.messages.append(m))
        elif action < 0.7:
            index = rng.randrange(len(expected))
            message = expected[index].model_copy(update={"content": f"replaced {step}"})
            expected[index] = message
            store.edit(session.id, lambda s, m=message: put_reply(s, m))
        elif action < 0.8:
            index = rng.randrange(len(expected))

            def in_place(s: Session, i: int = index, n: int = step) -> None:
                s.messages[i].content = f"in place {n}"
                s.messages[i].error = TurnError(code="x", message=str(n))

            session, _ = store.update(session.id, in_place)
            expected = list(session.messages)
        elif action < 0.9:
            message = Message(role="assistant", content=f"from the other store {step}")
            expected.append(message)
            other.edit(session.id, lambda s, m=message: s.messages.append(m))
        else:
            batch = [Message(role="user", content=f"batch {step}.{k}") for k in range(3)]
            expected.extend(batch)

            def add_batch(s: Session, b: list[Message] = batch) -> None:
                for m in b:
                    s.messages.append(m)

            store.edit(session.id, add_batch)
        assert stored(store, session.id) == dumped(expected), f"step {step}"
    assert len(store.load(session.id).messages) == len(expected)


EDITOR = textwrap.dedent(
    """
    import sys
    from jupyter_assistant.models import Message
    from jupyter_assistant.store import SessionStore
    from jupyter_assistant.turns import put_reply
    store = SessionStore(sys.argv[1])
    tag = sys.argv[3]
    for i in range(int(sys.argv[4])):
        message = Message(role="user", content=f"{tag}-{i}")
        if i % 3 == 2:  # sometimes the general path, sometimes a replacement
            store.update(sys.argv[2], lambda s: s.messages.append(message))
        else:
            store.edit(sys.argv[2], lambda s: put_reply(s, message))
    """
)


def test_processes_editing_one_session_lose_nothing(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "store")
    session = new_session(store)
    writers, per_writer = 4, 25
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", EDITOR, str(store.root), session.id, f"w{n}", str(per_writer)]
        )
        for n in range(writers)
    ]
    assert all(proc.wait(timeout=120) == 0 for proc in procs)
    contents = [m.content for m in store.load(session.id).messages]
    assert sorted(contents) == sorted(
        f"w{n}-{i}" for n in range(writers) for i in range(per_writer)
    )
    for n in range(writers):
        assert [c for c in contents if c.startswith(f"w{n}-")] == [
            f"w{n}-{i}" for i in range(per_writer)
        ]
