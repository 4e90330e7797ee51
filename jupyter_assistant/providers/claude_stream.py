"""Claude Code's stream-json output (``claude -p --output-format stream-json --verbose``) as
events.

Wire format (checked against claude 2.1.197, samples in tests/fakes/wire-samples/): one JSON
object per line: ``system/init`` (session_id, cwd), ``stream_event`` (raw API stream events, with
``--include-partial-messages``), ``assistant`` (complete content blocks: text, thinking, tool_use),
``user`` (tool_result blocks) and a final ``result`` in which ``is_error`` (not ``subtype``) tells
failure. The control protocol's messages (interactive mode) are claude_control.py's.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from .. import events
from .base import Event
from .cli_support import JsonLinesParser, clip

LOGIN_HINT = (
    "Claude Code is not logged in. Run `claude` in a terminal on the Jupyter server and log in "
    "with /login, or set ANTHROPIC_API_KEY in the server's environment "
    "(or c.ClaudeCodeProvider.env = {'ANTHROPIC_API_KEY': ...})."
)
NO_CONVERSATION = "No conversation found with session ID"
CONTROL_TYPES = frozenset({"control_request", "control_response", "control_cancel_request"})
AUTH_PATTERNS = (
    "not logged in",
    "/login",
    "invalid api key",
    "authentication_error",
    "authentication failed",
    "oauth token has expired",
)


def _tool_result_text(content: Any) -> str:
    """A tool_result's content is a string or a list of blocks; keep the text."""
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            elif isinstance(block, dict):
                parts.append(f"[{block.get('type', 'content')}]")
            else:
                parts.append(str(block))
        text = "\n".join(parts)
    elif content is None:
        text = ""
    else:
        text = json.dumps(content)
    return clip(text)


def _looks_unauthenticated(text: str) -> bool:
    lowered = text.lower()
    return any(pattern in lowered for pattern in AUTH_PATTERNS)


def _denial_message(denial: dict[str, Any]) -> str:
    tool = str(denial.get("tool_name", "a tool"))
    tool_input = denial.get("tool_input") or {}
    detail = ""
    if isinstance(tool_input, dict):
        for key in ("command", "file_path", "path", "url", "pattern"):
            if key in tool_input:
                detail = f" ({key}: {str(tool_input[key])[:200]})"
                break
    rule = tool
    if tool == "Bash" and isinstance(tool_input, dict) and tool_input.get("command"):
        first_word = str(tool_input["command"]).split()[0]
        rule = f"Bash({first_word}:*)"
    return (
        f"Claude Code was not allowed to use {tool}{detail}. To allow it, add {rule!r} to "
        "c.ClaudeCodeProvider.allowed_tools, or choose another "
        "c.ClaudeCodeProvider.permission_mode."
    )


