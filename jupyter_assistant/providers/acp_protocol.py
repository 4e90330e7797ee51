"""What the Agent Client Protocol's messages mean to this client: the handshake it sends, the
tool calls an agent reports (their name, input, paths and text) and how its permission requests
are decided (by permissions.py's policy, with ACP's tool kinds as tool names)."""

from __future__ import annotations

import re
from typing import Any, cast

from .._version import __version__
from ..events import NoticeLevel
from ..permissions import PATH_KEYS, PermissionPolicy, Reasons

PROTOCOL_VERSION = 1
AUTH_REQUIRED = -32000  # ACP's "authentication required" error code
METHOD_NOT_FOUND = -32601
# Tool kinds whose effect is limited to the paths the call names.
PATH_KINDS = ("read", "edit", "delete", "move", "search")
HARMLESS_KINDS = ("think",)
POLICY_HINT = (
    "To decide such calls yourself set c.AcpProvider.permission_policy = 'ask'; 'allow' allows "
    "everything."
)
# permission_policy "workdir" and "ask": what they allow without asking, in their own words.
WORKDIR_REASONS = Reasons(
    outside="{path} is outside the notebook's folder",
    allowed="a '{tool}' call changes nothing",
    undecided="a '{tool}' call cannot be confined to the notebook's folder",
)


def initialize_params() -> dict[str, Any]:
    """The ``initialize`` request's params: protocol 1, no file system, no terminal."""
    return {
        "protocolVersion": PROTOCOL_VERSION,
        "clientCapabilities": {
            "fs": {"readTextFile": False, "writeTextFile": False},
            "terminal": False,
            # ACP v1's opt-in to ``notice`` updates: without it an agent folds its warnings
            # into the reply (claude-agent-acp 0.101: "**Warning:** ..." as message text).
            "session": {"notices": {}},
        },
        "clientInfo": {
            "name": "jupyter-assistant",
            "title": "Jupyter Assistant",
            "version": __version__,
        },
    }


def notebook_tool_call(tool_call: dict[str, Any], server: str) -> bool:
    """Whether a tool call is one of the ``server`` MCP server's (the notebook tools), by its id:
    gemini 0.61.0 names it ``mcp_<server>_<tool>__...``, others ``mcp__<server>__<tool>...``.
    The id comes from the agent's tool registry, never from the model's arguments (a title can:
    a shell command's title is the command)."""
    ident = str(tool_call.get("toolCallId") or "")
    return ident.startswith((f"mcp_{server}_", f"mcp__{server}__"))


def tool_paths(tool_call: dict[str, Any]) -> list[str]:
    """Every file path a tool call names: its locations, its diffs and its raw input."""
    paths: list[str] = []
    for location in tool_call.get("locations") or []:
        if isinstance(location, dict) and isinstance(location.get("path"), str):
            paths.append(location["path"])
    for block in tool_call.get("content") or []:
        if isinstance(block, dict) and block.get("type") == "diff" and block.get("path"):
            paths.append(str(block["path"]))
    raw = tool_call.get("rawInput")
    if isinstance(raw, dict):
        paths += [str(raw[key]) for key in PATH_KEYS if isinstance(raw.get(key), str)]
    return list(dict.fromkeys(paths))


def decide(policy: str, tool_call: dict[str, Any], working_dir: str) -> tuple[str, str]:
    """(allow | reject | ask, why) for a permission request under ``permission_policy``.

    workdir: permissions.py's policy with the harmless kinds allowed and the path kinds
    confined to the notebook's folder; what it would ask about is refused. ask: the same, but
    the user is asked instead of refusing."""
    if policy in ("allow", "reject"):
        return policy, f"c.AcpProvider.permission_policy is '{policy}'"
    rules = PermissionPolicy(
        working_dir,
        allowed_tools=HARMLESS_KINDS,
        confined_tools=PATH_KINDS,
        reasons=WORKDIR_REASONS,
    )
    kind = str(tool_call.get("kind") or "other")
    verdict = rules.decide(kind, None, tool_paths(tool_call))
    if verdict.decision == "allow":
        return "allow", verdict.reason
    return ("ask" if policy == "ask" else "reject"), verdict.reason


def content_text(blocks: Any) -> str:
    """Tool call content blocks (text, diffs, terminals) as text."""
    parts: list[str] = []
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "content":
            inner = block.get("content") or {}
            if isinstance(inner, dict):
                parts.append(str(inner.get("text", f"[{inner.get('type', 'content')}]")))
        elif block.get("type") == "diff":
            parts.append(f"edited {block.get('path', '')}")
        elif block.get("type") == "terminal":
            parts.append(f"[terminal {block.get('terminalId', '')}]")
    return "\n".join(parts)


