"""List settings given on the command line: a list whose quotes the shell removed is refused
with the ways that work, and the ways that work give the list."""

from __future__ import annotations

import pytest
from traitlets import TraitError
from traitlets.config import Application

from jupyter_assistant.providers.claude_code import ClaudeCodeProvider
from jupyter_assistant.settings import EngineSettings


def settings_from(*argv: str) -> EngineSettings:
    app = Application()
    app.parse_command_line(list(argv))
    return EngineSettings(parent=app)


def test_a_list_that_lost_its_quotes_is_refused_with_the_fix() -> None:
    # `--X=["Bash(rm:*)"]` typed in a shell arrives as `--X=[Bash(rm:*)]`
    with pytest.raises(TraitError) as caught:
        settings_from("--AssistantExtension.permission_denied_tools=[Bash(rm:*)]")
    message = str(caught.value)
    assert "permission_denied_tools" in message
    assert '\'["first", "second"]\'' in message
    app = Application()
    app.parse_command_line(["--ClaudeCodeProvider.allowed_tools=[Bash(ls:*), Read]"])
    with pytest.raises(TraitError):
        ClaudeCodeProvider(parent=app)


def test_json_lists_and_repeated_options_give_the_list() -> None:
    quoted = settings_from('--AssistantExtension.permission_denied_tools=["Bash(rm:*)", "Read"]')
    assert quoted.permission_denied_tools == ["Bash(rm:*)", "Read"]
    repeated = settings_from(
        "--AssistantExtension.permission_denied_tools=Bash(rm:*)",
        "--AssistantExtension.permission_denied_tools=WebFetch",
    )
    assert repeated.permission_denied_tools == ["Bash(rm:*)", "WebFetch"]
