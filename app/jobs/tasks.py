"""Plan job infrastructure: claim, progress, heartbeat, release — and reap jobs whose worker died (SPEC 5.1).

Owns the life of a ``plan_jobs`` row around its execution (which ``app.services.execution`` runs):

- **claim**: ``queued -> running`` by one conditional UPDATE (``WHERE status = 'queued'``), so two
  workers never run the same job. The claim gives the execution a fresh ``run_id``; every later
  update of the row is fenced by it (``WHERE run_id = … AND status = 'running'``), so an execution
  that lost its job (reaped, released) can no longer change it;
- **progress**: a callback that records stage and progress, feeds ``job_duration_seconds{stage}`` and
  stops at the next stage boundary once a cancel is requested (:class:`JobCanceled`);
- **heartbeat**: a thread per running job refreshes ``heartbeat_at`` several times per stale window;
- **release**: a worker shutting down puts its running jobs back in the queue;
- **reap**: running jobs whose heartbeat is older than ``SCPLN_JOB_STALE_SECONDS`` are re-queued once
  (``attempts < 2``) or marked failed together with their version and run record.

It writes ``plan_jobs`` only: the version's content and its catalogue status are the plan store's
(``fail_if_running``). It imports no service: how a claimed job runs a plan is installed from above.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update

from app.errors import ScplnError, VersionConflict
from app.jobs.queue import (
    enqueue_job,
    heartbeat_seconds,
    stale_seconds,
)
from app.metrics import JOB_DURATION_SECONDS
from app.planning.model import InputError
from app.run_registry import REGISTRY
from app.storage.db import get_engine, now_ms
from app.storage.plans import PlanStore
from app.storage.schema import plan_jobs

log = logging.getLogger("scpln.jobs")

#: A job whose worker was lost is run again while it has had fewer attempts than this.
MAX_ATTEMPTS = 2

#: Job states; ``running`` jobs may carry ``cancel_requested``.
FINISHED = ("succeeded", "failed", "canceled")

StageListener = Callable[[str, str], None]
_listeners: list[StageListener] = []
_local_lock = threading.Lock()
#: job_id -> run_id of the executions running in this process (their heartbeat is alive).
_local_runs: dict[str, str] = {}


class JobCanceled(Exception):
    """Raised at a stage boundary when a cancel was requested for the running job."""


class ClaimLost(VersionConflict):
    """The execution no longer owns its job (reaped or released): it must not write the version.

    A ``VersionConflict`` so that the plan store rolls the write back without touching the version,
    which belongs to whichever execution holds the job now."""


def add_stage_listener(listener: StageListener) -> None:
    """Call ``listener(job_id, stage)`` at every stage boundary of every job run in this process."""
    if listener not in _listeners:
        _listeners.append(listener)


def remove_stage_listener(listener: StageListener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def local_jobs() -> dict[str, str]:
    """Jobs executing in this process (job_id -> run_id)."""
    with _local_lock:
        return dict(_local_runs)


# --- payload --------------------------------------------------------------------------------------


def error_document(exc: BaseException) -> dict[str, Any]:
    """The ``plan_jobs.error`` document: ``{error, detail}`` like the API's error bodies."""
    if isinstance(exc, InputError):
        return {"error": "invalid input", "detail": exc.as_dicts()}
    if isinstance(exc, ScplnError):
        detail = exc.detail
        try:
            json.dumps(detail)
        except (TypeError, ValueError):
            detail = exc.message
        return {"error": exc.title, "detail": detail}
    return {"error": f"{type(exc).__name__}: {exc}"}


def dump_error(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, default=str)[:20000]


def worker_identity() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


# --- claim ----------------------------------------------------------------------------------------


def claim_job(engine: Engine, job_id: str, run_id: str) -> dict[str, Any] | None:
    """Move a queued job to running for execution ``run_id``; None when it is not queued (canceled,
    taken by another worker, unknown)."""
    ts = now_ms()
    with engine.begin() as conn:
        claimed = conn.execute(
            update(plan_jobs)
            .where(plan_jobs.c.job_id == job_id, plan_jobs.c.status == "queued")
            .values(
                status="running", run_id=run_id, attempts=plan_jobs.c.attempts + 1, started_at=ts,
                heartbeat_at=ts, finished_at=None, progress=0.0, stage="starting", error=None,
            )
        ).rowcount  # fmt: skip
        if claimed != 1:
            return None
        row = conn.execute(select(plan_jobs).where(plan_jobs.c.job_id == job_id)).mappings().first()
    return dict(row) if row else None


