"""Per-version write generations kept by database triggers, and the ready copy of each version's artifacts.

``plan_write_generations`` holds three counters per version: ``rows_generation`` (``plan_series``,
``plan_kpis``, ``plan_overrides``, ``plan_override_events``), ``artifacts_generation``
(``plan_artifacts``) and ``copy_generation`` (``plan_ready_copies``). Triggers on every content table add
one to the counter of each version a write touches, whoever writes: the plan store, or an operator's
hand-made ``UPDATE`` in ``sqlite3`` or ``psql``. ``plan_versions`` gains the generations its certified
digests were recorded at (``certified_rows_generation``, ``certified_artifacts_generation``).

SQLite has only row-level triggers: each is one ``UPDATE`` of the counter's row by primary key. The plan
store inserts that row after a new version's rows, so a first write's row triggers find no row to update
(an index probe, no write). PostgreSQL uses statement-level triggers with transition tables: one
``UPDATE`` per statement (per ``COPY``), whatever its row count.

``plan_ready_copies`` holds the zlib-compressed text of each version's artifacts with the digest of
those texts and the rows generation they were made at, written only by the plan store
(``app.storage.plans``), for the rollback to verify and move instead of decoding rows.

Note for later revisions: on SQLite a batch ("move and copy") alteration of a content table drops its
triggers; such a revision must create them again (``content_triggers`` below says how).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: The content tables, each with the generation column its writes raise.
CONTENT_TABLES = {
    "plan_series": "rows_generation",
    "plan_kpis": "rows_generation",
    "plan_overrides": "rows_generation",
    "plan_override_events": "rows_generation",
    "plan_artifacts": "artifacts_generation",
    "plan_ready_copies": "copy_generation",
}
_EVENTS = ("insert", "update", "delete")


def _sqlite_triggers(table: str, column: str) -> list[str]:
    name = f"trg_{table}_generation"
    bump = f"UPDATE plan_write_generations SET {column} = {column} + 1 WHERE version_id = {{}}.version_id"
    return [
        f"CREATE TRIGGER {name}_insert AFTER INSERT ON {table} BEGIN {bump.format('NEW')}; END",
        f"CREATE TRIGGER {name}_update AFTER UPDATE ON {table} BEGIN {bump.format('NEW')}; "
        # a row moved to another version changes that one too
        f"{bump.format('OLD')} AND OLD.version_id IS NOT NEW.version_id; END",
        f"CREATE TRIGGER {name}_delete AFTER DELETE ON {table} BEGIN {bump.format('OLD')}; END",
    ]


#: PostgreSQL trigger functions: (name suffix, the versions a statement touched).
_PG_SOURCES = {
    "new": "SELECT DISTINCT version_id FROM new_rows",
    "old": "SELECT DISTINCT version_id FROM old_rows",
    "both": "SELECT version_id FROM new_rows UNION SELECT version_id FROM old_rows",
}


def _pg_functions() -> list[str]:
    out = []
    for column in sorted(set(CONTENT_TABLES.values())):
        for kind, source in _PG_SOURCES.items():
            out.append(
                f"CREATE FUNCTION scpln_{column}_{kind}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"UPDATE plan_write_generations SET {column} = {column} + 1 WHERE version_id IN ({source}); "
                "RETURN NULL; END $$"
            )
        # TRUNCATE names no rows: every version's generation changes
        out.append(
            f"CREATE FUNCTION scpln_{column}_all() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"UPDATE plan_write_generations SET {column} = {column} + 1; RETURN NULL; END $$"
        )
    return out


def _pg_triggers(table: str, column: str) -> list[str]:
    name, fn = f"trg_{table}_generation", f"scpln_{column}"
    return [
        f"CREATE TRIGGER {name}_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {fn}_new()",
        f"CREATE TRIGGER {name}_update AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows "
        f"NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {fn}_both()",
        f"CREATE TRIGGER {name}_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {fn}_old()",
        f"CREATE TRIGGER {name}_truncate AFTER TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {fn}_all()",
    ]


def content_triggers(dialect: str) -> list[str]:
    """The statements creating the generation triggers (functions first on PostgreSQL)."""
    if dialect == "postgresql":
        return [*_pg_functions(), *(s for t, c in CONTENT_TABLES.items() for s in _pg_triggers(t, c))]
    return [s for t, c in CONTENT_TABLES.items() for s in _sqlite_triggers(t, c)]


def upgrade() -> None:
    op.create_table(
        "plan_write_generations",
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("rows_generation", sa.BigInteger(), nullable=False),
        sa.Column("artifacts_generation", sa.BigInteger(), nullable=False),
        sa.Column("copy_generation", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["plan_versions.version_id"],
            name="fk_plan_write_generations_version_id_plan_versions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version_id", name="pk_plan_write_generations"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "plan_ready_copies",
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("codec", sa.String(16), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("text_bytes", sa.BigInteger(), nullable=False),
        sa.Column("artifacts_digest", sa.String(64), nullable=False),
        sa.Column("rows_generation", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["plan_versions.version_id"],
            name="fk_plan_ready_copies_version_id_plan_versions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version_id", "name", name="pk_plan_ready_copies"),
    )
    with op.batch_alter_table("plan_versions") as batch:
        batch.add_column(sa.Column("certified_rows_generation", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("certified_artifacts_generation", sa.BigInteger(), nullable=True))
    # versions stored before this revision get counters; nothing is certified at them yet
    op.execute(
        "INSERT INTO plan_write_generations (version_id, rows_generation, artifacts_generation, copy_generation) "
        "SELECT version_id, 0, 0, 0 FROM plan_versions"
    )
    for statement in content_triggers(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in CONTENT_TABLES:
        for event in (*_EVENTS, "truncate"):
            if event == "truncate" and dialect != "postgresql":
                continue
            on = f" ON {table}" if dialect == "postgresql" else ""
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_generation_{event}{on}")
    if dialect == "postgresql":
        for column in sorted(set(CONTENT_TABLES.values())):
            for kind in (*_PG_SOURCES, "all"):
                op.execute(f"DROP FUNCTION IF EXISTS scpln_{column}_{kind}()")
    with op.batch_alter_table("plan_versions") as batch:
        batch.drop_column("certified_artifacts_generation")
        batch.drop_column("certified_rows_generation")
    op.drop_table("plan_ready_copies")
    op.drop_table("plan_write_generations")
