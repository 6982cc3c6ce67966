"""Per-version work spread over processes (db check, rollback repair).

Owns running one function over many plan versions in a pool of worker processes, each with its own
database engine, and handing the results back in the versions' order so the caller can record progress
as it goes. Decoding and hashing a version is CPU work under the GIL, so threads would not help; the
processes are started with ``spawn`` (no connection or lock of the parent is inherited). With one job, or
a database only this process can see (SQLite in memory), everything runs here, in order.

Work starts as soon as the map is entered, before the first result is asked for, so a caller can let
the workers get ahead while it does something else (the rollback takes its backup meanwhile). Results
waiting to be consumed are bounded by count and by size.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine

from app.storage.db import get_engine

T = TypeVar("T")
#: At most this many processes by default, however many cores there are.
MAX_DEFAULT_JOBS = 4
#: With the default number of jobs, fewer versions than this are done here (a pool costs a second).
POOL_MIN_VERSIONS = 8
#: Finished results waiting to be consumed, at most: this many per process, and a quarter of the memory
#: available when the map starts, capped at ``AHEAD_BYTES``.
AHEAD_PER_JOB = 32
AHEAD_BYTES = 2 * 2**30


def ahead_bytes() -> int:
    """The budget of finished results held in memory: a quarter of the available memory, at most
    ``AHEAD_BYTES`` (and 256 MiB where the available memory cannot be read)."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 256 * 2**20
    return max(64 * 2**20, min(AHEAD_BYTES, available // 4))


def default_jobs() -> int:
    return max(1, min(MAX_DEFAULT_JOBS, os.cpu_count() or 1))


def engine_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _shareable(engine: Engine) -> bool:
    database = engine.url.database
    return not (engine.dialect.name == "sqlite" and (not database or database == ":memory:"))


class VersionMap(Generic[T]):
    """``fn(url, version_id)`` for every version, iterated in ``version_ids`` order; use as a context
    manager (the pool lives inside it). ``fn`` must be a module-level function (it is pickled by name).

    ``jobs`` None: one process per core (at most ``MAX_DEFAULT_JOBS``) from ``POOL_MIN_VERSIONS``
    versions on, else in this process. ``size`` tells the bytes a result holds; finished results not yet
    consumed stay under :func:`ahead_bytes` and ``AHEAD_PER_JOB`` per process. ``initializer`` runs
    with ``initargs`` in each worker process as it starts (never here)."""

    def __init__(
        self,
        fn: Callable[[str, str], T],
        engine: Engine,
        version_ids: Sequence[str],
        jobs: int | None = None,
        size: Callable[[T], int] | None = None,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
    ):
        if jobs is None:
            jobs = default_jobs() if len(version_ids) >= POOL_MIN_VERSIONS else 1
        self.fn, self.url, self.ids = fn, engine_url(engine), list(version_ids)
        self.jobs = max(1, min(jobs, len(self.ids) or 1))
        self.local = self.jobs == 1 or len(self.ids) < 2 or not _shareable(engine)
        self.size = size or (lambda _r: 0)
        self.initializer, self.initargs = initializer, initargs
        self._pool: ProcessPoolExecutor | None = None
        self._pending: deque[Future[Any]] = deque()
        self._next = 0
        self._changed = threading.Condition()
        self._feeder: threading.Thread | None = None
        self._closing = False
        self._budget = ahead_bytes()

    def __enter__(self) -> VersionMap[T]:
        if not self.local:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                max_workers=self.jobs,
                mp_context=context,
                initializer=_worker_start,
                initargs=(self.initializer, self.initargs),
            )
            self._feeder = threading.Thread(target=self._feed, name="scpln-version-feeder", daemon=True)
            self._feeder.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is None:
            return
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        if self._feeder is not None:
            self._feeder.join()
        for future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None

    def __iter__(self) -> Iterator[T]:
        if self.local:
            for vid in self.ids:
                yield self.fn(self.url, vid)
            return
        while True:
            with self._changed:
                while not self._pending and self._next < len(self.ids) and not self._closing:
                    self._changed.wait()
                if not self._pending:
                    return
                future = self._pending.popleft()
                self._changed.notify_all()
            yield future.result()

    def _notify(self, _done: Future[Any]) -> None:
        with self._changed:
            self._changed.notify_all()

    def _feed(self) -> None:
        """Submit work while fewer than ``jobs`` tasks run and the finished results waiting to be
        consumed are within bounds; wake up whenever a task finishes or a result is taken."""
        with self._changed:
            while not self._closing and self._next < len(self.ids):
                running = sum(1 for f in self._pending if not f.done())
                finished = [
                    f for f in self._pending if f.done() and not f.cancelled() and f.exception() is None
                ]
                held = sum(self.size(f.result()) for f in finished)
                if running >= self.jobs or len(finished) >= self.jobs * AHEAD_PER_JOB or held >= self._budget:
                    self._changed.wait()
                    continue
                future = self._pool.submit(self.fn, self.url, self.ids[self._next])
                self._next += 1
                self._pending.append(future)
                future.add_done_callback(self._notify)
                self._changed.notify_all()


def _worker_start(initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    keep_large_blocks()
    if initializer is not None:
        initializer(*initargs)


#: glibc ``mallopt`` parameters, and what a worker sets them to.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 256 * 2**20
_TRIM_THRESHOLD = 512 * 2**20


def keep_large_blocks() -> None:
    """Let this process's allocator reuse freed blocks of up to 256 MiB instead of mapping fresh pages
    for each one and handing them back when freed (glibc ``mallopt``; nothing happens elsewhere). A
    worker builds and drops texts and row lists of tens of MB per version; with glibc's defaults every
    one of them is fresh memory the kernel faults in page by page (on six 1k-SKU versions in a row this
    took the process's system time from 2.0 s to 1.3 s)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)


def map_versions(
    fn: Callable[[str, str], T], engine: Engine, version_ids: Sequence[str], jobs: int | None = None
) -> Iterator[T]:
    """:class:`VersionMap` as a plain generator, for callers that consume the results right away."""
    with VersionMap(fn, engine, version_ids, jobs) as results:
        yield from results


def store_for(url: str):
    """The plan store of a worker process (one engine per process and URL)."""
    from app.storage.plans import PlanStore

    return PlanStore(get_engine(url))
