"""What is left when a turn's owner is gone: orphaned providers, and the stop at exit.

A server or kernel killed mid-turn leaves its provider running and its turn unfinished: the
next process to start (or the periodic housekeeping) reaps them. A server that exits without
its clean shutdown has no event loop left for the stop sequence: ``stop_now`` stops its
providers at once. Both end the turn through ``write_turn_end``, as interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import time

from ..errors import NotFound
from ..models import Session
from ..processes import (
    ProcessRecord,
    spawned_providers,
    terminate_tree,
    terminate_tree_async,
)
from .owner_calls import CALLS_DIR
from .persistence import PRIVATE_DIR, TurnPersistence, interrupted_reply, write_turn_end
from .turn import Turn

log = logging.getLogger(__name__)


class Reaper:
    def __init__(self, persistence: TurnPersistence) -> None:
        self.store = persistence.store
        self.registry = persistence.registry
        self.settings = persistence.settings

    async def reap_orphans(self) -> int:
        """Terminate what dead owners left running; mark their turns interrupted."""
        records = await asyncio.to_thread(self.registry.orphans)
        for record in records:
            await self.reap(record)
        warm = await asyncio.to_thread(self._warm_orphans)
        for record in warm:
            # A warm provider (warm.py) of a dead server, idle between turns: no turn to end.
            log.warning(
                "Ending the warm provider of session %s: its owner process %s is gone",
                record.session_id,
                record.owner_pid,
            )
            with contextlib.suppress(Exception):
                await terminate_tree_async(record, self.settings.cancel_grace_seconds)
            await asyncio.to_thread(self.registry.clear_warm, record.session_id, record.pid)
        await asyncio.to_thread(self._sweep_private_files)
        return len(records) + len(warm)

    def _warm_orphans(self) -> list[ProcessRecord]:
        return [rec for rec in self.registry.warm_records() if not rec.owner_alive()]

    async def reap(self, record: ProcessRecord) -> None:
        """Stop the provider of a turn whose owner died, and end the turn as interrupted."""
        log.warning(
            "Reaping the provider of turn %s (session %s): its owner process %s is gone",
            record.turn_id,
            record.session_id,
            record.owner_pid,
        )
        began = time.monotonic()
        with contextlib.suppress(Exception):
            await terminate_tree_async(record, self.settings.cancel_grace_seconds)
        stopped = time.monotonic()

        def end(session: Session) -> None:
            write_turn_end(session, turn_id=record.turn_id, reply=None)
            # Under the session's lock with the end: whoever reads the session after it sees
            # no record of the turn either.
            self.registry.clear(record.session_id, record.turn_id)

        try:
            await asyncio.to_thread(self.store.update, record.session_id, end)
            log.info(
                "Turn %s ended as interrupted (its provider stopped in %.1f s, the turn stored "
                "in %.1f s)",
                record.turn_id,
                stopped - began,
                time.monotonic() - stopped,
            )
        except NotFound:
            pass
        except Exception:
            log.exception("Could not mark turn %s as interrupted", record.turn_id)
        # Cleared in any case (a session deleted meanwhile, a store that failed): the provider
        # is stopped, so the record must not keep the session busy.
        await asyncio.to_thread(self.registry.clear, record.session_id, record.turn_id)

    def _sweep_private_files(self, older_than_seconds: float = 3600.0) -> None:
        """Private launch files a killed server or kernel could not remove (a CLI reads its
        file as it starts, so an hour-old one is no longer needed)."""
        cutoff = time.time() - older_than_seconds
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.store.root / PRIVATE_DIR):
                with contextlib.suppress(OSError):
                    if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
        # The notebook-tools grants of kernels killed mid-turn, and their question folders.
        from ..notebook_tools.capabilities import kernel_grants

        kernel_grants(self.store.root).sweep()
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.store.root / PRIVATE_DIR / CALLS_DIR):
                with contextlib.suppress(OSError):
                    if entry.stat().st_mtime < cutoff:
                        shutil.rmtree(entry.path)

    def stop_now(
        self, turns: dict[str, Turn], skip_pids: set[int] | frozenset[int] = frozenset()
    ) -> None:
        """Last resort at interpreter exit, when the server stopped without its clean shutdown
        (no event loop left to run the stop sequence): stop every provider this process owns
        at once and keep what its turn had written, marked interrupted. ``skip_pids``: warm
        providers stopped already (parked between turns: no turn to mark)."""
        me = os.getpid()
        records = {(r.session_id, r.turn_id): r for r in self.registry.all() if r.owner_pid == me}
        # Also the turns whose record file was not written yet: the provider was just spawned.
        for live in list(turns.values()):
            if live.record is not None and not live.finished:
                records.setdefault((live.session_id, live.id), live.record)
        # And any provider child of this process at all (spawned, not yet recorded anywhere).
        known = {record.pid for record in records.values()}
        sessions = {live.id: live.session_id for live in list(turns.values())}
        for pid, turn_id in spawned_providers().items():
            if pid not in known and pid not in skip_pids:
                session_id = sessions.get(turn_id, "")
                records[(session_id, turn_id)] = self.registry.new_record(session_id, turn_id, pid)
        for record in records.values():
            try:
                terminate_tree(record, self.settings.cancel_grace_seconds)
            except Exception as exc:  # exiting anyway: report, go on with the others
                log.warning("Could not stop the provider of turn %s: %s", record.turn_id, exc)
            if not record.session_id:
                continue  # a provider of no turn this process knows: stopped, nothing to mark
            turn = turns.get(record.session_id)
            partial = (
                interrupted_reply(turn) if turn is not None and turn.id == record.turn_id else None
            )
            end = functools.partial(write_turn_end, turn_id=record.turn_id, reply=partial)
            try:
                self.store.update(record.session_id, end)
            except Exception as exc:  # exiting anyway: report, go on with the others
                log.warning("Could not mark session %s interrupted: %s", record.session_id, exc)
            self.registry.clear(record.session_id, record.turn_id)
