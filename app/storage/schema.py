"""The database tables (SPEC 4.2): one SQLAlchemy Core ``MetaData`` that all code queries through.

Owns table and column names only. The schema itself is created and changed by the Alembic revisions
in ``migrations/versions``, which spell the tables out on their own so that old revisions never change
when this module does; a test checks that the head revision and this module agree.

Timestamps are integer milliseconds since the epoch (UTC). Quantities are DOUBLE, counts BIGINT,
flags BOOLEAN: ``plan_series`` holds typed rows, not blobs (the column each artifact field lands in is
listed in ``app.storage.codec_series``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: An autoincrement key that is a true rowid alias on SQLite and a BIGINT on PostgreSQL.
RowId = BigInteger().with_variant(Integer(), "sqlite")


def _ms(name: str, nullable: bool = False) -> Column:
    """A timestamp column: integer milliseconds since the epoch (UTC)."""
    return Column(name, BigInteger, nullable=nullable)


def _version_fk(primary_key: bool = False) -> Column:
    """``version_id`` of a content table: deleting the version deletes its content."""
    return Column(
        "version_id",
        String(64),
        ForeignKey("plan_versions.version_id", ondelete="CASCADE"),
        primary_key=primary_key,
        nullable=False,
    )


plan_versions = Table(
    "plan_versions",
    metadata,
    Column("version_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # running | ready | failed
    Column("approval", String(16), nullable=False, server_default="draft"),  # draft | pending | approved
    _ms("created_at"),
    _ms("updated_at"),
    Column("input_label", Text),
    Column("input_dir", Text),  # the input set folder, for PSI reconcile (revision 0003)
    Column("params_json", Text),
    Column("storage_mode", String(8)),  # db | files | both: the encodings the version was written in
    Column("parent_version_id", String(64)),
    Column("note", Text),
    Column("schema_version", Integer),
    Column("error", Text),
    # SHA-256 of the content rows and of the plan artifact texts (app.storage.digests; revision 0004)
    Column("rows_digest", String(64)),
    Column("artifacts_digest", String(64)),
    # the write generations those digests were certified at (plan_write_generations; revision 0005)
    Column("certified_rows_generation", BigInteger),
    Column("certified_artifacts_generation", BigInteger),
    Index(None, "created_at"),
)

#: Three counters per version, raised by database triggers on every write to its content tables,
#: whoever writes: ``rows_generation`` by the PlanRepository tables, ``artifacts_generation`` by
#: ``plan_artifacts``, ``copy_generation`` by ``plan_ready_copies`` (revision 0005 creates the
#: triggers; ``app.storage.digests`` says how checks use them).
plan_write_generations = Table(
    "plan_write_generations",
    metadata,
    _version_fk(primary_key=True),
    Column("rows_generation", BigInteger, nullable=False),
    Column("artifacts_generation", BigInteger, nullable=False),
    Column("copy_generation", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

#: The ready copy: each artifact's text compressed (``codec``), kept for the rollback to move into
#: ``plan_artifacts`` without decoding rows, with the digest of the whole copy's texts and the rows
#: generation they were made from. Written by the plan store only.
plan_ready_copies = Table(
    "plan_ready_copies",
    metadata,
    _version_fk(primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("codec", String(16), nullable=False),  # zstd (zlib in copies made before)
    Column("body", LargeBinary, nullable=False),
    Column("text_bytes", BigInteger, nullable=False),  # the UTF-8 length of the text it holds
    Column("artifacts_digest", String(64), nullable=False),  # of every text of the copy
    Column("rows_generation", BigInteger, nullable=False),  # the rows they were made from
    _ms("created_at"),
)

plan_artifacts = Table(
    "plan_artifacts",
    metadata,
    _version_fk(primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("json_text", Text, nullable=False),  # JSON for *.json, the CSV text verbatim for *.csv
    _ms("created_at"),
    Index(None, "created_at"),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("plan_version_id", String(64)),
    Column("plan_job_id", String(64)),
    Column("status", String(16), nullable=False),
    _ms("created_at"),
    _ms("started_at", nullable=True),
    _ms("finished_at", nullable=True),
    _ms("updated_at", nullable=True),
    Column("summary_json", Text),
    Column("error", Text),
    Index(None, "created_at"),
    Index(None, "plan_version_id"),
)

#: Quantity columns of ``plan_series`` (DOUBLE), shared by the levels whose fields mean the same.
SERIES_QUANTITIES = (
    # aggregate, det, report
    "demand", "supply", "backlog", "inventory_open", "inventory_close", "prebuild",
    "capacity_total", "capacity_used",
    # mrp, mrp_final
    "gross_req", "scheduled_receipts", "on_hand_start", "net_req", "planned_order_receipt",
    "planned_order_release", "on_hand_end", "lot", "moq", "safety_stock",
    "gross_req_adj", "planned_order_receipt_adj", "planned_order_release_adj", "on_hand_end_adj",
    # weekly_summary, report
    "capacity", "original_load", "adjusted_load", "prebuild_in", "spill_in", "spill_out", "utilization",
    "fill_rate",
    # anchor_log, exception
    "qty_before", "qty_after", "quantity",
    # recon
    "demand_agg", "demand_det", "demand_delta", "demand_rel",
    "supply_agg", "supply_det", "supply_delta", "supply_rel",
    "backlog_agg", "backlog_det", "backlog_delta", "backlog_rel",
)  # fmt: skip
#: Count columns of ``plan_series`` (BIGINT).
SERIES_COUNTS = ("llc", "orders", "lt_weeks", "orders_adj")
#: Flag columns of ``plan_series`` (BOOLEAN).
SERIES_FLAGS = ("past_due", "past_due_adj", "demand_ok", "supply_ok", "backlog_ok", "ok")
#: Text columns of ``plan_series`` besides the keys.
SERIES_TEXTS = ("label", "zone", "measure", "policy", "message")

#: Keyed by (version_id, level, seq), every read's path: on SQLite a ``WITHOUT ROWID`` table, so the
#: rows are the key's B-tree and no separate index repeats those columns (revision 0006).
plan_series = Table(
    "plan_series",
    metadata,
    _version_fk(primary_key=True),
    Column("level", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),  # row order within the level
    Column("time_bucket_type", String(16)),  # month | bucket (week@period) | week | range
    Column("time_bucket_key", Text),
    Column("time_bucket_end", Text),
    Column("period_key", Text),
    Column("item_key", Text),
    Column("group_key", Text),  # the family of a row
    Column("location_key", Text),
    *(Column(name, Text) for name in SERIES_TEXTS),
    *(Column(name, Double) for name in SERIES_QUANTITIES),
    *(Column(name, BigInteger) for name in SERIES_COUNTS),
    *(Column(name, Boolean) for name in SERIES_FLAGS),
    Column("extra_json", Text),  # small per-row leftovers only
    _ms("created_at"),
    sqlite_with_rowid=False,
)

#: Where a family's or an item's rows lie in a level of ``plan_series``: runs of consecutive ``seq``
#: holding one ``group_key`` (``key_kind`` ``group``) or ``item_key`` (``item``), so a page about one
#: family or a few items reads those rows by key range instead of scanning the level. Written with the
#: rows by the plan store only (``app.storage.spans``); derived from the rows, so not plan content:
#: no digest covers it and no generation counts it (revision 0007).
plan_series_spans = Table(
    "plan_series_spans",
    metadata,
    _version_fk(primary_key=True),
    Column("level", String(32), primary_key=True),
    Column("key_kind", String(8), primary_key=True),  # group | item
    Column("key", Text, primary_key=True),
    Column("first_seq", Integer, primary_key=True, autoincrement=False),
    Column("last_seq", Integer, nullable=False),
    sqlite_with_rowid=False,
)

plan_kpis = Table(
    "plan_kpis",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    _version_fk(),
    Column("seq", Integer, nullable=False),  # row order of plan_final.json's kpis table
    Column("metric", Text, nullable=False),
    Column("bucket_type", Text, nullable=False),  # total | month
    Column("bucket_key", Text, nullable=False),
    Column("value", Double, nullable=False),
    Column("unit", Text, nullable=False),
    _ms("created_at"),
    UniqueConstraint("version_id", "metric", "bucket_type", "bucket_key"),
)

plan_overrides = Table(
    "plan_overrides",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    _version_fk(),
    Column("level", String(32), nullable=False),  # aggregate | det
    Column("key_hash", String(64), nullable=False),  # SHA-256 of the cell key's canonical JSON
    Column("payload_json", Text),
    Column("lock_flag", Boolean, nullable=False, server_default=false()),
    Column("weight", Double),
    Column("author", Text),
    Column("source", Text),
    _ms("created_at"),
    _ms("updated_at"),
    UniqueConstraint("version_id", "level", "key_hash"),
)

plan_override_events = Table(
    "plan_override_events",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("override_id", RowId, ForeignKey("plan_overrides.id", ondelete="SET NULL")),
    _version_fk(),
    Column("level", String(32)),
    Column("key_hash", String(64)),
    Column("event_type", String(16), nullable=False),  # edit|lock|unlock|submit|approve|reconcile|...
    _ms("event_ts"),
    Column("payload_json", Text),
    Column("actor", Text),
    Column("notes", Text),
    Index(None, "version_id", "event_ts"),
)

plan_jobs = Table(
    "plan_jobs",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("version_id", String(64)),
    Column("status", String(16), nullable=False),  # queued | running | succeeded | failed | canceled
    Column("run_id", String(64)),
    Column("trigger", String(32)),
    _ms("submitted_at"),
    _ms("started_at", nullable=True),
    _ms("finished_at", nullable=True),
    Column("error", Text),
    Column("payload_json", Text),
    Column("progress", Double),
    Column("stage", String(32)),
    _ms("heartbeat_at", nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("cancel_requested", Boolean, nullable=False, server_default=false()),
    Index(None, "version_id"),
    Index(None, "status", "submitted_at"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("queue", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("payload_json", Text),
    _ms("created_at"),
    _ms("updated_at"),
)

app_settings = Table(
    "app_settings",
    metadata,
    Column("key", String(64), primary_key=True),  # e.g. storage_mode_pin, jobs_paused, maintenance
    Column("value", Text),
    _ms("updated_at"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("role", String(16), nullable=False),  # viewer | planner | approver | admin
    Column("label", Text),
    _ms("created_at"),
)
