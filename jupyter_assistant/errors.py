"""Engine errors. Each carries the HTTP status the handlers answer with; the engine itself
knows nothing of HTTP beyond this number."""

from __future__ import annotations


class AssistantError(Exception):
    """An error the user is shown as it is: ``message`` says what went wrong and what to do."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(AssistantError):
    """The request itself is wrong (a bad path, provider or body); nothing was changed."""

    status = 400


class NotFound(AssistantError):
    status = 404


class Busy(AssistantError):
    """A turn already runs in the session, or this server runs as many turns as it may; try
    again when it ends."""

    status = 409


class ChangedSince(AssistantError):
    """An undo would overwrite what changed after the turn (``conflicts``: the paths)."""

    status = 409

    def __init__(self, message: str, conflicts: list[str]) -> None:
        super().__init__(message)
        self.conflicts = conflicts


class TooLarge(AssistantError):
    status = 413


class StoreUnavailable(AssistantError):
    """The store could not be written (disk full, read-only...). Nothing was changed."""

    status = 500


class InsufficientStorage(StoreUnavailable):
    """The disk holding the store is full (or over quota)."""

    status = 507


class NewerSchema(StoreUnavailable):
    """The session file was written by a newer version of this package (a later schema); it
    is left as it is (migrations.py)."""


class Forbidden(AssistantError):
    """An admin policy refuses it (e.g. a conversation over its cost cap)."""

    status = 403
