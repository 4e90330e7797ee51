"""Who may call the notebook tools: a random capability per turn, for one notebook.

The agent never gets Jupyter's token. Each turn that offers the notebook tools is issued a
capability (a random string) that names its session, its turn and its notebook; a tool call
carries it, and is refused when it is unknown, when its turn has ended (it is revoked then), or
when the call names another notebook. Capabilities are kept by their digest, so that looking
one up does not compare secrets character by character.

A turn that a kernel runs (a ``%%assistant`` cell) is served by the Jupyter server too: the
kernel cannot hand the server a capability over HTTP (it has no token, on purpose), so it
writes a grant file into the store's private folder (0700), named by the capability's digest;
the server honours it only while that turn's process record says the kernel still runs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .cells import ToolError

if TYPE_CHECKING:
    from ..processes import ProcessRegistry
    from ..providers.base import NotebookToolsAccess

SERVER_NAME = "notebook"
# The header that carries a turn's capability (``Authorization: Bearer`` works too, for CLIs
# that can only send a bearer token).
CAPABILITY_HEADER = "x-assistant-capability"


def capability_of(headers: Mapping[str, str] | None) -> str:
    """The capability a request carries ('' if none)."""
    if not headers:
        return ""
    lowered = {key.lower(): value for key, value in headers.items()}
    if lowered.get(CAPABILITY_HEADER):
        return lowered[CAPABILITY_HEADER].strip()
    scheme, _, value = lowered.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


@dataclass(frozen=True)
class Grant:
    """What a capability allows: the tools on one notebook, for one turn of one session."""

    session_id: str
    turn_id: str
    notebook_path: str  # the notebook's API path (relative to the server root)
    # The process that runs the turn, when it is not the one serving the tools (a kernel).
    owner_pid: int | None = None


def _digest(capability: str) -> str:
    return hashlib.sha256(capability.encode("utf-8", "surrogatepass")).hexdigest()


class GrantFiles:
    """The grants of turns that other processes (kernels) run, one file each:
    ``<dir>/<digest>.json``, written by the process that runs the turn."""

    def __init__(self, folder: Path | str) -> None:
        self.dir = Path(folder)

    def write(self, capability: str, grant: Grant) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        final = self.dir / f"{_digest(capability)}.json"
        temporary = final.with_suffix(f".{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(asdict(grant), file)
        os.replace(temporary, final)  # whole or absent, never half-written

    def read(self, capability: str) -> Grant | None:
        try:
            data = json.loads((self.dir / f"{_digest(capability)}.json").read_text("utf-8"))
            return Grant(
                str(data["session_id"]),
                str(data["turn_id"]),
                str(data["notebook_path"]),
                int(data["owner_pid"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def remove(self, capability: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / f"{_digest(capability)}.json").unlink()

    def sweep(self, older_than_seconds: float = 60.0) -> None:
        """Remove the grants a killed kernel left (its process is gone)."""
        cutoff = time.time() - older_than_seconds
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.dir):
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    if entry.stat().st_mtime >= cutoff:
                        continue
                    pid = json.loads(Path(entry.path).read_text("utf-8"))["owner_pid"]
                    if not _alive(int(pid)):
                        os.unlink(entry.path)


def kernel_grants(store_dir: Path | str) -> GrantFiles:
    """Where the kernels sharing a store write their turns' grants."""
    from ..turns.persistence import PRIVATE_DIR

    return GrantFiles(Path(store_dir) / PRIVATE_DIR / "grants")


def turn_running(registry: ProcessRegistry, grant: Grant) -> bool:
    """Is the grant's turn still running in the process that wrote the grant?"""
    record = registry.read(grant.session_id)
    return (
        record is not None
        and record.turn_id == grant.turn_id
        and record.owner_pid == grant.owner_pid
        and record.owner_alive()
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _knock(url: str, capability: str) -> None:
    import ssl
    import urllib.request

    request = urllib.request.Request(url, headers={CAPABILITY_HEADER: capability})
    context = ssl._create_unverified_context()  # only to wake the server; nothing is sent
    with contextlib.suppress(Exception):  # 405 is the expected answer
        urllib.request.urlopen(request, timeout=5, context=context).close()


class FileGrantIssuer:
    """A kernel's turns' access to the server's notebook tools (``TurnRunner.notebook_tools``
    in a kernel): a capability per turn, granted through a file the server reads."""

    def __init__(self, files: GrantFiles, url: str) -> None:
        self.files = files
        self.url = url
        self._issued: dict[str, list[str]] = {}

    def issue(
        self, session_id: str, turn_id: str, notebook_path: str, capability: str | None = None
    ) -> NotebookToolsAccess:
        from ..providers.base import NotebookToolsAccess

        capability = capability or secrets.token_urlsafe(32)
        self.files.write(capability, Grant(session_id, turn_id, notebook_path, os.getpid()))
        self._issued.setdefault(turn_id, []).append(capability)
        # Knock: the server starts its MCP server while the CLI starts, as for its own turns.
        threading.Thread(target=_knock, args=(self.url, capability), daemon=True).start()
        return NotebookToolsAccess(SERVER_NAME, self.url, CAPABILITY_HEADER, capability)

    def revoke(self, turn_id: str) -> None:
        for capability in self._issued.pop(turn_id, []):
            self.files.remove(capability)


class CapabilityRegistry:
    def __init__(
        self,
        files: GrantFiles | None = None,
        running: Callable[[Grant], bool] | None = None,
    ) -> None:
        self._grants: dict[str, Grant] = {}
        # The grants of other processes' turns, each honoured while ``running`` says its turn
        # still runs in its owner.
        self.files = files
        self.running = running

    def issue(
        self, session_id: str, turn_id: str, notebook_path: str, capability: str | None = None
    ) -> str:
        """A new capability for this turn (revoke it when the turn ends). ``capability``: grant
        this turn under one issued before (a warm provider holds it, turns/warm.py); it must
        not be live for another turn."""
        if capability and _digest(capability) in self._grants:
            raise ValueError("That capability is live for another turn.")
        capability = capability or secrets.token_urlsafe(32)
        self._grants[_digest(capability)] = Grant(session_id, turn_id, notebook_path)
        return capability

    def check(self, capability: str, notebook_path: str | None = None) -> Grant:
        """The grant of a live capability; ToolError if there is none, or if the call names a
        notebook other than the one it was issued for."""
        grant = self._grants.get(_digest(capability)) if capability else None
        if grant is None and capability and self.files is not None:
            grant = self.files.read(capability)
            if grant is not None and (self.running is None or not self.running(grant)):
                grant = None
        if grant is None:
            raise ToolError(
                "The notebook tools refused this call: its capability is unknown or its turn "
                "has ended."
            )
        if notebook_path is not None and notebook_path != grant.notebook_path:
            raise ToolError(
                f"The notebook tools act only on this session's notebook "
                f"({grant.notebook_path}), not on {notebook_path}."
            )
        return grant

    def revoke(self, turn_id: str) -> int:
        """End every capability of ``turn_id``; returns how many there were."""
        ended = [key for key, grant in self._grants.items() if grant.turn_id == turn_id]
        for key in ended:
            del self._grants[key]
        return len(ended)
