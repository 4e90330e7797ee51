"""The one way a turn's provider is stopped, whoever asks and from whichever process.

Everything that stops a turn (Stop in the sidebar or a cell, DELETE, a timeout, a limit, the
server shutting down, another process's request) only *asks*: ``Turn.request_stop``. The process
that owns the turn then runs ``stop_provider``: the provider's graceful interrupt (its protocol,
or its interrupt signal), then SIGTERM to the whole process group, then SIGKILL, all within
``cancel_grace_seconds``. A request from another process is a small file beside the turn's
process record (``ProcessRegistry.request_cancel``) that the owner watches; if the owner is gone
or does not answer in time, the asker stops the process tree itself (the fallback).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from .. import events
from ..processes import ProcessRecord, ProcessRegistry, terminate_tree_async
from .turn import Turn

log = logging.getLogger(__name__)

# How often the owner of a turn looks for a stop request from another process.
REQUEST_POLL_SECONDS = 0.02
# How long an asker waits for the owner to end the turn, beyond the owner's grace period.
OWNER_ANSWER_SECONDS = 5.0


async def stop_provider(turn: Turn, grace: float, graceful: bool = True) -> None:
    """Stop the turn's provider: interrupt (if ``graceful``) for half the grace period, then
    SIGTERM and SIGKILL in what is left of it, so the whole takes at most ``grace``."""
    started = time.monotonic()
    if graceful:
        await _interrupt(turn, grace / 2)
    if turn.record is not None:
        await terminate_tree_async(turn.record, max(0.0, grace - (time.monotonic() - started)))


async def _interrupt(turn: Turn, timeout: float) -> None:
    """Ask the provider to end its turn through its protocol; wait up to ``timeout``."""
    parser, proc = turn.parser, turn.process
    if parser is None or proc is None or proc.returncode is not None:
        return
    try:
        if not parser.interrupt():
            return
    except Exception:
        log.exception("Provider interrupt failed for turn %s", turn.id)
        return
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(proc.wait(), timeout)


async def watch_requests(turn: Turn, registry: ProcessRegistry) -> None:
    """In the owner: turn another process's stop request into ``turn.request_stop``."""
    while not turn.finished:
        if registry.cancel_requested(turn.session_id, turn.id):
            turn.request_stop("cancelled", events.cancelled())
            return
        await asyncio.sleep(REQUEST_POLL_SECONDS)


async def stop_elsewhere(registry: ProcessRegistry, record: ProcessRecord, grace: float) -> bool:
    """Ask the process that owns ``record``'s turn to stop it, and wait until it has; stop the
    provider's process tree directly if the owner does not do it in time. True if the owner
    ended the turn (False: the caller reaps it if the owner is gone)."""
    await asyncio.to_thread(registry.request_cancel, record.session_id, record.turn_id)
    deadline = time.monotonic() + grace + OWNER_ANSWER_SECONDS
    while time.monotonic() < deadline:
        current = await asyncio.to_thread(registry.read, record.session_id)
        if current is None or current.turn_id != record.turn_id:
            return True  # the owner ended the turn
        if not current.owner_alive():
            break
        await asyncio.sleep(REQUEST_POLL_SECONDS)
    log.warning("The owner of turn %s did not stop it; stopping its provider", record.turn_id)
    await terminate_tree_async(record, grace)
    return False
