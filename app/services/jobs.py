"""Plan jobs as the API and the CLI see them: submit, run now, inspect, cancel, retry (SPEC 5.1).

Owns the ``plan_jobs`` bookkeeping before a job runs: the checks every plan-creating request makes up
front (intake open, else ``IntakePaused`` 503; storage mode allowed, else ``StorageModeConflict``
409), registering the version as ``running``, the ``queued`` job row with its request, and handing
the job id to the queue. Running a job is ``app.jobs.tasks``' business; this module never plans.

Job dicts are JSON-friendly: ``job_id, version_id, status, progress, stage, run_id, trigger,
submitted_at, started_at, finished_at, heartbeat_at, attempts, cancel_requested, error, request``;
``error`` is ``{error, detail}`` (an invalid input set lists its problems in ``detail``).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.errors import JobConflict, JobNotFound, PlanNotFound, QueueUnavailable, VersionConflict
from app.jobs.queue import enqueue_job
from app.jobs.tasks import (
    FINISHED,
    JobCanceled,
    claim_job,
    dump_error,
    error_document,
    fail_version_if_running,
    worker_identity,
)
from app.planning.pipeline import check_version_id, new_version_id
from app.run_registry import new_run_id
from app.services.execution import execute_claimed, request_from_payload, request_payload
from app.services.plans import PlanRequest, check_intake, kpi_totals
from app.storage import views
from app.storage.db import now_ms
from app.storage.plans import PlanStore
from app.storage.schema import plan_jobs

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "canceled")


def new_job_id() -> str:
    return f"j-{secrets.token_hex(8)}"


def _register(store: PlanStore, request: PlanRequest, storage: str | None, trigger: str, **extra: Any) -> str:
    """Check intake and mode, register the version ``running`` and insert the ``queued`` job row."""
    check_intake(store)
    mode = store.effective_mode(storage)
    version_id = check_version_id(request.version_id) if request.version_id else new_version_id()
    try:
        existing = store.get_version(version_id)
    except PlanNotFound:
        existing = None
    if existing is not None:
        raise VersionConflict(
            f"plan version {version_id!r} already exists ({existing.status}); versions are immutable"
        )
    folder = str(request.folder())  # resolved now: the job and its retries plan the same folder
    try:
        store.begin_version(
            version_id,
            params=request.params.to_dict(),
            mode=mode,
            input_label=request.label(),
            note=request.note,
            parent_version_id=request.parent_version_id,
            input_dir=folder,
        )
    except IntegrityError:
        raise VersionConflict(f"plan version {version_id!r} already exists; versions are immutable") from None
    payload = request_payload(request, storage, mode=mode, **extra)
    payload.update(version_id=version_id, input_dir=folder, input_label=request.label())
    job_id = new_job_id()
    try:
        with store.engine.begin() as conn:
            conn.execute(
                insert(plan_jobs).values(
                    job_id=job_id, version_id=version_id, status="queued", trigger=trigger,
                    submitted_at=now_ms(), payload_json=json.dumps(payload, sort_keys=True),
                    progress=0.0, stage="queued", attempts=0, cancel_requested=False,
                )
            )  # fmt: skip
    except Exception:
        fail_version_if_running(store.engine, version_id, "job could not be registered")
        raise
    return job_id


def submit_plan(request: PlanRequest, storage: str | None = None, trigger: str = "api") -> dict[str, Any]:
    """Queue a plan: ``{job_id, version_id, status_url}``. The version shows ``running`` until the job
    ends; ``GET /jobs/{job_id}`` follows the job."""
    store = PlanStore()
    job_id = _register(store, request, storage, trigger)
    return _enqueue(store, job_id)


def _enqueue(store: PlanStore, job_id: str) -> dict[str, Any]:
    job = _row(store, job_id)
    try:
        enqueue_job(job_id)
    except Exception as exc:
        document = {"error": "job queue unavailable", "detail": f"{type(exc).__name__}: {exc}"}
        with store.engine.begin() as conn:
            conn.execute(
                update(plan_jobs)
                .where(plan_jobs.c.job_id == job_id, plan_jobs.c.status == "queued")
                .values(status="failed", stage="failed", finished_at=now_ms(), error=dump_error(document))
            )
        fail_version_if_running(store.engine, job["version_id"], "job queue unavailable")
        raise QueueUnavailable(f"the job queue refused job {job_id}: {exc}") from exc
    return {"job_id": job_id, "version_id": job["version_id"], "status_url": f"/jobs/{job_id}"}


def run_plan_now(request: PlanRequest, storage: str | None = None, trigger: str = "api") -> dict[str, Any]:
    """Plan in the caller's process with the same bookkeeping as a queued job (job row, run record).

    Returns ``{version_id, status, storage: {mode, artifacts, series_rows, kpi_rows}, kpis, job_id,
    run_id}``; raises what planning raised (``InputError``, ``StorageError``, …) after recording it.
    """
    store = PlanStore()
    job_id = _register(store, request, storage, trigger)
    run_id = new_run_id()
    job = claim_job(store.engine, job_id, run_id)
    if job is None:  # canceled between registration and claim
        raise JobConflict(f"job {job_id} was canceled before it ran", get_job(job_id))
    result = execute_claimed(store.engine, job, run_id)
    if result.status == "succeeded" and result.outcome is not None:
        write = result.outcome.write
        return {
            "version_id": result.version_id,
            "status": "ready",
            "storage": {
                "mode": write.mode,
                "artifacts": write.artifacts,
                "series_rows": write.series_rows,
                "kpi_rows": write.kpi_rows,
            },
            "kpis": result.outcome.kpis(),
            "job_id": job_id,
            "run_id": run_id,
        }
    if result.status == "lost":
        return _taken_over(store, job_id)
    error = result.error
    if result.status == "canceled" or isinstance(error, JobCanceled):
        raise JobConflict(f"job {job_id} was canceled while it ran", get_job(job_id))
    if error is None:
        raise JobConflict(f"job {job_id} ended {result.status}", get_job(job_id))
    raise error


#: How long a synchronous run whose job was taken over by another worker waits for that run to end.
TAKEOVER_WAIT_SECONDS = 600.0


def _taken_over(store: PlanStore, job_id: str) -> dict[str, Any]:
    """The caller's execution lost its job: it stalled past the stale window, a reaper re-queued the
    job and another worker runs it now. Wait for that run and answer with what it stored, so the
    response says what the database holds; a run that ends otherwise is a 409 with the job as detail."""
    deadline = time.monotonic() + TAKEOVER_WAIT_SECONDS
    row = _row(store, job_id)
    while row["status"] not in FINISHED:
        if time.monotonic() >= deadline:
            raise JobConflict(
                f"job {job_id} was taken over by another worker and is still running; follow it at "
                f"/jobs/{job_id}",
                _job_dict(row),
            )
        time.sleep(0.25)
        row = _row(store, job_id)
    if row["status"] != "succeeded":
        raise JobConflict(
            f"job {job_id} was taken over by another worker and ended {row['status']}", _job_dict(row)
        )
    version_id = row["version_id"]
    series_rows, kpi_rows = views.stored_counts(store, version_id)
    # the KPI rows when the version has them; a files-mode version's only from its artifacts
    kpis = (
        views.total_kpis(store, [version_id]).get(version_id, {})
        if kpi_rows
        else kpi_totals(store.read_version(version_id))
    )
    return {
        "version_id": version_id,
        "status": "ready",
        "storage": {
            "mode": store.get_version(version_id).storage_mode,
            "artifacts": store.artifact_names(version_id),
            "series_rows": series_rows,
            "kpi_rows": kpi_rows,
        },
        "kpis": kpis,
        "job_id": job_id,
        "run_id": row["run_id"],
    }


# --- inspection -----------------------------------------------------------------------------------


def _row(store: PlanStore, job_id: str) -> dict[str, Any]:
    with store.engine.connect() as conn:
        row = conn.execute(select(plan_jobs).where(plan_jobs.c.job_id == job_id)).mappings().first()
    if row is None:
        raise JobNotFound(f"job {job_id!r} does not exist")
    return dict(row)


def _job_dict(row: dict[str, Any]) -> dict[str, Any]:
    error = row.get("error")
    if error:
        try:
            error = json.loads(error)
        except ValueError:
            error = {"error": error}
    payload = json.loads(row["payload_json"]) if row.get("payload_json") else None
    return {
        "job_id": row["job_id"],
        "version_id": row["version_id"],
        "status": row["status"],
        "progress": row["progress"],
        "stage": row["stage"],
        "run_id": row["run_id"],
        "trigger": row["trigger"],
        "submitted_at": row["submitted_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "heartbeat_at": row["heartbeat_at"],
        "attempts": row["attempts"],
        "cancel_requested": bool(row["cancel_requested"]),
        "error": error or None,
        "request": payload,
    }


def get_job(job_id: str) -> dict[str, Any]:
    """One job; ``JobNotFound`` (404) when it does not exist."""
    return _job_dict(_row(PlanStore(), job_id))


def list_jobs(
    limit: int = 50, offset: int = 0, status: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """A page of jobs, newest first, and the total count (of ``status`` when given)."""
    if status is not None and status not in JOB_STATUSES:
        raise ValueError(f"status must be one of {', '.join(JOB_STATUSES)}, not {status!r}")
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must be >= 0")
    query = select(plan_jobs)
    count = select(func.count()).select_from(plan_jobs)
    if status:
        query = query.where(plan_jobs.c.status == status)
        count = count.where(plan_jobs.c.status == status)
    query = query.order_by(plan_jobs.c.submitted_at.desc(), plan_jobs.c.job_id.desc())
    with PlanStore().engine.connect() as conn:
        rows = conn.execute(query.limit(limit).offset(offset)).mappings().all()
        total = conn.execute(count).scalar_one()
    return [_job_dict(dict(r)) for r in rows], total


def job_counts() -> dict[str, int]:
    """Jobs per status (every status present, zero when none) — for ``jobs_queued``/``jobs_running``."""
    query = select(plan_jobs.c.status, func.count()).group_by(plan_jobs.c.status)
    with PlanStore().engine.connect() as conn:
        found = dict(conn.execute(query).all())
    return {s: int(found.get(s, 0)) for s in JOB_STATUSES}


# --- control --------------------------------------------------------------------------------------


def cancel_job(job_id: str) -> dict[str, Any]:
    """Cancel a job: a queued one at once (it will never run, its version fails); a running one is
    asked to stop at its next stage boundary (``cancel_requested``) and writes nothing. A finished
    job cannot be canceled (``JobConflict``, 409)."""
    store = PlanStore()
    for _ in range(3):  # the job may move from queued to running between the read and the update
        job = _row(store, job_id)
        status = job["status"]
        if status in FINISHED:
            raise JobConflict(f"job {job_id} already {status}; nothing to cancel", _job_dict(job))
        ts = now_ms()
        with store.engine.begin() as conn:
            if status == "queued":
                changed = conn.execute(
                    update(plan_jobs)
                    .where(plan_jobs.c.job_id == job_id, plan_jobs.c.status == "queued")
                    .values(
                        status="canceled", stage="canceled", finished_at=ts,
                        error=dump_error({"error": "canceled", "detail": "canceled before it ran"}),
                    )
                ).rowcount  # fmt: skip
            else:
                changed = conn.execute(
                    update(plan_jobs)
                    .where(plan_jobs.c.job_id == job_id, plan_jobs.c.status == "running")
                    .values(cancel_requested=True)
                ).rowcount
        if changed == 1:
            if status == "queued":
                fail_version_if_running(store.engine, job["version_id"], "canceled")
            return get_job(job_id)
    raise JobConflict(f"job {job_id} changed state while being canceled; try again", get_job(job_id))


def retry_job(job_id: str, trigger: str = "retry") -> dict[str, Any]:
    """Queue a failed or canceled job's request again as a new job with a new version id.
    Returns what ``submit_plan`` returns plus ``retry_of``."""
    store = PlanStore()
    job = _row(store, job_id)
    if job["status"] not in ("failed", "canceled"):
        raise JobConflict(
            f"job {job_id} is {job['status']}; only failed or canceled jobs can be retried", _job_dict(job)
        )
    payload = json.loads(job["payload_json"] or "{}")
    request, storage = request_from_payload(payload)
    request.version_id = None
    new_id = _register(store, request, storage, trigger, retry_of=job_id)
    return {**_enqueue(store, new_id), "retry_of": job_id}


def plan_sample_if_empty() -> dict[str, Any] | None:
    """Plan the default input set when the catalogue holds no version (first start of ``make run``);
    returns the run result, or None when versions exist."""
    _, total = PlanStore().list_versions(limit=1)
    if total:
        return None
    return run_plan_now(PlanRequest(note="sample planned on first start"), None, "startup")


def start_inprocess_worker(workers: int = 1):
    """A huey consumer running in threads inside this process; call ``.stop()`` on the handle."""
    from app.jobs.worker import start_inprocess_worker as start

    return start(workers)


def reconcile_psi(
    version_id: str,
    actor: str,
    note: str | None = None,
    *,
    input_dir: str | None = None,
    storage: str | None = None,
) -> dict[str, Any]:
    """PSI reconcile (a re-plan of the version with its PSI state as decisions, stored as a child version)
    with the bookkeeping of every plan execution: a RunRegistry record with the child version, its
    timings and KPI summary, or the error. Returns ``{version_id, run_id}``; raises what reconcile raised."""
    from app.run_registry import REGISTRY
    from app.services import psi

    run_id = new_run_id()
    started = now_ms()
    base = {"trigger": "psi-reconcile", "parent_version_id": version_id, "worker": worker_identity()}
    REGISTRY.put(
        {"run_id": run_id, "status": "running", "created_at": started, "started_at": started, "summary": base}
    )
    done: dict[str, Any] = {}

    def on_written(content: Any, write: Any) -> None:
        final = content.documents["plan_final.json"]
        done["kpis"] = {k["metric"]: k["value"] for k in final["kpis"] if k["bucket_type"] == "total"}
        done["write_seconds"] = round(write.seconds, 6)
        done["storage"] = {"mode": write.mode, "artifacts": write.artifacts, "series_rows": write.series_rows}

    try:
        child = psi.reconcile(
            version_id, actor, note, input_dir=input_dir, storage=storage, on_written=on_written
        )
    except Exception as exc:
        REGISTRY.put(
            {"run_id": run_id, "status": "failed", "finished_at": now_ms(), "summary": base,
             "error": dump_error(error_document(exc))}
        )  # fmt: skip
        raise
    timings = {
        "write_seconds": done.pop("write_seconds"),
        "total_seconds": round((now_ms() - started) / 1000, 3),
    }
    REGISTRY.put(
        {"run_id": run_id, "plan_version_id": child, "status": "succeeded", "finished_at": now_ms(),
         "summary": {**base, **done, "timings": timings}}
    )  # fmt: skip
    return {"version_id": child, "run_id": run_id}


__all__ = [
    "JOB_STATUSES",
    "cancel_job",
    "error_document",
    "get_job",
    "job_counts",
    "list_jobs",
    "plan_sample_if_empty",
    "reconcile_psi",
    "retry_job",
    "run_plan_now",
    "start_inprocess_worker",
    "submit_plan",
]
