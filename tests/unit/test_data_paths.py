"""Where a database's own files live (``app.config.data_paths``): backups, state files and scratch files
follow the database in use, or a configured data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import REPO_ROOT, data_paths


@pytest.fixture(autouse=True)
def no_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCPLN_HOME", raising=False)
    monkeypatch.delenv("SCPLN_DB", raising=False)


def test_the_repository_database_keeps_backup_and_tmp_at_the_repository_root() -> None:
    for database in (None, "data/scpln.db", str(REPO_ROOT / "data" / "scpln.db"), f"sqlite:///{REPO_ROOT}/data/scpln.db"):  # fmt: skip
        paths = data_paths(database)
        assert paths.home == REPO_ROOT, database
        assert paths.backup == REPO_ROOT / "backup"
        assert paths.tmp == REPO_ROOT / "tmp"
        assert paths.rollback_state == REPO_ROOT / "tmp" / "rollback_state.json"
        assert paths.rollforward_state == REPO_ROOT / "tmp" / "rollforward_state.json"


def test_any_other_sqlite_file_has_them_beside_it_or_beside_its_data_folder() -> None:
    assert data_paths("/srv/x/plan.db").backup == Path("/srv/x/backup")
    assert data_paths("sqlite:////srv/x/plan.db").tmp == Path("/srv/x/tmp")
    assert data_paths("/srv/hub/data/plan.db").backup == Path("/srv/hub/backup")
    assert data_paths("/srv/data-2026/plan.db").backup == Path("/srv/data-2026/backup")
    assert data_paths("other/plan.db").home == REPO_ROOT / "other"  # relative: from the repository root


def test_sqlite_db_is_followed_when_no_database_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCPLN_DB", "/srv/y/hub.db")
    assert data_paths().backup == Path("/srv/y/backup")


def test_a_server_database_gets_a_folder_of_its_own_in_the_repository() -> None:
    one = data_paths("postgresql+psycopg://planner:secret@db.example:5433/plans")
    assert one.home == REPO_ROOT / "data" / "postgresql-db.example-5433-plans"
    assert "secret" not in str(one.home)
    assert data_paths("postgres://planner@db.example:5433/plans").home == one.home  # as SCPLN_DB may say it
    other = data_paths("postgresql+psycopg://planner@db.example:5433/plans_test")
    assert other.backup != one.backup
    assert data_paths("sqlite://").home == REPO_ROOT / "data" / "sqlite-local-memory"


def test_scpln_home_is_the_data_directory_of_every_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCPLN_HOME", "/var/lib/scpln")
    for database in ("data/scpln.db", "/srv/x/plan.db", "postgresql+psycopg://u@h/db"):
        assert data_paths(database).backup == Path("/var/lib/scpln/backup")
        assert data_paths(database).rollback_state == Path("/var/lib/scpln/tmp/rollback_state.json")
    monkeypatch.setenv("SCPLN_HOME", "site")  # relative: from the repository root
    assert data_paths().home == REPO_ROOT / "site"
    monkeypatch.setenv("SCPLN_HOME", " ")  # blank means unset
    assert data_paths().home == REPO_ROOT
