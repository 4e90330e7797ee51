"""Retention: remove conversations that have been idle for longer than an age, never a running
one. Used by ``jupyter assistant sessions prune`` and, when
``c.AssistantExtension.max_session_age_days`` is set, by the server at start-up.

A conversation's age is the time since its last change (``updated_at``). "Running" means a
process record with a live owner (a server or kernel in the middle of a turn), checked under
the session's lock right before its file goes, so a turn cannot start in between.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .errors import NotFound
from .processes import ProcessRegistry
from .store import SessionStore

log = logging.getLogger(__name__)

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.I)
_UNITS = {
    "": "days",
    "d": "days",
    "day": "days",
    "days": "days",
    "h": "hours",
    "hour": "hours",
    "hours": "hours",
    "w": "weeks",
    "week": "weeks",
    "weeks": "weeks",
    "m": "minutes",
    "min": "minutes",
    "minutes": "minutes",
}


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``2w``, ``90m`` or a plain number of days, as a timedelta."""
    match = _AGE.match(text)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise ValueError(f"not an age: {text!r} (use e.g. 30d, 12h, 2w or 90m)")
    age = timedelta(**{unit: float(match.group(1))})
    if age <= timedelta(0):
        raise ValueError(f"the age must be more than zero: {text!r}")
    return age


def parse_timestamp(value: str) -> datetime | None:
    """A stored ``...Z`` timestamp as an aware datetime (None if unreadable)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def sweep_checkpoints(store_dir: str | Path) -> tuple[int, int]:
    """Undo's checkpoints go with their sessions: those of sessions no longer in the store,
    then the file contents no checkpoint refers to any more. Returns (sessions, contents)
    removed; (0, 0) without checkpoints (start-up imports nothing then)."""
    if not (Path(store_dir) / "checkpoints" / "sessions").is_dir():
        return 0, 0
    from .checkpoints import TurnCheckpoints

    store = SessionStore(store_dir)

    def exists(session_id: str) -> bool:
        try:
            return store.exists(session_id)
        except NotFound:  # not a session id at all
            return False

    return TurnCheckpoints(store_dir).sweep(exists)


@dataclass
class PruneResult:
    """What a prune did (or, with ``dry_run``, would do): session summaries."""

    removed: list[dict[str, Any]] = field(default_factory=list)
    running: list[dict[str, Any]] = field(default_factory=list)  # old, but left alone
    failed: list[tuple[dict[str, Any], str]] = field(default_factory=list)


def delete_unless_running(store: SessionStore, registry: ProcessRegistry, session_id: str) -> bool:
    """Delete the session unless a turn runs in it. False if it runs (or is already gone)."""
    try:
        return store.delete(session_id, unless=lambda: registry.is_running(session_id))
    except NotFound:
        return False


def prune(
    store: SessionStore,
    registry: ProcessRegistry,
    older_than: timedelta,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PruneResult:
    """Remove every idle session last changed more than ``older_than`` ago."""
    cutoff = (now or datetime.now(timezone.utc)) - older_than
    result = PruneResult()
    for row in store.list_summaries():
        updated = parse_timestamp(row.get("updated_at", ""))
        if updated is None or updated >= cutoff:
            continue  # never remove what cannot be dated
        if dry_run:
            (result.running if registry.is_running(row["id"]) else result.removed).append(row)
            continue
        try:
            removed = delete_unless_running(store, registry, row["id"])
        except Exception as exc:  # one bad file must not stop the others
            result.failed.append((row, str(exc)))
            continue
        if removed:
            result.removed.append(row)
        elif registry.is_running(row["id"]):
            result.running.append(row)
    if result.removed:
        sweep_checkpoints(store.root)
    return result


def prune_store(store_dir: str | Path, max_age_days: float) -> PruneResult | None:
    """Apply the retention setting to the store at ``store_dir``; None if there is no store
    yet (start-up never creates one)."""
    if not (Path(store_dir) / "sessions").is_dir():
        return None
    store = SessionStore(store_dir)
    registry = ProcessRegistry(store_dir)
    return prune(store, registry, timedelta(days=max_age_days))


def start_housekeeping(
    store_dir: str,
    max_age_days: float | None,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> asyncio.Task[None]:
    """At server start-up, in a thread so the server does not wait (each removal is fsync'd):
    ``prune_store`` when a retention age is set, then the checkpoints of deleted sessions and
    the contents only they referred to; logs what it did."""

    async def run() -> None:
        if max_age_days is not None:
            await asyncio.to_thread(_prune_logged, store_dir, max_age_days, logger)
        try:
            sessions, contents = await asyncio.to_thread(sweep_checkpoints, store_dir)
        except Exception:
            logger.exception("Assistant: removing the checkpoints of deleted conversations failed")
            return
        if sessions or contents:
            logger.info(
                "Assistant: removed the checkpoints of %d deleted conversation(s) and %d file "
                "content(s) no checkpoint refers to",
                sessions,
                contents,
            )

    return asyncio.ensure_future(run())


def _prune_logged(
    store_dir: str, max_age_days: float, logger: logging.Logger | logging.LoggerAdapter[Any]
) -> None:
    try:
        result = prune_store(store_dir, max_age_days)
    except Exception:
        logger.exception("Assistant: removing old conversations failed")
        return
    if result is None:
        return
    if result.removed:
        logger.info(
            "Assistant: removed %d conversation(s) idle for more than %g days "
            "(c.AssistantExtension.max_session_age_days)",
            len(result.removed),
            max_age_days,
        )
    for row, reason in result.failed:
        logger.warning("Assistant: could not remove old conversation %s: %s", row["id"], reason)
