"""A turn in the session file: claiming the session, the partial reply, and the turn's end.

``write_turn_end`` is the one function that writes how a turn ended, whoever ends it: the runner
when the turn finishes, the reaper for a turn whose process died, and the stop at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any

from ..errors import Busy, Forbidden, InsufficientStorage, NotFound
from ..events import Event
from ..models import Message, Session, TurnError, Usage
from ..processes import ProcessRecord, ProcessRegistry
from ..session_layout import MessageLog
from ..store import SessionStore
from .turn import RunnerSettings, Turn

log = logging.getLogger(__name__)

TITLE_CHARS = 80
# In the store: files a launch must keep off the command line (0700 folder, 0600 files).
PRIVATE_DIR = "private"
INTERRUPTED = "The process running this turn stopped before it finished."


class OrphanedTurn(Exception):
    """The session's record is of a turn whose process died (a kernel or server killed
    mid-turn) and that the reaper has not ended yet: its CLI may still run."""

    def __init__(self, record: ProcessRecord) -> None:
        super().__init__(f"turn {record.turn_id} lost its owner {record.owner_pid}")
        self.record = record


def put_reply(session: Session, reply: Message) -> None:
    """Insert or replace the turn's reply (same id) in the history."""
    if isinstance(session.messages, MessageLog):  # SessionStore.edit: by id, without reading
        session.messages.put(reply)
        return
    for index, message in enumerate(session.messages):
        if message.id == reply.id:
            session.messages[index] = reply
            return
    session.messages.append(reply)


def write_turn_end(
    session: Session,
    turn_id: str,
    reply: Message | None,
    provider_session_id: str | None = None,
    usage: Usage | None = None,
) -> None:
    """Write the end of turn ``turn_id``: its user message into the history, its reply (or,
    with ``reply=None``, whatever was saved of it, marked interrupted), the provider's
    conversation for the next turn, and the cost."""
    if session.pending_message is not None and session.pending_message.turn_id == turn_id:
        session.messages.append(session.pending_message)
        session.pending_message = None
    if reply is not None:
        put_reply(session, reply)
    else:
        _mark_interrupted(session, turn_id)
    if provider_session_id:
        session.provider_session_id = provider_session_id
    if usage is not None:
        session.usage.add(usage)


def mark_interrupted(session: Session, turn_id: str) -> None:
    """The owner of ``turn_id`` died: keep what was stored and say the turn was interrupted."""
    write_turn_end(session, turn_id, None)


def _mark_interrupted(session: Session, turn_id: str) -> None:
    saved = [m for m in session.messages if m.turn_id == turn_id and m.role == "assistant"]
    for message in saved:
        message.status = "interrupted"
        message.error = TurnError(
            code="interrupted",
            message=f"{INTERRUPTED[:-1]}; the reply is kept as far as it was saved.",
        )
    if not saved and any(m.turn_id == turn_id for m in session.messages):
        session.messages.append(
            Message(
                role="assistant",
                content="",
                turn_id=turn_id,
                status="interrupted",
                error=TurnError(code="interrupted", message=INTERRUPTED),
            )
        )


def interrupted_reply(turn: Turn) -> Message:
    """What a turn that is stopped at exit keeps: its reply so far, marked interrupted."""
    error = TurnError(
        code="interrupted",
        message=f"{INTERRUPTED[:-1]}; the reply is kept as far as it was saved.",
    )
    return turn.reply.message("interrupted", error)


