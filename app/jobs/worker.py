"""Workers: huey consumers that run plan jobs, standalone (``scpln worker``) or inside the server.

Owns the consumer set-up and the worker-side duties around it:

- a worker takes no new job while plan intake is closed (``JOBS_ENABLED=0`` in its environment or the
  pause stored in the database); it keeps polling the flag and picks up again on resume;
- every worker runs the reaper (``app.jobs.tasks.reap_stale_jobs``) when it starts and then
  periodically, so a job whose worker died does not stay ``running``;
- ``scpln worker`` stops on SIGTERM after its running jobs finish (``--shutdown-timeout`` bounds the
  wait) and at once on SIGINT; jobs interrupted either way go back on the queue;
- the in-process worker of the server never touches signal handlers (the web server owns them);
- planning is batch work: each worker thread (or process) lowers its own CPU priority by
  ``SCPLN_WORKER_NICE`` (default 10; ``scpln worker --nice``), so API requests on the same cores are
  served first and plans use the CPU time left over.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from huey import Huey
from huey import signals as huey_signals
from huey.consumer import Consumer, Worker

from app import metrics
from app.config import get_settings
from app.jobs.queue import describe_queue, get_huey, reaper_seconds
from app.jobs.tasks import reap_stale_jobs, release_job
from app.storage.db import database_url, get_engine, init_db
from app.storage.plans import observe_writes
from app.storage.settings import intake_open

log = logging.getLogger("scpln.jobs")

#: Seconds a worker waits before looking at the intake flag again while intake is closed.
PAUSED_POLL_SECONDS = 1.0


class _IntakeGate:
    """Whether a worker may take a new job: the intake flag, read at most once a second per process."""

    def __init__(self, url: str):
        self.url = url
        self._lock = threading.Lock()
        self._checked = 0.0
        self._open: bool | None = None

    def is_open(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if self._open is not None and now - self._checked < PAUSED_POLL_SECONDS:
                return self._open
            try:
                value = intake_open(get_engine(self.url))
            except Exception:  # an unreachable database: take nothing until it answers
                log.warning("cannot read the intake flag; taking no new jobs", exc_info=True)
                value = False
            if value != self._open:
                level = logging.INFO if self._open is None else logging.WARNING
                log.log(level, "intake %s", "open: taking jobs" if value else "paused: taking no new jobs")
            self._open, self._checked = value, now
            return value


def lower_priority(increment: int) -> int | None:
    """Raise the nice value of the calling thread by ``increment`` (Linux schedules threads one by one,
    so only this worker thread yields, not the server it may live in). Returns the new nice value, or
    None where priorities cannot be set; a priority once lowered is never raised again."""
    if increment <= 0 or not hasattr(os, "setpriority"):
        return None
    tid = threading.get_native_id()
    try:
        value = min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment)
        os.setpriority(os.PRIO_PROCESS, tid, value)
    except OSError:
        log.warning("cannot lower the worker's CPU priority", exc_info=True)
        return None
    return value


class PlanWorker(Worker):
    """huey's worker loop, holding back while intake is closed (queued tasks stay where they are), at
    a lower CPU priority than the rest of the process."""

    gate: _IntakeGate | None = None
    nice: int = 0
    _niced = False

    def loop(self, now: Any = None) -> None:
        if not self._niced:  # in the worker's own thread or process, before its first job
            self._niced = True
            lower_priority(self.nice)
        if self.gate is not None and not self.gate.is_open():
            self.stop_flag.wait(PAUSED_POLL_SECONDS)
            return
        super().loop(now)


class PlanConsumer(Consumer):
    worker_class = PlanWorker

    def __init__(
        self,
        huey: Huey,
        gate: _IntakeGate,
        on_started: Callable[[], None] | None = None,
        nice: int | None = None,
        **options: Any,
    ):
        self.gate = gate
        self.on_started = on_started
        self.nice = get_settings().scpln_worker_nice if nice is None else nice
        super().__init__(huey, **options)

    def start(self) -> None:
        super().start()
        if self.on_started:
            self.on_started()

    def _create_worker(self) -> Worker:
        worker = super()._create_worker()
        worker.gate = self.gate
        worker.nice = self.nice
        return worker


class EmbeddedConsumer(PlanConsumer):
    """A consumer inside another program: it leaves the process's signal handlers alone."""

    def _set_signal_handlers(self) -> None:
        return None


