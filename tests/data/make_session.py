"""Write ``tests/data/session-v<SCHEMA_VERSION>.json``: a session file as the current code
stores it, every field set, for tests/test_migrations.py. Run it once per schema version
(``python -m tests.data.make_session``) and commit the file; never regenerate an older one.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from jupyter_assistant.models import (
    SCHEMA_VERSION,
    Approval,
    Message,
    PermissionRecord,
    Session,
    ToolCall,
    TurnError,
    Usage,
)
from jupyter_assistant.store import SessionStore

SESSION_ID = "0b7c6c1e-5a4f-4d3e-9f1a-2c8d7e6b5a40"
HERE = Path(__file__).parent


def stored_file(version: int = SCHEMA_VERSION) -> Path:
    return HERE / f"session-v{version}.json"


def sample_session() -> Session:
    """A session with every field and every kind of message filled in."""
    at = "2026-12-03T12:00:00.000Z"
    question = Message(
        id="5f0c2a44-8b1e-4c55-9d7e-0a1b2c3d4e51",
        role="user",
        content="Plot the sales by region",
        created_at=at,
        turn_id="turn-1",
        context={"cell": "df.head()"},
    )
    reply = Message(
        id="5f0c2a44-8b1e-4c55-9d7e-0a1b2c3d4e52",
        role="assistant",
        content="Here is the plot.",
        created_at=at,
        turn_id="turn-1",
        tools=[
            ToolCall(
                id="tool-1",
                name="Bash",
                input={"command": "ls data"},
                result="sales.csv",
                text_offset=0,
            )
        ],
        usage=Usage(input_tokens=120, output_tokens=45, cost_usd=0.0123),
        notices=["Reconnecting... 1/5"],
        permissions=[
            PermissionRecord(
                request_id="req-1",
                tool_name="Bash",
                input={"command": "ls data"},
                summary="ls data",
                decision="allow",
                scope="session",
                by="user",
            )
        ],
    )
    failed = Message(
        id="5f0c2a44-8b1e-4c55-9d7e-0a1b2c3d4e53",
        role="assistant",
        content="",
        created_at=at,
        turn_id="turn-2",
        status="error",
        error=TurnError(code="provider_failed", message="The provider exited with code 1."),
    )
    pending = Message(
        id="5f0c2a44-8b1e-4c55-9d7e-0a1b2c3d4e54",
        role="user",
        content="And by month?",
        created_at=at,
    )
    return Session(
        id=SESSION_ID,
        path="analysis/q3.ipynb",
        notebook_key="/home/user/analysis/q3.ipynb",
        working_dir="/home/user/analysis",
        provider="claude",
        provider_session_id="claude-session-1",
        context={"kernel": "python3"},
        messages=[question, reply, failed],
        pending_message=pending,
        title="Plot the sales by region",
        created_at=at,
        usage=Usage(input_tokens=120, output_tokens=45, cost_usd=0.0123),
        approvals=[Approval(tool_name="Bash", pattern="ls:*", created_at=at)],
    )


def write_stored_file(target: Path) -> None:
    """Save the sample session with a real store and copy its file to ``target``."""
    with tempfile.TemporaryDirectory() as folder:
        store = SessionStore(Path(folder) / "store")
        store.create(sample_session())
        shutil.copyfile(store.session_file(SESSION_ID), target)


if __name__ == "__main__":
    target = stored_file()
    if target.exists() and "--force" not in sys.argv:
        sys.exit(f"{target} exists: files of released versions are never regenerated.")
    write_stored_file(target)
    print(f"wrote {target}")
