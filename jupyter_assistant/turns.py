"""TurnRunner: a user message -> the provider process -> normalized events -> the store.

One turn at a time per session, across processes: the turn claims the session's process record
under the session's store lock, so a kernel and the server cannot both start one. Events go to an
in-memory buffer with sequence numbers, so a client that reconnects with ``Last-Event-ID`` misses
nothing. The final assistant message is stored before the terminal event is published, so a
client that reads the session after ``done`` sees the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import Busy, Forbidden, InsufficientStorage, NotFound
from .journal import EventJournal
from .models import (
    Approval,
    Message,
    PermissionRecord,
    Session,
    ToolCall,
    TurnError,
    Usage,
    new_id,
)
from .permissions import READ_ONLY_TOOLS, PermissionPolicy, SessionAnswer
from .processes import ProcessRecord, ProcessRegistry, spawn, terminate_tree_async
from .providers import ProviderRegistry
from .providers.base import (
    TERMINAL_EVENTS,
    Event,
    LaunchSpec,
    Provider,
    ProviderUnavailable,
    TurnRequest,
    provider_environment,
)
from .session_layout import MessageLog
from .store import SessionStore
from .workdir import working_dir_problem

log = logging.getLogger(__name__)

STDERR_TAIL_BYTES = 4096
# Events kept per turn for reconnecting clients; text deltas are coalesced, so only a provider
# gone wrong gets near this.
MAX_TURN_EVENTS = 100_000
TITLE_CHARS = 80
# After the provider's final result, how long it may take to exit before it is stopped.
EXIT_AFTER_RESULT_SECONDS = 10.0
# In the store: files a launch must keep off the command line (0700 folder, 0600 files).
PRIVATE_DIR = "private"


@dataclass
class RunnerSettings:
    cancel_grace_seconds: float = 3.0
    turn_timeout_seconds: float = 3600.0
    idle_timeout_seconds: float = 600.0
    max_concurrent_turns: int = 16
    max_line_bytes: int = 8 * 1024 * 1024
    provider_env: dict[str, str] = field(default_factory=dict)
    # How long a finished turn's events stay in memory for clients that reconnect late.
    finished_turn_ttl_seconds: float = 600.0
    # How often the partial reply of a running turn is saved (0 disables).
    checkpoint_interval_seconds: float = 2.0
    # Largest reply text a turn may produce; a provider printing endlessly is stopped.
    max_reply_bytes: int = 10 * 1024 * 1024
    # Admin policy: a session's total reported cost may not pass this (None: no cap).
    max_session_cost_usd: float | None = None
    # Tool approval (permissions.py): a question unanswered this long is denied.
    permission_timeout_seconds: float = 300.0
    permission_allowed_tools: tuple[str, ...] = READ_ONLY_TOOLS
    permission_denied_tools: tuple[str, ...] = ()
    permission_extra_dirs: tuple[str, ...] = ()
    # Also write each turn's events to a journal in the store (journal.py): set in kernels, so
    # that the server can stream their turns to the sidebar.
    journal_events: bool = False
    # The server root: each turn re-checks that the session's folder is still inside it (None
    # in a kernel that does not know the root: the folder must still resolve to itself).
    root_dir: str | None = None


class Turn:
    """One running (or finished) turn and its event buffer."""

    def __init__(self, session_id: str, turn_id: str, provider: str) -> None:
        self.session_id = session_id
        self.id = turn_id
        self.provider = provider
        self.events: list[Event] = []
        self.finished = False
        self.cancel_requested = False
        self.end_reason: str | None = None  # "cancelled" | "timeout" | "shutdown" | "oversize"
        self.task: asyncio.Task[None] | None = None
        self.record: ProcessRecord | None = None
        self.parser: Any = None  # the running provider attempt's parser, while it runs
        self.process: asyncio.subprocess.Process | None = None
        self.started = time.monotonic()
        self._changed = asyncio.Event()
        # The reply being built
        self.reply_id = new_id()
        self.text_parts: list[str] = []
        self.text_bytes = 0
        self.tools: dict[str, ToolCall] = {}
        self.usage = Usage()
        self.notices: list[str] = []
        self.changed_since_checkpoint = False
        self.cost_before = 0.0  # the session's cost when the turn started (for the cost cap)
        self.overflow: Event | None = None
        self.stopper: asyncio.Future[None] | None = None
        # Tool approval: the policy, the questions asked (by request id) and their timers.
        self.policy: PermissionPolicy | None = None
        self.permissions: dict[str, PermissionRecord] = {}
        self.permission_timers: dict[str, asyncio.TimerHandle] = {}
        self.last_answer = self.started
        self.journal: EventJournal | None = None  # see RunnerSettings.journal_events

    def waiting_for_answer(self) -> bool:
        return any(record.decision is None for record in self.permissions.values())

    def reply(self, status: str, error: TurnError | None = None) -> Message:
        return Message(
            id=self.reply_id,
            role="assistant",
            content="".join(self.text_parts),
            turn_id=self.id,
            status=status,  # type: ignore[arg-type]
            tools=[call.model_copy() for call in self.tools.values()],
            usage=self.usage.model_copy(),
            error=error,
            notices=list(self.notices),
            permissions=[record.model_copy() for record in self.permissions.values()],
        )

    def publish(self, event: Event) -> None:
        self.events.append(event)
        if self.journal is not None:
            self.journal.write(event)
        if event["type"] in TERMINAL_EVENTS:
            self.finished = True
            if self.journal is not None:
                self.journal.close()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def event_id(self, seq: int) -> str:
        return f"{self.id}:{seq}"

    async def next_batch(
        self, after: int, timeout: float | None = None
    ) -> list[tuple[int, Event]] | None:
        """Events after sequence number ``after`` (seqs start at 1), waiting up to ``timeout``
        for some: ``[]`` on timeout, ``None`` once the turn is over and everything was read."""
        while True:
            if after < len(self.events):
                return [(i + 1, self.events[i]) for i in range(after, len(self.events))]
            if self.finished:
                return None
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), timeout)
            except asyncio.TimeoutError:
                return []

    async def follow(self, after: int = 0) -> AsyncIterator[list[tuple[int, Event]]]:
        """Yield batches of ``(seq, event)`` after ``after`` until the turn is over."""
        while True:
            batch = await self.next_batch(after)
            if batch is None:
                return
            after = batch[-1][0]
            yield batch


def _stderr_collector(limit: int) -> tuple[bytearray, Callable[[bytes], None]]:
    buffer = bytearray()

    def add(chunk: bytes) -> None:
        buffer.extend(chunk)
        if len(buffer) > limit:
            del buffer[: len(buffer) - limit]

    return buffer, add


class TurnRunner:
    def __init__(
        self,
        store: SessionStore,
        registry: ProcessRegistry,
        providers: ProviderRegistry,
        settings: RunnerSettings,
    ) -> None:
        self.store = store
        self.registry = registry
        self.providers = providers
        self.settings = settings
        self.turns: dict[str, Turn] = {}  # latest turn per session, in this process

    # -- queries ---------------------------------------------------------------------------

    def latest(self, session_id: str) -> Turn | None:
        return self.turns.get(session_id)

    def running_here(self) -> list[Turn]:
        return [turn for turn in self.turns.values() if not turn.finished]

    def is_running(self, session_id: str) -> bool:
        turn = self.turns.get(session_id)
        if turn is not None and not turn.finished:
            return True
        return self.registry.is_running(session_id)

    # -- starting a turn -------------------------------------------------------------------

    async def start(
        self,
        session_id: str,
        content: str,
        context: dict[str, Any] | None = None,
        model: str | None = None,
    ) -> Turn:
        current = self.turns.get(session_id)
        if current is not None and not current.finished:
            raise Busy("A turn is already running for this session; cancel it or wait.")
        if len(self.running_here()) >= self.settings.max_concurrent_turns:
            raise Busy(
                f"{self.settings.max_concurrent_turns} turns are running already "
                "(c.AssistantExtension.max_concurrent_turns); wait for one to finish."
            )
        turn_id = new_id()
        # Registered before the first await, so a second request in this process sees it.
        turn = Turn(session_id, turn_id, provider="")
        self.turns[session_id] = turn
        try:
            session = await asyncio.to_thread(self._claim, session_id, turn_id, content, context)
        except BaseException:
            if self.turns.get(session_id) is turn:
                if current is not None:
                    self.turns[session_id] = current
                else:
                    del self.turns[session_id]
            raise
        turn.provider = session.provider
        turn.cost_before = session.usage.cost_usd
        if self.settings.journal_events:
            turn.journal = await asyncio.to_thread(
                EventJournal.open, self.store.root, session_id, turn_id
            )
        turn.task = asyncio.create_task(self._run(turn, model), name=f"assistant-turn-{turn_id}")
        return turn

    def _claim(
        self, session_id: str, turn_id: str, content: str, context: dict[str, Any] | None
    ) -> Session:
        """Under the session's lock: refuse if a turn runs anywhere, else store the pending
        message and a process record that marks the session as running."""

        def change(session: Session) -> None:
            existing = self.registry.read(session_id)
            if existing is not None and existing.owner_alive():
                raise Busy("A turn is already running for this session; cancel it or wait.")
            if existing is not None:
                self.registry.clear(session_id)
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

    # -- running a turn --------------------------------------------------------------------

    async def _run(self, turn: Turn, model: str | None) -> None:
        terminal: Event | None = None
        provider_session_id: str | None = None
        resume_notice_given = False
        checkpointer: asyncio.Task[None] | None = None
        try:
            turn.publish({"type": "turn_started", "turn_id": turn.id, "provider": turn.provider})
            session, prompt = await asyncio.to_thread(self.store.edit, turn.session_id, _start_turn)
            provider_session_id = session.provider_session_id
            turn.policy = self._policy(session)
            if self.settings.checkpoint_interval_seconds > 0:
                checkpointer = asyncio.create_task(self._checkpoint_loop(turn))
            while True:
                request = TurnRequest(
                    session_id=session.id,
                    turn_id=turn.id,
                    prompt=prompt.content,
                    working_dir=session.working_dir,
                    notebook_path=session.path,
                    provider_session_id=provider_session_id,
                    context=prompt.context,
                    model=model,
                    scratch_dir=str(self.store.root / PRIVATE_DIR),
                )
                terminal, new_provider_session_id, resume_failed = await self._attempt(
                    turn, request
                )
                if new_provider_session_id:
                    provider_session_id = new_provider_session_id
                if resume_failed and request.provider_session_id and not resume_notice_given:
                    # The provider lost the conversation (e.g. its history was cleared or the
                    # notebook moved): start a new one rather than fail the user's turn.
                    resume_notice_given = True
                    provider_session_id = None
                    notice = (
                        "The earlier conversation could not be resumed by the provider; "
                        "this turn starts a new one."
                    )
                    turn.notices.append(notice)
                    turn.publish({"type": "notice", "level": "warning", "message": notice})
                    continue
                break
        except ProviderUnavailable as exc:
            terminal = {"type": "error", "code": exc.code, "message": exc.message}
        except asyncio.CancelledError:
            terminal = {"type": "cancelled"}
            turn.end_reason = turn.end_reason or "cancelled"
        except Exception as exc:
            log.exception("Assistant turn %s failed", turn.id)
            terminal = {
                "type": "error",
                "code": "internal_error",
                "message": f"The assistant failed unexpectedly: {exc}. See the server log.",
            }
        finally:
            if checkpointer is not None:
                checkpointer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await checkpointer
            if turn.record is not None:
                # Nothing the turn started may outlive it.
                with contextlib.suppress(Exception):
                    await terminate_tree_async(turn.record, self.settings.cancel_grace_seconds)
            if terminal is None:
                terminal = {"type": "error", "code": "internal_error", "message": "No result."}
            await self._finish(turn, terminal, provider_session_id)

    async def _attempt(self, turn: Turn, request: TurnRequest) -> tuple[Event, str | None, bool]:
        """Run the provider once. Returns (terminal event, provider session id, resume failed)."""
        provider = self.providers.get(turn.provider)
        base_env = provider_environment(self.settings.provider_env)
        launch = provider.build_launch(request, base_env)
        try:
            return await self._run_launch(turn, request, provider, launch)
        finally:
            # Private files of the launch (e.g. the system prompt with the notebook's context).
            for path in launch.cleanup:
                with contextlib.suppress(OSError):
                    os.unlink(path)

    async def _run_launch(
        self, turn: Turn, request: TurnRequest, provider: Provider, launch: LaunchSpec
    ) -> tuple[Event, str | None, bool]:
        parser = provider.create_parser(request)
        # Confinement is re-checked right before the spawn: the folder may have been swapped
        # for a symlink that leads out of the root since the session was created.
        problem = await asyncio.to_thread(
            working_dir_problem, launch.cwd or request.working_dir, self.settings.root_dir
        )
        if problem is not None:
            raise ProviderUnavailable("unsafe_working_dir", problem)
        try:
            proc = await spawn(
                launch.argv,
                cwd=launch.cwd or request.working_dir,
                env=launch.env,
                turn_id=turn.id,
                # interactive providers talk on stdin even when there is nothing to send first
                stdin=launch.stdin is not None or parser.interactive,
            )
        except OSError as exc:
            code = "provider_not_found" if isinstance(exc, FileNotFoundError) else "provider_failed"
            raise ProviderUnavailable(
                code, f"Could not start {launch.argv[0]}: {exc.strerror or exc}"
            ) from exc
        # The record is known in memory before anything can interrupt this coroutine (a stop
        # at exit, stop_now, finds the provider through it even if its file is not written yet).
        turn.record = self.registry.new_record(
            turn.session_id, turn.id, proc.pid, provider.interrupt_signal
        )
        try:
            await asyncio.to_thread(self.registry.write, turn.record)
        except BaseException:
            await terminate_tree_async(turn.record, self.settings.cancel_grace_seconds)
            raise
        stderr_buffer, add_stderr = _stderr_collector(STDERR_TAIL_BYTES)
        stderr_task = asyncio.create_task(_drain(proc.stderr, add_stderr))
        turn.parser = parser
        turn.process = proc
        if parser.interactive:
            stdin_task = asyncio.create_task(asyncio.sleep(0))
            parser.start(StdinWriter(proc))
        else:
            stdin_task = asyncio.create_task(_feed_stdin(proc, launch.stdin))
        pump = _Pump(turn, parser, self._handle, self.settings.max_line_bytes)
        pump_task = asyncio.create_task(pump.run(proc.stdout))
        watchdog = asyncio.create_task(self._watchdog(turn, pump, pump_task))
        try:
            if turn.cancel_requested or await asyncio.to_thread(
                self.registry.cancel_requested, turn.session_id, turn.id
            ):
                turn.cancel_requested = True
                await self._terminate(turn)
            # Wait for the end of output, or for the final result: a process the provider left
            # behind may hold stdout open long after the provider is done.
            terminal_wait = asyncio.create_task(pump.terminal_seen.wait())
            await asyncio.wait({pump_task, terminal_wait}, return_when=asyncio.FIRST_COMPLETED)
            terminal_wait.cancel()
            if pump.overflow is not None:
                await self._terminate(turn)
            if pump.terminal is not None:
                # The result is in; give the process a moment to exit on its own.
                try:
                    await asyncio.wait_for(proc.wait(), EXIT_AFTER_RESULT_SECONDS)
                except asyncio.TimeoutError:
                    await self._terminate(turn)
            returncode = await proc.wait()
            for task in (pump_task, stderr_task):
                # Drain what the pipes still hold; stop waiting if something else holds them.
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(task), 2.0)
        finally:
            turn.parser = None
            for task in (stdin_task, stderr_task, pump_task, watchdog):
                task.cancel()
            if proc.returncode is None:
                await self._terminate(turn)
        if not turn.cancel_requested and await asyncio.to_thread(
            self.registry.cancel_requested, turn.session_id, turn.id
        ):
            turn.cancel_requested = True  # cancelled from another process
        stderr_tail = stderr_buffer.decode(errors="replace")
        session_id = parser.provider_session_id
        if turn.cancel_requested:
            return {"type": "cancelled"}, session_id, False
        if pump.timeout is not None:
            return pump.timeout, session_id, False
        if pump.overflow is not None:
            return pump.overflow, session_id, False
        finished_anyway = pump.terminal is not None and pump.terminal["type"] == "done"
        if turn.overflow is not None and turn.overflow["code"] == "cost_limit" and finished_anyway:
            # The cost came with the final result: the reply is whole; the next turn is refused.
            notice = turn.overflow["message"].replace("the turn was stopped", "no further turns")
            turn.notices.append(notice)
            turn.publish({"type": "notice", "level": "warning", "message": notice})
        elif turn.overflow is not None:
            return turn.overflow, session_id, False
        final = pump.terminal
        if final is None:
            for event in parser.finish(returncode, stderr_tail):
                if event["type"] in TERMINAL_EVENTS:
                    final = event
                else:
                    self._handle(turn, event)
        if final is None:
            final = {
                "type": "error",
                "code": "provider_failed",
                "message": f"The provider exited with code {returncode} without a result.",
            }
        # Read after finish(): some CLIs report a lost conversation only by exit code/stderr.
        resume_failed = parser.resume_failed
        session_id = parser.provider_session_id or session_id
        return final, session_id, resume_failed

    async def _watchdog(self, turn: Turn, pump: _Pump, pump_task: asyncio.Task[None]) -> None:
        """Stop the provider when it is silent too long or the turn runs too long."""
        settings = self.settings
        deadline = turn.started + settings.turn_timeout_seconds
        while not pump_task.done():
            now = time.monotonic()
            # A provider waiting for the user's answer is silent by design: not idle.
            active = now if turn.waiting_for_answer() else max(pump.last_output, turn.last_answer)
            idle_at = active + settings.idle_timeout_seconds
            if now >= deadline or now >= idle_at:
                pump.timeout = self._timeout_event(turn, idle=now < deadline)
                await self._terminate(turn)
                # Output held open by something we could not stop must not hang the turn.
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(pump_task), 2.0)
                pump_task.cancel()
                return
            await asyncio.sleep(min(deadline, idle_at) - now)

    def _timeout_event(self, turn: Turn, *, idle: bool) -> Event:
        turn.end_reason = "timeout"
        if idle:
            message = (
                f"The provider produced no output for {self.settings.idle_timeout_seconds:g} s and "
                "was stopped. Raise c.AssistantExtension.idle_timeout_seconds if it needs longer."
            )
        else:
            message = (
                f"The turn took longer than {self.settings.turn_timeout_seconds:g} s and was "
                "stopped. Raise c.AssistantExtension.turn_timeout_seconds if it needs longer."
            )
        return {"type": "error", "code": "timeout", "message": message}

    def _handle(self, turn: Turn, event: Event) -> None:
        """Fold a non-terminal event into the reply being built, then publish it."""
        etype = event["type"]
        turn.changed_since_checkpoint = True
        if len(turn.events) >= MAX_TURN_EVENTS:
            self._overflow(
                turn, f"The turn produced over {MAX_TURN_EVENTS} events; it was stopped."
            )
            return
        if etype == "text":
            turn.text_bytes += len(event["text"])
            if turn.text_bytes > self.settings.max_reply_bytes:
                # Bounded memory against a provider that prints without end.
                self._overflow(
                    turn,
                    f"The reply grew past {self.settings.max_reply_bytes} characters; "
                    "the turn was stopped (c.AssistantExtension.max_reply_bytes).",
                )
                return
            turn.text_parts.append(event["text"])
        elif etype == "tool_use":
            turn.tools[event["id"]] = ToolCall(
                id=event["id"],
                name=event["name"],
                input=event.get("input"),
                text_offset=sum(map(len, turn.text_parts)),
            )
        elif etype == "tool_result":
            call = turn.tools.get(event["id"])
            if call is None:
                call = turn.tools[event["id"]] = ToolCall(id=event["id"], name="")
            call.result = event.get("content")
            call.is_error = bool(event.get("is_error"))
        elif etype == "usage":
            turn.usage = Usage(
                input_tokens=int(event.get("input_tokens") or 0),
                output_tokens=int(event.get("output_tokens") or 0),
                cost_usd=float(event.get("cost_usd") or 0.0),
            )
            cap = self.settings.max_session_cost_usd
            if cap is not None and turn.cost_before + turn.usage.cost_usd > cap:
                turn.publish(event)
                self._overflow(
                    turn,
                    f"This conversation passed its cost limit of ${cap:g} "
                    "(c.AssistantExtension.max_session_cost_usd); the turn was stopped.",
                    code="cost_limit",
                )
                return
        elif etype == "permission_denied":
            turn.notices.append(str(event.get("message", "")))
        elif etype == "permission_request":
            self._permission_request(turn, event)
            return
        turn.publish(event)

    async def _interrupt(self, turn: Turn, timeout: float) -> None:
        """Ask an interactive provider to stop through its protocol, and give it ``timeout``
        seconds to do so before signals."""
        parser, proc = turn.parser, turn.process
        interrupt = getattr(parser, "interrupt", None)
        if interrupt is None or proc is None or proc.returncode is not None:
            return
        try:
            if not interrupt():
                return
        except Exception:
            log.exception("Provider interrupt failed for turn %s", turn.id)
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), timeout)

    # -- tool approval -------------------------------------------------------------------------

    def _policy(self, session: Session) -> PermissionPolicy:
        settings = self.settings
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

    def _permission_request(self, turn: Turn, event: Event) -> None:
        """The agent asks to use a tool: the policy decides, or the user is asked."""
        request_id = str(event.get("request_id", ""))
        tool_name = str(event.get("tool_name", ""))
        tool_input = event.get("input")
        policy = turn.policy or PermissionPolicy(working_dir=os.getcwd())
        verdict = policy.decide(tool_name, tool_input, event.get("paths") or ())
        what = _describe_call(tool_name, tool_input)
        if verdict.decision == "allow":
            if self._deliver(turn, request_id, True, None):
                message = f"Allowed {what}: {verdict.reason}."
                turn.notices.append(message)
                turn.publish({"type": "notice", "level": "info", "message": message})
            return
        if verdict.decision == "deny":
            message = f"Denied {what}: {verdict.reason}."
            if self._deliver(turn, request_id, False, message):
                denied = {"type": "permission_denied", "tool_name": tool_name}
                self._handle(turn, {**denied, "input": tool_input, "message": message})
            return
        record = PermissionRecord(
            request_id=request_id,
            tool_name=tool_name,
            input=tool_input,
            summary=str(event.get("summary") or ""),
        )
        turn.permissions[request_id] = record
        turn.changed_since_checkpoint = True
        turn.publish(
            {
                "type": "permission_request",
                "request_id": request_id,
                "tool_name": tool_name,
                "input": tool_input,
                "summary": record.summary,
            }
        )
        turn.permission_timers[request_id] = asyncio.get_running_loop().call_later(
            self.settings.permission_timeout_seconds, self._permission_timeout, turn, request_id
        )

    def _deliver(self, turn: Turn, request_id: str, allow: bool, message: str | None) -> bool:
        """Hand an answer to the provider's parser; False if it does not know the request."""
        answer = getattr(turn.parser, "answer_permission", None)
        if answer is None:
            return False
        try:
            return bool(answer(request_id, allow, "once", message))
        except Exception:
            log.exception("Could not answer permission request %s", request_id)
            return False

    def _resolve(
        self, turn: Turn, request_id: str, allow: bool, scope: str, message: str | None, by: str
    ) -> bool:
        """Give a waiting question its answer; False if it is not waiting (any more)."""
        record = turn.permissions.get(request_id)
        if record is None or record.decision is not None or turn.finished:
            return False
        if allow:
            to_agent = None
        elif by == "timeout":
            to_agent = (
                f"Nobody answered within {self.settings.permission_timeout_seconds:g} seconds, "
                "so this tool call was denied. Do not retry it; tell the user what you needed."
            )
        else:
            to_agent = "The user denied this tool call" + (f": {message}" if message else ".")
        if not self._deliver(turn, request_id, allow, to_agent):
            return False
        timer = turn.permission_timers.pop(request_id, None)
        if timer is not None:
            timer.cancel()
        record.decision = "allow" if allow else "deny"
        record.scope = "session" if scope == "session" else "once"
        record.message = message
        record.by = "timeout" if by == "timeout" else "user"
        turn.last_answer = time.monotonic()
        turn.changed_since_checkpoint = True
        turn.publish(
            {
                "type": "permission_answered",
                "request_id": request_id,
                "decision": record.decision,
                "scope": record.scope,
                "message": message,
                "by": record.by,
            }
        )
        return True

    def _permission_timeout(self, turn: Turn, request_id: str) -> None:
        turn.permission_timers.pop(request_id, None)
        record = turn.permissions.get(request_id)
        if record is None or not self._resolve(turn, request_id, False, "once", None, "timeout"):
            return
        notice = (
            f"Nobody answered the request to use {_describe_call(record.tool_name, record.input)}"
            f" within {self.settings.permission_timeout_seconds:g} s, so it was denied "
            "(c.AssistantExtension.permission_timeout_seconds)."
        )
        turn.notices.append(notice)
        turn.publish({"type": "notice", "level": "warning", "message": notice})

    async def answer_permission(
        self, session_id: str, request_id: str, allow: bool, scope: str, message: str | None
    ) -> None:
        turn = self.turns.get(session_id)
        if turn is None or turn.finished:
            if self.registry.is_running(session_id):
                raise Busy(
                    "The turn runs in another process (a %%assistant cell in a kernel); "
                    "answer its question there."
                )
            raise Busy("No turn is running for this session, so there is nothing to answer.")
        record = turn.permissions.get(request_id)
        if record is not None and record.decision is not None:
            raise NotFound(
                f"Permission request {request_id!r} is not waiting any more: it was answered "
                f"({record.decision}, by {record.by})."
            )
        if record is None or not self._resolve(turn, request_id, allow, scope, message, "user"):
            raise NotFound(f"No permission request {request_id!r} is waiting in this session.")
        if scope == "session" and turn.policy is not None:
            remembered = turn.policy.remember(record.tool_name, record.input, allow, message)
            await self._store_answer(turn, remembered)

    async def _store_answer(self, turn: Turn, answer: SessionAnswer) -> None:
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
            await asyncio.to_thread(self.store.edit, turn.session_id, change)
        except NotFound:
            pass  # the session was deleted meanwhile
        except Exception as exc:  # the answer was delivered; only its memory is lost
            log.warning("Could not store a session approval of turn %s: %s", turn.id, exc)
            notice = f"Your answer applies to this turn only: it could not be saved ({exc})."
            turn.notices.append(notice)
            turn.publish({"type": "notice", "level": "warning", "message": notice})

    async def _terminate(self, turn: Turn, grace: float | None = None) -> None:
        if turn.record is not None:
            if grace is None:
                grace = self.settings.cancel_grace_seconds
            await terminate_tree_async(turn.record, grace)

    async def _finish(self, turn: Turn, terminal: Event, provider_session_id: str | None) -> None:
        """Store the reply, release the session, then publish the terminal event."""
        ttype = terminal["type"]
        for timer in turn.permission_timers.values():
            timer.cancel()
        turn.permission_timers.clear()
        for record in turn.permissions.values():
            if record.decision is None:
                record.by = "ended"
        if turn.end_reason == "shutdown":
            status = "interrupted"
        elif ttype == "done":
            status = "complete"
        elif ttype == "cancelled":
            status = "cancelled"
        else:
            status = "error"
        error = (
            TurnError(code=terminal["code"], message=terminal["message"])
            if ttype == "error"
            else None
        )
        reply = turn.reply(status, error)

        def change(session: Session) -> None:
            if session.pending_message is not None and session.pending_message.turn_id == turn.id:
                session.messages.append(session.pending_message)
                session.pending_message = None
            put_reply(session, reply)
            if provider_session_id:
                session.provider_session_id = provider_session_id
            session.usage.add(turn.usage)

        try:
            await asyncio.to_thread(self.store.edit, turn.session_id, change)
        except NotFound:
            pass  # the session was deleted during the turn
        except Exception as exc:
            log.exception("Could not store the reply of turn %s", turn.id)
            # Never report success for a reply that is not stored: end with an error, and keep
            # what still fits (at least the provider's conversation, so the next turn resumes).
            terminal = await self._store_what_fits(turn, reply, provider_session_id, exc)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.registry.clear, turn.session_id, turn.id)
            turn.publish(terminal)
            asyncio.get_running_loop().call_later(
                self.settings.finished_turn_ttl_seconds, self._forget, turn
            )

    async def _store_what_fits(
        self, turn: Turn, reply: Message, provider_session_id: str | None, exc: Exception
    ) -> Event:
        """After the full reply could not be stored: store a short one (no text or tool output,
        with the error), or else only the provider's session id. Returns the error event."""
        full = isinstance(exc, InsufficientStorage)
        code = "storage_full" if full else "storage_failed"
        kept = (
            "The provider's conversation is kept, so the next message continues it."
            if provider_session_id
            else ""
        )
        message = f"The reply could not be stored: {exc} {kept}".strip()
        error = TurnError(code=code, message=message)
        short = reply.model_copy(update={"content": "", "tools": [], "status": "error"})
        short.error = error

        def keep_reply(session: Session) -> None:
            if session.pending_message is not None and session.pending_message.turn_id == turn.id:
                session.messages.append(session.pending_message)
                session.pending_message = None
            put_reply(session, short)
            keep_provider_session(session)

        def keep_provider_session(session: Session) -> None:
            if provider_session_id:
                session.provider_session_id = provider_session_id
            session.usage.add(turn.usage)

        for attempt in (keep_reply, keep_provider_session):
            try:
                await asyncio.to_thread(self.store.edit, turn.session_id, attempt)
                break
            except NotFound:
                break
            except Exception as again:
                log.warning("Could not store even part of turn %s: %s", turn.id, again)
        return {"type": "error", "code": code, "message": message}

    def _overflow(self, turn: Turn, message: str, code: str = "provider_failed") -> None:
        if turn.overflow is None:
            turn.overflow = {"type": "error", "code": code, "message": message}
            if turn.process is not None and turn.record is not None:
                turn.stopper = asyncio.ensure_future(self._terminate(turn))

    async def _checkpoint_loop(self, turn: Turn) -> None:
        """Save the partial reply now and then: other processes (the sidebar polling a kernel's
        turn) see it grow, and a crash of this process loses at most one interval."""
        interval = self.settings.checkpoint_interval_seconds
        while True:
            await asyncio.sleep(interval)
            if not turn.changed_since_checkpoint:
                continue
            turn.changed_since_checkpoint = False
            reply = turn.reply("streaming")
            try:
                await asyncio.to_thread(
                    self.store.edit, turn.session_id, functools.partial(put_reply, reply=reply)
                )
            except NotFound:
                return
            except Exception as exc:  # a failed checkpoint must not end the turn
                log.warning("Could not save the partial reply of turn %s: %s", turn.id, exc)

    def _forget(self, turn: Turn) -> None:
        """Drop a finished turn's event buffer (the session file keeps the reply)."""
        if self.turns.get(turn.session_id) is turn and turn.finished:
            del self.turns[turn.session_id]

    # -- cancel, shutdown, orphans -----------------------------------------------------------

    async def cancel(self, session_id: str, reason: str = "cancelled") -> bool:
        """Stop the session's running turn, wherever it runs. True if there was one."""
        turn = self.turns.get(session_id)
        if turn is not None and not turn.finished:
            turn.cancel_requested = True
            turn.end_reason = turn.end_reason or reason
            grace = self.settings.cancel_grace_seconds
            started = time.monotonic()
            if reason != "shutdown":
                # A graceful stop first, for half the grace period, so that the interrupt,
                # SIGTERM and SIGKILL together take cancel_grace_seconds; at shutdown there is
                # no time for it (signals at once).
                await self._interrupt(turn, grace / 2)
            if turn.record is not None:
                await self._terminate(turn, max(0.0, grace - (time.monotonic() - started)))
            elif turn.task is not None and reason == "shutdown":
                turn.task.cancel()
            if turn.task is not None:
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(
                        asyncio.shield(turn.task), self.settings.cancel_grace_seconds + 5
                    )
            return True
        record = await asyncio.to_thread(self.registry.read, session_id)
        if record is None:
            return False
        if record.owner_alive():
            # Another process (a kernel running a magic) owns the turn: flag it, then stop it.
            await asyncio.to_thread(self.registry.request_cancel, session_id, record.turn_id)
            await terminate_tree_async(record, self.settings.cancel_grace_seconds)
            return True
        await self._reap(record)
        return True

    async def shutdown(self) -> None:
        turns = self.running_here()
        await asyncio.gather(
            *(self.cancel(turn.session_id, reason="shutdown") for turn in turns),
            return_exceptions=True,
        )

    async def reap_orphans(self) -> int:
        """Terminate what dead owners left running; mark their turns interrupted."""
        records = await asyncio.to_thread(self.registry.orphans)
        for record in records:
            await self._reap(record)
        await asyncio.to_thread(self._sweep_private_files)
        return len(records)

    def _sweep_private_files(self, older_than_seconds: float = 3600.0) -> None:
        """Private launch files a killed server or kernel could not remove (a CLI reads its
        file as it starts, so an hour-old one is no longer needed)."""
        cutoff = time.time() - older_than_seconds
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.store.root / PRIVATE_DIR):
                with contextlib.suppress(OSError):
                    if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)

    async def _reap(self, record: ProcessRecord) -> None:
        log.warning(
            "Reaping the provider of turn %s (session %s): its owner process %s is gone",
            record.turn_id,
            record.session_id,
            record.owner_pid,
        )
        with contextlib.suppress(Exception):
            await terminate_tree_async(record, self.settings.cancel_grace_seconds)

        def change(session: Session) -> None:
            mark_interrupted(session, record.turn_id)

        try:
            await asyncio.to_thread(self.store.update, record.session_id, change)
        except NotFound:
            pass
        except Exception:
            log.exception("Could not mark turn %s as interrupted", record.turn_id)
        await asyncio.to_thread(self.registry.clear, record.session_id, record.turn_id)


