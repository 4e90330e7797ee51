"""The engine in a kernel: the glue between the magics and ``AssistantService``.

Nothing here imports IPython (``magics.py`` is the IPython-facing layer). One
``KernelAssistant`` per kernel finds the notebook, reads the settings, runs the service on
the private engine loop, and follows a turn's events into the cell's view.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from traitlets.config import Config

from .engine_loop import EngineLoop
from .kernel_config import KernelSettings, LoadedConfig, load_config
from .kernel_notebook import NotebookRef, find_notebook, server_root
from .settings import STORE_ENV, TOOLS_URL_ENV

if TYPE_CHECKING:
    from .cell_view import TurnView
    from .service import AssistantService
    from .turns import Turn


def variables_of(user_ns: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
    """kernel_variables in this kernel: what the server's tool reads through a kernel's
    user expressions, read here directly (the same code, in a namespace of its own)."""
    import json

    from .notebook_tools.kernels import VARIABLES_SOURCE

    scope: dict[str, Any] = {"user_ns": user_ns, "names": names, "limit": 100}
    exec(VARIABLES_SOURCE, scope)
    return dict(json.loads(scope["result"]))


# The context a prompt is sent with (variable summaries), if any.
Context = dict[str, Any] | None


class TurnStartInterrupted(KeyboardInterrupt):
    """The kernel was interrupted while a turn was being started; ``started``: the turn had
    started, and was stopped (its end is stored)."""

    def __init__(self, started: bool) -> None:
        super().__init__()
        self.started = started


async def _until_end(turn: Turn) -> None:
    """Read the turn's events up to its terminal one, published once its provider is gone."""
    seen = 0
    while (batch := await turn.next_batch(seen)) is not None:
        seen = batch[-1][0]


@dataclass(frozen=True)
class PermissionAnswer:
    """The user's answer to a tool approval question of a turn."""

    decision: Literal["allow", "deny"]
    scope: Literal["once", "session"] = "once"
    message: str | None = None


# Answers a permission_request event, or None when no answer could be had.
Decider = Callable[[Mapping[str, Any]], "PermissionAnswer | None"]


