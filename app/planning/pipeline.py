"""The planning pipeline: inputs -> aggregate -> allocate -> anchor -> MRP -> capacity -> levels -> report.

Owns the order of the stages and the translation of stage results into the artifact documents of the
plan content. Pure: no database, web or file access (``plan_input_set`` only reads the input set).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.planning import documents as docs
from app.planning.aggregate import plan_aggregate
from app.planning.allocate import allocate_to_weeks
from app.planning.anchor import apply_anchor, boundary_summary, week_zones
from app.planning.capacity import reconcile_capacity
from app.planning.derive import derivation_params
from app.planning.inputs import load_input_set
from app.planning.levels import reconcile_levels
from app.planning.model import (
    VERSION_ID_RE,
    AggregateResult,
    AllocationResult,
    CapacityResult,
    Decisions,
    MrpResult,
    PlanContent,
    PlanInputs,
    PlanParams,
)
from app.planning.mrp import fg_gross_from_buckets, master_schedule, run_mrp
from app.planning.report import (
    build_exceptions,
    compute_kpis,
    exception_facts,
    report_csv,
    report_rows,
    weekly_summary_rows,
)

#: Stage names in order, as reported to progress callbacks.
STAGES = ("aggregate", "allocate", "anchor", "mrp", "capacity", "levels", "report", "documents")

Progress = Callable[[str, int], None]


def new_version_id(now: dt.datetime | None = None) -> str:
    """``v<YYYYMMDD-HHMMSS>-<6 hex>`` in UTC."""
    now = now or dt.datetime.now(dt.UTC)
    return f"v{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def check_version_id(version_id: str) -> str:
    if not VERSION_ID_RE.match(version_id or ""):
        raise ValueError(
            f"invalid version id {version_id!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return version_id


@dataclass
class StageResults:
    """Every stage's result, kept for callers that want more than the documents (benchmarks, tests)."""

    aggregate: AggregateResult
    allocation: AllocationResult
    anchor_log: list[dict[str, Any]]
    fg_gross: np.ndarray
    mrp: MrpResult
    capacity: CapacityResult
    reconciliation: dict[str, Any]
    exceptions: list[dict[str, Any]]
    kpis: list[dict[str, Any]]
    report: list[dict[str, Any]]


def run_stages(
    inputs: PlanInputs,
    params: PlanParams,
    decisions: Decisions | None = None,
    progress: Progress | None = None,
) -> StageResults:
    """Run every stage on validated inputs; a planner's ``decisions`` enter at allocate (SPEC 3)."""
    step = _stepper(progress)
    decisions = decisions or Decisions()
    step("aggregate")
    agg = plan_aggregate(inputs, params)
    step("allocate")
    alloc = decisions.apply_edits(allocate_to_weeks(inputs, agg, params, locks=decisions.held))
    step("anchor")
    agg, alloc, anchor_log = apply_anchor(inputs, agg, alloc, params, locks=decisions.held)
    step("mrp")
    fg_gross = fg_gross_from_buckets(inputs.calendar, alloc.demand)
    # the S&OP supply, allocated to SKUs, is the finished goods' master schedule (SPEC 3.3)
    schedule = master_schedule(inputs, alloc.supply, params, firm=decisions.firm)
    mrp = run_mrp(inputs, fg_gross, params, fg_receipts=schedule)
    step("capacity")
    cap = reconcile_capacity(inputs, mrp, fg_gross, params, week_zones(inputs.calendar, params))
    step("levels")
    recon = reconcile_levels(inputs, agg, alloc, cap, params)
    step("report")
    exceptions = build_exceptions(inputs, agg, alloc, mrp, cap, recon, params)
    kpis = compute_kpis(inputs, alloc, mrp, cap, exceptions, params)
    report = report_rows(inputs, alloc, cap, params)
    return StageResults(agg, alloc, anchor_log, fg_gross, mrp, cap, recon, exceptions, kpis, report)


def run_pipeline(
    inputs: PlanInputs,
    params: PlanParams | None = None,
    version_id: str | None = None,
    decisions: Decisions | None = None,
    progress: Progress | None = None,
) -> PlanContent:
    """Plan validated inputs and return the plan content (every artifact document)."""
    params = params or PlanParams()
    version_id = check_version_id(version_id) if version_id else new_version_id()
    results = run_stages(inputs, params, decisions, progress)
    if progress:
        progress("documents", 95)
    content = build_content(inputs, params, version_id, results)
    if progress:
        progress("done", 100)
    return content


def plan_input_set(
    path: str | Path,
    params: PlanParams | None = None,
    version_id: str | None = None,
    label: str | None = None,
    progress: Progress | None = None,
) -> PlanContent:
    """Load, validate and plan an input set folder. Raises ``InputError`` on bad input."""
    inputs = load_input_set(path, label=label)
    return run_pipeline(inputs, params, version_id, progress=progress)


def _stepper(progress: Progress | None) -> Callable[[str], None]:
    def step(name: str) -> None:
        if progress:
            progress(name, int(90 * STAGES.index(name) / len(STAGES)))

    return step


# --------------------------------------------------------------------------------------------------
# Documents


