"""The job queue: a huey instance built lazily from the current settings (SPEC 5.1).

Owns where queued tasks live and the timing knobs of the job lifecycle:

- SQLite storage by default, in a file next to the database: ``<db>.queue.db`` for a SQLite
  ``SCPLN_DB``, ``queue.db`` in the database's data directory for PostgreSQL
  (``app.config.data_paths``), so two PostgreSQL databases never share a queue;
- Redis when ``SCPLN_QUEUE_URL=redis://…`` (several workers on several machines);
- ``SCPLN_QUEUE_NAME`` (default ``scpln``) names the queue inside its storage (the Redis key prefix);
- ``SCPLN_JOB_STALE_SECONDS`` (default 30): a running job whose heartbeat is older is reaped;
  heartbeats are written several times within that window. On SQLite a heartbeat waits for any write
  in progress, so the window must stay longer than the longest version write.

huey's result store is off: the job's state lives in ``plan_jobs``, not in the queue. The queue only
carries job ids; it must not hold plan content, and it does not know how a job runs:
``app.services.execution`` installs the runner of the one task type (``set_job_runner``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey
from huey.api import TaskWrapper

from app.config import Settings, data_paths, get_settings, positive_number
from app.errors import QueueUnavailable, StorageFull, is_disk_full
from app.storage.db import database_url, sqlite_path

DEFAULT_QUEUE_NAME = "scpln"
DEFAULT_STALE_SECONDS = 30.0
#: A task found while intake is paused is put back on the schedule after this many seconds.
PAUSE_RECHECK_SECONDS = 2.0
#: Name of the one task type (the plan job); the message carries only the job id.
TASK_NAME = "plan_job"

_lock = threading.Lock()
_instances: dict[tuple[str, str], Huey] = {}
_tasks: dict[int, TaskWrapper] = {}
_job_runner: Callable[[str], None] | None = None


def queue_name() -> str:
    return os.environ.get("SCPLN_QUEUE_NAME", "").strip() or DEFAULT_QUEUE_NAME


def queue_location(settings: Settings | None = None) -> str:
    """The Redis URL of ``SCPLN_QUEUE_URL``, or the path of the SQLite queue file."""
    settings = settings or get_settings()
    url = (settings.scpln_queue_url or "").strip()
    if url:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"SCPLN_QUEUE_URL must be a redis:// URL, not {url!r}")
        return url
    database = database_url(settings)
    path = sqlite_path(database)
    if path is None:  # no database file to sit beside: the database's own data directory
        return str(data_paths(database, settings).home / "queue.db")
    return f"{path}.queue.db"


def describe_queue() -> str:
    """A one-line description for logs and the CLI (no credentials)."""
    location = queue_location()
    if "://" in location:
        from redis.connection import parse_url

        parts = parse_url(location)
        location = f"redis://{parts.get('host', 'localhost')}:{parts.get('port', 6379)}/{parts.get('db', 0)}"
    return f"{location} (queue {queue_name()})"


def get_huey() -> Huey:
    """The huey instance of the current settings, created once per (location, name) in this process."""
    key = (queue_location(), queue_name())
    with _lock:
        huey = _instances.get(key)
        if huey is None:
            huey = _instances[key] = _create(*key)
        return huey


def _create(location: str, name: str) -> Huey:
    if "://" in location:
        huey: Huey = RedisHuey(name, url=location, results=False)
    else:
        try:
            os.makedirs(os.path.dirname(location) or ".", exist_ok=True)
            huey = SqliteHuey(name, filename=location, results=False, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            if is_disk_full(exc):
                raise StorageFull(
                    f"the job queue file cannot be created: the disk is full ({location}); free space, then retry"
                ) from exc
            raise QueueUnavailable(f"the job queue file {location} cannot be opened: {exc}") from exc
    _tasks[id(huey)] = huey.task(name=TASK_NAME)(_run_plan_job)
    return huey


def set_job_runner(runner: Callable[[str], None]) -> None:
    """Install what the plan-job task runs with the job id (``app.services.execution`` installs its
    runner when imported). The queue only carries job ids: it must not know how a job runs, so it
    imports nothing above it."""
    global _job_runner
    _job_runner = runner


def _run_plan_job(job_id: str) -> None:
    if _job_runner is None:
        raise RuntimeError(
            "no plan-job runner installed in this process; import app.services.execution first"
        )
    _job_runner(job_id)


def plan_task(huey: Huey | None = None) -> TaskWrapper:
    """The registered plan-job task of ``huey`` (default: the current instance)."""
    huey = huey or get_huey()
    return _tasks[id(huey)]


def enqueue_job(job_id: str, delay: float | None = None) -> None:
    """Put a job id on the queue, now or after ``delay`` seconds (on huey's schedule)."""
    task = plan_task()
    if delay:
        task.schedule(args=(job_id,), delay=delay)
    else:
        task(job_id)


def reset_queue() -> None:
    """Close and forget every huey instance of this process (tests switch databases and queues)."""
    with _lock:
        for huey in _instances.values():
            try:
                huey.storage.close()
            except Exception:  # a closed or unreachable storage has nothing left to release
                pass
            _tasks.pop(id(huey), None)
        _instances.clear()


def queue_counts(huey: Huey | None = None) -> dict[str, Any]:
    """Tasks waiting in the queue and on the schedule (for health pages and tests)."""
    huey = huey or get_huey()
    return {"pending": huey.pending_count(), "scheduled": huey.scheduled_count()}


def stale_seconds() -> float:
    """``SCPLN_JOB_STALE_SECONDS``: heartbeat age after which a running job counts as lost."""
    return positive_number("SCPLN_JOB_STALE_SECONDS", DEFAULT_STALE_SECONDS)


def heartbeat_seconds() -> float:
    """How often a running job writes its heartbeat: several times per stale window, at most every 5 s."""
    return max(0.1, min(5.0, stale_seconds() / 5))


def reaper_seconds() -> float:
    """How often a worker looks for lost jobs."""
    return max(0.25, min(10.0, stale_seconds() / 3))
