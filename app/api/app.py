"""The HTTP API application: routers, error mapping, auth, the latency middleware and metrics hooks.

``create_app()`` builds a fresh API; ``app`` is one for ``uvicorn app.api.app:app`` (the API alone).
The web UI is not part of it: ``app.web`` composes the two, and ``scpln serve`` serves that. The
database is ``SCPLN_DB`` (read per request through ``app.db.get_engine``).
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.api import health, jobs, ops, plans, psi, runs
from app.api.errors import install_error_handlers
from app.api.guard import RequestGuard
from app.storage.plans import observe_writes

log = logging.getLogger("scpln.api")

DESCRIPTION = """
Supply chain planning hub: run the planning pipeline (S&OP aggregate, SKU x week allocation, MRP,
capacity and level reconciliation), browse and compare plan versions, follow jobs and operate storage.

Authentication: when API tokens are configured (`SCPLN_API_TOKENS` or `scpln token create`), send
`Authorization: Bearer <token>`; roles are viewer < planner < approver < admin. `/healthz` and `/metrics`
are always open. Errors are JSON `{"error": ..., "detail": ...}`.
"""

TAGS = [
    {"name": "plans", "description": "Run, list, show and delete plan versions; artifacts; comparisons."},
    {"name": "tables", "description": "Plan tables as JSON pages or CSV downloads."},
    {"name": "psi", "description": "PSI editing: overrides, locks, approval, history and reconcile."},
    {"name": "jobs", "description": "Asynchronous plan jobs."},
    {"name": "runs", "description": "The RunRegistry."},
    {"name": "operations", "description": "Storage mode, intake, integrity check, backups (admin)."},
    {"name": "service", "description": "Health and metrics."},
]


class LatencyMiddleware:
    """Observes every HTTP request in ``http_request_duration_seconds`` by method, route template (not
    the raw path, so version ids do not explode the label set) and status."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.HTTP_REQUEST_SECONDS.labels(
                method=scope.get("method", ""), route=template, status=str(status[0])
            ).observe(time.perf_counter() - started)


def create_app() -> FastAPI:
    """A new application with every router, the error mapping and the metrics hooks."""
    observe_writes(metrics.observe_plan_write)
    application = FastAPI(
        title="scpln Planning Hub",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
    )
    install_error_handlers(application)
    application.add_middleware(LatencyMiddleware)
    application.add_middleware(RequestGuard)  # added last: the outermost of the hub's own
    for module in (plans, psi, runs, jobs, ops, health):
        application.include_router(module.router)
    return application


app = create_app()
