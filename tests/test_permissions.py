"""The tool approval policy (permissions.py): read-only tools run, paths outside the notebook's
folder are denied (symlinks resolved), the administrator's rules and the user's "for this
session" answers decide, and everything else is asked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jupyter_assistant.permissions import (
    PermissionPolicy,
    SessionAnswer,
    inside,
    rule_matches,
    subject,
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    notebook_dir = tmp_path / "project"
    notebook_dir.mkdir()
    (notebook_dir / "data.csv").write_text("a,b\n")
    (tmp_path / "secret.txt").write_text("no")
    return notebook_dir


def decision(policy: PermissionPolicy, tool: str, tool_input: object, *paths: str) -> str:
    return policy.decide(tool, tool_input, paths).decision


def test_read_only_tools_run_inside_the_folder_and_the_rest_is_asked(folder: Path) -> None:
    policy = PermissionPolicy(working_dir=str(folder))
    assert decision(policy, "Read", {"file_path": str(folder / "data.csv")}) == "allow"
    assert decision(policy, "Grep", {"pattern": "sales", "path": "."}) == "allow"
    assert decision(policy, "Glob", {"pattern": "**/*.csv"}) == "allow"
    assert decision(policy, "Write", {"file_path": "notes.txt", "content": "x"}) == "ask"
    assert decision(policy, "Bash", {"command": "touch notes.txt"}) == "ask"
    assert decision(policy, "WebFetch", {"url": "https://example.org"}) == "ask"


def test_paths_outside_the_folder_are_denied_even_for_read_only_tools(folder: Path) -> None:
    policy = PermissionPolicy(working_dir=str(folder))
    outside = str(folder.parent / "secret.txt")
    for tool, tool_input in (
        ("Read", {"file_path": outside}),
        ("Read", {"file_path": "../secret.txt"}),
        ("Write", {"file_path": outside, "content": "x"}),
        ("Edit", {"file_path": "~/.bashrc", "old_string": "a", "new_string": "b"}),
        ("Glob", {"pattern": "/etc/*.conf"}),
        ("Grep", {"pattern": "root", "path": "/etc"}),
    ):
        verdict = policy.decide(tool, tool_input)
        assert verdict.decision == "deny", (tool, tool_input)
        assert "outside the notebook's folder" in verdict.reason
        assert "permission_extra_dirs" in verdict.reason
    # A path the provider found in a shell command counts as well.
    assert decision(policy, "Bash", {"command": "cat /etc/hostname"}, "/etc/hostname") == "deny"
    assert decision(policy, "Bash", {"command": "wc -l data.csv"}, str(folder / "data.csv")) == (
        "ask"
    )


def test_symlinks_are_resolved_both_ways(folder: Path) -> None:
    policy = PermissionPolicy(working_dir=str(folder))
    (folder / "escape").symlink_to(folder.parent)
    (folder / "link.txt").symlink_to(folder.parent / "secret.txt")
    assert decision(policy, "Read", {"file_path": str(folder / "escape" / "secret.txt")}) == "deny"
    assert decision(policy, "Read", {"file_path": "link.txt"}) == "deny"
    # A notebook folder reached through a symlink is still the same folder.
    alias = folder.parent / "alias"
    alias.symlink_to(folder)
    through = PermissionPolicy(working_dir=str(alias))
    assert decision(through, "Read", {"file_path": str(folder / "data.csv")}) == "allow"
    assert decision(through, "Read", {"file_path": str(alias / "data.csv")}) == "allow"
    assert inside(str(folder), str(folder))
    assert not inside(str(folder) + "-sibling/x", str(folder))  # a prefix is not a parent


def test_extra_dirs_widen_what_may_be_touched(folder: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    policy = PermissionPolicy(working_dir=str(folder), extra_dirs=[str(shared)])
    assert decision(policy, "Read", {"file_path": str(shared / "big.parquet")}) == "allow"
    assert decision(policy, "Write", {"file_path": str(shared / "out.csv"), "content": ""}) == (
        "ask"
    )
    assert decision(policy, "Read", {"file_path": str(tmp_path / "secret.txt")}) == "deny"
    # A relative path counts from the notebook's folder, not from an extra dir.
    assert decision(policy, "Read", {"file_path": "../shared/x"}) == "allow"
    assert decision(policy, "Read", {"file_path": "x"}) == "allow"


def test_administrator_rules(folder: Path) -> None:
    policy = PermissionPolicy(
        working_dir=str(folder),
        allowed_tools=["Read", "Bash(git status)", "Bash(pytest:*)", "mcp__docs__*"],
        denied_tools=["WebFetch", "Bash(rm *)", "Read(*.env)"],
    )
    assert decision(policy, "Bash", {"command": "git status"}) == "allow"
    assert decision(policy, "Bash", {"command": "git push"}) == "ask"
    assert decision(policy, "Bash", {"command": "pytest -x tests"}) == "allow"
    assert decision(policy, "Bash", {"command": "pytestx"}) == "ask"  # a prefix rule is a word
    assert decision(policy, "mcp__docs__search", {"q": "x"}) == "allow"
    assert decision(policy, "Bash", {"command": "rm -rf data"}) == "deny"
    assert decision(policy, "WebFetch", {"url": "https://example.org"}) == "deny"
    verdict = policy.decide("Read", {"file_path": "secrets.env"})
    assert verdict.decision == "deny"  # a denial outranks an allowance
    assert "permission_denied_tools" in verdict.reason
    assert decision(policy, "Grep", {"pattern": "x"}) == "ask"  # not in this allow list
    assert rule_matches("Write", "Write", "anything")
    assert not rule_matches("Write", "write", "anything")  # tool names are case-sensitive


def test_session_answers_apply_to_the_same_tool_and_subject(folder: Path) -> None:
    policy = PermissionPolicy(working_dir=str(folder))
    write = {"file_path": "notes.txt", "content": "one"}
    remembered = policy.remember("Write", write, allow=True)
    assert remembered == SessionAnswer("Write", os.path.realpath(folder / "notes.txt"), True)
    # The same file with other content, named absolutely: the same subject.
    again = {"file_path": str(folder / "notes.txt"), "content": "two"}
    verdict = policy.decide("Write", again)
    assert verdict.decision == "allow"
    assert "for the rest of the session" in verdict.reason
    assert decision(policy, "Write", {"file_path": "other.txt", "content": "x"}) == "ask"
    assert decision(policy, "Edit", {"file_path": "notes.txt"}) == "ask"  # another tool
    policy.remember("Bash", {"command": "make data"}, allow=False, message="never")
    verdict = policy.decide("Bash", {"command": "make data"})
    assert (verdict.decision, verdict.reason) == (
        "deny",
        "you denied this for the rest of the session: never",
    )
    # The latest answer wins; the folder rule still outranks any answer.
    policy.remember("Bash", {"command": "make data"}, allow=True)
    assert decision(policy, "Bash", {"command": "make data"}) == "allow"
    policy.remember("Read", {"file_path": "/etc/passwd"}, allow=True)
    assert decision(policy, "Read", {"file_path": "/etc/passwd"}) == "deny"


def test_subjects(folder: Path) -> None:
    assert subject({"command": "ls -la", "description": "list"}, str(folder)) == "ls -la"
    assert subject({"url": "https://x.org/a"}, str(folder)) == "https://x.org/a"
    assert subject({"b": 2, "a": 1}, str(folder)) == '{"a": 1, "b": 2}'
    assert subject({"path": "."}, str(folder)) == os.path.realpath(folder)


@pytest.mark.parametrize(
    "command",
    [
        "pytest --version; touch pwned.txt",
        "pytest -q || touch x",
        "pytest -q && touch x",
        "pytest -q | tee out",
        "pytest -q & touch x",
        "pytest $(touch x)",
        'pytest "$(touch x)"',
        "pytest `touch x`",
        'pytest "`touch x`"',
        "pytest > ../outside.txt",
        "pytest < /etc/passwd",
        "pytest -q\ntouch x",
        "pytest -q \\\ntouch x",
        "pytest (x)",
        "pytest 'unclosed",
    ],
)
def test_a_prefix_rule_allows_no_compound_command(folder: Path, command: str) -> None:
    policy = PermissionPolicy(working_dir=str(folder), allowed_tools=["Bash(pytest:*)"])
    assert decision(policy, "Bash", {"command": command}) == "ask"
    glob = PermissionPolicy(working_dir=str(folder), allowed_tools=["Bash(pytest*)"])
    assert decision(glob, "Bash", {"command": command}) == "ask"


@pytest.mark.parametrize(
    "command",
    ["pytest -q", "pytest -k 'a; b' tests", 'pytest -k "a && b"', "pytest tests/a\\;b", "pytest"],
)
def test_a_prefix_rule_allows_one_simple_command_quotes_included(
    folder: Path, command: str
) -> None:
    policy = PermissionPolicy(working_dir=str(folder), allowed_tools=["Bash(pytest:*)"])
    assert decision(policy, "Bash", {"command": command}) == "allow"


@pytest.mark.parametrize(
    "command",
    [
        "true && rm victim.txt",
        "ls; rm victim.txt",
        "ls | rm victim.txt",
        "echo $(rm victim.txt)",
        "echo `rm victim.txt`",
        "(cd sub && rm victim.txt)",
        "X=1 rm victim.txt",
        "ls\nrm victim.txt",
        "{ rm victim.txt; }",
    ],
)
def test_a_deny_rule_matches_any_part_of_a_compound_command(folder: Path, command: str) -> None:
    policy = PermissionPolicy(
        working_dir=str(folder), allowed_tools=["Bash"], denied_tools=["Bash(rm:*)"]
    )
    verdict = policy.decide("Bash", {"command": command})
    assert verdict.decision == "deny", command
    assert "Bash(rm:*)" in verdict.reason


def test_simple_commands_splits_what_the_shell_would_run() -> None:
    from jupyter_assistant.shell import is_simple_command, simple_commands

    assert simple_commands("a 1; b && c || d | e & f") == ["a 1", "b", "c", "d", "e", "f"]
    assert simple_commands("echo 'x; rm y' && ls") == ["echo 'x; rm y'", "ls"]
    assert simple_commands("echo $(rm a) done") == ["rm a", "echo   done"]
    assert is_simple_command("git status --short")
    assert not is_simple_command("")
    assert not is_simple_command("git status 2>&1")
