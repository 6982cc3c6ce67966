"""The ready copy of a version's artifacts: their texts kept compressed for the rollback.

Owns the copy's codec (Zstandard at level 1 through the ``zstandard`` package: the texts are JSON
and CSV and shrink about twentyfold; copies made before it are zlib and still read) and when copies
are made. After the plan store commits a version in
``db`` mode it hands a way to make the texts to one background thread of the writing process, so the copy
is encoded, compressed and written after the request has its answer. ``both``-mode versions have no copy:
their stored artifacts, certified with the rows in the same transaction, are one already. The thread
writes through :meth:`PlanStore.write_ready_copy`, which refuses a copy when the version's rows were
written since the texts were made. A process ends only after its queued copies are written; one killed
before that leaves the version without a copy, which loses nothing: the rollback then decodes the
version's rows (and keeps a copy of what it made).

This module never writes to the database itself, and nothing in it is needed to read a plan.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import zlib
from collections.abc import Callable, Mapping
from typing import Protocol

import zstandard

CODEC = "zstd"
#: Zstandard level 1: on a 1k-SKU plan's 56 MB of artifacts 2.7 MB in 0.08 s, back in 0.05 s; zlib at
#: level 4 (the codec before) made 3.7 MB in 0.8 s and took 0.2 s back, and zstd's levels 3 to 5 are
#: no smaller here for two to seven times the time.
LEVEL = 1
#: The codec of copies written before: read, never written.
OLD_CODEC = "zlib"

log = logging.getLogger(__name__)

Texts = Mapping[str, str | bytes]


class CopyWriter(Protocol):
    """What writes a copy: the plan store (this module only queues the work, so it imports no store)."""

    def write_ready_copy(self, version_id: str, texts: Texts, *, rows_generation: int) -> bool: ...


def compress(text: str | bytes) -> bytes:
    """One text as :data:`CODEC` stores it (a frame that records its own length)."""
    body = text.encode("utf-8") if isinstance(text, str) else text
    # a compressor object is not shared between threads: one per text costs microseconds
    return zstandard.ZstdCompressor(level=LEVEL).compress(body)


def decompress(codec: str, body: bytes) -> bytes:
    """The UTF-8 text a stored copy holds; ``ValueError`` for an unknown codec or a damaged body."""
    try:
        if codec == CODEC:
            return zstandard.ZstdDecompressor().decompress(body)
        if codec == OLD_CODEC:
            return zlib.decompress(body)
    except (zstandard.ZstdError, zlib.error) as exc:
        raise ValueError(f"damaged ready copy: {exc}") from exc
    raise ValueError(f"unknown ready copy codec {codec!r}")


class _Writer:
    """One daemon thread writing queued copies in order."""

    def __init__(self) -> None:
        self.jobs: queue.Queue[tuple[CopyWriter, str, Callable[[], Texts], int] | None] = queue.Queue()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def submit(self, store: CopyWriter, version_id: str, texts: Callable[[], Texts], generation: int) -> None:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="scpln-ready-copy", daemon=True)
                self.thread.start()
        self.jobs.put((store, version_id, texts, generation))

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                if job is not None:
                    store, version_id, texts, generation = job
                    store.write_ready_copy(version_id, texts(), rows_generation=generation)
            except Exception as exc:  # noqa: BLE001 - a copy that cannot be made is made by the rollback
                log.warning("ready copy of %s not written: %s", job[1] if job else "?", exc)
            finally:
                self.jobs.task_done()

    def wait(self) -> None:
        self.jobs.join()


_writer = _Writer()


def schedule(store: CopyWriter, version_id: str, texts: Callable[[], Texts], rows_generation: int) -> None:
    """Write the version's ready copy in the background: ``texts()`` gives the artifact texts made from
    the content whose rows are at ``rows_generation``."""
    _writer.submit(store, version_id, texts, rows_generation)


def wait() -> None:
    """Return once every copy scheduled so far is written (or given up)."""
    _writer.wait()


atexit.register(wait)
