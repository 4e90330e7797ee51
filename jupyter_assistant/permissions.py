"""The tool approval policy: which tool calls run, which are refused, which the user decides.

Provider-neutral: a provider's parser turns the agent's question ("may I use Write on
notes.txt?") into a ``permission_request`` event, and the turn runner asks ``PermissionPolicy``
before any user sees it. In order:

1. a tool named by ``denied_tools`` is refused;
2. a call that names a path outside the notebook's folder (symlinks resolved) and outside the
   administrator's ``extra_dirs`` is refused;
3. an answer the user gave "for this session" to the same tool and subject decides;
4. a tool named by ``allowed_tools`` (default: the read-only ones) runs;
5. a tool named by ``confined_tools`` runs if the call names a path (all inside, by 2.);
6. anything else is asked.

ACP agents' requests are decided by the same policy, with the agent's tool kinds as tool names
(providers/acp_protocol.py).

A rule is a tool name (``Write``, shell-style wildcards allowed: ``mcp__*``) or a tool name with
a pattern for the call's subject: ``Bash(git status)``, ``Bash(pytest*)``, or Claude Code's
prefix form ``Bash(npm run:*)``. The subject is the command of a shell call, the resolved path
of a file call, the URL of a fetch, else the call's input as JSON.

Shell commands are compound more often than not, so for a shell call (an input with a
``command``) a rule with a wildcard or prefix *allows* only a command that is one simple
command (``shell.is_simple_command``): ``Bash(pytest:*)`` allows ``pytest -q`` but asks about
``pytest -q; touch x``. A *deny* rule matches if it matches the whole command or any simple
command in it: ``Bash(rm:*)`` refuses ``true && rm victim.txt``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

from .shell import is_simple_command, simple_commands

Decision = Literal["allow", "deny", "ask"]

# Tools that only read (Claude Code's names); they still may not read outside the folder.
READ_ONLY_TOOLS = (
    "Read",
    "Glob",
    "Grep",
    "LS",
    "NotebookRead",
    "TodoWrite",
    "TaskCreate",
    "TaskGet",
    "TaskList",
    "TaskUpdate",
    "TaskOutput",
    # the notebook tools that only read (notebook_tools/)
    "mcp__notebook__read_notebook",
    "mcp__notebook__kernel_variables",
)
# Input keys that name the file or folder a call works on (Claude Code and ACP agents).
PATH_KEYS = (
    "file_path",
    "path",
    "notebook_path",
    "filePath",
    "dir_path",
    "absolute_path",
    "source",
    "destination",
    "old_path",
    "new_path",
)
SETTINGS_HINT = "c.AssistantExtension.permission_extra_dirs"


def inside(path: str, root: str) -> bool:
    """Whether ``path`` (relative paths count from ``root``) stays inside ``root``, with
    symlinks resolved on both sides."""
    target = os.path.realpath(os.path.join(root, os.path.expanduser(path)))
    base = os.path.realpath(root)
    return target == base or target.startswith(base.rstrip(os.sep) + os.sep)


def call_paths(tool_input: Any) -> list[str]:
    """The paths a tool call's input names (absolute glob patterns count as paths)."""
    if not isinstance(tool_input, dict):
        return []
    paths = [str(tool_input[key]) for key in PATH_KEYS if isinstance(tool_input.get(key), str)]
    pattern = tool_input.get("pattern")
    if isinstance(pattern, str) and pattern.startswith(("/", "~")):
        paths.append(pattern.split("*", 1)[0] or "/")
    return [p for p in paths if p]


def subject(tool_input: Any, working_dir: str) -> str:
    """What a call acts on, for rules and for "this session" answers."""
    if isinstance(tool_input, dict):
        command = tool_input.get("command")
        if isinstance(command, str):
            return command
        for key in PATH_KEYS:
            value = tool_input.get(key)
            if isinstance(value, str) and value:
                return os.path.realpath(os.path.join(working_dir, os.path.expanduser(value)))
        url = tool_input.get("url")
        if isinstance(url, str):
            return url
    return json.dumps(tool_input, sort_keys=True, default=str)


def rule_matches(rule: str, tool_name: str, call_subject: str) -> bool:
    name, has_pattern, rest = rule.partition("(")
    if not fnmatchcase(tool_name, name.strip()):
        return False
    if not has_pattern:
        return True
    pattern = rest[:-1] if rest.endswith(")") else rest
    if pattern.endswith(":*"):  # Claude Code's prefix rule: `npm run:*`
        prefix = pattern[:-2]
        return call_subject == prefix or call_subject.startswith(prefix + " ")
    return fnmatchcase(call_subject, pattern)


