"""How a queued plan job runs: its request, the plan run, and how the run and the job row finish.

Owns the part of a job's life that needs the planning service (SPEC 5.1): a claimed job's stored request
becomes a :class:`PlanRequest`, :func:`app.services.plans.run_plan` runs it with the job's progress and
heartbeat (from ``app.jobs.tasks``), the job turns ``succeeded`` inside the very transaction that writes
the version (:class:`_JobStore`), and a failure, a cancel or a lost claim finishes the run record and
the job row. Importing this module installs :func:`run_queued_job` as the queue's plan-job runner, so the
queue and the task infrastructure never import the services above them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import DBAPIError

from app.errors import StorageError
from app.jobs.queue import PAUSE_RECHECK_SECONDS, enqueue_job, set_job_runner
from app.jobs.tasks import (
    ClaimLost,
    JobCanceled,
    _fenced,
    _Heartbeat,
    _JobProgress,
    _local_lock,
    _local_runs,
    _why_not,
    claim_job,
    dump_error,
    error_document,
    fail_version_if_running,
    job_status,
    put_run,
    worker_identity,
)
from app.planning.model import PlanParams
from app.run_registry import REGISTRY, new_run_id
from app.services.plans import PlanOutcome, PlanRequest, run_plan
from app.storage.db import get_engine, now_ms
from app.storage.plans import PlanStore, WriteResult
from app.storage.schema import plan_jobs
from app.storage.settings import intake_open

log = logging.getLogger("scpln.jobs")


def request_payload(request: PlanRequest, storage: str | None, **extra: Any) -> dict[str, Any]:
    """The JSON form of a plan request stored in ``plan_jobs.payload_json``."""
    return {
        "input_dir": request.input_dir,
        "input_label": request.input_label,
        "version_id": request.version_id,
        "params": request.params.to_dict(),
        "note": request.note,
        "parent_version_id": request.parent_version_id,
        "storage": storage,
        **extra,
    }


def request_from_payload(payload: dict[str, Any]) -> tuple[PlanRequest, str | None]:
    """The plan request and the storage mode it asked for (None: the effective default)."""
    request = PlanRequest(
        input_dir=payload.get("input_dir"),
        input_label=payload.get("input_label"),
        version_id=payload.get("version_id"),
        params=PlanParams.from_dict(payload.get("params")),
        note=payload.get("note"),
        parent_version_id=payload.get("parent_version_id"),
    )
    return request, payload.get("storage")


class _JobStore(PlanStore):
    """The plan store of one execution: the job turns succeeded in the version's own transaction."""

    def __init__(self, engine: Engine, job_id: str, run_id: str):
        super().__init__(engine)
        self.job_id, self.run_id = job_id, run_id

    def write_version(self, content, **kwargs) -> WriteResult:  # type: ignore[override]
        kwargs["before_commit"] = self._complete
        return super().write_version(content, **kwargs)

    def mark_failed(self, version_id: str, error: str) -> None:
        """Only the execution that owns the job may fail its version."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(plan_jobs.c.run_id, plan_jobs.c.status).where(plan_jobs.c.job_id == self.job_id)
            ).first()
        if row is not None and row.run_id == self.run_id and row.status == "running":
            fail_version_if_running(self.engine, version_id, error)

    def _complete(self, conn: Connection) -> None:
        ts = now_ms()
        done = conn.execute(
            update(plan_jobs)
            .where(_fenced(self.job_id, self.run_id), plan_jobs.c.cancel_requested.is_(False))
            .values(
                status="succeeded", progress=100.0, stage="done", finished_at=ts, heartbeat_at=ts, error=None
            )
        ).rowcount
        if done != 1:
            raise _why_not(conn, self.job_id, self.run_id)


@dataclass
class JobResult:
    """How one execution ended."""

    job_id: str
    run_id: str
    version_id: str
    status: str  # succeeded | failed | canceled | lost
    outcome: PlanOutcome | None = None
    error: BaseException | None = None
    run: dict[str, Any] = field(default_factory=dict)


def execute_claimed(engine: Engine, job: dict[str, Any], run_id: str) -> JobResult:
    """Run a job this execution has claimed, record its run and finish its row. Never raises for a
    failed plan: the result says how it ended (``error`` holds the exception)."""
    job_id, version_id = job["job_id"], job["version_id"]
    started = now_ms()
    base_summary = {
        "worker": worker_identity(),
        "attempt": job.get("attempts"),
        "trigger": job.get("trigger"),
    }
    progress = _JobProgress(engine, job_id, run_id)
    heartbeat = _Heartbeat(engine, job_id, run_id)
    with _local_lock:
        _local_runs[job_id] = run_id
    heartbeat.start()
    try:
        request, storage = request_from_payload(json.loads(job["payload_json"] or "{}"))
        request.version_id = version_id
        base_summary["input_label"] = request.label()
        REGISTRY.put(
            {
                "run_id": run_id, "plan_version_id": version_id, "plan_job_id": job_id,
                "status": "running", "created_at": started, "started_at": started, "summary": base_summary,
            }
        )  # fmt: skip
        outcome = run_plan(
            request,
            storage=storage,
            store=_JobStore(engine, job_id, run_id),
            progress=progress,
            enforce_intake=False,
            version_registered=True,
        )
    except Exception as exc:
        progress.close_stage()
        return _finish_failure(engine, job, run_id, started, base_summary, progress, exc)
    finally:
        heartbeat.stop()
        with _local_lock:
            _local_runs.pop(job_id, None)
    progress.close_stage()
    outcome.run_id = run_id
    summary = {
        **base_summary,
        "storage": _storage_summary(outcome.write),
        "kpis": outcome.kpis(),
        "timings": {
            "stages": {k: round(v, 6) for k, v in progress.timings.items()},
            "plan_seconds": round(outcome.seconds - outcome.write.seconds, 6),
            "write_seconds": round(outcome.write.seconds, 6),
            "total_seconds": round((now_ms() - started) / 1000, 3),
        },
    }
    run = put_run(run_id, "succeeded", summary)
    return JobResult(job_id, run_id, version_id, "succeeded", outcome=outcome, run=run)


def _storage_summary(write: WriteResult) -> dict[str, Any]:
    return {
        "mode": write.mode,
        "artifacts": write.artifacts,
        "series_rows": write.series_rows,
        "kpi_rows": write.kpi_rows,
    }


def _finish_failure(
    engine: Engine,
    job: dict[str, Any],
    run_id: str,
    started: int,
    summary: dict[str, Any],
    progress: _JobProgress,
    exc: Exception,
) -> JobResult:
    job_id, version_id = job["job_id"], job["version_id"]
    cause = exc.__cause__ if isinstance(exc, StorageError) else exc
    timings = {"stages": {k: round(v, 6) for k, v in progress.timings.items()}}
    summary = {**summary, "timings": {**timings, "total_seconds": round((now_ms() - started) / 1000, 3)}}
    if isinstance(cause, ClaimLost) or isinstance(exc, ClaimLost):
        log.warning("job %s: run %s lost its claim; the job belongs to another execution", job_id, run_id)
        run = put_run(run_id, "failed", summary, error={"error": "job taken over by another execution"})
        return JobResult(job_id, run_id, version_id, "lost", error=exc, run=run)
    status = "canceled" if isinstance(cause, JobCanceled) else "failed"
    document = {"error": "canceled"} if status == "canceled" else error_document(exc)
    run = put_run(run_id, status, summary, error=document)  # final before the job says so
    ts = now_ms()
    with engine.begin() as conn:
        owned = conn.execute(
            update(plan_jobs)
            .where(_fenced(job_id, run_id))
            .values(status=status, stage=status, finished_at=ts, heartbeat_at=ts, error=dump_error(document))
        ).rowcount
        if owned == 1:
            reason = "canceled" if status == "canceled" else _short(document)
            PlanStore(engine).fail_if_running(version_id, reason, conn)
    if owned != 1:
        run = put_run(run_id, "failed", summary, error={"error": "job taken over by another execution"})
        return JobResult(job_id, run_id, version_id, "lost", error=exc, run=run)
    if status == "failed":
        log.warning("job %s failed: %s", job_id, _short(document))
    return JobResult(job_id, run_id, version_id, status, error=exc, run=run)


def _short(document: dict[str, Any]) -> str:
    detail = document.get("detail")
    if isinstance(detail, list):
        return f"{document['error']}: {len(detail)} problem(s)"
    return str(document["error"])


#: How long a job waits before it is tried again when the database did not answer its claim.
DATABASE_RETRY_SECONDS = 5.0


def run_queued_job(job_id: str) -> None:
    """The queue's task: run one queued job, unless it is no longer queued. While intake is paused it
    goes back on the schedule without running, so nothing queued is lost; so it does when the database
    does not answer before the job is claimed (restarting, unreachable): the task is the job's only
    place on the queue, and losing it would leave the job queued for ever. A job that fails after its
    claim is finished by :func:`execute_claimed`, or, when the database is gone then too, re-queued by
    the reaper once its heartbeat is stale."""
    engine = get_engine()
    try:
        status = job_status(engine, job_id)
        if status != "queued":
            log.info("job %s is %s; nothing to run", job_id, status or "unknown")
            return
        if not intake_open(engine):
            enqueue_job(job_id, delay=PAUSE_RECHECK_SECONDS)
            return
        run_id = new_run_id()
        job = claim_job(engine, job_id, run_id)
    except (DBAPIError, StorageError) as exc:
        log.warning("job %s: the database did not answer (%s); trying again in %g s", job_id, exc, DATABASE_RETRY_SECONDS)  # fmt: skip
        enqueue_job(job_id, delay=DATABASE_RETRY_SECONDS)
        return
    if job is None:
        return
    result = execute_claimed(engine, job, run_id)
    log.info("job %s %s (run %s, version %s)", job_id, result.status, run_id, result.version_id)


# Every process that imports this module (each worker does, for the reaper) runs plan jobs with it;
# the queue itself stays below the task code and never imports it.


# Every process that imports this module runs plan jobs with it: the worker command and the in-process
# worker import it; the queue and the task infrastructure below stay unaware of how a job runs.
set_job_runner(run_queued_job)
