"""Run one assistant turn in a process of its own, on the server's session store: what a kernel
running a `%%assistant` cell does. Without ``--journal`` the server has no events of such a turn
(as with another server); the sidebar sees it through the session's status and the partial reply
the runner saves as it goes. With ``--journal`` it writes the turn's event journal, as a kernel
does, and the server streams it.

Usage: python other_process_turn.py STORE_DIR ROOT_DIR SESSION_ID CLAUDE_COMMAND PROMPT [--journal]
Prints `STARTED <turn id>` and, when the turn ends, `FINISHED <terminal event type>`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from traitlets.config import Config, Configurable

from jupyter_assistant.providers import ProviderRegistry
from jupyter_assistant.service import AssistantService, ServiceSettings
from jupyter_assistant.turns import RunnerSettings


async def run_turn(
    store: str, root: str, session_id: str, command: str, prompt: str, journal: bool
) -> str:
    config = Config()
    config.ClaudeCodeProvider.command = [command]
    service = AssistantService(
        ServiceSettings(
            store_dir=Path(store),
            root_dir=Path(root),
            runner=RunnerSettings(journal_events=journal),
        ),
        ProviderRegistry(parent=Configurable(config=config)),
    )
    turn = await service.post_message(session_id, prompt)
    print("STARTED", turn.id, flush=True)
    async for _batch in turn.follow():
        pass
    return str(turn.events[-1]["type"])


def main(argv: list[str]) -> int:
    journal = "--journal" in argv
    store, root, session_id, command, prompt = [arg for arg in argv if arg != "--journal"]
    ended = asyncio.run(run_turn(store, root, session_id, command, prompt, journal))
    print("FINISHED", ended, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
