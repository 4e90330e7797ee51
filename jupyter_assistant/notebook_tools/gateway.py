"""The notebook tools as the server offers them: capabilities per turn, the ``notebook`` MCP
server, and the approval of each call.

The engine asks ``issue`` for a turn's access (the MCP endpoint's URL and a new capability)
and ``revoke``s it when the turn ends; the HTTP handler hands each request to ``handle``.
A tool call is served only if its capability is live, and only after ``Approver`` let it run.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import importlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from .asgi_bridge import AsgiResponse, call_asgi
from .capabilities import CAPABILITY_HEADER, SERVER_NAME, CapabilityRegistry, Grant, GrantFiles
from .cells import ToolError, find_cell
from .toolbox import TOOLS, NotebookStorage, NotebookToolbox

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    from ..providers.base import NotebookToolsAccess

log = logging.getLogger(__name__)


class Approver(Protocol):
    async def approve(self, grant: Grant, tool: str, arguments: dict[str, Any]) -> None:
        """Return if the call may run; raise ToolError (with the reason) if it may not."""


# Asks the turn's approval broker: (session_id, turn_id, tool_name, input, edits, summary) ->
# None if the call may run, else why not (TurnRunner.approve_served).
# Asks the process that runs a turn (TurnRunner.ask_owner): session, turn, kind, payload.
AskOwner = Callable[[str, str, str, dict[str, Any]], Awaitable[dict[str, Any]]]

ApproveServed = Callable[[str, str, str, Any, bool, str], Awaitable["str | None"]]


class TurnApprover:
    """Each notebook tool call is decided by its turn's approval policy, as the agent's own
    tool calls are: ``mcp__notebook__<tool>`` with the notebook's path, so that an answer
    "for this session" covers that tool on this notebook."""

    def __init__(
        self, approve: ApproveServed, root_dir: str, storage: NotebookStorage | None = None
    ) -> None:
        self._approve = approve
        self.root_dir = root_dir
        self.storage = storage  # to show the user what a call changes or runs

    async def approve(self, grant: Grant, tool: str, arguments: dict[str, Any]) -> None:
        kind = TOOLS[tool][1] if tool in TOOLS else "run"
        tool_input = {"notebook_path": os.path.join(self.root_dir, grant.notebook_path)}
        tool_input.update(arguments)
        summary = await self.summary(grant, tool, arguments) if kind != "read" else ""
        refusal = await self._approve(
            grant.session_id,
            grant.turn_id,
            f"mcp__{SERVER_NAME}__{tool}",
            tool_input,
            kind == "edit",
            summary,
        )
        if refusal is not None:
            raise ToolError(refusal)

    async def summary(self, grant: Grant, tool: str, arguments: dict[str, Any]) -> str:
        """What the user is asked about: the code a run runs, the lines an edit changes
        (a diff, as for a file), the cell a delete removes, the source an insert adds.
        Empty when it cannot be told (the call then fails on its own, with its reason)."""
        source = arguments.get("source")
        if tool == "insert_cell":
            return _diff("", source) if isinstance(source, str) else ""
        if self.storage is None:
            return ""
        try:
            notebook = await self.storage.load(grant.notebook_path)
            cell = notebook.cells[find_cell(notebook, arguments.get("id"), arguments.get("index"))]
        except (ToolError, IndexError):
            return ""
        current = "".join(cell.source) if isinstance(cell.source, list) else str(cell.source)
        if tool == "edit_cell":
            return _diff(current, source) if isinstance(source, str) else ""
        if tool == "delete_cell":
            return _diff(current, "")
        return current  # run_cell: the code that will run


def _diff(before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), "cell", "cell", lineterm="", n=2
    )
    return "\n".join(list(lines)[2:])  # without the ---/+++ header


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("The notebook tools' MCP server did not start: %s", task.exception())


class NotebookToolsGateway:
    def __init__(self, toolbox: NotebookToolbox, url: str, approver: Approver | None = None):
        self.toolbox = toolbox
        self.url = url  # where the CLIs reach the MCP endpoint
        self.approver = approver
        self.capabilities = CapabilityRegistry()
        self._ask_owner: AskOwner | None = None
        self._manager: StreamableHTTPSessionManager | None = None
        self._serving: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._warming: asyncio.Future[Any] | None = None
        # Pre-warms waiting for their CLI to list the tools (expect_listing).
        self._listings: dict[str, asyncio.Event] = {}

    # -- per turn ----------------------------------------------------------------------------

    def issue(
        self, session_id: str, turn_id: str, notebook_path: str, capability: str | None = None
    ) -> NotebookToolsAccess:
        """A turn's access; ``capability``: the one a warm provider's process already holds
        (turns/warm.py), granted again for this turn only."""
        from ..providers.base import NotebookToolsAccess

        capability = self.capabilities.issue(session_id, turn_id, notebook_path, capability)
        if self._serving is None and self._warming is None:
            # The MCP server starts while the CLI does: a CLI that connects first would wait
            # for the SDK's import (about a second) and may give up on the tools.
            self._warming = asyncio.get_running_loop().create_task(self._started())
            self._warming.add_done_callback(_log_failure)
        return NotebookToolsAccess(SERVER_NAME, self.url, CAPABILITY_HEADER, capability)

    def revoke(self, turn_id: str) -> None:
        self.capabilities.revoke(turn_id)

    def expect_listing(self, capability: str) -> asyncio.Event:
        """Set once the agent holding ``capability`` has listed the tools. A pre-warmed CLI
        (turns/warm.py) connects to its MCP servers after it started, with no turn running:
        its grant must live until it has, or the tools fail in that process for good."""
        return self._listings.setdefault(capability, asyncio.Event())

    def stop_expecting(self, capability: str) -> None:
        self._listings.pop(capability, None)

    # -- for undo (the runner's checkpoints, the service's revert) ----------------------------

    async def notebook_text(self, path: str) -> str | None:
        return await self.toolbox.notebook_text(path)

    async def restore_cells(self, path: str, target_json: str) -> str:
        return await self.toolbox.restore_cells(path, target_json)

    def accept_kernel_turns(
        self, files: GrantFiles, running: Callable[[Grant], bool], ask_owner: AskOwner
    ) -> None:
        """Serve the turns kernels run too (``%%assistant``): their grants are files, each
        live while ``running`` says so; their kernel answers what only it knows."""
        self.capabilities.files = files
        self.capabilities.running = running
        self._ask_owner = ask_owner

    def warm(self) -> None:
        """Start the MCP server now (a turn is likely soon), so a CLI's first connection does
        not wait for the SDK's import and give up on the tools."""
        if self._serving is None and self._warming is None:
            self._warming = asyncio.get_running_loop().create_task(self._started())
            self._warming.add_done_callback(_log_failure)

    async def dispatch(self, capability: str, tool: str, arguments: dict[str, Any]) -> Any:
        grant = self.capabilities.check(capability)
        if grant.owner_pid is not None and tool == "run_cell":
            # The kernel runs this turn in a cell: a run would wait behind that cell.
            raise ToolError(
                "run_cell cannot run now: this turn runs inside the notebook's own kernel "
                "(a %%assistant cell), which is busy with it until the turn ends. The cell "
                "is in the notebook; say that the user can run it after this turn."
            )
        if self.approver is not None:
            await self.approver.approve(grant, tool, arguments)
        # The turn may have ended while the user was asked.
        self.capabilities.check(capability)
        if grant.owner_pid is not None and tool == "kernel_variables":
            return await self._kernel_variables(grant, arguments)
        return await self.toolbox.call(grant, tool, arguments)

    async def _kernel_variables(self, grant: Grant, arguments: dict[str, Any]) -> Any:
        """A kernel's turn: the kernel reads its own variables (it is busy with the cell)."""
        names = arguments.get("names", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ToolError("names must be a list of variable names.")
        if self._ask_owner is None:
            raise ToolError("The kernel running this turn cannot be asked for its variables.")
        try:
            answer = await self._ask_owner(
                grant.session_id, grant.turn_id, "variables", {"names": names}
            )
        except Exception as exc:  # OwnerGone: the turn ended meanwhile
            raise ToolError(f"The kernel did not answer: {exc}.") from exc
        if "error" in answer:
            raise ToolError(str(answer["error"]))
        return answer

    # -- the MCP endpoint ----------------------------------------------------------------------

    def authorized(self, capability: str) -> bool:
        try:
            self.capabilities.check(capability)
        except Exception:
            return False
        self.warm()  # a kernel's turn knocks before its CLI starts (FileGrantIssuer)
        return True

    async def handle(
        self, method: str, headers: list[tuple[str, str]], body: bytes, capability: str = ""
    ) -> AsgiResponse:
        manager = await self._started()
        response = await call_asgi(manager.handle_request, method, "/mcp", headers, body)
        listing = self._listings.get(capability) if self._listings else None
        if listing is not None and b'"tools/list"' in body and response.status == 200:
            del self._listings[capability]
            listing.set()
        return response

    async def _started(self) -> StreamableHTTPSessionManager:
        if self._serving is None:
            # Imported in a thread: the SDK takes about a second, which the server's other
            # requests must not wait for.
            await asyncio.to_thread(importlib.import_module, f"{__package__}.mcp_server")
        if self._serving is None:
            from mcp.server.transport_security import TransportSecuritySettings

            from .mcp_server import build_server

            server = build_server(self.dispatch)
            # Stateless, JSON answers: every request stands alone, authorized by its header.
            # The Jupyter server checks the Host and Origin itself. (The Starlette app this
            # returns is not used: its session manager serves the requests.)
            server.streamable_http_app(
                json_response=True,
                stateless_http=True,
                transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            )
            self._manager = server.session_manager
            self._serving = asyncio.create_task(self._serve(self._manager))
        await self._ready.wait()
        assert self._manager is not None
        return self._manager

    async def _serve(self, manager: StreamableHTTPSessionManager) -> None:
        try:
            async with manager.run():
                self._ready.set()
                await self._closing.wait()
        except Exception:
            log.exception("The notebook tools' MCP server stopped")
            raise

    async def close(self) -> None:
        await self.toolbox.close()
        self._closing.set()
        if self._serving is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._serving, 5)
