"""``scpln serve`` (the web application: API and UI) and ``scpln worker`` (plan jobs from the queue)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.terminal import err, open_store


def serve(
    host: Annotated[str, typer.Option(help="Address to bind (non-loopback needs API tokens).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers_inprocess: Annotated[
        bool,
        typer.Option(
            "--workers-inprocess/--no-workers-inprocess",
            help="Run a job worker inside the server (also off with SCPLN_INPROCESS_WORKER=0).",
        ),
    ] = True,
    plan_sample_if_empty: Annotated[
        bool, typer.Option("--plan-sample-if-empty", help="Plan the default input set if no version exists.")
    ] = False,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs) after bringing the database schema to head."""
    import uvicorn

    from app.api import auth
    from app.config import get_settings
    from app.web import create_app

    open_store()
    refusal = auth.bind_refusal(host)
    if refusal:
        raise ValueError(refusal)
    if plan_sample_if_empty:
        from app.services.jobs import plan_sample_if_empty as seed

        seeded = seed()
        if seeded:
            err.print(f"Planned the sample input set as {seeded['version_id']}")
    worker = None
    if workers_inprocess and get_settings().scpln_inprocess_worker:
        from app.services.jobs import start_inprocess_worker

        worker = start_inprocess_worker()
    err.print(f"scpln Planning Hub on http://{host}:{port} (API docs at /docs)")
    try:
        uvicorn.run(create_app(), host=host, port=port, log_level="info")
    finally:
        if worker is not None:
            worker.stop()


def worker(
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker threads (or processes).")] = 1,
    worker_type: Annotated[str, typer.Option("--worker-type", help="thread | process")] = "thread",
    shutdown_timeout: Annotated[
        float | None, typer.Option(help="Seconds SIGTERM waits for running jobs (default: until done).")
    ] = None,
    nice: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=19,
            help="Lower the workers' CPU priority by this much (default SCPLN_WORKER_NICE, 10).",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="Serve this worker's plan-write and job metrics on 127.0.0.1:PORT/metrics."
        ),
    ] = None,
) -> None:
    """Run plan jobs from the queue until SIGTERM (running jobs finish) or SIGINT."""
    import logging

    import app.services.execution  # noqa: F401 - installs how this worker's queue runs a plan job
    from app.jobs.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("huey", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    run_worker(
        workers,
        worker_type,
        shutdown_timeout,
        announce=lambda line: print(line, flush=True),
        nice=nice,
        metrics_port=metrics_port,
    )
