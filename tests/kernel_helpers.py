"""A real ipykernel driven through jupyter_client, for the magics tests.

Blocking on purpose (``KernelManager`` + ``BlockingKernelClient``): a test that also runs a
Jupyter server calls these through ``KernelThread`` so that the server keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from .conftest import FAKE_CLAUDE_COMMAND

START_TIMEOUT = 90
CELL_TIMEOUT = 120

Message = dict[str, Any]
T = TypeVar("T")


@dataclass
class KernelSetup:
    """Where a test kernel looks: its notebook, store, Jupyter config dir and IPython dir."""

    notebook: Path
    store_dir: Path
    config_dir: Path
    ipython_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def write_server_config(self, config: dict[str, Any]) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "jupyter_server_config.json").write_text(json.dumps(config))

    def write_ipython_config(self, text: str) -> None:
        profile = self.ipython_dir / "profile_default"
        profile.mkdir(parents=True, exist_ok=True)
        (profile / "ipython_kernel_config.py").write_text(text)
        (profile / "ipython_config.py").write_text(text)

    def kernel_env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("JUPYTER_ASSISTANT_DIR", "JPY_SESSION_NAME")
        }
        env.update(
            JUPYTER_ASSISTANT_DIR=str(self.store_dir),
            JPY_SESSION_NAME=str(self.notebook),
            JUPYTER_CONFIG_DIR=str(self.config_dir),
            IPYTHONDIR=str(self.ipython_dir),
        )
        env.update(self.env)
        return env


def make_setup(tmp_path: Path, notebook: Path | None = None) -> KernelSetup:
    if notebook is None:
        notebook = tmp_path / "work" / "analysis" / "q3.ipynb"
        notebook.parent.mkdir(parents=True)
        notebook.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    setup = KernelSetup(
        notebook=notebook,
        store_dir=tmp_path / "store",
        config_dir=tmp_path / "jupyter-config",
        ipython_dir=tmp_path / "ipython",
    )
    setup.write_server_config(
        {
            "ClaudeCodeProvider": {"command": FAKE_CLAUDE_COMMAND},
            "AssistantExtension": {"cancel_grace_seconds": 1.0},
        }
    )
    setup.ipython_dir.mkdir(parents=True, exist_ok=True)
    return setup


@dataclass
class Execution:
    msg_id: str
    iopub: list[Message] = field(default_factory=list)
    reply: Message | None = None
    idle: bool = False
    # input() in the cell: the input_request messages, and the replies still to give them
    input_requests: list[Message] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.idle and self.reply is not None

    def of_type(self, *types: str) -> list[Message]:
        return [m for m in self.iopub if m["msg_type"] in types]

    def stdout(self) -> str:
        return "".join(
            m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == "stdout"
        )

    def error_lines(self) -> list[str]:
        """What the cell showed as its error: the traceback lines, or a UsageError's stderr."""
        lines = [line for m in self.of_type("error") for line in m["content"]["traceback"]]
        stderr = "".join(
            m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == "stderr"
        )
        return lines + [line for line in stderr.splitlines() if line.strip()]

    def markdowns(self) -> list[str]:
        return [
            m["content"]["data"]["text/markdown"]
            for m in self.of_type("display_data", "update_display_data")
            if "text/markdown" in m["content"]["data"]
        ]

    def payloads(self) -> list[Message]:
        assert self.reply is not None
        return list(self.reply["content"].get("payload", []))


