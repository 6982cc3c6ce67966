"""The job pages: the job list, one job with its live progress, cancel and retry."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.errors import PageNotFound
from app.services import jobs
from app.ui.render import Pager, filter_value, page_number, page_router, render
from app.ui.session import checked, is_htmx, need

router = page_router()

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "canceled")
JOBS_PAGE = 25


def job_fragment(request: Request, job_id: str) -> HTMLResponse:
    """A job's live card; once the job has ended, the response also tells the page (``HX-Trigger:
    job-finished``) so that a plan list on it reloads and shows the new version's status."""
    job = jobs.get_job(job_id)
    response = render(request, "_job.html", {"job": job})
    if job["status"] not in ("queued", "running"):
        response.headers["HX-Trigger"] = "job-finished"
    return response


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, status: str | None = None, page: str | None = None) -> Response:
    need(request)
    status = filter_value(status)
    number = page_number(page)
    items, total = jobs.list_jobs(JOBS_PAGE, (number - 1) * JOBS_PAGE, status)
    pager = Pager(total, number, JOBS_PAGE, "/ui/jobs", {"status": status})
    live = any(j["status"] in ("queued", "running") for j in items)
    context = {"nav": "jobs", "jobs": items, "pager": pager, "status": status, "statuses": JOB_STATUSES,
               "live": live}  # fmt: skip
    if is_htmx(request) and request.headers.get("HX-Target") == "jobs-table":
        return render(request, "_jobs_table.html", context)
    return render(request, "jobs.html", context)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str) -> Response:
    need(request)
    return render(request, "job.html", {"nav": "jobs", "job": jobs.get_job(job_id)})


@router.get("/jobs/{job_id}/progress", response_class=HTMLResponse)
def job_progress(request: Request, job_id: str) -> Response:
    need(request)
    return job_fragment(request, job_id)


@router.post("/jobs/{job_id}/{action}", response_class=HTMLResponse)
def job_action(request: Request, job_id: str, action: str, csrf_token: str = Form("")) -> Response:
    checked(request, csrf_token, "planner")
    if action == "cancel":
        jobs.cancel_job(job_id)
        return RedirectResponse(f"/ui/jobs/{quote(job_id)}", status_code=303)
    if action == "retry":
        retried = jobs.retry_job(job_id, trigger="ui")
        return RedirectResponse(f"/ui/jobs/{quote(retried['job_id'])}", status_code=303)
    raise PageNotFound(f"unknown job action {action!r}")
