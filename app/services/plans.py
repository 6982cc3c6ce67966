"""Planning service: plan an input set and store the version, and delete a version — what every edge
calls for plans.

Owns the sequence request -> effective storage mode -> intake check -> pipeline -> plan store ->
run record, so the API, the UI, the job worker, the CLI and the rollback verification behave alike,
and the run request as the API and the UI's form take it (``RunBody``).
"""

from __future__ import annotations

import datetime as dt
import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.config import get_settings, input_folder_in_roots, resolve_path
from app.errors import IntakePaused
from app.planning.model import PlanContent, PlanParams
from app.planning.pipeline import Progress, check_version_id, new_version_id, plan_input_set
from app.storage.plans import PlanStore, WriteResult
from app.storage.settings import intake_open

VERSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


@dataclass
class PlanRequest:
    """What to plan: an input set folder (default ``SCPLN_INPUT_DIR``) and the parameters."""

    input_dir: str | None = None
    input_label: str | None = None
    version_id: str | None = None
    params: PlanParams = field(default_factory=PlanParams)
    note: str | None = None
    parent_version_id: str | None = None

    def folder(self) -> Path:
        return resolve_path(self.input_dir) if self.input_dir else get_settings().input_dir

    def label(self) -> str:
        return self.input_label or self.folder().name


@dataclass
class PlanOutcome:
    content: PlanContent
    write: WriteResult
    seconds: float
    run_id: str | None = None

    def kpis(self) -> dict[str, Any]:
        return kpi_totals(self.content)


def kpi_totals(content: PlanContent) -> dict[str, Any]:
    """The plan's total KPIs (metric -> value), from plan_final.json."""
    final = content.documents["plan_final.json"]
    return {k["metric"]: k["value"] for k in final["kpis"] if k["bucket_type"] == "total"}


class RunBody(BaseModel):
    """Parameters of a plan run. Every field is optional; no body at all plans the default input set
    (``SCPLN_INPUT_DIR``, default ``samples/planning``) with the default parameters."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "version_id": "plan-2026-03",
                    "round_mode": "int",
                    "prebuild_months": 1,
                    "note": "March S&OP",
                }
            ]
        },
    )

    input_dir: str | None = Field(
        None, max_length=1024, description="Input set folder on the server (relative to the repository)."
    )
    input_label: str | None = Field(None, max_length=200, description="Label stored with the version.")
    version_id: str | None = Field(
        None, pattern=VERSION_ID_PATTERN, description="Version id; default v<YYYYMMDD-HHMMSS>-<6 hex>."
    )
    round_mode: Literal["int", "none", "dec1", "dec2"] = "int"
    lt_unit: Literal["day", "week"] = "day"
    prebuild_months: int = Field(0, ge=0, le=12)
    prebuild_weeks: int = Field(4, ge=0, le=52)
    cutover_date: dt.date | None = Field(None, description="Cutover date (YYYY-MM-DD) of the anchor policy.")
    recon_window_days: int = Field(0, ge=0, le=366)
    anchor_policy: Literal["DET_near", "AGG_far", "blend"] | None = None
    carryover: Literal["none", "prev", "next", "both", "auto"] = "none"
    carryover_split: float = Field(0.5, ge=0, le=1)
    tol_abs: float = Field(1e-6, ge=0, le=1e12)
    tol_rel: float = Field(1e-6, ge=0, le=1e6)
    note: str | None = Field(None, max_length=2000)

    @field_validator("input_dir")
    @classmethod
    def _usable_path(cls, value: str | None) -> str | None:
        """Refuse what no folder can be (NUL bytes, a ``~user`` prefix naming no user) and any folder
        outside the input roots (``app.config.input_folder_in_roots``): this is the request of the
        HTTP edges."""
        if value is None:
            return value
        if "\x00" in value:
            raise ValueError("input_dir must not contain NUL characters")
        try:
            Path(value).expanduser()
        except RuntimeError:
            raise ValueError(f"input_dir {value!r}: cannot expand '~' (no such user)") from None
        input_folder_in_roots(value)
        return value

    def plan_request(self) -> PlanRequest:
        return PlanRequest(
            input_dir=self.input_dir,
            input_label=self.input_label,
            version_id=self.version_id,
            params=self.params(),
            note=self.note,
        )

    def params(self) -> PlanParams:
        values = self.model_dump(exclude={"input_dir", "input_label", "version_id", "note"})
        if values["cutover_date"] is not None:
            values["cutover_date"] = values["cutover_date"].isoformat()
        return PlanParams(**values)


def check_intake(store: PlanStore) -> None:
    if not intake_open(store.engine):
        raise IntakePaused("plan intake paused")


def run_plan(
    request: PlanRequest,
    *,
    storage: str | None = None,
    store: PlanStore | None = None,
    progress: Progress | None = None,
    enforce_intake: bool = True,
    version_registered: bool = False,
) -> PlanOutcome:
    """Plan ``request`` and write it in the effective storage mode.

    Raises ``InputError`` (bad input), ``StorageModeConflict`` (pinned mode), ``IntakePaused``,
    ``VersionConflict`` or ``StorageError``. ``version_registered`` says a job already created the
    ``running`` catalogue row, which a failure then marks ``failed``.
    """
    store = store or PlanStore()
    mode = store.effective_mode(storage)
    if enforce_intake:
        check_intake(store)
    version_id = check_version_id(request.version_id) if request.version_id else new_version_id()
    started = time.perf_counter()
    with _collector_paused():
        try:
            content = plan_input_set(
                request.folder(),
                request.params,
                version_id=version_id,
                label=request.label(),
                progress=progress,
            )
        except Exception as exc:
            if version_registered:
                store.mark_failed(version_id, f"{type(exc).__name__}: {exc}")
            raise
        write = store.write_version(
            content,
            mode=mode,
            input_label=request.label(),
            note=request.note,
            parent_version_id=request.parent_version_id,
            input_dir=str(request.folder()),
        )
    return PlanOutcome(content, write, time.perf_counter() - started)


class _CollectorPause:
    """Python's cycle collector off while a plan is made and stored. A large plan allocates millions of
    rows and values that hold no cycles, and the collector would walk them again and again (about a
    second of a 10k-SKU run); reference counting still frees them. Runs in several threads nest: the
    collector comes back when the last one ends, if it was on before the first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.was_enabled = False

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self.lock:
            if self.depth == 0:
                self.was_enabled = gc.isenabled()
                gc.disable()
            self.depth += 1
        try:
            yield
        finally:
            with self.lock:
                self.depth -= 1
                if self.depth == 0 and self.was_enabled:
                    gc.enable()


_collector_paused = _CollectorPause()


def delete_plan(version_id: str, store: PlanStore | None = None) -> None:
    """Delete a version from every encoding: catalogue, artifacts and PlanRepository rows."""
    (store or PlanStore()).delete_version(version_id)
