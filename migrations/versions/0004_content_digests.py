"""Content digests of each version's two encodings (rows and artifacts), for checks without decoding.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("plan_versions") as batch:
        batch.add_column(sa.Column("rows_digest", sa.String(64), nullable=True))
        batch.add_column(sa.Column("artifacts_digest", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("plan_versions") as batch:
        batch.drop_column("artifacts_digest")
        batch.drop_column("rows_digest")
