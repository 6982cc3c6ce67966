"""The storage-mode rule (SPEC 4.3) on plain values: the pin, the request, ``PLAN_STORAGE_MODE``, the
default, where one version is read from, and PSI's own rule, whose difference is intended."""

from __future__ import annotations

import pytest

from app.errors import EncodingMissing, StorageModeConflict
from app.storage import modes

MODES = ("db", "files", "both")


@pytest.fixture(autouse=True)
def _no_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLAN_STORAGE_MODE", raising=False)


def test_without_pin_or_request_the_environment_decides_and_both_is_the_last_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert modes.effective_mode(None) == "both"
    monkeypatch.setenv("PLAN_STORAGE_MODE", "files")
    assert modes.effective_mode(None) == "files"
    assert modes.effective_mode(None, "db") == "db"  # a request wins over the environment


@pytest.mark.parametrize("pin", MODES)
def test_a_pin_wins_and_refuses_a_request_for_another_mode(pin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAN_STORAGE_MODE", "db" if pin != "db" else "files")
    assert modes.effective_mode(pin) == pin
    assert modes.effective_mode(pin, pin) == pin
    for other in set(MODES) - {pin}:
        with pytest.raises(StorageModeConflict):
            modes.effective_mode(pin, other)


def test_an_unknown_mode_is_refused_as_a_bad_request() -> None:
    with pytest.raises(ValueError, match="storage mode must be one of"):
        modes.effective_mode(None, "rows")
    with pytest.raises(ValueError):
        modes.check_mode("")


@pytest.mark.parametrize(
    ("mode", "has_rows", "expected"),
    [
        ("db", True, modes.ROWS),
        ("both", True, modes.ROWS),
        ("both", False, modes.ARTIFACTS),
        ("files", True, modes.ARTIFACTS),  # files never reads rows, even where they exist
        ("files", False, modes.ARTIFACTS),
    ],
)
def test_where_a_ready_version_is_read_from(mode: str, has_rows: bool, expected: str) -> None:
    assert modes.read_source("v1", "ready", mode, has_rows) == expected


def test_db_mode_has_nothing_to_read_for_a_version_without_rows_and_unready_versions_have_no_tables() -> None:
    with pytest.raises(EncodingMissing):
        modes.read_source("v1", "ready", "db", False)
    for status in ("running", "failed"):
        with pytest.raises(EncodingMissing):
            modes.read_source("v1", status, "both", True)


def test_psi_keeps_a_versions_own_mode_where_plan_reads_take_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Intended difference: a version planned in files mode keeps its PSI state in artifacts while the
    # default is both or db; plan reads of that version follow the default.
    monkeypatch.setenv("PLAN_STORAGE_MODE", "db")
    assert modes.effective_mode(None) == "db"
    assert modes.psi_mode(None, "files") == "files"
    assert modes.psi_mode(None, None) == "db"  # a version without a stored mode takes the default
    for version_mode in MODES:  # the pin wins for PSI as it does for everything else
        assert modes.psi_mode("files", version_mode) == "files"
