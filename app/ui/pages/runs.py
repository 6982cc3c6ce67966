"""The run pages: the RunRegistry's records, newest first, with their durations; one run whole."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from app.errors import RunNotFound
from app.ui.render import Pager, page_number, page_router, render
from app.ui.session import need

router = page_router()

RUNS_PAGE = 25


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, page: str | None = None) -> Response:
    from app.run_registry import REGISTRY

    need(request)
    number = page_number(page)
    runs = REGISTRY.list(limit=RUNS_PAGE, offset=(number - 1) * RUNS_PAGE)
    pager = Pager(REGISTRY.count(), number, RUNS_PAGE, "/ui/runs", {})
    return render(request, "runs.html", {"nav": "runs", "runs": runs, "pager": pager})


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str) -> Response:
    """One run with its whole summary (storage, KPIs, stage timings), nested parts as tables."""
    from app.run_registry import REGISTRY

    need(request)
    run = REGISTRY.get(run_id)
    if run is None:
        raise RunNotFound(f"run {run_id!r} does not exist")
    return render(request, "run.html", {"nav": "runs", "run": run})