def _fenced(job_id: str, run_id: str) -> Any:
    """WHERE clause of every update an execution makes to its own job."""
    return (plan_jobs.c.job_id == job_id) & (plan_jobs.c.run_id == run_id) & (plan_jobs.c.status == "running")


def _why_not(conn: Connection, job_id: str, run_id: str) -> Exception:
    """The reason a fenced update matched nothing: a cancel request or a lost claim."""
    row = conn.execute(
        select(plan_jobs.c.status, plan_jobs.c.run_id, plan_jobs.c.cancel_requested).where(
            plan_jobs.c.job_id == job_id
        )
    ).first()
    if row is not None and row.status == "running" and row.run_id == run_id and row.cancel_requested:
        return JobCanceled(f"job {job_id} was canceled")
    return ClaimLost(f"job {job_id} is no longer owned by run {run_id}")


# --- execution ------------------------------------------------------------------------------------


class _Heartbeat(threading.Thread):
    def __init__(self, engine: Engine, job_id: str, run_id: str):
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.engine, self.job_id, self.run_id = engine, job_id, run_id
        self.interval = heartbeat_seconds()
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        update(plan_jobs)
                        .where(_fenced(self.job_id, self.run_id))
                        .values(heartbeat_at=now_ms())
                    )
            except Exception:  # a busy database delays one beat; the next one retries
                log.warning("heartbeat of job %s failed", self.job_id, exc_info=True)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=max(5.0, self.interval * 2))


class _JobProgress:
    """Progress callback of the pipeline: stage and percent into plan_jobs, stage timings into the
    metrics, cancel requests honoured at each stage boundary."""

    def __init__(self, engine: Engine, job_id: str, run_id: str):
        self.engine, self.job_id, self.run_id = engine, job_id, run_id
        self.stage: str | None = None
        self.since = time.perf_counter()
        self.timings: dict[str, float] = {}

    def __call__(self, stage: str, percent: int) -> None:
        if stage == "done":  # the pipeline is done; what remains is the storage write
            stage, percent = "write", 100
        if stage == self.stage:
            return
        self.close_stage()
        self.stage = stage
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(plan_jobs)
                .where(_fenced(self.job_id, self.run_id), plan_jobs.c.cancel_requested.is_(False))
                .values(stage=stage, progress=round(min(percent, 100) * 0.9, 1), heartbeat_at=now_ms())
            ).rowcount
            if moved != 1:
                raise _why_not(conn, self.job_id, self.run_id)
        for listener in list(_listeners):
            try:
                listener(self.job_id, stage)
            except Exception:
                log.exception("stage listener failed for job %s", self.job_id)

    def close_stage(self) -> None:
        now = time.perf_counter()
        if self.stage is not None:
            seconds = now - self.since
            self.timings[self.stage] = self.timings.get(self.stage, 0.0) + seconds
            JOB_DURATION_SECONDS.labels(stage=self.stage).observe(seconds)
        self.since = now


def fail_version_if_running(engine: Engine, version_id: str | None, error: str) -> bool:
    """Mark a version failed unless it already finished (ready or failed)."""
    return PlanStore(engine).fail_if_running(version_id, error)


# --- the huey task --------------------------------------------------------------------------------


def job_status(engine: Engine, job_id: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            select(plan_jobs.c.status).where(plan_jobs.c.job_id == job_id)
        ).scalar_one_or_none()


def release_job(job_id: str, engine: Engine | None = None) -> bool:
    """Put a job this process is running back on the queue (the worker was interrupted before it
    finished). The interrupted execution keeps running until the process exits, but it no longer owns
    the job, so it cannot complete it."""
    run_id = local_jobs().get(job_id)
    if run_id is None:
        return False
    engine = engine or get_engine()
    with engine.begin() as conn:
        released = conn.execute(
            update(plan_jobs)
            .where(_fenced(job_id, run_id))
            .values(status="queued", stage="interrupted", progress=0.0, heartbeat_at=None)
        ).rowcount
    if released == 1:
        enqueue_job(job_id)
        put_run(run_id, "failed", None, error={"error": "worker interrupted; job re-queued"})
    return released == 1