class KernelAssistant:
    """The engine in this kernel: the notebook, settings, service and turns. One per kernel."""

    def __init__(
        self,
        ipython_config: Config | None = None,
        start_dir: str | None = None,
        namespace: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.ipython_config = ipython_config or Config()
        # The kernel's variables (the shell's user namespace), for the notebook tools.
        self.namespace = namespace
        self.start_dir = start_dir or os.getcwd()
        self.engine = EngineLoop()
        self._service: AssistantService | None = None
        self.settings: KernelSettings | None = None
        self.loaded: LoadedConfig | None = None
        self._reaped = False
        self._root: str | None = None  # the server's root folder ("" if unknown), once read

    # -- setup ---------------------------------------------------------------------------------

    def configure(self) -> KernelSettings:
        if self.settings is None:
            loaded = load_config(self.ipython_config)
            settings = KernelSettings(config=loaded.config)
            # A server that started this kernel told it where its store is: that wins over files.
            if os.environ.get(STORE_ENV):
                settings.store_dir = os.environ[STORE_ENV]
            self.loaded, self.settings = loaded, settings
        return self.settings

    @property
    def service(self) -> AssistantService:
        if self._service is None:
            from .providers import ProviderRegistry
            from .service import AssistantService

            settings = self.configure()
            service_settings = settings.service_settings(root_dir=None)
            # The server streams this kernel's turns to the sidebar from their journals.
            service_settings.runner.journal_events = True
            # Each turn's folder stays inside the root of the server that started this kernel.
            service_settings.runner.root_dir = server_root(os.environ)
            self._service = AssistantService(
                service_settings,
                # Providers are children of the settings, so c.ClaudeCodeProvider.* applies.
                ProviderRegistry(parent=settings, allowed=settings.allowed_providers),
            )
            self._offer_notebook_tools(self._service, settings.store_dir)
            # A kernel shut down mid-turn (restart, close, `exit`) stops its provider too.
            atexit.register(self.close)
        if not self._reaped:
            # Providers left by a kernel that was killed mid-turn are stopped here too.
            self._reaped = True
            self.engine.run(self._service.start())
        return self._service

    def _offer_notebook_tools(self, service: AssistantService, store_dir: str) -> None:
        """The server that started this kernel serves the notebook tools to its turns too: a
        turn's capability is a grant file in the store; the server asks this kernel for its
        approvals and its variables (the kernel is busy running the turn's cell)."""
        url = os.environ.get(TOOLS_URL_ENV)
        if not url:
            return  # not started by a server that serves them (a console, tools off)
        from .notebook_tools.capabilities import FileGrantIssuer, kernel_grants

        runner = service.runner
        runner.notebook_tools = FileGrantIssuer(kernel_grants(store_dir), url)
        runner.answers_owner_calls = True
        if self.namespace is not None:
            namespace = self.namespace

            async def variables(names: list[str]) -> dict[str, Any]:
                return variables_of(namespace(), names)

            runner.kernel_variables = variables

    def config_problems(self) -> list[str]:
        self.configure()
        return list(self.loaded.problems) if self.loaded else []

    def close(self) -> None:
        """Stop any turn this kernel runs and the engine thread (extension unload, exit)."""
        if self._service is not None:
            with contextlib.suppress(Exception):
                self.engine.finish(self.engine.submit(self._service.stop()))
        self.engine.close()
        self._service = None

    # -- sessions ------------------------------------------------------------------------------

    def notebook(self, user_ns: Mapping[str, Any]) -> NotebookRef:
        if self._root is None:
            self._root = server_root(os.environ) or ""
        return find_notebook(user_ns, os.environ, os.getcwd(), self.start_dir, self._root)

    def sessions(self, notebook: NotebookRef) -> list[dict[str, Any]]:
        """The notebook's sessions, most recently used first."""
        service = self.service
        return self.engine.run(service.sessions_for_file(notebook.file))

    def current_session(self, notebook: NotebookRef) -> dict[str, Any] | None:
        """The session the sidebar shows for this notebook: its most recently used one."""
        rows = self.sessions(notebook)
        return rows[0] if rows else None

    def create_session(
        self, notebook: NotebookRef, provider: str | None = None, display_path: str | None = None
    ) -> dict[str, Any]:
        service = self.service
        session = self.engine.run(
            service.create_session_for_file(
                notebook.file, display_path or notebook.display_path, provider=provider
            )
        )
        return session.summary()

    def session_for_turn(
        self, notebook: NotebookRef, provider: str | None, new: bool
    ) -> tuple[dict[str, Any], str | None]:
        """The session a prompt goes to, and a note to show when a new one had to be made."""
        current = self.current_session(notebook)
        # Keep the API path a server gave the notebook's earlier sessions (the kernel only
        # knows the file).
        display = current["path"] if current else None
        if (
            current is not None
            and not new
            and (provider is None or provider == current["provider"])
        ):
            return current, None
        session = self.create_session(notebook, provider, display)
        note = None
        if current is not None and not new:
            note = (
                f"Started a new session with provider {session['provider']!r} "
                f"(this notebook's session uses {current['provider']!r})."
            )
        return session, note

    def get_session(self, session_id: str) -> Any:
        service = self.service
        return self.engine.run(service.get_session(session_id))

    def providers(self) -> dict[str, Any]:
        service = self.service
        return self.engine.run(service.providers_info(refresh=True))

    def last_changes(self, session_id: str) -> tuple[str, dict[str, Any]] | None:
        """The latest turn that changed files and is not undone, and its changes."""
        return self.engine.run(self.service.latest_changed_turn(session_id))

    def undo_last(self, session_id: str, force: bool = False) -> str:
        """Undo the latest turn that changed files; what happened, in a sentence."""
        from .checkpoints.changes import changes_line
        from .errors import ChangedSince

        latest = self.last_changes(session_id)
        if latest is None:
            return "No turn of this conversation changed files that can be undone."
        turn_id, changes = latest
        try:
            result = self.engine.run(self.service.revert_turn(session_id, turn_id, force))
        except ChangedSince as exc:
            return (
                f"Not undone: {', '.join(exc.conflicts)} changed after that turn. "
                "`%assistant --force undo` overwrites them."
            )
        line = changes_line(changes).replace("Changed: ", "", 1)
        missed = result["missed"]
        note = f" Not restored (too large to keep): {', '.join(missed)}." if missed else ""
        return f"Undone: the turn's changes to {line} are taken back.{note}"

    def cancel(self, session_id: str) -> bool:
        service = self.service
        return self.engine.finish(self.engine.submit(service.cancel(session_id)))

    # -- turns -----------------------------------------------------------------------------------

    def start_turn(self, session_id: str, prompt: str, context: Context, model: str | None) -> Turn:
        service = self.service
        future = self.engine.submit(service.post_message(session_id, prompt, context, model))
        try:
            return self.engine.wait(future)
        except KeyboardInterrupt:
            # Interrupted while the turn was starting: it may have started; stop it, and wait
            # for its end as a Stop does (nothing of it may outlive the cell).
            started = False
            with contextlib.suppress(Exception):
                turn = self.engine.finish(future)
                started = True
                self.engine.finish(self.engine.submit(service.cancel(turn.session_id)))
                self.engine.finish(self.engine.submit(_until_end(turn)))
            raise TurnStartInterrupted(started) from None

    def follow(
        self,
        turn: Turn,
        view: TurnView,
        publish: Callable[[TurnView], None],
        interval: float,
        decide: Decider | None = None,
    ) -> None:
        """Fold the turn's events into ``view`` and call ``publish`` at most once per
        ``interval`` seconds, until the turn is over (the last call shows the end). A tool
        approval question is shown at once and answered with ``decide`` (if given)."""
        last_publish = time.monotonic()
        while not view.finished:
            # Events that arrive meanwhile pile up in the turn's buffer and come as one batch.
            wait = last_publish + interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            batch = self.engine.run(turn.next_batch(view.after))
            if batch is None:
                break  # over, and everything was read
            for seq, event in batch:
                view.fold(seq, event)
                if event["type"] == "permission_request" and decide is not None:
                    publish(view)
                    self._decide(turn, view, event, decide)
            publish(view)
            last_publish = time.monotonic()

    @staticmethod
    def question_state(turn: Turn, request_id: str) -> str:
        """``waiting``, or why a question is not waiting any more: ``answered``, ``timeout``
        or ``ended``. Read from another thread than the engine's: plain attribute reads."""
        record = turn.permissions.get(request_id)
        if record is not None and record.by == "timeout":
            return "timeout"
        if record is not None and record.decision is not None:
            return "answered"
        return "ended" if turn.finished or record is None else "waiting"

    def _decide(
        self, turn: Turn, view: TurnView, event: Mapping[str, Any], decide: Decider
    ) -> None:
        answer = decide(event)
        if answer is None:
            return  # no answer could be had: the engine denies it when its time is up
        from .errors import AssistantError
        from .models import PermissionBody

        body = PermissionBody(decision=answer.decision, scope=answer.scope, message=answer.message)
        try:
            self.engine.run(
                self.service.answer_permission(turn.session_id, str(event["request_id"]), body)
            )
        except AssistantError as exc:
            # Too late: it timed out, or the turn ended (the next events say how).
            view.note(f"Your answer came too late: {exc.message}")

    def cancel_turn(self, turn: Turn, view: TurnView) -> None:
        """Stop the turn (the provider's whole process tree) and fold what it left, including
        the terminal event. Waits through further interrupts: leaving early would leave the
        provider running."""
        service = self.service
        self.engine.finish(self.engine.submit(service.cancel(turn.session_id)))
        while not view.finished:
            batch = self.engine.finish(self.engine.submit(turn.next_batch(view.after)))
            if batch is None:
                break
            for seq, event in batch:
                view.fold(seq, event)
