"""How a process reaches the database: URL, engines, SQLite pragmas and the schema upgrade (SPEC 4.1).

Owns turning ``SCPLN_DB`` into an engine (a SQLite file in WAL mode with a busy timeout and foreign keys
on, or PostgreSQL through psycopg 3), one engine per URL and process, and bringing the schema to the
Alembic head safely from several processes at once. It knows no table and no plan content; the
operators' ``app.db`` re-exports it beside the runbook's artifact helpers.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app.config import REPO_ROOT, Settings, get_settings, positive_number, resolve_path
from app.errors import StorageBusy, StorageFull, is_disk_full, is_locked

#: Lock key of schema upgrades on PostgreSQL (any constant; the same in every process).
_PG_MIGRATION_LOCK = zlib.crc32(b"scpln.init_db")

log = logging.getLogger(__name__)
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


#: How long a SQLite statement waits for another connection's lock before it gives up (ms):
#: ``SCPLN_SQLITE_BUSY_MS``, 30 s by default.
DEFAULT_BUSY_MS = 30_000
#: How long a long write waits for its turn (:func:`write_turn`): ``SCPLN_WRITE_WAIT_SECONDS``.
DEFAULT_WRITE_WAIT_SECONDS = 600.0


def busy_ms() -> int:
    return int(positive_number("SCPLN_SQLITE_BUSY_MS", DEFAULT_BUSY_MS))


def write_wait_seconds() -> float:
    return positive_number("SCPLN_WRITE_WAIT_SECONDS", DEFAULT_WRITE_WAIT_SECONDS)


def _create_engine(url: str) -> Engine:
    if make_url(url).get_backend_name() != "sqlite":
        engine = create_engine(url, pool_pre_ping=True)
    else:
        timeout = busy_ms() / 1000
        engine = create_engine(url, connect_args={"timeout": timeout, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "handle_error", _domain_errors)
    return engine


def _domain_errors(context: Any) -> None:
    """Database errors every caller reports the same way, whichever statement met them: a full disk
    leaves as ``StorageFull`` (507), a lock not granted within the busy timeout as ``StorageBusy``
    (503); both say that nothing of the request was written and what to do."""
    database = {"database": make_url(str(context.engine.url)).render_as_string(hide_password=True)}
    if is_disk_full(context.original_exception):
        raise StorageFull(
            "the database's disk is full: nothing of this request was written; free space, then retry",
            database,
        ) from context.original_exception
    if is_locked(context.original_exception):
        raise StorageBusy(
            f"the database stayed locked by other writers for {busy_ms() / 1000:g} s: nothing of this "
            "request was written; send it again (SCPLN_SQLITE_BUSY_MS sets the wait)",
            database,
        ) from context.original_exception


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Every SQLite connection: WAL, the busy timeout (:func:`busy_ms`), foreign keys on, NORMAL sync
    (safe in WAL).

    A database file made by this connection gets 64 KiB pages (SQLite keeps the page size of a file
    that has any, so existing databases are left as they are): a plan's artifact texts are hundreds of
    megabytes written twice (into the write-ahead log, then into the file), and with 4 KiB pages each
    such write is a system call per 4 KiB."""
    cursor = dbapi_connection.cursor()
    try:
        pragmas = ("page_size=65536", "journal_mode=WAL", f"busy_timeout={busy_ms()}", "foreign_keys=ON", "synchronous=NORMAL")  # fmt: skip
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


_turn_locks: dict[str, threading.Lock] = {}
_turns_held = threading.local()


