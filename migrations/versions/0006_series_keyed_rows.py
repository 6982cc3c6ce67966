"""``plan_series`` keyed by (version_id, level, seq): the rows are the index.

Every read of ``plan_series`` goes by version, level and ``seq`` (a page is a ``seq`` range), and
``seq`` is unique within a version's level. Until now the table had a surrogate ``id`` and a separate
index on those three columns, which stored each row's version, level and ``seq`` a second time (about a
fifth of the table's bytes). The three columns become the primary key and the surrogate goes: on SQLite
the table is ``WITHOUT ROWID``, so the rows are kept in key order in the key's own B-tree; on PostgreSQL
the primary key's index replaces the old one.

SQLite rebuilds the table (create, copy in key order, drop, rename), which drops its write-generation
triggers, so they are created again as revision 0005 made them. A database holding two rows with the
same key (only a hand-made insert can) is refused with the keys named, before anything changes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

KEY = ("version_id", "level", "seq")
INDEX = "ix_plan_series_version_id_level_seq"


def _revision_0005():
    """Revision 0005's module, which says how the write-generation triggers are made."""
    spec = importlib.util.spec_from_file_location("scpln_revision_0005", Path(__file__).with_name("0005_write_generations.py"))  # fmt: skip
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _series_triggers() -> list[str]:
    return [s for s in _revision_0005().content_triggers("sqlite") if " ON plan_series " in s]


def _columns(conn: sa.Connection) -> list[str]:
    return [c["name"] for c in sa.inspect(conn).get_columns("plan_series") if c["name"] != "id"]


def _refuse_duplicate_keys(conn: sa.Connection) -> None:
    found = conn.execute(
        sa.text(
            "SELECT version_id, level, seq, COUNT(*) FROM plan_series GROUP BY version_id, level, seq "
            "HAVING COUNT(*) > 1 ORDER BY version_id, level, seq LIMIT 5"
        )
    ).all()
    if found:
        named = ", ".join(f"{v}/{lv}/{s} ({n} rows)" for v, lv, s, n in found)
        raise RuntimeError(
            f"plan_series holds rows with the same version, level and seq: {named}; "
            "run `scpln db check` and repair those versions before upgrading"
        )


def _sqlite_rebuild(keyed: bool) -> None:
    """Copy ``plan_series`` into a table of the other shape, in key order, and put it in its place."""
    conn = op.get_bind()
    columns = _columns(conn)
    # the new table's columns: the old ones as they are (types read from the current table)
    current = {c["name"]: c for c in sa.inspect(conn).get_columns("plan_series")}
    new_columns = [sa.Column(name, current[name]["type"], nullable=current[name]["nullable"]) for name in columns]
    if keyed:
        shape = [sa.PrimaryKeyConstraint(*KEY, name="pk_plan_series")]
        options = {"sqlite_with_rowid": False}
    else:
        new_columns.insert(0, sa.Column("id", sa.Integer(), nullable=False, autoincrement=True))
        shape = [sa.PrimaryKeyConstraint("id", name="pk_plan_series")]
        options = {}
    op.create_table(
        "plan_series_rebuilt",
        *new_columns,
        *shape,
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["plan_versions.version_id"],
            name="fk_plan_series_version_id_plan_versions",
            ondelete="CASCADE",
        ),
        **options,
    )
    names = ", ".join(columns)
    op.execute(
        f"INSERT INTO plan_series_rebuilt ({names}) SELECT {names} FROM plan_series ORDER BY version_id, level, seq"
    )
    op.drop_table("plan_series")
    op.rename_table("plan_series_rebuilt", "plan_series")
    if not keyed:
        op.create_index(INDEX, "plan_series", list(KEY))
    for statement in _series_triggers():
        op.execute(statement)


def upgrade() -> None:
    conn = op.get_bind()
    _refuse_duplicate_keys(conn)
    if conn.dialect.name == "sqlite":
        _sqlite_rebuild(keyed=True)
        return
    op.drop_constraint("pk_plan_series", "plan_series", type_="primary")
    op.drop_index(INDEX, table_name="plan_series")
    op.drop_column("plan_series", "id")
    op.create_primary_key("pk_plan_series", "plan_series", list(KEY))


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        _sqlite_rebuild(keyed=False)
        return
    op.drop_constraint("pk_plan_series", "plan_series", type_="primary")
    op.add_column("plan_series", sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False))
    op.create_primary_key("pk_plan_series", "plan_series", ["id"])
    op.create_index(INDEX, "plan_series", list(KEY))
