"""Intake pause across worker restarts: nothing queued is lost, nothing runs until intake reopens.

Real ``scpln worker`` processes on the default SQLite queue (the file next to the database).
"""

from __future__ import annotations

import time

import pytest

from app import db
from app.errors import IntakePaused
from app.jobs.queue import get_huey, reset_queue
from app.services.jobs import get_job, list_jobs, run_plan_now, submit_plan
from app.services.plans import PlanRequest
from app.storage import settings as st
from app.storage.plans import PlanStore
from tests.conftest import SAMPLE
from tests.e2e.workers import WorkerProcess

UNSET = (
    "JOBS_ENABLED", "PLAN_STORAGE_MODE", "SCPLN_QUEUE_URL", "SCPLN_QUEUE_NAME", "REGISTRY_BACKEND",
    "RUNS_DB_MAX_ROWS", "SCPLN_JOB_STALE_SECONDS",
)  # fmt: skip


@pytest.fixture
def hub(tmp_path, monkeypatch):
    env = {"SCPLN_DB": str(tmp_path / "scpln.db"), "SCPLN_INPUT_DIR": str(SAMPLE)}
    for var in UNSET:
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_queue()
    db.init_db()
    yield env
    reset_queue()
    db.dispose_engines()


def wait_all_finished(job_ids: list[str], timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = [get_job(j) for j in job_ids]
        if all(j["status"] in ("succeeded", "failed", "canceled") for j in jobs):
            return jobs
        time.sleep(0.05)
    raise AssertionError(f"jobs did not finish: {[get_job(j)['status'] for j in job_ids]}")


def assert_untouched(job_ids: list[str]) -> None:
    """Still queued, never attempted, and their tasks still on the queue."""
    assert [(get_job(j)["status"], get_job(j)["attempts"]) for j in job_ids] == [("queued", 0)] * len(job_ids)
    assert get_huey().pending_count() == len(job_ids)


def test_jobs_queued_before_a_pause_survive_a_worker_restart_and_run_after_resume(hub, tmp_path, monkeypatch):
    queued = [submit_plan(PlanRequest())["job_id"] for _ in range(3)]

    # The runbook's first step: the worker (and the API) restarted with JOBS_ENABLED=0.
    monkeypatch.setenv("JOBS_ENABLED", "0")
    with pytest.raises(IntakePaused):
        submit_plan(PlanRequest())
    monkeypatch.delenv("JOBS_ENABLED")
    disabled = WorkerProcess({**hub, "JOBS_ENABLED": "0"}, tmp_path, "disabled", unset=UNSET)
    try:
        disabled.wait_for("intake paused")
        time.sleep(1.0)  # a paused worker keeps polling the flag and takes nothing
        assert_untouched(queued)
    finally:
        assert disabled.stop() == 0

    # `scpln jobs pause`: the pause stored in the database holds across the restart.
    engine = PlanStore().engine
    st.set_value(engine, st.PAUSED, "1")
    with pytest.raises(IntakePaused) as refused:
        submit_plan(PlanRequest())
    assert refused.value.status == 503
    with pytest.raises(IntakePaused):
        run_plan_now(PlanRequest())
    assert list_jobs()[1] == 3

    restarted = WorkerProcess(hub, tmp_path, "restarted", unset=UNSET)
    try:
        restarted.wait_for("intake paused")
        assert_untouched(queued)
        st.set_value(engine, st.PAUSED, None)  # `scpln jobs resume`
        jobs = wait_all_finished(queued)
    finally:
        assert restarted.stop() == 0

    assert [(j["status"], j["attempts"]) for j in jobs] == [("succeeded", 1)] * 3
    assert {PlanStore().get_version(j["version_id"]).status for j in jobs} == {"ready"}
    assert get_huey().pending_count() == 0
