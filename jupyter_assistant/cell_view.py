"""A turn as the ``%%assistant`` cell shows it: text, tool lines and questions in stream order,
then a footer, as Markdown (a notebook) or plain text (a terminal).

The events are folded by ``reply.ReplyBuilder``, the runner's own fold, so the cell shows what
the session stores; this module only renders it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .events import Event
from .models import PermissionRecord, ToolCall
from .reply import Part, ReplyBuilder
from .toolcalls import tool_detail

ANSWERED = {
    ("allow", "once"): "allowed once",
    ("allow", "session"): "allowed for this session",
    ("deny", "once"): "denied",
    ("deny", "session"): "denied for this session",
}
SUMMARY_LINES = 40  # of a question's diff or command, in the cell


def outcome(record: PermissionRecord) -> str:
    """How a question was answered, in the cell's words; empty while it waits."""
    if record.decision is None:
        return ""
    if record.by == "timeout":
        return "denied: nobody answered in time"
    answered = ANSWERED.get((record.decision, record.scope), record.decision)
    return f"{answered}: {record.message}" if record.message else answered


def _clip_lines(text: str) -> str:
    lines = text.splitlines()
    if len(lines) <= SUMMARY_LINES:
        return text
    return "\n".join([*lines[:SUMMARY_LINES], f"… ({len(lines) - SUMMARY_LINES} more lines)"])


def _code(detail: str) -> str:
    """A detail inside Markdown backticks: its own backticks would end the span."""
    return detail.replace("`", "'")


@dataclass
class TurnView:
    """A turn's events folded into what the cell shows. Also the source of ``--output`` (the
    reply text) and ``--code``."""

    provider: str = ""
    reply: ReplyBuilder = field(default_factory=ReplyBuilder)
    after: int = 0  # sequence number of the last event folded

    def fold(self, seq: int, event: Mapping[str, Any]) -> None:
        self.after = seq
        self.reply.apply(dict(event))

    def note(self, message: str) -> None:
        """A line of the cell's own (not from the stream), in order with the rest."""
        self.reply.parts.append(Part("notice", [message]))

    @property
    def terminal(self) -> Event | None:
        return self.reply.terminal

    @property
    def finished(self) -> bool:
        return self.reply.terminal is not None

    def tool_state(self, call: ToolCall) -> str:
        """ "stopped" for a tool that Stop ended (no result, or the error of being killed),
        "failed" for one that failed on its own, else ""."""
        stopped = self.terminal is not None and self.terminal.get("type") == "cancelled"
        done = call.result is not None or call.is_error  # every result carries its text
        if stopped and (call.is_error or not done):
            return "stopped"
        return "failed" if call.is_error else ""

    def text(self) -> str:
        """The reply text, as stored in the session."""
        return self.reply.text

    def footer(self) -> str:
        if self.terminal is None:
            return "working…"
        bits = []
        ttype = self.terminal.get("type")
        if ttype == "cancelled":
            bits.append("cancelled")
        elif ttype == "error":
            bits.append(f"error: {self.terminal.get('code', 'error')}")
        usage = self.reply.usage
        cost = self.terminal.get("cost_usd", usage.cost_usd)
        if cost:
            bits.append(f"${float(cost):.4f}")
        duration = self.terminal.get("duration_ms")
        if duration:
            bits.append(f"{int(duration) / 1000:.1f} s")
        if usage.input_tokens or usage.output_tokens:
            bits.append(f"{usage.input_tokens:,} tokens in, {usage.output_tokens:,} out")
        return " · ".join(bits) if bits else "done"

    def _render(
        self,
        tool: Callable[[ToolCall], str],
        question: Callable[[PermissionRecord], str],
        notice: Callable[[str], str],
    ) -> str:
        """The parts in stream order, each kind drawn by its function; text as it came."""
        chunks: list[str] = []
        for part in self.reply.parts:
            if part.kind == "text":
                chunks.append(part.text)
            elif part.kind == "tool":
                chunks.append(tool(self.reply.tools[part.ref]))
            elif part.kind == "question":
                chunks.append(question(self.reply.permissions[part.ref]))
            else:
                chunks.append(notice(part.text))
        return "".join(chunks)

    # -- Markdown (a notebook) -----------------------------------------------------------------

    def markdown(self) -> str:
        body = self._render(self._md_tool, self._md_question, self._md_notice).strip()
        footer = f"*{self.footer()}*"
        return f"{body}\n\n{footer}" if body else footer

    def _md_tool(self, call: ToolCall) -> str:
        state = self.tool_state(call)
        code = _code(tool_detail(call.input))
        detail = f" `{code}`" if code else ""
        return f"\n\n> **{call.name}**{detail}{f' — {state}' if state else ''}\n\n"

    @staticmethod
    def _md_question(record: PermissionRecord) -> str:
        answer = outcome(record)
        line = f"\n\n> ❓ **{record.tool_name}** `{_code(tool_detail(record.input))}` — "
        line += f"{answer or 'waiting for your answer'}\n\n"
        body = _clip_lines(record.summary)
        if not body or answer:
            return line  # answered: the diff folds away
        # A tilde fence: the summary may hold backticks (code the agent writes).
        fence = "~~~~diff" if record.summary.startswith("--- ") else "~~~~"
        return f"{line}{fence}\n{body}\n~~~~\n\n"

    @staticmethod
    def _md_notice(message: str) -> str:
        return f"\n\n> ⚠ {message}\n\n"

    # -- plain text (a terminal) ---------------------------------------------------------------

    def plain_body(self) -> str:
        return self._render(self._plain_tool, self._plain_question, self._plain_notice)

    def plain(self) -> str:
        body = self.plain_body().strip()
        return f"{body}\n\n-- {self.footer()}" if body else f"-- {self.footer()}"

    def _plain_tool(self, call: ToolCall) -> str:
        state = self.tool_state(call)
        return f"\n[{call.name}] {tool_detail(call.input)}{f' ({state})' if state else ''}\n"

    @staticmethod
    def _plain_question(record: PermissionRecord) -> str:
        # Only ever appended to (a terminal prints what is new): the answer goes after.
        detail = tool_detail(record.input)
        text = f"\n[? {record.tool_name}] {detail} — asks for your answer\n"
        text += f"{_clip_lines(record.summary)}\n" if record.summary else ""
        answer = outcome(record)
        return text + (f"[{answer}]\n" if answer else "")

    @staticmethod
    def _plain_notice(message: str) -> str:
        return f"\n[!] {message}\n"
