"""PSI editing routes (SPEC 5.2, 6): view and edit the cells of a plan version, lock them, follow the
history, submit and approve, and reconcile the edits into a child version.

A thin edge: parse, call ``app.services.psi``, format. The actor of every event is the
authenticated caller (``local`` without tokens).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, field_validator

from app.api.auth import Caller, require
from app.api.schemas import VERSION_ID_PATTERN, ErrorBody, StorageMode
from app.config import input_folder_in_roots
from app.services import jobs as jobs_service
from app.services import psi

router = APIRouter(tags=["psi"])

VersionId = Annotated[str, Path(pattern=VERSION_ID_PATTERN, description="Plan version id.")]
Level = Literal["aggregate", "det"]
Filter = Annotated[str | None, Query(min_length=1, max_length=200)]
CellKey = Annotated[
    dict[str, str],
    Field(
        description="`{family, period}` on the aggregate level, `{sku, week, period}` on the det level; "
        "its hash is the SHA-256 of its canonical JSON.",
        examples=[
            {"family": "BLEND", "period": "2026-01"},
            {"sku": "BL-500", "week": "2026-W01", "period": "2026-01"},
        ],
    ),
]
Note = Annotated[str | None, Field(None, max_length=2000, description="Free text recorded on the event.")]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {
        "model": ErrorBody,
        "description": "Unknown version, or its plan is not readable in the storage mode.",
    },
    409: {"model": ErrorBody, "description": "Locked cell, wrong approval state or plan not ready."},
    422: {"model": ErrorBody, "description": "Unknown cell, field or level; bad value; unreachable target."},
}


class PsiEdit(BaseModel):
    key: CellKey
    field: Literal["demand", "supply"] = Field(description="The quantity edited.")
    value: StrictInt | StrictFloat = Field(
        description="The new value: a non-negative number (an integer in int mode)."
    )


class PsiPatch(BaseModel):
    """One PSI request, applied all or nothing: unlocks first, then the edits in order, then the locks."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "level": "aggregate",
                    "edits": [
                        {"key": {"family": "BLEND", "period": "2026-01"}, "field": "demand", "value": 930}
                    ],
                    "lock": [],
                    "unlock": [],
                    "note": "promotion confirmed",
                }
            ]
        }
    )

    level: Level = Field(description="The level the keys below address.")
    edits: list[PsiEdit] = Field(default_factory=list, max_length=10000)
    lock: list[CellKey] = Field(default_factory=list, max_length=10000)
    unlock: list[CellKey] = Field(default_factory=list, max_length=10000)
    note: Note = None


class PsiNoteBody(BaseModel):
    note: Note = None


class ReconcileBody(BaseModel):
    note: Note = None
    input_dir: str | None = Field(
        None,
        max_length=1024,
        description="The input set folder (inside an input root), when the version's input label does not name one.",
    )

    @field_validator("input_dir")
    @classmethod
    def _inside_roots(cls, value: str | None) -> str | None:
        if value is not None:
            input_folder_in_roots(value)
        return value


class PsiPage(BaseModel):
    version_id: str
    level: Level
    approval: str
    mode: str = Field(description="The storage mode PSI state is read and written in.")
    total: int
    limit: int
    offset: int
    rows: list[dict[str, Any]] = Field(
        description="Cells: the current demand/supply (overrides applied), backlog, base_demand/base_supply, "
        "locked, overridden fields, key and key_hash; aggregate rows add detail_demand/detail_supply (the "
        "roll-up of their detail cells), det rows aggregate_demand/aggregate_supply and family_locked."
    )


class PsiChange(BaseModel):
    level: Level
    key: dict[str, str]
    key_hash: str
    field: str
    before: Any
    after: Any
    source: str = Field(
        description="edit, apportion (an aggregate edit's share) or rollup (a detail edit's total)."
    )


class PsiEditResult(BaseModel):
    version_id: str
    level: Level
    mode: str
    approval: str
    changes: list[PsiChange]
    locked: list[dict[str, str]]
    unlocked: list[dict[str, str]]
    events: int = Field(description="Events recorded by this request.")


