"""The schema is owned by Alembic (SPEC 4.1): every revision upgrades and downgrades on SQLite and
PostgreSQL with data in its tables, the head matches ``app.storage.schema``, and ``init_db`` is
idempotent and safe when several processes call it at once."""

from __future__ import annotations

import multiprocessing
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Boolean,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
    inspect,
    select,
)

from app import db
from app.storage.schema import metadata


def revisions() -> list[tuple[str, str]]:
    """(revision, the revision below it) from base to head."""
    script = ScriptDirectory.from_config(db.alembic_config())
    steps = [(rev.revision, rev.down_revision or "base") for rev in script.walk_revisions()]
    return list(reversed(steps))


def reflected(engine: Engine) -> MetaData:
    meta = MetaData()
    meta.reflect(bind=engine)
    if "alembic_version" in meta.tables:
        meta.remove(meta.tables["alembic_version"])
    return meta


def sample_value(table: Table, column: Any, tag: str) -> Any:
    if column.name == "version_id":
        return f"v{tag}"
    if column.foreign_keys:
        return None
    if isinstance(column.type, Boolean):
        return True
    if isinstance(column.type, LargeBinary):
        return f"{table.name}.{column.name}-{tag}".encode()
    if isinstance(column.type, Integer):
        return 7
    if isinstance(column.type, Float):
        return 1.5
    if isinstance(column.type, String):
        return f"{column.name}-{tag}"[: column.type.length or None]
    return f"{table.name}.{column.name}-{tag}"


def insert_a_row_everywhere(engine: Engine, tag: str) -> set[str]:
    """One row in every table present (parents first); returns the table names."""
    meta = reflected(engine)
    with engine.begin() as conn:
        for table in meta.sorted_tables:
            row = {
                c.name: sample_value(table, c, tag)
                for c in table.columns
                # a surrogate key is made by the database; a key of several columns is given
                if not (c.primary_key and isinstance(c.type, Integer) and len(table.primary_key.columns) == 1)
            }
            conn.execute(table.insert().values(row))
    return set(meta.tables)


def row_counts(engine: Engine) -> dict[str, int]:
    meta = reflected(engine)
    with engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for name, t in meta.tables.items()
        }


def columns_by_table(engine: Engine) -> dict[str, set[str]]:
    meta = reflected(engine)
    return {name: {c.name for c in table.columns} for name, table in meta.tables.items()}


def test_every_revision_upgrades_and_downgrades_with_data_in_its_tables(db_url: str) -> None:
    engine = db.get_engine(db_url)
    before: dict[str, set[str]] = {}
    for step, (revision, below) in enumerate(revisions()):
        db.upgrade_schema(engine, revision)
        insert_a_row_everywhere(engine, str(step))
        after = columns_by_table(engine)
        assert after != before, f"revision {revision} changes no table or column"
        db.downgrade_schema(engine, below)
        assert columns_by_table(engine) == before, f"downgrade of {revision} does not restore the schema"
        assert all(n >= 1 for n in row_counts(engine).values()), "a downgrade lost rows of older tables"
        db.upgrade_schema(engine, revision)
        assert db.schema_revision(engine) == revision
        before = after
    db.upgrade_schema(engine, "head")
    assert db.schema_revision(engine) == db.head_revision()


def test_the_head_revision_matches_the_table_module(db_url: str) -> None:
    db.init_db(db_url)
    with db.get_engine(db_url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_downgrade_to_base_leaves_no_table_and_init_db_restores_head(db_url: str) -> None:
    db.init_db(db_url)
    engine = db.get_engine(db_url)
    db.downgrade_schema(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    assert db.schema_revision(engine) is None
    db.init_db(db_url)
    assert db.schema_revision(engine) == db.head_revision()


def test_init_db_is_idempotent(db_url: str) -> None:
    db.init_db(db_url)
    db.upsert_plan_artifact("v1", "report.csv", "type,week\n", url=db_url)
    db.init_db(db_url)
    assert db.schema_revision(db.get_engine(db_url)) == db.head_revision()
    assert db.list_plan_artifacts("v1", url=db_url) == ["report.csv"]


def _init_when_released(url: str, start: Any) -> None:
    start.wait(30)
    db.init_db(url)


def test_init_db_from_four_processes_at_once_leaves_the_head(db_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [context.Process(target=_init_when_released, args=(db_url, start)) for _ in range(4)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    engine = db.get_engine(db_url)
    assert db.schema_revision(engine) == db.head_revision()
    assert set(metadata.tables) <= set(inspect(engine).get_table_names())


def test_the_head_read_from_the_revision_files_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    assert db.head_revision() == ScriptDirectory.from_config(db.alembic_config()).get_current_head()
