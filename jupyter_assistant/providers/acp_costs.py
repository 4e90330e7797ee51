"""What an ACP conversation has cost so far, as its agent last reported it.

ACP's ``usage_update`` carries the *cumulative* cost of the session (the protocol says so, and
claude-agent-acp 0.101 does: 0.0116, then 0.0228 for two turns; and 0.0342 for a third turn in
a new process after ``session/load``, which counts the earlier turns too). A turn costs what it
added: its last total less the total before it. Each process starts cold, so the total before a
loaded session's turn comes from here: one small file per conversation in the store's private
folder (``TurnRequest.scratch_dir``), shared by the server and its kernels.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

FOLDER = "acp-costs"


class CostLedger:
    """The last cumulative cost each ACP conversation reported (by its session id)."""

    def __init__(self, private_dir: str | None) -> None:
        self._folder = Path(private_dir) / FOLDER if private_dir else None

    def _file(self, conversation: str) -> Path | None:
        if self._folder is None:
            return None
        return self._folder / (hashlib.sha256(conversation.encode()).hexdigest()[:32] + ".json")

    def total(self, conversation: str) -> float | None:
        """The last total reported for ``conversation``; None if none is known."""
        path = self._file(conversation)
        if path is None:
            return None
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(stored, dict) or stored.get("conversation") != conversation:
            return None
        total = stored.get("total")
        return float(total) if isinstance(total, (int, float)) else None

    def record(self, conversation: str, total: float) -> None:
        """Keep ``total`` for ``conversation`` (atomically; a failure only loses the figure)."""
        path = self._file(conversation)
        if path is None:
            return
        with contextlib.suppress(OSError):
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            try:
                with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                    json.dump({"conversation": conversation, "total": total}, file)
                os.replace(temp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise


def turn_cost(total: float, before: float | None) -> float:
    """What a turn cost, from the conversation's cumulative ``total`` at its end and the one
    before it. A total below the one before means the agent counted afresh (a new process
    that does not restore its count): the turn cost all of it."""
    if before is None or total < before:
        return total
    return round(total - before, 8)