class ClaudeStreamParser(JsonLinesParser):
    """stream-json lines -> events. Text is streamed from deltas and not repeated when the
    complete ``assistant`` message of the same API message follows."""

    cli_name: ClassVar[str] = "Claude Code"

    def __init__(self) -> None:
        super().__init__()
        self._streamed: set[str] = set()  # API message ids whose text/thinking arrived as deltas
        self._current_message: str | None = None
        self._auth_failed = False
        # Separate text blocks of one turn ("I will run pwd." ... tool ... "The directory is")
        # are joined with a paragraph break, as a reader expects.
        self._text_so_far = False
        self._new_text_block = False
        # A warm process's running cost before this turn (turns/warm.py), and after it.
        self.cost_before = 0.0
        self.process_cost = 0.0

    def parse(self, obj: dict[str, Any]) -> list[Event]:
        kind = obj.get("type")
        if kind == "stream_event":  # first: nearly every line is one
            return self._stream_event(obj.get("event") or {})
        if isinstance(obj.get("session_id"), str) and kind in ("system", "result"):
            self.state.provider_session_id = obj["session_id"]
        if kind == "assistant":
            return self._assistant(obj)
        if kind == "user":
            return self._user(obj)
        if kind == "result":
            return self._result(obj)
        if kind in CONTROL_TYPES:
            return self._control(obj)
        return []

    def _control(self, obj: dict[str, Any]) -> list[Event]:
        """Control protocol messages; only the interactive mode has any (claude_control.py)."""
        return []

    def _reported(self, denial: dict[str, Any]) -> bool:
        """Whether a denial in the result was already reported as it happened."""
        return False

    def _stream_event(self, event: dict[str, Any]) -> list[Event]:
        etype = event.get("type")
        if etype == "message_start":
            self._current_message = (event.get("message") or {}).get("id")
            return []
        if etype == "content_block_start":
            if (event.get("content_block") or {}).get("type") == "text":
                self._new_text_block = True
            return []
        if etype != "content_block_delta":
            return []
        delta = event.get("delta") or {}
        dtype = delta.get("type")
        if dtype == "text_delta" and delta.get("text"):
            self._mark_streamed()
            return [events.text(self._block_text(delta["text"]))]
        if dtype == "thinking_delta" and delta.get("thinking"):
            self._mark_streamed()
            return [events.thinking(delta["thinking"])]
        return []

    def _block_text(self, text: str) -> str:
        if self._new_text_block and self._text_so_far:
            text = "\n\n" + text
        self._new_text_block = False
        self._text_so_far = True
        return text

    def _mark_streamed(self) -> None:
        if self._current_message:
            self._streamed.add(self._current_message)

    def _assistant(self, obj: dict[str, Any]) -> list[Event]:
        message = obj.get("message") or {}
        if obj.get("error"):
            # A synthetic message that reports a failure ("Not logged in"): it becomes the
            # turn's error, not reply text.
            if obj.get("error") == "authentication_failed":
                self._auth_failed = True
            return []
        streamed = message.get("id") in self._streamed
        out: list[Event] = []
        for block in message.get("content") or []:
            if not isinstance(block, dict):
                continue
            btype = block.get("type")
            if btype == "text" and not streamed and block.get("text"):
                self._new_text_block = True
                out.append(events.text(self._block_text(block["text"])))
            elif btype == "thinking" and not streamed and block.get("thinking"):
                out.append(events.thinking(block["thinking"]))
            elif btype == "tool_use":
                out.append(
                    events.tool_use(
                        str(block.get("id", "")), str(block.get("name", "")), block.get("input")
                    )
                )
        return out

    def _user(self, obj: dict[str, Any]) -> list[Event]:
        content = (obj.get("message") or {}).get("content")
        if not isinstance(content, list):
            return []
        return [
            events.tool_result(
                str(block.get("tool_use_id", "")),
                _tool_result_text(block.get("content")),
                bool(block.get("is_error", False)),
            )
            for block in content
            if isinstance(block, dict) and block.get("type") == "tool_result"
        ]

    def _result(self, obj: dict[str, Any]) -> list[Event]:
        usage = obj.get("usage") or {}
        input_tokens = sum(
            int(usage.get(key) or 0)
            for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
        # total_cost_usd is the process's running total: a kept (warm) process's later turns
        # report their own cost plus the earlier turns' (its usage is the turn's own).
        total = float(obj.get("total_cost_usd") or 0.0)
        cost = max(0.0, total - self.cost_before)
        self.process_cost = total
        out = [events.usage(input_tokens, int(usage.get("output_tokens") or 0), cost)]
        for denial in obj.get("permission_denials") or []:
            if isinstance(denial, dict) and not self._reported(denial):
                out.append(
                    events.permission_denied(
                        str(denial.get("tool_name", "")),
                        denial.get("tool_input"),
                        _denial_message(denial),
                    )
                )
        if obj.get("is_error"):
            terminal = self._failure(obj)
        else:
            duration_ms = int(obj.get("duration_ms") or 0)
            terminal = events.done(self.state.provider_session_id, cost, duration_ms)
        out.append(self.end_with(terminal))
        return out

    def _failure(self, result: dict[str, Any]) -> Event:
        """The error of a ``result`` with ``is_error``."""
        errors = [str(e) for e in result.get("errors") or []]
        text = str(result.get("result") or "; ".join(errors) or "Claude Code reported an error.")
        if any(NO_CONVERSATION in e for e in errors) or NO_CONVERSATION in text:
            return self.lost_conversation(text)
        if self._auth_failed or _looks_unauthenticated(text):
            return events.error("not_authenticated", LOGIN_HINT)
        return events.error("provider_failed", f"Claude Code reported an error: {text}")

    def exit_error(self, returncode: int, stderr_tail: str) -> Event:
        if _looks_unauthenticated(stderr_tail):
            return events.error("not_authenticated", LOGIN_HINT)
        detail = stderr_tail.strip() or "no error output"
        if self.state.invalid_lines:
            detail += (
                f" (it also printed {self.state.invalid_lines} line(s) that were not stream-json: "
                "is c.ClaudeCodeProvider.command really Claude Code?)"
            )
        return self.exited_early(returncode, detail)
