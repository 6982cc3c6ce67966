"""The one table of domain errors (``app.errors.OUTCOMES``): every error the hub defines has its HTTP
status and CLI exit code there, and an error class not listed takes its nearest listed base's entry."""

from __future__ import annotations

import inspect

import pytest

from app import errors
from app.errors import OUTCOMES, Outcome, outcome
from app.planning.model import InputError, Problem


def test_every_domain_error_is_in_the_table() -> None:
    defined = [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.ScplnError) and cls.__module__ == errors.__name__
    ]
    assert len(defined) > 10
    assert [cls.__name__ for cls in defined if cls not in OUTCOMES] == []


@pytest.mark.parametrize(
    ("exc", "status", "exit_code"),
    [
        (InputError([Problem("bom.csv", 3, "qty", "not a number")]), 422, 2),
        (ValueError("limit must be >= 0"), 422, 2),
        (errors.PsiInputError("no such cell"), 422, 2),
        (errors.PlanNotFound("v1"), 404, 1),
        (errors.StorageModeConflict("pinned"), 409, 1),
        (errors.IntakePaused("plan intake paused"), 503, 1),
        (errors.StorageError("disk full"), 500, 1),
        (errors.Unauthorized("token"), 401, 1),
        (errors.Forbidden("role"), 403, 1),
    ],
)
def test_status_and_exit_code_come_from_the_table(exc: Exception, status: int, exit_code: int) -> None:
    assert outcome(exc) == Outcome(status, exit_code)
    if isinstance(exc, errors.ScplnError):
        assert exc.status == status


def test_an_unlisted_subclass_takes_its_nearest_listed_base() -> None:
    class LostClaim(errors.VersionConflict):
        pass

    class ReportFailed(errors.ScplnError):
        pass

    assert outcome(LostClaim("claim lost")) == OUTCOMES[errors.VersionConflict]
    assert outcome(ReportFailed("failed")) == Outcome(500, 1)
    assert outcome(RuntimeError("a bug")) == Outcome(500, 1)