def _describe_call(tool_name: str, tool_input: Any) -> str:
    """``Write (notes.txt)``: a tool call in a few words, for notices."""
    detail = ""
    if isinstance(tool_input, dict):
        for key in ("command", "file_path", "path", "notebook_path", "url", "pattern"):
            if isinstance(tool_input.get(key), str):
                detail = tool_input[key]
                break
    detail = " ".join(detail.split())
    if len(detail) > 120:
        detail = detail[:119] + "…"
    return f"{tool_name} ({detail})" if detail else tool_name or "a tool"


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


def _start_turn(session: Session) -> Message:
    """Move the pending user message into the history as the turn starts; returns it."""
    prompt = session.pending_message
    if prompt is None:
        raise NotFound("The message to answer is gone (the session changed).")
    session.messages.append(prompt)
    session.pending_message = None
    return prompt


def mark_interrupted(session: Session, turn_id: str) -> None:
    """The owner of ``turn_id`` died: keep what was stored and say the turn was interrupted."""
    if session.pending_message is not None and session.pending_message.turn_id == turn_id:
        session.messages.append(session.pending_message)
        session.pending_message = None
    if any(m.turn_id == turn_id and m.role == "assistant" for m in session.messages):
        for message in session.messages:
            if message.turn_id == turn_id and message.role == "assistant":
                message.status = "interrupted"
                message.error = TurnError(
                    code="interrupted",
                    message="The process running this turn stopped before it finished; "
                    "the reply is kept as far as it was saved.",
                )
        return
    if any(m.turn_id == turn_id for m in session.messages):
        session.messages.append(
            Message(
                role="assistant",
                content="",
                turn_id=turn_id,
                status="interrupted",
                error=TurnError(
                    code="interrupted",
                    message="The process running this turn stopped before it finished.",
                ),
            )
        )


