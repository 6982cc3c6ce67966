"""How a process reaches the database: URL, engines, SQLite pragmas and the schema upgrade (SPEC 4.1).

Owns turning ``SCPLN_DB`` into an engine (a SQLite file in WAL mode with a busy timeout and foreign keys
on, or PostgreSQL through psycopg 3), one engine per URL and process, and bringing the schema to the
Alembic head safely from several processes at once. It knows no table and no plan content; the
operators' ``app.db`` re-exports it beside the runbook's artifact helpers.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from app.config import REPO_ROOT, Settings, get_settings, resolve_path
from app.errors import StorageFull, is_disk_full

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
        engine = create_engine(url, pool_pre_ping=True)
    else:
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "handle_error", _full_disk)
    return engine


def _full_disk(context: Any) -> None:
    """A database error that says the disk is full leaves as ``StorageFull`` (507, with what to do),
    whichever statement met it: every caller then reports it the same way."""
    if is_disk_full(context.original_exception):
        raise StorageFull(
            "the database's disk is full: nothing of this request was written; free space, then retry",
            {"database": make_url(str(context.engine.url)).render_as_string(hide_password=True)},
        ) from context.original_exception


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Every SQLite connection: WAL, a 30 s busy timeout, foreign keys on, NORMAL sync (safe in WAL).

    A database file made by this connection gets 64 KiB pages (SQLite keeps the page size of a file
    that has any, so existing databases are left as they are): a plan's artifact texts are hundreds of
    megabytes written twice (into the write-ahead log, then into the file), and with 4 KiB pages each
    such write is a system call per 4 KiB."""
    cursor = dbapi_connection.cursor()
    try:
        pragmas = ("page_size=65536", "journal_mode=WAL", "busy_timeout=30000", "foreign_keys=ON", "synchronous=NORMAL")  # fmt: skip
        for pragma in pragmas:
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


_REVISION_LINE = re.compile(r'^(down_revision|revision)\s*=\s*(None|"([^"]+)")', re.M)


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest revision of ``migrations/versions``: the one no other revision names as its
    parent, read from the files' ``revision``/``down_revision`` lines (starting a command that finds
    its database at head imports no part of Alembic)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (REPO_ROOT / "migrations" / "versions").glob("*.py"):
        lines = dict((m.group(1), m.group(3)) for m in _REVISION_LINE.finditer(path.read_text()))
        if lines.get("revision"):
            revisions.add(lines["revision"])
            if lines.get("down_revision"):
                parents.add(lines["down_revision"])
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"migrations/versions must have one head revision, found {sorted(heads)}")
    return heads.pop()


def schema_revision(engine: Engine) -> str | None:
    """The database's current Alembic revision (None for an empty database)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


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


def insert_for(engine: Engine) -> Any:
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
