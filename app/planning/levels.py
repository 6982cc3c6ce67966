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


def lot_allowance(inputs: PlanInputs) -> np.ndarray:
    """[F] how far a family's monthly supply may move by lot sizing and capacity moves: one lot (or
    minimum order, whichever is larger) per SKU of the family, at least one unit each."""
    n_fg = inputs.n_fg
    lot = np.maximum.reduce(
        [np.asarray(inputs.item_lot[:n_fg], float), np.asarray(inputs.item_moq[:n_fg], float), np.ones(n_fg)]
    )
    return np.bincount(inputs.sku_family, weights=lot, minlength=len(inputs.families))


def reconcile_levels(
    inputs: PlanInputs,
    agg: AggregateResult,
    alloc: AllocationResult,
    cap: CapacityResult,
    params: PlanParams,
) -> dict[str, Any]:
    """Body of ``reconciliation_log.json``: ``{tolerance, summary, rows}``, one row per (family, period).

    Rows come in family order, then period order. ``ok`` holds when every measure is within tolerance.
    ``severity`` tells a real departure from one the plan's own rules make: ``ok`` within tolerance;
    ``info`` when only supply differs and by no more than one lot per SKU of the family
    (:func:`lot_allowance`: the master schedule's lot sizing and capacity moves); ``violation``
    otherwise. ``note`` says why for the rows that are not ok.
    """
    cal = inputs.calendar
    det = detail_rollup(inputs, alloc, cap, params)
    aggs = {"demand": agg.demand, "supply": agg.supply, "backlog": agg.backlog}
    columns: dict[str, list[Any]] = {}
    all_ok = np.ones((len(inputs.families), cal.n_periods), dtype=bool)
    measures = {}
    max_abs = 0.0
    for m in RECON_MEASURES:
        cols = measures[m] = _measure_columns(np.asarray(aggs[m]), det[m], params)
        all_ok &= cols["ok"]
        if cols["delta"].size:
            max_abs = max(max_abs, float(np.abs(cols["delta"]).max()))
        for k in ("agg", "det", "delta", "rel"):
            columns[f"{m}_{k}"] = num_list(cols[k].ravel())
        columns[f"{m}_ok"] = cols["ok"].ravel().tolist()
    columns["ok"] = all_ok.ravel().tolist()
    allowance = lot_allowance(inputs)[:, None]
    supply_delta = np.abs(measures["supply"]["delta"])
    info = ~all_ok & measures["demand"]["ok"] & measures["backlog"]["ok"] & (supply_delta <= allowance + 1e-9)
    severity = np.where(all_ok, "ok", np.where(info, "info", "violation"))
    columns["severity"] = severity.ravel().tolist()
    columns["note"] = _notes(measures, severity, np.broadcast_to(allowance, severity.shape))
    keys = [(f, p) for f in inputs.families for p in cal.periods]
    names = list(columns)
    rows = [
        {"family": f, "period": p, **dict(zip(names, vals, strict=True))}
        for (f, p), *vals in zip(keys, *columns.values(), strict=True)
    ]
    summary = {
        "rows": len(rows),
        "violations": int((severity == "violation").sum()),
        "info": int((severity == "info").sum()),
        "max_abs_delta": num(max_abs),
    }
    return {
        "tolerance": {"abs": num(params.tol_abs), "rel": num(params.tol_rel)},
        "summary": summary,
        "rows": rows,
    }


def _notes(
    measures: dict[str, dict[str, np.ndarray]], severity: np.ndarray, allowance: np.ndarray
) -> list[str | None]:
    """Why each row that is not ok is info or a violation (None for ok rows)."""
    out: list[str | None] = []
    for idx, level in np.ndenumerate(severity):
        if level == "ok":
            out.append(None)
            continue
        bad = [m for m in RECON_MEASURES if not measures[m]["ok"][idx]]
        parts = ", ".join(f"{m} {num(measures[m]['delta'][idx]):+}" for m in bad)
        if level == "info":
            out.append(
                f"{parts}: within one lot per SKU ({num(allowance[idx])}), lot sizing and capacity moves"
            )
        else:
            out.append(
                f"{parts}: beyond tolerance"
                + (f" and one lot per SKU ({num(allowance[idx])})" if bad == ["supply"] else "")
            )
    return out


def compare_rows(recon_doc: dict[str, Any], violations_only: bool = False) -> list[dict[str, Any]]:
    """One row per (family, period, measure) of a reconciliation document, with the measure's severity
    (``ok``; ``info`` for supply of an info row; ``violation``). With ``violations_only`` only the
    violations are kept (info rows are not violations)."""
    out = []
    for r in recon_doc["rows"]:
        row_level = r.get("severity") or ("ok" if r["ok"] else "violation")
        for m in RECON_MEASURES:
            level = "ok" if r[f"{m}_ok"] else ("info" if row_level == "info" else "violation")
            if violations_only and level != "violation":
                continue
            out.append(
                {
                    "family": r["family"],
                    "period": r["period"],
                    "measure": m,
                    "agg": r[f"{m}_agg"],
                    "det": r[f"{m}_det"],
                    "delta": r[f"{m}_delta"],
                    "rel": r[f"{m}_rel"],
                    "ok": r[f"{m}_ok"],
                    "severity": level,
                }
            )
    return out


def compare_csv(recon_doc: dict[str, Any], violations_only: bool = False) -> str:
    """``compare.csv`` text: ``family,period,measure,agg,det,delta,rel,ok`` (SPEC 5.2) with ok as
    true/false; ``violations_only`` leaves out the info rows as well as the ok ones."""
    rows = [{**r, "ok": "true" if r["ok"] else "false"} for r in compare_rows(recon_doc, violations_only)]
    return csv_text(COMPARE_COLUMNS, rows)
