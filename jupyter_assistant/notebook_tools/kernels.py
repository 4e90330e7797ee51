"""The notebook's kernel for the notebook tools: run a cell's code, read the kernel's variables.

The kernel is the one Jupyter keeps for the notebook (its kernel session, the one JupyterLab
attaches to when the notebook is opened), started with the notebook's kernelspec if none runs,
so the agent works in the same namespace as the user. A run's outputs are collected from the
kernel's IOPub messages that answer this run only.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import nbformat

from .cells import ToolError

# The largest timeout a run may ask for; a longer computation keeps running past it.
MAX_RUN_TIMEOUT_SECONDS = 600.0

# Runs inside the kernel, in a namespace of its own (nothing is added to the user's), and
# returns JSON: what kernel_variables answers.
VARIABLES_SOURCE = r"""
import json, reprlib
_r = reprlib.Repr()
_r.maxstring = _r.maxother = 160
_r.maxlist = _r.maxtuple = _r.maxset = _r.maxdict = 10
_skip = {"In", "Out", "exit", "quit", "get_ipython", "open"}
def _kind(v):
    t = type(v)
    return t.__qualname__ if t.__module__ == "builtins" else t.__module__ + "." + t.__qualname__
def _one(n, v):
    e = {"name": n, "type": _kind(v)}
    try:
        s = getattr(v, "shape", None)
        if isinstance(s, tuple):
            e["shape"] = [int(x) for x in s]
    except Exception:
        pass
    if "shape" not in e and hasattr(type(v), "__len__"):
        try:
            e["length"] = len(v)
        except Exception:
            pass
    try:
        e["repr"] = _r.repr(v)
    except Exception as x:
        e["repr"] = "<repr failed: %s>" % type(x).__name__
    return e
if names:
    pairs = [(n, user_ns[n]) for n in names if n in user_ns]
else:
    pairs = [
        (n, v) for n, v in user_ns.items()
        if not n.startswith("_") and n not in _skip
        and type(v).__name__ not in ("module", "function", "builtin_function_or_method", "type")
    ]
result = json.dumps({
    "variables": [_one(n, v) for n, v in pairs[:limit]],
    "more": max(0, len(pairs) - limit),
    "missing": [n for n in names if n not in user_ns],
})
"""


def variables_expression(names: list[str], limit: int = 100) -> str:
    """A Python expression, evaluated in the user's namespace as a user expression, that
    returns the variables' summary as JSON without adding a name to that namespace."""
    return (
        f"(lambda ns: (exec({VARIABLES_SOURCE!r}, ns), ns['result'])[1])"
        f"({{'user_ns': globals(), 'names': {names!r}, 'limit': {int(limit)}}})"
    )


@dataclass
class Execution:
    """One run of a cell: its outputs as they arrive, and its end."""

    cell_id: str
    started: float = field(default_factory=time.monotonic)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    execution_count: int | None = None
    status: str = "running"  # running | ok | error | aborted
    done: asyncio.Event = field(default_factory=asyncio.Event)
    # Called after each message absorbed: a shared document shows the outputs as they come.
    on_change: Callable[[Execution], None] | None = field(default=None, repr=False)

    def absorb(self, message: dict[str, Any]) -> None:
        self._absorb(message)
        if self.on_change is not None:
            self.on_change(self)

    def _absorb(self, message: dict[str, Any]) -> None:
        kind = message["header"]["msg_type"]
        content = message["content"]
        if kind == "clear_output":
            self.outputs.clear()
        elif kind == "execute_input":
            self.execution_count = content.get("execution_count")
        elif kind in ("stream", "display_data", "execute_result", "error"):
            output = nbformat.v4.output_from_msg(message)  # type: ignore[no-untyped-call]
            if kind == "stream" and self.outputs and self.outputs[-1].get("name") == output.name:
                last = self.outputs[-1]
                if last.get("output_type") == "stream":
                    last["text"] = last.get("text", "") + output.text
                    return
            self.outputs.append(output)