class PsiEvents(BaseModel):
    version_id: str
    approval: str
    events: list[dict[str, Any]] = Field(
        description="Oldest first: {seq, type, ts, actor, note, level, key_hash, key, before, after, ...}."
    )


class PsiState(BaseModel):
    version_id: str
    status: str
    approval: Literal["draft", "pending", "approved"]
    mode: str
    overrides: list[dict[str, Any]]
    edited_cells: int
    locked_cells: int
    events: int
    last_event: dict[str, Any] | None


class PsiTransition(BaseModel):
    version_id: str
    approval: str
    mode: str
    event: dict[str, Any]


class ReconcileResult(BaseModel):
    version_id: str = Field(description="The new child version.")
    parent_version_id: str
    run_id: str = Field(description="The RunRegistry record of the re-plan (GET /runs/{run_id}).")
    status_url: str


Viewer = Annotated[Caller, Depends(require("viewer"))]
Planner = Annotated[Caller, Depends(require("planner"))]
Approver = Annotated[Caller, Depends(require("approver"))]


@router.get(
    "/plans/{version_id}/psi",
    summary="PSI cells of one level",
    description="A page of the aggregate (family x month) or det (SKU x week bucket) cells with the PSI "
    "overrides applied, lock flags and the other level. Filters: family, sku, period, week, locked, "
    "overridden.",
    response_model=PsiPage,
    responses=ERRORS,
)
def get_psi(
    version_id: VersionId,
    _caller: Viewer,
    level: Annotated[Level, Query(description="aggregate or det.")] = "aggregate",
    family: Filter = None,
    sku: Filter = None,
    period: Filter = None,
    week: Filter = None,
    locked: Annotated[bool | None, Query(description="Only locked (true) or unlocked (false) cells.")] = None,
    overridden: Annotated[
        bool | None, Query(description="Only cells with (true) or without overrides.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=5000, description="Cells per page.")] = 500,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> Any:
    filters = {"family": family, "sku": sku, "period": period, "week": week, "locked": locked,
               "overridden": overridden}  # fmt: skip
    return psi.psi_view(version_id, level, filters, limit, offset)


@router.patch(
    "/plans/{version_id}/psi",
    summary="Edit, lock and unlock PSI cells",
    description="Applies the request all or nothing. An aggregate edit re-apportions the new total over the "
    "unlocked detail cells (largest remainder, current values as weights); a detail edit rolls up to its "
    "family total. Editing a locked cell is a 409; a change after submit sends the plan back to draft. "
    "Every change is recorded as an event with the caller as actor.",
    response_model=PsiEditResult,
    responses=ERRORS,
)
def patch_psi(version_id: VersionId, body: PsiPatch, caller: Planner) -> Any:
    edits = [e.model_dump() for e in body.edits]
    return psi.apply_edits(version_id, body.level, edits, body.lock, body.unlock, body.note, caller.actor)


@router.get(
    "/plans/{version_id}/psi.csv",
    summary="PSI cells of one level as CSV",
    description="Every cell of the level with overrides applied; numbers plain, flags true/false, the "
    "overridden fields joined by ';'.",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "CSV text."}, **ERRORS},
)
def get_psi_csv(
    version_id: VersionId,
    _caller: Viewer,
    level: Annotated[Level, Query(description="aggregate or det.")] = "aggregate",
) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{version_id}-psi-{level}.csv"'}
    return Response(psi.psi_csv(version_id, level), media_type="text/csv; charset=utf-8", headers=headers)


@router.get(
    "/plans/{version_id}/psi/events",
    summary="PSI history",
    description="Every PSI event of the version, oldest first: edits (with the apportioned or rolled-up "
    "cells), locks, unlocks, submit, approve and reconcile, each with actor, time (ms), before/after and note.",
    response_model=PsiEvents,
    responses=ERRORS,
)
def get_psi_events(version_id: VersionId, _caller: Viewer) -> Any:
    return psi.events(version_id)


@router.get(
    "/plans/{version_id}/psi/state",
    summary="PSI state",
    description="The approval (draft, pending, approved), the current overrides and locks, and a summary of "
    "the history.",
    response_model=PsiState,
    responses=ERRORS,
)
def get_psi_state(version_id: VersionId, _caller: Viewer) -> Any:
    return psi.state(version_id)


@router.post(
    "/plans/{version_id}/psi/submit",
    summary="Submit the PSI edits for approval",
    description="draft -> pending; 409 from any other state.",
    response_model=PsiTransition,
    responses=ERRORS,
)
def submit_psi(
    version_id: VersionId, caller: Planner, body: Annotated[PsiNoteBody | None, Body()] = None
) -> Any:
    return psi.submit(version_id, caller.actor, body.note if body else None)


@router.post(
    "/plans/{version_id}/psi/approve",
    summary="Approve the submitted PSI edits",
    description="pending -> approved; 409 unless pending. Needs the approver role.",
    response_model=PsiTransition,
    responses=ERRORS,
)
def approve_psi(
    version_id: VersionId, caller: Approver, body: Annotated[PsiNoteBody | None, Body()] = None
) -> Any:
    return psi.approve(version_id, caller.actor, body.note if body else None)


@router.post(
    "/plans/{version_id}/psi/reconcile",
    status_code=201,
    summary="Re-plan downstream of the PSI edits as a child version",
    description="Plans the version's input set again with its PSI state as decisions — locked cells and "
    "family totals set by a planner are held, unlocked detail edits are weighed by the anchor policy, a "
    "locked supply cell is a firm planned order — so allocation, master schedule, MRP, capacity, KPIs and "
    "exceptions follow them, and the child's aggregate is the roll-up of its own detail. The result is "
    "stored as a new version whose parent_version_id is this one; the parent records a reconcile "
    "event. 409 when the input set is not known (give input_dir), 503 when plan intake is paused.",
    response_model=ReconcileResult,
    responses={**ERRORS, 503: {"model": ErrorBody, "description": "Plan intake paused."}},
)
def reconcile_psi(
    version_id: VersionId,
    caller: Planner,
    body: Annotated[ReconcileBody | None, Body()] = None,
    storage: Annotated[StorageMode | None, Query(description="Storage mode of the child version.")] = None,
) -> Any:
    body = body or ReconcileBody()
    done = jobs_service.reconcile_psi(
        version_id, caller.actor, body.note, input_dir=body.input_dir, storage=storage
    )
    child = done["version_id"]
    return {
        "version_id": child,
        "parent_version_id": version_id,
        "run_id": done["run_id"],
        "status_url": f"/plans/{child}",
    }


class ReopenResult(BaseModel):
    version_id: str = Field(
        description="The new draft version, a copy of the approved plan and its overrides."
    )
    parent_version_id: str = Field(description="The approved version, left exactly as it was.")
    status_url: str


@router.post(
    "/plans/{version_id}/psi/reopen",
    status_code=201,
    summary="Reopen an approved plan as a new draft version",
    description="An approved version is frozen (every PSI change answers 409). Reopening makes a new draft "
    "version whose parent_version_id is the approved one, with the same plan and the same overrides and locks; "
    "its history starts with a reopen event. The approved version and its history are not changed. 409 unless "
    "the version is approved, 503 when plan intake is paused.",
    response_model=ReopenResult,
    responses={**ERRORS, 503: {"model": ErrorBody, "description": "Plan intake paused."}},
)
def reopen_psi(
    version_id: VersionId,
    caller: Planner,
    body: Annotated[PsiNoteBody | None, Body()] = None,
    storage: Annotated[StorageMode | None, Query(description="Storage mode of the new version.")] = None,
) -> Any:
    child = psi.reopen(version_id, caller.actor, body.note if body else None, storage=storage)
    return {"version_id": child, "parent_version_id": version_id, "status_url": f"/plans/{child}"}
