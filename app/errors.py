"""Domain errors, mapped once to HTTP status codes (``app.api.errors``) and CLI exit codes.

``InputError`` (bad input set, with every problem) lives in ``app.planning.model`` because the pure
engine raises it; everything the storage and service layers raise is here.
"""

from __future__ import annotations


class ScplnError(Exception):
    """Base of the errors the hub reports to its users. ``status`` is the HTTP status it maps to."""

    status = 500
    title = "internal error"

    def __init__(self, message: str, detail: object | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail if detail is not None else message


class PlanNotFound(ScplnError):
    status = 404
    title = "plan not found"


class VersionConflict(ScplnError):
    """The version id is taken (versions are immutable once written)."""

    status = 409
    title = "version conflict"


class StorageModeConflict(ScplnError):
    """A request asked for a storage mode other than the operator pin."""

    status = 409
    title = "storage mode pinned"


class IntakePaused(ScplnError):
    status = 503
    title = "plan intake paused"


class StorageError(ScplnError):
    """A plan write or read failed in the database; nothing half-written is left behind."""

    status = 500
    title = "storage error"


class EncodingMissing(ScplnError):
    """The version exists but not in the encoding the storage mode reads."""

    status = 404
    title = "plan content missing"


class JobNotFound(ScplnError):
    status = 404
    title = "job not found"


class JobConflict(ScplnError):
    """The job's state does not allow the request (cancel a finished job, retry a running one)."""

    status = 409
    title = "job conflict"


class QueueUnavailable(ScplnError):
    """The job queue (SQLite file or Redis) refused the job; nothing was left registered."""

    status = 503
    title = "job queue unavailable"
