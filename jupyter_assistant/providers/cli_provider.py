"""The base of the providers that run a command-line agent (Claude Code, Codex, Gemini CLI, ACP
agents): the settings every one of them has, finding the executable, the process environment,
the conversations it lost, and a health check that never makes a model call."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from traitlets import List, Unicode, Union

from ..traits import StringList
from .base import (
    Provider,
    ProviderHealth,
    ProviderUnavailable,
    TurnRequest,
    provider_environment,
)
from .cli_support import (
    JsonLinesParser,
    LostConversations,
    command_argv,
    notebook_instructions,
    read_stdout,
    render_context,
    tagged,
    version_number,
)

ResumingParser = TypeVar("ResumingParser", bound=JsonLinesParser)


def command_trait(*default: str, example: str = "['npx', 'claude']") -> Union:
    """The ``command`` setting of a CLI provider whose CLI is usually started as ``default``
    (declared per class so that the help shows that default)."""
    return Union(
        [List(Unicode()), Unicode()],
        default_value=list(default),
        help=(
            "The CLI's executable (looked up on the provider's PATH) with any leading "
            f"arguments, e.g. {example}; a string is split like a shell would."
        ),
    ).tag(config=True)


class CliProvider(Provider):
    """A provider whose turn is one run of an agent's CLI.

    A subclass sets ``command = command_trait("its-cli")`` and ``cli_name``, and writes
    ``build_launch`` and ``create_parser`` with the helpers below; it overrides ``probe`` when
    ``--version`` is not how its CLI shows that it works, and ``credentials_state`` when it can
    tell whether the CLI is logged in. The settings are configured per subclass
    (``c.CodexProvider.model``)."""

    # How error messages name the program ("Claude Code CLI").
    cli_name: ClassVar[str] = ""
    # The problem shown when the credentials are missing (None: the CLI's own message).
    login_hint: ClassVar[str | None] = None

    command = command_trait()

    model = Unicode(
        None,
        allow_none=True,
        help="The model the agent uses (a session's own model wins; default: the CLI's own).",
    ).tag(config=True)

    extra_args = StringList(
        default_value=[], help="Further command-line arguments for the CLI, appended as given."
    ).tag(config=True)

    append_system_prompt = Unicode(
        "",
        help="Text added to the instructions of every turn, after the notebook's context.",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lost_conversations = LostConversations()

    @property
    def command_setting(self) -> str:
        return f"c.{type(self).__name__}.command"

    # -- a turn ----------------------------------------------------------------------------

    def executable_argv(self) -> list[str]:
        """The command line that starts the CLI, before the turn's arguments."""
        usual = self.trait_defaults("command")
        return command_argv(self.command) or (list(usual) if isinstance(usual, list) else [])

    def launch_env(self, base_env: dict[str, str]) -> dict[str, str]:
        return {**base_env, **self.env}

    def resolved_argv(self, env: dict[str, str]) -> list[str]:
        """``executable_argv`` with the executable found on ``env``'s PATH, or
        ``provider_not_found`` saying what to install or set."""
        argv = self.executable_argv()
        if not argv:
            raise ProviderUnavailable("provider_not_found", self.no_command_message())
        resolved = self.which(argv[0], env.get("PATH"))
        if resolved is None:
            raise ProviderUnavailable("provider_not_found", self.not_found_message(argv[0]))
        return [resolved, *argv[1:]]

    def turn_model(self, request: TurnRequest) -> str | None:
        return request.model or self.model

    def instructions(self, request: TurnRequest, with_context: bool = True) -> str:
        """What the agent is told about the notebook (and the request's context), plus
        ``append_system_prompt``."""
        return notebook_instructions(
            request.notebook_path,
            request.working_dir,
            request.context if with_context else None,
            self.append_system_prompt,
        )

    def prompt_with_context(self, request: TurnRequest) -> str:
        """The prompt with the request's notebook context before it, tagged: for CLIs that get
        the context in the user's message rather than in their instructions (which a running
        or resumed CLI keeps as it started; see ``warm_agents``)."""
        if not request.context:
            return request.prompt
        return tagged("notebook_context", render_context(request.context)) + "\n\n" + request.prompt

    def resumes(self) -> bool:
        """Whether turns continue the session's conversation."""
        return True

    def resume_id(self, request: TurnRequest) -> str | None:
        """The conversation to continue: the stored one, unless this CLI lost it before."""
        if not self.resumes():
            return None
        return self.lost_conversations.usable(request.provider_session_id)

    def resuming_parser(
        self, parser_class: type[ResumingParser], request: TurnRequest
    ) -> ResumingParser:
        """A parser that reports a failed resume to ``lost_conversations`` and starts with a
        notice when the stored conversation is skipped because it was lost before."""
        notice = self.lost_conversations.notice(request.provider_session_id, self.display_name)
        return parser_class(
            resume_id=self.resume_id(request),
            on_lost=self.lost_conversations.add,
            first_events=[notice] if notice and self.resumes() else [],
        )

    # -- messages --------------------------------------------------------------------------

    def no_command_message(self) -> str:
        return f"{self.display_name} has no command: set {self.command_setting}."

    def not_found_message(self, executable: str) -> str:
        install = self.install_step.command if self.install_step else self.install_hint
        return (
            f"{self.cli_name} not found ({executable!r}): {install}, or set "
            f"{self.command_setting} to its path."
        )

    # -- health ----------------------------------------------------------------------------

    async def health(self) -> ProviderHealth:
        """Whether the CLI is there and runs (``probe``), and whether it has credentials."""
        env = provider_environment(self.env)
        health = ProviderHealth(self.name, self.display_name, available=False)
        argv = self.executable_argv()
        if not argv:
            health.problem = self.no_command_message()
            return health
        resolved = self.which(argv[0], env.get("PATH"))
        if resolved is None:
            health.problem = self.not_found_message(argv[0])
            return health
        health.executable = resolved
        argv = [resolved, *argv[1:]]
        try:
            await self.probe(argv, env, health)
        except Exception as exc:  # any failure to run it is reported, not raised
            health.problem = self.probe_failed_message(argv, str(exc) or type(exc).__name__)
            return health
        if health.problem is not None:
            return health
        health.available = True
        health.credentials = await self.credentials(argv, env)
        if health.credentials == "missing" and self.login_hint:
            health.problem = self.login_hint
        return health

    async def probe(self, argv: list[str], env: dict[str, str], health: ProviderHealth) -> None:
        """Run the CLI without a model call and note its version (or a ``problem``); raise
        when it does not answer."""
        health.version = version_number(await read_stdout([*argv, "--version"], env))

    def probe_failed_message(self, argv: list[str], reason: str) -> str:
        return f"{argv[0]} --version failed: {reason}"

    async def credentials(self, argv: list[str], env: dict[str, str]) -> str:
        """``present``, ``missing`` or ``unknown``; the CLI may be asked (``argv``)."""
        return self.credentials_state(env)

    def credentials_state(self, env: dict[str, str]) -> str:
        """What the environment and the CLI's files tell about its login."""
        return "unknown"
