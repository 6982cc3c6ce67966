"""Plan reporting: weekly capacity summary, FG service, KPIs, typed exceptions and ``report.csv`` (SPEC 3.7).

Owns the service simulation over finished goods after capacity reconciliation (served = min(demand +
backlog_in, on_hand_start + receipts)), every KPI formula, the detection of exception runs and the
rows of ``report.csv``. Pure computation over stage results; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.planning.documents import (
    EXCEPTION_TYPES,
    RECON_MEASURES,
    REPORT_COLUMNS,
    csv_text,
    format_number,
    num,
    num_list,
)
from app.planning.levels import group_columns
from app.planning.model import (
    AggregateResult,
    AllocationResult,
    CapacityResult,
    MrpResult,
    PlanInputs,
    PlanParams,
)
from app.planning.pegging import ancestor_edges, peg_shortage

#: Quantities closer to a threshold than this are treated as on it (float rounding modes).
EPS = 1e-9
RATIO_DECIMALS = 6
UTILIZATION_DECIMALS = 4


# --------------------------------------------------------------------------------------------------
# Weekly capacity summary and FG service


def weekly_utilization(cap: CapacityResult) -> np.ndarray:
    """Adjusted load / capacity per week, 0 where the week has no capacity (unrounded)."""
    capacity = np.asarray(cap.capacity, dtype=np.float64)
    load = np.asarray(cap.adjusted_load, dtype=np.float64)
    return np.divide(load, capacity, out=np.zeros_like(load), where=capacity > 0)


def weekly_summary_rows(inputs: PlanInputs, cap: CapacityResult) -> list[dict[str, Any]]:
    """``plan_final.json`` ``weekly_summary`` rows, one per ISO week in calendar order."""
    util = np.round(weekly_utilization(cap), UTILIZATION_DECIMALS)
    return [
        {
            "week": w,
            "capacity": c,
            "original_load": ol,
            "adjusted_load": al,
            "prebuild_in": pi,
            "spill_in": si,
            "spill_out": so,
            "utilization": u,
            "zone": z,
        }
        for w, c, ol, al, pi, si, so, u, z in zip(
            inputs.calendar.weeks,
            num_list(cap.capacity),
            num_list(cap.original_load),
            num_list(cap.adjusted_load),
            num_list(cap.prebuild_in),
            num_list(cap.spill_in),
            num_list(cap.spill_out),
            num_list(util),
            cap.zone,
            strict=True,
        )
    ]


@dataclass
class FgService:
    """Finished-goods service per SKU and week ``[S, Wk]`` after capacity reconciliation."""

    demand: np.ndarray
    receipts: np.ndarray  # scheduled receipts + adjusted planned receipts
    supply: np.ndarray  # adjusted planned receipts only
    on_hand_start: np.ndarray  # physical stock at the start of the week (never negative)
    on_hand_end: np.ndarray  # projected on-hand of the adjusted plan (negative = backorder)
    backlog_in: np.ndarray
    served: np.ndarray
    backlog_end: np.ndarray  # unserved after the week, carried to the next

    @property
    def served_on_time(self) -> np.ndarray:
        """Demand served in the week it is demanded: what a week serves goes to older backlog first."""
        return np.clip(self.served - self.backlog_in, 0.0, self.demand)


def fg_service(inputs: PlanInputs, alloc: AllocationResult, cap: CapacityResult) -> FgService:
    """Simulate FG service week by week, vectorized over SKUs.

    A negative projected on-hand is demand already owed; it is counted once, through ``backlog_in``,
    so the stock available to serve a week is ``max(0, on_hand_start) + receipts``.
    """
    n_fg, cal = inputs.n_fg, inputs.calendar
    demand = group_columns(np.asarray(alloc.demand), cal.bucket_week_idx, cal.n_weeks).astype(np.float64)
    supply = np.asarray(cap.planned_order_receipt_adj[:n_fg], dtype=np.float64)
    receipts = np.asarray(inputs.scheduled_receipts[:n_fg], dtype=np.float64) + supply
    on_hand_end = np.asarray(cap.on_hand_end_adj[:n_fg], dtype=np.float64)
    opening = np.asarray(inputs.on_hand[:n_fg], dtype=np.float64)[:, None]
    on_hand_start = np.maximum(np.concatenate([opening, on_hand_end[:, :-1]], axis=1), 0.0)
    backlog_in = np.zeros_like(demand)
    served = np.zeros_like(demand)
    backlog_end = np.zeros_like(demand)
    carried = np.zeros(n_fg)
    for w in range(cal.n_weeks):
        need = demand[:, w] + carried
        backlog_in[:, w] = carried
        served[:, w] = np.clip(on_hand_start[:, w] + receipts[:, w], 0.0, need)
        carried = need - served[:, w]
        backlog_end[:, w] = carried
    return FgService(demand, receipts, supply, on_hand_start, on_hand_end, backlog_in, served, backlog_end)


def round_units(values: np.ndarray | float, params: PlanParams) -> np.ndarray:
    """Quantity sums kept to the plan's rounding mode, so float modes carry no summation noise."""
    arr = np.asarray(values, dtype=np.float64)
    return arr if params.decimals is None else np.round(arr, params.decimals)


