"""Plan jobs on the SQLite queue with a real huey consumer running in threads of this process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update

from app import db
from app.config import REPO_ROOT, Settings
from app.errors import IntakePaused, JobConflict, JobNotFound, StorageModeConflict
from app.jobs.queue import get_huey, queue_location, reset_queue
from app.jobs.tasks import (
    add_stage_listener,
    claim_job,
    reap_stale_jobs,
    remove_stage_listener,
)
from app.metrics import REGISTRY as METRICS
from app.planning.model import PLAN_ARTIFACTS, InputError
from app.run_registry import REGISTRY, new_run_id
from app.services.execution import run_queued_job
from app.services.jobs import (
    cancel_job,
    get_job,
    job_counts,
    list_jobs,
    retry_job,
    run_plan_now,
    start_inprocess_worker,
    submit_plan,
)
from app.services.plans import PlanRequest
from app.storage import settings as st
from app.storage.plans import PlanStore
from app.storage.schema import plan_jobs, plan_versions
from tests.conftest import ROOT, SAMPLE

ENV = (
    "SCPLN_QUEUE_URL", "SCPLN_QUEUE_NAME", "PLAN_STORAGE_MODE", "JOBS_ENABLED", "REGISTRY_BACKEND",
    "RUNS_DB_MAX_ROWS", "SCPLN_JOB_STALE_SECONDS",
)  # fmt: skip


def _use_database(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SCPLN_DB", value)
    monkeypatch.setenv("SCPLN_INPUT_DIR", str(SAMPLE))
    reset_queue()
    db.init_db()


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh SQLite database (and so a fresh queue file next to it)."""
    _use_database(monkeypatch, str(tmp_path / "scpln.db"))
    yield tmp_path / "scpln.db"
    reset_queue()
    db.dispose_engines()


@pytest.fixture
def any_db(db_url: str, monkeypatch: pytest.MonkeyPatch):
    """The same test on SQLite and PostgreSQL (no queue involved)."""
    _use_database(monkeypatch, db_url)
    yield db_url
    reset_queue()


@pytest.fixture
def worker(hub):
    handle = start_inprocess_worker(workers=2)
    yield handle
    handle.stop(timeout=10)


@pytest.fixture
def hold_at():
    """Hold every job that reaches ``stage`` until the test releases it (a stage boundary listener)."""
    state = {"stage": None, "reached": threading.Event(), "release": threading.Event(), "seen": []}

    def listener(job_id: str, stage: str) -> None:
        state["seen"].append(stage)
        if stage == state["stage"]:
            state["reached"].set()
            state["release"].wait(20)

    add_stage_listener(listener)
    yield state
    state["release"].set()
    remove_stage_listener(listener)


