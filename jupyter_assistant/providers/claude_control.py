"""Claude Code's control protocol: the CLI run with ``--input-format stream-json
--permission-prompt-tool stdio``, stdin kept open for the turn.

Checked against claude 2.1.197 (samples in tests/fakes/wire-samples/control/):

* we write ``control_request {subtype: initialize}`` and the prompt as a stream-json ``user``
  line; the CLI answers the initialize with a ``control_response`` (its commands, models,
  account) and then prints the usual stream-json lines;
* for a tool its permission mode does not allow by itself, it writes ``control_request
  {subtype: can_use_tool, tool_name, input, description, permission_suggestions,
  tool_use_id[, blocked_path][, decision_reason]}`` and waits. The answer is ``control_response
  {subtype: success, request_id, response: {behavior: allow, updatedInput}}`` (updatedInput is
  required: without it the tool fails with a ZodError) or ``{behavior: deny, message}``; the
  message becomes the tool_result the model sees;
* ``control_request {subtype: interrupt}`` stops the turn: the CLI answers it, withdraws a
  pending question with ``control_cancel_request``, stops a running tool, and ends with a
  ``result`` whose ``subtype`` is ``error_during_execution``;
* after the ``result`` the CLI waits for more input: closing stdin lets it exit, and the next
  ``user`` line starts another turn of the same conversation (a warm process, turns/warm.py:
  no second initialize; it prints ``system/init`` again, with the same session id).
"""

from __future__ import annotations

import difflib
import json
import os
from typing import Any

from .. import events
from .base import Event, ProviderIO
from .claude_stream import ClaudeStreamParser
from .cli_support import clip

INIT_REQUEST_ID = "jupyter-assistant-initialize"
INTERRUPT_REQUEST_ID = "jupyter-assistant-interrupt"
MAX_SUMMARY_CHARS = 20_000
MAX_DIFF_SOURCE_BYTES = 2 * 1024 * 1024
FILE_TOOLS = ("Write", "Edit", "MultiEdit")


class ClaudeControlParser(ClaudeStreamParser):
    """The stream-json parser plus the control protocol: the runner's interactive parser."""

    interactive = True

    def __init__(
        self,
        prompt: str | None,
        working_dir: str,
        *,
        initialize: bool = True,
        close_after_result: bool = True,
    ) -> None:
        """``initialize=False``: the CLI runs already (a warm process, turns/warm.py) and was
        initialized by an earlier turn; ``close_after_result=False``: stdin stays open after
        the result, so that the process can take the next turn. ``prompt=None``: a pre-warm,
        which only initializes the CLI and is ``done`` when the CLI has answered."""
        super().__init__()
        self._prompt = prompt
        self._working_dir = working_dir
        self._initialize = initialize
        self._close_after_result = close_after_result
        self._io: ProviderIO | None = None
        self._asks: dict[str, Any] = {}  # request id -> the tool input asked about
        self._asked_tool_uses: set[str] = set()
        self._interrupted = False

    # -- the protocol the runner drives --------------------------------------------------------

    def start(self, io: ProviderIO) -> None:
        self._io = io
        if self._initialize:
            self._send(
                {
                    "type": "control_request",
                    "request_id": INIT_REQUEST_ID,
                    "request": {"subtype": "initialize"},
                }
            )
        if self._prompt is None:
            return  # a pre-warm: the first message comes with the session's next turn
        self._send(
            {
                "type": "user",
                "message": {"role": "user", "content": self._prompt},
                "parent_tool_use_id": None,
                "session_id": "",
            }
        )

    def interrupt(self) -> bool:
        if self._io is None or self.state.terminal is not None:
            return False
        if not self._interrupted:
            self._interrupted = True
            self._asks.clear()  # the CLI withdraws them itself (control_cancel_request)
            self._send(
                {
                    "type": "control_request",
                    "request_id": INTERRUPT_REQUEST_ID,
                    "request": {"subtype": "interrupt"},
                }
            )
        return True

    def answer_permission(
        self, request_id: str, allow: bool, scope: str, message: str | None
    ) -> bool:
        if request_id not in self._asks:
            return False
        tool_input = self._asks.pop(request_id)
        if allow:
            response: dict[str, Any] = {"behavior": "allow", "updatedInput": tool_input}
        else:
            response = {"behavior": "deny", "message": message or "The user denied this."}
        self._respond(request_id, response)
        return True

    # -- what the CLI sends --------------------------------------------------------------------

    def _control(self, obj: dict[str, Any]) -> list[Event]:
        kind = obj.get("type")
        if kind == "control_cancel_request":
            self._asks.pop(str(obj.get("request_id", "")), None)
            return []
        if kind == "control_response" and self._prompt is None and self.state.terminal is None:
            response = obj.get("response") or {}
            if response.get("request_id") == INIT_REQUEST_ID:
                # A pre-warm: the CLI has started (it connects its MCP servers next).
                if response.get("subtype") != "success":
                    message = f"Claude Code did not start: {response.get('error') or response}"
                    return [self.end_with(events.error("provider_failed", message))]
                return [self.end_with(events.done(None, 0.0, 0))]
        if kind != "control_request":
            return []  # answers to our initialize and interrupt: nothing to show
        request_id = str(obj.get("request_id", ""))
        request = obj.get("request") or {}
        if request.get("subtype") != "can_use_tool":
            # Hooks, MCP messages...: this client registers none.
            self._send(
                {
                    "type": "control_response",
                    "response": {
                        "subtype": "error",
                        "request_id": request_id,
                        "error": f"Unsupported control request: {request.get('subtype')}",
                    },
                }
            )
            return []
        tool_name = str(request.get("tool_name", ""))
        tool_input = request.get("input")
        if self._interrupted:
            self._respond(request_id, {"behavior": "deny", "message": "The turn was stopped."})
            return []
        self._asks[request_id] = tool_input
        self._asked_tool_uses.add(str(request.get("tool_use_id", "")))
        paths = [str(request["blocked_path"])] if request.get("blocked_path") else []
        summary = summarize(tool_name, tool_input, self._working_dir)
        # Paths the CLI found in the call (e.g. in a shell command), for the policy.
        return [
            {
                **events.permission_request(request_id, tool_name, tool_input, summary),
                "paths": paths,
            }
        ]

    def _reported(self, denial: dict[str, Any]) -> bool:
        # A call denied through a question was reported when it was answered (by the user, the
        # policy or the timeout); the print-mode hint (allowed_tools) would mislead.
        return str(denial.get("tool_use_id", "")) in self._asked_tool_uses

    def _result(self, obj: dict[str, Any]) -> list[Event]:
        events = super()._result(obj)
        # The turn is over; the CLI would wait for another message. A stopped turn's process
        # is not kept: it may exit at once, not after the stop's signals.
        if self._io is not None and (self._close_after_result or self._interrupted):
            self._io.close()
        return events

    # -- the wire ------------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        if self._io is not None:
            self._io.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def _respond(self, request_id: str, response: dict[str, Any]) -> None:
        self._send(
            {
                "type": "control_response",
                "response": {"subtype": "success", "request_id": request_id, "response": response},
            }
        )