@contextmanager
def write_turn(engine: Engine) -> Iterator[None]:
    """Hold the database's turn for a long write (a whole version, a repair): one at a time per SQLite
    database, across the processes and threads that share it. PostgreSQL needs none.

    SQLite has one writer at a time, and a waiting writer polls with growing sleeps, so under load the
    short writes (job heartbeats, progress, claims) queue behind several long ones, and a writer can
    miss every free moment until its busy timeout runs out. Long writes therefore wait for their turn
    here first — a lock file beside the database (``<file>.write.lock``), taken only by long writes —
    and meet at most one another in SQLite's own queue. The wait is bounded by
    :func:`write_wait_seconds`; past it ``StorageBusy`` says so, with nothing written."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    held = _turns_held.__dict__.setdefault("databases", set())
    if database in held:  # this thread has the turn already (a long write inside another)
        yield
        return
    with _engines_lock:
        local = _turn_locks.setdefault(database, threading.Lock())
    wait = write_wait_seconds()
    deadline = time.monotonic() + wait
    if not local.acquire(timeout=wait):
        raise _turn_refused(engine)
    held.add(database)
    try:
        with open(f"{database}.write.lock", "a+b") as handle:
            delay = 0.002
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise _turn_refused(engine) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        held.discard(database)
        local.release()


def _turn_refused(engine: Engine) -> StorageBusy:
    return StorageBusy(
        f"other long writes held the database for {write_wait_seconds():g} s: nothing of this request "
        "was written; send it again (SCPLN_WRITE_WAIT_SECONDS sets the wait)",
        {"database": make_url(str(engine.url)).render_as_string(hide_password=True)},
    )


#: On PostgreSQL, a bulk write of at least this share of a table's rows refreshes the table's statistics
#: at once (autovacuum's own default threshold, which it would reach within a minute or so).
ANALYZE_SHARE = 0.1


def refresh_statistics(engine: Engine, table: str, rows_written: int) -> bool:
    """After a bulk write of ``rows_written`` rows into ``table`` (committed): on PostgreSQL, ``ANALYZE``
    the table when it was never analyzed or the write is at least :data:`ANALYZE_SHARE` of its rows, so
    the next queries are planned on the table as it now is. Without statistics the planner takes a
    level of thousands of rows for one row and joins it by scanning the other side whole for every
    row. Nothing on SQLite. A failure is only logged: the write it follows is already committed.
    Returns whether the table was analyzed."""
    if engine.dialect.name != "postgresql" or rows_written <= 0:
        return False
    try:
        with engine.connect() as conn:
            known = conn.execute(
                text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
            ).scalar()
            if known is not None and known >= 0 and rows_written < ANALYZE_SHARE * known:
                return False
            conn.execute(text(f'ANALYZE "{table}"'))
            conn.commit()
    except SQLAlchemyError as exc:
        log.warning("ANALYZE %s after a write of %d rows failed: %s", table, rows_written, exc)
        return False
    return True


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


# --- statements read through the driver ---------------------------------------------------------

_DRIVER_SQL: dict[tuple, tuple[str, tuple[str, ...], dict[str, Any]]] = {}


def _driver_sql(dialect: Any, key: tuple, build: Callable[[], Any]) -> tuple[str, tuple[str, ...], dict[str, Any]]:  # fmt: skip
    """A statement compiled once per dialect and shape: its SQL text, its parameter names in the
    driver's order (empty for named parameter styles) and the values of its literal parameters. Pages
    are fetched through the DBAPI cursor: hundreds of rows through SQLAlchemy's result objects cost
    more than the query itself."""
    found = _DRIVER_SQL.get((dialect.name, *key))
    if found is None:
        compiled = build().compile(dialect=dialect)
        found = (str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params))
        _DRIVER_SQL[(dialect.name, *key)] = found
    return found


def fetch_tuples(
    conn: Connection, key: tuple, build: Callable[[], Any], params: dict[str, Any]
) -> list[tuple]:
    """The rows of the statement ``build()`` makes (compiled once per dialect and ``key``), with the
    bind parameters ``params``, as the driver's plain tuples."""
    sql, order, literals = _driver_sql(conn.dialect, key, build)
    values = {**literals, **params}
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql, tuple(values[name] for name in order) if order else values)
        return cursor.fetchall()
    finally:
        cursor.close()
