"""Database fixtures: a fresh SQLite file, a fresh PostgreSQL database, and both as ``db_url``.

PostgreSQL comes from ``SCPLN_TEST_PG_URL`` (default the local service); every test gets its own
database, dropped afterwards. Without a reachable server the PostgreSQL cases skip, except under
``CI=true``, where they fail (SPEC 9).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from app import db

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'scpln.db'}"
    yield url
    db.dispose_engines(url)


@pytest.fixture
def pg_url() -> Iterator[str]:
    admin_url = make_url(db.normalize_url(os.environ.get("SCPLN_TEST_PG_URL", DEFAULT_PG_URL)))
    admin_dsn = admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL not reachable at {admin_url.render_as_string()}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    name = f"scpln_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        try:
            yield url
        finally:
            db.dispose_engines(url)
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(params=["sqlite", "pg"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on a fresh SQLite file and on a fresh PostgreSQL database."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def store(db_url: str, monkeypatch: pytest.MonkeyPatch):
    """The plan store on ``db_url`` at the schema head, with no storage mode, job or input folder
    setting of the environment in the way (a module may define its own)."""
    from app.storage.plans import PlanStore

    for name in ("PLAN_STORAGE_MODE", "JOBS_ENABLED", "SCPLN_INPUT_DIR"):
        monkeypatch.delenv(name, raising=False)
    db.init_db(db_url)
    return PlanStore(db.get_engine(db_url))
