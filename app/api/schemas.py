"""Request and response models of the HTTP API (pydantic): what the OpenAPI document at /docs shows.

Owns the shapes only; routers fill them from service results. Timestamps are integer milliseconds
since the epoch (UTC), like every table.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.services.plans import VERSION_ID_PATTERN, RunBody

__all__ = ["VERSION_ID_PATTERN", "RunBody"]  # the plan-run request is the service's own model

StorageMode = Literal["db", "files", "both"]
Number = int | float


class ErrorBody(BaseModel):
    """Every error response."""

    error: str = Field(description="Short error title, e.g. 'invalid input' or 'plan not found'.")
    detail: Any = Field(None, description="The problems (a list for 422) or a message.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "invalid input",
                    "detail": [
                        {"file": "demand_family.csv", "row": 3, "column": "demand", "reason": "not a number"}
                    ],
                }
            ]
        }
    )


class StorageSummary(BaseModel):
    """What a run wrote: its storage mode, artifact names and PlanRepository row counts."""

    mode: StorageMode
    artifacts: list[str] = Field(description="Artifact names written (files and both modes).")
    series_rows: int = Field(description="plan_series rows written (db and both modes).")
    kpi_rows: int


class RunResult(BaseModel):
    """A plan run that finished (201)."""

    version_id: str
    status: str
    storage: StorageSummary
    kpis: dict[str, Number] = Field(description="Total KPIs of the plan (fill_rate, backlog_total, ...).")
    job_id: str | None = None
    run_id: str | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version_id": "v20260301-120000-a1b2c3",
                    "status": "ready",
                    "storage": {
                        "mode": "files",
                        "artifacts": ["aggregate.json"],
                        "series_rows": 0,
                        "kpi_rows": 0,
                    },
                    "kpis": {"fill_rate": 0.97, "backlog_total": 12},
                    "job_id": "j-1",
                    "run_id": "r-1",
                }
            ]
        }
    )


class JobAccepted(BaseModel):
    """A plan run queued (202); poll ``status_url`` or ``GET /plans/{version_id}``."""

    job_id: str
    version_id: str
    status_url: str


class VersionOut(BaseModel):
    """One plan version of the catalogue."""

    version_id: str
    status: str = Field(description="running | ready | failed")
    approval: str = Field(description="draft | pending | approved")
    storage_mode: str | None = Field(None, description="Encodings the version was written in.")
    created_at: int
    updated_at: int
    input_label: str | None = None
    note: str | None = None
    parent_version_id: str | None = None
    error: str | None = None
    kpis: dict[str, Number] | None = Field(
        None,
        description="Total KPIs when the storage mode reads PlanRepository rows and the version has them.",
    )


class VersionList(BaseModel):
    """A page of the version catalogue and the total count."""

    items: list[VersionOut]
    total: int
    limit: int
    offset: int


class VersionDetail(VersionOut):
    """One version with its parameters and where its content can be read from."""

    params: dict[str, Any] = Field(default_factory=dict)
    schema_version: int | None = None
    artifacts: list[str] = Field(default_factory=list, description="Artifacts stored in plan_artifacts.")
    has_rows: bool | None = Field(
        None, description="Whether PlanRepository rows exist; null in files mode, which never reads them."
    )
    read_from: str | None = Field(None, description="Where tables are read from now: rows or artifacts.")


class Deleted(BaseModel):
    """A deleted version."""

    version_id: str
    deleted: bool = True


class TablePage(BaseModel):
    """A page of one plan table."""

    table: str
    version_id: str
    source: Literal["rows", "artifacts"] = Field(description="The encoding the rows were read from.")
    total: int = Field(description="Rows matching the filters.")
    limit: int
    offset: int
    rows: list[dict[str, Any]]


class ArtifactInfo(BaseModel):
    """One artifact of a version."""

    name: str
    bytes: int | None = Field(None, description="Size of the stored text (null when served from rows).")
    source: Literal["artifacts", "rows"]


class ArtifactList(BaseModel):
    """The artifacts of a version."""

    version_id: str
    items: list[ArtifactInfo]


class DiffRow(BaseModel):
    """One differing cell: a measure of a keyed row (or a KPI) in the base and in this version."""

    level: Literal["aggregate", "sku_week", "plan_final", "kpis"]
    key: str = Field(description="The row key, fields joined by '|' (e.g. 'FAM-A|2026-01').")
    measure: str
    base: Any = Field(description="Effective value in the base version (null when the key is missing there).")
    other: Any = Field(
        description="Effective value in this version, the one of the path (null when missing)."
    )
    delta: Number | None = Field(description="other - base: this version minus the base.")
    unit: str | None = Field(description="Unit of the values: units, count, or the KPI's unit.")


class DiffPage(BaseModel):
    """A page of the differences of a version against its base."""

    version_id: str
    against: str = Field(description="The base version compared with.")
    base_reason: Literal["given", "parent", "previous"] = Field(
        description="Why it is the base: asked for, the version's parent, or the previous version of its input set."
    )
    source: Literal["rows", "artifacts"] = Field(
        description="Compared in the database (rows) or from artifacts."
    )
    summary: dict[str, int] | None = Field(description="Differences per level (null with cursor paging).")
    total: int | None = Field(description="Differences in all (null with cursor paging).")
    limit: int
    offset: int
    rows: list[DiffRow]
    next: str | None = Field(
        default=None,
        description="Cursor paging: pass as `after` for the following page; null at the end (and with offset paging).",
    )


class PegRow(BaseModel):
    """A finished good a component shortage endangers."""

    component: str = Field(description="The short component.")
    shortage_start: str = Field(description="First week of the shortage run.")
    shortage_end: str = Field(description="Last week of the shortage run.")
    shortage_quantity: float = Field(description="Deepest shortage of the run, units.")
    impact: float | None = Field(
        description="Shortage quantity x the component's unit cost; null when unknown."
    )
    item: str = Field(description="The finished good whose orders depend on the component.")
    start: str = Field(description="First receipt week of the finished good at risk.")
    end: str = Field(description="Last receipt week of the finished good at risk.")
    quantity: float = Field(description="Units of the finished good's orders at risk.")


class Pegging(BaseModel):
    """The pegging of a version's component shortages."""

    version_id: str
    rows: list[PegRow]


