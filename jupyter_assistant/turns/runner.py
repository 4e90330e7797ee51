"""TurnRunner: a user message -> the provider -> events -> the store, one turn per session.

The orchestrator of a turn: it claims the session (persistence.py), runs the provider until it
answers (provider_process.py; once more without resuming when the provider lost the
conversation), applies the limits to what streams in, hands questions to the approval broker
(approvals.py), and ends the turn once, with an explicit reason (``Turn.end_reason``): the reply
is stored before the terminal event is published, so a client that reads the session after
``done`` sees it. Stopping goes through stopping.py, whoever asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from .. import events
from ..checkpoints import ScanRules, TurnCheckpoints
from ..errors import Busy, InsufficientStorage, StoreUnavailable
from ..events import Event
from ..journal import EventJournal
from ..models import Session, new_id
from ..processes import (
    ProcessRegistry,
)
from ..providers import ProviderRegistry
from ..providers.base import (
    NotebookToolsAccess,
    Provider,
    ProviderUnavailable,
    TurnRequest,
    provider_environment,
)
from ..reply import reply_status
from ..store import SessionStore
from .approvals import ApprovalBroker, session_policy
from .limits import check_cost, within_limits
from .owner_calls import OwnerCalls, OwnerGone
from .persistence import PRIVATE_DIR, OrphanedTurn, TurnPersistence
from .prewarm import Prewarm, Prewarms
from .provider_process import Outcome, ProviderProcess
from .reaping import Reaper
from .stopping import stop_elsewhere, stop_provider, watch_requests
from .turn import EndReason, NewMessage, RunnerSettings, Turn
from .warm import WarmPool, WarmSettings

log = logging.getLogger(__name__)


class NotebookToolsIssuer(Protocol):
    """What the runner needs of the notebook tools: a turn's access, and its end. A warm
    provider's next turn passes the ``capability`` its process holds (warm.py)."""

    def issue(
        self, session_id: str, turn_id: str, notebook_path: str, capability: str | None = None
    ) -> NotebookToolsAccess: ...

    def revoke(self, turn_id: str) -> None: ...


@runtime_checkable
class ToolListings(Protocol):
    """The server's notebook tools tell a pre-warm when its CLI has connected to them."""

    def expect_listing(self, capability: str) -> asyncio.Event: ...

    def stop_expecting(self, capability: str) -> None: ...


# How long a pre-warmed CLI may take to list the notebook tools once it has started (it
# connects to them right after; the MCP server may still be importing its SDK).
PREWARM_TOOLS_SECONDS = 15.0


class OpenNotebooks(Protocol):
    """For undo: the notebook where it is open in JupyterLab, whose cells the notebook tools
    edit there (not in its file): its JSON there (else its file's), and its cells put back.
    The server's notebook tools; none in a kernel."""

    async def notebook_text(self, path: str) -> str | None: ...

    async def restore_cells(self, path: str, target_json: str) -> str: ...