class Kernel:
    """A client of one ipykernel: started here with the test's environment (cwd = the notebook's
    folder, as the server starts kernels), or one a Jupyter server started."""

    def __init__(
        self,
        kc: BlockingKernelClient,
        km: KernelManager | None = None,
        setup: KernelSetup | None = None,
    ) -> None:
        self.kc = kc
        self.km = km
        self.setup = setup
        self.executions: dict[str, Execution] = {}
        # Without a manager, the client would judge liveness by heartbeats, and one not yet
        # received reads as "died"; the kernel's replies are what the tests wait for anyway.
        kc.start_channels(hb=km is not None)
        kc.wait_for_ready(timeout=START_TIMEOUT)

    @classmethod
    def start(cls, setup: KernelSetup) -> Kernel:
        km = KernelManager(kernel_name="python3")
        km.start_kernel(env=setup.kernel_env(), cwd=str(setup.notebook.parent))
        return cls(km.blocking_client(), km, setup)

    @classmethod
    def attach(cls, connection_info: Any) -> Kernel:
        kc = BlockingKernelClient()
        kc.load_connection_info(connection_info)
        return cls(kc)

    def execute(
        self, code: str, allow_stdin: bool = False, answers: list[str] | None = None
    ) -> Execution:
        """Start a cell. With ``allow_stdin`` its ``input()`` asks this client (as a notebook
        frontend does), which replies with ``answers`` in turn, then with nothing."""
        msg_id = self.kc.execute(code, allow_stdin=allow_stdin, stop_on_error=False)
        execution = Execution(msg_id, answers=list(answers or []))
        self.executions[msg_id] = execution
        return execution

    def reply_input(self, text: str) -> None:
        """Answer the pending input() of the running cell, as a user typing into the box."""
        self.kc.input(text)

    def _pump(self, timeout: float) -> None:
        """Read what arrived on iopub and shell, waiting up to ``timeout`` for iopub."""
        wait = timeout
        while True:
            try:
                self._on_iopub(self.kc.get_iopub_msg(timeout=wait))
            except queue.Empty:
                break
            wait = 0
        while True:
            try:
                self._on_reply(self.kc.get_shell_msg(timeout=0))
            except queue.Empty:
                break
        while True:
            try:
                self._on_stdin(self.kc.get_stdin_msg(timeout=0))
            except queue.Empty:
                break

    def _on_stdin(self, msg: Message) -> None:
        execution = self.executions.get(msg["parent_header"].get("msg_id"))
        if execution is None or msg["msg_type"] != "input_request":
            return
        execution.input_requests.append(msg)
        if execution.answers:
            self.kc.input(execution.answers.pop(0))

    def _on_iopub(self, msg: Message) -> None:
        execution = self.executions.get(msg["parent_header"].get("msg_id"))
        if execution is None:
            return
        if msg["msg_type"] == "status":
            execution.idle = msg["content"]["execution_state"] == "idle"
        else:
            execution.iopub.append(msg)

    def _on_reply(self, msg: Message) -> None:
        execution = self.executions.get(msg["parent_header"].get("msg_id"))
        if execution is not None:
            execution.reply = msg

    def wait_for(
        self,
        execution: Execution,
        predicate: Callable[[Execution], bool],
        timeout: float = CELL_TIMEOUT,
        what: str = "",
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(execution):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what or 'a condition'}; got "
                    f"{[m['msg_type'] for m in execution.iopub]}, reply={execution.reply}"
                )
            if execution.done and not predicate(execution):
                raise AssertionError(
                    f"the cell ended before {what or 'the condition'}: {execution.iopub}"
                )
            self._pump(0.2)

    def finish(self, execution: Execution, timeout: float = CELL_TIMEOUT) -> Execution:
        self.wait_for(execution, lambda e: e.done, timeout, "the cell to finish")
        return execution

    def run(
        self,
        code: str,
        timeout: float = CELL_TIMEOUT,
        allow_stdin: bool = False,
        answers: list[str] | None = None,
    ) -> Execution:
        return self.finish(self.execute(code, allow_stdin, answers), timeout)

    def ok(self, code: str, timeout: float = CELL_TIMEOUT) -> Execution:
        """Run a cell that must succeed."""
        execution = self.run(code, timeout)
        assert execution.reply is not None
        assert execution.reply["content"]["status"] == "ok", execution.error_lines()
        return execution

    def value(self, expression: str) -> Any:
        """The value of a (JSON-able) expression in the kernel."""
        out = self.ok(f"import json as _json; print(_json.dumps({expression}))").stdout()
        return json.loads(out.strip().splitlines()[-1])

    def interrupt(self) -> None:
        assert self.km is not None
        self.km.interrupt_kernel()

    def shutdown(self) -> None:
        self.kc.stop_channels()
        if self.km is not None:
            self.km.shutdown_kernel(now=True)


def status_of(execution: Execution) -> str:
    assert execution.reply is not None
    return str(execution.reply["content"]["status"])


class KernelThread:
    """Runs blocking kernel calls on one thread of its own, from async code.

    Not ``asyncio.to_thread``: it copies the context, and with it jupyter_client's record of
    the caller's (running) event loop, which its blocking calls then try to run. One thread,
    so the kernel manager always sees the same loop of its own."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-kernel")

    async def __call__(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, func, *args)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