COALESCED = frozenset({"text", "thinking"})


class _Pump:
    """Reads provider stdout in chunks, splits lines, feeds the parser. Chunked reads keep the
    per-event cost low when a provider streams thousands of small deltas, and the deltas that
    arrive together are coalesced into one event (clients see the same text, in fewer events,
    and the turn's event buffer stays small however fast the provider prints)."""

    def __init__(
        self,
        turn: Turn,
        parser: Any,
        handle: Callable[[Turn, Event], None],
        max_line_bytes: int,
    ) -> None:
        self.turn = turn
        self.parser = parser
        self.handle = handle
        self.max_line_bytes = max_line_bytes
        self.last_output = time.monotonic()
        self.terminal: Event | None = None
        self.terminal_seen = asyncio.Event()
        self.timeout: Event | None = None
        self.overflow: Event | None = None

    async def run(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        pending = b""
        while True:
            chunk = await stream.read(262144)
            if not chunk:
                if pending:
                    self._handle_all(self.parser.feed(pending))
                return
            self.last_output = time.monotonic()
            data = pending + chunk if pending else chunk
            start = 0
            batch: list[Event] = []
            while True:
                end = data.find(b"\n", start)
                if end < 0:
                    break
                batch.extend(self.parser.feed(data[start:end]))
                start = end + 1
            self._handle_all(batch)
            pending = data[start:]
            if len(pending) > self.max_line_bytes:
                self.overflow = {
                    "type": "error",
                    "code": "provider_failed",
                    "message": (
                        f"The provider printed a line longer than {self.max_line_bytes} bytes; "
                        "the turn was stopped (c.AssistantExtension.max_line_bytes)."
                    ),
                }
                return

    def _handle_all(self, events: list[Event]) -> None:
        merged: Event | None = None
        for event in events:
            if self.terminal is not None:
                # The first result stands: what a provider prints while it is being stopped
                # afterwards (an "interrupted" result, its usage) changes nothing.
                break
            kind = event["type"]
            if merged is not None and kind == merged["type"] and kind in COALESCED:
                merged["text"] += event["text"]
                continue
            if merged is not None:
                self.handle(self.turn, merged)
                merged = None
            if kind in COALESCED:
                merged = dict(event)
            elif kind in TERMINAL_EVENTS:
                self.terminal = event
                self.terminal_seen.set()
            else:
                self.handle(self.turn, event)
        if merged is not None:
            self.handle(self.turn, merged)


class StdinWriter:
    """Writes to the provider's stdin for interactive providers; a closed pipe is ignored
    (the process has exited, and its exit is handled where its output ends)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._stdin = proc.stdin
        self._closed = proc.stdin is None

    def write(self, data: bytes) -> None:
        if self._closed or self._stdin is None:
            return
        try:
            self._stdin.write(data)
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            self._closed = True

    def close(self) -> None:
        if not self._closed and self._stdin is not None:
            self._closed = True
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, RuntimeError):
                self._stdin.close()


async def _drain(stream: asyncio.StreamReader | None, sink: Callable[[bytes], None]) -> None:
    if stream is None:
        return
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return
        sink(chunk)


async def _feed_stdin(proc: asyncio.subprocess.Process, data: bytes | None) -> None:
    if proc.stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        if data:
            proc.stdin.write(data)
            await proc.stdin.drain()
        proc.stdin.close()
