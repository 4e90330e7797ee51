"""The ``notebook`` MCP server: the notebook tools as MCP tools (the ``mcp`` SDK's MCPServer).

It is served over MCP's streamable HTTP from the Jupyter server itself (asgi_bridge.py), not as
a process per turn: a stdio server built on the SDK takes about 0.8 s to import and connect,
which the CLI waits for before its first model request. Each request carries the turn's
capability in a header; every tool call looks it up again (``Dispatch``), so a request is only
ever served for the notebook and turn its capability names.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, ImageContent, TextContent, ToolAnnotations

from .capabilities import SERVER_NAME, capability_of
from .cells import ToolError

INSTRUCTIONS = (
    "Tools for the Jupyter notebook this conversation belongs to (always that notebook, "
    "whichever one the user looks at). Read it with read_notebook before you change it; cells "
    "are named by their id (stable) or their index (changes when cells move). Prefer editing "
    "and running cells here over rewriting the .ipynb file, which collides with the open "
    "document."
)

# Runs a tool for a capability: (capability, tool, arguments) -> the tool's JSON result.
Dispatch = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]


def as_content(result: dict[str, Any]) -> list[TextContent | ImageContent]:
    """A tool's JSON result as MCP content: the JSON as text, then each attached image as
    image content (the JSON says which: ``"image/png (attached: image 1)"``)."""
    images: list[ImageContent] = []
    for output in _outputs(result):
        for image in output.pop("image_data", []):
            images.append(ImageContent(type="image", data=image["data"], mime_type=image["mime"]))
            output["images"] = [
                f"{mime} (attached: image {len(images)})" if mime == image["mime"] else mime
                for mime in output.get("images", [])
            ]
    # Compact: with an indent, json encodes in Python (3x slower), and the model reads no
    # better for it.
    text = TextContent(
        type="text", text=json.dumps(result, ensure_ascii=False, separators=(",", ":"))
    )
    return [text, *images]


def _outputs(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The outputs in a result: of each cell read, or of the one cell run."""
    cells = result["cells"] if isinstance(result.get("cells"), list) else [result]
    found: list[dict[str, Any]] = []
    for cell in cells:
        outputs = cell.get("outputs") if isinstance(cell, dict) else None
        if isinstance(outputs, list):
            found += [output for output in outputs if isinstance(output, dict)]
    return found


def build_server(dispatch: Dispatch) -> MCPServer:
    """The MCP server whose tools run through ``dispatch``."""
    server = _quiet_server()
    server.middleware.append(_tools_only)
    reading = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
    editing = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
    deleting = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)
    running = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=True)

    async def call(ctx: Context, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        given = {key: value for key, value in arguments.items() if value is not None}
        try:
            result = await dispatch(capability_of(ctx.headers), tool, given)
        except ToolError as exc:
            return CallToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)
        return CallToolResult(content=list(as_content(result)))

    @server.tool(annotations=reading, structured_output=False)
    async def read_notebook(
        ctx: Context,
        start: int | None = None,
        end: int | None = None,
        include_outputs: bool = True,
    ) -> CallToolResult:
        """The notebook's cells from index `start` to `end` (exclusive; default: all), each
        with its index, id, cell_type, source, execution_count and outputs (summarized: long
        text cut, tables as text, images attached), and the kernel's name and state."""
        return await call(
            ctx, "read_notebook", locals_of(start=start, end=end, include_outputs=include_outputs)
        )

    @server.tool(annotations=editing, structured_output=False)
    async def insert_cell(
        ctx: Context,
        source: str = "",
        cell_type: str = "code",
        index: int | None = None,
        after_id: str | None = None,
    ) -> CallToolResult:
        """Insert a cell (cell_type code, markdown or raw) at `index`, or right after the cell
        whose id is `after_id` (default: at the end). Returns the new cell's id and index."""
        return await call(
            ctx,
            "insert_cell",
            locals_of(source=source, cell_type=cell_type, index=index, after_id=after_id),
        )

    @server.tool(annotations=editing, structured_output=False)
    async def edit_cell(
        ctx: Context, source: str, id: str | None = None, index: int | None = None
    ) -> CallToolResult:
        """Replace the source of the cell with this `id` (or at this `index`). A code cell's
        outputs are cleared: they belonged to the old source."""
        return await call(ctx, "edit_cell", locals_of(source=source, id=id, index=index))

    @server.tool(annotations=deleting, structured_output=False)
    async def delete_cell(
        ctx: Context, id: str | None = None, index: int | None = None
    ) -> CallToolResult:
        """Delete the cell with this `id` (or at this `index`)."""
        return await call(ctx, "delete_cell", locals_of(id=id, index=index))

    @server.tool(annotations=running, structured_output=False)
    async def run_cell(
        ctx: Context,
        id: str | None = None,
        index: int | None = None,
        timeout_seconds: float | None = None,
    ) -> CallToolResult:
        """Run the code cell with this `id` (or at this `index`) in the notebook's kernel
        (started if none runs) and return its status (ok, error, running), execution count
        and outputs. A cell still running at the timeout keeps running; read_notebook shows
        its outputs so far."""
        return await call(
            ctx, "run_cell", locals_of(id=id, index=index, timeout_seconds=timeout_seconds)
        )

    @server.tool(annotations=reading, structured_output=False)
    async def kernel_variables(ctx: Context, names: list[str] | None = None) -> CallToolResult:
        """The variables in the notebook's kernel (or only `names`): each one's name, type,
        shape or length, and a short repr."""
        return await call(ctx, "kernel_variables", locals_of(names=names))

    return server


async def _tools_only(ctx: Any, call_next: Any) -> Any:
    """The server says it offers tools only: ``MCPServer`` always serves (empty) prompts and
    resources, and says so in its answer to ``initialize``, so that a client asks for both
    lists too before it goes on (two more requests per turn), and Claude Code gives its model
    three tools more to read resources that do not exist."""
    result = await call_next(ctx)
    if ctx.method == "initialize" and isinstance(result, dict):
        capabilities = result.get("capabilities")
        if isinstance(capabilities, dict):
            kept = {k: v for k, v in capabilities.items() if k not in ("prompts", "resources")}
            result = {**result, "capabilities": kept}
    return result


def _quiet_server() -> MCPServer:
    """The SDK's server, without its logging set-up: ``MCPServer()`` calls
    ``logging.basicConfig`` (a ``rich`` handler on the root logger at INFO, for every logger
    of the Jupyter server's process) and its streamable HTTP transport logs a line at INFO for
    every request ("Terminating session: None"). The root logger is left as it was, and the
    SDK's own loggers say only warnings and errors."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        server = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS, log_level="WARNING")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    logging.getLogger("mcp").setLevel(logging.WARNING)
    return server


def locals_of(**arguments: Any) -> dict[str, Any]:
    return arguments
