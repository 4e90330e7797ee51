"""Shared pieces of the benchmarks: a real ``jupyter server`` subprocess configured as a user
would, a keep-alive HTTP client, an SSE reader, statistics and the result rows.

Every figure is measured next to its baseline in the same run (interleaved) and reported as a
ratio or a difference of medians, because the machine may be busy with other work.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
FAKE_CLAUDE = REPO / "tests" / "fakes" / "claude"
TOKEN = "bench-token"
NOTEBOOK_JSON = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
# The fake runs under this interpreter (not `#!/usr/bin/env python3`, which may be a slow shim
# such as pyenv's): what we measure is the extension, not the shebang lookup.
FAKE_COMMAND = [sys.executable, str(FAKE_CLAUDE)]


def compile_package() -> None:
    """Write the bytecode of jupyter_assistant, as ``pip install`` does. From a source checkout
    (an editable install) with ``PYTHONDONTWRITEBYTECODE`` set, every process would otherwise
    compile the changed modules again (about 10 ms for ``store.py``), which no installed copy
    pays."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("jupyter_assistant")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            compileall.compile_dir(folder, quiet=2)


compile_package()


# -- results -------------------------------------------------------------------------------


@dataclass
class Result:
    """One row of the results table."""

    key: str  # "1", "4a", ...
    measure: str
    figure: float  # in `unit`
    unit: str  # "ms", "s", "MiB", "x"
    baseline: float | None = None
    compare: str = ""  # "x1.04", "+3.1 ms": figure against its baseline
    target: str = ""
    met: bool | None = None  # None: reported, no target
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def ratio_row(
    key: str, measure: str, figure: float, baseline: float, unit: str, limit: float, **kw: Any
) -> Result:
    ratio = figure / baseline
    return Result(
        key,
        measure,
        figure,
        unit,
        baseline,
        compare=f"x{ratio:.2f}",
        target=f"ratio <= {limit:g}",
        met=ratio <= limit,
        **kw,
    )


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:.1f} {unit}"


