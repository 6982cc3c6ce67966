"""The database layer: URL, engines, schema upgrade and the legacy artifact helpers operators call.

Owns how a process reaches the database (SQLite file or PostgreSQL, SPEC 4.1), bringing the schema to
the Alembic head safely from several processes at once, and the helpers the operators' runbook calls
by name (``init_db``, ``upsert_plan_artifact``, ``get_plan_artifact``, ``list_plan_artifacts``, SPEC
4.4). Plan content goes through ``app.storage`` (codecs and the plan store), not through here.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from app.config import REPO_ROOT, Settings, get_settings, resolve_path
from app.planning.model import VERSION_ID_RE
from app.storage.schema import plan_artifacts, plan_versions

#: Lock key of schema upgrades on PostgreSQL (any constant; the same in every process).
_PG_MIGRATION_LOCK = zlib.crc32(b"scpln.init_db")

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()
_migrate_lock = threading.Lock()


def now_ms() -> int:
    """Integer milliseconds since the epoch (UTC): the timestamp of every table."""
    return time.time_ns() // 1_000_000


def database_url(settings: Settings | None = None) -> str:
    """The SQLAlchemy URL of ``SCPLN_DB``: a path becomes an absolute ``sqlite:///`` URL (its folder is
    created), ``postgresql://`` and ``postgres://`` URLs get the psycopg 3 driver."""
    value = (settings or get_settings()).scpln_db.strip()
    if "://" in value:
        return normalize_url(value)
    path = resolve_path(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def normalize_url(url: str) -> str:
    """Give a bare PostgreSQL URL the psycopg 3 driver; leave every other URL alone."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def get_engine(url: str | None = None) -> Engine:
    """The process's engine for ``url`` (default: ``database_url()``), created once per URL."""
    key = normalize_url(url) if url else database_url()
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _create_engine(key)
        return engine


def dispose_engines(url: str | None = None) -> None:
    """Close the cached engine of ``url`` (every cached engine without one) and forget it."""
    with _engines_lock:
        keys = [normalize_url(url)] if url else list(_engines)
        for key in keys:
            engine = _engines.pop(key, None)
            if engine is not None:
                engine.dispose()


def _create_engine(url: str) -> Engine:
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Every SQLite connection: WAL, a 30 s busy timeout, foreign keys on, NORMAL sync (safe in WAL)."""
    cursor = dbapi_connection.cursor()
    try:
        for pragma in ("journal_mode=WAL", "busy_timeout=30000", "foreign_keys=ON", "synchronous=NORMAL"):
            cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def _forget_engines_after_fork() -> None:
    """A forked child must not reuse the parent's pooled connections; it opens its own."""
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


os.register_at_fork(after_in_child=_forget_engines_after_fork)


# --- schema -------------------------------------------------------------------------------------


def alembic_config(connection: Connection | None = None) -> Any:
    """The Alembic configuration of this repository, found from the package, not the current folder."""
    from alembic.config import Config

    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest revision of ``migrations/versions``."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no Alembic revision found under migrations/versions")
    return head


def schema_revision(engine: Engine) -> str | None:
    """The database's current Alembic revision (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def init_db(url: str | None = None) -> None:
    """Bring the database to the Alembic head. Idempotent and safe from several processes at once."""
    engine = get_engine(url)
    if schema_revision(engine) == head_revision():
        return
    upgrade_schema(engine, "head")


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Run ``alembic upgrade`` to ``revision`` under the cross-process migration lock."""
    _run_alembic(engine, "upgrade", revision)


def downgrade_schema(engine: Engine, revision: str) -> None:
    """Run ``alembic downgrade`` to ``revision`` under the cross-process migration lock."""
    _run_alembic(engine, "downgrade", revision)


