"""Engine errors. Each carries the HTTP status the handlers answer with; the engine itself
knows nothing of HTTP beyond this number."""

from __future__ import annotations


class AssistantError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(AssistantError):
    status = 400


class NotFound(AssistantError):
    status = 404


class Busy(AssistantError):
    status = 409


class TooLarge(AssistantError):
    status = 413


class StoreUnavailable(AssistantError):
    """The store could not be written (disk full, read-only...). Nothing was changed."""

    status = 500


class InsufficientStorage(StoreUnavailable):
    status = 507


class NewerSchema(StoreUnavailable):
    """The session file was written by a newer version of this package (a later schema); it
    is left as it is (migrations.py)."""


class Forbidden(AssistantError):
    status = 403