def put_run(
    run_id: str, status: str, summary: dict[str, Any] | None, error: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Finish the run record (``summary`` None keeps the stored one); a registry failure is logged,
    never turned into a job failure."""
    record = {"run_id": run_id, "status": status, "finished_at": now_ms(), "error": None}
    if summary is not None:
        record["summary"] = summary
    if error:
        record["error"] = dump_error(error)
    try:
        return REGISTRY.put(record)
    except Exception:
        log.exception("run record %s could not be stored", run_id)
        return {"run_id": run_id, "status": status}


# --- reaper ---------------------------------------------------------------------------------------


def reap_stale_jobs(stale: float | None = None, engine: Engine | None = None) -> list[dict[str, Any]]:
    """Handle running jobs whose heartbeat is older than ``stale`` seconds (default
    ``SCPLN_JOB_STALE_SECONDS``) and that do not run in this process: re-queue them once
    (``attempts < MAX_ATTEMPTS``), otherwise mark them failed (canceled when a cancel was requested)
    together with their running version and run record. Returns what was done, one dict per job."""
    engine = engine or get_engine()
    stale = stale_seconds() if stale is None else stale
    cutoff = now_ms() - int(stale * 1000)
    beat = func.coalesce(plan_jobs.c.heartbeat_at, plan_jobs.c.started_at, plan_jobs.c.submitted_at)
    query = select(
        plan_jobs.c.job_id,
        plan_jobs.c.run_id,
        plan_jobs.c.version_id,
        plan_jobs.c.attempts,
        plan_jobs.c.cancel_requested,
    ).where(plan_jobs.c.status == "running", beat < cutoff)
    with engine.connect() as conn:
        candidates = conn.execute(query).all()
    mine = local_jobs()
    actions = []
    for job in candidates:
        if job.job_id in mine:
            continue
        action = _reap_one(engine, job, cutoff, beat, stale)
        if action:
            actions.append(action)
    return actions


def _reap_one(engine: Engine, job: Any, cutoff: int, beat: Any, stale: float) -> dict[str, Any] | None:
    if job.cancel_requested:
        status = "canceled"
    elif (job.attempts or 0) < MAX_ATTEMPTS:
        status = "queued"
    else:
        status = "failed"
    reason = f"worker stopped responding (no heartbeat for {stale:g} s)"
    ts = now_ms()
    values: dict[str, Any] = {"status": status, "heartbeat_at": None}
    if status == "queued":
        values.update(stage="requeued", progress=0.0, error=dump_error({"error": f"{reason}; re-queued"}))
    else:
        values.update(stage=status, finished_at=ts, error=dump_error({"error": reason}))
    run_match = plan_jobs.c.run_id.is_(None) if job.run_id is None else plan_jobs.c.run_id == job.run_id
    with engine.begin() as conn:
        taken = conn.execute(
            update(plan_jobs)
            .where(
                plan_jobs.c.job_id == job.job_id, plan_jobs.c.status == "running", run_match, beat < cutoff
            )
            .values(**values)
        ).rowcount
        if taken == 1 and status != "queued":
            PlanStore(engine).fail_if_running(job.version_id, reason, conn)
    if taken != 1:
        return None
    log.warning("job %s: %s; now %s", job.job_id, reason, status)
    if status == "queued":
        try:
            enqueue_job(job.job_id)
        except Exception as exc:
            log.exception("job %s could not be re-queued", job.job_id)
            with engine.begin() as conn:
                conn.execute(
                    update(plan_jobs)
                    .where(plan_jobs.c.job_id == job.job_id, plan_jobs.c.status == "queued")
                    .values(status="failed", finished_at=now_ms(), error=dump_error(error_document(exc)))
                )
            status = "failed"
            fail_version_if_running(engine, job.version_id, reason)
    if job.run_id:
        _fail_run_if_running(job.run_id, reason)
    return {"job_id": job.job_id, "run_id": job.run_id, "version_id": job.version_id, "status": status}


def _fail_run_if_running(run_id: str, reason: str) -> None:
    try:
        run = REGISTRY.get(run_id)
        if run is not None and run["status"] == "running":
            REGISTRY.put(
                {
                    "run_id": run_id,
                    "status": "failed",
                    "finished_at": now_ms(),
                    "error": dump_error({"error": reason}),
                }
            )
    except Exception:
        log.exception("run record %s could not be updated", run_id)
