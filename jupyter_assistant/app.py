"""AssistantExtension: the Jupyter server extension. Every setting is a traitlet: the engine's
in ``settings.EngineSettings`` (shared with kernels), the server-only ones here.

Start-up stays cheap: the engine (pydantic models, the store, psutil) is built on first use,
not when the server starts.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Int, Unicode

from ._version import __version__
from .settings import STORE_ENV, TOOLS_URL_ENV, EngineSettings, default_store_dir

if TYPE_CHECKING:
    from .listing import SessionListing
    from .notebook_tools.gateway import NotebookToolsGateway
    from .service import AssistantService

CONTENTS_EVENTS = "https://events.jupyter.org/jupyter_server/contents_service/v1"
__all__ = ["STORE_ENV", "AssistantExtension", "default_store_dir"]


class AssistantExtension(ExtensionApp, EngineSettings):
    """Notebook-tied AI assistant sessions backed by agentic CLIs."""

    name = "jupyter_assistant"
    description = __doc__
    version = __version__
    load_other_extensions = True

    reap_interval_seconds = Float(
        30.0,
        help="How often the server looks for providers whose owner (a kernel running a magic) "
        "died mid-turn, to stop them and mark the turn interrupted. 0 disables.",
    ).tag(config=True)

    sse_keepalive_seconds = Float(
        15.0, help="Seconds between keep-alive comments on an idle event stream."
    ).tag(config=True)

    notebook_tools_enabled = Bool(
        True,
        config=True,
        help="Give each turn's agent the notebook tools (an MCP server named 'notebook': read, "
        "insert, edit, delete and run cells, the kernel's variables) for its own notebook. "
        "Providers whose CLI cannot take them go without.",
    )
    notebook_tools_url = Unicode(
        "",
        config=True,
        help="The URL at which the agents reach the notebook tools' endpoint "
        "(…/api/assistant/mcp). Default: this server's own address on the loopback interface.",
    )
    tool_output_max_chars = Int(
        4000,
        config=True,
        help="Characters of one cell output's text that a notebook tool returns to the model "
        "(the start and the end are kept).",
    )
    tool_image_max_bytes = Int(
        1_000_000,
        config=True,
        help="Largest image output (decoded bytes) a notebook tool returns to the model as an "
        "image; larger ones are scaled down if Pillow is installed, else only named.",
    )
    run_cell_timeout_seconds = Float(
        30.0,
        config=True,
        help="How long the run_cell tool waits for a run before it answers 'running' (the "
        "agent may ask for up to 600 s); the run goes on, and read_notebook shows its outputs.",
    )
    tool_source_max_chars = Int(
        100_000, config=True, help="Largest cell source the agent may write, in characters."
    )

    _service: AssistantService | None = None
    _listing: SessionListing | None = None
    _notebook_tools: NotebookToolsGateway | None = None

    def initialize_settings(self) -> None:
        # The engine's modules log to ``jupyter_assistant.*``: through the server's log, in its
        # format and at its --log-level, as jupyter_server does with tornado's loggers (else
        # a warning such as a reaped provider is a bare line on stderr, with no time).
        if self.serverapp is not None:
            logging.getLogger(__package__).parent = self.serverapp.log
        # Kernels started by this server find the same store (see magics).
        os.environ[STORE_ENV] = self.store_dir
        self._publish_tools_url()
        self.settings["jupyter_assistant"] = self
        event_logger = getattr(self.serverapp, "event_logger", None)
        if event_logger is not None:
            event_logger.add_listener(schema_id=CONTENTS_EVENTS, listener=self._on_contents_event)

    def _publish_tools_url(self) -> None:
        """The kernels this server starts give their %%assistant turns the notebook tools
        too: they find the endpoint in their environment."""
        url = self.notebook_tools_url or tools_url(self.serverapp)
        if self.notebook_tools_enabled and url:
            os.environ[TOOLS_URL_ENV] = url
        else:
            os.environ.pop(TOOLS_URL_ENV, None)

    def initialize_handlers(self) -> None:
        from .handlers import routes

        self.handlers.extend(routes())

    @property
    def service(self) -> AssistantService:
        if self._service is None:
            from .providers import ProviderRegistry
            from .service import AssistantService

            settings = self.service_settings(self.serverapp.root_dir if self.serverapp else None)
            parent = self.serverapp if self.serverapp is not None else self
            listing = self.listing
            self._service = AssistantService(
                settings,
                ProviderRegistry(parent=parent, allowed=self.allowed_providers),
                store=listing.store,
                registry=listing.registry,
            )
            tools = self.notebook_tools
            self._service.runner.notebook_tools = tools
            self._service.runner.open_notebooks = tools  # undo of the cells they edit
            # If the server exits without its clean shutdown (SIGINT without a terminal, as
            # JupyterHub stops servers), no provider it started may outlive it.
            atexit.register(self._service.stop_now)
        return self._service

    @property
    def notebook_tools(self) -> NotebookToolsGateway | None:
        """The notebook tools' gateway (built with the engine), or None when they are off or
        the agents could not reach this server (a UNIX socket)."""
        serving = getattr(self.serverapp, "session_manager", None) is not None  # initialized
        if self._notebook_tools is None and self.notebook_tools_enabled and serving:
            url = self.notebook_tools_url or tools_url(self.serverapp)
            if not url:
                return None
            # The service's runner needs the gateway: building the service first may build
            # it (when a browser's relay poll comes before any other call), and only once.
            service = self.service
            if self._notebook_tools is None:
                self._notebook_tools = self._build_gateway(url, service)
        return self._notebook_tools

    def _build_gateway(self, url: str, service: AssistantService) -> NotebookToolsGateway:
        from .notebook_tools import build_gateway
        from .notebook_tools.capabilities import kernel_grants, turn_running

        gateway = build_gateway(
            self.serverapp,
            url,
            service,
            output_chars=self.tool_output_max_chars,
            image_bytes=self.tool_image_max_bytes,
            source_chars=self.tool_source_max_chars,
            run_timeout=self.run_cell_timeout_seconds,
        )
        runner = service.runner
        gateway.accept_kernel_turns(
            kernel_grants(self.store_dir),
            lambda grant: turn_running(runner.registry, grant),
            runner.ask_owner,
        )
        return gateway

    @property
    def listing(self) -> SessionListing:
        """The session list without the engine (see listing.py); shares the service's store."""
        if self._listing is None:
            from .listing import SessionListing
            from .processes import ProcessRegistry
            from .store import SessionStore

            root_dir = self.serverapp.root_dir if self.serverapp else None
            self._listing = SessionListing(
                SessionStore(self.store_dir),
                ProcessRegistry(self.store_dir),
                Path(root_dir) if root_dir else None,
            )
        return self._listing

    def running_here(self) -> set[str]:
        """Sessions with a turn running in this server (none before the engine is built)."""
        if self._service is None:
            return set()
        return {turn.session_id for turn in self._service.runner.running_here()}

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        self._publish_tools_url()  # again: the port is final once the server listens
        self._reap_if_needed()
        if self.reap_interval_seconds > 0:
            self._reap_timer = asyncio.create_task(self._reap_periodically())
        # Retention (old idle conversations go, never a running one) and the checkpoints of
        # deleted ones, in the background; nothing imported when there is nothing to do.
        checkpoints = Path(self.store_dir) / "checkpoints" / "sessions"
        if self.max_session_age_days is not None or checkpoints.is_dir():
            from .retention import start_housekeeping

            self._pruner = start_housekeeping(self.store_dir, self.max_session_age_days, self.log)

    def _reap_if_needed(self) -> None:
        # Only build the engine if there are process records at all, so that a normal
        # start-up (and a quiet server) imports nothing heavy.
        records = Path(self.store_dir) / "processes"
        if records.is_dir() and (any(records.glob("*.json")) or any(records.glob("warm/*.json"))):
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
        if self._notebook_tools is not None:
            await self._notebook_tools.close()


WILDCARD_IPS = ("", "0.0.0.0", "::", "*", "localhost")


def tools_url(serverapp: Any) -> str | None:
    """The notebook tools' endpoint as an agent on this machine reaches it: the server's port
    on the loopback interface (None if the server listens on a UNIX socket)."""
    if getattr(serverapp, "sock", ""):
        return None
    ip = serverapp.ip
    host = "127.0.0.1" if ip in WILDCARD_IPS else (f"[{ip}]" if ":" in ip else ip)
    scheme = "https" if serverapp.certfile else "http"
    base = serverapp.base_url if serverapp.base_url.endswith("/") else serverapp.base_url + "/"
    return f"{scheme}://{host}:{serverapp.port}{base}api/assistant/mcp"


# Entry points for `jupyter assistantextension` style launching are not needed; the server
# loads the extension through _jupyter_server_extension_points.
