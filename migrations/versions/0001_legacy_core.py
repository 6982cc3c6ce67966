"""The legacy core: plan versions, plan artifacts and the run registry.

Revision ID: 0001
Revises:
Create Date: 2025-10-06

Spell tables and columns out here; never import app code, which changes after this revision is made.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plan_versions",
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("approval", sa.String(16), nullable=False, server_default="draft"),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("input_label", sa.Text()),
        sa.Column("params_json", sa.Text()),
        sa.Column("storage_mode", sa.String(8)),
        sa.Column("parent_version_id", sa.String(64)),
        sa.Column("note", sa.Text()),
        sa.Column("schema_version", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.PrimaryKeyConstraint("version_id", name="pk_plan_versions"),
    )
    op.create_index("ix_plan_versions_created_at", "plan_versions", ["created_at"])

    op.create_table(
        "plan_artifacts",
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("json_text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("version_id", "name", name="pk_plan_artifacts"),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["plan_versions.version_id"],
            name="fk_plan_artifacts_version_id_plan_versions",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_plan_artifacts_created_at", "plan_artifacts", ["created_at"])

    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("plan_version_id", sa.String(64)),
        sa.Column("plan_job_id", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.BigInteger()),
        sa.Column("finished_at", sa.BigInteger()),
        sa.Column("updated_at", sa.BigInteger()),
        sa.Column("summary_json", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
    )
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    op.create_index("ix_runs_plan_version_id", "runs", ["plan_version_id"])


def downgrade() -> None:
    op.drop_index("ix_runs_plan_version_id", table_name="runs")
    op.drop_index("ix_runs_created_at", table_name="runs")
    op.drop_table("runs")
    op.drop_index("ix_plan_artifacts_created_at", table_name="plan_artifacts")
    op.drop_table("plan_artifacts")
    op.drop_index("ix_plan_versions_created_at", table_name="plan_versions")
    op.drop_table("plan_versions")