def _run_alembic(engine: Engine, direction: str, revision: str) -> None:
    from alembic import command

    with _migration_lock(engine) as conn:
        getattr(command, direction)(alembic_config(conn), revision)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the schema lock: a file lock beside a SQLite database (threads of this
    process take a lock first), a transaction-scoped advisory lock on PostgreSQL."""
    with _migrate_lock:
        if engine.dialect.name == "sqlite":
            # Batch migrations rebuild tables (create, copy, drop, rename); with foreign keys on, the
            # drop would cascade into the content tables. SQLite only changes the pragma outside a
            # transaction, so switch it off first and back on afterwards.
            with _file_lock(engine), engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()
                try:
                    with conn.begin():
                        yield conn
                finally:
                    conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                    conn.commit()
        else:
            with engine.begin() as conn:
                conn.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
                yield conn


@contextmanager
def _file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- legacy artifact helpers (the runbook calls these by name) ---------------------------------


def upsert_plan_artifact(version_id: str, name: str, payload: str, *, url: str | None = None) -> None:
    """Store artifact ``name`` of ``version_id`` (replacing it). ``*.json`` must be valid JSON and
    ``*.csv`` is kept verbatim. A version without a ``plan_versions`` row gets one: ready, files, draft."""
    _check_artifact_key(version_id, name)
    document = _checked_payload(name, payload)
    ts = now_ms()
    engine = get_engine(url)
    with engine.begin() as conn:
        insert = _insert_for(engine)
        conn.execute(
            insert(plan_versions)
            .values(_legacy_version_row(version_id, document, ts))
            .on_conflict_do_nothing(index_elements=["version_id"])
        )
        conn.execute(
            # a text written here is vouched for by no digest (app.storage.digests)
            update(plan_versions)
            .where(plan_versions.c.version_id == version_id)
            .values(updated_at=ts, artifacts_digest=None)
        )
        statement = insert(plan_artifacts).values(
            version_id=version_id, name=name, json_text=payload, created_at=ts
        )
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["version_id", "name"],
                set_={"json_text": statement.excluded.json_text, "created_at": statement.excluded.created_at},
            )
        )


def get_plan_artifact(version_id: str, name: str, *, url: str | None = None) -> str | None:
    """The stored text of one artifact, or None."""
    query = select(plan_artifacts.c.json_text).where(
        plan_artifacts.c.version_id == version_id, plan_artifacts.c.name == name
    )
    with get_engine(url).connect() as conn:
        return conn.execute(query).scalar_one_or_none()


def list_plan_artifacts(version_id: str, *, url: str | None = None) -> list[str]:
    """The artifact names stored for a version, sorted."""
    query = (
        select(plan_artifacts.c.name)
        .where(plan_artifacts.c.version_id == version_id)
        .order_by(plan_artifacts.c.name)
    )
    with get_engine(url).connect() as conn:
        return list(conn.execute(query).scalars())


def _check_artifact_key(version_id: str, name: str) -> None:
    if not isinstance(version_id, str) or not VERSION_ID_RE.match(version_id):
        raise ValueError(f"invalid version id {version_id!r}: expected {VERSION_ID_RE.pattern}")
    if not isinstance(name, str) or "/" in name or not name.endswith((".json", ".csv")) or name[0] == ".":
        raise ValueError(f"invalid artifact name {name!r}: expected a file name ending .json or .csv")


def _checked_payload(name: str, payload: str) -> Any:
    """The parsed document of a ``*.json`` payload (None for CSV); refuse what is not text or JSON."""
    if not isinstance(payload, str):
        raise ValueError(f"{name}: payload must be text, got {type(payload).__name__}")
    if not name.endswith(".json"):
        return None
    try:
        return json.loads(payload)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name}: payload is not valid JSON ({exc})") from exc


def _legacy_version_row(version_id: str, document: Any, ts: int) -> dict[str, Any]:
    """The catalogue row of a version that arrives through the artifact helper alone."""
    params = document.get("params") if isinstance(document, dict) else None
    schema_version = document.get("schema_version") if isinstance(document, dict) else None
    return {
        "version_id": version_id,
        "status": "ready",
        "approval": "draft",
        "storage_mode": "files",
        "created_at": ts,
        "updated_at": ts,
        "params_json": json.dumps(params, sort_keys=True) if isinstance(params, dict) else None,
        "schema_version": schema_version if isinstance(schema_version, int) else None,
    }


def _insert_for(engine: Engine) -> Any:
    """The dialect's INSERT with ON CONFLICT support."""
    return sqlite.insert if engine.dialect.name == "sqlite" else postgresql.insert


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for other databases and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def ping(url: str | None = None) -> bool:
    """True when the database answers a trivial query."""
    try:
        with get_engine(url).connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
