"""What the CLI-backed providers (Codex, Gemini, ACP agents) share: finding the executable,
reading its version, decoding JSON lines, the notebook preamble, and tidy error text."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from typing import Any

from .base import Provider, ProviderHealth, ProviderUnavailable

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
MAX_TOOL_TEXT = 100_000
STDERR_LINES = 12


def command_argv(command: list[str] | str) -> list[str]:
    """A ``command`` setting (a list, or a string split like a shell would) as argv."""
    if isinstance(command, str):
        return shlex.split(command)
    return [str(part) for part in command]


def resolve_command(
    argv: list[str], env: dict[str, str], display_name: str, install_hint: str, setting: str
) -> list[str]:
    """``argv`` with its executable resolved on the provider's PATH, or ``provider_not_found``."""
    if not argv:
        raise ProviderUnavailable("provider_not_found", f"{display_name}: set {setting}.")
    resolved = Provider.which(argv[0], env.get("PATH"))
    if resolved is None:
        raise ProviderUnavailable(
            "provider_not_found", not_found_message(argv[0], display_name, install_hint, setting)
        )
    return [resolved, *argv[1:]]


def not_found_message(executable: str, display_name: str, install_hint: str, setting: str) -> str:
    return (
        f"{display_name} not found ({executable!r}): {install_hint}, or set {setting} to its path."
    )


async def version_health(
    provider: Provider,
    argv: list[str],
    env: dict[str, str],
    install_hint: str,
    setting: str,
    version_args: tuple[str, ...] = ("--version",),
) -> ProviderHealth:
    """Health from ``<executable> --version``: never a model call. The caller adds credentials."""
    health = ProviderHealth(provider.name, provider.display_name, available=False)
    if not argv:
        health.problem = f"{provider.display_name} has no command: set {setting}."
        return health
    resolved = provider.which(argv[0], env.get("PATH"))
    if resolved is None:
        health.problem = not_found_message(argv[0], provider.display_name, install_hint, setting)
        return health
    health.executable = resolved
    try:
        text = await read_stdout([resolved, *argv[1:], *version_args], env)
    except Exception as exc:  # any failure to run it is reported, not raised
        reason = str(exc) or type(exc).__name__
        health.problem = f"{resolved} {' '.join(version_args)} failed: {reason}"
        return health
    health.version = version_number(text)
    health.available = True
    return health


async def read_stdout(argv: list[str], env: dict[str, str], timeout: float = 15.0) -> str:
    """The stdout of a short command; stderr is left out (codex prints warnings there first)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        detail = stderr_summary(err.decode(errors="replace"))
        raise RuntimeError(f"exit code {proc.returncode}: {detail}")
    return out.decode(errors="replace").strip()


def version_number(text: str) -> str | None:
    """``codex-cli 0.171.0`` -> ``0.171.0``; ``0.61.0`` -> ``0.61.0``."""
    match = re.search(r"\d+\.\d+[\w.+-]*", text)
    return match.group(0) if match else (text.strip() or None)


def json_object(line: bytes) -> dict[str, Any] | None:
    """One output line as a JSON object, or None (blank, not JSON, or not an object)."""
    line = line.strip()
    if not line.startswith(b"{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def clean_text(text: str) -> str:
    """Terminal colour codes out, surrounding blank space trimmed."""
    return _ANSI.sub("", text).strip()


def stderr_summary(stderr: str, noise: tuple[str, ...] = ()) -> str:
    """The last meaningful stderr lines, without colour codes or lines matching ``noise``."""
    lines = [
        line
        for line in clean_text(stderr).splitlines()
        if line.strip() and not any(n in line for n in noise)
    ]
    return "\n".join(lines[-STDERR_LINES:]) or "no error output"


def clip(text: str, limit: int = MAX_TOOL_TEXT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… [{len(text) - limit} more characters]"


def render_context(context: dict[str, Any]) -> str:
    parts = []
    for key, value in context.items():
        text = value if isinstance(value, str) else json.dumps(value, indent=1, default=str)
        parts.append(f"### {key}\n{text}")
    return "\n\n".join(parts)


def notebook_instructions(
    notebook_path: str, working_dir: str, context: dict[str, Any] | None, extra: str = ""
) -> str:
    """What every agent is told about where it works (the same words Claude Code gets)."""
    lines = [
        f"You are assisting a Jupyter user with the notebook `{notebook_path}`. Your working "
        f"directory is the notebook's folder ({working_dir}); files the user mentions are "
        "relative to it.",
    ]
    if context:
        lines.append(
            "Context sent with this request from the user's notebook:\n\n" + render_context(context)
        )
    if extra:
        lines.append(extra)
    return "\n\n".join(lines)


def tagged(tag: str, text: str) -> str:
    """Text wrapped in ``<tag>…</tag>``, the way the CLIs mark their own injected context."""
    return f"<{tag}>\n{text}\n</{tag}>"


class LostConversations:
    """Conversation ids a CLI failed to resume, so that later turns start a new conversation.

    The runner retries a turn without resuming when a parser reports ``resume_failed``; if that
    retry fails too (a crash, a timeout), the session keeps the lost id, and remembering it
    spares the next turn another failed start."""

    def __init__(self) -> None:
        self._ids: set[str] = set()

    def add(self, conversation_id: str | None) -> None:
        if conversation_id:
            self._ids.add(conversation_id)

    def usable(self, conversation_id: str | None) -> str | None:
        """The id to resume, or None to start a new conversation."""
        return None if conversation_id in self._ids else conversation_id

    def notice(self, conversation_id: str | None, display_name: str) -> dict[str, Any] | None:
        if conversation_id is None or conversation_id not in self._ids:
            return None
        return {
            "type": "notice",
            "level": "warning",
            "message": f"The earlier {display_name} conversation could not be resumed; this "
            "turn starts a new one.",
        }