# -- what the user is shown ----------------------------------------------------------------------


def summarize(tool_name: str, tool_input: Any, working_dir: str) -> str:
    """A readable account of a tool call: the command, a diff of the file change, the URL..."""
    data = tool_input if isinstance(tool_input, dict) else {}
    if tool_name in FILE_TOOLS and isinstance(data.get("file_path"), str):
        text = file_change_diff(tool_name, data, working_dir)
    elif isinstance(data.get("command"), str):
        text = f"$ {data['command']}"
        if data.get("description"):
            text += f"\n# {data['description']}"
    elif tool_name == "NotebookEdit":
        mode = data.get("edit_mode") or "replace"
        where = data.get("cell_id") or data.get("cell_number") or "new cell"
        text = (
            f"{mode} cell {where} of {data.get('notebook_path', '')}:\n{data.get('new_source', '')}"
        )
    elif tool_name == "ExitPlanMode" and isinstance(data.get("plan"), str):
        text = data["plan"]
    elif isinstance(data.get("url"), str):
        text = data["url"] + (f"\n{data['prompt']}" if data.get("prompt") else "")
    elif isinstance(data.get("file_path"), str):
        text = data["file_path"]
    else:
        text = json.dumps(tool_input, indent=1, ensure_ascii=False, default=str)
    return clip(text, MAX_SUMMARY_CHARS)


def file_change_diff(tool_name: str, data: dict[str, Any], working_dir: str) -> str:
    """A unified diff of what Write/Edit/MultiEdit would do to the file as it is on disk."""
    path = os.path.join(working_dir, str(data["file_path"]))
    shown = os.path.relpath(path, working_dir)
    if shown.startswith(os.pardir):
        shown = path
    try:
        if os.path.getsize(path) > MAX_DIFF_SOURCE_BYTES:
            return f"{tool_name} {shown} (the file is too large to show a diff)"
        with open(path, encoding="utf-8") as f:
            before: str | None = f.read()
    except FileNotFoundError:
        before = None
    except UnicodeDecodeError:
        return f"{tool_name} {shown} (a binary file)"
    except OSError as exc:
        return f"{tool_name} {shown} (cannot read it: {exc.strerror})"
    if tool_name == "Write":
        after = str(data.get("content", ""))
    else:
        edits = data.get("edits") if tool_name == "MultiEdit" else [data]
        after, missing = _apply_edits(before or "", edits if isinstance(edits, list) else [])
        if missing:
            return f"{tool_name} {shown}: the text to replace is not in the file:\n{missing}"
    old_name = f"a/{shown}" if before is not None else "/dev/null"
    lines = difflib.unified_diff(
        (before or "").splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=old_name,
        tofile=f"b/{shown}",
    )
    diff = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    return diff.rstrip("\n") or f"{tool_name} {shown} (no change)"


def _apply_edits(text: str, edits: list[Any]) -> tuple[str, str | None]:
    for edit in edits:
        if not isinstance(edit, dict):
            continue
        old, new = str(edit.get("old_string", "")), str(edit.get("new_string", ""))
        if old and old not in text:
            return text, old
        text = text.replace(old, new) if edit.get("replace_all") else text.replace(old, new, 1)
    return text, None
