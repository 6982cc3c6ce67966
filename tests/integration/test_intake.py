"""Plan intake pause (SPEC 4.3, 5.1): a pause is stored in the database, checkpoints SQLite's WAL so
the runbook's plain ``cp data/scpln.db …`` copies everything, refuses new plans, and resume reopens."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app import db
from app.errors import IntakePaused
from app.ops.intake import intake_state, pause_intake, resume_intake
from app.services.plans import PlanRequest, run_plan
from app.storage.plans import PlanStore
from tests.conftest import SAMPLE, run_scpln


def plan(engine: Engine, vid: str) -> None:
    run_plan(PlanRequest(input_dir=str(SAMPLE), version_id=vid), storage="both", store=PlanStore(engine))


def copied_versions(database: Path, tmp_path: Path, name: str) -> list[str]:
    """``cp`` the database file alone (no -wal), then list its versions with the sqlite3 shell."""
    copy = tmp_path / name
    subprocess.run(["cp", str(database), str(copy)], check=True)
    assert not Path(f"{copy}-wal").exists()
    if shutil.which("sqlite3"):
        out = subprocess.run(
            ["sqlite3", str(copy), "SELECT version_id FROM plan_versions ORDER BY version_id;"],
            capture_output=True, text=True,
        )  # fmt: skip
        return out.stdout.split() if out.returncode == 0 else []
    with sqlite3.connect(copy) as raw:
        try:
            return [r[0] for r in raw.execute("SELECT version_id FROM plan_versions ORDER BY version_id")]
        except sqlite3.OperationalError:
            return []


def test_after_a_pause_a_plain_cp_of_the_database_file_holds_the_latest_version(
    sqlite_url: str, tmp_path: Path
) -> None:
    db.init_db(sqlite_url)
    engine = db.get_engine(sqlite_url)
    database = db.sqlite_path(sqlite_url)
    plan(engine, "v1")
    reader = sqlite3.connect(database)  # an open snapshot keeps later commits in the WAL
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM plan_versions").fetchone()
    plan(engine, "v2")
    assert "v2" not in copied_versions(database, tmp_path, "before.db"), "v2 is still only in the WAL"
    reader.rollback()
    reader.close()

    state = pause_intake(engine, actor="sre-oncall")
    assert state["checkpoint"]["complete"] and state["paused_in_db"] and not state["open"]
    assert state["paused_by"] == "sre-oncall"
    assert copied_versions(database, tmp_path, "after.db") == ["v1", "v2"]
    copy = f"sqlite:///{tmp_path / 'after.db'}"
    assert PlanStore(db.get_engine(copy)).read_version("v2", "both").documents["mrp.json"]["rows"]
    db.dispose_engines(copy)


def test_run_plan_refuses_while_paused_and_resume_reopens(db_url: str) -> None:
    db.init_db(db_url)
    engine = db.get_engine(db_url)
    pause_intake(engine)
    with pytest.raises(IntakePaused):
        plan(engine, "refused")
    assert PlanStore(engine).list_versions()[1] == 0, "nothing was stored"
    state = resume_intake(engine)
    assert state == {
        "open": True, "paused_in_db": False, "jobs_enabled_env": True, "paused_by": None, "paused_at": None
    }  # fmt: skip
    plan(engine, "accepted")
    assert [v.version_id for v in PlanStore(engine).list_versions()[0]] == ["accepted"]


def test_jobs_enabled_0_keeps_intake_closed_after_resume(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.init_db(sqlite_url)
    engine = db.get_engine(sqlite_url)
    monkeypatch.setenv("JOBS_ENABLED", "0")
    state = resume_intake(engine)
    assert state["open"] is False and state["jobs_enabled_env"] is False and state["paused_in_db"] is False
    with pytest.raises(IntakePaused):
        plan(engine, "refused")


def test_jobs_pause_and_resume_cli(tmp_path: Path) -> None:
    database = tmp_path / "hub.db"
    env = {**os.environ, "SCPLN_DB": str(database), "COLUMNS": "200"}
    env.pop("JOBS_ENABLED", None)

    def scpln(*args: str) -> subprocess.CompletedProcess:
        return run_scpln(env, *args, timeout=120)

    paused = scpln("jobs", "pause", "--actor", "ops")
    assert paused.returncode == 0, paused.stderr
    assert "paused" in paused.stdout and "ops" in paused.stdout
    url = f"sqlite:///{database}"
    assert intake_state(db.get_engine(url))["paused_in_db"] is True
    resumed = scpln("jobs", "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "open" in resumed.stdout
    assert intake_state(db.get_engine(url))["open"] is True
    db.dispose_engines(url)
