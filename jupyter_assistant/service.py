"""AssistantService: the engine behind the HTTP API and the magics.

It validates and carries out each operation on the store, the turn runner and the providers, and
raises ``errors.AssistantError`` subclasses. It knows nothing of tornado or IPython.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BadRequest, Busy, ChangedSince, NotFound, TooLarge
from .journal import JournalReader, journal_path
from .models import Session
from .processes import ProcessRegistry
from .provider_health import failed_health
from .providers import ProviderRegistry
from .store import SessionStore, validate_session_id
from .turns import NewMessage, RunnerSettings, Turn, TurnRunner
from .workdir import (
    NotebookLocation,
    locate_notebook_file,
    notebook_key_for_file,
    resolve_notebook,
)

if TYPE_CHECKING:
    from .checkpoints import TurnCheckpoints

log = logging.getLogger(__name__)

HEALTH_CACHE_SECONDS = 30.0


@dataclass
class ServiceSettings:
    store_dir: Path
    root_dir: Path | None = None
    default_provider: str = "claude"
    max_message_bytes: int = 1024 * 1024
    runner: RunnerSettings = field(default_factory=RunnerSettings)


class AssistantService:
    def __init__(
        self,
        settings: ServiceSettings,
        providers: ProviderRegistry,
        store: SessionStore | None = None,
        registry: ProcessRegistry | None = None,
    ) -> None:
        """``store`` and ``registry``: those of ``settings.store_dir`` already in use here (the
        server's listing), so that their caches are shared."""
        self.settings = settings
        self.providers = providers
        self.store = store or SessionStore(settings.store_dir)
        self.registry = registry or ProcessRegistry(settings.store_dir)
        self.runner = TurnRunner(self.store, self.registry, providers, settings.runner)
        self._health: dict[str, tuple[float, dict[str, Any]]] = {}
        self._reverting: set[str] = set()  # sessions an undo is putting back
        # Pre-warms for a notebook's next new conversation (prewarm_new): by notebook key and
        # provider, the session (not stored) whose id ``_create`` gives the conversation.
        self._reserved: dict[tuple[str, str], Session] = {}

    # -- providers -------------------------------------------------------------------------

    async def providers_info(self, refresh: bool = False) -> dict[str, Any]:
        names = self.providers.names()
        rows = await asyncio.gather(*(self._provider_health(name, refresh) for name in names))
        return {"default": self.default_provider(), "providers": list(rows)}

    def default_provider(self) -> str:
        """The configured default, or the first allowed provider if the policy excludes it."""
        names = self.providers.names()
        if self.settings.default_provider in names or not names:
            return self.settings.default_provider
        return names[0]

    async def _provider_health(self, name: str, refresh: bool) -> dict[str, Any]:
        cached = self._health.get(name)
        if cached and not refresh and time.monotonic() - cached[0] < HEALTH_CACHE_SECONDS:
            return cached[1]
        provider = self.providers.get(name)
        try:
            row = (await provider.health()).to_json()
        except Exception as exc:  # a broken provider is reported, not raised
            log.exception("Health check of provider %s failed", name)
            row = failed_health(name, provider, exc)
        try:
            row["setup"] = provider.setup_json()
        except Exception:  # a plugin that is not a Provider subclass
            row["setup"] = {"install": None, "login": None}
        self._health[name] = (time.monotonic(), row)
        return row

    # -- sessions --------------------------------------------------------------------------

    def locate(self, api_path: str) -> NotebookLocation:
        if self.settings.root_dir is None:
            raise BadRequest("This assistant has no server root to resolve notebook paths in.")
        return resolve_notebook(self.settings.root_dir, api_path)

    def _status(self, session_id: str, running: set[str] | None = None) -> str:
        if running is not None:
            return "running" if session_id in running else "idle"
        return "running" if self.runner.is_running(session_id) else "idle"

    def _running(self) -> set[str]:
        local = {turn.session_id for turn in self.runner.running_here()}
        return local | self.registry.running_sessions()

    async def create_session(
        self, api_path: str, provider: str | None = None, context: dict[str, Any] | None = None
    ) -> Session:
        return await self._create(self.locate(api_path), provider, context)

    async def create_session_for_file(
        self,
        notebook_file: str,
        display_path: str | None = None,
        provider: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> Session:
        """A session for a notebook known by its absolute file path (a kernel knows its notebook
        this way, from JPY_SESSION_NAME). Keyed like the server's sessions, so both find it."""
        location = locate_notebook_file(notebook_file, display_path)
        return await self._create(location, provider, context)

    async def _create(
        self, location: NotebookLocation, provider: str | None, context: dict[str, Any] | None
    ) -> Session:
        name = provider or self.default_provider()
        self.providers.get(name)  # unknown provider: 400
        session = Session(
            path=location.api_path,
            notebook_key=location.notebook_key,
            working_dir=location.working_dir,
            provider=name,
            context=context or {},
        )
        reserved = self._reserved.get((location.notebook_key, name))
        if reserved is not None and reserved.working_dir == location.working_dir:
            # The agent pre-warmed for this notebook's next conversation waits under this id.
            del self._reserved[(location.notebook_key, name)]
            session.id = reserved.id
        await asyncio.to_thread(self.store.create, session)
        # One pre-warmed for it that this conversation does not take (another provider was
        # chosen, or the folder moved) would idle for warm_idle_seconds.
        await self._end_reserved(lambda key: key == location.notebook_key)
        return session

    async def _end_reserved(self, unused: Callable[[str], bool]) -> None:
        """End the agents pre-warmed for new conversations (``prewarm_new``) of the notebooks
        whose key ``unused`` picks."""
        for reservation, reserved in list(self._reserved.items()):
            if unused(reserved.notebook_key):
                del self._reserved[reservation]
                await self.runner.end_warm(reserved.id)

    async def sessions_for_file(self, notebook_file: str) -> list[dict[str, Any]]:
        """Summaries of one notebook's sessions (newest first), by its absolute file path."""
        key = notebook_key_for_file(notebook_file)
        rows, running = await asyncio.to_thread(
            lambda: (self.store.list_summaries(key), self._running())
        )
        for row in rows:
            row["status"] = self._status(row["id"], running)
        return rows

    # -- the notebook's file moves --------------------------------------------------------------

    def _absolute(self, api_path: str) -> str:
        assert self.settings.root_dir is not None
        root = os.path.realpath(self.settings.root_dir)
        return os.path.join(root, *api_path.strip("/").split("/"))

    async def notebook_renamed(self, old_api_path: str, new_api_path: str) -> int:
        """Re-key the sessions of a renamed or moved notebook (or of every notebook in a
        renamed folder). Returns how many sessions followed. The new place is confined exactly
        as at session creation: a notebook moved where the assistant may not run (outside the
        root, e.g. through a symlinked folder) leaves its sessions detached, where they were."""
        if self.settings.root_dir is None:
            return 0
        old_abs = self._absolute(old_api_path)
        rows = await asyncio.to_thread(self.store.list_summaries)
        moved = 0
        for row in rows:
            key = row["notebook_key"]
            if key != old_abs and not key.startswith(old_abs + os.sep):
                continue
            suffix = key[len(old_abs) :]
            new_path = new_api_path.strip("/") + suffix.replace(os.sep, "/")
            try:
                location: NotebookLocation | None = await asyncio.to_thread(self.locate, new_path)
                reason = None
            except BadRequest as exc:
                location = None
                reason = (
                    f"The notebook was moved to {new_path!r}, where the assistant may not run "
                    f"({exc.message}); this conversation stays here, detached."
                )
                log.warning("Session %s detached: %s", row["id"], reason)

            def follow(
                session: Session,
                location: NotebookLocation | None = location,
                reason: str | None = reason,
            ) -> None:
                if location is None:
                    session.detached = True
                    session.detached_reason = reason
                    return
                session.notebook_key = location.notebook_key
                session.path = location.api_path
                session.working_dir = location.working_dir
                session.detached = False
                session.detached_reason = None

            moved += await self._update_if_exists(row["id"], follow)
            # Its warm provider runs in the old folder, for the old notebook.
            await self.runner.end_warm(row["id"])
        # Pre-warmed for a notebook not there now.
        await self._end_reserved(lambda key: key == old_abs or key.startswith(old_abs + os.sep))
        return moved

    async def notebook_deleted(self, api_path: str) -> int:
        """Keep the sessions of a deleted notebook, marked detached."""
        if self.settings.root_dir is None:
            return 0
        gone = self._absolute(api_path)
        rows = await asyncio.to_thread(self.store.list_summaries)
        detached = 0

        def mark(session: Session) -> None:
            session.detached = True
            session.detached_reason = "The notebook was deleted; the conversation is kept."

        for row in rows:
            key = row["notebook_key"]
            if key == gone or key.startswith(gone + os.sep):
                detached += await self._update_if_exists(row["id"], mark)
        return detached

    async def _update_if_exists(self, session_id: str, change: Callable[[Session], None]) -> int:
        """Apply ``change`` to a listed session: 1, or 0 if it was deleted meanwhile."""
        try:
            await asyncio.to_thread(self.store.update, session_id, change)
        except NotFound:
            return 0
        return 1

    async def get_session(self, session_id: str) -> Session:
        validate_session_id(session_id)
        session = await asyncio.to_thread(self.store.load, session_id)
        session.status = self._status(session_id)  # type: ignore[assignment]
        return session

    async def delete_session(self, session_id: str) -> None:
        validate_session_id(session_id)
        if not await asyncio.to_thread(self.store.exists, session_id):
            raise NotFound(f"Unknown session: {session_id}")
        await self.runner.cancel(session_id)
        await self.runner.end_warm(session_id)
        await asyncio.to_thread(self.store.delete, session_id)
        self.runner.turns.pop(session_id, None)
        if self.runner.checkpoints is not None:  # its checkpoints go with it
            await asyncio.to_thread(self.runner.checkpoints.delete_session, session_id)

    # -- undo ------------------------------------------------------------------------------

    async def turn_changes(self, session_id: str, turn_id: str) -> dict[str, Any]:
        """What a turn changed in the session's folder and notebook (checkpoints/)."""
        from .checkpoints import UnknownTurn

        checkpoints = await self._checkpoints(session_id)
        try:
            return await asyncio.to_thread(checkpoints.changes, session_id, turn_id)
        except UnknownTurn:
            raise NotFound(f"No checkpoint of turn {turn_id} in this session.") from None

    async def revert_turn(self, session_id: str, turn_id: str, force: bool) -> dict[str, Any]:
        """Put the folder back as it was before ``turn_id``, undoing the later turns first.
        Busy while a turn runs; ChangedSince if a file changed after them (unless forced)."""
        from .checkpoints import Conflict, UnknownTurn

        checkpoints = await self._checkpoints(session_id)
        if session_id in self._reverting:
            raise Busy("An undo of this session is under way.")
        self._reverting.add(session_id)  # no turn starts here until its cells are back too
        try:
            return await self._revert(checkpoints, session_id, turn_id, force)
        except UnknownTurn:
            raise NotFound(f"No checkpoint of turn {turn_id} in this session.") from None
        except Conflict as conflict:
            raise ChangedSince(
                f"{len(conflict.paths)} file(s) or cell(s) changed after the turn(s) to undo; "
                "undo anyway with force to overwrite them.",
                conflict.paths,
            ) from None
        finally:
            self._reverting.discard(session_id)

    async def _revert(
        self, checkpoints: TurnCheckpoints, session_id: str, turn_id: str, force: bool
    ) -> dict[str, Any]:
        session = await asyncio.to_thread(self.store.load, session_id)
        # The notebook's cells as they are now where it is open (the notebook tools edit
        # it there, not in its file), for the conflicts.
        tools = self.runner.open_notebooks
        now = await tools.notebook_text(session.path) if tools is not None else None

        def revert() -> dict[str, Any]:
            # Under the session's lock, as a turn's claim is: none can start meanwhile.
            with self.store.lock(session_id):
                if self.runner.is_running(session_id):
                    raise Busy("A turn is running in this session; stop it or wait, then undo.")
                return checkpoints.revert(session_id, turn_id, force, now)

        result = await asyncio.to_thread(revert)
        cells = result.pop("cells_target", None)
        if cells is not None:
            notebook = os.path.basename(session.path)
            try:
                if tools is None:
                    raise RuntimeError("the notebook tools are not served here")
                # Where: in the open notebook (the browser has them already), or its file.
                result["cells"] = await tools.restore_cells(session.path, cells)
            except Exception as exc:  # said, never silently skipped
                log.warning("Undo could not restore the cells of %s: %s", session.path, exc)
                result["missed"] = sorted({*result["missed"], notebook})
            else:
                result["restored"] = sorted({*result["restored"], notebook})
        return result

    async def latest_changed_turn(self, session_id: str) -> tuple[str, dict[str, Any]] | None:
        """The latest turn that changed something and is not undone, with its changes."""
        checkpoints = await self._checkpoints(session_id)
        for turn_id in reversed(await asyncio.to_thread(checkpoints.turns, session_id)):
            changes = await self.turn_changes(session_id, turn_id)
            if not changes["reverted"] and (changes["files"] or changes["cells"]):
                return turn_id, changes
        return None

    async def _checkpoints(self, session_id: str) -> TurnCheckpoints:
        validate_session_id(session_id)
        if not await asyncio.to_thread(self.store.exists, session_id):
            raise NotFound(f"Unknown session: {session_id}")
        if self.runner.checkpoints is None:
            raise NotFound("Undo is off here (c.AssistantExtension.turn_checkpoints = False).")
        return self.runner.checkpoints

    # -- turns -----------------------------------------------------------------------------

    def check_message_size(self, content: str, context: dict[str, Any] | None) -> None:
        import json

        size = len(content.encode())
        if context:
            size += len(json.dumps(context).encode())
        if size > self.settings.max_message_bytes:
            raise TooLarge(
                f"The message and its context are {size} bytes; the limit is "
                f"{self.settings.max_message_bytes} (c.AssistantExtension.max_message_bytes)."
            )

    async def post_message(
        self,
        session_id: str,
        content: str,
        context: dict[str, Any] | None = None,
        model: str | None = None,
    ) -> Turn:
        validate_session_id(session_id)
        self.check_message_size(content, context)
        if not await asyncio.to_thread(self.store.exists, session_id):
            raise NotFound(f"Unknown session: {session_id}")
        if session_id in self._reverting:
            raise Busy("An undo of this session is under way; send the message when it is done.")
        return await self.runner.start(session_id, NewMessage(content, context, model))

    async def cancel(self, session_id: str) -> bool:
        validate_session_id(session_id)
        if not await asyncio.to_thread(self.store.exists, session_id):
            raise NotFound(f"Unknown session: {session_id}")
        return await self.runner.cancel(session_id)

    async def prewarm(self, session_id: str) -> str:
        """Start the session's provider before its next turn (``TurnRunner.prewarm``)."""
        validate_session_id(session_id)
        if session_id in self._reverting:
            return "busy"
        return await self.runner.prewarm(session_id)

    async def prewarm_new(self, api_path: str) -> str:
        """Start the agent of the notebook's next new conversation (the sidebar, on a notebook
        that has none yet): the conversation that ``create_session`` makes for this notebook
        with the default provider gets the id it waits under, and its first turn takes it."""
        location = self.locate(api_path)
        name = self.default_provider()
        key = (location.notebook_key, name)
        reserved = self._reserved.get(key)
        if reserved is None or reserved.working_dir != location.working_dir:
            reserved = Session(
                path=location.api_path,
                notebook_key=location.notebook_key,
                working_dir=location.working_dir,
                provider=name,
            )
        answer = await self.runner.prewarm_session(reserved)
        if answer in ("started", "warm"):
            self._reserved[key] = reserved
        return answer

    def events_of(
        self, session_id: str, last_event_id: str | None
    ) -> tuple[Turn | JournalReader | None, int]:
        """The turn to stream and the sequence number to start after: this process's latest
        turn of the session, or the journal of one a kernel is running."""
        validate_session_id(session_id)
        if not self.store.exists(session_id):
            raise NotFound(f"Unknown session: {session_id}")
        turn: Turn | JournalReader | None = self.runner.latest(session_id)
        if turn is None or turn.finished:
            turn = self._journal_of(session_id) or turn
        if turn is None:
            return None, 0
        after = 0
        if last_event_id:
            turn_id, _, seq = last_event_id.rpartition(":")
            if turn_id == turn.id and seq.isdigit():
                after = int(seq)
        return turn, after

    def _journal_of(self, session_id: str) -> JournalReader | None:
        """The event journal of the turn another live process (a kernel) runs, if it has one."""
        record = self.registry.read(session_id)
        if record is None or record.owned_by_me() or not record.owner_alive():
            return None
        try:
            path = journal_path(self.store.root, session_id, record.turn_id)
        except ValueError:
            return None
        if not path.exists():
            return None

        def still_running() -> bool:  # that turn, in that process (its record goes at its end)
            current = self.registry.read(session_id)
            return (
                current is not None and current.turn_id == record.turn_id and current.owner_alive()
            )

        return JournalReader(path, record.turn_id, still_running)

    async def answer_permission(self, session_id: str, request_id: str, body: Any) -> None:
        validate_session_id(session_id)
        if not await asyncio.to_thread(self.store.exists, session_id):
            raise NotFound(f"Unknown session: {session_id}")
        await self.runner.answer_permission(
            session_id, request_id, body.decision == "allow", body.scope, body.message
        )

    async def start(self) -> None:
        """Start-up housekeeping: reap providers that a dead server or kernel left behind."""
        reaped = await self.runner.reap_orphans()
        if reaped:
            log.warning(
                "Reaped %d provider process tree(s) left by a stopped server/kernel", reaped
            )

    async def reap_orphans(self) -> int:
        """Periodic housekeeping: a kernel that died mid-turn leaves its provider behind."""
        return await self.runner.reap_orphans()

    def stop_now(self) -> None:
        """Last resort at interpreter exit, when the server stopped without its clean shutdown
        (e.g. SIGINT without a terminal, as JupyterHub stops servers)."""
        self.runner.stop_now()

    async def stop(self) -> None:
        await self.runner.shutdown()
