"""Plan routes (SPEC 5.2): run, list, show, delete, the plan tables (JSON pages and CSV), artifacts,
the AGG-vs-DET comparison and the diff between two versions.

A thin edge: parse, call the plan and job services or the read model (``app.storage.views``), format.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.auth import ADMIN, PLANNER, VIEWER, Store
from app.api.schemas import (
    VERSION_ID_PATTERN,
    ArtifactInfo,
    ArtifactList,
    Deleted,
    DiffPage,
    ErrorBody,
    JobAccepted,
    Pegging,
    RunBody,
    RunResult,
    StorageMode,
    TablePage,
    VersionDetail,
    VersionList,
    VersionOut,
)
from app.planning.model import PLAN_ARTIFACTS, PSI_ARTIFACTS
from app.services import jobs, plans
from app.storage import diff as plan_diff
from app.storage import views
from app.storage.plans import VersionInfo

router = APIRouter(tags=["plans"])

VersionId = Annotated[str, Path(pattern=VERSION_ID_PATTERN, description="Plan version id.")]
KNOWN_ARTIFACTS = PLAN_ARTIFACTS + PSI_ARTIFACTS
ArtifactName = Annotated[Literal[KNOWN_ARTIFACTS], Path(description="A known artifact name.")]  # type: ignore[valid-type]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown version or content missing."},
    422: {"model": ErrorBody, "description": "Invalid parameters."},
}
CSV = {"content": {"text/csv": {}}, "description": "CSV text."}


# --- run ---------------------------------------------------------------------------------------


@router.post(
    "/plans/integrated/run",
    summary="Run the planning pipeline",
    description=(
        "Plan an input set and store the version. The body is optional: without one (and without a "
        "content type) the default input set is planned with default parameters. `storage` asks for a "
        "storage mode (409 when an operator pin fixes another); `async=true` queues a job and answers 202 "
        "at once, otherwise the call waits and answers 201. 422 lists every problem of a bad input set; "
        '503 `{"error": "plan intake paused"}` while intake is paused.'
    ),
    status_code=201,
    response_model=RunResult,
    responses={
        202: {"model": JobAccepted, "description": "Queued (async=true)."},
        409: {"model": ErrorBody, "description": "Pinned storage mode or existing version id."},
        422: {"model": ErrorBody, "description": "Invalid input set or parameters."},
        503: {"model": ErrorBody, "description": "Plan intake paused."},
    },
    dependencies=[PLANNER],
)
def run_integrated(
    body: Annotated[RunBody | None, Body()] = None,
    storage: Annotated[StorageMode | None, Query(description="db | files | both")] = None,
    run_async: Annotated[bool, Query(alias="async", description="Queue a job and return 202.")] = False,
) -> Any:
    plan = (body or RunBody()).plan_request()
    if run_async:
        queued = jobs.submit_plan(plan, storage, "api")
        accepted = JobAccepted(**{k: queued[k] for k in ("job_id", "version_id", "status_url")})
        return JSONResponse(accepted.model_dump(), status_code=202)
    return jobs.run_plan_now(plan, storage, "api")


# --- catalogue ---------------------------------------------------------------------------------


def _version_out(info: VersionInfo, kpis: dict[str, Any] | None) -> dict[str, Any]:
    fields = VersionOut.model_fields
    return {**{k: v for k, v in info.as_dict().items() if k in fields}, "kpis": kpis}


@router.get(
    "/plans",
    summary="List plan versions",
    description="A page of the version catalogue, newest first by default, with the total count. KPIs are "
    "included when the storage mode reads PlanRepository rows (one query per page).",
    response_model=VersionList,
    responses=ERRORS,
    dependencies=[VIEWER],
)
async def list_plans(  # a few indexed queries: served on the event loop, no thread hop
    store: Store,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    status: Annotated[str | None, Query(pattern="^(running|ready|failed)$")] = None,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
) -> Any:
    versions, total, kpis = views.plan_list(store, limit, offset, status, order)
    items = [_version_out(v, kpis.get(v.version_id)) for v in versions]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get(
    "/plans/{version_id}",
    name="get_plan",
    summary="Show one plan version",
    description="Catalogue entry, parameters, stored artifacts, whether PlanRepository rows exist (not "
    "looked up in files mode) and total KPIs. `status` is running, ready or failed.",
    response_model=VersionDetail,
    responses=ERRORS,
    dependencies=[VIEWER],
)
def get_plan(version_id: VersionId, store: Store) -> Any:
    found = views.plan_detail(store, version_id)
    return {
        **_version_out(found.info, found.kpis),
        "params": found.info.params,
        "schema_version": found.info.schema_version,
        "artifacts": found.artifacts,
        "has_rows": found.has_rows,
        "read_from": found.read_from,
    }


@router.delete(
    "/plans/{version_id}",
    summary="Delete a plan version (admin)",
    description="Deletes the version from every encoding: catalogue, artifacts and PlanRepository rows.",
    response_model=Deleted,
    responses=ERRORS,
    dependencies=[ADMIN],
)
def delete_plan(version_id: VersionId, store: Store) -> Any:
    plans.delete_plan(version_id, store)
    return {"version_id": version_id, "deleted": True}


# --- tables ------------------------------------------------------------------------------------

Filter = Annotated[str | None, Query(min_length=1, max_length=200)]


async def _table_filters(
    family: Filter = None,
    sku: Filter = None,
    item: Filter = None,
    period: Filter = None,
    week: Filter = None,
    metric: Filter = None,
) -> dict[str, str | None]:
    """The filter query parameters every table route takes (a table refuses the ones it lacks)."""
    return {"family": family, "sku": sku, "item": item, "period": period, "week": week, "metric": metric}


TableFilters = Annotated[dict[str, str | None], Depends(_table_filters)]


def _add_table_routes(name: str, spec: views.TableSpec) -> None:
    filters = ", ".join(sorted(spec.filters))

    async def page(  # from rows: three short indexed queries on the event loop, no thread hop
        version_id: VersionId,
        store: Store,
        given: TableFilters,
        limit: Annotated[int, Query(ge=1, le=5000, description="Rows per page.")] = 500,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    ) -> Any:
        page = views.read_rows_page(store, version_id, name, given, limit, offset)
        if page is None:  # read from an artifact: parsing it may take a while, so not on the event loop
            page = await run_in_threadpool(views.read_page, store, version_id, name, given, limit, offset)
        # Rows are plain JSON values already: serialized once here, not validated again against the model.
        return Response(orjson.dumps(page.__dict__), media_type="application/json")

    def download(
        version_id: VersionId,
        store: Store,
        given: TableFilters,
    ) -> Any:
        source, chunks = views.csv_stream(store, version_id, name, given)
        headers = {
            "Content-Disposition": f'attachment; filename="{version_id}-{name}.csv"',
            "X-Scpln-Source": source,
        }
        return StreamingResponse(chunks, media_type="text/csv; charset=utf-8", headers=headers)

    page.__name__, download.__name__ = f"get_{name}", f"get_{name}_csv"
    router.add_api_route(
        f"/plans/{{version_id}}/{name}",
        page,
        methods=["GET"],
        summary=f"Page of the {name} table",
        description=f"One page of the {spec.title}. Filters: {filters}; other filters are a 422. Read from "
        "PlanRepository rows (SQL paging) or from the artifact, as the storage mode says.",
        response_model=TablePage,
        responses=ERRORS,
        dependencies=[VIEWER],
        tags=["tables"],
    )
    router.add_api_route(
        f"/plans/{{version_id}}/{name}.csv",
        download,
        methods=["GET"],
        summary=f"The {name} table as CSV",
        description=f"The whole {spec.title} (filtered by {filters}) as CSV; numbers plain, flags true/false.",
        response_class=StreamingResponse,
        responses={200: CSV, **ERRORS},
        dependencies=[VIEWER],
        tags=["tables"],
    )


for _name, _spec in views.TABLES.items():
    _add_table_routes(_name, _spec)


# --- artifacts -----------------------------------------------------------------------------------


@router.get(
    "/plans/{version_id}/artifacts",
    summary="List a version's artifacts",
    description="Names and sizes of the stored artifacts. A version held only as PlanRepository rows lists "
    "the documents its rows rebuild (when the storage mode reads rows), with no size.",
    response_model=ArtifactList,
    responses=ERRORS,
    dependencies=[VIEWER],
)
def list_artifacts(version_id: VersionId, store: Store) -> Any:
    items = views.artifact_list(store, version_id, KNOWN_ARTIFACTS)
    return {"version_id": version_id, "items": [ArtifactInfo(**i) for i in items]}


@router.get(
    "/plans/{version_id}/artifacts/{name}",
    summary="Download one artifact",
    description="The artifact text (JSON or CSV) exactly as stored. Only known artifact names are "
    "accepted; anything else is a 422. A version held only as rows has its artifact rebuilt from them "
    "when the storage mode reads rows.",
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}, **ERRORS},
    dependencies=[VIEWER],
)
def get_artifact(version_id: VersionId, name: ArtifactName, store: Store) -> Any:
    text = views.artifact_text(store, version_id, name)
    media = "text/csv; charset=utf-8" if name.endswith(".csv") else "application/json"
    return Response(text, media_type=media)


@router.get(
    "/plans/{version_id}/pegging",
    summary="Finished goods endangered by component shortages",
    description="For every component shortage of the plan (after capacity reconciliation), the finished "
    "goods whose orders need the component in the short weeks, followed up the bill of material, with "
    "the receipt weeks and order quantity at risk. Largest shortage impact first. `item` keeps the rows "
    "naming that item as the component or as the finished good.",
    response_model=Pegging,
    responses=ERRORS,
    dependencies=[VIEWER],
)
def pegging(version_id: VersionId, store: Store, item: Filter = None) -> Any:
    return {"version_id": version_id, "rows": views.pegging_rows(store, version_id, item)}


# --- comparisons ---------------------------------------------------------------------------------


@router.get(
    "/plans/{version_id}/compare.csv",
    summary="Aggregate vs detail comparison (CSV)",
    description="One row per family, period and measure of the level reconciliation: "
    "`family,period,measure,agg,det,delta,rel,ok`. `violations_only` keeps the violations: rows outside "
    "tolerance, except supply that moved by no more than one lot per SKU (info).",
    response_class=PlainTextResponse,
    responses={200: CSV, **ERRORS},
    dependencies=[VIEWER],
)
def compare(version_id: VersionId, store: Store, violations_only: bool = False) -> Any:
    text = views.compare_text(store, version_id, violations_only)
    headers = {"Content-Disposition": f'attachment; filename="{version_id}-compare.csv"'}
    return PlainTextResponse(text, media_type="text/csv; charset=utf-8", headers=headers)


AgainstId = Annotated[
    str | None,
    Query(
        pattern=VERSION_ID_PATTERN,
        description="The base version. Default: the version's parent (a reconcile or reopen child), else the "
        "previous ready version of the same input set.",
    ),
]
AcrossInputs = Annotated[
    bool,
    Query(description="Confirm a comparison with a version planned from another input set (else 409)."),
]
DIFF_DESCRIPTION = (
    "What changed from the base to this version: one row per (level, key, measure) whose effective value "
    "(PSI overrides applied) differs, over the aggregate, sku_week and plan_final rows and the KPIs, with "
    "`delta = other - base` (this version minus the base) and the unit. A key present in one version only "
    "has null on the other side. Between versions stored as rows the database finds the differences. "
    "409 when there is no base, or when the base was planned from another input set and `across_inputs` "
    "is not set. Two ways to page: by `offset`, with every level's count (the whole diff is walked: "
    "seconds at 10k SKUs), or by cursor (`counts=false`, then `after=<next>`), without counts, each page "
    "walking only as far as it needs. A cursor page holds whole keys, so it may hold a few rows more "
    "than `limit`, and it stops early after a bounded time spent comparing (then `next` goes on from "
    "there); the pages put together are the whole diff, in the same order."
)


@router.get(
    "/plans/{version_id}/diff",
    summary="What changed against the base version",
    description=DIFF_DESCRIPTION,
    response_model=DiffPage,
    responses=ERRORS,
    dependencies=[VIEWER],
)
def diff(
    version_id: VersionId,
    store: Store,
    against: AgainstId = None,
    across_inputs: AcrossInputs = False,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[
        int,
        Query(
            ge=0,
            le=10**9,
            description="Offset paging: rows to skip (the whole diff is walked for its counts).",
        ),
    ] = 0,
    counts: Annotated[
        bool,
        Query(
            description="false: cursor paging. No whole counts (`summary` and `total` are null); the walk goes "
            "only as far as the page needs, so a page costs the same at any plan size. The KPI rows come on "
            "the first page; `next` is the cursor of the following page (null at the end)."
        ),
    ] = True,
    after: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Cursor paging: the `next` of the previous page (implies counts=false).",
        ),
    ] = None,
) -> Any:
    head = {"version_id": version_id, "limit": limit}
    if after is not None or not counts:
        if offset:
            raise ValueError(
                "offset pages a diff with counts; with a cursor (counts=false, after) leave it out"
            )
        cursor = plan_diff.Cursor.parse(after) if after else None
        page = plan_diff.diff_page(store, version_id, against, across_inputs, after=cursor, limit=limit)
        return {
            **head, "against": page.against, "base_reason": page.base_reason, "source": page.source,
            "summary": None, "total": None, "offset": 0,
            "rows": (page.kpis if cursor is None else []) + page.cells,
            "next": page.next.text() if page.next else None,
        }  # fmt: skip
    found = plan_diff.diff_versions(store, version_id, against, across_inputs, offset=offset, limit=limit)
    return {
        **head, "against": found.against, "base_reason": found.base_reason, "source": found.source,
        "summary": found.counts, "total": found.total, "offset": offset, "rows": found.rows, "next": None,
    }  # fmt: skip


@router.get(
    "/plans/{version_id}/diff.csv",
    summary="What changed against the base version (CSV)",
    description="The whole diff as CSV: `level,key,measure,base,other,delta` (other = this version; "
    "delta = other - base); numbers plain. Same base rules and 409s as `/diff`.",
    response_class=StreamingResponse,
    responses={200: CSV, **ERRORS},
    dependencies=[VIEWER],
)
def diff_csv(
    version_id: VersionId, store: Store, against: AgainstId = None, across_inputs: AcrossInputs = False
) -> Any:
    base_id, chunks = plan_diff.diff_csv_stream(store, version_id, against, across_inputs)
    headers = {"Content-Disposition": f'attachment; filename="{version_id}-diff-{base_id}.csv"'}
    return StreamingResponse(chunks, media_type="text/csv; charset=utf-8", headers=headers)