def build_content(inputs: PlanInputs, params: PlanParams, version_id: str, r: StageResults) -> PlanContent:
    """The plan's documents. The large tables are column tables (``documents.RowTable``) and the content
    is marked ``trusted``: the engine made it, so the codecs write it without checking it again."""
    p = params.to_dict()
    cal = inputs.calendar
    planned = mrp_rows(inputs, r.mrp)
    documents: dict[str, Any] = {
        "aggregate.json": docs.document(version_id, p, aggregate_rows(inputs, r.aggregate)),
        "sku_week.json": docs.document(version_id, p, sku_week_rows(inputs, r.allocation)),
        "mrp.json": docs.document(version_id, p, planned),
        "plan_final.json": docs.document(
            version_id,
            p,
            final_rows(inputs, r.mrp, r.capacity, planned),
            weekly_summary=weekly_summary_rows(inputs, r.capacity),
            anchor_log=r.anchor_log,
            kpis=r.kpis,
            boundary_summary=boundary_summary(cal, params),
            reconcile_params={
                "prebuild_weeks": params.prebuild_weeks,
                "lt_unit": params.lt_unit,
                **derivation_params(cal, inputs.items, r.capacity.unplaced),
                **exception_facts(inputs, r.exceptions),
            },
        ),
        "reconciliation_log.json": docs.document(
            version_id,
            p,
            r.reconciliation["rows"],
            tolerance=r.reconciliation["tolerance"],
            summary=r.reconciliation["summary"],
        ),
        "exceptions.json": docs.document(version_id, p, r.exceptions),
        "report.csv": report_csv(r.report),
    }
    return PlanContent(version_id=version_id, params=p, documents=documents, trusted=True)


def aggregate_rows(inputs: PlanInputs, agg: AggregateResult) -> list[dict[str, Any]]:
    """One row per (family, month): few enough to be plain row dicts."""
    f_n, p_n = agg.demand.shape
    fam = np.repeat(np.arange(f_n), p_n)
    per = np.tile(np.arange(p_n), f_n)
    cols = [
        [inputs.families[i] for i in fam.tolist()],
        [inputs.calendar.periods[i] for i in per.tolist()],
        *(
            getattr(agg, k).ravel()
            for k in ("demand", "supply", "backlog", "inventory_open", "inventory_close", "prebuild")
        ),
        np.tile(agg.capacity_total, f_n),
        np.tile(agg.capacity_used, f_n),
    ]
    return docs.RowTable(docs.AGGREGATE_ROW, cols).rows()


def sku_week_rows(inputs: PlanInputs, alloc: AllocationResult) -> docs.RowTable:
    """One row per (SKU, bucket): SKU-major, buckets in date order."""
    cal = inputs.calendar
    s_n, b_n = alloc.demand.shape
    periods = [b.period for b in cal.buckets]
    weeks = [b.week for b in cal.buckets]
    fam_of = [inputs.families[f] for f in inputs.sku_family.tolist()]
    cols = [
        _repeat_each(fam_of, b_n),
        periods * s_n,
        _repeat_each(inputs.skus, b_n),
        weeks * s_n,
        alloc.demand.ravel(),
        alloc.supply.ravel(),
        alloc.backlog.ravel(),
    ]
    return docs.RowTable(docs.SKU_WEEK_ROW, cols)


def _repeat_each(names: list[str], times: int) -> list[str]:
    """Each name ``times`` times in a row (the same string objects, not copies)."""
    return [name for name in names for _ in range(times)]


def _mrp_columns(inputs: PlanInputs, mrp: MrpResult, past_due: np.ndarray) -> list[Any]:
    i_n, w_n = mrp.gross_req.shape
    # The past-due flag sits on the item's week-1 row.
    flag = np.zeros((i_n, w_n), dtype=bool)
    flag[:, 0] = past_due
    per_item = lambda arr: np.repeat(np.asarray(arr), w_n)  # noqa: E731
    return [
        _repeat_each(list(inputs.items), w_n),
        list(inputs.calendar.weeks) * i_n,
        per_item(mrp.llc).astype(np.int64),
        *(
            getattr(mrp, k).ravel()
            for k in (
                "gross_req",
                "scheduled_receipts",
                "on_hand_start",
                "net_req",
                "planned_order_receipt",
                "planned_order_release",
                "on_hand_end",
            )
        ),
        mrp.orders.astype(np.int64).ravel(),
        per_item(mrp.lt_weeks).astype(np.int64),
        per_item(inputs.item_lot),
        per_item(inputs.item_moq),
        per_item(inputs.item_safety_stock),
        flag.ravel(),
    ]


def mrp_rows(inputs: PlanInputs, mrp: MrpResult) -> docs.RowTable:
    return docs.RowTable(docs.MRP_ROW, _mrp_columns(inputs, mrp, mrp.past_due))


def final_rows(inputs: PlanInputs, mrp: MrpResult, cap: CapacityResult, planned: docs.RowTable | None = None) -> docs.RowTable:  # fmt: skip
    """plan_final rows: the MRP row as planned plus the capacity-adjusted receipts, releases and on-hand.
    ``planned``: mrp.json's table, whose columns the planned part shares (they are the same values)."""
    flag_adj = np.zeros_like(mrp.gross_req, dtype=bool)
    flag_adj[:, 0] = cap.past_due_adj
    gross_adj = cap.gross_req_adj if cap.gross_req_adj is not None else mrp.gross_req
    base = planned.columns if planned is not None and planned.columns is not None else None
    cols = list(base) if base is not None else _mrp_columns(inputs, mrp, mrp.past_due)
    cols += [
        gross_adj.ravel(),
        cap.planned_order_receipt_adj.ravel(),
        cap.planned_order_release_adj.ravel(),
        cap.on_hand_end_adj.ravel(),
        cap.orders_adj.astype(np.int64).ravel(),
        flag_adj.ravel(),
    ]
    return docs.RowTable(docs.FINAL_ROW, cols)