def fill_rate(served: float, demand: float) -> float:
    """Served / demand, 1 without demand, capped at 1 where a span also serves older backlog."""
    if demand <= EPS:
        return 1.0
    return round(min(1.0, served / demand), RATIO_DECIMALS)


# --------------------------------------------------------------------------------------------------
# report.csv


def report_rows(
    inputs: PlanInputs, alloc: AllocationResult, cap: CapacityResult, params: PlanParams
) -> list[dict[str, Any]]:
    """``report.csv`` rows: per week a ``capacity`` row then a ``service`` row (blank cells are None)."""
    svc = fg_service(inputs, alloc, cap)
    demand = svc.demand.sum(axis=0)
    rates = [fill_rate(s, d) for s, d in zip(svc.served.sum(axis=0).tolist(), demand.tolist(), strict=True)]
    blank_service = {"demand": None, "supply_plan": None, "fill_rate": None}
    blank_capacity = {c: None for c in REPORT_COLUMNS[2:8]}
    rows: list[dict[str, Any]] = []
    for week, c, ol, al, u, si, so, d, sp, fr in zip(
        inputs.calendar.weeks,
        num_list(cap.capacity),
        num_list(cap.original_load),
        num_list(cap.adjusted_load),
        num_list(np.round(weekly_utilization(cap), UTILIZATION_DECIMALS)),
        num_list(cap.spill_in),
        num_list(cap.spill_out),
        num_list(round_units(demand, params)),
        num_list(round_units(svc.supply.sum(axis=0), params)),
        num_list(np.asarray(rates)),
        strict=True,
    ):
        rows.append(
            {
                "type": "capacity",
                "week": week,
                "capacity": c,
                "original_load": ol,
                "adjusted_load": al,
                "utilization": u,
                "spill_in": si,
                "spill_out": so,
                **blank_service,
            }
        )
        rows.append(
            {
                "type": "service",
                "week": week,
                **blank_capacity,
                "demand": d,
                "supply_plan": sp,
                "fill_rate": fr,
            }
        )
    return rows


def report_csv(rows: list[dict[str, Any]]) -> str:
    """``report.csv`` text with the fixed header of SPEC 3.7."""
    return csv_text(REPORT_COLUMNS, rows)


# --------------------------------------------------------------------------------------------------
# Exceptions


def find_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous runs of True along axis 1 of ``mask[n, w]``: (row, first column, last column), row-major."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    rows, starts = np.nonzero(edges == 1)
    _, stops = np.nonzero(edges == -1)
    return rows, starts, stops - 1


