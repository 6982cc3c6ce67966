"""Database maintenance (SPEC 7, ``scpln db maint``): version retention, KPI retention, VACUUM.

Owns which versions retention removes and how:

- versions older than ``keep_days`` or beyond the newest ``keep_versions`` are deleted from every
  encoding (artifacts, PlanRepository rows, KPIs, PSI overrides and events, then the catalogue row),
  in batches, each batch one transaction, so writers keep going between batches. Versions still
  ``running`` are never touched (a job is writing them), nor are ``approved`` ones (the plan of
  record stays until an operator deletes it by hand);
- KPI retention keeps only the ``total`` bucket of versions older than ``kpi_keep_days``: the month
  buckets leave ``plan_kpis`` and, in the same transaction, the ``kpis`` table of ``plan_final.json``,
  so both encodings keep holding the same plan and ``scpln db check`` stays green;
- ``VACUUM`` (SQLite, then a WAL checkpoint) or ``VACUUM ANALYZE`` (PostgreSQL), outside a transaction.

``dry_run`` reports what would be done and changes nothing. This module decides; the plan store
(``purge_versions``, ``trim_kpis``) does every write of plan content.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from app.planning.model import PlanContent
from app.storage.db import get_engine, now_ms, sqlite_path
from app.storage.plans import PlanStore
from app.storage.schema import plan_kpis, plan_versions

DAY_MS = 86_400_000
#: Versions deleted per transaction.
BATCH = 200
#: Statuses and approvals retention never deletes.
PROTECTED_STATUS = ("running",)
PROTECTED_APPROVAL = ("approved",)
#: The KPI bucket KPI retention keeps.
KEPT_BUCKET = "total"

Progress = Callable[[str, int], None]


@dataclass
class MaintReport:
    dry_run: bool
    deleted_versions: list[str] = field(default_factory=list)
    kept_protected: list[str] = field(default_factory=list)
    kpi_trimmed_versions: list[str] = field(default_factory=list)
    kpi_rows_deleted: int = 0
    vacuumed: bool = False
    size_before: int | None = None
    size_after: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def as_text(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        lines = [f"Retention: {verb} {len(self.deleted_versions)} version(s)"]
        lines += [f"  - {v}" for v in self.deleted_versions]
        if self.kept_protected:
            lines.append(
                f"  kept {len(self.kept_protected)} running/approved version(s) retention would otherwise "
                f"remove: {', '.join(self.kept_protected)}"
            )
        trim = "would trim" if self.dry_run else "trimmed"
        lines.append(
            f"KPI retention: {trim} {self.kpi_rows_deleted} month KPI row(s) of "
            f"{len(self.kpi_trimmed_versions)} version(s)"
        )
        if self.vacuumed:
            lines.append(f"VACUUM done: {_size(self.size_before)} -> {_size(self.size_after)}")
        elif not self.dry_run:
            lines.append("VACUUM skipped")
        return "\n".join(lines)


def run_maintenance(
    engine: Engine | None = None,
    keep_days: float | None = None,
    keep_versions: int | None = None,
    kpi_keep_days: float | None = None,
    vacuum: bool = True,
    dry_run: bool = False,
    *,
    progress: Progress | None = None,
    now: int | None = None,
) -> MaintReport:
    """Apply the retention rules given (None = rule off), then VACUUM unless ``vacuum`` is False or
    ``dry_run`` is set. ``now`` (milliseconds) is the reference time, default the current time."""
    _check_limits(keep_days, keep_versions, kpi_keep_days)
    engine = engine or get_engine()
    now = now_ms() if now is None else now
    report = MaintReport(dry_run=dry_run, size_before=database_size(engine))
    step = progress or (lambda _stage, _pct: None)

    doomed, protected = retention_candidates(engine, keep_days, keep_versions, now)
    report.deleted_versions, report.kept_protected = doomed, protected
    if not dry_run:
        for done in delete_versions(engine, doomed):
            step("deleting versions", int(100 * done / max(len(doomed), 1)))

    if kpi_keep_days is not None:
        counts = kpi_trim_candidates(engine, now - int(kpi_keep_days * DAY_MS), exclude=set(doomed))
        report.kpi_trimmed_versions = list(counts)
        report.kpi_rows_deleted = sum(counts.values())
        if not dry_run:
            store = PlanStore(engine)
            for i, vid in enumerate(counts):
                trim_month_kpis(store, vid)
                step("trimming KPIs", int(100 * (i + 1) / len(counts)))

    if vacuum and not dry_run:
        step("vacuum", 0)
        vacuum_database(engine)
        report.vacuumed = True
        step("vacuum", 100)
    report.size_after = database_size(engine)
    return report


def _check_limits(keep_days: float | None, keep_versions: int | None, kpi_keep_days: float | None) -> None:
    for name, value in (("keep_days", keep_days), ("kpi_keep_days", kpi_keep_days)):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be a positive number of days, not {value!r}")
    if keep_versions is not None and (not isinstance(keep_versions, int) or keep_versions < 1):
        raise ValueError(
            f"keep_versions must be at least 1 (retention never deletes every version), not {keep_versions!r}"
        )


def retention_candidates(
    engine: Engine, keep_days: float | None, keep_versions: int | None, now: int
) -> tuple[list[str], list[str]]:
    """(versions to delete, oldest first; versions the rules select but that are protected)."""
    if keep_days is None and keep_versions is None:
        return [], []
    query = select(
        plan_versions.c.version_id,
        plan_versions.c.created_at,
        plan_versions.c.status,
        plan_versions.c.approval,
    ).order_by(plan_versions.c.created_at.desc(), plan_versions.c.version_id.desc())
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    cutoff = None if keep_days is None else now - int(keep_days * DAY_MS)
    chosen = []
    for rank, row in enumerate(rows):
        too_old = cutoff is not None and row.created_at < cutoff
        too_many = keep_versions is not None and rank >= keep_versions
        if too_old or too_many:
            chosen.append(row)
    chosen.reverse()
    doomed = [
        r.version_id
        for r in chosen
        if r.status not in PROTECTED_STATUS and r.approval not in PROTECTED_APPROVAL
    ]
    protected = [r.version_id for r in chosen if r.version_id not in set(doomed)]
    return doomed, protected


def delete_versions(engine: Engine, version_ids: Sequence[str], batch: int = BATCH):
    """Delete versions from every encoding, ``batch`` per transaction; yields how many are done."""
    store = PlanStore(engine)
    done = 0
    for start in range(0, len(version_ids), batch):
        ids = list(version_ids[start : start + batch])
        store.purge_versions(ids)
        done += len(ids)
        yield done


def kpi_trim_candidates(engine: Engine, cutoff: int, exclude: set[str] | None = None) -> dict[str, int]:
    """Versions created before ``cutoff`` that still hold KPI rows beyond the total bucket, with how many."""
    query = (
        select(plan_kpis.c.version_id, func.count())
        .join(plan_versions, plan_versions.c.version_id == plan_kpis.c.version_id)
        .where(plan_versions.c.created_at < cutoff, plan_kpis.c.bucket_type != KEPT_BUCKET)
        .group_by(plan_kpis.c.version_id)
        .order_by(plan_kpis.c.version_id)
    )
    with engine.connect() as conn:
        counts = {vid: n for vid, n in conn.execute(query)}
    return {v: n for v, n in counts.items() if v not in (exclude or set())}


def trim_month_kpis(store: PlanStore, version_id: str) -> int:
    """Keep only the total-bucket KPIs of a version, in ``plan_kpis`` and in its ``plan_final.json``
    artifact alike, in one transaction. Returns the KPI rows deleted."""
    final = store.read_artifacts(version_id, ["plan_final.json"])
    trimmed = None
    if final is not None and "plan_final.json" in final.documents:
        document = dict(final.documents["plan_final.json"])
        kpis = document.get("kpis")
        if isinstance(kpis, list):
            document["kpis"] = [k for k in kpis if k.get("bucket_type") == KEPT_BUCKET]
            trimmed = PlanContent(version_id, final.params, {"plan_final.json": document})
    return store.trim_kpis(version_id, KEPT_BUCKET, trimmed)


def vacuum_database(engine: Engine) -> None:
    """Give free pages back and refresh statistics; runs outside any transaction."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("VACUUM")
            # VACUUM in WAL mode writes the whole database to the WAL; move it into the main file.
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            conn.exec_driver_sql("VACUUM ANALYZE")


def database_size(engine: Engine) -> int | None:
    """Bytes on disk: the SQLite file and its WAL, or ``pg_database_size`` on PostgreSQL."""
    if engine.dialect.name == "sqlite":
        path = sqlite_path(engine.url.render_as_string(hide_password=False))
        if path is None or not path.exists():
            return None
        wal = path.with_name(path.name + "-wal")
        return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar())
    except Exception:
        return None


def _size(value: int | None) -> str:
    if value is None:
        return "?"
    return f"{value / 1_048_576:.1f} MiB"


def report_json(report: MaintReport) -> str:
    return json.dumps(report.as_dict(), indent=2, sort_keys=True)
