"""Domain errors and the ONE table that maps each to an HTTP status and a CLI exit code.

``OUTCOMES`` is the only place that decides a status or an exit code: the API's error mapping
(``app.api.errors``), the UI's error pages and the CLI's error mapper (``app.cli.main``) read it
through :func:`outcome`. An error class not in the table takes the entry of its nearest listed base
class. ``InputError`` (a bad input set, with every problem) is raised by the pure engine, which imports
it from here, so that this module, like the engine, imports nothing of the hub.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


class InputError(Exception):
    """Invalid input set: carries every problem found, each with file, row, column and reason."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the input set")

    def as_dicts(self) -> list[dict[str, Any]]:
        return [asdict(p) for p in self.problems]

    def __str__(self) -> str:  # readable list for the CLI
        return "\n".join(p.describe() for p in self.problems)


@dataclass(frozen=True)
class Problem:
    """One validation problem. ``row`` is the 1-based line number in the file (header = 1), or None."""

    file: str
    row: int | None
    column: str | None
    reason: str

    def describe(self) -> str:
        where = self.file
        if self.row is not None:
            where += f":{self.row}"
        if self.column:
            where += f" [{self.column}]"
        return f"{where}: {self.reason}"


class ScplnError(Exception):
    """Base of the errors the hub reports to its users; ``title`` is the short error text."""

    title = "internal error"

    def __init__(self, message: str, detail: object | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail if detail is not None else message

    @property
    def status(self) -> int:
        """The HTTP status of this error, from the table."""
        return outcome(self).status


class PlanNotFound(ScplnError):
    title = "plan not found"


class VersionConflict(ScplnError):
    """The version id is taken (versions are immutable once written)."""

    title = "version conflict"


class StorageModeConflict(ScplnError):
    """A request asked for a storage mode other than the operator pin."""

    title = "storage mode pinned"


class IntakePaused(ScplnError):
    title = "plan intake paused"


class StorageError(ScplnError):
    """A plan write or read failed in the database; nothing half-written is left behind."""

    title = "storage error"


class StorageFull(StorageError):
    """The database (or the queue beside it) has no room left: nothing of the request was written."""

    title = "storage full"


class StorageBusy(StorageError):
    """The database stayed locked by other writers longer than the wait allows: nothing of the request
    was written, and the same request may simply be sent again."""

    title = "storage busy"


class EncodingMissing(ScplnError):
    """The version exists but not in the encoding the storage mode reads."""

    title = "plan content missing"


class JobNotFound(ScplnError):
    title = "job not found"


class JobConflict(ScplnError):
    """The job's state does not allow the request (cancel a finished job, retry a running one)."""

    title = "job conflict"


class QueueUnavailable(ScplnError):
    """The job queue (SQLite file or Redis) refused the job; nothing was left registered."""

    title = "job queue unavailable"


class RunNotFound(ScplnError):
    title = "run not found"


class PsiInputError(ScplnError, ValueError):
    """A PSI request that cannot be applied as given (unknown cell, bad value, impossible target)."""

    title = "invalid PSI edit"


class PsiConflict(ScplnError):
    """The version's PSI state does not allow the request (locked cell, wrong approval state, ...)."""

    title = "PSI conflict"


class DiffConflict(ScplnError):
    """A diff without a base to compare with, or across input sets without the caller's confirmation."""

    title = "diff needs a base"


class Unauthorized(ScplnError):
    """No valid token (or UI session) where tokens are required."""

    title = "unauthorized"


class Forbidden(ScplnError):
    """The caller's role does not allow the request, or a form's CSRF token is missing or stale."""

    title = "forbidden"


class AuthMisconfigured(ScplnError):
    title = "auth misconfigured"


class PageNotFound(ScplnError):
    """No UI page at that address."""

    title = "not found"


@dataclass(frozen=True)
class Outcome:
    status: int  # HTTP status
    exit_code: int  # CLI: 1 a failed operation, 2 bad input or parameters


OUTCOMES: dict[type[BaseException], Outcome] = {
    InputError: Outcome(422, 2),
    ValueError: Outcome(422, 2),  # parameters a service refused
    PsiInputError: Outcome(422, 2),
    Unauthorized: Outcome(401, 1),
    Forbidden: Outcome(403, 1),
    PlanNotFound: Outcome(404, 1),
    EncodingMissing: Outcome(404, 1),
    JobNotFound: Outcome(404, 1),
    RunNotFound: Outcome(404, 1),
    PageNotFound: Outcome(404, 1),
    VersionConflict: Outcome(409, 1),
    StorageModeConflict: Outcome(409, 1),
    JobConflict: Outcome(409, 1),
    PsiConflict: Outcome(409, 1),
    DiffConflict: Outcome(409, 1),
    IntakePaused: Outcome(503, 1),
    QueueUnavailable: Outcome(503, 1),
    FileNotFoundError: Outcome(404, 2),  # a file or folder named on the command line
    StorageFull: Outcome(507, 1),
    StorageBusy: Outcome(503, 1),
    StorageError: Outcome(500, 1),
    AuthMisconfigured: Outcome(500, 1),
    ScplnError: Outcome(500, 1),
}
UNEXPECTED = Outcome(500, 1)


#: What databases say when their disk is full (SQLite, PostgreSQL, the operating system).
DISK_FULL_SIGNS = (
    "database or disk is full",
    "no space left on device",
    "could not extend file",
    "disk full",
)


#: What SQLite says when a lock was not granted within its busy timeout.
LOCKED_SIGNS = ("database is locked", "database table is locked", "database schema is locked")


def is_locked(exc: BaseException) -> bool:
    """Whether ``exc`` says the database stayed locked (SQLite's busy timeout ran out)."""
    return any(sign in str(exc).lower() for sign in LOCKED_SIGNS)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the disk is full."""
    while exc is not None:
        if getattr(exc, "errno", None) == 28:  # ENOSPC
            return True
        if any(sign in str(exc).lower() for sign in DISK_FULL_SIGNS):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def outcome(exc: BaseException) -> Outcome:
    """The table's entry for ``exc``: its own class's, else its nearest listed base class's."""
    for cls in type(exc).__mro__:
        found = OUTCOMES.get(cls)
        if found is not None:
            return found
    return UNEXPECTED
