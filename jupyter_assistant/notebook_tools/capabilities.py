"""Who may call the notebook tools: a random capability per turn, for one notebook.

The agent never gets Jupyter's token. Each turn that offers the notebook tools is issued a
capability (a random string) that names its session, its turn and its notebook; a tool call
carries it, and is refused when it is unknown, when its turn has ended (it is revoked then), or
when the call names another notebook. Capabilities are kept by their digest, so that looking
one up does not compare secrets character by character.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from .cells import ToolError

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


def _digest(capability: str) -> str:
    return hashlib.sha256(capability.encode("utf-8", "surrogatepass")).hexdigest()


class CapabilityRegistry:
    def __init__(self) -> None:
        self._grants: dict[str, Grant] = {}

    def issue(self, session_id: str, turn_id: str, notebook_path: str) -> str:
        """A new capability for this turn (revoke it when the turn ends)."""
        capability = secrets.token_urlsafe(32)
        self._grants[_digest(capability)] = Grant(session_id, turn_id, notebook_path)
        return capability

    def check(self, capability: str, notebook_path: str | None = None) -> Grant:
        """The grant of a live capability; ToolError if there is none, or if the call names a
        notebook other than the one it was issued for."""
        grant = self._grants.get(_digest(capability)) if capability else None
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