def option_id(options: list[Any], *kinds: str) -> str | None:
    """The id of the first permission option of one of ``kinds`` (in that order)."""
    for kind in kinds:
        for option in options:
            if isinstance(option, dict) and option.get("kind") == kind:
                return str(option.get("optionId"))
    return None


def tool_name(call: dict[str, Any]) -> str:
    return str(call.get("kind") or "tool")


def tool_input(call: dict[str, Any]) -> Any:
    raw = call.get("rawInput")
    if isinstance(raw, dict) and raw:
        return raw
    return {"title": call.get("title"), "paths": tool_paths(call)}


def _count(counts: dict[str, Any], *keys: str) -> int:
    for key in keys:
        value = counts.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    return 0


def prompt_usage(result: dict[str, Any]) -> tuple[int, int] | None:
    """(input, output) tokens of the turn from the prompt's answer: ACP's ``usage``
    (claude-agent-acp 0.101: ``inputTokens`` without the cache tokens, ``totalTokens`` with
    them, so input is the total less the output, as the Claude provider counts it), else the
    ``_meta.quota.token_count`` some agents add (gemini 0.61.0 in snake_case, claude-agent-acp
    in camelCase)."""
    usage = result.get("usage")
    if isinstance(usage, dict):
        output = _count(usage, "outputTokens")
        total = _count(usage, "totalTokens")
        input_tokens = total - output if total > output else _count(usage, "inputTokens")
        return input_tokens, output
    meta = result.get("_meta") or {}
    quota = meta.get("quota") if isinstance(meta, dict) else None
    counts = quota.get("token_count") if isinstance(quota, dict) else None
    if isinstance(counts, dict):
        return (
            _count(counts, "input_tokens", "inputTokens"),
            _count(counts, "output_tokens", "outputTokens"),
        )
    return None


def notice_update(update: dict[str, Any]) -> tuple[str, NoticeLevel]:
    """A ``notice`` session update (ACP v1, ``clientCapabilities.session.notices``) in words:
    ``title: description`` and its level (``error`` notices are warnings here: an error notice
    does not fail the turn)."""
    title = str(update.get("title") or "").strip()
    description = str(update.get("description") or "").strip()
    text = f"{title}: {description}" if title and description else title or description
    level = "info" if update.get("severity") == "info" else "warning"
    return text, cast(NoticeLevel, level)


# Agent warnings sent as reply text by agents without notices, as whole chunks:
# codex-acp forwards Codex's warning events as an agent_message_chunk of their own.
AGENT_WARNING_TEXTS = (re.compile(r"Model metadata for `[^`\n]+` not found\b"),)
# claude-agent-acp without the notices capability: "**Warning:** <text>", tagged in _meta.
CLAUDE_LABEL = re.compile(r"^\*\*(Warning|Notice|Suggestion|Error):\*\*\s*")


def warning_chunk(update: dict[str, Any], text: str) -> str | None:
    """The warning an ``agent_message_chunk`` carries instead of reply text, if it does."""
    meta = update.get("_meta")
    claude = meta.get("claudeCode") if isinstance(meta, dict) else None
    if isinstance(claude, dict) and claude.get("kind") == "informational":
        return CLAUDE_LABEL.sub("", text).strip() or None
    stripped = text.strip()
    if any(pattern.match(stripped) for pattern in AGENT_WARNING_TEXTS):
        return stripped
    return None


# Claude Code refuses --dangerously-skip-permissions as root unless IS_SANDBOX is exactly "1";
# claude-agent-acp 0.101 offers it (bypassPermissions) as root whenever IS_SANDBOX is set at all,
# so with IS_SANDBOX=yes (as some containers have it) session/new fails with this error.
ROOT_REFUSAL = "cannot be used with root/sudo privileges"
ROOT_HINT = (
    "Claude Code refuses that as root unless IS_SANDBOX is exactly 1, and the agent asked for "
    "it because IS_SANDBOX is set to something else in its environment (containers usually "
    "run as root): set c.AcpProvider.env = {'IS_SANDBOX': '1'} if the server runs in a "
    "container or sandbox, otherwise unset IS_SANDBOX or run Jupyter as a user other than root."
)


def root_refusal(text: str) -> bool:
    return ROOT_REFUSAL in text


def error_text(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    text = str(error.get("message", "error"))
    data = error.get("data")
    if isinstance(data, dict) and data.get("details"):
        text += f": {data['details']}"
    elif isinstance(data, str):
        text += f": {data}"
    return text
