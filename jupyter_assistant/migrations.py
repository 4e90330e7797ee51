"""Reading session files written by other versions of the schema (``Session.version``).

Every session file carries ``version``, the ``SCHEMA_VERSION`` (models.py) of the code that
wrote it. The store reads a file through ``parse_session``: a file of the current version is
validated as it is (one parse, the common case); an older one is brought up to date by
``migrate``, one step per version, before it is validated; a newer one is refused with
``NewerSchema`` (it is neither changed nor set aside as corrupt: the newer code that wrote it
may still read it). Files from before the field existed have no ``version``; they have the
fields of version 1 and are read as version 1.

Unknown keys are kept (the models have ``extra="allow"``), so adding an optional field with a
default needs no new version: older code reads such files and saves them with the field intact.

How to change the schema (a field renamed, removed, or given another type or meaning):

1. Raise ``SCHEMA_VERSION`` in models.py by one, say to N, and change the models.
2. Write ``_vN_minus_1_to_vN(raw: dict) -> dict`` here: it gets the parsed JSON of a version
   N-1 file and returns it in the shape of version N (it must not need anything but ``raw``),
   and register it in ``MIGRATIONS`` under N-1. Never change an existing step: files of every
   older version are still out there.
3. Generate a file of the new version with ``python -m tests.data.make_session`` (it writes
   ``tests/data/session-vN.json``) and keep the older ones: tests/test_migrations.py loads each
   stored file and checks that it migrates to the current version.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import NewerSchema
from .models import SCHEMA_VERSION

if TYPE_CHECKING:
    from .models import Session

# The version of a file with no ``version`` key (written before the field existed).
UNVERSIONED = 1

Migration = Callable[[dict[str, Any]], dict[str, Any]]
# MIGRATIONS[n] turns the JSON of a version-n file into that of a version-(n+1) file.
MIGRATIONS: dict[int, Migration] = {}


def version_of(raw: dict[str, Any]) -> int:
    version = raw.get("version", UNVERSIONED)
    if type(version) is not int or version < UNVERSIONED:
        raise ValueError(f"unknown schema version {version!r}")
    return version


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """The JSON of a session file, brought to ``SCHEMA_VERSION`` one step at a time (a file of
    the current version is returned as it is). Raises NewerSchema for a file of a later
    version, ValueError for a version that never existed."""
    version = version_of(raw)
    if version > SCHEMA_VERSION:
        session_id = raw.get("id")
        raise NewerSchema(
            f"Session {session_id} was saved by a newer version of jupyter_assistant (schema "
            f"version {version}; this one reads up to {SCHEMA_VERSION}): upgrade "
            "jupyter_assistant to open it. The file was left as it is."
        )
    while version < SCHEMA_VERSION:
        raw = MIGRATIONS[version](raw)
        version += 1
        raw["version"] = version
    raw.setdefault("version", SCHEMA_VERSION)
    return raw


def parse_session(raw: bytes) -> Session:
    """A session from the bytes of its file, migrated to the current schema. Raises ValueError
    (or RecursionError, for absurdly nested JSON) for a file that is not a session, and
    NewerSchema for one of a later schema."""
    from .models import Session

    try:
        session = Session.model_validate_json(raw)
    except ValueError:
        _refuse_newer(raw)  # a later schema may not validate here: say so, not "corrupt"
        raise
    if session.version == SCHEMA_VERSION and "version" in session.model_fields_set:
        return session
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("a session file holds a JSON object")
    return Session.model_validate(migrate(data))


def _refuse_newer(raw: bytes) -> None:
    try:
        data = json.loads(raw)
        newer = isinstance(data, dict) and version_of(data) > SCHEMA_VERSION
    except (ValueError, RecursionError):
        return
    if newer:
        migrate(data)  # raises NewerSchema
