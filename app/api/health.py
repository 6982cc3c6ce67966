"""``/healthz`` and ``/metrics`` (SPEC 5.2, 5.5): open to everyone, even when tokens are required.

``/metrics`` refreshes the gauges of ``app.metrics`` from the database at every scrape, so several
processes (server, workers, CLI) agree on rows, size, queue depth, mode, intake and maintenance.
"""

from __future__ import annotations

import json
import logging
import shutil
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import metrics
from app.api.schemas import Health
from app.storage import modes, views
from app.storage import settings as st
from app.storage.db import schema_revision, sqlite_path
from app.storage.plans import PlanStore

router = APIRouter(tags=["service"])
log = logging.getLogger("scpln.api")

LAST_CHECK = "last_check"


@router.get(
    "/healthz",
    summary="Liveness and configuration",
    description="Database reachability, the effective storage mode of new plans, the operator pin, "
    "whether plan intake is open, maintenance, the schema revision and the free disk space beside a SQLite "
    "database. 503 when the database is down, or with status `disk full` below 8 MB free.",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database does not answer."}},
)
def healthz() -> Any:
    store = PlanStore()
    try:
        body = {
            "status": "ok",
            "db": "ok",
            "storage_mode": st.effective_mode(store.engine),
            "storage_pin": st.storage_pin(store.engine),
            "jobs_enabled": st.intake_open(store.engine),
            "maintenance": st.maintenance_on(store.engine),
            "schema_revision": schema_revision(store.engine),
        }
    except Exception as exc:  # the point of a health check is to answer even then
        log.warning("health check: database unavailable: %s", exc)
        body = {
            "status": "unavailable", "db": "error", "storage_mode": None, "storage_pin": None,
            "jobs_enabled": None, "maintenance": None, "schema_revision": None,
        }  # fmt: skip
        return JSONResponse(body, status_code=503)
    body["disk_free_bytes"] = free = _disk_free(store)
    if free is not None and free < MIN_FREE_BYTES:  # every write would fail: not a healthy hub
        body["status"] = "disk full"
        return JSONResponse(body, status_code=503)
    return body


#: Free space below which a SQLite hub reports itself unhealthy (writes fail or soon will).
MIN_FREE_BYTES = 8 * 1024 * 1024


def _disk_free(store: PlanStore) -> int | None:
    path = sqlite_path(str(store.engine.url))
    if path is None:
        return None
    try:
        return shutil.disk_usage(path.parent).free
    except OSError:
        return None


def _integrity_failures(store: PlanStore) -> int | None:
    raw = st.get_value(store.engine, LAST_CHECK)
    if not raw:
        return None
    try:
        report = json.loads(raw)
    except ValueError:
        return None
    if isinstance(report, dict):
        for key in ("failures", "problem_count"):
            if isinstance(report.get(key), int):
                return report[key]
        problems = report.get("problems")
        if isinstance(problems, int) and not isinstance(problems, bool):
            return problems
        if isinstance(problems, list):
            return len(problems)
        if isinstance(report.get("ok"), bool):
            return 0 if report["ok"] else 1
    return None


def refresh_gauges(store: PlanStore) -> None:
    """Set every database-derived gauge; one failing source does not stop the others."""
    engine = store.engine

    def jobs() -> None:
        counts = views.jobs_per_status(store)
        metrics.JOBS_QUEUED.set(counts.get("queued", 0))
        metrics.JOBS_RUNNING.set(counts.get("running", 0))

    def mode() -> None:
        effective = st.effective_mode(engine)
        for m in modes.MODES:
            metrics.STORAGE_MODE.labels(mode=m).set(1 if m == effective else 0)
        metrics.STORAGE_PINNED.set(1 if st.storage_pin(engine) else 0)

    def integrity() -> None:
        failures = _integrity_failures(store)
        if failures is not None:
            metrics.PLAN_INTEGRITY_FAILURES.set(failures)

    steps = {
        "plan_series_rows": lambda: metrics.PLAN_SERIES_ROWS.set(views.series_row_count(store)),
        "plan_db_size_bytes": lambda: metrics.PLAN_DB_SIZE_BYTES.set(views.database_size(store)),
        "jobs": jobs,
        "storage_mode": mode,
        "jobs_enabled": lambda: metrics.JOBS_ENABLED.set(1 if st.intake_open(engine) else 0),
        "maintenance": lambda: metrics.MAINTENANCE.set(1 if st.maintenance_on(engine) else 0),
        "integrity": integrity,
    }
    for name, step in steps.items():
        try:
            step()
        except Exception as exc:
            log.warning("metrics: could not refresh %s: %s", name, exc)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Plan writes and errors, plan_series rows, database size, integrity failures of the last "
    "check, queue depth, storage mode, intake, maintenance and HTTP latency, in the Prometheus text format.",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."}},
)
def metrics_endpoint() -> Response:
    refresh_gauges(PlanStore())
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
