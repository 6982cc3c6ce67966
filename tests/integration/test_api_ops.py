"""Health, metrics, runs, jobs and the operations routes of the HTTP API on a real SQLite file."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app import db
from app.ops.backup import backup_database, verify_sqlite_backup
from app.storage import settings as st
from app.storage.plans import PlanStore

warnings.filterwarnings("ignore", message=".*httpx2.*")
from fastapi.testclient import TestClient  # noqa: E402

from app.web import create_app  # noqa: E402

ENV_CLEARED = ("PLAN_STORAGE_MODE", "SCPLN_API_TOKENS", "JOBS_ENABLED", "SCPLN_INPUT_DIR", "REGISTRY_BACKEND")


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory):
    """An empty database at the schema head, copied for each test (a migration per test is slow)."""
    path = tmp_path_factory.mktemp("template") / "hub.db"
    db.init_db(f"sqlite:///{path}")
    db.dispose_engines(f"sqlite:///{path}")
    return path


@pytest.fixture
def hub(tmp_path, monkeypatch, empty_db):
    (tmp_path / "data").mkdir()
    shutil.copy(empty_db, tmp_path / "data" / "hub.db")
    url = f"sqlite:///{tmp_path / 'data' / 'hub.db'}"
    monkeypatch.setenv("SCPLN_DB", url)
    for name in ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    db.init_db(url)
    with TestClient(create_app()) as client:
        yield client
    db.dispose_engines(url)


def samples(response) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus text page as (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


# --- /healthz and /metrics -----------------------------------------------------------------------


def test_healthz_reports_database_mode_pin_intake_maintenance_and_revision(hub):
    body = hub.get("/healthz").json()
    free = body.pop("disk_free_bytes")
    assert isinstance(free, int) and free > 8 * 2**20  # free space beside the SQLite file
    assert body == {
        "status": "ok", "db": "ok", "storage_mode": "both", "storage_pin": None, "jobs_enabled": True,
        "maintenance": False, "schema_revision": db.head_revision(),
    }  # fmt: skip
    st.set_storage_pin(PlanStore().engine, "files")
    st.set_value(PlanStore().engine, st.PAUSED, "1")
    body = hub.get("/healthz").json()
    assert (body["storage_mode"], body["storage_pin"], body["jobs_enabled"]) == ("files", "files", False)


def test_healthz_is_503_when_the_database_is_unreachable(tmp_path, monkeypatch):
    monkeypatch.setenv("SCPLN_DB", "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    with TestClient(create_app()) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable" and response.json()["db"] == "error"


def test_metrics_refresh_database_gauges_at_scrape(hub):
    assert hub.post("/plans/integrated/run?storage=db").status_code == 201
    engine = PlanStore().engine
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT COUNT(*) FROM plan_series")).scalar_one()
    st.set_value(engine, "last_check", json.dumps({"ok": False, "problems": 3, "at": 1, "versions": 1}))
    st.set_value(engine, st.MAINTENANCE, "1")
    st.set_storage_pin(engine, "files")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO plan_jobs (job_id, status, submitted_at) VALUES ('q1','queued',1)"))
    response = hub.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    found = samples(response)
    assert found[("plan_series_rows", ())] == rows > 0
    assert found[("plan_db_size_bytes", ())] > 0
    assert found[("plan_integrity_failures", ())] == 3
    assert found[("jobs_queued", ())] == 1 and found[("jobs_running", ())] == 0
    assert found[("scpln_maintenance", ())] == 1 and found[("scpln_jobs_enabled", ())] == 1
    assert found[("scpln_storage_mode", (("mode", "files"),))] == 1
    assert found[("scpln_storage_mode", (("mode", "both"),))] == 0
    assert found[("plans_created_total", (("mode", "db"),))] >= 1
    assert found[("plan_db_write_total", (("mode", "db"),))] >= 1


def test_http_latency_is_labelled_by_route_template_not_raw_path(hub):
    hub.get("/plans/some-version-xyz")
    hub.get("/definitely/not/a/route")
    page = hub.get("/metrics").text
    assert 'route="/plans/{version_id}"' in page and "some-version-xyz" not in page
    assert 'route="unmatched"' in page and "definitely" not in page


# --- runs and jobs -------------------------------------------------------------------------------


def test_a_sync_run_is_listed_in_runs_and_jobs(hub):
    created = hub.post("/plans/integrated/run?storage=files").json()
    runs = hub.get("/runs").json()
    assert runs["total"] == 1 and runs["items"][0]["run_id"] == created["run_id"]
    run = hub.get(f"/runs/{created['run_id']}").json()
    assert run["plan_version_id"] == created["version_id"] and run["plan_job_id"] == created["job_id"]
    jobs = hub.get("/jobs").json()
    assert jobs["total"] == 1 and jobs["items"][0]["job_id"] == created["job_id"]
    job = hub.get(f"/jobs/{created['job_id']}").json()
    assert job["status"] == "succeeded" and job["version_id"] == created["version_id"]
    assert hub.get("/jobs?status=failed").json()["total"] == 0


def test_unknown_runs_and_jobs_are_404_and_bad_ids_422(hub):
    assert hub.get("/runs/r-none").status_code == 404
    assert hub.get("/jobs/j-none").status_code == 404
    assert hub.post("/jobs/j-none/cancel").status_code == 404
    assert hub.post("/jobs/j-none/retry").status_code == 404
    assert hub.get("/jobs/..%2Fx").status_code in (404, 422)
    assert hub.get("/jobs/-x").status_code == 422
    assert hub.get("/jobs?status=lost").status_code == 422
    assert hub.get("/runs?limit=0").status_code == 422


def test_queued_job_can_be_canceled_and_then_retried(hub):
    accepted = hub.post("/plans/integrated/run?async=true&storage=files").json()
    canceled = hub.post(f"/jobs/{accepted['job_id']}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert hub.post(f"/jobs/{accepted['job_id']}/cancel").status_code == 409
    retried = hub.post(f"/jobs/{accepted['job_id']}/retry").json()
    assert retried["retry_of"] == accepted["job_id"] and retried["job_id"] != accepted["job_id"]
    assert hub.get(f"/jobs/{retried['job_id']}").json()["status"] == "queued"


# --- operations ----------------------------------------------------------------------------------


def test_storage_mode_pin_set_show_and_clear(hub):
    assert hub.get("/ops/storage-mode").json() == {"mode": "both", "pin": None, "default": "both"}
    assert hub.put("/ops/storage-mode", json={"mode": "files"}).json() == {
        "mode": "files", "pin": "files", "default": "both",
    }  # fmt: skip
    assert hub.post("/plans/integrated/run?storage=both").status_code == 409
    assert hub.put("/ops/storage-mode", json={"mode": None}).json()["pin"] is None
    for bad in ({"mode": "disk"}, {}, {"mode": "db", "extra": 1}):
        assert hub.put("/ops/storage-mode", json=bad).status_code == 422
    assert hub.get("/ops/storage-mode").json()["pin"] is None


def test_pause_stops_intake_and_resume_reopens_it(hub):
    paused = hub.post("/ops/jobs/pause")
    assert paused.status_code == 200 and paused.json() == {"jobs_enabled": False, "paused": True}
    assert hub.post("/plans/integrated/run").json() == {"error": "plan intake paused"}
    assert hub.get("/healthz").json()["jobs_enabled"] is False
    assert hub.post("/ops/jobs/resume").json() == {"jobs_enabled": True, "paused": False}
    assert hub.post("/plans/integrated/run?storage=files").status_code == 201


def test_maintenance_flag_shows_in_health_and_metrics(hub):
    assert hub.put("/ops/maintenance", json={"enabled": True}).json() == {"maintenance": True}
    assert hub.get("/healthz").json()["maintenance"] is True
    assert samples(hub.get("/metrics"))[("scpln_maintenance", ())] == 1
    assert hub.put("/ops/maintenance", json={"enabled": False}).json() == {"maintenance": False}
    assert hub.put("/ops/maintenance", json={"enabled": "sometimes"}).status_code == 422


def test_check_reports_a_healthy_database_and_a_damaged_version(hub):
    hub.post("/plans/integrated/run?storage=both", json={"version_id": "c1"})
    report = hub.post("/ops/check").json()
    assert report["ok"] is True and report["versions_checked"] == 1
    with PlanStore().engine.begin() as conn:
        conn.execute(text("DELETE FROM plan_series WHERE version_id = 'c1' AND level = 'det'"))
    damaged = hub.post("/ops/check", json={"version_id": "c1"}).json()
    assert damaged["ok"] is False and damaged["problems"]
    assert hub.post("/ops/check", json={"version_id": "ghost"}).status_code == 404
    assert hub.post("/ops/check", json={"version_id": "../x"}).status_code == 422


def test_backup_lands_beside_the_database_and_lists_show_only_its_backups(hub, tmp_path):
    other = tmp_path / "other" / "other.db"  # another database with a backup of its own
    other.parent.mkdir()
    db.init_db(f"sqlite:///{other}")
    theirs = backup_database(engine=db.get_engine(f"sqlite:///{other}"), prefix="plan_db_other")
    db.dispose_engines(f"sqlite:///{other}")
    hub.post("/plans/integrated/run?storage=files")

    made = hub.post("/ops/backup")

    assert made.status_code == 200, made.text
    path = Path(made.json()["path"])
    assert path.parent == tmp_path / "backup"  # SCPLN_DB is tmp_path/data/hub.db
    assert path.is_file() and path.name.startswith("plan_db_") and made.json()["bytes"] == path.stat().st_size
    assert verify_sqlite_backup(path) is None
    listed = hub.get("/ops/backups").json()["items"]
    assert [item["path"] for item in listed] == [str(path)]  # not the other database's, not the repository's
    page = hub.get("/ui/ops")
    assert page.status_code == 200 and path.name in page.text and theirs.name not in page.text
