"""Run routes (SPEC 5.2): the RunRegistry's records (``app.run_registry.REGISTRY``), read-only."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from app.api.auth import VIEWER
from app.api.schemas import ErrorBody
from app.errors import RunNotFound

router = APIRouter(tags=["runs"])

RunId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$", description="Run id.")]


def _registry():
    from app.run_registry import REGISTRY

    return REGISTRY


def as_record(record: Any) -> dict[str, Any]:
    """A registry record as a JSON object, whatever form the backend keeps it in."""
    if isinstance(record, dict):
        return record
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return dataclasses.asdict(record)
    for method in ("as_dict", "model_dump", "to_dict"):
        if hasattr(record, method):
            return getattr(record, method)()
    return dict(vars(record))


@router.get(
    "/runs",
    summary="List runs",
    description="Runs recorded in the RunRegistry (memory or db backend), newest first, paged.",
    responses={422: {"model": ErrorBody, "description": "Invalid parameters."}},
    dependencies=[VIEWER],
)
def list_runs(
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> dict[str, Any]:
    registry = _registry()
    records = [as_record(r) for r in registry.list(limit=limit, offset=offset)]
    return {"items": records, "total": registry.count(), "limit": limit, "offset": offset}


@router.get(
    "/runs/{run_id}",
    summary="Show one run",
    description="One RunRegistry record: its plan version, job, status, timestamps and summary.",
    responses={404: {"model": ErrorBody, "description": "Unknown run."}, 422: {"model": ErrorBody}},
    dependencies=[VIEWER],
)
def get_run(run_id: RunId) -> dict[str, Any]:
    try:
        record = _registry().get(run_id)
    except KeyError:
        record = None
    if record is None:
        raise RunNotFound(f"run {run_id!r} does not exist")
    return as_record(record)
