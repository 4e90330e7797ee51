"""AssistantExtension: the Jupyter server extension. Every setting is a traitlet here.

Start-up stays cheap: the engine (pydantic models, the store, psutil) is built on first use,
not when the server starts.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Dict, Float, Int, List, Unicode, default, validate

from ._version import __version__

if TYPE_CHECKING:
    from .service import AssistantService

STORE_ENV = "JUPYTER_ASSISTANT_DIR"
CONTENTS_EVENTS = "https://events.jupyter.org/jupyter_server/contents_service/v1"


def default_store_dir() -> str:
    """``$JUPYTER_ASSISTANT_DIR`` or ``<jupyter data dir>/assistant``: the same rule as kernels."""
    return os.environ.get(STORE_ENV) or os.path.join(jupyter_data_dir(), "assistant")


class AssistantExtension(ExtensionApp):
    """Notebook-tied AI assistant sessions backed by agentic CLIs."""

    name = "jupyter_assistant"
    description = __doc__
    version = __version__
    load_other_extensions = True

    store_dir = Unicode(
        help=(
            "Folder of the session store. Default: $JUPYTER_ASSISTANT_DIR, else "
            "<jupyter data dir>/assistant. Kernels started by this server inherit it."
        )
    ).tag(config=True)

    @default("store_dir")
    def _default_store_dir(self) -> str:
        return default_store_dir()

    default_provider = Unicode(
        "claude", help="Provider of new sessions when the request names none."
    ).tag(config=True)

    allowed_providers = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        help="If set, only these providers can be used (an admin policy; users cannot override).",
    ).tag(config=True)

    cancel_grace_seconds = Float(
        3.0, help="Seconds between SIGTERM and SIGKILL when a turn is cancelled."
    ).tag(config=True)

    turn_timeout_seconds = Float(
        3600.0, help="A turn running longer than this is stopped with a `timeout` error."
    ).tag(config=True)

    idle_timeout_seconds = Float(
        600.0, help="A provider silent (no output) for this long is stopped with a `timeout` error."
    ).tag(config=True)

    max_message_bytes = Int(
        1024 * 1024, help="Largest message (content plus context, UTF-8 bytes); larger is a 413."
    ).tag(config=True)

    max_concurrent_turns = Int(
        8, help="Turns this server runs at once, over all sessions; more is a 409."
    ).tag(config=True)

    max_line_bytes = Int(
        8 * 1024 * 1024,
        help="Longest provider output line; a longer one stops the turn with an error.",
    ).tag(config=True)

    max_reply_bytes = Int(
        10 * 1024 * 1024,
        help="Largest reply text of one turn; a provider printing without end is stopped there.",
    ).tag(config=True)

    checkpoint_interval_seconds = Float(
        2.0,
        help="How often a running turn's partial reply is saved to the store (0: only at the "
        "end). Lets other processes see it grow and keeps it if the server dies.",
    ).tag(config=True)

    max_session_cost_usd = Float(
        None,
        allow_none=True,
        help="Admin policy: once a conversation's reported cost passes this many USD, its "
        "running turn is stopped and further turns are refused (start a new conversation). "
        "None: no cap.",
    ).tag(config=True)

    provider_env = Dict(
        value_trait=Unicode(),
        help="Environment variables added for every provider process (after Jupyter's own "
        "secrets such as JUPYTER_TOKEN are removed).",
    ).tag(config=True)

    reap_interval_seconds = Float(
        30.0,
        help="How often the server looks for providers whose owner (a kernel running a magic) "
        "died mid-turn, to stop them and mark the turn interrupted. 0 disables.",
    ).tag(config=True)

    sse_keepalive_seconds = Float(
        15.0, help="Seconds between keep-alive comments on an idle event stream."
    ).tag(config=True)

    @validate("cancel_grace_seconds", "turn_timeout_seconds", "idle_timeout_seconds")
    def _positive_seconds(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if value <= 0:
            raise ValueError(f"{proposal['trait'].name} must be > 0")
        return value

    @validate("max_message_bytes", "max_concurrent_turns", "max_line_bytes", "max_reply_bytes")
    def _positive_int(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value <= 0:
            raise ValueError(f"{proposal['trait'].name} must be > 0")
        return value

    _service: AssistantService | None = None

    def initialize_settings(self) -> None:
        # Kernels started by this server find the same store (see magics).
        os.environ[STORE_ENV] = self.store_dir
        self.settings["jupyter_assistant"] = self
        event_logger = getattr(self.serverapp, "event_logger", None)
        if event_logger is not None:
            event_logger.add_listener(schema_id=CONTENTS_EVENTS, listener=self._on_contents_event)

    def initialize_handlers(self) -> None:
        from .handlers import routes

        self.handlers.extend(routes())

    @property
    def service(self) -> AssistantService:
        if self._service is None:
            from .providers import ProviderRegistry
            from .service import AssistantService, ServiceSettings
            from .turns import RunnerSettings

            settings = ServiceSettings(
                store_dir=Path(self.store_dir),
                root_dir=Path(self.serverapp.root_dir) if self.serverapp else None,
                default_provider=self.default_provider,
                max_message_bytes=self.max_message_bytes,
                runner=RunnerSettings(
                    cancel_grace_seconds=self.cancel_grace_seconds,
                    turn_timeout_seconds=self.turn_timeout_seconds,
                    idle_timeout_seconds=self.idle_timeout_seconds,
                    max_concurrent_turns=self.max_concurrent_turns,
                    max_line_bytes=self.max_line_bytes,
                    max_reply_bytes=self.max_reply_bytes,
                    max_session_cost_usd=self.max_session_cost_usd,
                    checkpoint_interval_seconds=max(0.0, self.checkpoint_interval_seconds),
                    provider_env=dict(self.provider_env),
                ),
            )
            parent = self.serverapp if self.serverapp is not None else self
            self._service = AssistantService(
                settings, ProviderRegistry(parent=parent, allowed=self.allowed_providers)
            )
        return self._service

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        self._reap_if_needed()
        if self.reap_interval_seconds > 0:
            self._reap_timer = asyncio.create_task(self._reap_periodically())

    def _reap_if_needed(self) -> None:
        # Only build the engine if there are process records at all, so that a normal
        # start-up (and a quiet server) imports nothing heavy.
        records = Path(self.store_dir) / "processes"
        if records.is_dir() and any(records.glob("*.json")):
            self._reaper = asyncio.create_task(self.service.reap_orphans())

    async def _reap_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.reap_interval_seconds)
            try:
                self._reap_if_needed()
            except Exception:
                self.log.exception("Assistant: reaping orphaned providers failed")

    async def _on_contents_event(self, logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        """Sessions follow their notebook when it is renamed or moved in JupyterLab, and are
        kept (detached) when it is deleted."""
        action = data.get("action")
        if action not in ("rename", "delete"):
            return
        try:
            if action == "rename" and data.get("source_path"):
                await self.service.notebook_renamed(data["source_path"], data["path"])
            elif action == "delete":
                await self.service.notebook_deleted(data["path"])
        except Exception:
            self.log.exception("Assistant: could not follow %s of %s", action, data.get("path"))

    async def stop_extension(self) -> None:
        timer = getattr(self, "_reap_timer", None)
        if timer is not None:
            timer.cancel()
        if self._service is not None:
            await self._service.stop()


# Entry points for `jupyter assistantextension` style launching are not needed; the server
# loads the extension through _jupyter_server_extension_points.
