"""Provider and client faults end cleanly: a clear error, bounded memory, never a stuck
`running` session, and the reply saved as it grows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .helpers import (
    StreamReader,
    api,
    create_session,
    events,
    json_of,
    post_message,
    run_turn,
    types,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("notebook_dir")


@pytest.fixture
def assistant_config() -> dict[str, Any]:
    return {
        "idle_timeout_seconds": 2.0,
        "cancel_grace_seconds": 0.5,
        "max_line_bytes": 1024 * 1024,
        "max_reply_bytes": 200_000,
        "checkpoint_interval_seconds": 0.2,
    }


async def finished_idle(fetch: Any, sid: str) -> dict[str, Any]:
    stored = json_of(await api(fetch, "sessions", sid))
    assert stored["status"] == "idle"
    assert stored["pending_message"] is None
    return stored  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("scenario", "needle"),
    [
        ("huge_line", "max_line_bytes"),
        ("garbage", "not stream-json"),
        ("exit_now", "code 5"),
        ("crash", "simulated crash"),
        ("silent", "idle_timeout_seconds"),
    ],
)
async def test_broken_providers_end_in_a_clear_error(
    jp_fetch: Any, scenario: str, needle: str
) -> None:
    session = await create_session(jp_fetch)
    stream = await run_turn(jp_fetch, session["id"], f"scenario:{scenario}")
    assert stream[-1]["event"] == "error"
    assert needle in stream[-1]["data"]["message"]
    stored = await finished_idle(jp_fetch, session["id"])
    assert stored["messages"][-1]["status"] == "error"


async def test_invalid_lines_among_valid_ones_are_skipped(jp_fetch: Any) -> None:
    session = await create_session(jp_fetch)
    stream = await run_turn(jp_fetch, session["id"], "scenario:invalid_json")
    assert types(stream)[-1] == "done"


async def test_endless_output_is_cut_at_max_reply_bytes(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_COUNT", "10000000")  # would run for minutes
    session = await create_session(jp_fetch)
    stream = await run_turn(jp_fetch, session["id"], "scenario:flood")
    assert stream[-1]["event"] == "error"
    assert "max_reply_bytes" in stream[-1]["data"]["message"]
    text = sum(len(e["data"]["text"]) for e in stream if e["event"] == "text")
    assert text <= 200_000
    stored = await finished_idle(jp_fetch, session["id"])
    assert len(stored["messages"][-1]["content"]) <= 200_000


async def test_the_partial_reply_is_saved_while_the_turn_runs(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_COUNT", "30")
    monkeypatch.setenv("FAKE_DELAY", "0.1")
    session = await create_session(jp_fetch)
    sid = session["id"]
    await post_message(jp_fetch, sid, "scenario:slow")
    seen: list[str] = []

    async def streaming_reply() -> bool:
        stored = json_of(await api(jp_fetch, "sessions", sid))
        last = stored["messages"][-1] if stored["messages"] else {}
        if last.get("role") == "assistant" and last.get("status") == "streaming":
            seen.append(last["content"])
        return len(set(seen)) >= 2

    for _ in range(200):
        if await streaming_reply():
            break
        await asyncio.sleep(0.05)
    assert len(set(seen)) >= 2, "the stored reply did not grow during the turn"
    assert seen[0] and seen[-1].startswith(seen[0][:1])
    stream = await events(jp_fetch, sid)
    assert types(stream)[-1] == "done"
    stored = await finished_idle(jp_fetch, sid)
    replies = [m for m in stored["messages"] if m["role"] == "assistant"]
    assert len(replies) == 1  # the checkpointed reply was replaced, not duplicated
    assert replies[0]["status"] == "complete"


async def test_a_client_that_drops_mid_stream_resumes_without_gaps(
    jp_fetch: Any,
    jp_base_url: str,
    jp_http_port: int,
    jp_auth_header: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_COUNT", "40")
    monkeypatch.setenv("FAKE_DELAY", "0.02")
    session = await create_session(jp_fetch)
    sid = session["id"]
    await post_message(jp_fetch, sid, "scenario:slow")
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}api/assistant/sessions/{sid}/events"
    first = StreamReader(url, jp_auth_header)
    first.start()
    await first.wait_for(lambda evs: types(evs).count("text") >= 5)
    first.close()  # the browser tab goes away mid-turn
    last_id = first.events[-1]["id"]
    resumed = StreamReader(url, {**jp_auth_header, "Last-Event-ID": last_id})
    resumed.start()
    await resumed.wait_for(lambda evs: types(evs)[-1:] == ["done"])
    combined = first.events + resumed.events
    seqs = [int(e["id"].rsplit(":", 1)[1]) for e in combined]
    assert seqs == list(range(1, len(combined) + 1))  # every event once, in order
    assert combined == await events(jp_fetch, sid)


async def test_a_session_deleted_mid_turn_leaves_nothing_running(
    jp_fetch: Any, store_dir: Any
) -> None:
    session = await create_session(jp_fetch)
    await post_message(jp_fetch, session["id"], "scenario:hang")
    await wait_until(lambda: (store_dir / "processes").exists())
    response = await api(jp_fetch, "sessions", session["id"], method="DELETE")
    assert response.code == 204
    assert list((store_dir / "processes").iterdir()) == []
    listed = json_of(await api(jp_fetch, "sessions"))["sessions"]
    assert listed == []