def wait_finished(job_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get_job(job_id)
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {get_job(job_id)}")


def version_status(version_id: str) -> str:
    return PlanStore().get_version(version_id).status


def broken_input_set(tmp_path: Path) -> Path:
    folder = tmp_path / "broken"
    shutil.copytree(SAMPLE, folder)
    path = folder / "demand_family.csv"
    lines = path.read_text().splitlines()
    family, period, _ = lines[1].split(",")
    lines[1] = f"{family},{period},-5"
    path.write_text("\n".join(lines) + "\n")
    return folder


def stage_count(stage: str) -> float:
    return METRICS.get_sample_value("job_duration_seconds_count", {"stage": stage}) or 0.0


# --- the happy path -------------------------------------------------------------------------------


def test_submitted_plan_goes_queued_running_succeeded_and_links_job_version_and_run(hub):
    mrp_before = stage_count("mrp")
    submitted = submit_plan(PlanRequest(note="nightly"), trigger="test")
    job_id, version_id = submitted["job_id"], submitted["version_id"]
    assert submitted["status_url"] == f"/jobs/{job_id}"
    queued = get_job(job_id)
    assert (queued["status"], queued["progress"], queued["attempts"]) == ("queued", 0.0, 0)
    assert version_status(version_id) == "running"
    assert Path(f"{hub}.queue.db").exists()

    handle = start_inprocess_worker(workers=2)
    try:
        job = wait_finished(job_id)
    finally:
        handle.stop(timeout=10)

    assert job["status"] == "succeeded", job["error"]
    assert (job["progress"], job["stage"], job["attempts"], job["trigger"]) == (100.0, "done", 1, "test")
    assert job["submitted_at"] <= job["started_at"] <= job["heartbeat_at"] <= job["finished_at"]
    assert version_status(version_id) == "ready"
    assert sorted(PlanStore().artifact_names(version_id)) == sorted(PLAN_ARTIFACTS)
    run = REGISTRY.get(job["run_id"])
    assert (run["plan_version_id"], run["plan_job_id"], run["status"]) == (version_id, job_id, "succeeded")
    assert run["summary"]["kpis"]["demand_total"] > 0
    assert run["summary"]["storage"]["mode"] == "both"
    assert {"aggregate", "mrp", "capacity", "write"} <= set(run["summary"]["timings"]["stages"])
    assert run["started_at"] <= run["finished_at"]
    assert stage_count("mrp") == mrp_before + 1
    jobs, total = list_jobs(status="succeeded")
    assert (total, [j["job_id"] for j in jobs]) == (1, [job_id])


def test_run_plan_now_plans_in_the_caller_with_the_same_bookkeeping(any_db):
    result = run_plan_now(PlanRequest(version_id="now-1"), storage="db")
    assert (result["version_id"], result["status"]) == ("now-1", "ready")
    assert result["storage"]["mode"] == "db" and result["storage"]["series_rows"] > 0
    assert result["storage"]["artifacts"] == [] and result["storage"]["kpi_rows"] > 0
    assert result["kpis"]["fill_rate"] > 0
    job = get_job(result["job_id"])
    assert (job["status"], job["version_id"], job["run_id"]) == ("succeeded", "now-1", result["run_id"])
    run = REGISTRY.get(result["run_id"])
    assert (run["plan_job_id"], run["plan_version_id"], run["status"]) == (
        job["job_id"],
        "now-1",
        "succeeded",
    )
    assert job_counts()["succeeded"] == 1


def test_run_plan_now_reports_bad_input_after_recording_the_failure(hub, tmp_path):
    with pytest.raises(InputError) as caught:
        run_plan_now(PlanRequest(input_dir=str(broken_input_set(tmp_path)), version_id="bad-now"))
    [job], _ = list_jobs()
    assert job["status"] == "failed"
    assert job["error"]["detail"] == caught.value.as_dicts()
    assert version_status("bad-now") == "failed"


# --- refusals up front ----------------------------------------------------------------------------


def test_paused_intake_refuses_submissions_and_registers_nothing(hub, monkeypatch):
    engine = PlanStore().engine
    st.set_value(engine, st.PAUSED, "1")
    with pytest.raises(IntakePaused) as caught:
        submit_plan(PlanRequest(version_id="p-1"))
    assert caught.value.status == 503
    with pytest.raises(IntakePaused):
        run_plan_now(PlanRequest(version_id="p-2"))
    st.set_value(engine, st.PAUSED, None)
    monkeypatch.setenv("JOBS_ENABLED", "0")
    with pytest.raises(IntakePaused):
        submit_plan(PlanRequest(version_id="p-3"))
    assert list_jobs() == ([], 0)
    assert PlanStore().list_versions()[1] == 0


def test_a_pinned_storage_mode_refuses_another_mode_and_registers_nothing(hub):
    st.set_storage_pin(PlanStore().engine, "files")
    with pytest.raises(StorageModeConflict) as caught:
        submit_plan(PlanRequest(), storage="db")
    assert caught.value.status == 409
    assert list_jobs() == ([], 0)
    assert PlanStore().list_versions()[1] == 0


def test_unknown_job_is_not_found(hub):
    with pytest.raises(JobNotFound) as caught:
        get_job("j-missing")
    assert caught.value.status == 404
    for action in (cancel_job, retry_job):
        with pytest.raises(JobNotFound):
            action("j-missing")


# --- cancel and retry -----------------------------------------------------------------------------


def test_canceling_a_queued_job_means_it_never_runs(hub):
    doomed = submit_plan(PlanRequest())
    job = cancel_job(doomed["job_id"])
    assert job["status"] == "canceled"
    assert version_status(doomed["version_id"]) == "failed"
    later = submit_plan(PlanRequest())
    handle = start_inprocess_worker(workers=1)
    try:
        assert wait_finished(later["job_id"])["status"] == "succeeded"
    finally:
        handle.stop(timeout=10)
    job = get_job(doomed["job_id"])
    assert (job["status"], job["attempts"], job["run_id"]) == ("canceled", 0, None)
    assert PlanStore().artifact_names(doomed["version_id"]) == []


def test_canceling_a_running_job_stops_at_the_next_stage_and_writes_nothing(worker, hold_at):
    hold_at["stage"] = "mrp"
    submitted = submit_plan(PlanRequest(), storage="both")
    assert hold_at["reached"].wait(20)
    asked = cancel_job(submitted["job_id"])
    assert (asked["status"], asked["cancel_requested"]) == ("running", True)
    hold_at["release"].set()
    job = wait_finished(submitted["job_id"])
    assert job["status"] == "canceled"
    assert hold_at["seen"][-1] == "mrp"  # the next boundary (capacity) stopped it
    store = PlanStore()
    assert version_status(submitted["version_id"]) == "failed"
    assert store.artifact_names(submitted["version_id"]) == []
    assert not store.has_rows(submitted["version_id"])
    assert REGISTRY.get(job["run_id"])["status"] == "canceled"


def test_finished_jobs_can_be_neither_canceled_nor_retried_if_they_succeeded(hub):
    done = run_plan_now(PlanRequest())
    with pytest.raises(JobConflict) as caught:
        cancel_job(done["job_id"])
    assert caught.value.status == 409
    with pytest.raises(JobConflict):
        retry_job(done["job_id"])


def test_bad_input_fails_the_job_with_every_problem_and_retry_replans_under_a_new_version(worker, tmp_path):
    folder = broken_input_set(tmp_path)
    submitted = submit_plan(PlanRequest(input_dir=str(folder), version_id="bad-1"))
    job = wait_finished(submitted["job_id"])
    assert job["status"] == "failed"
    assert job["error"]["error"] == "invalid input"
    [problem] = [p for p in job["error"]["detail"] if p["file"] == "demand_family.csv"]
    assert (problem["row"], problem["column"]) == (2, "demand")
    assert version_status("bad-1") == "failed"
    assert REGISTRY.get(job["run_id"])["status"] == "failed"

    shutil.copy(SAMPLE / "demand_family.csv", folder / "demand_family.csv")
    again = retry_job(submitted["job_id"])
    assert again["retry_of"] == submitted["job_id"]
    assert again["job_id"] != submitted["job_id"] and again["version_id"] != "bad-1"
    retried = wait_finished(again["job_id"])
    assert (retried["status"], retried["trigger"]) == ("succeeded", "retry")
    assert retried["request"]["input_dir"] == str(folder)
    assert version_status(again["version_id"]) == "ready"
    assert version_status("bad-1") == "failed"


# --- exactly once, heartbeat, reaper, pause -------------------------------------------------------


def test_a_queued_job_is_claimed_by_exactly_one_of_many_contenders(hub):
    submitted = submit_plan(PlanRequest())
    engine = PlanStore().engine
    results: list = []
    start = threading.Barrier(8)

    def contend() -> None:
        start.wait()
        results.append(claim_job(engine, submitted["job_id"], new_run_id()))

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert get_job(submitted["job_id"])["run_id"] == winners[0]["run_id"]
    assert get_job(submitted["job_id"])["attempts"] == 1


def test_a_running_job_keeps_its_heartbeat_fresh_and_its_own_worker_never_reaps_it(hub, hold_at, monkeypatch):
    monkeypatch.setenv("SCPLN_JOB_STALE_SECONDS", "0.5")  # heartbeat every 0.1 s, reaper every 0.25 s
    handle = start_inprocess_worker(workers=1)
    try:
        hold_at["stage"] = "allocate"
        submitted = submit_plan(PlanRequest())
        assert hold_at["reached"].wait(20)
        first = get_job(submitted["job_id"])["heartbeat_at"]
        deadline = time.monotonic() + 10
        while get_job(submitted["job_id"])["heartbeat_at"] == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert get_job(submitted["job_id"])["heartbeat_at"] > first
        time.sleep(1.0)  # several stale windows and reaper passes while the job is held
        assert get_job(submitted["job_id"])["status"] == "running"
        hold_at["release"].set()
        job = wait_finished(submitted["job_id"])
    finally:
        handle.stop(timeout=10)
    assert (job["status"], job["attempts"]) == ("succeeded", 1)


def _stale_claim(job_id: str, attempts: int) -> str:
    """What a worker that claimed the job and then died leaves behind."""
    engine = PlanStore().engine
    run_id = new_run_id()
    job = claim_job(engine, job_id, run_id)
    REGISTRY.put({"run_id": run_id, "plan_version_id": job["version_id"], "plan_job_id": job_id})
    with engine.begin() as conn:
        conn.execute(
            update(plan_jobs)
            .where(plan_jobs.c.job_id == job_id)
            .values(heartbeat_at=db.now_ms() - 60_000, attempts=attempts)
        )
    return run_id


def test_the_reaper_fails_a_stale_job_on_its_last_attempt_with_its_version_and_run(any_db):
    store = PlanStore()
    engine = store.engine
    job_ids = []
    for vid in ("stale-1", "fresh-1"):  # registered without a queue: the reaper needs none here
        store.begin_version(vid, params={}, mode="both")
        job_id = f"j-{vid}"
        with engine.begin() as conn:
            conn.execute(
                plan_jobs.insert().values(
                    job_id=job_id,
                    version_id=vid,
                    status="queued",
                    submitted_at=db.now_ms(),
                    payload_json="{}",
                )
            )
        job_ids.append(job_id)
    dead_run = _stale_claim(job_ids[0], attempts=2)
    claim_job(engine, job_ids[1], new_run_id())  # alive: heartbeat now

    actions = reap_stale_jobs(stale=30)

    assert [(a["job_id"], a["status"]) for a in actions] == [(job_ids[0], "failed")]
    job = get_job(job_ids[0])
    assert job["status"] == "failed" and "heartbeat" in job["error"]["error"]
    assert job["finished_at"] is not None
    assert version_status("stale-1") == "failed"
    assert REGISTRY.get(dead_run)["status"] == "failed"
    assert get_job(job_ids[1])["status"] == "running"
    assert version_status("fresh-1") == "running"
    assert reap_stale_jobs(stale=30) == []


def test_the_reaper_requeues_a_stale_job_once_and_a_worker_completes_it(hub):
    submitted = submit_plan(PlanRequest())
    huey = get_huey()
    huey.flush()  # the task a dead worker had already taken off the queue
    dead_run = _stale_claim(submitted["job_id"], attempts=1)

    [action] = reap_stale_jobs(stale=30)
    assert action["status"] == "queued"
    assert get_job(submitted["job_id"])["status"] == "queued"
    assert huey.pending_count() == 1

    handle = start_inprocess_worker(workers=1)
    try:
        job = wait_finished(submitted["job_id"])
    finally:
        handle.stop(timeout=10)
    assert (job["status"], job["attempts"]) == ("succeeded", 2)
    assert job["run_id"] != dead_run
    assert REGISTRY.get(dead_run)["status"] == "failed"
    assert version_status(submitted["version_id"]) == "ready"


def test_a_task_that_starts_while_paused_goes_back_on_the_schedule_without_running(hub):
    submitted = submit_plan(PlanRequest())
    huey = get_huey()
    engine = PlanStore().engine
    st.set_value(engine, st.PAUSED, "1")
    huey.flush()  # the consumer took the task off the queue ...
    run_queued_job(submitted["job_id"])  # ... and runs it while intake is paused
    assert get_job(submitted["job_id"])["status"] == "queued"
    # one delayed task (huey parks it on its schedule when a worker dequeues it early)
    assert huey.pending_count() + huey.scheduled_count() == 1
    [task] = huey.pending()
    assert task.args == (submitted["job_id"],) and task.eta is not None


def test_a_task_that_finds_the_database_gone_goes_back_on_the_schedule_and_runs_later(hub):
    """The task is a job's only place on the queue: when the database does not answer before the
    claim (a PostgreSQL restart; here the SQLite file moved away), the job waits and is tried again,
    instead of staying queued for ever."""
    submitted = submit_plan(PlanRequest())
    huey = get_huey()
    huey.flush()  # the consumer took the task off the queue ...
    db.dispose_engines()
    hub.rename(hub.with_suffix(".away"))  # ... and the database is not there when it runs
    run_queued_job(submitted["job_id"])
    [task] = huey.pending()
    assert task.args == (submitted["job_id"],) and task.eta is not None
    db.dispose_engines()
    hub.unlink()
    hub.with_suffix(".away").rename(hub)
    assert get_job(submitted["job_id"])["status"] == "queued"
    huey.flush()
    run_queued_job(submitted["job_id"])
    assert get_job(submitted["job_id"])["status"] == "succeeded"


def test_a_running_job_finishes_when_intake_pauses_meanwhile(worker, hold_at):
    hold_at["stage"] = "mrp"
    submitted = submit_plan(PlanRequest())
    assert hold_at["reached"].wait(20)
    st.set_value(PlanStore().engine, st.PAUSED, "1")
    hold_at["release"].set()
    job = wait_finished(submitted["job_id"])
    assert job["status"] == "succeeded"
    with pytest.raises(IntakePaused):
        submit_plan(PlanRequest())


# --- where the queue lives ------------------------------------------------------------------------


def test_the_queue_file_sits_next_to_a_sqlite_database_and_in_a_postgresql_databases_data_directory(tmp_path):
    assert queue_location(Settings(scpln_db=str(tmp_path / "hub.db"))) == f"{tmp_path / 'hub.db'}.queue.db"
    pg = Settings(scpln_db="postgresql://postgres@127.0.0.1:5432/test")
    other = Settings(scpln_db="postgresql://postgres@127.0.0.1:5432/other")
    assert queue_location(pg) == str(REPO_ROOT / "data" / "postgresql-127.0.0.1-5432-test" / "queue.db")
    assert queue_location(other) != queue_location(pg)  # two databases never share a queue
    home = Settings(scpln_db="postgresql://postgres@127.0.0.1:5432/test", scpln_home=str(tmp_path))
    assert queue_location(home) == str(tmp_path / "queue.db")
    redis = Settings(scpln_db=str(tmp_path / "hub.db"), scpln_queue_url="redis://127.0.0.1:6379/3")
    assert queue_location(redis) == "redis://127.0.0.1:6379/3"
    with pytest.raises(ValueError, match="redis://"):
        queue_location(Settings(scpln_queue_url="http://example.invalid"))


def test_versions_registered_by_jobs_keep_their_catalogue_row_in_every_state(hub):
    submitted = submit_plan(PlanRequest(version_id="cat-1", note="kept"))
    with PlanStore().engine.connect() as conn:
        row = (
            conn.execute(select(plan_versions).where(plan_versions.c.version_id == "cat-1")).mappings().one()
        )
    assert (row["status"], row["note"], row["storage_mode"]) == ("running", "kept", "both")
    cancel_job(submitted["job_id"])
    assert version_status("cat-1") == "failed"


def test_scpln_jobs_list_shows_the_newest_jobs_with_their_state(hub):
    done = run_plan_now(PlanRequest())
    waiting = submit_plan(PlanRequest())
    shown = subprocess.run(
        [sys.executable, "-m", "app.cli", "jobs", "list", "--limit", "5"], cwd=ROOT, capture_output=True,
        text=True, timeout=60, env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    [newest] = [line for line in lines if waiting["job_id"] in line]
    [oldest] = [line for line in lines if done["job_id"] in line]
    assert "queued" in newest and "succeeded" in oldest and "100%" in oldest
    assert lines.index(newest) < lines.index(oldest)
    with pytest.raises(ValueError, match="status must be one of"):
        list_jobs(status="lost")