RESUME_LOST = (
    "The earlier conversation could not be resumed by the provider; this turn starts a new one."
)


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
        self.persistence = TurnPersistence(store, registry, settings)
        self.reaper = Reaper(self.persistence)
        self.turns: dict[str, Turn] = {}  # latest turn per session, in this process
        # The notebook tools (notebook_tools/gateway.py), when the server offers them.
        self.notebook_tools: NotebookToolsIssuer | None = None
        self.open_notebooks: OpenNotebooks | None = None
        # Questions between the server that serves a turn's tools and the process that runs
        # the turn, when they differ (a kernel's turns): approvals, the kernel's variables.
        self.owner_calls = OwnerCalls(store.root / PRIVATE_DIR, registry)
        # In a kernel: its turns' tools are served by the server, which asks here.
        self.answers_owner_calls = False
        # Undo: each turn's folder checkpointed before and after it (checkpoints/).
        self.checkpoints: TurnCheckpoints | None = None
        if settings.turn_checkpoints:
            rules = ScanRules(settings.checkpoint_ignore, settings.checkpoint_max_file_bytes)
            self.checkpoints = TurnCheckpoints(store.root, rules)
        # In a kernel: its variables, for kernel_variables (names -> the tool's result).
        self.kernel_variables: Callable[[list[str]], Awaitable[dict[str, Any]]] | None = None
        # Warm providers (warm.py): a session's process kept running between its turns.
        self.warm: WarmPool | None = None
        if settings.warm_agents:
            self.warm = WarmPool(
                registry,
                WarmSettings(
                    settings.warm_idle_seconds,
                    settings.max_warm_processes,
                    settings.cancel_grace_seconds,
                ),
            )

        self.prewarms = Prewarms()

    def latest(self, session_id: str) -> Turn | None:
        return self.turns.get(session_id)

    def running_here(self) -> list[Turn]:
        return [turn for turn in self.turns.values() if not turn.finished]

    def is_running(self, session_id: str) -> bool:
        turn = self.turns.get(session_id)
        return (turn is not None and not turn.finished) or self.registry.is_running(session_id)

    # -- a turn, start to end ----------------------------------------------------------------

    async def start(self, session_id: str, message: NewMessage) -> Turn:
        """Start a turn that answers ``message`` (Busy if the session runs one anywhere)."""
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
        turn = self.turns[session_id] = Turn(session_id, turn_id, provider="")
        try:
            session = await self._claim(session_id, turn_id, message)
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
        turn.task = asyncio.create_task(
            self._run(turn, message.model), name=f"assistant-turn-{turn_id}"
        )
        return turn

    async def _run(self, turn: Turn, model: str | None) -> None:
        outcome = Outcome(None, None)
        checkpointed = False
        helpers: list[asyncio.Task[None]] = []
        try:
            turn.publish(events.turn_started(turn.id, turn.provider))
            helpers.append(asyncio.create_task(watch_requests(turn, self.registry)))
            session, prompt = await self.persistence.begin(turn.session_id)
            # The session's pre-warm, if one is starting its process: this turn takes that
            # process rather than start a second one (and its capability, read below).
            await self.prewarms.wait(turn.session_id)
            outcome.provider_session_id = session.provider_session_id
            turn.approvals = ApprovalBroker(
                turn, session_policy(session, self.settings), self.settings, self.persistence.edit
            )
            if self.settings.checkpoint_interval_seconds > 0:
                helpers.append(asyncio.create_task(self.persistence.checkpoint_loop(turn)))
            request = TurnRequest(
                session_id=session.id,
                turn_id=turn.id,
                prompt=prompt.content,
                working_dir=session.working_dir,
                notebook_path=session.path,
                provider_session_id=session.provider_session_id,
                context=prompt.context,
                model=model,
                scratch_dir=str(self.store.root / PRIVATE_DIR),
            )
            tools = self.notebook_tools
            if tools is not None and self.providers.get(turn.provider).supports_notebook_tools:
                # A warm process holds its capability in its MCP configuration: this turn's
                # grant reuses it (revoked again at this turn's end).
                held = self.warm.capability(session.id) if self.warm is not None else None
                if held is not None:
                    request.notebook_tools = tools.issue(session.id, turn.id, session.path, held)
                else:
                    request.notebook_tools = tools.issue(session.id, turn.id, session.path)
                if self.answers_owner_calls:
                    helpers.append(asyncio.create_task(self._answer_owner_calls(turn)))
            told = await self._tell_undone(session, request)
            checkpointed = await self._checkpoint(turn, "before", session)
            if told and self.checkpoints is not None:
                await asyncio.to_thread(self.checkpoints.mark_told, session.id, told)
            history = len(session.messages)  # with the prompt: how a warm process is checked
            outcome = await self._attempt(turn, request, history)
            if outcome.resume_failed and request.provider_session_id and not turn.stop_request:
                # The provider lost the conversation (its history was cleared, or the notebook
                # moved): start a new one rather than fail the user's turn.
                turn.publish(events.notice(RESUME_LOST, "warning"))
                request.provider_session_id = None
                outcome = await self._attempt(turn, request, history)
        except ProviderUnavailable as exc:
            outcome.terminal = events.error(exc.code, exc.message)
        except StoreUnavailable as exc:  # e.g. no room for the process record or a launch file
            code = "storage_full" if isinstance(exc, InsufficientStorage) else "storage_failed"
            outcome.terminal = events.error(code, exc.message)
        except asyncio.CancelledError:
            turn.request_stop("cancelled", events.cancelled())
        except Exception as exc:
            log.exception("Assistant turn %s failed", turn.id)
            outcome.terminal = events.error(
                "internal_error", f"The assistant failed unexpectedly: {exc}. See the server log."
            )
        finally:
            if self.notebook_tools is not None:
                self.notebook_tools.revoke(turn.id)
            for helper in helpers:
                helper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await helper
            if turn.record is not None:
                # Nothing the turn started may outlive it.
                with contextlib.suppress(Exception):
                    await stop_provider(turn, self.settings.cancel_grace_seconds, graceful=False)
            if checkpointed:
                # Before the terminal event: a client that reads the changes after it sees them.
                await self._checkpoint(turn, "after", session)
            await self._end(turn, outcome)

    async def _tell_undone(self, session: Any, request: TurnRequest) -> list[str]:
        """The user undid turns since the agent's last message: say so first in the prompt,
        so that its picture of the folder is right. Returns those turns."""
        if self.checkpoints is None:
            return []
        undone = await asyncio.to_thread(self.checkpoints.untold_reverts, session.id)
        if not undone:
            return []
        # The turn holds the session without its history (SessionStore.edit): read it.
        stored = await asyncio.to_thread(self.store.load, session.id)
        asked = [m.turn_id for m in stored.messages if m.role == "user"]
        numbers = [str(asked.index(t) + 1) for t in undone if t in asked]
        which = f"turn {numbers[0]}" if len(numbers) == 1 else f"turns {', '.join(numbers)}"
        request.prompt = (
            f"[Note: the user undid {which} of this conversation (counting the user's messages): "
            "the files changed then are back as they were before; read them again before "
            "relying on what you did then.]\n\n" + request.prompt
        )
        return undone

    async def _checkpoint(self, turn: Turn, when: str, session: Any = None) -> bool:
        """Checkpoint the turn's folder (``before`` it runs, ``after`` it ended). A checkpoint
        that fails costs the turn its undo, never the turn: the user is told."""
        if self.checkpoints is None:
            return False
        try:
            if when == "before":
                notebook = os.path.basename(session.path)
                await asyncio.to_thread(
                    self.checkpoints.before_turn,
                    turn.session_id,
                    turn.id,
                    session.working_dir,
                    notebook,
                )
            else:
                await asyncio.to_thread(self.checkpoints.after_turn, turn.session_id, turn.id)
        except Exception as exc:
            log.warning("No checkpoint %s turn %s: %s", when, turn.id, exc)
            turn.publish(
                events.notice(
                    f"This turn cannot be undone: its folder could not be kept ({exc}).", "warning"
                )
            )
            return False
        return True

    async def _attempt(
        self, turn: Turn, request: TurnRequest, history: int, reuse: bool = True
    ) -> Outcome:
        """Run the provider once (on the session's warm process if it fits, warm.py)."""
        provider = self.providers.get(turn.provider)
        try:
            launch = provider.build_launch(
                request, provider_environment(self.settings.provider_env)
            )
        except OSError as exc:  # its private files (the system prompt, the tools' config)
            code = "storage_full" if exc.errno == errno.ENOSPC else "provider_failed"
            raise ProviderUnavailable(
                code, f"Could not write the files the provider is started with: {exc}"
            ) from exc
        pool = self.warm
        key = launch.reuse_key if pool is not None else None
        warm = None
        if pool is not None and key is not None and reuse:
            warm = pool.take(turn.session_id, key, request.provider_session_id, history)
        request.keep_process = key is not None
        request.reuses_process = warm is not None
        sink = functools.partial(self._receive, turn)
        process = ProviderProcess(
            turn,
            provider,
            self.settings,
            self.registry,
            sink,
            reuse=warm,
            keep_key=key,
            prewarm=request.prewarm,
        )
        outcome = Outcome(None, None)
        try:
            outcome = await process.run(request, launch)
        finally:
            # Private files of the launch (the system prompt, the MCP configuration with its
            # capability): a CLI reads them as it starts (Claude Code 2.1.197 connects to its
            # MCP servers after answering initialize, from what it read then), so a warm or
            # pre-warmed one needs them no longer either.
            for path in launch.cleanup:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            if pool is not None and warm is not None and outcome.kept is not warm:
                pool.discard(warm)  # stopped, failed or died: the next turn starts cold
        if outcome.reuse_failed:
            return await self._attempt(turn, request, history, reuse=False)
        if pool is not None and outcome.kept is not None:
            kept = outcome.kept
            tools = request.notebook_tools
            kept.capability = tools.capability if tools is not None else None
            if request.prewarm:
                # No turn ran: the next turn's prompt is the one message more it finds, and
                # the conversation is the one the process resumed.
                kept.next_history = history + 1
                kept.conversation_id = request.provider_session_id
            else:
                kept.next_history = history + 2  # this turn's reply, the next turn's prompt
            await pool.keep(kept)
        return Outcome(
            outcome.terminal,
            outcome.provider_session_id or request.provider_session_id,
            outcome.resume_failed,
        )

    # -- pre-warm (warm.py, prewarm.py) --------------------------------------------------------

    async def prewarm(self, session_id: str) -> str:
        """Start the session's provider in the background, so that its next turn finds it
        running (the sidebar asks when it opens a notebook's session). What became of it:
        ``started``; ``warm`` (it runs already, or is starting); ``busy`` (a turn runs);
        ``off`` (``warm_agents`` or ``prewarm`` is off); ``unsupported`` (the provider
        cannot). An unknown session is the store's NotFound."""
        if self.warm is None or not self.settings.prewarm:
            return "off"
        return await self.prewarm_session(await asyncio.to_thread(self.store.load, session_id))

    async def prewarm_session(self, session: Any) -> str:
        """``prewarm`` for a session given whole: a stored one, or one not stored yet whose id
        the notebook's next new conversation will get (``AssistantService.prewarm_new``)."""
        pool = self.warm
        if pool is None or not self.settings.prewarm:
            return "off"
        session_id = session.id
        if self.is_running(session_id):
            return "busy"
        if pool.holds(session_id) or self.prewarms.running(session_id):
            return "warm"
        try:
            provider = self.providers.get(session.provider)
        except Exception:  # a provider this server no longer offers: its turn will say so
            return "unsupported"
        if not provider.prewarms():
            return "unsupported"
        self.prewarms.start(session_id, functools.partial(self._prewarm, session, provider))
        return "started"

    async def _prewarm(self, session: Any, provider: Provider, prewarm: Prewarm) -> None:
        """Start the provider for ``session`` as a turn would, and park it once it is ready;
        with the notebook tools, its grant lives until it has listed them or a turn took the
        process over (the turn's grant goes on)."""
        turn = Turn(session.id, new_id(), session.provider)
        request = TurnRequest(
            session_id=session.id,
            turn_id=turn.id,
            prompt="",
            working_dir=session.working_dir,
            notebook_path=session.path,
            provider_session_id=session.provider_session_id,
            scratch_dir=str(self.store.root / PRIVATE_DIR),
            prewarm=True,
        )
        tools = self.notebook_tools
        served: object = tools  # the server's tools tell when a CLI listed them; a kernel's not
        listings = served if isinstance(served, ToolListings) else None
        listed: asyncio.Event | None = None
        if tools is not None and provider.supports_notebook_tools:
            request.notebook_tools = tools.issue(session.id, turn.id, session.path)
            if listings is not None:
                listed = listings.expect_listing(request.notebook_tools.capability)
        kept = False
        try:
            outcome = await self._attempt(turn, request, len(session.messages))
            kept = self.warm is not None and self.warm.holds(session.id)
            if not kept:
                log.info("Pre-warm of session %s did not start: %s", session.id, outcome.terminal)
                return
            prewarm.ready.set()
            if listed is not None:
                try:
                    await asyncio.wait_for(listed.wait(), PREWARM_TOOLS_SECONDS)
                except asyncio.TimeoutError:
                    # Its tools failed to connect: a cold start would have them.
                    log.warning("Pre-warmed CLI of %s did not list the notebook tools", session.id)
                    kept = False
        except asyncio.CancelledError:
            kept = kept and prewarm.handed_over
            raise
        except BaseException:
            kept = False
            raise
        finally:
            if tools is not None:
                tools.revoke(turn.id)
                if listings is not None and request.notebook_tools is not None:
                    listings.stop_expecting(request.notebook_tools.capability)
            if turn.record is not None:  # not parked: it must not outlive the pre-warm
                with contextlib.suppress(Exception):
                    await stop_provider(turn, self.settings.cancel_grace_seconds, graceful=False)
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(self.registry.clear_warm, session.id, turn.record.pid)
            elif not kept and self.warm is not None:
                await self.warm.end(session.id)

    def _receive(self, turn: Turn, event: Event) -> None:
        """A non-terminal event from the provider: within the limits, it is published (a
        question goes to the approval broker, which publishes what becomes of it)."""
        if not within_limits(turn, event, self.settings):
            return
        if event["type"] == "permission_request":
            if turn.approvals is not None:
                turn.approvals.request(event)
            return
        turn.publish(event)
        if event["type"] == "usage":
            check_cost(turn, self.settings)

    async def _end(self, turn: Turn, outcome: Outcome) -> None:
        """End the turn, once: decide why it ended, store the reply, release the session,
        publish the terminal event."""
        stop = turn.stop_request
        terminal = outcome.terminal
        if terminal is not None and stop is not None and stop.reason == "cost_limit":
            # The cost came with the final result: the reply is whole; the next turn is refused.
            message = stop.terminal["message"].replace("the turn was stopped", "no further turns")
            turn.publish(events.notice(message, "warning"))
        elif stop is not None:
            terminal = stop.terminal
        if terminal is None:
            terminal = events.error("internal_error", "No result.")
        reason: EndReason
        if stop is not None and terminal is stop.terminal:
            reason = stop.reason
        else:
            reason = "completed" if terminal["type"] == "done" else "failed"
        turn.end_reason = reason
        if turn.approvals is not None:
            turn.approvals.close()
        status, error = reply_status(terminal, interrupted=reason == "shutdown")
        failed = await self.persistence.finish(
            turn, turn.reply.message(status, error), outcome.provider_session_id
        )
        turn.publish(failed or terminal)
        asyncio.get_running_loop().call_later(
            self.settings.finished_turn_ttl_seconds, self._forget, turn
        )

    def _forget(self, turn: Turn) -> None:
        """Drop a finished turn's event buffer (the session file keeps the reply)."""
        if self.turns.get(turn.session_id) is turn and turn.finished:
            del self.turns[turn.session_id]

    # -- tool approval ---------------------------------------------------------------------

    async def answer_permission(
        self, session_id: str, request_id: str, allow: bool, scope: str, message: str | None
    ) -> None:
        turn = self.turns.get(session_id)
        if turn is None or turn.finished or turn.approvals is None:
            if self.registry.is_running(session_id):
                raise Busy(
                    "The turn runs in another process (a %%assistant cell in a kernel); "
                    "answer its question there."
                )
            raise Busy("No turn is running for this session, so there is nothing to answer.")
        await turn.approvals.answer(request_id, allow, scope, message)

    async def approve_served(
        self,
        session_id: str,
        turn_id: str,
        tool_name: str,
        tool_input: Any,
        edits: bool,
        summary: str = "",
    ) -> str | None:
        """May a call the server serves for this turn (a notebook tool) run? None if so, else
        why not. ``edits``: it edits, so the provider's setting for file edits applies."""
        turn = self.turns.get(session_id)
        if turn is None or turn.id != turn_id:
            record = await asyncio.to_thread(self.registry.read, session_id)
            if record is not None and record.turn_id == turn_id and not record.owned_by_me():
                # Another process (a kernel) runs this turn: its policy and its user decide.
                question = {
                    "tool_name": tool_name,
                    "tool_input": tool_input,
                    "edits": edits,
                    "summary": summary,
                }
                try:
                    answer = await self.owner_calls.ask(session_id, turn_id, "approve", question)
                except OwnerGone:
                    return "The turn this call belongs to has ended."
                if "error" in answer:
                    return f"The call could not be approved: {answer['error']}"
                refusal = answer.get("refusal")
                return None if refusal is None else str(refusal)
        if turn is None or turn.id != turn_id or turn.finished or turn.approvals is None:
            return "The turn this call belongs to has ended."
        mode = self.providers.get(turn.provider).notebook_edits() if edits else "ask"
        return await turn.approvals.decide_served(tool_name, tool_input, mode, summary)

    async def _answer_owner_calls(self, turn: Turn) -> None:
        """Answer what the server serving this turn's tools asks (a kernel's turn)."""

        async def answer(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
            if kind == "approve":
                refusal = await self.approve_served(
                    turn.session_id,
                    turn.id,
                    str(payload["tool_name"]),
                    payload.get("tool_input"),
                    bool(payload.get("edits")),
                    str(payload.get("summary") or ""),
                )
                return {"refusal": refusal}
            if kind == "variables" and self.kernel_variables is not None:
                return await self.kernel_variables(list(payload.get("names") or []))
            raise ValueError(f"this process does not answer {kind!r}")

        await self.owner_calls.serve(turn.id, answer, lambda: turn.finished)

    async def ask_owner(
        self, session_id: str, turn_id: str, kind: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Ask the process that runs a turn (see owner_calls.py); OwnerGone if it ended."""
        return await self.owner_calls.ask(session_id, turn_id, kind, payload)

    async def _claim(self, session_id: str, turn_id: str, message: NewMessage) -> Session:
        claim = functools.partial(
            self.persistence.claim, session_id, turn_id, message.content, message.context
        )
        try:
            return await asyncio.to_thread(claim)
        except OrphanedTurn as gone:
            # A kernel or server killed mid-turn left its CLI running, and the reaper has not
            # come by yet: stop that CLI and end its turn as interrupted, then claim (clearing
            # the record alone would leave the CLI with nothing to find it).
            await self.reaper.reap(gone.record)
            return await asyncio.to_thread(claim)

    # -- stopping ----------------------------------------------------------------------------

    async def cancel(self, session_id: str, reason: EndReason = "cancelled") -> bool:
        """Stop the session's running turn, wherever it runs. True if there was one."""
        turn = self.turns.get(session_id)
        grace = self.settings.cancel_grace_seconds
        if turn is not None and not turn.finished:
            terminal = events.cancelled()
            turn.request_stop(reason, terminal)
            if reason == "shutdown" and turn.record is None and turn.task is not None:
                turn.task.cancel()  # not running a provider yet: nothing to stop gracefully
            if turn.task is not None:
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(turn.task), grace + 5)
            return True
        record = await asyncio.to_thread(self.registry.read, session_id)
        if record is None:
            return False
        # Another process (a kernel running a magic) owns the turn: it stops it.
        answered = record.owner_alive() and await stop_elsewhere(self.registry, record, grace)
        if answered or record.owner_alive():
            return True
        await self.reaper.reap(record)
        return True

    async def shutdown(self) -> None:
        await self.prewarms.cancel_all()
        await asyncio.gather(
            *(self.cancel(turn.session_id, "shutdown") for turn in self.running_here()),
            return_exceptions=True,
        )
        if self.warm is not None:
            await self.warm.end_all()

    async def end_warm(self, session_id: str) -> None:
        """End the session's warm process, if it has one parked or starting (delete, rename)."""
        await self.prewarms.cancel(session_id)
        if self.warm is not None:
            await self.warm.end(session_id)

    async def reap_orphans(self) -> int:
        """Terminate what dead owners left running; mark their turns interrupted."""
        return await self.reaper.reap_orphans()

    def stop_now(self) -> None:
        """Last resort at interpreter exit (see ``Reaper.stop_now``)."""
        parked = self.warm.stop_now() if self.warm is not None else set()
        self.reaper.stop_now(self.turns, skip_pids=parked)