def is_shell_call(tool_input: Any) -> bool:
    return isinstance(tool_input, dict) and isinstance(tool_input.get("command"), str)


def _has_wildcard(rule: str) -> bool:
    _, has_pattern, rest = rule.partition("(")
    return bool(has_pattern) and (rest.rstrip(")").endswith(":*") or any(c in rest for c in "*?["))


def allow_rule_matches(rule: str, tool_name: str, tool_input: Any, call_subject: str) -> bool:
    """An allow rule: on a shell call, a wildcard or prefix rule allows one simple command only."""
    if not rule_matches(rule, tool_name, call_subject):
        return False
    if is_shell_call(tool_input) and _has_wildcard(rule):
        return is_simple_command(call_subject)
    return True


def deny_rule_matches(rule: str, tool_name: str, tool_input: Any, call_subject: str) -> bool:
    """A deny rule: on a shell call, matching any simple command of a compound one is enough."""
    if rule_matches(rule, tool_name, call_subject):
        return True
    if not is_shell_call(tool_input):
        return False
    return any(rule_matches(rule, tool_name, part) for part in simple_commands(call_subject))


@dataclass(frozen=True)
class Reasons:
    """How verdicts explain themselves; ``{tool}``, ``{rule}``, ``{path}`` and
    ``{working_dir}`` are filled in."""

    outside: str = (
        "{path} is outside the notebook's folder ({working_dir}); an administrator can allow "
        f"more folders with {SETTINGS_HINT}"
    )
    allowed: str = "{rule} is always allowed (permission_allowed_tools)"
    confined: str = "every path it names is inside the notebook's folder"
    unconfined: str = "the '{tool}' call names no file, so it cannot be confined"
    undecided: str = "not decided by the policy"


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str


@dataclass(frozen=True)
class SessionAnswer:
    """An answer the user gave "for this session"."""

    tool_name: str
    pattern: str
    allow: bool
    message: str | None = None


@dataclass
class PermissionPolicy:
    working_dir: str
    allowed_tools: Sequence[str] = READ_ONLY_TOOLS
    denied_tools: Sequence[str] = ()
    extra_dirs: Sequence[str] = ()
    answers: list[SessionAnswer] = field(default_factory=list)
    # Tools that run without asking when the call names a path, every one inside the folders
    # above: an ACP agent's `edit` kind. A call of one that names no path is asked about.
    confined_tools: Sequence[str] = ()
    reasons: Reasons = Reasons()

    def decide(self, tool_name: str, tool_input: Any, paths: Iterable[str] = ()) -> Verdict:
        what = subject(tool_input, self.working_dir)
        for rule in self.denied_tools:
            if deny_rule_matches(rule, tool_name, tool_input, what):
                return Verdict("deny", f"the administrator denies {rule} (permission_denied_tools)")
        named = [*call_paths(tool_input), *paths]
        for path in named:
            if not self.allowed_path(path):
                reason = self.reasons.outside.format(path=path, working_dir=self.working_dir)
                return Verdict("deny", reason)
        for answer in reversed(self.answers):
            if answer.tool_name == tool_name and answer.pattern == what:
                verb = "allowed" if answer.allow else "denied"
                return Verdict(
                    "allow" if answer.allow else "deny",
                    f"you {verb} this for the rest of the session"
                    + (f": {answer.message}" if answer.message else ""),
                )
        for rule in self.allowed_tools:
            if allow_rule_matches(rule, tool_name, tool_input, what):
                return Verdict("allow", self.reasons.allowed.format(rule=rule, tool=tool_name))
        if any(fnmatchcase(tool_name, rule) for rule in self.confined_tools):
            if named:
                return Verdict("allow", self.reasons.confined.format(tool=tool_name))
            return Verdict("ask", self.reasons.unconfined.format(tool=tool_name))
        return Verdict("ask", self.reasons.undecided.format(tool=tool_name))

    def allowed_path(self, path: str) -> bool:
        # Relative paths count from the notebook's folder, whichever root they end up in.
        absolute = os.path.join(self.working_dir, os.path.expanduser(path))
        return any(inside(absolute, root) for root in (self.working_dir, *self.extra_dirs) if root)

    def remember(
        self, tool_name: str, tool_input: Any, allow: bool, message: str | None = None
    ) -> SessionAnswer:
        """Keep a "for this session" answer; returns it, for the caller to store."""
        answer = SessionAnswer(
            tool_name, subject(tool_input, self.working_dir), allow, message or None
        )
        self.answers.append(answer)
        return answer
