"""Writers that contend for one SQLite file never see "database is locked" (SPEC 4.1, 5.1).

Long writes (whole versions, repairs) take their turn across processes before SQLite's own lock
(``app.storage.db.write_turn``), so they queue instead of running out SQLite's busy timeout; a wait
past its bound, and a lock held by something else past the busy timeout, end as ``StorageBusy`` (503
with a message), never a 500, with nothing of the request written. Real processes on a real file;
each long write holds SQLite's write lock longer than the busy timeout, so without the turn the second
writer would be refused.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import warnings

import pytest
from sqlalchemy import func, select

from app import db
from app.storage.plans import PlanStore
from app.storage.schema import plan_artifacts, plan_series
from tests.conftest import ROOT, SAMPLE

warnings.filterwarnings("ignore", message=".*httpx2.*")
from fastapi.testclient import TestClient  # noqa: E402

from app.api.app import create_app  # noqa: E402

#: Plans the sample and writes it in ``both`` mode, holding the transaction open ``hold`` seconds just
#: before the commit (SQLite's write lock is held then); prints the outcome.
WRITER = """
import sys, time
from app import db
from app.errors import ScplnError
from app.planning.pipeline import plan_input_set
from app.storage.plans import PlanStore

url, input_dir, version_id, hold = sys.argv[1:5]
content = plan_input_set(input_dir, version_id=version_id)
print("PLANNED", flush=True)
sys.stdin.readline()  # every writer starts its write at once
try:
    PlanStore(db.get_engine(url)).write_version(
        content, mode="both", before_commit=lambda conn: time.sleep(float(hold))
    )
except ScplnError as exc:
    print(f"REFUSED {type(exc).__name__} {exc.status}: {exc}", flush=True)
    sys.exit(3)
print("STORED", flush=True)
"""


def start_writers(url: str, ids: list[str], hold: float, env: dict[str, str]) -> list[tuple[str, str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, str(SAMPLE), vid, str(hold)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for vid in ids
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "PLANNED", proc.stderr.read()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert "Traceback" not in err, err
        results.append((out.strip(), err))
    return results


def content_count(store: PlanStore, version_id: str) -> int:
    with store.engine.connect() as conn:
        return sum(
            conn.execute(select(func.count()).select_from(t).where(t.c.version_id == version_id)).scalar_one()
            for t in (plan_series, plan_artifacts)
        )


def test_long_writes_from_several_processes_queue_instead_of_failing(sqlite_url: str) -> None:
    db.init_db(sqlite_url)
    ids = ["queue-a", "queue-b", "queue-c"]
    # each write holds SQLite's lock 1.5 s; SQLite alone would refuse a waiter after 0.5 s
    results = start_writers(sqlite_url, ids, 1.5, {"SCPLN_SQLITE_BUSY_MS": "500"})

    assert [out.splitlines()[-1] for out, _ in results] == ["STORED"] * 3, results
    store = PlanStore(db.get_engine(sqlite_url))
    assert [store.get_version(v).status for v in ids] == ["ready"] * 3


def test_a_wait_past_its_bound_is_storage_busy_and_writes_nothing(sqlite_url: str) -> None:
    db.init_db(sqlite_url)
    env = {"SCPLN_WRITE_WAIT_SECONDS": "0.5"}
    results = start_writers(sqlite_url, ["slow-a", "slow-b"], 3.0, env)

    outs = sorted(out.splitlines()[-1] for out, _ in results)
    assert outs[1] == "STORED", results
    assert outs[0].startswith("REFUSED StorageBusy 503") and "SCPLN_WRITE_WAIT_SECONDS" in outs[0]
    store = PlanStore(db.get_engine(sqlite_url))
    statuses = {v: store.get_version(v).status for v in ("slow-a", "slow-b")}
    assert sorted(statuses.values()) == ["failed", "ready"]
    refused = next(v for v, s in statuses.items() if s == "failed")
    assert content_count(store, refused) == 0


def test_a_lock_held_past_the_busy_timeout_answers_503_with_a_message(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.init_db(sqlite_url)
    db.dispose_engines(sqlite_url)
    monkeypatch.setenv("SCPLN_DB", sqlite_url)
    monkeypatch.setenv("SCPLN_SQLITE_BUSY_MS", "300")
    for name in ("PLAN_STORAGE_MODE", "SCPLN_API_TOKENS", "JOBS_ENABLED", "REGISTRY_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    holder = sqlite3.connect(db.sqlite_path(sqlite_url), isolation_level=None)
    with TestClient(create_app()) as client:
        holder.execute("BEGIN IMMEDIATE")  # another program holds the write lock
        try:
            busy = client.post("/plans/integrated/run", json={"version_id": "while-locked"})
        finally:
            holder.execute("ROLLBACK")
        assert busy.status_code == 503, busy.text
        body = busy.json()
        assert body["error"] == "storage busy" and "SCPLN_SQLITE_BUSY_MS" in body["detail"]["message"]
        assert "Traceback" not in busy.text
        seen = client.get("/plans/while-locked")  # nothing of it was written, or it is marked failed
        assert seen.status_code == 404 or seen.json()["status"] == "failed", seen.text
        after = client.post("/plans/integrated/run", json={"version_id": "after-lock"})
        assert after.status_code == 201, after.text
    holder.close()


@pytest.mark.parametrize("mode", ["both", "files"])
def test_a_sync_run_whose_job_was_taken_over_answers_with_what_the_other_worker_stored(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    from sqlalchemy import update

    from app.jobs.tasks import claim_job
    from app.services import jobs as job_service
    from app.storage.schema import plan_jobs

    db.init_db(sqlite_url)
    monkeypatch.setenv("SCPLN_DB", sqlite_url)
    for name in ("PLAN_STORAGE_MODE", "SCPLN_API_TOKENS", "JOBS_ENABLED", "REGISTRY_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    real = job_service.execute_claimed

    def stalled_then_taken_over(engine, job, run_id):
        # what a reaper does to a job whose heartbeat went stale, and another worker's whole run
        with engine.begin() as conn:
            conn.execute(
                update(plan_jobs)
                .where(plan_jobs.c.job_id == job["job_id"])
                .values(status="queued", run_id=None, stage="requeued")
            )
        real(engine, claim_job(engine, job["job_id"], "run-other"), "run-other")
        return real(engine, job, run_id)  # the stalled execution goes on and finds its job lost

    monkeypatch.setattr(job_service, "execute_claimed", stalled_then_taken_over)
    with TestClient(create_app()) as client:
        answer = client.post(f"/plans/integrated/run?storage={mode}", json={"version_id": "taken-over"})
        assert answer.status_code == 201, answer.text  # not a 409 for a plan that exists
        body = answer.json()
        assert body["version_id"] == "taken-over" and body["status"] == "ready"
        assert body["run_id"] == "run-other" and body["storage"]["mode"] == mode
        assert (body["storage"]["series_rows"] > 0) == (mode == "both")
        assert "plan_final.json" in body["storage"]["artifacts"]
        stored = PlanStore(db.get_engine(sqlite_url)).read_version("taken-over")
        final = stored.documents["plan_final.json"]["kpis"]
        assert body["kpis"] == {k["metric"]: k["value"] for k in final if k["bucket_type"] == "total"}
        assert client.get("/plans/taken-over").json()["status"] == "ready"
        assert client.get(f"/jobs/{body['job_id']}").json()["status"] == "succeeded"