class Reaper(threading.Thread):
    """Runs the stale-job reaper now and then every ``reaper_seconds()`` until stopped."""

    def __init__(self, url: str):
        super().__init__(name="scpln-reaper", daemon=True)
        self.url = url
        self.interval = reaper_seconds()
        self.halt = threading.Event()

    def run(self) -> None:
        while True:
            try:
                reap_stale_jobs(engine=get_engine(self.url))
            except Exception:
                log.exception("reaping stale jobs failed")
            if self.halt.wait(self.interval):
                return

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)


_interrupt_hooked: set[int] = set()


def _hook_interrupts(huey: Huey) -> None:
    """Tasks huey reports as interrupted (worker stopping mid-task) go back on the queue."""
    if id(huey) in _interrupt_hooked:
        return
    _interrupt_hooked.add(id(huey))

    @huey.signal(huey_signals.SIGNAL_INTERRUPTED)
    def _requeue(signal: str, task: Any, *args: Any, **kwargs: Any) -> None:
        job_id = task.args[0] if task.args else None
        if job_id and release_job(job_id):
            log.warning("job %s interrupted by worker shutdown; re-queued", job_id)


def _consumer_options(workers: int, worker_type: str) -> dict[str, Any]:
    if workers < 1:
        raise ValueError("workers must be >= 1")
    if worker_type not in ("thread", "process"):
        raise ValueError(f"worker type must be thread or process, not {worker_type!r}")
    # Poll an idle SQLite queue at least once a second; Redis dequeues block instead.
    return {"workers": workers, "worker_type": worker_type, "periodic": False, "max_delay": 1.0}


@dataclass
class WorkerHandle:
    """A running in-process worker."""

    consumer: EmbeddedConsumer
    reaper: Reaper

    @property
    def huey(self) -> Huey:
        return self.consumer.huey

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs, wait up to ``timeout`` seconds for running ones, then re-queue the rest."""
        self.consumer.shutdown_timeout = timeout
        self.consumer.stop(graceful=True)
        self.reaper.stop()
        self.huey.notify_interrupted_tasks()


def start_inprocess_worker(workers: int = 1) -> WorkerHandle:
    """Start a huey consumer with ``workers`` threads in this process (the server's worker)."""
    url = database_url()
    init_db(url)
    huey = get_huey()
    _hook_interrupts(huey)
    consumer = EmbeddedConsumer(huey, _IntakeGate(url), **_consumer_options(workers, "thread"))
    consumer.start()
    reaper = Reaper(url)
    reaper.start()
    log.info("in-process worker started: %d thread(s) on %s", workers, describe_queue())
    return WorkerHandle(consumer, reaper)


def run_worker(
    workers: int = 1,
    worker_type: str = "thread",
    shutdown_timeout: float | None = None,
    announce: Callable[[str], None] | None = None,
    nice: int | None = None,
    metrics_port: int | None = None,
) -> None:
    """Run a consumer in this process until SIGTERM (graceful) or SIGINT (immediate); ``nice`` (default
    ``SCPLN_WORKER_NICE``) lowers the CPU priority of its workers; ``metrics_port`` serves this
    worker's plan-write and job metrics on ``http://127.0.0.1:<port>/metrics``."""
    url = database_url()
    init_db(url)
    observe_writes(metrics.observe_plan_write)
    if metrics_port:
        metrics.serve_worker_metrics(metrics_port)
    huey = get_huey()
    _hook_interrupts(huey)
    consumer = PlanConsumer(
        huey,
        _IntakeGate(url),
        on_started=(
            lambda: announce(f"worker ready: {workers} {worker_type} worker(s) on {describe_queue()}")
        )
        if announce
        else None,
        nice=nice,
        graceful_signal="TERM",
        shutdown_timeout=shutdown_timeout,
        **_consumer_options(workers, worker_type),
    )
    reaper = Reaper(url)
    reaper.start()
    try:
        consumer.run()
    finally:
        reaper.stop()
