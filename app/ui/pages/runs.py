"""The run page: the RunRegistry's records, newest first."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

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
