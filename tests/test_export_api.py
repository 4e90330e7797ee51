"""``GET sessions/{id}/export``: the conversation as the one exporter (export.py) renders it,
over the HTTP API the sidebar uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_assistant.export import render
from jupyter_assistant.store import SessionStore

from .helpers import api, create_session, json_of, run_turn

pytestmark = pytest.mark.usefixtures("notebook_dir")


async def conversation(jp_fetch: Any) -> str:
    """A session with a turn that used a tool and a reply holding a Python code block."""
    session = await create_session(jp_fetch)
    await run_turn(jp_fetch, session["id"], "scenario:tool where am I?")
    await run_turn(jp_fetch, session["id"], "Sum it:\n```python\nprint(40 + 2)\n```\nThanks!")
    return str(session["id"])


def without_cell_ids(notebook: dict[str, Any]) -> dict[str, Any]:
    # Cell ids are random per rendering; everything else is the same.
    return {**notebook, "cells": [{**c, "id": ""} for c in notebook["cells"]]}


async def test_markdown_is_what_the_command_writes(jp_fetch: Any, store_dir: Path) -> None:
    sid = await conversation(jp_fetch)
    response = await api(jp_fetch, "sessions", sid, "export", params={"format": "md"})
    assert response.code == 200, response.body
    assert response.headers["Content-Type"] == "text/markdown; charset=utf-8"
    text = response.body.decode("utf-8")
    assert text == render(SessionStore(store_dir).load(sid), "md")
    assert "```python\nprint(40 + 2)\n```" in text
    assert "- **Bash** `pwd`" in text


async def test_notebook_is_what_the_command_writes(jp_fetch: Any, store_dir: Path) -> None:
    sid = await conversation(jp_fetch)
    response = await api(jp_fetch, "sessions", sid, "export", params={"format": "ipynb"})
    assert response.code == 200, response.body
    assert response.headers["Content-Type"] == "application/x-ipynb+json"
    served = json.loads(response.body)
    nbformat.validate(nbformat.from_dict(served))
    expected = json.loads(render(SessionStore(store_dir).load(sid), "ipynb"))
    assert without_cell_ids(served) == without_cell_ids(expected)
    assert [c["source"] for c in served["cells"] if c["cell_type"] == "code"] == ["print(40 + 2)"]
    assert served["metadata"]["jupyter_assistant"]["session_id"] == sid


@pytest.mark.parametrize("params", [{}, {"format": "pdf"}, {"format": "markdown"}])
async def test_an_unknown_format_is_a_400(jp_fetch: Any, params: dict[str, str]) -> None:
    sid = (await create_session(jp_fetch))["id"]
    response = await api(jp_fetch, "sessions", sid, "export", params=params)
    assert response.code == 400
    assert json_of(response) == {"message": "format must be one of: md, ipynb"}


@pytest.mark.parametrize("sid", ["00000000-0000-4000-8000-000000000000", "not-a-uuid"])
async def test_an_unknown_or_malformed_id_is_a_404(jp_fetch: Any, sid: str) -> None:
    response = await api(jp_fetch, "sessions", sid, "export", params={"format": "md"})
    assert response.code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert set(json_of(response)) == {"message"}
