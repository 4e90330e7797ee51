"""The session list as the HTTP API sends it, built without the engine.

Listing is the first thing the sidebar asks for after the page loads, so it must not wait for
pydantic, the providers or the turn runner to be imported: it needs only the store (whose
summaries are kept as JSON), the process records (which sessions run) and the server root (to
resolve ``?path=``)."""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

from .errors import BadRequest
from .processes import ProcessRegistry
from .store import SessionStore
from .workdir import resolve_notebook


class SessionListing:
    def __init__(self, store: SessionStore, registry: ProcessRegistry, root_dir: Path | None):
        self.store = store
        self.registry = registry
        self.root_dir = root_dir

    def notebook_key(self, api_path: str) -> str:
        if self.root_dir is None:
            raise BadRequest("This assistant has no server root to resolve notebook paths in.")
        return resolve_notebook(self.root_dir, api_path).notebook_key

    def as_json(self, api_path: str | None = None, running_here: Collection[str] = ()) -> str:
        """``{"sessions": [...], "problems": [...]}``, newest first; ``problems`` only when the
        store set corrupt files aside. ``running_here``: sessions with a turn in this process
        (the others are found through their process records)."""
        key = self.notebook_key(api_path) if api_path is not None else None
        running = set(running_here) | self.registry.running_sessions()
        body = '{"sessions":' + self.store.summaries_json(key, running)
        if self.store.problems:
            body += ',"problems":' + json.dumps(list(self.store.problems))
        return body + "}"
