"""Turns: a user message -> the provider's CLI -> stream events -> the stored reply.

- turn.py: a turn's state (event buffer for clients, the reply being folded, its stop).
- runner.py: ``TurnRunner``, the orchestrator: start, run, limits, end, cancel, reap.
- provider_process.py: one run of the provider's process (spawn, read, watchdog).
- stopping.py: the one stop sequence, and stop requests between processes.
- approvals.py: tool approval questions and their answers.
- persistence.py: the turn in the session file; ``write_turn_end`` writes every turn's end.
"""

from .persistence import mark_interrupted, put_reply, write_turn_end
from .runner import TurnRunner
from .turn import EndReason, NewMessage, RunnerSettings, Turn

__all__ = [
    "EndReason",
    "NewMessage",
    "RunnerSettings",
    "Turn",
    "TurnRunner",
    "mark_interrupted",
    "put_reply",
    "write_turn_end",
]