def table(results: Sequence[Result]) -> str:
    """The results as a Markdown table (printed, and pasted into docs/performance.md)."""
    lines = [
        "| # | measure | figure | baseline | vs baseline | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        met = "-" if r.met is None else ("yes" if r.met else "**NO**")
        lines.append(
            f"| {r.key} | {r.measure} | {fmt(r.figure, r.unit)} | {fmt(r.baseline, r.unit)} "
            f"| {r.compare or '-'} | {r.target or '-'} | {met} |"
        )
    return "\n".join(lines)


def print_results(results: Sequence[Result]) -> None:
    print(table(results))
    for r in results:
        for note in r.notes:
            print(f"  [{r.key}] {note}")


# -- statistics ------------------------------------------------------------------------------


def median_ms(seconds: Sequence[float]) -> float:
    return statistics.median(seconds) * 1000


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (``pct`` in 0..100)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * pct / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def spread_ms(seconds: Sequence[float]) -> str:
    """min / median / max, for the notes."""
    return (
        f"min {min(seconds) * 1000:.1f}, median {median_ms(seconds):.1f}, "
        f"max {max(seconds) * 1000:.1f} ms over {len(seconds)} runs"
    )


def interleave(
    n: int, first: Callable[[], float], second: Callable[[], float]
) -> tuple[list[float], list[float]]:
    """Run ``first`` and ``second`` ``n`` times each, alternating which goes first (ABBA), so
    that a change in machine load affects both alike. Returns their lists of timings."""
    a: list[float] = []
    b: list[float] = []
    for i in range(n):
        if i % 2 == 0:
            a.append(first())
            b.append(second())
        else:
            b.append(second())
            a.append(first())
    return a, b


# -- places ----------------------------------------------------------------------------------


def bench_base() -> Path:
    """Where benchmark data goes: ``$JA_BENCH_DIR``, else a folder in the user's cache, on the
    same disk as the real store (``/tmp`` may be a tmpfs, where fsync costs nothing)."""
    base = os.environ.get("JA_BENCH_DIR") or str(Path.home() / ".cache" / "ja-bench")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def workspace(name: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=bench_base()))
    path.chmod(0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def make_notebook(root: Path, api_path: str) -> str:
    file = root / api_path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(NOTEBOOK_JSON)
    return api_path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- a real server ---------------------------------------------------------------------------


class Server:
    """``python -m jupyter_server`` on a free port, configured through a config file in a private
    JUPYTER_CONFIG_DIR, as a user would. Extensions installed in the environment (jupyterlab, ...)
    load as usual unless ``config`` says otherwise."""

    def __init__(
        self,
        home: Path,
        *,
        config: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.home = home
        self.root = home / "root"
        self.store = home / "store"
        self.port = free_port()
        self.env = dict(env or {})
        self.config: dict[str, Any] = {
            "IdentityProvider": {"token": TOKEN},
            "ServerApp": {"root_dir": str(self.root), "open_browser": False},
            "AssistantExtension": {"store_dir": str(self.store)},
            "ClaudeCodeProvider": {"command": FAKE_COMMAND},
        }
        for section, values in (config or {}).items():
            self.config.setdefault(section, {}).update(values)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / f"server-{self.port}.log"
        self.python = sys.executable  # the interpreter that runs the server

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _write_config(self) -> Path:
        config_dir = self.home / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "jupyter_server_config.json").write_text(json.dumps(self.config))
        return config_dir

    def jupyter_env(self) -> dict[str, str]:
        """The private Jupyter folders of this server (its config written first)."""
        return {
            "JUPYTER_CONFIG_DIR": str(self._write_config()),
            "JUPYTER_DATA_DIR": str(self.home / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.home / "runtime"),
        }

    def environment(self) -> dict[str, str]:
        env = {**os.environ, **self.jupyter_env(), **self.env}
        env.pop("JUPYTER_ASSISTANT_DIR", None)
        return env

    def start(self, timeout: float = 90.0) -> float:
        """Start the server; returns the seconds from spawn until ``/api/status`` answered."""
        self.root.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        argv = [self.python, "-m", "jupyter_server", f"--port={self.port}", "--ip=127.0.0.1"]
        if os.geteuid() == 0:
            argv.append("--allow-root")
        with self.log.open("ab") as log:
            started = time.perf_counter()
            # cwd: the home, so that the package imported is the installed one (or PYTHONPATH's),
            # not whatever folder the benchmark was started from.
            self.proc = subprocess.Popen(
                argv, cwd=self.home, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_for_status(self.port, self.proc, timeout, self.log)
        return time.perf_counter() - started

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self) -> Client:
        return Client(self.port)

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_status(port: int, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    """Poll ``GET /api/status`` every 5 ms: a refused connect costs microseconds, so polling
    this often adds nothing measurable to the start-up it times."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited:\n" + log.read_text()[-3000:])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/api/status", headers={"Authorization": f"token {TOKEN}"})
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.005)
    raise RuntimeError("the server did not answer /api/status:\n" + log.read_text()[-3000:])


class HttpError(RuntimeError):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:500]!r}")
        self.status = status


class Client:
    """One keep-alive HTTP connection, as a browser tab keeps one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method: str, path: str, body: Any = None, prefix: str = "/api/assistant") -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"token {TOKEN}", "Content-Type": "application/json"}
        try:
            self.conn.request(method, prefix + path, body=data, headers=headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.conn.close()  # the server closed the idle connection: reconnect once
            self.conn.request(method, prefix + path, body=data, headers=headers)
            response = self.conn.getresponse()
        raw = response.read()
        if response.status >= 400:
            raise HttpError(response.status, raw)
        return json.loads(raw) if raw else None

    def create_session(self, api_path: str) -> str:
        return str(self.call("POST", "/sessions", {"path": api_path})["id"])

    def close(self) -> None:
        self.conn.close()


def open_events(port: int, session_id: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request(
        "GET",
        f"/api/assistant/sessions/{session_id}/events",
        headers={"Authorization": f"token {TOKEN}"},
    )
    response = conn.getresponse()
    if response.status != 200:
        raise HttpError(response.status, response.read())
    return response


TERMINAL = frozenset({"done", "error", "cancelled"})


def sse_events(response: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    """Parse Server-Sent Events as they arrive (``read1``: whatever the socket has), yielding
    ``{"event", "data"}`` until the stream ends."""
    buffer = b""
    while True:
        chunk = response.read1(262144)
        if not chunk:
            return
        buffer += chunk
        *blocks, buffer = buffer.split(b"\n\n")
        for block in blocks:
            event = _parse_block(block)
            if event is not None:
                yield event


def _parse_block(block: bytes) -> dict[str, Any] | None:
    name, data = "message", None
    for line in block.split(b"\n"):
        if line.startswith(b"event: "):
            name = line[7:].decode()
        elif line.startswith(b"data: "):
            data = json.loads(line[6:])
    if data is None:
        return None  # a comment (stream header, keep-alive)
    return {"event": name, "data": data}


def follow_turn(port: int, session_id: str) -> tuple[str, str]:
    """Read the turn's stream to its end; returns (terminal event, reply text)."""
    response = open_events(port, session_id)
    parts: list[str] = []
    terminal = ""
    for event in sse_events(response):
        if event["event"] == "text":
            parts.append(event["data"]["text"])
        elif event["event"] in TERMINAL:
            terminal = event["event"]
    response.close()
    return terminal, "".join(parts)


# -- the notebook tools' MCP endpoint --------------------------------------------------------

MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
MCP_INITIALIZE = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "ja-bench", "version": "1"},
}


def mcp_endpoint(config_file: Path) -> tuple[str, dict[str, str]]:
    """The URL and headers (the turn's capability) of the ``notebook`` MCP server in the
    ``--mcp-config`` file a CLI was given, as the agent would read them."""
    server = json.loads(config_file.read_text())["mcpServers"]["notebook"]
    return str(server["url"]), dict(server["headers"])


class McpClient:
    """A keep-alive connection to the MCP endpoint, carrying the turn's capability."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.path = parts.path
        self.headers = {**MCP_HEADERS, **headers}
        self.conn = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=60
        )
        self.ids = 0

    def call(self, method: str, params: dict[str, Any]) -> Any:
        self.ids += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params})
        self.conn.request("POST", self.path, body=body, headers=self.headers)
        response = self.conn.getresponse()
        raw = response.read()
        if response.status != 200:
            raise RuntimeError(f"MCP {method}: HTTP {response.status}: {raw[:300]!r}")
        return json.loads(raw)

    def notify(self, method: str) -> None:
        body = json.dumps({"jsonrpc": "2.0", "method": method})
        self.conn.request("POST", self.path, body=body, headers=self.headers)
        response = self.conn.getresponse()
        response.read()
        if response.status >= 300:
            raise RuntimeError(f"MCP {method}: HTTP {response.status}")

    def handshake(self) -> float:
        """What an MCP client sends before it may call a tool: initialize, the initialized
        notification, tools/list. Returns the seconds they took."""
        started = time.perf_counter()
        self.call("initialize", MCP_INITIALIZE)
        self.notify("notifications/initialized")
        self.call("tools/list", {})
        return time.perf_counter() - started

    def read_notebook(self) -> float:
        started = time.perf_counter()
        answer = self.call("tools/call", {"name": "read_notebook", "arguments": {}})
        elapsed = time.perf_counter() - started
        if answer.get("error") or answer["result"].get("isError"):
            raise RuntimeError(f"read_notebook failed: {json.dumps(answer)[:500]}")
        return elapsed

    def close(self) -> None:
        self.conn.close()


# -- the fake provider, run directly (the baselines) ------------------------------------------


def recorded_invocation(path: Path) -> tuple[list[str], str]:
    """The argv and cwd with which the server ran the fake (``FAKE_CLAUDE_ARGV_FILE``), so the
    baseline spawns exactly the same command."""
    data = json.loads(path.read_text())
    argv = list(data["argv"])
    flag = "--append-system-prompt-file"
    if flag in argv:
        # The server's private file went with its turn: the baseline gets the same text in a
        # file of its own, beside the recording.
        copy = path.with_name("system-prompt.md")
        copy.write_text(data.get("append_system_prompt") or "")
        argv[argv.index(flag) + 1] = str(copy)
    return [sys.executable, *argv], data["cwd"]


def prompt_input(argv: Sequence[str], prompt: str) -> bytes:
    """What the server writes to the provider's stdin: in Claude Code's interactive mode
    (``--input-format stream-json``) the prompt is a stream-json ``user`` message."""
    args = list(argv)
    flag = args.index("--input-format") if "--input-format" in args else -1
    if flag < 0 or args[flag + 1 : flag + 2] != ["stream-json"]:
        return prompt.encode()
    message = {"type": "user", "message": {"role": "user", "content": prompt}}
    return json.dumps(message).encode() + b"\n"


def spawn_fake(
    argv: Sequence[str], cwd: str, env: Mapping[str, str], **kw: Any
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(argv),
        cwd=cwd,
        env={**os.environ, **env},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        **kw,
    )


# -- processes -------------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / 2**20


def gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for its parent counts as gone)."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def kill_leftovers(pids: Sequence[int]) -> None:
    """Never leave a process of ours behind, whatever a benchmark run did."""
    for pid in pids:
        if not gone(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


# -- the machine -----------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the figures depend on, for the results file."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": f"{os.cpu_count()} cores, {model}",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "data folder": f"{bench_base()} ({filesystem(bench_base())})",
        "jupyter_assistant source": source_version(),
    }
    for package in ("jupyter_server", "jupyterlab", "tornado", "pydantic", "jupyter-assistant"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = "not installed"
    return info


def source_version() -> str:
    """The commit of the package measured, and whether its working tree had changes."""
    import jupyter_assistant

    folder = Path(jupyter_assistant.__file__).parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "log", "-1", "--format=%h %cd", "--date=iso"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(folder)
    return f"{folder} at {commit}" + (" + uncommitted changes" if dirty else "")


def filesystem(path: Path) -> str:
    """The type of the file system holding ``path`` (fsync costs nothing on a tmpfs)."""
    best, kind = "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            mount = fields[1]
            if str(path.resolve()).startswith(mount) and len(mount) > len(best):
                best, kind = mount, f"{fields[2]} on {fields[0]}"
    return kind


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"
