"""EngineSettings: every setting of the engine, read from ``c.AssistantExtension.*``.

Shared by the server extension (``app.AssistantExtension`` subclasses it) and by kernels running
the magics (which must not import the server extension: it costs about a second there), so both
build the engine from exactly the same settings.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from jupyter_core.paths import jupyter_data_dir
from traitlets import Bool, Dict, Float, Int, Unicode, default, validate
from traitlets.config import Configurable

from .permissions import READ_ONLY_TOOLS
from .traits import StringList

if TYPE_CHECKING:
    from .service import ServiceSettings

STORE_ENV = "JUPYTER_ASSISTANT_DIR"
# Where the kernels a server starts reach its notebook tools (set only when it serves them).
TOOLS_URL_ENV = "JUPYTER_ASSISTANT_TOOLS_URL"

CONFIG_SECTION = "AssistantExtension"


# Settings the turn runner takes as they are, under the same name (RunnerSettings).
RUNNER_TRAITS = (
    "cancel_grace_seconds",
    "turn_timeout_seconds",
    "idle_timeout_seconds",
    "max_concurrent_turns",
    "max_line_bytes",
    "max_reply_bytes",
    "max_session_cost_usd",
    "permission_timeout_seconds",
    "warm_agents",
    "warm_idle_seconds",
    "max_warm_processes",
    "prewarm",
)

Number = TypeVar("Number", int, float)


def _positive(proposal: Any, value: Number) -> Number:
    """A validator's check that a number setting is above zero."""
    if value <= 0:
        raise ValueError(f"{proposal['trait'].name} must be > 0")
    return value


def default_store_dir() -> str:
    """``$JUPYTER_ASSISTANT_DIR`` or ``<jupyter data dir>/assistant``: the same rule everywhere."""
    return os.environ.get(STORE_ENV) or os.path.join(jupyter_data_dir(), "assistant")


