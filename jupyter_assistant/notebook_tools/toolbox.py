"""The notebook tools as calls: a tool name and JSON arguments in, a JSON result out.

The arguments are checked here (unknown ones, wrong types) before the operation runs, so that
whatever transport brings the call (the HTTP API that the MCP server forwards to) gives the
model the same clear errors. Where a call works, in this order: the notebook open in the
user's JupyterLab (relay.py: the browser makes the change, so the notebook's undo covers it; with
jupyter-collaboration that open notebook is the shared document, so everyone sees it), the
shared document of a room no such browser holds (shared_document.py), else the file, through a
``NotebookStorage`` (Jupyter's contents manager).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import nbformat

from . import cells
from .capabilities import Grant
from .cells import Author, CellLimits, ToolError
from .kernels import MAX_RUN_TIMEOUT_SECONDS, Execution, NotebookKernels
from .outputs import OutputLimits, summarize_output
from .relay import BrowserRelay, NoAnswer

if TYPE_CHECKING:
    from .shared_document import SharedDocuments

log = logging.getLogger(__name__)

# How long the open notebook in a browser may take to answer a read or an edit, and a run.
LIVE_ANSWER_SECONDS = 5.0
LIVE_RUN_SECONDS = 24 * 3600.0


class NotebookStorage(Protocol):
    """Where a notebook is read from and written to."""

    async def load(self, path: str) -> Any: ...

    async def read(self, path: str) -> Any:
        """For a read only (nothing will be saved): may skip what only a save needs."""
        ...

    async def save(self, path: str, notebook: Any) -> None: ...


class LiveDocument(Protocol):
    """A notebook open for editing elsewhere than in its file: its changes are made there."""

    async def snapshot(self) -> Any | None:
        """The notebook as it is there (nbformat); None: it is not open there any more."""

    async def apply(self, op: dict[str, Any]) -> None:
        """Make the change ``op``: ``insert {index, cell}``, ``edit {id, source, metadata,
        clear_outputs}`` or ``delete {id}``."""

    async def run(
        self, execution: Execution, code: str, kernelspec: str | None, timeout: float
    ) -> asyncio.Task[bool]:
        """Start running the cell ``execution.cell_id``: a task that ends with the run, True
        when its outputs are kept there (False: the caller saves them in the file)."""
        ...


class LiveDocuments(Protocol):
    async def find(self, path: str) -> LiveDocument | None: ...


class BrowserDocuments:
    """The notebooks open in a browser's JupyterLab, which carries out the requests."""

    def __init__(self, relay: BrowserRelay) -> None:
        self.relay = relay

    async def find(self, path: str) -> LiveDocument | None:
        return BrowserDocument(self.relay, path) if self.relay.is_open(path) else None


class BrowserDocument:
    def __init__(self, relay: BrowserRelay, path: str) -> None:
        self.relay = relay
        self.path = path

    async def snapshot(self) -> Any | None:
        try:
            answer = await self.relay.ask(self.path, {"op": "snapshot"}, LIVE_ANSWER_SECONDS)
        except NoAnswer as exc:
            # A browser that took the request and went away (a tab closed mid-poll): nothing
            # was changed yet, so the file is the next best place.
            log.info("The open notebook %s did not answer (%s); using the file", self.path, exc)
            return None
        if answer is None:
            return None
        try:
            notebook = nbformat.from_dict(answer["notebook"])  # type: ignore[no-untyped-call]
            nbformat.validate(notebook)
        except Exception as exc:  # KeyError, nbformat's ValidationError
            raise ToolError(f"The open notebook could not be read: {exc}.") from exc
        return notebook

    async def apply(self, op: dict[str, Any]) -> None:
        if await self.relay.ask(self.path, op, LIVE_ANSWER_SECONDS) is None:
            raise ToolError("The notebook was closed in the browser meanwhile; try again.")

    async def run(
        self, execution: Execution, code: str, kernelspec: str | None, timeout: float
    ) -> asyncio.Task[bool]:
        # In the notebook tab's kernel, as the user's own run: its outputs show under the cell.
        return asyncio.create_task(self._run(execution))

    async def _run(self, execution: Execution) -> bool:
        try:
            op = {"op": "run", "id": execution.cell_id}
            answer = await self.relay.ask(self.path, op, LIVE_RUN_SECONDS)
            if answer is None:
                execution.status = "aborted"
            else:
                execution.outputs = list(answer.get("outputs") or [])
                execution.execution_count = answer.get("execution_count")
                execution.status = str(answer.get("status") or "ok")
        except ToolError as exc:
            execution.status = "error"
            execution.outputs = [
                {"output_type": "error", "ename": "RunFailed", "evalue": str(exc), "traceback": []}
            ]
        finally:
            execution.done.set()
        return True


