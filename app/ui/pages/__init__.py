"""The UI's pages, one module per area: login, plans (with their tabs), PSI, jobs, runs, operations.

``router`` holds every page under ``/ui`` in the order the paths must be tried: PSI's routes come
before the plan tabs' ``/plans/{version_id}/{tab}``, and the catch-all "no such page" comes last.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.errors import PageNotFound
from app.ui.pages import jobs, login, ops, plans, psi, runs
from app.ui.render import page_router
from app.ui.session import need

_not_found = page_router()


@_not_found.get("/{rest:path}", response_class=HTMLResponse)
def not_found(request: Request, rest: str) -> Response:
    need(request)
    raise PageNotFound(f"there is no page at /ui/{rest}")


router = APIRouter()
for _pages in (login.router, psi.router, plans.router, jobs.router, runs.router, ops.router, _not_found):
    router.include_router(_pages, prefix="/ui")
