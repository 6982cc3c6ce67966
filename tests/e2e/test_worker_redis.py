"""Two ``scpln worker`` processes sharing a Redis queue: exactly-once completion and a SIGKILL mid-write.

Redis comes from ``SCPLN_TEST_REDIS_URL`` (default the machine's 127.0.0.1:6379). Every test uses its
own queue name and deletes its keys afterwards. Without Redis the tests skip, except under ``CI=true``,
where they fail.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from app import db
from app.jobs.queue import get_huey, reset_queue
from app.planning.model import PLAN_ARTIFACTS
from app.planning.samplegen import generate_sample
from app.run_registry import REGISTRY
from app.services.jobs import get_job, submit_plan
from app.services.plans import PlanRequest
from app.storage.plans import PlanStore
from tests.conftest import SAMPLE
from tests.e2e.workers import WorkerProcess

REDIS_URL = os.environ.get("SCPLN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
UNSET = ("JOBS_ENABLED", "PLAN_STORAGE_MODE", "RUNS_DB_MAX_ROWS", "SCPLN_JOB_STALE_SECONDS")


@pytest.fixture
def redis_queue(tmp_path, monkeypatch):
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        message = f"Redis not reachable at {REDIS_URL}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    name = f"scpln_test_{uuid.uuid4().hex[:12]}"
    env = {
        "SCPLN_DB": str(tmp_path / "scpln.db"),
        "SCPLN_QUEUE_URL": REDIS_URL,
        "SCPLN_QUEUE_NAME": name,
        "SCPLN_INPUT_DIR": str(SAMPLE),
        "REGISTRY_BACKEND": "db",
    }
    for var in UNSET:
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_queue()
    db.init_db()
    yield env
    reset_queue()
    db.dispose_engines()
    keys = list(client.scan_iter(match=f"*{name}*"))
    if keys:
        client.delete(*keys)
    client.close()


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def finished(job_id: str) -> dict | None:
    job = get_job(job_id)
    return job if job["status"] in ("succeeded", "failed", "canceled") else None


def test_twenty_async_plans_on_two_workers_each_complete_exactly_once(redis_queue, tmp_path):
    workers = [WorkerProcess(redis_queue, tmp_path, label, unset=UNSET) for label in ("a", "b")]
    try:
        for w in workers:
            w.wait_ready()
        submitted = [submit_plan(PlanRequest(), storage="both") for _ in range(20)]
        jobs = [wait_until(lambda s=s: finished(s["job_id"]), 120, s["job_id"]) for s in submitted]
    finally:
        for w in workers:
            w.stop()

    assert [(j["status"], j["attempts"]) for j in jobs] == [("succeeded", 1)] * 20
    store = PlanStore()
    ready, total = store.list_versions(limit=100, status="ready")
    assert total == 20 and {v.version_id for v in ready} == {s["version_id"] for s in submitted}
    runs = REGISTRY.list()
    assert len(runs) == 20
    assert sorted(r["plan_job_id"] for r in runs) == sorted(s["job_id"] for s in submitted)
    assert {r["run_id"] for r in runs} == {j["run_id"] for j in jobs}
    assert {r["status"] for r in runs} == {"succeeded"}
    assert {r["summary"]["worker"]["pid"] for r in runs} == {w.pid for w in workers}
    huey = get_huey()
    assert (huey.pending_count(), huey.scheduled_count()) == (0, 0)
    assert all(w.proc.returncode == 0 for w in workers)


def test_a_worker_killed_mid_write_leaves_no_half_version_and_the_other_worker_retries_the_job(
    redis_queue, tmp_path
):
    env = {**redis_queue, "SCPLN_JOB_STALE_SECONDS": "3"}
    big = generate_sample(
        tmp_path / "big", families=6, skus_per_family=10, components=60, bom_depth=3, months=24, seed=1
    )
    workers = [WorkerProcess(env, tmp_path, label, unset=UNSET, workers=1) for label in ("a", "b")]
    try:
        for w in workers:
            w.wait_ready()
        submitted = submit_plan(PlanRequest(input_dir=str(big)), storage="both")
        job_id, version_id = submitted["job_id"], submitted["version_id"]
        job = wait_until(lambda: (j := get_job(job_id))["stage"] == "write" and j, 120, "the write stage")
        killed_run = job["run_id"]
        victim_pid = REGISTRY.get(killed_run)["summary"]["worker"]["pid"]
        [victim] = [w for w in workers if w.pid == victim_pid]
        [survivor] = [w for w in workers if w is not victim]
        os.kill(victim.pid, signal.SIGKILL)
        victim.proc.wait(10)

        store = PlanStore()
        assert store.get_version(version_id).status == "running"
        assert store.artifact_names(version_id) == [] and not store.has_rows(version_id)

        final = wait_until(lambda: finished(job_id), 120, "the job to end")
    finally:
        for w in workers:
            w.stop()

    assert victim.proc.returncode == -signal.SIGKILL
    assert (final["status"], final["attempts"]) == ("succeeded", 2), final["error"]
    assert final["run_id"] != killed_run
    assert REGISTRY.get(killed_run)["status"] == "failed"
    rerun = REGISTRY.get(final["run_id"])
    assert (rerun["status"], rerun["summary"]["worker"]["pid"]) == ("succeeded", survivor.pid)
    assert store.get_version(version_id).status == "ready"
    assert sorted(store.artifact_names(version_id)) == sorted(PLAN_ARTIFACTS)
    assert store.read_rows(version_id).documents == store.read_artifacts(version_id).documents
