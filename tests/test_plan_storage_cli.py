"""Files (legacy artifact) storage through the ``scpln`` command line, checked with the ``sqlite3`` client
the way the operators' runbook checks it (runbook 4.6: this file's
``test_plan_aggregate_storage_files_only`` is part of the rollback verification). SQLite only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SCRIPT = Path(sys.executable).with_name("scpln")
SCPLN = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "app.cli"]
REPOSITORY_TABLES = ("plan_series", "plan_kpis", "plan_overrides", "plan_override_events")


def scpln(*args: str, database: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("PLAN_STORAGE_MODE", "JOBS_ENABLED")}
    return subprocess.run(
        [*SCPLN, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**base, "SCPLN_DB": str(database), "COLUMNS": "200", **env},
    )


def sqlite3(database: Path, query: str) -> str:
    res = subprocess.run(["sqlite3", str(database), query], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def repository_row_counts(database: Path) -> dict[str, int]:
    return {t: int(sqlite3(database, f"SELECT COUNT(*) FROM {t};")) for t in REPOSITORY_TABLES}


def test_plan_aggregate_storage_files_only(tmp_path: Path) -> None:
    database = tmp_path / "scpln.db"

    run = scpln("plan", "run", "--storage", "files", "--version-id", "files-only-1", database=database)

    assert run.returncode == 0, run.stderr
    assert "mode files" in run.stdout
    names = sqlite3(
        database, "SELECT name FROM plan_artifacts WHERE version_id='files-only-1' ORDER BY name;"
    )
    assert "aggregate.json" in names.splitlines()
    aggregate = sqlite3(
        database,
        "SELECT json_text FROM plan_artifacts WHERE version_id='files-only-1' AND name='aggregate.json';",
    )
    assert '"version_id":"files-only-1"' in aggregate and '"rows":[{' in aggregate
    assert (
        sqlite3(database, "SELECT storage_mode FROM plan_versions WHERE version_id='files-only-1';")
        == "files"
    )
    assert repository_row_counts(database) == dict.fromkeys(REPOSITORY_TABLES, 0)

    show = scpln("plan", "show", "files-only-1", database=database)

    assert show.returncode == 0, show.stderr
    assert "storage=files" in show.stdout and "PlanRepository rows: no" in show.stdout
    assert "aggregate.json" in show.stdout and "fill_rate" in show.stdout


def test_plan_storage_mode_env_files_applies_without_a_request(tmp_path: Path) -> None:
    database = tmp_path / "scpln.db"

    run = scpln("plan", "run", "--version-id", "env-files-1", database=database, PLAN_STORAGE_MODE="files")

    assert run.returncode == 0, run.stderr
    assert sqlite3(database, "SELECT COUNT(*) FROM plan_artifacts WHERE version_id='env-files-1';") == "7"
    assert repository_row_counts(database) == dict.fromkeys(REPOSITORY_TABLES, 0)


def test_a_files_pin_refuses_a_db_request_and_stores_nothing(tmp_path: Path) -> None:
    database = tmp_path / "scpln.db"
    assert scpln("storage", "mode", "files", database=database).returncode == 0

    run = scpln("plan", "run", "--storage", "db", "--version-id", "refused-1", database=database)

    assert run.returncode == 1 and "pinned" in run.stderr and "Traceback" not in run.stderr
    assert sqlite3(database, "SELECT COUNT(*) FROM plan_versions;") == "0"
    assert repository_row_counts(database) == dict.fromkeys(REPOSITORY_TABLES, 0)
