"""The database layer the operators' runbook relies on (SPEC 4.1, 4.4): URLs, SQLite connection
settings, the legacy artifact helpers, and the runbook's own sqlite3 queries."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app import db
from app.config import REPO_ROOT, Settings, resolve_path
from app.storage.schema import plan_versions


@pytest.fixture
def ready_url(db_url: str) -> str:
    db.init_db(db_url)
    return db_url


def test_a_path_becomes_an_absolute_sqlite_url_and_its_folder_is_created(tmp_path: Path) -> None:
    url = db.database_url(Settings(scpln_db=str(tmp_path / "nested" / "plan.db")))
    assert url == f"sqlite:///{tmp_path / 'nested' / 'plan.db'}"
    assert (tmp_path / "nested").is_dir()


def test_a_relative_path_is_taken_from_the_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCPLN_DB", raising=False)
    assert resolve_path("data/scpln.db") == REPO_ROOT / "data" / "scpln.db"
    assert Settings().scpln_db == "data/scpln.db"


def test_a_bare_postgresql_url_gets_the_psycopg_driver() -> None:
    assert db.database_url(Settings(scpln_db="postgresql://u@h:5432/d")) == "postgresql+psycopg://u@h:5432/d"
    assert db.normalize_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.normalize_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"


def test_the_environment_is_read_on_every_call(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCPLN_DB", str(tmp_path / "a.db"))
    monkeypatch.setenv("JOBS_ENABLED", "0")
    monkeypatch.setenv("PLAN_STORAGE_MODE", "FILES")
    assert db.database_url().endswith("/a.db")
    from app.config import get_settings

    settings = get_settings()
    assert settings.jobs_enabled is False and settings.plan_storage_mode == "files"
    monkeypatch.setenv("PLAN_STORAGE_MODE", "")
    assert get_settings().plan_storage_mode is None


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(sqlite_url: str) -> None:
    with db.get_engine(sqlite_url).connect() as conn:
        pragma = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in
                  ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")}  # fmt: skip
    assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000, "synchronous": 1}


def test_an_engine_is_made_once_per_url(sqlite_url: str) -> None:
    assert db.get_engine(sqlite_url) is db.get_engine(sqlite_url)


def test_now_ms_is_integer_milliseconds_since_the_epoch() -> None:
    assert isinstance(db.now_ms(), int)
    assert abs(db.now_ms() - time.time() * 1000) < 1000


def test_invalid_json_is_refused_and_nothing_is_stored(ready_url: str) -> None:
    with pytest.raises(ValueError, match=r"aggregate\.json: payload is not valid JSON"):
        db.upsert_plan_artifact("v1", "aggregate.json", "{not json", url=ready_url)
    assert db.list_plan_artifacts("v1", url=ready_url) == []


@pytest.mark.parametrize("name", ["", "../x.json", "notes.txt"])
def test_an_artifact_name_must_be_a_json_or_csv_file_name(ready_url: str, name: str) -> None:
    with pytest.raises(ValueError, match="invalid artifact name"):
        db.upsert_plan_artifact("v1", name, "{}", url=ready_url)


def test_csv_is_stored_verbatim(ready_url: str) -> None:
    text = 'type,week\r\ncapacity,"2026-W05"\n\n'
    db.upsert_plan_artifact("v1", "report.csv", text, url=ready_url)
    assert db.get_plan_artifact("v1", "report.csv", url=ready_url) == text


def test_an_upsert_replaces_the_artifact_and_the_list_is_sorted(ready_url: str) -> None:
    for name in ("sku_week.json", "aggregate.json", "report.csv"):
        db.upsert_plan_artifact(
            "v1", name, '{"rows": []}' if name.endswith(".json") else "a\n", url=ready_url
        )
    db.upsert_plan_artifact("v1", "aggregate.json", '{"rows": [1]}', url=ready_url)
    assert db.list_plan_artifacts("v1", url=ready_url) == ["aggregate.json", "report.csv", "sku_week.json"]
    assert db.get_plan_artifact("v1", "aggregate.json", url=ready_url) == '{"rows": [1]}'
    assert db.get_plan_artifact("v1", "mrp.json", url=ready_url) is None
    assert db.list_plan_artifacts("v2", url=ready_url) == []


def test_an_artifact_of_an_unknown_version_creates_a_ready_files_draft_version(ready_url: str) -> None:
    db.upsert_plan_artifact("v9", "aggregate.json", '{"schema_version": 1, "params": {"round_mode": "int"}}',
                            url=ready_url)  # fmt: skip
    with db.get_engine(ready_url).connect() as conn:
        row = conn.execute(select(plan_versions).where(plan_versions.c.version_id == "v9")).mappings().one()
    assert (row["status"], row["storage_mode"], row["approval"]) == ("ready", "files", "draft")
    assert row["params_json"] == '{"round_mode": "int"}' and row["schema_version"] == 1
    assert row["created_at"] <= row["updated_at"] <= db.now_ms()


def test_an_invalid_version_id_is_refused(ready_url: str) -> None:
    with pytest.raises(ValueError, match="invalid version id"):
        db.upsert_plan_artifact("bad id", "aggregate.json", "{}", url=ready_url)


def test_the_runbook_heredoc_works_with_scpln_db_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SCPLN_DB", str(tmp_path / "data" / "scpln.db"))
    db.init_db()
    db.upsert_plan_artifact("v20260101-000000-abcdef", "aggregate.json", '{"rows": []}')
    assert db.list_plan_artifacts("v20260101-000000-abcdef") == ["aggregate.json"]
    db.dispose_engines(db.database_url())


def test_init_db_finds_the_migrations_from_any_current_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    db.init_db(sqlite_url)
    assert db.schema_revision(db.get_engine(sqlite_url)) == db.head_revision()


def test_the_runbooks_sqlite3_queries_find_their_tables_and_columns(sqlite_url: str) -> None:
    db.init_db(sqlite_url)
    for name in ("aggregate.json", "sku_week.json", "plan_final.json"):
        db.upsert_plan_artifact("v1", name, "{}", url=sqlite_url)
    queries = [
        "SELECT * FROM plan_series WHERE version_id IN "
        "(SELECT version_id FROM plan_versions ORDER BY created_at DESC LIMIT 5);",
        "SELECT version_id, SUM(name='aggregate.json')>=1 AS has_agg, SUM(name='sku_week.json')>=1 AS has_det, "
        "SUM(name='plan_final.json')>=1 AS has_final FROM plan_artifacts GROUP BY version_id "
        "ORDER BY MAX(created_at) DESC LIMIT 5;",
        "UPDATE runs SET plan_job_id=NULL WHERE created_at>=0;",
        "SELECT version_id,status,created_at FROM plan_versions ORDER BY created_at DESC LIMIT 10;",
        "SELECT level, COUNT(*) FROM plan_series GROUP BY level;",
        "SELECT version_id,name,json_text FROM plan_artifacts WHERE version_id='v1';",
        "SELECT version_id FROM plan_series WHERE version_id IN ('v1');",
    ]
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        results = [conn.execute(q).fetchall() for q in queries]
    assert results[1] == [("v1", 1, 1, 1)]
    assert results[3][0][:2] == ("v1", "ready")


def test_a_large_write_on_postgresql_leaves_the_table_analyzed_and_a_small_one_does_not_analyze(
    pg_url: str, sqlite_url: str
) -> None:
    from app.planning.pipeline import plan_input_set
    from app.storage import db as storage_db
    from app.storage.plans import PlanStore
    from tests.conftest import SAMPLE

    db.init_db(pg_url)
    engine = db.get_engine(pg_url)

    def reltuples() -> float:
        with engine.connect() as conn:
            return conn.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE relname = 'plan_series'"
            ).scalar()

    assert reltuples() < 0, "a new table has never been analyzed"
    written = PlanStore(engine).write_version(plan_input_set(SAMPLE, version_id="v1"), mode="db")
    assert reltuples() == written.series_rows > 0, "the first version is the whole table: analyzed"
    share = written.series_rows * storage_db.ANALYZE_SHARE
    assert not storage_db.refresh_statistics(engine, "plan_series", int(share) - 1)
    assert storage_db.refresh_statistics(engine, "plan_series", int(share) + 1)
    assert not storage_db.refresh_statistics(engine, "no_such_table", 10), "a failure is only logged"
    db.init_db(sqlite_url)
    assert not storage_db.refresh_statistics(db.get_engine(sqlite_url), "plan_series", 10**6), "not on SQLite"
