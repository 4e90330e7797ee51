"""Session files of every schema version: the stored ones load, migrate and round-trip; a
newer version's file is refused and left as it is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from jupyter_assistant import migrations
from jupyter_assistant.errors import NewerSchema
from jupyter_assistant.models import SCHEMA_VERSION, Message
from jupyter_assistant.store import SessionStore
from tests.data.make_session import SESSION_ID, sample_session, stored_file, write_stored_file


def store_holding(tmp_path: Path, source: Path) -> SessionStore:
    """A store whose only session is a copy of ``source``."""
    store = SessionStore(tmp_path / "store")
    shutil.copyfile(source, store.session_file(SESSION_ID))
    return store


def test_the_stored_file_of_the_current_version_is_what_the_store_writes(tmp_path: Path) -> None:
    written = tmp_path / "written.json"
    write_stored_file(written)
    stored, fresh = json.loads(stored_file().read_bytes()), json.loads(written.read_bytes())
    stored.pop("updated_at"), fresh.pop("updated_at")  # the time of the save
    assert stored == fresh  # else: a schema change without a new version (migrations.py)


def test_the_stored_file_loads_migrates_as_is_and_round_trips(tmp_path: Path) -> None:
    raw = stored_file().read_bytes()
    assert json.loads(raw)["version"] == SCHEMA_VERSION
    assert migrations.migrate(json.loads(raw)) == json.loads(raw)  # nothing to do
    store = store_holding(tmp_path, stored_file())
    loaded = store.load(SESSION_ID)
    expected = sample_session()
    assert loaded.model_dump(exclude={"updated_at"}) == expected.model_dump(exclude={"updated_at"})
    store.save(loaded)  # unchanged but for the time of the save
    saved = json.loads(store.session_file(SESSION_ID).read_bytes())
    before = json.loads(raw)
    assert saved.pop("updated_at") >= before.pop("updated_at")
    assert saved == before
    [summary] = store.list_summaries()
    assert (summary["id"], summary["message_count"]) == (SESSION_ID, 4)


def test_a_file_without_a_version_is_read_as_version_1(tmp_path: Path) -> None:
    data = json.loads(stored_file(1).read_bytes())
    del data["version"]
    source = tmp_path / "unversioned.json"
    source.write_text(json.dumps(data))
    store = store_holding(tmp_path, source)
    assert store.load(SESSION_ID).version == 1
    store.edit(SESSION_ID, lambda s: s.messages.append(Message(role="user", content="q")))
    assert json.loads(store.session_file(SESSION_ID).read_bytes())["version"] == SCHEMA_VERSION


@pytest.mark.parametrize("change", ["a new field", "a field of another type"])
def test_a_file_of_a_newer_version_is_refused_and_left_as_it_is(
    tmp_path: Path, change: str
) -> None:
    data = json.loads(stored_file().read_bytes())
    data["version"] = SCHEMA_VERSION + 1
    if change == "a new field":
        data["branches"] = [{"id": "b1"}]
    else:
        data["messages"] = {"main": data["messages"]}
    source = tmp_path / "newer.json"
    source.write_text(json.dumps(data))
    store = store_holding(tmp_path, source)
    with pytest.raises(NewerSchema, match=r"newer version of jupyter_assistant.*upgrade"):
        store.load(SESSION_ID)
    with pytest.raises(NewerSchema):
        store.update(SESSION_ID, lambda s: setattr(s, "title", "changed"))
    assert store.session_file(SESSION_ID).read_bytes() == source.read_bytes()
    assert not (store.root / "corrupt").exists()  # not taken for a corrupt file
    store.list_summaries()  # listing the others goes on
    assert store.session_file(SESSION_ID).read_bytes() == source.read_bytes()


def test_migrate_applies_one_step_per_version_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    def v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
        raw["name"] = raw.pop("title")
        return raw

    def v2_to_v3(raw: dict[str, Any]) -> dict[str, Any]:
        raw["names"] = [raw.pop("name")]
        return raw

    monkeypatch.setattr(migrations, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(migrations, "MIGRATIONS", {1: v1_to_v2, 2: v2_to_v3})
    assert migrations.migrate({"version": 1, "title": "t"}) == {"version": 3, "names": ["t"]}
    assert migrations.migrate({"title": "t"}) == {"version": 3, "names": ["t"]}  # unversioned
    assert migrations.migrate({"version": 2, "name": "t"}) == {"version": 3, "names": ["t"]}
    assert migrations.migrate({"version": 3, "names": []}) == {"version": 3, "names": []}


@pytest.mark.parametrize("version", [0, -1, "1", None, 1.0])
def test_a_version_that_never_existed_is_a_corrupt_file(version: object) -> None:
    with pytest.raises(ValueError, match="unknown schema version"):
        migrations.migrate({"version": version})
