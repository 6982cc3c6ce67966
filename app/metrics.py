"""Prometheus metrics of the hub (SPEC 5.5): one registry, defined once, imported where they change.

Counters and histograms change where the event happens (plan store writes, job stages, HTTP
middleware). Gauges that describe the database (rows, size, queue depth, mode, pause, maintenance)
are refreshed from the database when ``/metrics`` is scraped, so several processes agree.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

PLANS_CREATED = Counter(
    "plans_created", "Plan versions created, by storage mode.", ["mode"], registry=REGISTRY
)
PLAN_DB_WRITE = Counter(
    "plan_db_write", "Plan version writes attempted, by storage mode.", ["mode"], registry=REGISTRY
)
PLAN_DB_WRITE_ERRORS = Counter(
    "plan_db_write_errors",
    "Plan version writes that failed and were rolled back.",
    ["mode", "error"],
    registry=REGISTRY,
)
PLAN_DB_WRITE_SECONDS = Histogram(
    "plan_db_write_seconds",
    "Time to write one plan version in one transaction.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
PLAN_SERIES_ROWS = Gauge("plan_series_rows", "Rows in plan_series.", registry=REGISTRY)
PLAN_DB_SIZE_BYTES = Gauge(
    "plan_db_size_bytes", "Size of the database (file or PostgreSQL database).", registry=REGISTRY
)
PLAN_INTEGRITY_FAILURES = Gauge(
    "plan_integrity_failures", "Problems found by the last integrity check (db check).", registry=REGISTRY
)
JOBS_QUEUED = Gauge("jobs_queued", "Plan jobs waiting in the queue.", registry=REGISTRY)
JOBS_RUNNING = Gauge("jobs_running", "Plan jobs running now.", registry=REGISTRY)
JOB_DURATION_SECONDS = Histogram(
    "job_duration_seconds",
    "Time spent in each stage of a plan job.",
    ["stage"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
STORAGE_MODE = Gauge(
    "scpln_storage_mode",
    "1 for the effective default storage mode of new plans.",
    ["mode"],
    registry=REGISTRY,
)
STORAGE_PINNED = Gauge(
    "scpln_storage_pinned", "1 while an operator pin fixes the storage mode.", registry=REGISTRY
)
JOBS_ENABLED = Gauge("scpln_jobs_enabled", "1 while plan intake is open.", registry=REGISTRY)
MAINTENANCE = Gauge(
    "scpln_maintenance", "1 during rollback/rollforward or operator maintenance.", registry=REGISTRY
)
HTTP_REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by route template and method.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)


def observe_plan_write(mode: str, seconds: float, error: str | None) -> None:
    """PlanStore write observer: counts every attempt, its errors and its duration."""
    PLAN_DB_WRITE.labels(mode=mode).inc()
    if error:
        PLAN_DB_WRITE_ERRORS.labels(mode=mode, error=error).inc()
    else:
        PLAN_DB_WRITE_SECONDS.observe(seconds)
        PLANS_CREATED.labels(mode=mode).inc()


#: What a standalone worker (``scpln worker --metrics-port``) exposes: the metrics of what happens in it —
#: plan writes and job stages. The gauges describing the database come from the server's ``/metrics``.
WORKER_REGISTRY = CollectorRegistry(auto_describe=True)
for _metric in (
    PLANS_CREATED,
    PLAN_DB_WRITE,
    PLAN_DB_WRITE_ERRORS,
    PLAN_DB_WRITE_SECONDS,
    JOB_DURATION_SECONDS,
):
    WORKER_REGISTRY.register(_metric)


def serve_worker_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Serve ``WORKER_REGISTRY`` in the Prometheus text format on ``http://host:port/metrics`` (a
    daemon thread of this process)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=WORKER_REGISTRY)
