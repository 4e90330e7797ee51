"""A real `jupyter server` subprocess, configured as a user would, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .conftest import FAKE_CLAUDE
from .helpers import parse_sse

TOKEN = "test-token-e2e"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`python -m jupyter_server` on a free port, with only what a user would configure."""

    def __init__(self, root: Path, store: Path, home: Path) -> None:
        self.root, self.store, self.home = root, store, home
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / f"server-{self.port}.log"

    def start(
        self, extra_env: dict[str, str] | None = None, extra_args: list[str] | None = None
    ) -> Server:
        env = {
            **os.environ,
            # A private config dir: only the installed jupyter_assistant.json enables us.
            "JUPYTER_CONFIG_DIR": str(self.home / "config"),
            "JUPYTER_DATA_DIR": str(self.home / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.home / "runtime"),
            **(extra_env or {}),
        }
        env.pop("JUPYTER_ASSISTANT_DIR", None)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                f"--port={self.port}",
                "--ip=127.0.0.1",
                "--no-browser",
                f"--ServerApp.root_dir={self.root}",
                f"--IdentityProvider.token={TOKEN}",
                f"--AssistantExtension.store_dir={self.store}",
                f"--ClaudeCodeProvider.command={FAKE_CLAUDE}",
                "--AssistantExtension.checkpoint_interval_seconds=0.2",
                *(["--allow-root"] if os.geteuid() == 0 else []),
                *(extra_args or []),
            ],
            env=env,
            stdin=subprocess.DEVNULL,  # no terminal, as under JupyterHub or systemd
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                self.call("GET", "/api/status", prefix="")
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise AssertionError("the server did not start:\n" + self.log.read_text()[-3000:])

    def call(self, method: str, path: str, body: Any = None, prefix: str = "/api/assistant") -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{prefix}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
            if response.headers.get("Content-Type", "").startswith("text/event-stream"):
                return parse_sse(raw.decode())
            return json.loads(raw) if raw else None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
