"""One run of a provider's CLI for a turn: spawn, feed, read, watch, stop, and its outcome.

The process runs in its own process group with a record on disk (processes.py), its stdout is
read in chunks and split into lines for the parser, its stderr's tail is kept for the error
message, and a watchdog asks for a stop when it is silent or slow too long. Whatever asks for a
stop (``Turn.request_stop``), the stop itself happens here (stopping.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .. import events
from ..events import COALESCED, TERMINAL_EVENTS, Event
from ..processes import ProcessRegistry, spawn, terminate_tree_async
from ..providers.base import LaunchSpec, Provider, ProviderUnavailable, StreamParser, TurnRequest
from ..workdir import working_dir_problem
from .stopping import stop_provider
from .turn import RunnerSettings, Turn
from .warm import WarmProcess


@runtime_checkable
class RunningCost(Protocol):
    """A parser whose provider reports the process's running cost (Claude Code's
    ``total_cost_usd``): told what a reused process cost before its turn."""

    cost_before: float
    process_cost: float


STDERR_TAIL_BYTES = 4096
# How long the pipes may still be read after the process ended (something else may hold them).
DRAIN_SECONDS = 2.0

# Hands each non-terminal event to the runner (limits, approvals, publishing).
EventSink = Callable[[Event], None]


@dataclass
class Outcome:
    """How one run of the provider ended: its terminal event (None: it was stopped; the
    turn's stop request says why), its conversation id, and whether resuming failed."""

    terminal: Event | None
    provider_session_id: str | None
    resume_failed: bool = False
    # Warm providers (warm.py): the process, still running after a ``done``, to park for the
    # session's next turn; and whether a reused process had died (nothing came from it: the
    # runner starts the turn cold instead).
    kept: WarmProcess | None = None
    reuse_failed: bool = False


@dataclass
class ProviderProcess:
    turn: Turn
    provider: Provider
    settings: RunnerSettings
    registry: ProcessRegistry
    sink: EventSink
    # Warm providers: the running process this turn uses instead of a spawn, and the launch
    # key of a process to keep after the turn (None: it ends with the turn, as usual).
    reuse: WarmProcess | None = None
    keep_key: str | None = None
    # A pre-warm (TurnRequest.prewarm): the process is recorded as warm from its start
    # (``processes/warm/``), not as the session's running turn, which it is not.
    prewarm: bool = False

    async def run(self, request: TurnRequest, launch: LaunchSpec) -> Outcome:
        turn, settings = self.turn, self.settings
        if turn.stop_request is not None:  # stopped before it started: nothing to run
            return Outcome(None, request.provider_session_id)
        parser = as_stream_parser(self.provider.create_parser(request))
        cwd = launch.cwd or request.working_dir
        # Confinement is re-checked right before the spawn: the folder may have been swapped
        # for a symlink that leads out of the root since the session was created.
        problem = await asyncio.to_thread(working_dir_problem, cwd, settings.root_dir)
        if problem is not None:
            raise ProviderUnavailable("unsafe_working_dir", problem)
        if self.reuse is not None:
            return await self._run_reused(self.reuse, parser, launch)
        try:
            proc = await spawn(
                launch.argv,
                cwd=cwd,
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
        # at exit finds the provider through it even if its file is not written yet).
        turn.record = self.registry.new_record(
            turn.session_id, turn.id, proc.pid, self.provider.interrupt_signal
        )
        write = self.registry.write_warm if self.prewarm else self.registry.write
        try:
            await asyncio.to_thread(write, turn.record)
        except BaseException:
            await terminate_tree_async(turn.record, settings.cancel_grace_seconds)
            raise
        turn.parser, turn.process = parser, proc
        try:
            return await self._supervise(proc, parser, launch)
        finally:
            turn.parser = None

    async def _run_reused(
        self, warm: WarmProcess, parser: StreamParser, launch: LaunchSpec
    ) -> Outcome:
        """The turn on a warm process: its record is the session's turn record while the turn
        runs (the same tree: pid, start time, marker), so stopping and reaping find it."""
        turn = self.turn
        turn.record = dataclasses.replace(
            warm.record,
            session_id=turn.session_id,
            turn_id=turn.id,
            marker=warm.record.process_marker,
            started_at=time.time(),
        )
        await asyncio.to_thread(self.registry.write, turn.record)
        turn.parser, turn.process = parser, warm.proc
        if isinstance(parser, RunningCost):
            parser.cost_before = warm.process_cost
        try:
            return await self._supervise(warm.proc, parser, launch, warm)
        finally:
            turn.parser = None

    async def _supervise(
        self,
        proc: asyncio.subprocess.Process,
        parser: StreamParser,
        launch: LaunchSpec,
        reused: WarmProcess | None = None,
    ) -> Outcome:
        turn, grace = self.turn, self.settings.cancel_grace_seconds
        keep = self.keep_key is not None
        if reused is not None:
            stderr, stderr_task, writer = reused.stderr, reused.stderr_task, reused.stdin
        else:
            stderr = bytearray()
            stderr_task = asyncio.create_task(_drain(proc.stderr, stderr))
            writer = StdinWriter(proc)
        if parser.interactive:
            stdin_task = asyncio.create_task(asyncio.sleep(0))
            parser.start(writer)
        else:
            stdin_task = asyncio.create_task(_feed_stdin(proc, launch.stdin))
        pump = _Pump(turn, parser, self.sink, self.settings.max_line_bytes, keep)
        if reused is not None:
            pump.pending = reused.leftover
        pump_task = asyncio.create_task(pump.run(proc.stdout))
        watchdog = asyncio.create_task(self._watchdog(pump, pump_task))
        waits: list[asyncio.Task[Any]] = []
        kept = False
        try:
            # Until the end of output, the final result, or a stop: a process the provider
            # left behind may hold stdout open long after the provider is done.
            waits = [
                asyncio.create_task(pump.terminal_seen.wait()),
                asyncio.create_task(turn.stopped.wait()),
            ]
            await asyncio.wait({pump_task, *waits}, return_when=asyncio.FIRST_COMPLETED)
            if turn.stop_request is not None:
                await stop_provider(turn, grace, graceful=turn.stop_request.reason == "cancelled")
            elif pump.terminal is not None:
                if keep and _done(pump.terminal) and proc.returncode is None:
                    kept = True  # the process takes the session's next turn (warm.py)
                elif keep:
                    writer.close()  # not kept: the CLI exits at the end of its input
            if not kept and turn.stop_request is None and pump.terminal is not None:
                # The result is in; give the process a moment to exit on its own.
                try:
                    await asyncio.wait_for(proc.wait(), self.provider.exit_after_result_seconds)
                except asyncio.TimeoutError:
                    await stop_provider(turn, grace, graceful=False)
            if not kept:
                returncode = await proc.wait()
                for task in (pump_task, stderr_task):
                    # Drain what the pipes still hold; stop waiting if something else holds them.
                    with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                        await asyncio.wait_for(asyncio.shield(task), DRAIN_SECONDS)
        finally:
            helpers: list[asyncio.Task[Any]] = [stdin_task, pump_task, watchdog]
            if not kept:
                helpers.append(stderr_task)
            for task in helpers + waits:
                task.cancel()
            if proc.returncode is None and not kept:
                await stop_provider(turn, grace, graceful=False)
        if kept:
            assert self.keep_key is not None and turn.record is not None
            warm = reused or WarmProcess(
                session_id=turn.session_id,
                key=self.keep_key,
                proc=proc,
                record=dataclasses.replace(turn.record, marker=turn.record.process_marker),
                stdin=writer,
                stderr=stderr,
                stderr_task=stderr_task,
            )
            warm.recorded = warm.recorded or self.prewarm
            warm.leftover = pump.pending
            warm.conversation_id = parser.provider_session_id or warm.conversation_id
            if isinstance(parser, RunningCost):
                warm.process_cost = parser.process_cost
            # The turn no longer owns the process: nothing that ends the turn may stop it.
            turn.record, turn.process = None, None
            return Outcome(pump.terminal, warm.conversation_id, kept=warm)
        if reused is not None and not pump.seen_output and turn.stop_request is None:
            # The warm process had died before this turn reached it.
            return Outcome(None, None, reuse_failed=True)
        if turn.stop_request is None and await asyncio.to_thread(
            self.registry.cancel_requested, turn.session_id, turn.id
        ):
            # Stopped by another process that could not wait for this one (it was frozen).
            turn.request_stop("cancelled", events.cancelled())
        provider_session_id = parser.provider_session_id
        stop = turn.stop_request
        if stop is not None and not (stop.reason == "cost_limit" and _done(pump.terminal)):
            return Outcome(None, provider_session_id)
        final = pump.terminal
        if final is None:
            for event in parser.finish(
                returncode, stderr[-STDERR_TAIL_BYTES:].decode("utf-8", "replace")
            ):
                if event["type"] in TERMINAL_EVENTS:
                    final = event
                else:
                    self.sink(event)
        if final is None:
            final = events.error(
                "provider_failed", f"The provider exited with code {returncode} without a result."
            )
        # Read after finish(): some CLIs report a lost conversation only by exit code/stderr.
        return Outcome(
            final, parser.provider_session_id or provider_session_id, parser.resume_failed
        )

    async def _watchdog(self, pump: _Pump, pump_task: asyncio.Task[None]) -> None:
        """Ask for a stop when the provider is silent too long or the turn runs too long."""
        turn, settings = self.turn, self.settings
        deadline = turn.started + settings.turn_timeout_seconds
        while not pump_task.done():
            now = time.monotonic()
            approvals = turn.approvals
            # A provider waiting for the user's answer is silent by design: not idle.
            if approvals is not None and approvals.waiting():
                active = now
            else:
                active = max(pump.last_output, approvals.last_answer if approvals else 0.0)
            idle_at = active + settings.idle_timeout_seconds
            if now >= deadline or now >= idle_at:
                turn.request_stop("timeout", self._timeout_event(idle=now < deadline))
                return
            await asyncio.sleep(min(deadline, idle_at) - now)

    def _timeout_event(self, *, idle: bool) -> Event:
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
        return events.error("timeout", message)


class _PluginParser(StreamParser):
    """A third-party provider's parser that does not derive from ``StreamParser``: the
    documented minimum is ``feed`` and ``finish`` (docs/providers.md); whatever else of the
    protocol it has is used, the rest takes the base class's defaults."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.interactive = callable(getattr(inner, "start", None))

    @property
    def provider_session_id(self) -> str | None:
        value = getattr(self.inner, "provider_session_id", None)
        return str(value) if value else None

    def start(self, io: Any) -> None:
        self.inner.start(io)

    def feed(self, line: bytes) -> list[Event]:
        return list(self.inner.feed(line))

    def finish(self, returncode: int, stderr_tail: str) -> list[Event]:
        ended = list(self.inner.finish(returncode, stderr_tail))
        # read after finish(), as for the built-in parsers
        self.resume_failed = bool(getattr(self.inner, "resume_failed", False))
        return ended

    def interrupt(self) -> bool:
        interrupt = getattr(self.inner, "interrupt", None)
        return bool(interrupt()) if callable(interrupt) else False

    def answer_permission(
        self, request_id: str, allow: bool, scope: str, message: str | None
    ) -> bool:
        answer = getattr(self.inner, "answer_permission", None)
        return bool(answer(request_id, allow, scope, message)) if callable(answer) else False


def as_stream_parser(parser: Any) -> StreamParser:
    return parser if isinstance(parser, StreamParser) else _PluginParser(parser)


def _done(terminal: Event | None) -> bool:
    return terminal is not None and terminal["type"] == "done"


class _Pump:
    """Reads provider stdout in chunks, splits lines, feeds the parser. Chunked reads keep the
    per-event cost low when a provider streams thousands of small deltas, and the deltas that
    arrive together are coalesced into one event (clients see the same text, in fewer events,
    and the turn's event buffer stays small however fast the provider prints)."""

    def __init__(
        self,
        turn: Turn,
        parser: StreamParser,
        sink: EventSink,
        max_line_bytes: int,
        stop_at_terminal: bool = False,
    ) -> None:
        self.turn = turn
        self.parser = parser
        self.sink = sink
        self.max_line_bytes = max_line_bytes
        self.last_output = time.monotonic()
        self.terminal: Event | None = None
        self.terminal_seen = asyncio.Event()
        # A warm process (warm.py): reading stops at the line of the result, and what was read
        # after it stays in ``pending`` for the next turn's pump.
        self.stop_at_terminal = stop_at_terminal
        self.pending = b""
        self.seen_output = False

    async def run(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        if self.pending and self._lines(b""):
            return
        while True:
            chunk = await stream.read(262144)
            if not chunk:
                if self.pending:
                    self._handle_all(self.parser.feed(self.pending))
                    self.pending = b""
                return
            self.seen_output = True
            self.last_output = time.monotonic()
            if self._lines(chunk):
                return

    def _lines(self, chunk: bytes) -> bool:
        """Feed the whole lines of what was read; True when reading ends here."""
        pending = self.pending
        data = pending + chunk if pending else chunk
        start = 0
        batch: list[Event] = []
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            produced = self.parser.feed(data[start:end])
            batch.extend(produced)
            start = end + 1
            if self.stop_at_terminal and any(e["type"] in TERMINAL_EVENTS for e in produced):
                self._handle_all(batch)
                self.pending = data[start:]
                return True
        self._handle_all(batch)
        self.pending = data[start:]
        if len(self.pending) > self.max_line_bytes:
            self.turn.request_stop(
                "oversize",
                events.error(
                    "provider_failed",
                    f"The provider printed a line longer than {self.max_line_bytes} bytes; "
                    "the turn was stopped (c.AssistantExtension.max_line_bytes).",
                ),
            )
            return True
        return False

    def _handle_all(self, batch: list[Event]) -> None:
        merged: Event | None = None
        for event in batch:
            if self.terminal is not None:
                # The first result stands: what a provider prints while it is being stopped
                # afterwards (an "interrupted" result, its usage) changes nothing.
                break
            kind = event["type"]
            if merged is not None and kind == merged["type"] and kind in COALESCED:
                merged["text"] += event["text"]
                continue
            if merged is not None:
                self.sink(merged)
                merged = None
            if kind in COALESCED:
                merged = dict(event)
            elif kind in TERMINAL_EVENTS:
                self.terminal = event
                self.terminal_seen.set()
            else:
                self.sink(event)
        if merged is not None:
            self.sink(merged)


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


async def _drain(stream: asyncio.StreamReader | None, tail: bytearray) -> None:
    """Read a pipe to its end, keeping only its last STDERR_TAIL_BYTES."""
    if stream is None:
        return
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return
        tail.extend(chunk)
        if len(tail) > STDERR_TAIL_BYTES:
            del tail[: len(tail) - STDERR_TAIL_BYTES]


async def _feed_stdin(proc: asyncio.subprocess.Process, data: bytes | None) -> None:
    if proc.stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        if data:
            proc.stdin.write(data)
            await proc.stdin.drain()
        proc.stdin.close()