class EngineSettings(Configurable):
    """The engine's settings, in the ``AssistantExtension`` config section."""

    config_name = CONFIG_SECTION  # how error messages name these settings

    @classmethod
    def section_names(cls) -> list[str]:
        names: list[str] = super().section_names()
        return names if CONFIG_SECTION in names else [*names, CONFIG_SECTION]

    store_dir = Unicode(
        help=(
            "Folder of the session store. Default: $JUPYTER_ASSISTANT_DIR, else "
            "<jupyter data dir>/assistant. Kernels started by this server inherit it."
        )
    ).tag(config=True)

    @default("store_dir")
    def _default_store_dir(self) -> str:
        return default_store_dir()

    default_provider = Unicode(
        "claude", help="Provider of new sessions when the request names none."
    ).tag(config=True)

    allowed_providers = StringList(
        default_value=[],
        help="If not empty, only these providers can be used (an admin policy). On the command "
        "line: --AssistantExtension.allowed_providers=claude,codex (or repeat the option).",
    ).tag(config=True)

    @validate("allowed_providers")
    def _provider_names(self, proposal: Any) -> list[str]:
        # From the command line a list arrives as one string ("claude,codex" or '["claude"]').
        names: list[str] = []
        for item in proposal["value"] or []:
            text = str(item).strip()
            if text.startswith("["):
                try:
                    parsed = json.loads(text)
                except ValueError:
                    parsed = None
                if isinstance(parsed, list):
                    names.extend(str(name).strip() for name in parsed)
                    continue
            names.extend(part.strip() for part in text.split(","))
        return [name for name in names if name]

    cancel_grace_seconds = Float(
        3.0, help="Seconds between SIGTERM and SIGKILL when a turn is cancelled."
    ).tag(config=True)

    turn_timeout_seconds = Float(
        3600.0, help="A turn running longer than this is stopped with a `timeout` error."
    ).tag(config=True)

    idle_timeout_seconds = Float(
        600.0, help="A provider silent (no output) for this long is stopped with a `timeout` error."
    ).tag(config=True)

    # Tool approval (permissions.py): what the agent may do without asking, and how long a
    # question waits for its answer.
    permission_timeout_seconds = Float(
        300.0,
        help="How long a tool approval question waits for the user's answer; without one the "
        "tool call is denied (the agent is told) and the turn goes on.",
    ).tag(config=True)

    permission_allowed_tools = StringList(
        default_value=list(READ_ONLY_TOOLS),
        help="Tools that run without asking, as rules: a tool name (wildcards allowed), or a "
        "name with a pattern for its command or path, e.g. 'Bash(git status)', "
        "'Bash(pytest:*)'. Default: the read-only tools. Paths outside the notebook's folder "
        "are denied anyway.",
    ).tag(config=True)

    permission_denied_tools = StringList(
        default_value=[],
        help="Tools that are always denied without asking, as rules (see "
        "permission_allowed_tools), e.g. ['WebFetch', 'Bash(rm:*)'].",
    ).tag(config=True)

    permission_extra_dirs = StringList(
        default_value=[],
        help="Absolute folders, besides the notebook's folder, that tool calls may touch "
        "(e.g. a shared data folder). Calls naming any other path are denied.",
    ).tag(config=True)

    max_message_bytes = Int(
        1024 * 1024, help="Largest message (content plus context, UTF-8 bytes); larger is a 413."
    ).tag(config=True)

    max_concurrent_turns = Int(
        8, help="Turns this server runs at once, over all sessions; more is a 409."
    ).tag(config=True)

    max_line_bytes = Int(
        8 * 1024 * 1024,
        help="Longest provider output line; a longer one stops the turn with an error.",
    ).tag(config=True)

    max_reply_bytes = Int(
        10 * 1024 * 1024,
        help="Largest reply text of one turn; a provider printing without end is stopped there.",
    ).tag(config=True)

    checkpoint_interval_seconds = Float(
        2.0,
        help="How often a running turn's partial reply is saved to the store (0: only at the "
        "end). Lets other processes see it grow and keeps it if the server dies.",
    ).tag(config=True)

    # Undo (checkpoints/): the turn's folder kept before and after each turn, in the store.
    turn_checkpoints = Bool(
        True,
        help="Checkpoint the session's folder before and after each turn (kept in the store, "
        "not in your folder), so that each turn's changes can be listed and undone.",
    ).tag(config=True)

    checkpoint_max_file_bytes = Int(
        50 * 1024 * 1024,
        help="Files larger than this are not kept in a turn's checkpoint: a change to them is "
        "listed, but cannot be undone.",
    ).tag(config=True)

    checkpoint_ignore = StringList(
        default_value=[
            ".git",
            "node_modules",
            "__pycache__",
            ".ipynb_checkpoints",
            ".venv",
            "venv",
        ],
        help="Names (wildcards allowed) of files and folders left out of checkpoints, at any "
        "depth; virtualenvs (a folder with pyvenv.cfg) are left out too.",
    ).tag(config=True)

    # Warm providers (turns/warm.py): a session's CLI kept running between its turns.
    warm_agents = Bool(
        True,
        help="Keep a conversation's agent process running after its turn (Claude Code, ACP "
        "agents), so that the next question skips the CLI's start-up (about a second); in a "
        "kernel (%%assistant) until the kernel shuts down. A process whose settings, folder or "
        "model changed, or that died, is replaced by a cold start that resumes the "
        "conversation. A waiting Claude Code CLI holds about 200 MiB (max_warm_processes).",
    ).tag(config=True)

    warm_idle_seconds = Float(
        600.0, help="A warm provider process unused this long is ended (warm_agents)."
    ).tag(config=True)

    max_warm_processes = Int(
        4,
        help="At most this many warm provider processes are kept (warm_agents); the least "
        "recently used is ended first.",
    ).tag(config=True)

    prewarm = Bool(
        True,
        help="With warm_agents: start a conversation's Claude Code process in the background "
        "when the sidebar opens its notebook, so that even the first question skips the CLI's "
        "start-up. Counts towards max_warm_processes.",
    ).tag(config=True)

    max_session_cost_usd = Float(
        None,
        allow_none=True,
        help="Admin policy: once a conversation's reported cost passes this many USD, its "
        "running turn is stopped and further turns are refused (start a new conversation). "
        "None: no cap.",
    ).tag(config=True)

    provider_env = Dict(
        value_trait=Unicode(),
        help="Environment variables added for every provider process (after Jupyter's own "
        "secrets such as JUPYTER_TOKEN are removed).",
    ).tag(config=True)

    # Retention (see retention.py): applied by the server at start-up.
    max_session_age_days = Float(
        None,
        allow_none=True,
        help="Conversations unchanged for more than this many days are deleted when the server "
        "starts; one with a running turn never is. None: keep every conversation "
        "(`jupyter assistant sessions prune --older-than 30d` prunes by hand).",
    ).tag(config=True)

    @validate("max_session_age_days")
    def _positive_age(self, proposal: Any) -> float | None:
        value = proposal["value"]
        if value is not None and value <= 0:
            raise ValueError("max_session_age_days must be > 0, or None to keep everything")
        return None if value is None else float(value)

    @validate(
        "cancel_grace_seconds",
        "turn_timeout_seconds",
        "idle_timeout_seconds",
        "permission_timeout_seconds",
        "warm_idle_seconds",
    )
    def _positive_seconds(self, proposal: Any) -> float:
        return _positive(proposal, float(proposal["value"]))

    @validate(
        "max_message_bytes",
        "max_concurrent_turns",
        "max_line_bytes",
        "max_reply_bytes",
        "max_warm_processes",
    )
    def _positive_int(self, proposal: Any) -> int:
        return _positive(proposal, int(proposal["value"]))

    def service_settings(self, root_dir: str | None) -> ServiceSettings:
        """The engine's settings object (imports the engine, so call it lazily)."""
        from .service import ServiceSettings
        from .turns import RunnerSettings

        return ServiceSettings(
            store_dir=Path(self.store_dir),
            root_dir=Path(root_dir) if root_dir else None,
            default_provider=self.default_provider,
            max_message_bytes=self.max_message_bytes,
            runner=RunnerSettings(
                **{name: getattr(self, name) for name in RUNNER_TRAITS},
                checkpoint_interval_seconds=max(0.0, self.checkpoint_interval_seconds),
                provider_env=dict(self.provider_env),
                permission_allowed_tools=tuple(self.permission_allowed_tools),
                permission_denied_tools=tuple(self.permission_denied_tools),
                permission_extra_dirs=tuple(self.permission_extra_dirs),
                root_dir=str(root_dir) if root_dir else None,
                turn_checkpoints=self.turn_checkpoints,
                checkpoint_max_file_bytes=self.checkpoint_max_file_bytes,
                checkpoint_ignore=tuple(self.checkpoint_ignore),
            ),
        )
