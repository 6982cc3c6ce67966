"""The PlanRepository tables, the job tables, operator settings and API tokens.

Revision ID: 0002
Revises: 0001
Create Date: 2025-10-06

Spell tables and columns out here; never import app code, which changes after this revision is made.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

SERIES_TEXTS = ("label", "zone", "measure", "policy", "message")
SERIES_QUANTITIES = (
    "demand",
    "supply",
    "backlog",
    "inventory_open",
    "inventory_close",
    "prebuild",
    "capacity_total",
    "capacity_used",
    "gross_req",
    "scheduled_receipts",
    "on_hand_start",
    "net_req",
    "planned_order_receipt",
    "planned_order_release",
    "on_hand_end",
    "lot",
    "moq",
    "safety_stock",
    "gross_req_adj",
    "planned_order_receipt_adj",
    "planned_order_release_adj",
    "on_hand_end_adj",
    "capacity",
    "original_load",
    "adjusted_load",
    "prebuild_in",
    "spill_in",
    "spill_out",
    "utilization",
    "fill_rate",
    "qty_before",
    "qty_after",
    "quantity",
    "demand_agg",
    "demand_det",
    "demand_delta",
    "demand_rel",
    "supply_agg",
    "supply_det",
    "supply_delta",
    "supply_rel",
    "backlog_agg",
    "backlog_det",
    "backlog_delta",
    "backlog_rel",
)
SERIES_COUNTS = ("llc", "orders", "lt_weeks", "orders_adj")
SERIES_FLAGS = ("past_due", "past_due_adj", "demand_ok", "supply_ok", "backlog_ok", "ok")


def _version_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["version_id"],
        ["plan_versions.version_id"],
        name=f"fk_{table}_version_id_plan_versions",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "plan_series",
        sa.Column("id", ROW_ID, nullable=False, autoincrement=True),
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("level", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("time_bucket_type", sa.String(16)),
        sa.Column("time_bucket_key", sa.Text()),
        sa.Column("time_bucket_end", sa.Text()),
        sa.Column("period_key", sa.Text()),
        sa.Column("item_key", sa.Text()),
        sa.Column("group_key", sa.Text()),
        sa.Column("location_key", sa.Text()),
        *(sa.Column(name, sa.Text()) for name in SERIES_TEXTS),
        *(sa.Column(name, sa.Double()) for name in SERIES_QUANTITIES),
        *(sa.Column(name, sa.BigInteger()) for name in SERIES_COUNTS),
        *(sa.Column(name, sa.Boolean()) for name in SERIES_FLAGS),
        sa.Column("extra_json", sa.Text()),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_plan_series"),
        _version_fk("plan_series"),
    )
    op.create_index("ix_plan_series_version_id_level_seq", "plan_series", ["version_id", "level", "seq"])

    op.create_table(
        "plan_kpis",
        sa.Column("id", ROW_ID, nullable=False, autoincrement=True),
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("bucket_type", sa.Text(), nullable=False),
        sa.Column("bucket_key", sa.Text(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_plan_kpis"),
        _version_fk("plan_kpis"),
        sa.UniqueConstraint(
            "version_id",
            "metric",
            "bucket_type",
            "bucket_key",
            name="uq_plan_kpis_version_id_metric_bucket_type_bucket_key",
        ),
    )

    op.create_table(
        "plan_overrides",
        sa.Column("id", ROW_ID, nullable=False, autoincrement=True),
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("level", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("payload_json", sa.Text()),
        sa.Column("lock_flag", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("weight", sa.Double()),
        sa.Column("author", sa.Text()),
        sa.Column("source", sa.Text()),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_plan_overrides"),
        _version_fk("plan_overrides"),
        sa.UniqueConstraint(
            "version_id", "level", "key_hash", name="uq_plan_overrides_version_id_level_key_hash"
        ),
    )

    op.create_table(
        "plan_override_events",
        sa.Column("id", ROW_ID, nullable=False, autoincrement=True),
        sa.Column("override_id", ROW_ID),
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("level", sa.String(32)),
        sa.Column("key_hash", sa.String(64)),
        sa.Column("event_type", sa.String(16), nullable=False),
        sa.Column("event_ts", sa.BigInteger(), nullable=False),
        sa.Column("payload_json", sa.Text()),
        sa.Column("actor", sa.Text()),
        sa.Column("notes", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_plan_override_events"),
        sa.ForeignKeyConstraint(
            ["override_id"],
            ["plan_overrides.id"],
            name="fk_plan_override_events_override_id_plan_overrides",
            ondelete="SET NULL",
        ),
        _version_fk("plan_override_events"),
    )
    op.create_index(
        "ix_plan_override_events_version_id_event_ts", "plan_override_events", ["version_id", "event_ts"]
    )

    op.create_table(
        "plan_jobs",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("trigger", sa.String(32)),
        sa.Column("submitted_at", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.BigInteger()),
        sa.Column("finished_at", sa.BigInteger()),
        sa.Column("error", sa.Text()),
        sa.Column("payload_json", sa.Text()),
        sa.Column("progress", sa.Double()),
        sa.Column("stage", sa.String(32)),
        sa.Column("heartbeat_at", sa.BigInteger()),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("job_id", name="pk_plan_jobs"),
    )
    op.create_index("ix_plan_jobs_version_id", "plan_jobs", ["version_id"])
    op.create_index("ix_plan_jobs_status_submitted_at", "plan_jobs", ["status", "submitted_at"])

    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payload_json", sa.Text()),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_jobs"),
    )

    op.create_table(
        "app_settings",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text()),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_app_settings"),
    )

    op.create_table(
        "api_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("label", sa.Text()),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_api_tokens"),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_table("app_settings")
    op.drop_table("jobs")
    op.drop_index("ix_plan_jobs_status_submitted_at", table_name="plan_jobs")
    op.drop_index("ix_plan_jobs_version_id", table_name="plan_jobs")
    op.drop_table("plan_jobs")
    op.drop_index("ix_plan_override_events_version_id_event_ts", table_name="plan_override_events")
    op.drop_table("plan_override_events")
    op.drop_table("plan_overrides")
    op.drop_table("plan_kpis")
    op.drop_index("ix_plan_series_version_id_level_seq", table_name="plan_series")
    op.drop_table("plan_series")