class Health(BaseModel):
    """Liveness and the operating configuration."""

    status: Literal["ok", "unavailable", "disk full"]
    db: Literal["ok", "error"]
    disk_free_bytes: int | None = Field(
        None, description="Free space beside a SQLite database (null for PostgreSQL); 503 below 8 MB."
    )
    storage_mode: str | None = Field(description="Effective default mode of new plans.")
    storage_pin: str | None
    jobs_enabled: bool | None = Field(description="Plan intake open.")
    maintenance: bool | None
    schema_revision: str | None


class StorageModeIn(BaseModel):
    """Set (or with null clear) the operator pin of the storage mode."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"mode": "files"}, {"mode": None}]}
    )

    mode: StorageMode | None = Field(description="Pin new plans to this mode; null clears the pin.")


class StorageModeOut(BaseModel):
    """The storage mode of new plans."""

    mode: StorageMode = Field(description="Effective mode of new plans.")
    pin: StorageMode | None
    default: StorageMode = Field(description="Mode without a pin: PLAN_STORAGE_MODE, else both.")


class IntakeOut(BaseModel):
    """Whether plan intake is open."""

    jobs_enabled: bool = Field(
        description="Plan intake open (false while paused or started with JOBS_ENABLED=0)."
    )
    paused: bool = Field(description="A pause is stored in the database.")


class MaintenanceIn(BaseModel):
    """Set or clear the maintenance flag."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": True}]})

    enabled: bool


class MaintenanceOut(BaseModel):
    """The maintenance flag."""

    maintenance: bool


class CheckIn(BaseModel):
    """Optional scope of the integrity check."""

    model_config = ConfigDict(extra="forbid")

    version_id: str | None = Field(None, pattern=VERSION_ID_PATTERN, description="Check only this version.")


class BackupOut(BaseModel):
    """A backup file just written."""

    path: str
    bytes: int | None = None


class BackupList(BaseModel):
    """Backup files, newest first."""

    items: list[dict[str, Any]]
