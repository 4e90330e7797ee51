"""The tool approval questions of a ``%%assistant`` cell's turn, answered in the cell."""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from IPython.core.error import StdinNotImplementedError

from .kernel_assistant import PermissionAnswer
from .toolcalls import tool_detail

NO_STDIN = (
    "nobody can answer in this notebook (its frontend takes no input); use %%assistant --allow, "
    "or have the administrator allow it in c.AssistantExtension.permission_allowed_tools"
)
GIVEN_UP = {
    "timeout": "no answer in time; the tool call was denied.",
    "ended": "the turn ended before an answer; there is nothing to answer any more.",
    "answered": "the question was answered elsewhere.",
}
WATCH_SECONDS = 0.25  # how often a pending input() checks that its question still waits


class CellApprover:
    """Answers the tool approval questions of one cell's turn: as ``--allow``/``--deny-all``
    say, else by asking with ``input()`` (in a kernel: an input box in the notebook). A
    frontend that takes no input gets the policy's answer for an open question: deny.
    ``state(request_id)`` says whether a question still waits; once it does not (nobody
    answered in time, or the turn ended), the input prompt is given up with a simulated
    interrupt, the one way out of ``input()``."""

    def __init__(self, mode: str | None, state: Callable[[str], str]) -> None:
        self.mode = mode  # "allow" | "deny" | None (ask)
        self.state = state

    def __call__(self, event: Mapping[str, Any]) -> PermissionAnswer | None:
        if self.mode == "allow":
            return PermissionAnswer("allow")
        if self.mode == "deny":
            return PermissionAnswer("deny", message="the user denies every tool call this turn")
        what = f"{event.get('tool_name', 'a tool')} {tool_detail(event.get('input'))}".strip()
        prompt = f"Allow {what}? y = once, s = for this session, n = deny (n REASON) > "
        try:
            reply = self._input(prompt, str(event.get("request_id", "")))
        except StdinNotImplementedError:
            return PermissionAnswer("deny", message=NO_STDIN)
        except EOFError:
            reply = "n"
        if reply is None:
            return None
        return parse_answer(reply)

    def _input(self, prompt: str, request_id: str) -> str | None:
        """``input(prompt)``, or None once the question does not wait any more."""
        if threading.current_thread() is not threading.main_thread():
            return input(prompt)  # no way to give it up from here: wait for the user
        phase = {"now": "asking", "why": ""}
        lock = threading.Lock()
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(WATCH_SECONDS):
                why = self.state(request_id)
                if why == "waiting":
                    continue
                with lock:
                    if phase["now"] == "asking":
                        phase["now"], phase["why"] = "given up", why
                        _thread.interrupt_main()
                return

        watcher = threading.Thread(target=watch, name="assistant-question", daemon=True)
        given_up = returned = False
        watcher.start()
        try:
            try:
                reply = input(prompt)
                returned = True
            finally:
                stop.set()
                with lock:
                    given_up = phase["now"] == "given up"
                    phase["now"] = "done"
                if given_up and returned:
                    time.sleep(1.0)  # the simulated interrupt is on its way: take it here
            return reply
        except KeyboardInterrupt:
            if not given_up:
                raise  # the user's own interrupt: it cancels the turn
            print(f"Assistant: {GIVEN_UP.get(phase['why'], 'the question is over.')}")
            return None


def parse_answer(reply: str) -> PermissionAnswer:
    """``y``/``yes`` allow once, ``s``/``session`` allow for the session; anything else denies
    (``n REASON`` tells the agent why)."""
    word, _, rest = reply.strip().partition(" ")
    word = word.lower().rstrip(":,")
    if word in ("y", "yes", "allow"):
        return PermissionAnswer("allow")
    if word in ("s", "session"):
        return PermissionAnswer("allow", "session")
    reason = rest.strip() if word in ("n", "no", "deny") else reply.strip()
    return PermissionAnswer("deny", message=reason or None)