class TurnPersistence:
    """The runner's reads and writes of the session file (each under the session's lock)."""

    def __init__(
        self, store: SessionStore, registry: ProcessRegistry, settings: RunnerSettings
    ) -> None:
        self.store = store
        self.registry = registry
        self.settings = settings

    def claim(
        self, session_id: str, turn_id: str, content: str, context: dict[str, Any] | None
    ) -> Session:
        """Under the session's lock: refuse if a turn runs anywhere (OrphanedTurn if its process
        died: reap it, then claim again), else store the pending message and a process record
        that marks the session as running."""

        def change(session: Session) -> None:
            existing = self.registry.read(session_id)
            if existing is not None and existing.owner_alive():
                raise Busy("A turn is already running for this session; cancel it or wait.")
            if existing is not None:
                raise OrphanedTurn(existing)
            cap = self.settings.max_session_cost_usd
            if cap is not None and session.usage.cost_usd >= cap:
                raise Forbidden(
                    f"This conversation has cost ${session.usage.cost_usd:.2f}, the limit set by "
                    f"the administrator (c.AssistantExtension.max_session_cost_usd = {cap:g}); "
                    "start a new conversation."
                )
            if session.pending_message is not None:
                # Left by a turn whose owner died before it started: keep it, marked.
                stale = session.pending_message
                stale.status = "interrupted"
                session.messages.append(stale)
            session.pending_message = Message(
                role="user", content=content, turn_id=turn_id, context=context
            )
            if not session.title:
                session.title = content.strip().splitlines()[0][:TITLE_CHARS]
            self.registry.claim(session_id, turn_id)

        try:
            session, _ = self.store.edit(session_id, change)
        except BaseException:
            # The claim may be on disk while the session could not be saved (disk full):
            # release it, or the session would look busy forever.
            with contextlib.suppress(OSError):
                self.registry.clear(session_id, turn_id)
            raise
        return session

    async def begin(self, session_id: str) -> tuple[Session, Message]:
        """Move the pending user message into the history as the turn starts."""

        def change(session: Session) -> Message:
            prompt = session.pending_message
            if prompt is None:
                raise NotFound("The message to answer is gone (the session changed).")
            session.messages.append(prompt)
            session.pending_message = None
            return prompt

        return await asyncio.to_thread(self.store.edit, session_id, change)

    async def edit(self, session_id: str, change: Any) -> object:
        return await asyncio.to_thread(self.store.edit, session_id, change)

    async def checkpoint_loop(self, turn: Turn) -> None:
        """Save the partial reply now and then: other processes (the sidebar polling a kernel's
        turn) see it grow, and a crash of this process loses at most one interval."""
        interval = self.settings.checkpoint_interval_seconds
        while True:
            await asyncio.sleep(interval)
            if not turn.changed_since_checkpoint:
                continue
            turn.changed_since_checkpoint = False
            reply = turn.reply.message("streaming")
            try:
                await asyncio.to_thread(
                    self.store.edit, turn.session_id, functools.partial(put_reply, reply=reply)
                )
            except NotFound:
                return
            except Exception as exc:  # a failed checkpoint must not end the turn
                log.warning("Could not save the partial reply of turn %s: %s", turn.id, exc)

    async def finish(
        self, turn: Turn, reply: Message, provider_session_id: str | None
    ) -> Event | None:
        """Store the turn's end. Returns the error event to end with instead when the reply
        could not be stored (never report success for a reply that is not stored)."""
        end = functools.partial(
            write_turn_end,
            turn_id=turn.id,
            reply=reply,
            provider_session_id=provider_session_id,
            usage=turn.reply.usage,
        )
        try:
            await asyncio.to_thread(self.store.edit, turn.session_id, end)
        except NotFound:
            pass  # the session was deleted during the turn
        except Exception as exc:
            log.exception("Could not store the reply of turn %s", turn.id)
            return await self._store_what_fits(turn, reply, provider_session_id, exc)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.registry.clear, turn.session_id, turn.id)
        return None

    async def _store_what_fits(
        self, turn: Turn, reply: Message, provider_session_id: str | None, exc: Exception
    ) -> Event:
        """After the full reply could not be stored: store a short one (no text or tool output,
        with the error), or else only the provider's session id. Returns the error event."""
        code = "storage_full" if isinstance(exc, InsufficientStorage) else "storage_failed"
        kept = (
            "The provider's conversation is kept, so the next message continues it."
            if provider_session_id
            else ""
        )
        message = f"The reply could not be stored: {exc} {kept}".strip()
        error = TurnError(code=code, message=message)
        short = reply.model_copy(update={"content": "", "tools": [], "status": "error"})
        short.error = error
        usage = turn.reply.usage

        def keep_provider_session(session: Session) -> None:
            if provider_session_id:
                session.provider_session_id = provider_session_id
            session.usage.add(usage)

        attempts = (
            functools.partial(
                write_turn_end,
                turn_id=turn.id,
                reply=short,
                provider_session_id=provider_session_id,
                usage=usage,
            ),
            keep_provider_session,
        )
        for attempt in attempts:
            try:
                await asyncio.to_thread(self.store.edit, turn.session_id, attempt)
                break
            except NotFound:
                break
            except Exception as again:
                log.warning("Could not store even part of turn %s: %s", turn.id, again)
        return {"type": "error", "code": code, "message": message}