class ContentsStorage:
    """A notebook file through Jupyter's contents manager (sync or async): cell ids kept, the
    file written as JupyterLab writes it, with its checkpoints."""

    def __init__(self, contents_manager: Any) -> None:
        self.contents = contents_manager

    async def load(self, path: str) -> Any:
        try:
            model = await _maybe_await(self.contents.get(path, content=True, type="notebook"))
        except Exception as exc:  # the contents manager raises tornado's HTTPError
            raise ToolError(f"The notebook {path} cannot be read: {_reason(exc)}.") from exc
        return model["content"]

    async def read(self, path: str) -> Any:
        """The notebook for a read only, without what a read for the model does not need: a
        file of the file contents manager is parsed in a thread, unvalidated and unsigned
        (the signature decides only whether a browser trusts its outputs). Anything else, or
        an older format, goes through ``load``."""
        locate = getattr(self.contents, "_get_os_path", None)
        hidden = any(part.startswith(".") for part in path.split("/"))
        if locate is None or (hidden and not getattr(self.contents, "allow_hidden", False)):
            return await self.load(path)  # the contents manager's own checks apply
        try:
            os_path = locate(path)
            notebook = await asyncio.to_thread(_parse_current, os_path)
        except Exception:  # a missing file, a hidden path, bad JSON: load says why
            notebook = None
        return notebook if notebook is not None else await self.load(path)

    async def save(self, path: str, notebook: Any) -> None:
        model = {"type": "notebook", "format": "json", "content": notebook}
        try:
            await _maybe_await(self.contents.save(model, path))
        except Exception as exc:
            raise ToolError(f"The notebook {path} cannot be saved: {_reason(exc)}.") from exc


def _parse_current(os_path: str) -> Any | None:
    """A notebook file of the current format (4.5+: every cell has an id), else None."""
    with open(os_path, encoding="utf-8") as file:
        data = json.load(file)
    if data.get("nbformat") != 4 or data.get("nbformat_minor", 0) < 5:
        return None
    cells = data.get("cells")
    if not isinstance(cells, list) or not all(isinstance(c, dict) and c.get("id") for c in cells):
        return None
    return nbformat.from_dict(data)  # type: ignore[no-untyped-call]


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "log_message", None) or exc).rstrip(".")


@dataclass(frozen=True)
class ToolLimits:
    cells: CellLimits = field(default_factory=CellLimits)
    outputs: OutputLimits = field(default_factory=OutputLimits)
    # How long run_cell waits for a run by default; the run goes on after it.
    run_timeout_seconds: float = 30.0


ToolKind = Literal["read", "edit", "run"]
# tool -> (the arguments it takes, what it does: reads, edits the notebook, or runs code)
TOOLS: dict[str, tuple[frozenset[str], ToolKind]] = {
    "read_notebook": (frozenset({"start", "end", "include_outputs"}), "read"),
    "insert_cell": (frozenset({"index", "after_id", "cell_type", "source"}), "edit"),
    "edit_cell": (frozenset({"id", "index", "source"}), "edit"),
    "delete_cell": (frozenset({"id", "index"}), "edit"),
    "run_cell": (frozenset({"id", "index", "timeout_seconds"}), "run"),
    "kernel_variables": (frozenset({"names"}), "read"),
}