class NotebookKernels:
    """The kernels of notebooks, through the server's session and kernel managers."""

    def __init__(self, session_manager: Any, kernel_manager: Any, root_dir: str) -> None:
        self.sessions = session_manager
        self.kernels = kernel_manager
        self.root_dir = root_dir
        self._starting: dict[str, asyncio.Lock] = {}

    async def _kernel_id(self, path: str) -> str | None:
        for session in await self.sessions.list_sessions():
            if session.get("path") == path or (session.get("notebook") or {}).get("path") == path:
                kernel = session.get("kernel") or {}
                return str(kernel["id"]) if kernel.get("id") else None
        return None

    async def state(self, path: str) -> dict[str, Any]:
        """``{name, state}`` of the notebook's kernel (state ``none`` when none runs)."""
        kernel_id = await self._kernel_id(path)
        if kernel_id is None or kernel_id not in self.kernels:
            return {"name": None, "state": "none"}
        kernel = self.kernels.get_kernel(kernel_id)
        return {
            "name": kernel.kernel_name,
            "state": getattr(kernel, "execution_state", "unknown"),
        }

    async def kernel(self, path: str, kernelspec: str | None) -> Any:
        """The notebook's kernel manager, started if none runs (ToolError if it is dead)."""
        async with self._starting.setdefault(path, asyncio.Lock()):
            kernel_id = await self._kernel_id(path)
            if kernel_id is None or kernel_id not in self.kernels:
                try:
                    model = await self.sessions.create_session(
                        path=path,
                        name=os.path.basename(path),
                        type="notebook",
                        kernel_name=kernelspec or None,
                    )
                except Exception as exc:
                    raise ToolError(f"The notebook's kernel could not be started: {exc}.") from exc
                kernel_id = model["kernel"]["id"]
        kernel = self.kernels.get_kernel(kernel_id)
        if getattr(kernel, "execution_state", "") == "dead" or not await _alive(kernel):
            raise ToolError(
                "The notebook's kernel is dead. Ask the user to restart it (Kernel > Restart "
                "Kernel), then run the cell again."
            )
        return kernel

    async def run(
        self, kernel: Any, code: str, execution: Execution, timeout: float
    ) -> asyncio.Task[None]:
        """Start running ``code``; returns the task that follows the run to its end (the
        caller may stop waiting for it at ``timeout``: the run goes on)."""
        client = await _client(kernel)
        msg_id = client.execute(code, store_history=True, allow_stdin=False, stop_on_error=True)
        return asyncio.create_task(_follow(client, msg_id, execution))

    async def variables(self, kernel: Any, names: list[str]) -> dict[str, Any]:
        language = await _language(kernel)
        if language != "python":
            raise ToolError(
                f"kernel_variables reads Python kernels; this notebook's kernel runs {language}."
            )
        client = await _client(kernel)
        try:
            msg_id = client.execute(
                "",
                silent=True,
                store_history=False,
                user_expressions={"v": variables_expression(names)},
            )
            reply = await _reply(client, msg_id, 30.0)
        finally:
            client.stop_channels()
        found = reply["content"].get("user_expressions", {}).get("v", {})
        if found.get("status") != "ok":
            raise ToolError(
                "The kernel could not list its variables: "
                f"{found.get('ename', 'error')}: {found.get('evalue', '')}"
            )
        return json.loads(ast.literal_eval(found["data"]["text/plain"]))  # type: ignore[no-any-return]


async def _alive(kernel: Any) -> bool:
    with contextlib.suppress(Exception):
        alive = kernel.is_alive()
        return bool(await alive if asyncio.iscoroutine(alive) else alive)
    return True


async def _client(kernel: Any) -> Any:
    # The kernel manager's own client class (asynchronous in the server), with its session key.
    client = kernel.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
    except RuntimeError as exc:
        client.stop_channels()
        raise ToolError(f"The notebook's kernel does not answer: {exc}.") from exc
    return client


async def _language(kernel: Any) -> str:
    spec = getattr(kernel, "kernel_spec", None)
    return str(getattr(spec, "language", "") or "python").lower()


async def _reply(client: Any, msg_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ToolError("The kernel did not answer in time (it may be busy).")
        try:
            reply: dict[str, Any] = await client.get_shell_msg(timeout=remaining)
        except Exception as exc:  # queue.Empty on timeout
            raise ToolError("The kernel did not answer in time (it may be busy).") from exc
        if reply.get("parent_header", {}).get("msg_id") == msg_id:
            return reply


async def _follow(client: Any, msg_id: str, execution: Execution) -> None:
    """Collect the run's outputs until the kernel is idle again and has replied."""
    try:
        idle = False
        while not idle:
            message = await client.get_iopub_msg()
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["header"]["msg_type"]
            if kind == "status" and message["content"].get("execution_state") == "idle":
                idle = True
            else:
                execution.absorb(message)
        with contextlib.suppress(ToolError):
            reply = await _reply(client, msg_id, 10.0)
            content = reply["content"]
            execution.execution_count = content.get("execution_count", execution.execution_count)
            execution.status = str(content.get("status", "ok"))
        if execution.status == "running":
            execution.status = "ok"
    except asyncio.CancelledError:
        execution.status = "aborted"
        raise
    finally:
        execution.done.set()
        client.stop_channels()
