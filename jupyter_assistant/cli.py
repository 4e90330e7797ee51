"""``jupyter assistant``: set-up checks and housekeeping from a terminal.

    jupyter assistant doctor [--json]
    jupyter assistant sessions list [--notebook PATH] [--json]
    jupyter assistant sessions show ID [--json]
    jupyter assistant sessions export ID --format md|ipynb [-o FILE]
    jupyter assistant sessions delete ID [--force]
    jupyter assistant sessions prune --older-than 30d [--dry-run] [--json]

Jupyter runs any ``jupyter-<name>`` executable on PATH as ``jupyter <name>``; this is the
``jupyter-assistant`` console script.

Why argparse and not a traitlets ``JupyterApp``: the commands are two levels deep with
positional arguments (``sessions export ID``), which argparse describes and checks well, and
the settings must come from the *server's* config files (``jupyter_server_config.*``, read by
``kernel_client.load_config`` exactly as kernels read them), not from a
``jupyter_assistant_config`` file of the command's own. ``--Class.trait=value`` options are still
accepted, as by every Jupyter command, and outrank the files.

The session commands use the server's store with the same per-session locks, so they are safe
while a server or a kernel is using it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from traitlets import TraitError
from traitlets.config import Config
from traitlets.config.loader import KVArgParseConfigLoader

from ._version import __version__
from .cli_parser import Parser, add_command, option, required_choice
from .errors import AssistantError, BadRequest, NotFound
from .kernel_client import LoadedConfig, load_config
from .settings import EngineSettings

if TYPE_CHECKING:
    from .processes import ProcessRegistry
    from .store import SessionStore

PROG = "jupyter assistant"
TRAIT_OPTION = re.compile(r"^--[A-Za-z_]\w*\.[A-Za-z_]\w*(=.*)?$")
ID_PREFIX_MIN = 4


class CommandError(Exception):
    """Ends the command with a message on stderr and exit status 1."""


# -- settings ----------------------------------------------------------------------------------


class Context:
    """What every command needs: the config as the server reads it, and the store."""

    def __init__(self, overrides: Config) -> None:
        self.overrides = overrides
        self.loaded: LoadedConfig = load_config()
        self._settings: EngineSettings | None = None
        self._store: SessionStore | None = None
        self._registry: ProcessRegistry | None = None

    @property
    def settings(self) -> EngineSettings:
        # Built on first use: the doctor reports an invalid setting instead of stopping on it.
        if self._settings is None:
            config = Config()
            config.merge(self.loaded.config)
            config.merge(self.overrides)
            try:
                self._settings = EngineSettings(config=config)
            except (TraitError, ValueError) as exc:  # the validators raise ValueError
                raise CommandError(f"invalid setting in the Jupyter config: {exc}") from exc
        return self._settings

    @property
    def store_dir(self) -> Path:
        return Path(self.settings.store_dir)

    def store_exists(self) -> bool:
        return (self.store_dir / "sessions").is_dir()

    @property
    def store(self) -> SessionStore:
        from .store import SessionStore

        if self._store is None:
            self._store = SessionStore(self.store_dir)
        return self._store

    @property
    def registry(self) -> ProcessRegistry:
        from .processes import ProcessRegistry

        if self._registry is None:
            self._registry = ProcessRegistry(self.store_dir)
        return self._registry

    def resolve_id(self, text: str) -> str:
        """A full session id, or a unique prefix of one (at least 4 characters)."""
        wanted = text.strip().lower()
        if not self.store_exists():
            raise NotFound(f"Unknown conversation {text!r}: there is no store at {self.store_dir}")
        if len(wanted) < ID_PREFIX_MIN:
            raise BadRequest(f"Give at least {ID_PREFIX_MIN} characters of the id, not {text!r}")
        ids = [row["id"] for row in self.store.list_summaries() if row["id"].startswith(wanted)]
        if len(ids) == 1:
            return str(ids[0])
        if not ids:
            raise NotFound(f"Unknown conversation {text!r} in {self.store_dir}")
        raise BadRequest(f"{text!r} matches {len(ids)} conversations: {', '.join(ids)}")

    def status(self, session_id: str) -> str:
        return "running" if self.registry.is_running(session_id) else "idle"


# -- output helpers ----------------------------------------------------------------------------


def _local(stamp: str) -> str:
    from .retention import parse_timestamp

    parsed = parse_timestamp(stamp)
    return parsed.astimezone().strftime("%Y-%m-%d %H:%M") if parsed else stamp


def _json_out(value: Any, out: TextIO) -> None:
    json.dump(value, out, indent=2, ensure_ascii=False)
    out.write("\n")


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths[:-1], strict=True)]
        out.write("  ".join([*cells, row[-1]]).rstrip() + "\n")


# -- commands ----------------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace, ctx: Context, out: TextIO) -> int:
    from jupyter_core.paths import jupyter_config_path

    from . import doctor

    report = doctor.run(ctx.loaded, ctx.overrides, jupyter_config_path())
    if args.json:
        _json_out(report.to_json(), out)
    else:
        out.write(doctor.format_report(report) + "\n")
    return 0 if report.ok else 1


def cmd_list(args: argparse.Namespace, ctx: Context, out: TextIO) -> int:
    from .workdir import notebook_key_for_file

    rows: list[dict[str, Any]] = []
    if ctx.store_exists():
        key = notebook_key_for_file(os.path.abspath(args.notebook)) if args.notebook else None
        rows = ctx.store.list_summaries(key)
        running = ctx.registry.running_sessions()
        for row in rows:
            row["status"] = "running" if row["id"] in running else "idle"
    if args.json:
        _json_out({"store_dir": str(ctx.store_dir), "sessions": rows}, out)
        return 0
    if not rows:
        where = f" for {args.notebook}" if args.notebook else ""
        out.write(f"No conversations{where} in {ctx.store_dir}.\n")
        return 0
    table = [["ID", "STATUS", "LAST ACTIVE", "MSGS", "PROVIDER", "NOTEBOOK", "TITLE"]]
    shown = notebook_labels(rows)
    for row in rows:
        title = row["title"] if len(row["title"]) <= 50 else row["title"][:49] + "…"
        table.append(
            [
                row["id"],
                row["status"],
                _local(row["updated_at"]),
                str(row["message_count"]),
                row["provider"],
                shown[row["id"]] + (" (deleted)" if row.get("detached") else ""),
                title,
            ]
        )
    _table(table, out)
    return 0


def notebook_labels(rows: list[dict[str, Any]]) -> dict[str, str]:
    """How to show each row's notebook: its path under the server root, or its absolute file
    when another row shows the same path for a different notebook (two servers' roots)."""
    keys_of: dict[str, set[str]] = {}
    for row in rows:
        keys_of.setdefault(row["path"], set()).add(row["notebook_key"])
    return {
        row["id"]: row["notebook_key"] if len(keys_of[row["path"]]) > 1 else row["path"]
        for row in rows
    }


def cmd_show(args: argparse.Namespace, ctx: Context, out: TextIO) -> int:
    from .export import to_markdown

    session_id = ctx.resolve_id(args.id)
    session = ctx.store.load(session_id)
    session.status = ctx.status(session_id)  # type: ignore[assignment]
    turns = _turn_changes(ctx, session)
    if args.json:
        _json_out({**session.model_dump(mode="json"), "turn_changes": turns}, out)
        return 0
    out.write(f"Status: {session.status}; folder: {session.working_dir}\n\n")
    out.write(to_markdown(session))
    if turns:
        out.write("\n## Changes by turn\n\n")
        for turn in turns:
            out.write(f"{turn['number']}. {_changes_text(turn)}\n")
    return 0


def _turn_changes(ctx: Context, session: Any) -> list[dict[str, Any]]:
    """Each user message's turn (``number``: counting the user's messages, as the agent is told
    of undone turns) with what it changed in the folder; ``changes`` is None for a turn without
    a checkpoint (checkpoints off, or a kernel's turn the store did not see)."""
    from .checkpoints import TurnCheckpoints, UnknownTurn

    checkpoints = TurnCheckpoints(ctx.store_dir)
    turns = []
    asked = [message for message in session.messages if message.role == "user"]
    for number, message in enumerate(asked, 1):
        if not message.turn_id:
            continue
        try:
            changes: dict[str, Any] | None = checkpoints.changes(session.id, message.turn_id)
        except (UnknownTurn, OSError, ValueError, KeyError):
            changes = None
        turns.append(
            {
                "number": number,
                "turn_id": message.turn_id,
                "prompt": message.content,
                "changes": changes,
            }
        )
    return turns


def _changes_text(turn: dict[str, Any]) -> str:
    from .checkpoints.changes import changes_line

    prompt = " ".join(turn["prompt"].split())
    prompt = prompt if len(prompt) <= 60 else prompt[:59] + "…"
    changes = turn["changes"]
    if changes is None:
        return f"“{prompt}” [{turn['turn_id'][:8]}]: no checkpoint"
    said = changes_line(changes) or "no changes"
    uncovered = [f"{item['path']} ({item['reason']})" for item in changes["not_covered"]]
    if uncovered and changes["files"]:
        said += "; not covered: " + ", ".join(uncovered[:4])
    if changes.get("reverted"):
        said += " (undone)"
    return f"“{prompt}” [{turn['turn_id'][:8]}]: {said}"


def cmd_export(args: argparse.Namespace, ctx: Context, out: TextIO) -> int:
    from .export import render

    session_id = ctx.resolve_id(args.id)
    text = render(ctx.store.load(session_id), args.format)
    if args.output in (None, "-"):
        out.write(text)
        return 0
    target = Path(args.output)
    target.write_text(text, encoding="utf-8")
    print(f"Exported conversation {session_id} to {target}", file=sys.stderr)
    return 0


def cmd_delete(args: argparse.Namespace, ctx: Context, out: TextIO) -> int:
    from .retention import delete_unless_running, sweep_checkpoints

    session_id = ctx.resolve_id(args.id)
    if args.force:
        asyncio.run(_delete_forcing(ctx, session_id))
        sweep_checkpoints(ctx.store_dir)
        out.write(f"Deleted conversation {session_id}.\n")
        return 0
    if not delete_unless_running(ctx.store, ctx.registry, session_id):
        if ctx.store.exists(session_id):
            raise CommandError(
                f"Conversation {session_id} is running a turn; wait for it, stop it from the "
                "sidebar, or use --force to stop it and delete the conversation."
            )
        raise NotFound(f"Unknown conversation {session_id}")
    record = ctx.registry.read(session_id)
    if record is not None:  # left by a dead server or kernel: stop what it left running
        asyncio.run(_service(ctx).runner.cancel(session_id))
    sweep_checkpoints(ctx.store_dir)  # its checkpoints, and what only they referred to
    out.write(f"Deleted conversation {session_id}.\n")
    return 0


def _service(ctx: Context) -> Any:
    from .providers import ProviderRegistry
    from .service import AssistantService

    return AssistantService(
        ctx.settings.service_settings(root_dir=None),
        ProviderRegistry(parent=ctx.settings, allowed=ctx.settings.allowed_providers),
    )


async def _delete_forcing(ctx: Context, session_id: str) -> None:
    """Stop the turn wherever it runs (through its process record: the owner is told it was
    cancelled, the provider's whole process tree is terminated), then delete, as the server's
    ``DELETE sessions/{id}`` does."""
    await _service(ctx).delete_session(session_id)


def cmd_prune(args: argparse.Namespace, ctx: Context, out: TextIO) -> int:
    from .retention import PruneResult, parse_age, prune

    try:
        age = parse_age(args.older_than)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    result = (
        prune(ctx.store, ctx.registry, age, dry_run=args.dry_run)
        if ctx.store_exists()
        else (PruneResult())
    )
    if args.json:
        _json_out(
            {
                "dry_run": args.dry_run,
                "removed": [row["id"] for row in result.removed],
                "running": [row["id"] for row in result.running],
                "failed": [{"id": row["id"], "error": error} for row, error in result.failed],
            },
            out,
        )
        return 1 if result.failed else 0
    verb = "Would remove" if args.dry_run else "Removed"
    for row in result.removed:
        out.write(
            f"{verb} {row['id']}  {_local(row['updated_at'])}  {row['path']}  {row['title']}\n"
        )
    for row in result.running:
        out.write(f"Kept {row['id']} (running)  {row['path']}\n")
    for row, error in result.failed:
        out.write(f"Could not remove {row['id']}: {error}\n")
    out.write(
        f"{verb} {len(result.removed)} conversation(s) idle for more than {args.older_than}"
        f"{'' if ctx.store_exists() else f' (no store at {ctx.store_dir})'}.\n"
    )
    return 1 if result.failed else 0


# -- the parser --------------------------------------------------------------------------------


TRAITS_HELP = (
    "Settings can also be given as --Class.trait=value (e.g. "
    "--AssistantExtension.store_dir=/path or --ClaudeCodeProvider.command=/opt/bin/claude); "
    "they outrank the Jupyter config files the server reads."
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Set-up checks and housekeeping for jupyter_assistant, the notebook-tied AI "
        "coding assistant. " + TRAITS_HELP,
    )
    parser.add_argument("--version", action="version", version=f"jupyter_assistant {__version__}")
    commands = required_choice(parser, dest="command", metavar="COMMAND")

    add_command(
        commands,
        "doctor",
        cmd_doctor,
        help="check the set-up and print each fix",
        description="Check, in order: the server extension, the JupyterLab extension, each "
        "provider's CLI and credentials (no billed call), the store folder, and the Jupyter "
        "config. Exit status 0 only when the default provider can answer. " + TRAITS_HELP,
        json_help="print the report as JSON",
    )

    sessions = commands.add_parser(
        "sessions",
        help="list, show, export, delete or prune conversations",
        description="Work on the conversations in the store the server uses (safe while it "
        "runs). IDs may be shortened to a unique prefix of 4 or more characters.",
    )
    actions = required_choice(sessions, dest="action", metavar="ACTION")

    add_command(
        actions,
        "list",
        cmd_list,
        help="list conversations, newest first",
        options=[
            option(
                "--notebook", metavar="PATH", help="only the conversations of this notebook file"
            )
        ],
        json_help="print JSON",
    )
    add_command(
        actions,
        "show",
        cmd_show,
        help="print a conversation",
        takes_id=True,
        json_help="print the whole stored session",
    )
    add_command(
        actions,
        "export",
        cmd_export,
        help="export a conversation as Markdown or as a notebook",
        description="Export a conversation: md, a readable Markdown transcript; ipynb, a "
        "notebook (nbformat 4) with the conversation as Markdown cells and the Python code "
        "blocks of the replies as code cells.",
        takes_id=True,
        options=[
            option("--format", required=True, choices=["md", "ipynb"]),
            option(
                "-o", "--output", metavar="FILE", help="write to FILE (default: standard output)"
            ),
        ],
    )
    add_command(
        actions,
        "delete",
        cmd_delete,
        help="delete a conversation",
        description="Delete a conversation. A conversation with a running turn is refused "
        "unless --force, which stops the turn (its whole process tree) first.",
        takes_id=True,
        options=[
            option("--force", action="store_true", help="stop a running turn first, then delete")
        ],
    )
    add_command(
        actions,
        "prune",
        cmd_prune,
        help="delete conversations idle for longer than an age",
        description="Delete every conversation whose last activity is older than the given "
        "age. A conversation with a running turn is never touched.",
        options=[
            option(
                "--older-than",
                required=True,
                metavar="AGE",
                help="an age such as 30d, 12h, 2w or 90m (a plain number means days)",
            ),
            option("--dry-run", action="store_true", help="only list what would go"),
        ],
        json_help="print JSON",
    )
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    parser = build_parser()
    args, extra = parser.parse_known_args(args_list)
    unknown = [arg for arg in extra if not TRAIT_OPTION.match(arg)]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    overrides = KVArgParseConfigLoader(extra).load_config() if extra else Config()
    try:
        ctx = Context(overrides)
        return int(args.run(args, ctx, out))
    except (CommandError, AssistantError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `... | head`
        return 0
    except OSError as exc:  # e.g. -o into a folder that does not exist
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
