"""``scpln db maint`` (SPEC 7): retention deletes old versions from every encoding, KPI retention keeps
the total bucket in both encodings alike, VACUUM runs, and a dry run changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from app import db
from app.ops.check import check_database
from app.ops.maint import DAY_MS, run_maintenance
from app.services.plans import PlanRequest, run_plan
from app.storage.plans import PlanStore
from tests.conftest import ROOT, SAMPLE

NOW = 1_800_000_000_000


def planned(url: str, versions: dict[str, tuple[str, int]]) -> Engine:
    """``version_id -> (mode, age in days)``: the sample planned, its created_at moved back."""
    db.init_db(url)
    engine = db.get_engine(url)
    store = PlanStore(engine)
    for vid, (mode, age) in versions.items():
        run_plan(PlanRequest(input_dir=str(SAMPLE), version_id=vid), storage=mode, store=store)
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE plan_versions SET created_at = :t WHERE version_id = :v"),
                {"t": NOW - age * DAY_MS, "v": vid},
            )
    return engine


def count(engine: Engine, table: str, vid: str, where: str = "") -> int:
    with engine.connect() as conn:
        return conn.execute(
            text(f"SELECT COUNT(*) FROM {table} WHERE version_id = :v {where}"), {"v": vid}
        ).scalar()


def ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(text("SELECT version_id FROM plan_versions")).scalars())


def test_versions_older_than_keep_days_are_deleted_from_every_encoding(db_url: str) -> None:
    engine = planned(db_url, {"old": ("both", 40), "older": ("files", 90), "new": ("db", 2)})
    report = run_maintenance(engine, keep_days=30, now=NOW)
    assert report.deleted_versions == ["older", "old"] and report.vacuumed
    assert ids(engine) == ["new"]
    for table in ("plan_series", "plan_kpis", "plan_artifacts"):
        assert count(engine, table, "old") == 0 and count(engine, table, "older") == 0
    assert count(engine, "plan_series", "new") > 0
    assert check_database(engine).ok


def test_keep_versions_keeps_the_newest_and_spares_approved_and_running_ones(db_url: str) -> None:
    engine = planned(db_url, {f"v{i}": ("both", 10 - i) for i in range(5)})
    with engine.begin() as conn:
        conn.execute(text("UPDATE plan_versions SET approval = 'approved' WHERE version_id = 'v0'"))
        conn.execute(text("UPDATE plan_versions SET status = 'running' WHERE version_id = 'v1'"))
    report = run_maintenance(engine, keep_versions=2, vacuum=False, now=NOW)
    assert report.deleted_versions == ["v2"]
    assert sorted(report.kept_protected) == ["v0", "v1"]
    assert ids(engine) == ["v0", "v1", "v3", "v4"]
    assert not report.vacuumed


def test_kpi_retention_keeps_the_total_bucket_in_both_encodings(db_url: str) -> None:
    engine = planned(db_url, {"old": ("both", 60), "new": ("both", 1)})
    before = count(engine, "plan_kpis", "old", "AND bucket_type = 'total'")
    assert count(engine, "plan_kpis", "old", "AND bucket_type <> 'total'") > 0
    report = run_maintenance(engine, kpi_keep_days=30, vacuum=False, now=NOW)
    assert report.kpi_trimmed_versions == ["old"] and report.kpi_rows_deleted > 0
    assert count(engine, "plan_kpis", "old", "AND bucket_type <> 'total'") == 0
    assert count(engine, "plan_kpis", "old", "AND bucket_type = 'total'") == before
    assert count(engine, "plan_kpis", "new", "AND bucket_type <> 'total'") > 0
    store = PlanStore(engine)
    from_rows = store.read_rows("old").documents["plan_final.json"]["kpis"]
    from_artifacts = store.read_artifacts("old").documents["plan_final.json"]["kpis"]
    assert from_rows == from_artifacts and {k["bucket_type"] for k in from_rows} == {"total"}
    assert check_database(engine).ok, "both encodings still agree"
    again = run_maintenance(engine, kpi_keep_days=30, vacuum=False, now=NOW)
    assert again.kpi_trimmed_versions == []


def test_a_dry_run_reports_and_changes_nothing(sqlite_url: str) -> None:
    engine = planned(sqlite_url, {"old": ("both", 60), "new": ("both", 1)})
    kpis = count(engine, "plan_kpis", "old")
    report = run_maintenance(engine, keep_days=90, keep_versions=1, kpi_keep_days=30, dry_run=True, now=NOW)
    assert report.deleted_versions == ["old"] and report.dry_run and not report.vacuumed
    assert "would delete 1 version" in report.as_text()
    assert ids(engine) == ["new", "old"] and count(engine, "plan_kpis", "old") == kpis


@pytest.mark.parametrize(
    "limits", [{"keep_versions": 0}, {"keep_days": -1}, {"kpi_keep_days": 0}], ids=["versions", "days", "kpi"]
)
def test_limits_that_would_delete_everything_are_refused(sqlite_url: str, limits: dict) -> None:
    engine = planned(sqlite_url, {"v": ("files", 1)})
    with pytest.raises(ValueError):
        run_maintenance(engine, **limits, now=NOW)
    assert ids(engine) == ["v"]


def test_vacuum_gives_the_space_of_deleted_versions_back(sqlite_url: str) -> None:
    engine = planned(sqlite_url, {f"v{i}": ("both", 100 - i) for i in range(4)})
    report = run_maintenance(engine, keep_versions=1, now=NOW)
    assert report.vacuumed and report.size_after < report.size_before


def test_db_maint_cli(tmp_path: Path) -> None:
    database = tmp_path / "hub.db"
    url = f"sqlite:///{database}"
    planned(url, {"a": ("both", 3), "b": ("both", 2), "c": ("both", 1)})
    env = {**os.environ, "SCPLN_DB": str(database), "COLUMNS": "200"}
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "db", "maint", "--keep-versions", "1", "--no-vacuum"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "deleted 2 version" in run.stdout and "VACUUM skipped" in run.stdout
    assert ids(db.get_engine(url)) == ["c"]
    bad = subprocess.run(
        [sys.executable, "-m", "app.cli", "db", "maint", "--keep-versions", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "keep_versions" in bad.stderr
    db.dispose_engines(url)


def test_db_upgrade_and_downgrade_cli(tmp_path: Path) -> None:
    database = tmp_path / "hub.db"
    env = {**os.environ, "SCPLN_DB": str(database), "COLUMNS": "200"}

    def scpln(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", "db", *args], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip

    def tables() -> set[str]:
        import sqlite3

        with sqlite3.connect(database) as raw:
            return {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    up = scpln("upgrade")
    assert up.returncode == 0, up.stderr
    assert f"schema at revision {db.head_revision()}" in up.stdout
    assert {"plan_versions", "plan_series"} <= tables()
    down = scpln("downgrade", "0001")
    assert down.returncode == 0, down.stderr
    assert "schema at revision 0001" in down.stdout
    assert "plan_versions" in tables() and "plan_series" not in tables()
    unknown = scpln("downgrade", "no-such-revision")
    assert unknown.returncode == 1 and "no-such-revision" in unknown.stderr
