"""``plan_series_spans``: where each family's and item's rows lie in a level of ``plan_series``.

A page about one family (the PSI grid) or a few items (their MRP records) read its rows by scanning the
version's level, because ``plan_series`` is keyed by (version, level, seq) only; an index on the family
or the item would store those keys once more for every row. This table stores, per version and level,
each run of consecutive ``seq`` holding one ``group_key`` or ``item_key`` (one row per family or item:
the planner writes a key's rows together), so such a page reads a key range. The plan store writes it
with the rows. Versions stored before this revision have none and are read by scanning, as before, until
their rows are written again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plan_series_spans",
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("level", sa.String(32), nullable=False),
        sa.Column("key_kind", sa.String(8), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("first_seq", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["plan_versions.version_id"],
            name="fk_plan_series_spans_version_id_plan_versions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "version_id", "level", "key_kind", "key", "first_seq", name="pk_plan_series_spans"
        ),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("plan_series_spans")