def run_peaks(
    values: np.ndarray, mask: np.ndarray, runs: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> np.ndarray:
    """Largest ``values`` inside each run found by :func:`find_runs` on ``mask``."""
    rows, starts, ends = runs
    if rows.size == 0:
        return np.zeros(0)
    width = mask.shape[1]
    flat = np.append(np.where(mask, values.astype(np.float64), -np.inf).ravel(), -np.inf)
    bounds = np.empty(2 * rows.size, dtype=np.int64)
    bounds[0::2] = rows * width + starts
    bounds[1::2] = rows * width + ends + 1
    return np.maximum.reduceat(flat, bounds)[0::2]


def _span(first: str, last: str) -> str:
    return first if first == last else f"{first}..{last}"


def _exception(
    kind: str, item: str | None, family: str | None, start: str, end: str, quantity: int | float, message: str
) -> dict[str, Any]:
    return {"type": kind, "item": item, "family": family, "start": start, "end": end, "quantity": quantity,
            "message": message}  # fmt: skip


def _run_exceptions(
    kind: str,
    names: Sequence[str | None],
    weeks: Sequence[str],
    mask: np.ndarray,
    depth: np.ndarray,
    say: Callable[[str | None, str, str], str],
) -> list[dict[str, Any]]:
    """One exception per run of ``mask`` with quantity = the run's largest ``depth``."""
    runs = find_runs(mask)
    peaks = num_list(run_peaks(depth, mask, runs))
    who = [names[r] for r in runs[0].tolist()]
    first = [weeks[w] for w in runs[1].tolist()]
    last = [weeks[w] for w in runs[2].tolist()]
    return [
        _exception(kind, n, None, a, b, q, say(n, format_number(q), _span(a, b)))
        for n, a, b, q in zip(who, first, last, peaks, strict=True)
    ]


def _stock_exceptions(inputs: PlanInputs, cap: CapacityResult) -> list[dict[str, Any]]:
    on_hand = np.asarray(cap.on_hand_end_adj, dtype=np.float64)
    safety = np.asarray(inputs.item_safety_stock, dtype=np.float64)[:, None]
    short = on_hand < -EPS
    below = ~short & (on_hand < safety - EPS)
    weeks, items = inputs.calendar.weeks, inputs.items
    shortages = _run_exceptions(
        "shortage", items, weeks, short, -on_hand, lambda n, q, s: f"{n} is short by {q} units in {s}"
    )
    below_safety = _run_exceptions(
        "below_safety_stock", items, weeks, below, safety - on_hand,
        lambda n, q, s: f"{n} is below safety stock by {q} units in {s}",
    )  # fmt: skip
    return shortages + below_safety


def _overload_exceptions(inputs: PlanInputs, cap: CapacityResult) -> list[dict[str, Any]]:
    capacity = np.asarray(cap.capacity, dtype=np.float64)
    excess = (np.asarray(cap.adjusted_load, dtype=np.float64) - capacity)[None]
    return _run_exceptions(
        "capacity_overload", [None], inputs.calendar.weeks, excess > EPS, excess,
        lambda _n, q, s: f"Load exceeds capacity by up to {q} units in {s}",
    )  # fmt: skip


def _past_due_exceptions(
    inputs: PlanInputs, mrp: MrpResult | None, cap: CapacityResult
) -> list[dict[str, Any]]:
    """Past-due releases; the quantity falls back to the week-1 adjusted release when MRP had none."""
    idx = np.nonzero(np.asarray(cap.past_due_adj, dtype=bool))[0]
    qty = np.asarray(cap.planned_order_release_adj, dtype=np.float64)[idx, 0]
    if mrp is not None and mrp.past_due_qty is not None:
        from_mrp = np.asarray(mrp.past_due_qty, dtype=np.float64)[idx]
        qty = np.where(from_mrp > EPS, from_mrp, qty)
    first = inputs.calendar.weeks[0]
    return [
        _exception("past_due_release", item, None, first, first, q,
                   f"{item} needs a release of {format_number(q)} units before {first} (past due)")
        for item, q in zip([inputs.items[i] for i in idx.tolist()], num_list(qty), strict=True)
    ]  # fmt: skip


def _unplanned_exceptions(
    inputs: PlanInputs, agg: AggregateResult, cap: CapacityResult
) -> list[dict[str, Any]]:
    """Family demand still unserved after the last period, FG quantity left after the last week."""
    last_period, last_week = inputs.calendar.periods[-1], inputs.calendar.weeks[-1]
    unserved = np.asarray(agg.unserved_end, dtype=np.float64)
    unplaced = np.asarray(cap.unplaced, dtype=np.float64)
    fam = np.nonzero(unserved > EPS)[0]
    items = np.nonzero(unplaced > EPS)[0]
    kind = "unplanned_after_horizon"
    by_family = [
        _exception(kind, None, f, last_period, last_period, q,
                   f"{f} has {format_number(q)} units of demand unserved after {last_period}")
        for f, q in zip([inputs.families[i] for i in fam.tolist()], num_list(unserved[fam]), strict=True)
    ]  # fmt: skip
    by_item = [
        _exception(kind, item, None, last_week, last_week, q,
                   f"{item} has {format_number(q)} units that do not fit capacity by {last_week}")
        for item, q in zip([inputs.items[i] for i in items.tolist()], num_list(unplaced[items]), strict=True)
    ]  # fmt: skip
    return by_family + by_item


def _recon_exceptions(recon_doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One exception per (family, period) outside tolerance; quantity = its largest failing |delta|."""
    out = []
    for r in recon_doc["rows"]:
        if r["ok"] or r.get("severity") == "info":  # lot sizing and capacity moves are not violations
            continue
        bad = [m for m in RECON_MEASURES if not r[f"{m}_ok"]]
        parts = "; ".join(
            f"{m} differs by {format_number(r[f'{m}_delta'])} "
            f"(agg {format_number(r[f'{m}_agg'])}, det {format_number(r[f'{m}_det'])})"
            for m in bad
        )
        quantity = num(max(abs(r[f"{m}_delta"]) for m in bad))
        message = f"{r['family']} {r['period']}: {parts}"
        out.append(
            _exception(
                "reconciliation_violation", None, r["family"], r["period"], r["period"], quantity, message
            )
        )
    return out


def _exception_order(row: dict[str, Any]) -> tuple[float, int, str, str, str]:
    impact = row.get("impact")
    return (
        -impact if impact is not None else np.inf,
        EXCEPTION_TYPES.index(row["type"]),
        row["item"] or "",
        row["family"] or "",
        row["start"],
    )


def build_exceptions(
    inputs: PlanInputs,
    agg: AggregateResult,
    alloc: AllocationResult,
    mrp: MrpResult | None,
    cap: CapacityResult,
    recon_doc: dict[str, Any],
    params: PlanParams,
) -> list[dict[str, Any]]:
    """Typed exception rows of ``exceptions.json`` (SPEC 3.7), largest impact first.

    Shortage, below-safety-stock and capacity-overload rows cover one contiguous run of weeks each,
    with the run's worst value as quantity. Every row carries ``impact`` = quantity x unit cost (see
    :func:`unit_costs`; None where no cost is known, as for capacity overloads) and rows are listed by
    impact, largest first, those without one last, then by the type order of ``EXCEPTION_TYPES``,
    item, family and start. A component's shortage also carries ``pegging``: the finished goods and
    receipt weeks it endangers (``app.planning.pegging``), and so does a component's past-due release
    (its first receipts cannot arrive in time).
    """
    rows = (
        _stock_exceptions(inputs, cap)
        + _overload_exceptions(inputs, cap)
        + _past_due_exceptions(inputs, mrp, cap)
        + _unplanned_exceptions(inputs, agg, cap)
        + _recon_exceptions(recon_doc)
    )
    item_cost, family_cost = unit_costs(inputs, alloc)
    index = {name: i for i, name in enumerate(inputs.items)}
    lt_weeks = np.asarray(mrp.lt_weeks if mrp is not None else np.zeros(len(inputs.items)))
    weeks = inputs.calendar.weeks
    for row in rows:
        cost = None
        if row["type"] != "capacity_overload":
            cost = item_cost.get(row["item"]) if row["item"] else family_cost.get(row["family"])
        row["impact"] = num(round(float(row["quantity"]) * cost, 2)) if cost else None
        i = index.get(row["item"]) if row["type"] in PEGGED_TYPES else None
        span = _pegged_weeks(row, i, weeks, cap, lt_weeks) if i is not None and i >= inputs.n_fg else None
        if span is not None:
            pegs = peg_shortage(
                i, *span, inputs.parents, np.asarray(cap.planned_order_release_adj), lt_weeks, inputs.n_fg
            )
            row["pegging"] = [
                {"item": inputs.items[p.fg], "start": weeks[p.first], "end": weeks[p.last], "quantity": num(p.quantity)}
                for p in pegs
            ]  # fmt: skip
            row["message"] += _pegging_text(row["pegging"])
    return sorted(rows, key=_exception_order)


#: Exception types whose component is pegged to the finished goods it endangers.
PEGGED_TYPES = ("shortage", "past_due_release")


def _pegged_weeks(
    row: dict[str, Any], item: int, weeks: list[str], cap: CapacityResult, lt_weeks: np.ndarray
) -> tuple[int, int] | None:
    """The weeks in which a component fails its parents: a shortage's run, or for a past-due release
    the weeks whose receipts needed a release before the first week (None when there are none)."""
    if row["type"] == "shortage":
        return weeks.index(row["start"]), weeks.index(row["end"])
    late = np.flatnonzero(np.asarray(cap.planned_order_receipt_adj)[item, : max(1, int(lt_weeks[item]))] > 0)
    return (int(late[0]), int(late[-1])) if late.size else None


def _pegging_text(pegging: list[dict[str, Any]], shown: int = 3) -> str:
    if not pegging:
        return "; no finished-good order depends on it in those weeks"
    named = ", ".join(f"{p['item']} ({_span(p['start'], p['end'])})" for p in pegging[:shown])
    more = f" and {len(pegging) - shown} more" if len(pegging) > shown else ""
    return f"; it endangers {len(pegging)} finished good(s): {named}{more}"


def unit_costs(inputs: PlanInputs, alloc: AllocationResult) -> tuple[dict[str, float], dict[str, float]]:
    """(item -> unit cost, family -> unit cost) for the costs that are known (> 0). A family's unit cost
    is its SKUs' costs weighted by their planned demand (plain mean when the family has none), over
    the SKUs whose cost is known."""
    cost = np.asarray(inputs.item_unit_cost, dtype=np.float64)
    items = {name: float(c) for name, c in zip(inputs.items, cost.tolist(), strict=True) if c > 0}
    sku_cost = cost[: inputs.n_fg]
    known = sku_cost > 0
    demand = np.asarray(alloc.demand, dtype=np.float64).sum(axis=1) * known
    n_fam = len(inputs.families)
    weighted = np.bincount(inputs.sku_family, weights=demand * sku_cost, minlength=n_fam)
    weight = np.bincount(inputs.sku_family, weights=demand, minlength=n_fam)
    plain = np.bincount(inputs.sku_family, weights=sku_cost * known, minlength=n_fam)
    count = np.bincount(inputs.sku_family, weights=known.astype(float), minlength=n_fam)
    families = {}
    for f, name in enumerate(inputs.families):
        if weight[f] > 0:
            families[name] = float(weighted[f] / weight[f])
        elif count[f] > 0:
            families[name] = float(plain[f] / count[f])
    return items, families


def exception_facts(inputs: PlanInputs, exceptions: list[dict[str, Any]]) -> dict[str, Any]:
    """What the exceptions need beyond the plan's rows, for ``plan_final.json``'s ``reconcile_params``
    (``app.planning.derive`` rebuilds the same rows from the core artifacts with it): the unit costs of
    the items they name and of the SKUs of the families they name, and the bill-of-material edges from
    every short or late (past-due) component up to the finished goods."""
    fam_index = {f: i for i, f in enumerate(inputs.families)}
    index = {name: i for i, name in enumerate(inputs.items)}
    wanted = {index[e["item"]] for e in exceptions if e["item"] in index}
    families = {fam_index[e["family"]] for e in exceptions if e["family"] in fam_index}
    wanted |= {s for s, f in enumerate(inputs.sku_family.tolist()) if f in families}
    cost = np.asarray(inputs.item_unit_cost, dtype=np.float64)
    short = [
        index[e["item"]]
        for e in exceptions
        if e["type"] in PEGGED_TYPES and index.get(e["item"], -1) >= inputs.n_fg
    ]
    edges = ancestor_edges(short, inputs.parents) if short else []
    return {
        UNIT_COST: {inputs.items[i]: num(float(cost[i])) for i in sorted(wanted) if cost[i] > 0},
        PEGGING_BOM: [[inputs.items[p], inputs.items[c]] for p, c in edges],
    }


#: ``reconcile_params`` keys of :func:`exception_facts`.
UNIT_COST = "unit_cost"
PEGGING_BOM = "pegging_bom"


# --------------------------------------------------------------------------------------------------
# KPIs


_SPAN_UNITS = {
    "fill_rate": "ratio",
    "on_time_fill_rate": "ratio",
    "backlog_total": "units",
    "demand_total": "units",
    "supply_total": "units",
    "inventory_avg": "units",
    "inventory_turns": "turns/yr",
    "capacity_utilization_avg": "ratio",
    "capacity_utilization_peak": "ratio",
    "planned_orders": "count",
}
KPI_UNITS = {**_SPAN_UNITS, "past_due_releases": "count", "exceptions": "count"}


def _ratio(value: float) -> int | float:
    return num(round(float(value), RATIO_DECIMALS))


def _span_metrics(
    svc: FgService, cap: CapacityResult, weeks: np.ndarray, params: PlanParams
) -> dict[str, int | float]:
    """The KPIs every bucket carries, over the week indices ``weeks``."""

    def units(value: Any) -> int | float:
        return num(round_units(float(value), params))

    if weeks.size == 0:
        return dict.fromkeys(_SPAN_UNITS, 0) | {"fill_rate": 1, "on_time_fill_rate": 1}
    demand = float(svc.demand[:, weeks].sum())
    inventory = np.maximum(svc.on_hand_end[:, weeks], 0.0).sum(axis=0)
    inventory_avg = float(inventory.mean())
    capacity = float(np.asarray(cap.capacity, dtype=np.float64)[weeks].sum())
    load = float(np.asarray(cap.adjusted_load, dtype=np.float64)[weeks].sum())
    return {
        "fill_rate": num(fill_rate(float(svc.served[:, weeks].sum()), demand)),
        "on_time_fill_rate": num(fill_rate(float(svc.served_on_time[:, weeks].sum()), demand)),
        "backlog_total": units(svc.backlog_end[:, weeks[-1]].sum()),
        "demand_total": units(demand),
        "supply_total": units(svc.supply[:, weeks].sum()),
        "inventory_avg": _ratio(inventory_avg),
        "inventory_turns": _ratio(demand / inventory_avg * 52 / weeks.size if inventory_avg > EPS else 0.0),
        "capacity_utilization_avg": _ratio(load / capacity if capacity > 0 else 0.0),
        "capacity_utilization_peak": _ratio(weekly_utilization(cap)[weeks].max()),
        "planned_orders": num(np.asarray(cap.orders_adj)[:, weeks].sum()),
    }


def _kpi_rows(values: dict[str, int | float], bucket_type: str, bucket_key: str) -> list[dict[str, Any]]:
    return [
        {"metric": m, "bucket_type": bucket_type, "bucket_key": bucket_key, "value": v, "unit": KPI_UNITS[m]}
        for m, v in values.items()
    ]


def compute_kpis(
    inputs: PlanInputs,
    alloc: AllocationResult,
    mrp: MrpResult | None,
    cap: CapacityResult,
    exceptions: list[dict[str, Any]],
    params: PlanParams,
) -> list[dict[str, Any]]:
    """KPI rows (SPEC 3.7) over finished goods after capacity reconciliation.

    Bucket ``total`` carries every metric. Bucket ``month`` (key = period) carries the same metrics
    except ``past_due_releases`` and ``exceptions``, restricted to the weeks whose Monday falls in
    that month (see :meth:`Calendar.week_period_index`); its ``backlog_total`` is the backlog after the
    month's last week and its fill rate is capped at 1 when older backlog is served in it. Ratios,
    turns and average inventory are rounded to 6 decimals; unit totals to the plan's rounding mode.
    """
    svc = fg_service(inputs, alloc, cap)
    n_weeks = inputs.calendar.n_weeks
    total = _span_metrics(svc, cap, np.arange(n_weeks), params) | {
        "past_due_releases": int(np.count_nonzero(cap.past_due_adj)),
        "exceptions": len(exceptions),
    }
    rows = _kpi_rows(total, "total", "total")
    period_of_week = inputs.calendar.week_period_index()
    for p, period in enumerate(inputs.calendar.periods):
        rows += _kpi_rows(
            _span_metrics(svc, cap, np.nonzero(period_of_week == p)[0], params), "month", period
        )
    return rows
