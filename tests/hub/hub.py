"""A real JupyterHub for tests, set up as an admin would on one machine.

`jupyterhub` from PyPI (in the test venv), `configurable-http-proxy` from the npm registry,
`SimpleLocalProcessSpawner` with a private home per user under a temp dir (no user switching:
the tests run as one OS user), and the admin's policy folder (`/etc/jupyter/assistant` in
docs/deploy-jupyterhub.md, a temp folder here) named by `JUPYTER_CONFIG_PATH` in the spawner's
environment, which puts it above each user's own `~/.jupyter`.

Every request goes through the hub's proxy, as a browser's would. Nothing follows redirects,
so what JupyterHub answers (a 302 to its login, a 403) is seen as it is.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from ..helpers import parse_sse

REPO = Path(__file__).resolve().parents[2]
CHP_ENV = "JUPYTER_ASSISTANT_CHP"
CHP_HINT = (
    "configurable-http-proxy not found: run scripts/test.sh, or "
    "`npm install --prefix .cache/npm configurable-http-proxy`, or set $" + CHP_ENV
)
START_TIMEOUT = 150.0  # a single-user server with JupyterLab, on a busy 2-core machine
REQUEST_TIMEOUT = 60.0


def find_proxy() -> str:
    """`$JUPYTER_ASSISTANT_CHP`, else the copy scripts/test.sh installs, else `PATH`."""
    candidates = [
        os.environ.get(CHP_ENV, ""),
        str(REPO / ".cache" / "npm" / "node_modules" / ".bin" / "configurable-http-proxy"),
        shutil.which("configurable-http-proxy") or "",
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise AssertionError(CHP_HINT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check()`` until it returns something truthy; fail saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def events(self) -> list[dict[str, Any]]:
        assert self.headers.get("content-type", "").startswith("text/event-stream"), self
        return parse_sse(self.body.decode())

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.headers.get('location', '')!r}, {self.body[:300]!r})"


def request(
    url: str,
    method: str = "GET",
    token: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> Response:
    """One HTTP request, redirects not followed; the whole body is read (an SSE stream ends
    after its terminal event)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"token {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, data, all_headers)
        reply = conn.getresponse()
        content = reply.read()
        return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, content)
    finally:
        conn.close()


@dataclass
class HubUser:
    name: str
    home: Path
    token: str = ""

    @property
    def store(self) -> Path:
        """The assistant's default store: ``<jupyter data dir>/assistant`` in the user's home."""
        return self.home / ".local" / "share" / "jupyter" / "assistant"


