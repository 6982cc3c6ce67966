"""Job routes (SPEC 5.1, 5.2): list, show, cancel and retry plan jobs; a thin edge over
``app.services.jobs``, which owns the queue, the ``plan_jobs`` rows and the job states."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from app.api.auth import PLANNER, VIEWER
from app.api.schemas import ErrorBody

router = APIRouter(tags=["jobs"])

JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$", description="Job id.")]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown job."},
    409: {"model": ErrorBody, "description": "The job is not in a state that allows this."},
    422: {"model": ErrorBody, "description": "Invalid parameters."},
}
JOB_EXAMPLE = {
    "job_id": "j-20260301-120000-a1b2",
    "version_id": "v20260301-120000-a1b2c3",
    "status": "running",
    "progress": 40.0,
    "stage": "mrp",
}


def _service():
    from app.services import jobs as service

    return service


@router.get(
    "/jobs",
    summary="List plan jobs",
    description="A page of plan jobs, newest first, with the total count; `status` filters by state "
    "(queued, running, succeeded, failed, canceled).",
    responses=ERRORS,
    dependencies=[VIEWER],
)
def list_jobs(
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    status: Annotated[str | None, Query(pattern="^(queued|running|succeeded|failed|canceled)$")] = None,
) -> dict[str, Any]:
    items, total = _service().list_jobs(limit, offset, status)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get(
    "/jobs/{job_id}",
    summary="Show one plan job",
    description="State, progress (percent) and stage, timestamps, the version it plans and its error.",
    responses={200: {"content": {"application/json": {"example": JOB_EXAMPLE}}}, **ERRORS},
    dependencies=[VIEWER],
)
def get_job(job_id: JobId) -> dict[str, Any]:
    return _service().get_job(job_id)


@router.post(
    "/jobs/{job_id}/cancel",
    summary="Cancel a plan job",
    description="A queued job is canceled at once; a running one stops at its next stage boundary and "
    "leaves no half-written version.",
    responses=ERRORS,
    dependencies=[PLANNER],
)
def cancel_job(job_id: JobId) -> dict[str, Any]:
    return _service().cancel_job(job_id)


@router.post(
    "/jobs/{job_id}/retry",
    summary="Retry a failed or canceled plan job",
    description="Queues the job's request again. Refused (503) while plan intake is paused.",
    responses={503: {"model": ErrorBody, "description": "Plan intake paused."}, **ERRORS},
    dependencies=[PLANNER],
)
def retry_job(job_id: JobId) -> dict[str, Any]:
    return _service().retry_job(job_id)
