"""Per-version work spread over processes (db check, rollback repair).

Owns running one function over many plan versions in a pool of worker processes, each with its own
database engine, and handing the results back in the versions' order so the caller can record progress
as it goes. Decoding and hashing a version is CPU work under the GIL, so threads would not help; the
processes are started with ``spawn`` (no connection or lock of the parent is inherited). With one job, or
a database only this process can see (SQLite in memory), everything runs here, in order.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine

from app.db import get_engine

T = TypeVar("T")
#: At most this many processes by default, however many cores there are.
MAX_DEFAULT_JOBS = 4
#: With the default number of jobs, fewer versions than this are done here (a pool costs a second).
POOL_MIN_VERSIONS = 8
#: Versions handed out ahead of the one being consumed, per process (bounds the memory held by results).
AHEAD_PER_JOB = 2


def default_jobs() -> int:
    return max(1, min(MAX_DEFAULT_JOBS, os.cpu_count() or 1))


def engine_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _shareable(engine: Engine) -> bool:
    database = engine.url.database
    return not (engine.dialect.name == "sqlite" and (not database or database == ":memory:"))


def map_versions(
    fn: Callable[[str, str], T], engine: Engine, version_ids: Sequence[str], jobs: int | None = None
) -> Iterator[T]:
    """``fn(url, version_id)`` for every version, results yielded in ``version_ids`` order. ``fn`` must
    be a module-level function (it is pickled by name). ``jobs`` None: one process per core (at most
    ``MAX_DEFAULT_JOBS``) from ``POOL_MIN_VERSIONS`` versions on, else here. At most ``AHEAD_PER_JOB`` results per process
    wait to be consumed, so large results (artifact texts) do not pile up."""
    if jobs is None:
        jobs = default_jobs() if len(version_ids) >= POOL_MIN_VERSIONS else 1
    jobs = max(1, jobs)
    url = engine_url(engine)
    if jobs == 1 or len(version_ids) < 2 or not _shareable(engine):
        for vid in version_ids:
            yield fn(url, vid)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(version_ids)), mp_context=context) as pool:
        pending: list[Future[Any]] = []
        upcoming = iter(version_ids)
        for vid in upcoming:
            pending.append(pool.submit(fn, url, vid))
            if len(pending) >= jobs * AHEAD_PER_JOB:
                break
        while pending:
            result = pending.pop(0).result()
            nxt = next(upcoming, None)
            if nxt is not None:
                pending.append(pool.submit(fn, url, nxt))
            yield result


def store_for(url: str):
    """The plan store of a worker process (one engine per process and URL)."""
    from app.storage.plans import PlanStore

    return PlanStore(get_engine(url))
