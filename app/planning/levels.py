"""Level reconciliation: how far the feasible detail plan departs from the S&OP aggregate (SPEC 3.5).

Owns the roll-up of the final detail (SKU x bucket demand and backlog, FG adjusted receipts per ISO
week) to (family, period), the delta rows of ``reconciliation_log.json`` and the ``compare.csv`` view
of them. Pure computation: takes stage results, returns plain documents; no I/O.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.planning.apportion import apportion
from app.planning.documents import RECON_MEASURES, csv_text, num, num_list
from app.planning.model import AggregateResult, AllocationResult, CapacityResult, PlanInputs, PlanParams

COMPARE_COLUMNS = ("family", "period", "measure", "agg", "det", "delta", "rel", "ok")


def group_rows(values: np.ndarray, index: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum the rows of ``values[n, m]`` into ``n_groups`` groups given by ``index[n]``."""
    out = np.zeros((n_groups, values.shape[1]), dtype=values.dtype)
    np.add.at(out, index, values)
    return out


def group_columns(values: np.ndarray, index: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum the columns of ``values[n, m]`` into ``n_groups`` groups given by ``index[m]``."""
    return group_rows(values.T, index, n_groups).T


def receipts_to_buckets(weekly: np.ndarray, inputs: PlanInputs, params: PlanParams) -> np.ndarray:
    """Spread ``weekly[n, Wk]`` quantities over the calendar's buckets ``[n, B]``.

    A week with one bucket keeps its quantity; a split ISO week is divided between its buckets by
    calendar weight (largest remainder, so nothing is lost in ``int`` mode).
    """
    cal = inputs.calendar
    out = np.zeros((weekly.shape[0], cal.n_buckets), dtype=np.result_type(weekly.dtype, params.qty_dtype))
    for w in range(cal.n_weeks):
        cols = np.nonzero(cal.bucket_week_idx == w)[0]
        if cols.size == 1:
            out[:, cols[0]] = weekly[:, w]
            continue
        weights = np.broadcast_to(cal.bucket_weight[cols], (weekly.shape[0], cols.size))
        out[:, cols] = apportion(weekly[:, w], weights, params.decimals)
    return out


def detail_rollup(
    inputs: PlanInputs, alloc: AllocationResult, cap: CapacityResult, params: PlanParams
) -> dict[str, np.ndarray]:
    """Detail demand, supply and backlog rolled up to ``[F, P]``."""
    cal = inputs.calendar
    n_fam, n_per = len(inputs.families), cal.n_periods

    def to_family_period(sku_bucket: np.ndarray) -> np.ndarray:
        per_period = group_columns(sku_bucket, cal.bucket_period_idx, n_per)
        return group_rows(per_period, inputs.sku_family, n_fam)

    fam_week = group_rows(cap.planned_order_receipt_adj[: inputs.n_fg], inputs.sku_family, n_fam)
    fam_bucket = receipts_to_buckets(fam_week, inputs, params)
    return {
        "demand": to_family_period(alloc.demand),
        "supply": group_columns(fam_bucket, cal.bucket_period_idx, n_per),
        "backlog": to_family_period(alloc.backlog),
    }


def _measure_columns(agg: np.ndarray, det: np.ndarray, params: PlanParams) -> dict[str, np.ndarray]:
    """Delta, relative delta and the ok flag of one measure, all ``[F, P]``."""
    delta = det - agg
    scale = np.maximum(np.maximum(np.abs(agg), np.abs(det)), 1)
    rel = np.abs(delta) / scale
    ok = (np.abs(delta) <= params.tol_abs) | (rel <= params.tol_rel)
    return {"agg": agg, "det": det, "delta": delta, "rel": rel, "ok": ok}


def reconcile_levels(
    inputs: PlanInputs,
    agg: AggregateResult,
    alloc: AllocationResult,
    cap: CapacityResult,
    params: PlanParams,
) -> dict[str, Any]:
    """Body of ``reconciliation_log.json``: ``{tolerance, summary, rows}``, one row per (family, period).

    Rows come in family order, then period order. ``ok`` holds when every measure is within tolerance.
    """
    cal = inputs.calendar
    det = detail_rollup(inputs, alloc, cap, params)
    aggs = {"demand": agg.demand, "supply": agg.supply, "backlog": agg.backlog}
    columns: dict[str, list[Any]] = {}
    all_ok = np.ones((len(inputs.families), cal.n_periods), dtype=bool)
    max_abs = 0.0
    for m in RECON_MEASURES:
        cols = _measure_columns(np.asarray(aggs[m]), det[m], params)
        all_ok &= cols["ok"]
        if cols["delta"].size:
            max_abs = max(max_abs, float(np.abs(cols["delta"]).max()))
        for k in ("agg", "det", "delta", "rel"):
            columns[f"{m}_{k}"] = num_list(cols[k].ravel())
        columns[f"{m}_ok"] = cols["ok"].ravel().tolist()
    columns["ok"] = all_ok.ravel().tolist()
    keys = [(f, p) for f in inputs.families for p in cal.periods]
    names = list(columns)
    rows = [
        {"family": f, "period": p, **dict(zip(names, vals, strict=True))}
        for (f, p), *vals in zip(keys, *columns.values(), strict=True)
    ]
    return {
        "tolerance": {"abs": num(params.tol_abs), "rel": num(params.tol_rel)},
        "summary": {"rows": len(rows), "violations": int((~all_ok).sum()), "max_abs_delta": num(max_abs)},
        "rows": rows,
    }


def compare_rows(recon_doc: dict[str, Any], violations_only: bool = False) -> list[dict[str, Any]]:
    """One row per (family, period, measure) of a reconciliation document.

    With ``violations_only`` only the measures outside tolerance are kept.
    """
    return [
        {
            "family": r["family"],
            "period": r["period"],
            "measure": m,
            "agg": r[f"{m}_agg"],
            "det": r[f"{m}_det"],
            "delta": r[f"{m}_delta"],
            "rel": r[f"{m}_rel"],
            "ok": r[f"{m}_ok"],
        }
        for r in recon_doc["rows"]
        for m in RECON_MEASURES
        if not (violations_only and r[f"{m}_ok"])
    ]


def compare_csv(recon_doc: dict[str, Any], violations_only: bool = False) -> str:
    """``compare.csv`` text: ``family,period,measure,agg,det,delta,rel,ok`` with ok as true/false."""
    rows = [{**r, "ok": "true" if r["ok"] else "false"} for r in compare_rows(recon_doc, violations_only)]
    return csv_text(COMPARE_COLUMNS, rows)
