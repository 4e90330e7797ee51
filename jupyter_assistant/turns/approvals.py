"""Tool approval during a turn: the policy decides, or the user is asked and answers.

The provider's parser turns the agent's request into a ``permission_request`` event; the broker
lets permissions.py's policy allow or deny it at once, or publishes the question and waits for
``answer`` (from the sidebar or a cell) or the timeout. The answer goes back to the agent through
the parser, and a "for this session" answer is kept in the session for the turns that follow.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .. import events
from ..errors import NotFound
from ..events import Event
from ..models import Approval, Session, new_id
from ..permissions import PermissionPolicy, SessionAnswer, Verdict
from ..providers.base import EditMode
from ..toolcalls import describe_call
from .turn import RunnerSettings, Turn

log = logging.getLogger(__name__)

# Stores a "for this session" answer in the session (the runner's store access).
StoreApproval = Callable[[str, Callable[[Session], None]], Awaitable[object]]


def session_policy(session: Session, settings: RunnerSettings) -> PermissionPolicy:
    """The policy of one turn: the administrator's rules plus the session's own answers."""
    return PermissionPolicy(
        working_dir=session.working_dir,
        allowed_tools=settings.permission_allowed_tools,
        denied_tools=settings.permission_denied_tools,
        extra_dirs=settings.permission_extra_dirs,
        answers=[
            SessionAnswer(a.tool_name, a.pattern, a.decision == "allow", a.message)
            for a in session.approvals
        ],
    )


class ApprovalBroker:
    """The questions of one turn."""

    def __init__(
        self,
        turn: Turn,
        policy: PermissionPolicy | None,
        settings: RunnerSettings,
        edit_session: StoreApproval,
    ) -> None:
        self.turn = turn
        self.policy = policy or PermissionPolicy(working_dir=os.getcwd())
        self.timeout = settings.permission_timeout_seconds
        self._edit_session = edit_session
        self._timers: dict[str, asyncio.TimerHandle] = {}
        # Questions about calls the server itself serves (the notebook tools): their answer
        # goes to the waiting call, not to the provider.
        self._served: dict[str, asyncio.Future[tuple[bool, str | None]]] = {}
        self.last_answer = turn.started

    def waiting(self) -> bool:
        return self.turn.reply.waiting_for_answer()

    def request(self, event: Event, verdict: Verdict | None = None) -> None:
        """The agent asks to use a tool: the policy decides, or the user is asked."""
        turn = self.turn
        request_id = str(event.get("request_id", ""))
        tool_name = str(event.get("tool_name", ""))
        tool_input = event.get("input")
        if verdict is None:
            verdict = self.policy.decide(tool_name, tool_input, event.get("paths") or ())
        what = describe_call(tool_name, tool_input)
        if verdict.decision == "allow":
            if self._deliver(request_id, True, None):
                turn.publish(events.notice(f"Allowed {what}: {verdict.reason}."))
            return
        if verdict.decision == "deny":
            message = f"Denied {what}: {verdict.reason}."
            if self._deliver(request_id, False, message):
                turn.publish(events.permission_denied(tool_name, tool_input, message))
            return
        summary = str(event.get("summary") or "")
        turn.publish(events.permission_request(request_id, tool_name, tool_input, summary))
        self._timers[request_id] = asyncio.get_running_loop().call_later(
            self.timeout, self._timed_out, request_id
        )

    async def decide_served(
        self, tool_name: str, tool_input: Any, edits: EditMode = "ask", summary: str = ""
    ) -> str | None:
        """A call the server serves itself (a notebook tool): None if it may run, else the
        reason it may not, for the agent. ``edits``: an edit tool, with what the provider's
        settings say of file edits."""
        verdict = self.policy.decide(tool_name, tool_input)
        what = describe_call(tool_name, tool_input)
        if verdict.decision == "ask" and edits != "ask":
            verdict = Verdict(
                edits,
                "the provider's permission mode accepts edits"
                if edits == "allow"
                else "the provider's permission mode allows no edits",
            )
        if verdict.decision == "allow":
            return None
        if verdict.decision == "deny":
            message = f"Denied {what}: {verdict.reason}."
            self.turn.publish(events.permission_denied(tool_name, tool_input, message))
            return message
        request_id = f"served-{new_id()}"
        answer = self._served[request_id] = asyncio.get_running_loop().create_future()
        self.request(
            events.permission_request(request_id, tool_name, tool_input, summary),
            verdict=verdict,
        )
        try:
            allow, message = await answer
        finally:
            self._served.pop(request_id, None)
        return None if allow else (message or "The user denied this tool call.")

    def _deliver(self, request_id: str, allow: bool, message: str | None) -> bool:
        """Hand an answer to the provider's parser (or to a served call that waits for it);
        False if nobody knows the request."""
        served = self._served.get(request_id)
        if served is not None:
            if not served.done():
                served.set_result((allow, message))
            return True
        parser = self.turn.parser
        if parser is None:
            return False
        try:
            return parser.answer_permission(request_id, allow, "once", message)
        except Exception:
            log.exception("Could not answer permission request %s", request_id)
            return False

    def _resolve(
        self, request_id: str, allow: bool, scope: str, message: str | None, by: str
    ) -> bool:
        """Give a waiting question its answer; False if it is not waiting (any more)."""
        turn = self.turn
        record = turn.reply.permissions.get(request_id)
        if record is None or record.decision is not None or turn.finished:
            return False
        if allow:
            to_agent = None
        elif by == "timeout":
            to_agent = (
                f"Nobody answered within {self.timeout:g} seconds, so this tool call was "
                "denied. Do not retry it; tell the user what you needed."
            )
        else:
            to_agent = "The user denied this tool call" + (f": {message}" if message else ".")
        if not self._deliver(request_id, allow, to_agent):
            return False
        timer = self._timers.pop(request_id, None)
        if timer is not None:
            timer.cancel()
        self.last_answer = time.monotonic()
        turn.publish(
            events.permission_answered(
                request_id,
                "allow" if allow else "deny",
                "session" if scope == "session" else "once",
                message,
                "timeout" if by == "timeout" else "user",
            )
        )
        return True

    def _timed_out(self, request_id: str) -> None:
        self._timers.pop(request_id, None)
        record = self.turn.reply.permissions.get(request_id)
        if record is None or not self._resolve(request_id, False, "once", None, "timeout"):
            return
        what = describe_call(record.tool_name, record.input)
        self.turn.publish(
            events.notice(
                f"Nobody answered the request to use {what}"
                f" within {self.timeout:g} s, so it was denied "
                "(c.AssistantExtension.permission_timeout_seconds).",
                "warning",
            )
        )

    async def answer(self, request_id: str, allow: bool, scope: str, message: str | None) -> None:
        """The user's answer. NotFound if that question is not waiting."""
        record = self.turn.reply.permissions.get(request_id)
        if record is not None and record.decision is not None:
            raise NotFound(
                f"Permission request {request_id!r} is not waiting any more: it was answered "
                f"({record.decision}, by {record.by})."
            )
        if record is None or not self._resolve(request_id, allow, scope, message, "user"):
            raise NotFound(f"No permission request {request_id!r} is waiting in this session.")
        if scope == "session":
            remembered = self.policy.remember(record.tool_name, record.input, allow, message)
            await self._keep(remembered)

    async def _keep(self, answer: SessionAnswer) -> None:
        """Keep a "for this session" answer in the session, for the turns that follow."""
        approval = Approval(
            tool_name=answer.tool_name,
            pattern=answer.pattern,
            decision="allow" if answer.allow else "deny",
            message=answer.message,
        )

        def change(session: Session) -> None:
            key = (approval.tool_name, approval.pattern)
            session.approvals = [a for a in session.approvals if (a.tool_name, a.pattern) != key]
            session.approvals.append(approval)

        try:
            await self._edit_session(self.turn.session_id, change)
        except NotFound:
            pass  # the session was deleted meanwhile
        except Exception as exc:  # the answer was delivered; only its memory is lost
            log.warning("Could not store a session approval of turn %s: %s", self.turn.id, exc)
            self.turn.publish(
                events.notice(
                    f"Your answer applies to this turn only: it could not be saved ({exc}).",
                    "warning",
                )
            )

    def close(self) -> None:
        """The turn ends: no more timeouts; open questions are marked as ended with it."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for waiting in self._served.values():
            if not waiting.done():
                waiting.set_result((False, "The turn ended before this call was answered."))
        self.turn.reply.end_unanswered()
