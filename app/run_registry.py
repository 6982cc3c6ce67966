"""The RunRegistry: one record per plan execution (SPEC 4.4), kept in the ``runs`` table or in memory.

Owns the shape of a run record and its two backends. ``REGISTRY`` is a module-level object whose
methods pick the backend from the current settings on every call (``REGISTRY_BACKEND=db|memory``,
default ``db`` on ``SCPLN_DB``), so the operators' runbook can simply run::

    from app.run_registry import REGISTRY
    REGISTRY.list()

A record is a plain dict with JSON-friendly values: ``run_id``, ``plan_version_id``, ``plan_job_id``,
``status``, ``created_at``, ``started_at``, ``finished_at``, ``updated_at`` (integer milliseconds),
``summary`` (a dict: timings, KPIs, storage; stored as ``runs.summary_json``) and ``error``.
``put`` upserts: the fields given replace the stored ones, the others are kept. ``RUNS_DB_MAX_ROWS``
trims the oldest records after each put. The memory backend lives and dies with the process.
"""

from __future__ import annotations

import json
import secrets
import threading
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from app.config import get_settings
from app.storage.db import database_url, get_engine, init_db, now_ms
from app.storage.schema import runs

#: Columns a caller may set; ``summary`` (a dict) is stored as ``summary_json``.
FIELDS = (
    "run_id",
    "plan_version_id",
    "plan_job_id",
    "status",
    "created_at",
    "started_at",
    "finished_at",
    "updated_at",
    "summary",
    "error",
)


def new_run_id() -> str:
    """``r-<16 hex>``: unique without coordination between workers."""
    return f"r-{secrets.token_hex(8)}"


def _jsonable(value: Any) -> Any:
    """numpy scalars and other number-likes become plain numbers; everything else must be JSON already."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"run summary value {value!r} is not JSON-friendly")


def _normalized(record: dict[str, Any]) -> dict[str, Any]:
    """The given fields in column form; refuses unknown keys so that nothing is silently dropped."""
    if not isinstance(record, dict):
        raise TypeError(f"a run record is a dict, not {type(record).__name__}")
    fields = dict(record)
    if "summary_json" in fields:  # accepted as stored, for callers that copy rows
        raw = fields.pop("summary_json")
        fields.setdefault("summary", json.loads(raw) if raw else None)
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown run record field(s): {', '.join(unknown)}; allowed: {', '.join(FIELDS)}")
    columns = {k: v for k, v in fields.items() if k != "summary"}
    if "summary" in fields:
        summary = fields["summary"]
        columns["summary_json"] = (
            None if summary is None else json.dumps(summary, sort_keys=True, default=_jsonable)
        )
    if not columns.get("run_id"):
        columns["run_id"] = new_run_id()
    columns["updated_at"] = columns.get("updated_at") or now_ms()
    return columns


def _record(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as the record callers see."""
    out = {k: row.get(k) for k in FIELDS if k != "summary"}
    raw = row.get("summary_json")
    out["summary"] = json.loads(raw) if raw else None
    return out


class MemoryRunBackend:
    """Runs in a dict of this process (``REGISTRY_BACKEND=memory``)."""

    name = "memory"

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def put(self, columns: dict[str, Any], max_rows: int | None) -> dict[str, Any]:
        with self._lock:
            row = self._rows.get(columns["run_id"])
            if row is None:
                row = {c.name: None for c in runs.columns}
                row["created_at"] = now_ms()
                row["status"] = "running"
                self._rows[columns["run_id"]] = row
            row.update(columns)
            if max_rows is not None:
                for stale in self._ordered()[max(max_rows, 0) :]:
                    del self._rows[stale["run_id"]]
            return _record(row)

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._rows.get(run_id)
            return _record(row) if row else None

    def list(self, limit: int | None, offset: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._ordered()[offset:]
            return [_record(r) for r in (rows if limit is None else rows[:limit])]

    def count(self) -> int:
        with self._lock:
            return len(self._rows)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def _ordered(self) -> list[dict[str, Any]]:
        return sorted(self._rows.values(), key=lambda r: (r["created_at"], r["run_id"]), reverse=True)


class DbRunBackend:
    """Runs in the ``runs`` table of one database (``REGISTRY_BACKEND=db``)."""

    name = "db"

    def __init__(self, engine: Engine):
        self.engine = engine

    def put(self, columns: dict[str, Any], max_rows: int | None) -> dict[str, Any]:
        values = {"created_at": now_ms(), "status": "running", **columns}
        insert = sqlite.insert if self.engine.dialect.name == "sqlite" else postgresql.insert
        statement = insert(runs).values(**values)
        updates = {k: statement.excluded[k] for k in columns if k != "run_id"}
        with self.engine.begin() as conn:
            conn.execute(statement.on_conflict_do_update(index_elements=["run_id"], set_=updates))
            if max_rows is not None:
                keep = max(max_rows, 0)
                oldest = select(runs.c.run_id).order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
                doomed = list(conn.execute(oldest.offset(keep)).scalars()) if keep else None
                if doomed is None:
                    conn.execute(delete(runs))
                elif doomed:
                    conn.execute(delete(runs).where(runs.c.run_id.in_(doomed)))
            row = conn.execute(select(runs).where(runs.c.run_id == columns["run_id"])).mappings().first()
        return _record(dict(row)) if row else _record(values)

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.run_id == run_id)).mappings().first()
        return _record(dict(row)) if row else None

    def list(self, limit: int | None, offset: int) -> list[dict[str, Any]]:
        query = select(runs).order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        with self.engine.connect() as conn:
            return [_record(dict(r)) for r in conn.execute(query).mappings()]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(runs)).scalar_one()

    def clear(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(runs))


class RunRegistry:
    """The registry facade: every call resolves the backend from the current settings."""

    def __init__(self) -> None:
        self._memory = MemoryRunBackend()
        self._ready_urls: set[str] = set()
        self._lock = threading.Lock()

    def backend(self) -> MemoryRunBackend | DbRunBackend:
        if get_settings().registry_backend == "memory":
            return self._memory
        url = database_url()
        if url not in self._ready_urls:
            with self._lock:
                if url not in self._ready_urls:
                    init_db(url)
                    self._ready_urls.add(url)
        return DbRunBackend(get_engine(url))

    def put(self, record: dict[str, Any]) -> dict[str, Any]:
        """Insert or update a run (the fields given replace the stored ones); returns the stored record."""
        columns = _normalized(record)
        return self.backend().put(columns, get_settings().runs_db_max_rows)

    def get(self, run_id: str) -> dict[str, Any] | None:
        return self.backend().get(run_id)

    def list(self, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
        """Runs, newest first (by ``created_at``, then ``run_id``)."""
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        return self.backend().list(limit, max(offset, 0))

    def count(self) -> int:
        return self.backend().count()

    def clear(self) -> None:
        """Forget every run of the current backend."""
        self.backend().clear()


REGISTRY = RunRegistry()