@dataclass
class Hub:
    """A JupyterHub process (and, through it, a proxy and one server per user)."""

    workdir: Path
    user_names: list[str]
    server_config: dict[str, Any]
    # Users whose ~/.jupyter is read (JupyterHub's disable_user_config is off for them only).
    user_config_allowed: set[str] = field(default_factory=set)
    # More of the single-user servers' environment (c.Spawner.environment).
    environment: dict[str, str] = field(default_factory=dict)
    password: str = field(default_factory=lambda: secrets.token_hex(8))
    admin_token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    users: dict[str, HubUser] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "hub.log"

    @property
    def policy_dir(self) -> Path:
        """The admin's policy folder, outside every user's home."""
        return self.workdir / "etc" / "jupyter" / "assistant"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    # -- set-up ----------------------------------------------------------------------------

    def write_config(self) -> Path:
        self.policy_dir.mkdir(parents=True)
        (self.policy_dir / "jupyter_server_config.json").write_text(
            json.dumps(self.server_config, indent=2)
        )
        homes = self.workdir / "homes"
        for name in self.user_names:
            self.users[name] = HubUser(name, homes / name)
        config = self.workdir / "jupyterhub_config.py"
        config.write_text(HUB_CONFIG.format(**self._config_values(homes)))
        return config

    def _config_values(self, homes: Path) -> dict[str, str]:
        return {
            "bind_url": repr(self.url),
            "hub_bind_url": repr(f"http://127.0.0.1:{free_port()}"),
            "proxy_api_url": repr(f"http://127.0.0.1:{free_port()}"),
            "proxy_command": repr([find_proxy()]),
            "db_url": repr(f"sqlite:///{self.workdir / 'jupyterhub.sqlite'}"),
            "cookie_secret_file": repr(str(self.workdir / "jupyterhub_cookie_secret")),
            "password": repr(self.password),
            "users": repr(set(self.user_names)),
            "home_dir_template": repr(str(homes / "{username}")),
            "args": repr(["--allow-root"] if os.geteuid() == 0 else []),
            "environment": repr({**self.environment, "JUPYTER_CONFIG_PATH": str(self.policy_dir)}),
            "user_config_allowed": repr(set(self.user_config_allowed)),
            "admin_token": repr(self.admin_token),
        }

    def start(self) -> Hub:
        config = self.write_config()
        bin_dirs = [str(Path(sys.executable).parent), str(Path(find_proxy()).parent)]
        env = {
            **os.environ,
            # The hub finds `jupyterhub-singleuser` (and the servers find `python3`) here.
            "PATH": os.pathsep.join([*bin_dirs, os.environ.get("PATH", "")]),
        }
        env.pop("JUPYTER_ASSISTANT_DIR", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for(self._answers, START_TIMEOUT, "the hub to answer through its proxy")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log_tail()
        try:
            return request(f"{self.url}/hub/api/", timeout=5).status == 200
        except OSError:
            return False

    # -- the hub's REST API (as the admin service) -------------------------------------------

    def api(self, method: str, path: str, body: Any = None) -> Response:
        return request(f"{self.url}/hub/api{path}", method, self.admin_token, body)

    def new_token(self, name: str) -> str:
        reply = self.api("POST", f"/users/{name}/tokens", {"note": "assistant tests"})
        assert reply.status == 201, reply
        token: str = reply.json()["token"]
        self.users[name].token = token
        return token

    def start_servers(self, names: Iterable[str]) -> None:
        """Ask for every server at once (they start in parallel), then wait for each."""
        names = list(names)
        for name in names:
            reply = self.api("POST", f"/users/{name}/server")
            assert reply.status in (201, 202), reply
        for name in names:
            wait_for(lambda n=name: self._server_ready(n), START_TIMEOUT, f"{name}'s server")

    def stop_server(self, name: str) -> None:
        """Stop a user's server as the hub's "Stop My Server" does, and wait until it is gone."""
        reply = self.api("DELETE", f"/users/{name}/server")
        assert reply.status in (202, 204), reply
        wait_for(lambda: self._server(name) is None, START_TIMEOUT, f"{name}'s server to stop")

    def _server_ready(self, name: str) -> bool:
        server = self._server(name)
        return bool(server and server.get("ready"))

    def _server(self, name: str) -> dict[str, Any] | None:
        assert self.proc is not None and self.proc.poll() is None, self.log_tail()
        model = self.api("GET", f"/users/{name}").json()
        server: dict[str, Any] | None = (model.get("servers") or {}).get("")
        return server

    # -- a user's single-user server, through the proxy --------------------------------------

    def user_url(self, owner: str, path: str) -> str:
        return f"{self.url}/user/{owner}/{path.lstrip('/')}"

    def assistant(
        self, owner: str, method: str, path: str, token: str | None, body: Any = None
    ) -> Response:
        """Call ``/user/<owner>/api/assistant/<path>`` with someone's token."""
        return request(self.user_url(owner, f"api/assistant/{path}"), method, token, body)

    # -- shut-down -----------------------------------------------------------------------------

    def processes(self) -> list[psutil.Process]:
        """Every live process this hub owns: its descendants, and anything running in or
        naming the work dir (servers and providers run in the users' homes there)."""
        found: dict[int, psutil.Process] = {}
        if self.proc is not None:
            try:
                hub = psutil.Process(self.proc.pid)
                found[hub.pid] = hub
                found.update((p.pid, p) for p in hub.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        found.update((p.pid, p) for p in processes_using(self.workdir))
        return [p for p in found.values() if alive(p)]

    def stop(self) -> list[str]:
        """SIGTERM the hub as an admin would (it stops the servers and the proxy), wait for
        everything to end, and return a description of whatever was still alive (then killed)."""
        if self.proc is None:
            return []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=120)
        deadline = time.monotonic() + 30
        while (left := processes_using(self.workdir)) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = [describe(p) for p in [*left, *self._hub_if_alive()]]
        for process in [*left, *self._hub_if_alive()]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self.proc.wait(timeout=30)
        return survivors

    def _hub_if_alive(self) -> list[psutil.Process]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [psutil.Process(self.proc.pid)]


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid} {' '.join(process.cmdline())[:200]}"
    except psutil.Error:
        return str(process.pid)


def processes_using(folder: Path) -> list[psutil.Process]:
    """Live processes (other than this one) whose cwd is under ``folder`` or whose command
    line names it: they were started for this hub."""
    root = str(folder)
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            cwd = process.cwd()
            cmdline = " ".join(process.cmdline())
        except psutil.Error:
            continue
        if (cwd == root or cwd.startswith(root + os.sep) or root in cmdline) and alive(process):
            found.append(process)
    return found


HUB_CONFIG = """\
# Written by tests/hub/hub.py: a JupyterHub on one machine, as docs/deploy-jupyterhub.md says.
c = get_config()  # noqa

c.JupyterHub.bind_url = {bind_url}
c.JupyterHub.hub_bind_url = {hub_bind_url}
c.ConfigurableHTTPProxy.api_url = {proxy_api_url}
c.ConfigurableHTTPProxy.command = {proxy_command}
c.JupyterHub.db_url = {db_url}
c.JupyterHub.cookie_secret_file = {cookie_secret_file}

# A shared password (the successor of DummyAuthenticator's) and two known users.
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {password}
c.Authenticator.allowed_users = {users}

# One local process per user, each in its own home; no OS user switching.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {home_dir_template}
c.Spawner.notebook_dir = "~"
c.Spawner.default_url = "/lab"
c.Spawner.args = {args}
c.Spawner.environment = {environment}
c.Spawner.start_timeout = 150
c.Spawner.http_timeout = 150

# The servers ignore the users' own ~/.jupyter, except for the users named here (the tests
# use one to show that the policy folder outranks ~/.jupyter anyway).
c.Spawner.disable_user_config = True
_user_config_allowed = {user_config_allowed}


def _per_user_config(spawner):
    spawner.disable_user_config = spawner.user.name not in _user_config_allowed


c.Spawner.pre_spawn_hook = _per_user_config

# The tests drive the hub's REST API as this service.
c.JupyterHub.services = [{{"name": "assistant-tests", "api_token": {admin_token}}}]
c.JupyterHub.load_roles = [
    {{
        "name": "assistant-tests",
        "scopes": ["admin:users", "admin:servers", "tokens"],
        "services": ["assistant-tests"],
    }}
]
"""
