"""The assistant under a real JupyterHub: two users, each with their own single-user server,
reached only through the hub's proxy, set up as docs/deploy-jupyterhub.md says.

The admin's policy is a `jupyter_server_config.json` in a folder named by `JUPYTER_CONFIG_PATH`
in the spawner's environment: only the `claude` provider (the fake CLI), and a cost cap of $0.01
per conversation (the fake reports $0.00882 per plain turn). Both users try to lift the policy
from their own `~/.jupyter`. alice's server ignores that file (JupyterHub's
`disable_user_config`); bob's reads it (his `max_message_bytes` shows it), and the policy holds
for him too, because the policy folder outranks `~/.jupyter`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from jupyter_assistant.processes import MARKER_ENV

from ..conftest import FAKE_CLAUDE
from .hub import Hub, HubUser, Response, alive, request, wait_for

NOTEBOOK = "analysis/q3.ipynb"
CAP_USD = 0.01
TURN_COST_USD = 0.00882  # the fake's plain reply
POLICY = {
    "AssistantExtension": {"allowed_providers": ["claude"], "max_session_cost_usd": CAP_USD},
    "ClaudeCodeProvider": {"command": [str(FAKE_CLAUDE)]},
}
USER_MAX_MESSAGE_BYTES = 200  # not a policy setting: shows whose own config file is read
# What a user would write in ~/.jupyter/jupyter_server_config.json to get around the policy.
USER_OVERRIDE = {
    "AssistantExtension": {
        "allowed_providers": ["claude", "codex", "gemini"],
        "max_session_cost_usd": 1000.0,
        "max_message_bytes": USER_MAX_MESSAGE_BYTES,
    }
}
# The fake CLI records its argv, cwd and environment's names here (relative: in its cwd).
ARGV_FILE = "fake-claude-invocation.json"
FORBIDDEN = {"message": "Forbidden"}  # the single-user server's answer to another user's token


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    workdir = tmp_path_factory.mktemp("jupyterhub")
    hub = Hub(
        workdir,
        ["alice", "bob"],
        POLICY,
        user_config_allowed={"bob"},
        environment={"FAKE_CLAUDE_ARGV_FILE": ARGV_FILE},
    )
    try:
        hub.start()
        for user in hub.users.values():
            prepare_home(user)
            hub.new_token(user.name)
        hub.start_servers(hub.users)
        yield hub
    finally:
        survivors = hub.stop()
    assert survivors == [], f"left running after the hub stopped: {survivors}"


def prepare_home(user: HubUser) -> None:
    """A notebook in the user's home, and their attempt at lifting the admin's policy."""
    (user.home / "analysis").mkdir(parents=True)
    (user.home / "analysis" / "q3.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    )
    (user.home / ".jupyter").mkdir()
    (user.home / ".jupyter" / "jupyter_server_config.json").write_text(json.dumps(USER_OVERRIDE))


# -- helpers: a user driving the assistant API of their own server ----------------------------


def call(hub: Hub, user: HubUser, method: str, path: str, body: Any = None) -> Response:
    return hub.assistant(user.name, method, path, user.token, body)


def new_session(hub: Hub, user: HubUser, **extra: Any) -> dict[str, Any]:
    reply = call(hub, user, "POST", "sessions", {"path": NOTEBOOK, **extra})
    assert reply.status == 201, reply
    session: dict[str, Any] = reply.json()
    return session


def post(hub: Hub, user: HubUser, session_id: str, content: str) -> Response:
    return call(hub, user, "POST", f"sessions/{session_id}/messages", {"content": content})


def run_turn(hub: Hub, user: HubUser, session_id: str, content: str) -> list[dict[str, Any]]:
    reply = post(hub, user, session_id, content)
    assert reply.status == 202, reply
    stream = call(hub, user, "GET", f"sessions/{session_id}/events")
    assert stream.status == 200, stream
    return stream.events()


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [event["event"] for event in events]


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["data"]["text"] for e in events if e["event"] == "text")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its content: any write shows up as a difference."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def session_files(user: HubUser) -> set[str]:
    return {p.stem for p in (user.store / "sessions").glob("*.json")}


def provider_processes(user: HubUser, turn_id: str) -> list[psutil.Process]:
    """The fake CLI's processes of a turn, running in the user's notebook folder (not those
    of earlier turns, kept running for their conversations' next turns: warm_agents)."""
    found = []
    for process in psutil.process_iter():
        try:
            in_folder = process.cwd() == str(user.home / "analysis")
            if (
                in_folder
                and str(FAKE_CLAUDE) in " ".join(process.cmdline())
                and process.environ().get(MARKER_ENV) == turn_id
            ):
                found.append(process)
        except psutil.Error:
            continue
    return found


def settled_session(hub: Hub, user: HubUser, session_id: str) -> dict[str, Any] | None:
    """The session once no turn runs and its last reply is final, else None."""
    session: dict[str, Any] = call(hub, user, "GET", f"sessions/{session_id}").json()
    last = session["messages"][-1] if session["messages"] else {}
    final = last.get("role") == "assistant" and last.get("status") != "streaming"
    return session if session["status"] == "idle" and final else None


def start_hanging_turn(hub: Hub, user: HubUser) -> tuple[str, str]:
    """A turn that runs until it is stopped: its session and turn ids, once its CLI runs."""
    sid = new_session(hub, user)["id"]
    posted = post(hub, user, sid, "scenario:hang")
    assert posted.status == 202
    turn_id = posted.json()["turn_id"]
    wait_for(lambda: provider_processes(user, turn_id), 60, f"{user.name}'s provider")
    return sid, turn_id


# -- the tests ---------------------------------------------------------------------------------


def test_each_user_runs_the_assistant_on_their_own_server_and_home(hub: Hub) -> None:
    alice, bob = hub.users["alice"], hub.users["bob"]
    ids = {}
    for user in (alice, bob):
        session = new_session(hub, user)
        assert session["working_dir"] == str(user.home / "analysis")
        events = run_turn(hub, user, session["id"], "scenario:tool")
        assert kinds(events)[0] == "turn_started"
        assert kinds(events)[-1] == "done", events
        # The provider ran in this user's notebook folder, inside their home, with the hub's
        # environment but not the server's token for the hub's API.
        assert f"The working directory is: {user.home / 'analysis'}" in text_of(events)
        invocation = json.loads((user.home / "analysis" / ARGV_FILE).read_text())
        assert invocation["cwd"] == str(user.home / "analysis")
        assert "JUPYTERHUB_USER" in invocation["env_names"]
        assert not {"JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"} & set(invocation["env_names"])
        ids[user.name] = session["id"]

    # Each conversation is stored in its owner's home (the default store) and nowhere else.
    for user, other in ((alice, bob), (bob, alice)):
        assert (user.store / "sessions" / f"{ids[user.name]}.json").is_file()
        assert list(other.home.rglob(f"*{ids[user.name]}*")) == []
        listed = {s["id"] for s in call(hub, user, "GET", "sessions").json()["sessions"]}
        assert ids[user.name] in listed and ids[other.name] not in listed
        assert listed == session_files(user)


def test_another_users_token_cannot_read_list_post_or_delete(hub: Hub) -> None:
    alice, bob = hub.users["alice"], hub.users["bob"]
    sid = new_session(hub, alice)["id"]
    assert kinds(run_turn(hub, alice, sid, "hello"))[-1] == "done"
    before = snapshot(alice.store)
    stored = call(hub, alice, "GET", f"sessions/{sid}").json()

    attempts = [
        ("GET", "providers", None),
        ("GET", "sessions", None),
        ("GET", f"sessions?path={NOTEBOOK}", None),
        ("GET", f"sessions/{sid}", None),
        ("GET", f"sessions/{sid}/events", None),
        ("POST", "sessions", {"path": NOTEBOOK}),
        ("POST", f"sessions/{sid}/messages", {"content": "scenario:tool"}),
        ("POST", f"sessions/{sid}/cancel", None),
        ("DELETE", f"sessions/{sid}", None),
    ]
    for method, path, body in attempts:
        reply = hub.assistant("alice", method, path, bob.token, body)
        # alice's server asks the hub whose token it is, and refuses bob before our handlers.
        assert (reply.status, reply.json()) == (403, FORBIDDEN), (method, path, reply)
        assert reply.headers["content-type"] == "application/json"
    for token in (None, "not-a-token"):
        reply = hub.assistant("alice", "GET", "sessions", token)
        assert (reply.status, reply.json()) == (403, FORBIDDEN), reply

    # Nor can bob stop alice's server (and so her turns) through the hub: it hides it from him.
    for method in ("DELETE", "POST"):
        reply = request(f"{hub.url}/hub/api/users/alice/server", method, bob.token)
        assert reply.status == 404, reply
        assert reply.json()["message"] == "No access to resources or resources not found"

    assert snapshot(alice.store) == before  # nothing written, nothing deleted
    assert call(hub, alice, "GET", f"sessions/{sid}").json() == stored


def log_in(hub: Hub, browser: requests.Session, name: str, password: str) -> int:
    """The hub's login form, as a browser fills it in (with the form's XSRF cookie)."""
    browser.get(f"{hub.url}/hub/login", timeout=60)
    form = {"username": name, "password": password, "_xsrf": browser.cookies["_xsrf"]}
    reply = browser.post(f"{hub.url}/hub/login", data=form, allow_redirects=False, timeout=60)
    return reply.status_code


def test_a_browser_logged_in_as_bob_reaches_only_his_own_server(hub: Hub) -> None:
    browser = requests.Session()
    assert log_in(hub, browser, "bob", "not the password") == 403
    assert log_in(hub, browser, "bob", hub.password) == 302

    # His own server: the hub's OAuth redirects, then JupyterLab and the assistant API.
    page = browser.get(hub.user_url("bob", "lab"), timeout=60)
    assert (page.status_code, page.url) == (200, hub.user_url("bob", "lab"))
    own = browser.get(hub.user_url("bob", "api/assistant/sessions"), timeout=60)
    assert own.status_code == 200 and "sessions" in own.json()

    # alice's: her server sends him to the hub's OAuth, and the hub refuses him there.
    page = browser.get(hub.user_url("alice", "lab"), timeout=60)
    assert [r.status_code for r in page.history] == [302]
    authorize = f"{hub.url}/hub/api/oauth2/authorize?client_id=jupyterhub-user-alice&"
    assert page.url.startswith(authorize)
    assert page.status_code == 403
    assert "You do not have permission to access Server at /user/alice/" in page.text
    api = browser.get(hub.user_url("alice", "api/assistant/sessions"), timeout=60)
    assert (api.status_code, api.json()) == (403, FORBIDDEN)


def test_another_users_token_cannot_cancel_a_running_turn(hub: Hub) -> None:
    alice, bob = hub.users["alice"], hub.users["bob"]
    sid, turn_id = start_hanging_turn(hub, alice)

    refused = hub.assistant("alice", "POST", f"sessions/{sid}/cancel", bob.token)
    assert (refused.status, refused.json()) == (403, FORBIDDEN), refused

    assert call(hub, alice, "GET", f"sessions/{sid}").json()["status"] == "running"
    # Only alice can stop it; that it was still there to cancel shows bob's cancel did nothing.
    cancelled = call(hub, alice, "POST", f"sessions/{sid}/cancel")
    assert (cancelled.status, cancelled.json()) == (200, {"cancelled": True}), cancelled
    assert kinds(call(hub, alice, "GET", f"sessions/{sid}/events").events())[-1] == "cancelled"
    wait_for(lambda: not provider_processes(alice, turn_id), 60, "alice's provider to end")
    settled = wait_for(lambda: settled_session(hub, alice, sid), 60, "the turn to be stored")
    assert settled["messages"][-1]["status"] == "cancelled"


@pytest.mark.parametrize("name", ["alice", "bob"])
def test_the_cost_cap_ends_a_conversation(hub: Hub, name: str) -> None:
    user = hub.users[name]
    sid = new_session(hub, user)["id"]

    first = run_turn(hub, user, sid, "first")
    assert kinds(first)[-1] == "done" and "notice" not in kinds(first), first

    # The second turn's cost passes the cap only with the final result: the reply is kept,
    # and a notice says no further turns will run.
    second = run_turn(hub, user, sid, "second")
    assert kinds(second)[-1] == "done", second
    notices = [e["data"]["message"] for e in second if e["event"] == "notice"]
    assert len(notices) == 1 and "max_session_cost_usd" in notices[0], second
    session = call(hub, user, "GET", f"sessions/{sid}").json()
    assert session["usage"]["cost_usd"] == pytest.approx(2 * TURN_COST_USD)
    assert [m["role"] for m in session["messages"]] == ["user", "assistant"] * 2

    third = post(hub, user, sid, "third")
    assert third.status == 403, third
    assert "start a new conversation" in third.json()["message"]
    assert call(hub, user, "GET", f"sessions/{sid}").json() == session  # nothing stored

    # A new conversation on the same notebook starts from zero.
    fresh = new_session(hub, user)["id"]
    assert kinds(run_turn(hub, user, fresh, "again"))[-1] == "done"


@pytest.mark.parametrize("name", ["alice", "bob"])
def test_only_the_allowed_provider_is_offered_or_accepted(hub: Hub, name: str) -> None:
    user = hub.users[name]
    providers = call(hub, user, "GET", "providers").json()
    assert providers["default"] == "claude"
    assert [p["name"] for p in providers["providers"]] == ["claude"]
    assert providers["providers"][0]["available"] is True

    before = session_files(user)
    for provider in ("codex", "gemini", "acp", "no-such-provider"):
        reply = call(hub, user, "POST", "sessions", {"path": NOTEBOOK, "provider": provider})
        assert reply.status == 400, (provider, reply)
        assert provider in reply.json()["message"], reply
        assert "available: claude" in reply.json()["message"], reply
    assert session_files(user) == before
    assert new_session(hub, user, provider="claude")["provider"] == "claude"


def test_whose_own_config_is_read(hub: Hub) -> None:
    """The override file is real: bob's server applies its harmless part (so the two tests
    above show the policy outranking it); alice's server ignores all of it."""
    long_message = "x" * (USER_MAX_MESSAGE_BYTES + 100)
    alice, bob = hub.users["alice"], hub.users["bob"]
    refused = post(hub, bob, new_session(hub, bob)["id"], long_message)
    assert refused.status == 413, refused
    assert kinds(run_turn(hub, alice, new_session(hub, alice)["id"], long_message))[-1] == "done"


def test_a_server_stopped_mid_turn_stops_its_provider(hub: Hub) -> None:
    bob = hub.users["bob"]
    sid, turn_id = start_hanging_turn(hub, bob)
    providers = provider_processes(bob, turn_id)
    hub.stop_server("bob")  # the hub's "Stop My Server" (SIGINT to the server)
    # The server stops its providers as it exits, not only at its next start.
    assert [p.pid for p in providers if alive(p)] == []
    hub.start_servers(["bob"])
    settled = wait_for(lambda: settled_session(hub, bob, sid), 60, "the turn to be stored")
    assert settled["messages"][-1]["status"] == "interrupted"
    assert kinds(run_turn(hub, bob, sid, "still there?"))[-1] == "done"


def test_stopping_the_hub_stops_every_process_it_started(hub: Hub) -> None:
    running = hub.processes()
    commands = [" ".join(p.cmdline()) for p in running]
    assert sum("jupyterhub-singleuser" in c for c in commands) == 2, commands
    assert sum("configurable-http-proxy" in c for c in commands) == 1, commands

    # The hub stops both servers and the proxy, and nothing is left behind.
    assert hub.stop() == []
    assert [p.pid for p in running if alive(p)] == []