class NotebookToolbox:
    def __init__(
        self,
        storage: NotebookStorage,
        limits: ToolLimits | None = None,
        kernels: NotebookKernels | None = None,
        relay: BrowserRelay | None = None,
        shared: SharedDocuments | None = None,
    ) -> None:
        self.storage = storage
        self.limits = limits or ToolLimits()
        self.kernels = kernels
        # The notebooks open in a browser: their tool calls go to the open document.
        self.relay = relay
        # Where a notebook may be open, first match first: the user's JupyterLab (its own edit
        # is one its undo takes back; a change the server makes in a room is not), then
        # jupyter-collaboration's shared document.
        self.live: list[LiveDocuments] = [BrowserDocuments(relay)] if relay is not None else []
        if shared is not None:
            self.live.append(shared)
        self._locks: dict[str, asyncio.Lock] = {}
        # Runs of cells that have not ended, by (notebook, cell id): read_notebook shows their
        # outputs so far; each is saved with its cell when it ends.
        self._runs: dict[tuple[str, str], Execution] = {}
        self._followers: set[asyncio.Task[None]] = set()
        # Undo (checkpoints/): told of each change a turn makes where the notebook is open,
        # with its JSON there before (the turn's first change only) and after; in a thread.
        self.live_edits: Callable[[Grant, str | None, str], object] | None = None
        self._noted_turns: set[str] = set()

    async def call(self, grant: Grant, tool: str, arguments: Any) -> dict[str, Any]:
        """Run ``tool`` on the grant's notebook. ToolError: the model is told why; the
        notebook is unchanged."""
        if tool not in TOOLS:
            raise ToolError(
                f"There is no notebook tool {tool!r}; the tools are {', '.join(TOOLS)}."
            )
        if not isinstance(arguments, dict):
            raise ToolError("The arguments must be a JSON object.")
        allowed, kind = TOOLS[tool]
        changes = kind == "edit"
        unknown = sorted(set(arguments) - allowed)
        if unknown:
            raise ToolError(f"{tool} takes no argument {', '.join(map(repr, unknown))}.")
        if tool == "run_cell":
            return await self._run_cell(grant, arguments)
        if tool == "kernel_variables":
            return await self._variables(grant, arguments)
        operation = self._operation(grant, tool, arguments)
        path = grant.notebook_path
        # One call at a time per notebook: two edits must not each save over the other.
        async with self._lock(path):
            document, live = await self._live_notebook(path)
            if document is not None:
                # Checked and computed on a snapshot of the open document, then made there.
                if changes:
                    first = self.live_edits is not None and grant.turn_id not in self._noted_turns
                    before = str(nbformat.writes(live)) if first else None  # type: ignore[no-untyped-call]
                    result = operation(live)
                    await document.apply(_live_op(tool, live, result))
                    await self._note_live(grant, before, live)
                else:  # a read of a large notebook must not hold up the server's other work
                    result = await asyncio.to_thread(operation, live)
            elif changes:
                notebook = await self.storage.load(path)
                result = operation(notebook)
                await self.storage.save(path, notebook)
            else:
                notebook = await self.storage.read(path)
                self._overlay_runs(path, notebook)
                result = await asyncio.to_thread(operation, notebook)
        if tool == "read_notebook":
            running = {
                cell_id
                for (p, cell_id), run in self._runs.items()
                if p == path and not run.done.is_set()
            }
            for entry in result["cells"]:
                if entry["id"] in running:
                    entry["running"] = True
            if self.kernels is not None:
                result["kernel"] = await self.kernels.state(path)
        return result

    # -- for undo (checkpoints/): the notebook where it is open --------------------------------

    async def _note_live(self, grant: Grant, before: str | None, live: Any) -> None:
        if self.live_edits is None:
            return
        after = str(nbformat.writes(live))  # type: ignore[no-untyped-call]
        try:
            await asyncio.to_thread(self.live_edits, grant, before, after)
        except Exception:  # the edit is made: only its undo is lost, and the log says so
            log.exception("The change to %s could not be kept for undo", grant.notebook_path)
            return
        if before is not None:
            if len(self._noted_turns) > 10_000:  # turns long over
                self._noted_turns.clear()
            self._noted_turns.add(grant.turn_id)

    async def open_notebook_text(self, path: str) -> str | None:
        """The notebook's JSON as it is open in JupyterLab; None where it is not open."""
        async with self._lock(path):
            document, live = await self._live_notebook(path)
        return None if document is None else str(nbformat.writes(live))  # type: ignore[no-untyped-call]

    async def notebook_text(self, path: str) -> str | None:
        """The notebook's JSON where it is open, else its file's; None: there is none."""
        text = await self.open_notebook_text(path)
        if text is not None:
            return text
        try:
            return str(nbformat.writes(await self.storage.load(path)))  # type: ignore[no-untyped-call]
        except ToolError:
            return None

    async def restore_cells(self, path: str, target_json: str) -> str:
        """Bring the notebook's cells back to those of ``target_json``: in the open notebook
        where it is open (a cell the undo changes is replaced whole, its outputs too), else in
        its file. Cells already as they were are left as they are. Returns where: "open" or
        "file"."""
        target = nbformat.reads(target_json, as_version=4)  # type: ignore[no-untyped-call]
        async with self._lock(path):
            document, live = await self._live_notebook(path)
            if document is not None:
                for op in _restore_ops(live, target):
                    await document.apply(op)
                return "open"
            notebook = await self.storage.load(path)
            current = {str(cell.get("id")): cell for cell in notebook.cells}
            notebook.cells = [
                current[str(cell.get("id"))]
                if _same_cell(current.get(str(cell.get("id"))), cell)
                else cell
                for cell in target.cells
            ]
            await self.storage.save(path, notebook)
            return "file"

    async def _live_notebook(self, path: str) -> tuple[LiveDocument | None, Any]:
        """Where the notebook is open and its snapshot there; (None, None): work on the file."""
        for documents in self.live:
            document = await documents.find(path)
            if document is not None:
                notebook = await document.snapshot()
                if notebook is not None:
                    return document, notebook
        return None, None

    def _lock(self, path: str) -> asyncio.Lock:
        return self._locks.setdefault(path, asyncio.Lock())

    def _overlay_runs(self, path: str, notebook: Any) -> None:
        """Show the outputs so far of the cells still running (not saved: read only)."""
        for cell in notebook.cells:
            execution = self._runs.get((path, str(cell.get("id"))))
            if execution is not None and not execution.done.is_set():
                cell["outputs"] = list(execution.outputs)
                cell["execution_count"] = execution.execution_count

    def _kernels(self) -> NotebookKernels:
        if self.kernels is None:
            raise ToolError("This server runs no kernels for the notebook tools.")
        return self.kernels

    async def _run_cell(self, grant: Grant, args: dict[str, Any]) -> dict[str, Any]:
        timeout = args.get("timeout_seconds", self.limits.run_timeout_seconds)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise ToolError("timeout_seconds must be a number of seconds (0 or more).")
        timeout = min(float(timeout), MAX_RUN_TIMEOUT_SECONDS)
        path = grant.notebook_path
        async with self._lock(path):
            document, live = await self._live_notebook(path)
            notebook = live if document is not None else await self.storage.load(path)
            position = cells.find_cell(notebook, args.get("id"), args.get("index"))
            cell = notebook.cells[position]
            if cell.get("cell_type") != "code":
                raise ToolError(
                    f"Cell {position} is a {cell.get('cell_type')} cell; only code cells run."
                )
            cell_id = str(cell.get("id"))
            code = "".join(cell.source) if isinstance(cell.source, list) else str(cell.source)
            spec = (notebook.get("metadata") or {}).get("kernelspec") or {}
            running = self._runs.get((path, cell_id))
            if running is not None and not running.done.is_set():
                raise ToolError(
                    f"Cell {position} is still running; read_notebook shows its outputs so far."
                )
            execution = Execution(cell_id)
            if document is not None:
                # In the open notebook, its outputs show there as a user's run would.
                follow: asyncio.Task[Any] = await document.run(
                    execution, code, spec.get("name"), timeout
                )
            else:
                kernels = self._kernels()
                kernel = await kernels.kernel(path, spec.get("name"))
                follow = await kernels.run(kernel, code, execution, timeout)
            self._runs[(path, cell_id)] = execution
            keeper = asyncio.create_task(self._keep_run(path, execution, follow))
        self._followers.add(keeper)
        keeper.add_done_callback(self._followers.discard)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(execution.done.wait()), timeout)
        outputs = [summarize_output(o, self.limits.outputs) for o in execution.outputs]
        return {
            "index": position,
            "id": cell_id,
            "status": execution.status if execution.done.is_set() else "running",
            "execution_count": execution.execution_count,
            "outputs": outputs,
        }

    async def _keep_run(self, path: str, execution: Execution, follow: asyncio.Task[Any]) -> None:
        """When a run ends, save its outputs with its cell, as a user's run would leave them
        once saved (the cell may have gone meanwhile: then there is nothing to keep), unless
        the open document where it ran kept them (``follow`` answers True)."""
        kept = False
        with contextlib.suppress(asyncio.CancelledError, Exception):
            kept = await follow is True
        try:
            if kept:
                return
            async with self._lock(path):
                notebook = await self.storage.load(path)
                for cell in notebook.cells:
                    if str(cell.get("id")) == execution.cell_id and cell.cell_type == "code":
                        cell["outputs"] = execution.outputs
                        cell["execution_count"] = execution.execution_count
                        await self.storage.save(path, notebook)
                        break
        except ToolError as exc:
            log.warning("The outputs of a run in %s could not be saved: %s", path, exc)
        finally:
            if self._runs.get((path, execution.cell_id)) is execution:
                del self._runs[(path, execution.cell_id)]

    async def _variables(self, grant: Grant, args: dict[str, Any]) -> dict[str, Any]:
        names = args.get("names", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ToolError("names must be a list of variable names.")
        path = grant.notebook_path
        async with self._lock(path):
            notebook = await self.storage.load(path)
        spec = (notebook.get("metadata") or {}).get("kernelspec") or {}
        kernel = await self._kernels().kernel(path, spec.get("name"))
        return await self._kernels().variables(kernel, names)

    async def close(self) -> None:
        """Stop following runs (the server stops; the kernels are the server's to stop)."""
        for task in list(self._followers):
            task.cancel()

    def _operation(
        self, grant: Grant, tool: str, args: dict[str, Any]
    ) -> Callable[[Any], dict[str, Any]]:
        author = Author(grant.session_id, grant.turn_id)
        limits = self.limits
        if tool == "read_notebook":
            include = args.get("include_outputs", True)
            if not isinstance(include, bool):
                raise ToolError("include_outputs must be true or false.")
            return lambda nb: {
                "path": grant.notebook_path,
                "cell_count": len(nb.cells),
                "cells": cells.read_cells(
                    nb, args.get("start"), args.get("end"), include, limits.outputs
                ),
            }
        if tool == "insert_cell":
            return lambda nb: cells.insert_cell(
                nb,
                args.get("cell_type", "code"),
                args.get("source", ""),
                author,
                index=args.get("index"),
                after_id=args.get("after_id"),
                limits=limits.cells,
            )
        if tool == "edit_cell":
            if "source" not in args:
                raise ToolError("edit_cell needs the cell's new source.")
            return lambda nb: cells.edit_cell(
                nb, args["source"], author, args.get("id"), args.get("index"), limits.cells
            )
        return lambda nb: cells.delete_cell(nb, args.get("id"), args.get("index"))


def _same_cell(have: Any, want: Any) -> bool:
    """The same cell as far as an undo is concerned: its type and source (a run is no edit)."""
    if have is None or want is None:
        return False

    def source(cell: Any) -> str:
        text = cell.get("source", "")
        return "".join(text) if isinstance(text, list) else str(text)

    return bool(have.get("cell_type") == want.get("cell_type") and source(have) == source(want))


def _restore_ops(current: Any, target: Any) -> list[dict[str, Any]]:
    """The deletes and inserts that make the open notebook ``current``'s cells those of
    ``target``: a cell not as it was goes, then each missing one is inserted at its place
    (in order, so each index counts the ones before it)."""
    wanted = {str(cell.get("id")): cell for cell in target.cells}
    ops: list[dict[str, Any]] = []
    kept: set[str] = set()
    for cell in current.cells:
        cell_id = str(cell.get("id"))
        if _same_cell(cell, wanted.get(cell_id)):
            kept.add(cell_id)
        else:
            ops.append({"op": "delete", "id": cell_id})
    for index, cell in enumerate(target.cells):
        if str(cell.get("id")) not in kept:
            ops.append({"op": "insert", "index": index, "cell": dict(cell)})
    return ops


def _live_op(tool: str, notebook: Any, result: dict[str, Any]) -> dict[str, Any]:
    """The change that ``tool`` made to the snapshot ``notebook``, for the open document."""
    if tool == "delete_cell":
        return {"op": "delete", "id": result["id"]}
    cell = notebook.cells[result["index"]]
    if tool == "insert_cell":
        return {"op": "insert", "index": result["index"], "cell": dict(cell)}
    source = "".join(cell.source) if isinstance(cell.source, list) else cell.source
    return {
        "op": "edit",
        "id": cell.get("id"),
        "source": source,
        "metadata": {cells.MARK: cell.metadata[cells.MARK]},
        "clear_outputs": cell.cell_type == "code" and source != result["before"],
    }
