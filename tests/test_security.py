"""Security properties: strict authentication mode, no secrets leaking to the agent, the
events, the store or our logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .helpers import api, create_session, json_of, run_turn, types

pytestmark = [
    pytest.mark.usefixtures("notebook_dir"),
    # Every handler must be decorated for authentication: fail on Jupyter's warning about it.
    pytest.mark.filterwarnings("error::jupyter_server.utils.JupyterServerAuthWarning"),
]

SECRETS = {
    "JUPYTER_TOKEN": "secret-jupyter-token-1",
    "JUPYTERHUB_API_TOKEN": "secret-hub-token-2",
    "JPY_API_TOKEN": "secret-jpy-token-3",
}


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    server = {**jp_server_config["ServerApp"], "allow_unauthenticated_access": False}
    return {**jp_server_config, "ServerApp": server}


async def test_strict_mode_still_serves_and_refuses_anonymous(jp_fetch: Any) -> None:
    assert (await api(jp_fetch, "providers")).code == 200
    for parts in (("providers",), ("sessions",), ("no", "such", "endpoint")):
        anonymous = await api(jp_fetch, *parts, headers={"Authorization": ""})
        assert anonymous.code == 403, parts
    unknown = await api(jp_fetch, "no", "such", "endpoint")
    assert unknown.code == 404
    assert "message" in json_of(unknown)


async def test_secrets_never_reach_the_agent_events_store_or_logs(
    jp_fetch: Any,
    jp_serverapp: Any,
    tmp_path: Path,
    store_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    assistant_logs: pytest.LogCaptureFixture,
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    argv_file = tmp_path / "argv.json"
    monkeypatch.setenv("FAKE_CLAUDE_ARGV_FILE", str(argv_file))
    server_token = jp_serverapp.identity_provider.token
    session = await create_session(jp_fetch)
    streams = []
    for prompt in ("scenario:tool hi", "scenario:crash", "scenario:not_logged_in"):
        streams.append(await run_turn(jp_fetch, session["id"], prompt))
    assert [types(s)[-1] for s in streams] == ["done", "error", "error"]

    launched = json.loads(argv_file.read_text())
    assert not set(SECRETS) & set(launched["env_names"])
    secrets = [*SECRETS.values(), server_token]
    everything = json.dumps(streams) + json.dumps(launched)
    everything += "".join(p.read_text() for p in (store_dir / "sessions").glob("*.json"))
    records = assistant_logs.records
    ours = [r.getMessage() for r in records if r.name.startswith("jupyter_assistant")]
    everything += "\n".join(ours)
    for secret in secrets:
        assert secret not in everything
