"""The derived artifacts recomputed from the core five (SPEC 4.2).

``reconciliation_log.json`` and ``exceptions.json`` are derived: a version whose artifacts hold only
the core five (``aggregate.json``, ``sku_week.json``, ``mrp.json``, ``plan_final.json``,
``report.csv``) gets them back exactly as the pipeline made them. This module rebuilds, from the
documents, the arrays the engine's own stage functions read — a minimal ``PlanInputs`` (names,
calendar, item master columns) and the ``AggregateResult``, ``AllocationResult``, ``MrpResult`` and
``CapacityResult`` — and calls :func:`app.planning.levels.reconcile_levels` and
:func:`app.planning.report.build_exceptions`, so the rules have one implementation.

Two facts are not recoverable from the rows and travel in ``plan_final.json``'s ``reconcile_params``
(see :func:`derivation_params`): the calendar weights of the buckets of split ISO weeks (explicit
calendars may weight them other than by days) and the finished-goods quantity capacity reconciliation
could not place before the horizon's end. Documents written before those keys existed fall back to
day weights and to the receipts lost between the MRP and the adjusted plan.

Pure: no I/O. Fields the two stage functions never read are filled with neutral values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from app.planning import documents as docs
from app.planning.apportion import round_qty
from app.planning.calendar import derive_calendar, month_bounds
from app.planning.levels import reconcile_levels
from app.planning.model import (
    DERIVED_ARTIFACTS,
    AggregateResult,
    AllocationResult,
    Bucket,
    Calendar,
    CapacityResult,
    MrpResult,
    PlanInputs,
    PlanParams,
)
from app.planning.mrp import offset_releases
from app.planning.report import PEGGING_BOM, UNIT_COST, build_exceptions

#: The documents derivation reads (``report.csv`` is core but holds nothing it needs).
SOURCE_DOCUMENTS = ("aggregate.json", "sku_week.json", "mrp.json", "plan_final.json")
BUCKET_WEIGHTS = "bucket_weights"
UNPLACED = "unplaced"


class DerivationError(ValueError):
    """The core documents cannot give the derived ones back (missing, malformed or inconsistent)."""


# --------------------------------------------------------------------------------------------------
# What the pipeline stores for derivation


def derivation_params(calendar: Calendar, items: Sequence[str], unplaced: np.ndarray) -> dict[str, Any]:
    """The ``reconcile_params`` entries derivation needs beyond the rows.

    ``bucket_weights``: bucket key -> calendar weight, for the buckets of split weeks only (a week
    with one bucket keeps its quantity whatever its weight). ``unplaced``: item -> quantity left
    after the last week, for the items that have any.
    """
    counts = np.bincount(calendar.bucket_week_idx, minlength=calendar.n_weeks)
    weights = {
        b.key: docs.num(b.weight)
        for b, w in zip(calendar.buckets, calendar.bucket_week_idx.tolist(), strict=True)
        if counts[w] > 1
    }
    left = np.asarray(unplaced)
    where = np.nonzero(left != 0)[0]
    return {
        BUCKET_WEIGHTS: weights,
        UNPLACED: dict(zip([items[i] for i in where.tolist()], docs.num_list(left[where]), strict=True)),
    }


# --------------------------------------------------------------------------------------------------
# Public entry points


def missing_derived(documents: Mapping[str, Any]) -> list[str]:
    """The derived artifacts absent from ``documents``."""
    return [n for n in DERIVED_ARTIFACTS if n not in documents]


def can_derive(documents: Mapping[str, Any]) -> bool:
    """True when every document derivation reads is present."""
    return all(n in documents for n in SOURCE_DOCUMENTS)


def derive_documents(documents: Mapping[str, Any]) -> dict[str, Any]:
    """The derived documents missing from ``documents``, recomputed from the core ones.

    Returns ``{name: document}`` for each of ``reconciliation_log.json`` and ``exceptions.json``
    that ``documents`` lacks (an empty dict when it has both). Header values (``schema_version``,
    ``version_id``, ``params``) are ``aggregate.json``'s. Raises :class:`DerivationError` when a
    core document is missing or does not fit the others.
    """
    wanted = missing_derived(documents)
    if not wanted:
        return {}
    absent = [n for n in SOURCE_DOCUMENTS if n not in documents]
    if absent:
        raise DerivationError(f"cannot recompute {', '.join(wanted)}: missing {', '.join(absent)}")
    try:
        return _derive(documents, wanted)
    except DerivationError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise DerivationError(f"cannot recompute {', '.join(wanted)}: {type(exc).__name__}: {exc}") from exc


def complete_documents(documents: Mapping[str, Any]) -> dict[str, Any]:
    """``documents`` plus any derived document it lacks (a new dict; the input is not changed)."""
    return {**documents, **derive_documents(documents)}


def _derive(documents: Mapping[str, Any], wanted: list[str]) -> dict[str, Any]:
    head = _document(documents, "aggregate.json")
    params = PlanParams.from_dict(head.get("params"))
    inputs, agg, alloc, mrp, cap = rebuild_stages(documents, params)
    recon = reconcile_levels(inputs, agg, alloc, cap, params)
    out: dict[str, Any] = {}
    if "reconciliation_log.json" in wanted:
        out["reconciliation_log.json"] = _with_header(
            head, recon["rows"], tolerance=recon["tolerance"], summary=recon["summary"]
        )
    if "exceptions.json" in wanted:
        out["exceptions.json"] = _with_header(
            head, build_exceptions(inputs, agg, alloc, mrp, cap, recon, params)
        )
    return out


def _with_header(head: Mapping[str, Any], rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    doc = docs.document(head.get("version_id"), head.get("params"), rows, **extra)
    doc["schema_version"] = head.get("schema_version", doc["schema_version"])
    return doc


# --------------------------------------------------------------------------------------------------
# Rebuilding the stage results


def rebuild_stages(
    documents: Mapping[str, Any], params: PlanParams
) -> tuple[PlanInputs, AggregateResult, AllocationResult, MrpResult, CapacityResult]:
    """The inputs and stage results the derived documents are computed from."""
    agg_rows = _rows(documents, "aggregate.json")
    det_rows = _rows(documents, "sku_week.json")
    mrp_rows = _rows(documents, "mrp.json")
    final_doc = _document(documents, "plan_final.json")
    final_rows = _rows(documents, "plan_final.json")
    extra = final_doc.get("reconcile_params") or {}

    families, periods = _grid_axes("aggregate.json", agg_rows, "family", lambda r: r["period"])
    items, weeks = _grid_axes("plan_final.json", final_rows, "item", lambda r: r["week"])
    mrp_items, mrp_weeks = _grid_axes("mrp.json", mrp_rows, "item", lambda r: r["week"])
    if (mrp_items, mrp_weeks) != (items, weeks):
        raise DerivationError("mrp.json and plan_final.json do not hold the same items and weeks")
    skus, bucket_keys = _grid_axes("sku_week.json", det_rows, "sku", lambda r: (r["period"], r["week"]))
    if items[: len(skus)] != skus:
        raise DerivationError("plan_final.json must list the SKUs of sku_week.json first, in the same order")

    calendar = rebuild_calendar(periods, weeks, bucket_keys, extra.get(BUCKET_WEIGHTS))
    fam_index = {f: i for i, f in enumerate(families)}
    sku_family = _sku_families(det_rows, len(skus), len(bucket_keys), fam_index)

    qty = _Quantities(params)
    agg = _aggregate(qty, agg_rows, len(families), len(periods))
    alloc = AllocationResult(
        **{m: qty.grid(det_rows, m, len(skus), len(bucket_keys)) for m in ("demand", "supply", "backlog")}
    )
    mrp = _mrp(qty, mrp_rows, len(items), len(weeks))
    cap = _capacity(qty, final_doc, final_rows, items, weeks, mrp, len(skus), extra.get(UNPLACED))
    inputs = PlanInputs(
        label="",
        calendar=calendar,
        families=families,
        demand=np.asarray(agg.demand, dtype=np.float64),
        skus=skus,
        sku_family=sku_family,
        sku_share=np.zeros(len(skus)),
        workcenters=[],
        capacity=np.zeros((0, len(periods))),
        routing=None,
        items=items,
        item_lt=mrp.lt_weeks.astype(np.float64),
        item_lot=qty.first_week(mrp_rows, "lot", len(items), len(weeks)),
        item_moq=qty.first_week(mrp_rows, "moq", len(items), len(weeks)),
        item_safety_stock=qty.first_week(mrp_rows, "safety_stock", len(items), len(weeks)),
        item_max_lot=np.zeros(len(items)),
        item_unit_cost=_unit_costs(items, extra.get(UNIT_COST)),
        on_hand=mrp.on_hand_start[:, 0].copy() if len(weeks) else np.zeros(len(items)),
        scheduled_receipts=mrp.scheduled_receipts,
        **_pegging_bom(items, extra.get(PEGGING_BOM)),
    )
    return inputs, agg, alloc, mrp, cap


def _unit_costs(items: list[str], stored: Mapping[str, Any] | None) -> np.ndarray:
    """Unit costs of the items the stored facts name (0, unknown, for the rest)."""
    index = {name: i for i, name in enumerate(items)}
    cost = np.zeros(len(items))
    for name, value in (stored or {}).items():
        if name not in index:
            raise DerivationError(f"reconcile_params unit_cost names {name!r}, which is not a plan item")
        cost[index[name]] = float(value)
    return cost


def _pegging_bom(items: list[str], stored: Sequence[Sequence[str]] | None) -> dict[str, np.ndarray]:
    """The bill-of-material edges pegging follows, as the stored facts list them (quantities unused)."""
    index = {name: i for i, name in enumerate(items)}
    try:
        pairs = [(index[p], index[c]) for p, c in stored or ()]
    except KeyError as exc:
        raise DerivationError(
            f"reconcile_params pegging_bom names {exc.args[0]!r}, which is not a plan item"
        ) from None
    parent = np.array([p for p, _ in pairs], dtype=np.int64)
    child = np.array([c for _, c in pairs], dtype=np.int64)
    n = len(pairs)
    return {"bom_parent": parent, "bom_child": child, "bom_qty": np.ones(n), "bom_scrap": np.zeros(n)}


def rebuild_calendar(
    periods: list[str],
    weeks: list[str],
    bucket_keys: list[tuple[str, str]],
    stored_weights: Mapping[str, Any] | None,
) -> Calendar:
    """The plan's calendar from its buckets ``(period, week)`` in date order.

    Split weeks take their stored weights; every other weight (and any weight of a document written
    without them) is the bucket's days, which is what a calendar derived from dates holds.
    """
    if not bucket_keys:  # no SKU: the buckets are those of the dated calendar
        bucket_keys = [(b.period, b.week) for b in derive_calendar(periods).buckets]
    stored = dict(stored_weights or {})
    split = {w for w in {w for _, w in bucket_keys} if sum(1 for _, x in bucket_keys if x == w) > 1}
    buckets = []
    for period, week in bucket_keys:
        if period not in periods:
            raise DerivationError(f"sku_week.json bucket {week}@{period} is outside aggregate.json's periods")
        start, end = _bucket_dates(period, week)
        weight = (end - start).days + 1
        key = f"{week}@{period}"
        if week in split and key in stored:
            weight = stored[key]
        buckets.append(Bucket(period, week, start, end, float(weight)))
    bounds = [month_bounds(p) for p in periods]
    try:
        calendar = Calendar(periods, [b[0] for b in bounds], [b[1] for b in bounds], buckets)
    except ValueError as exc:
        raise DerivationError(f"sku_week.json buckets do not form a calendar: {exc}") from exc
    if calendar.weeks != weeks:
        raise DerivationError("the weeks of sku_week.json and plan_final.json differ")
    return calendar


def _bucket_dates(period: str, week: str) -> tuple[dt.date, dt.date]:
    """The days of ISO week ``week`` inside month ``period`` (the whole week when they do not meet)."""
    year, number = week.split("-W")
    monday = dt.date.fromisocalendar(int(year), int(number), 1)
    first, last = month_bounds(period)
    start, end = max(monday, first), min(monday + dt.timedelta(days=6), last)
    return (start, end) if start <= end else (monday, monday + dt.timedelta(days=6))


def _sku_families(
    rows: list[dict[str, Any]], n_sku: int, n_bucket: int, fam_index: dict[str, int]
) -> np.ndarray:
    out = np.zeros(n_sku, dtype=np.int64)
    for s in range(n_sku):
        family = rows[s * n_bucket]["family"]
        if family not in fam_index:
            raise DerivationError(f"sku_week.json family {family!r} is not in aggregate.json")
        out[s] = fam_index[family]
    return out


def _aggregate(qty: _Quantities, rows: list[dict[str, Any]], n_fam: int, n_per: int) -> AggregateResult:
    fields = {
        k: qty.grid(rows, k, n_fam, n_per)
        for k in ("demand", "supply", "backlog", "inventory_open", "inventory_close", "prebuild")
    }
    per_period = {
        k: _first_row(qty.grid(rows, k, n_fam, n_per, np.float64), n_per)
        for k in ("capacity_total", "capacity_used")
    }
    return AggregateResult(
        **fields,
        **per_period,
        unserved_end=fields["backlog"][:, -1].copy() if n_per else np.zeros(n_fam, fields["backlog"].dtype),
    )


def _first_row(grid: np.ndarray, n: int) -> np.ndarray:
    return grid[0].copy() if grid.shape[0] else np.zeros(n)


def _mrp(qty: _Quantities, rows: list[dict[str, Any]], n_items: int, n_weeks: int) -> MrpResult:
    plan = {
        k: qty.grid(rows, k, n_items, n_weeks)
        for k in (
            "gross_req",
            "scheduled_receipts",
            "on_hand_start",
            "net_req",
            "planned_order_receipt",
            "planned_order_release",
            "on_hand_end",
        )
    }
    lt_weeks = _ints(rows, "lt_weeks", n_items, n_weeks)[:, 0] if n_weeks else np.zeros(n_items, np.int64)
    # The quantity released before week 1 is the receipts inside the lead time, as MRP offset them.
    _, past_due_qty = offset_releases(plan["planned_order_receipt"], lt_weeks)
    return MrpResult(
        **plan,
        orders=_ints(rows, "orders", n_items, n_weeks),
        lt_weeks=lt_weeks,
        llc=_ints(rows, "llc", n_items, n_weeks)[:, 0] if n_weeks else np.zeros(n_items, np.int64),
        past_due=_flags(rows, "past_due", n_items, n_weeks),
        past_due_qty=past_due_qty,
    )


def _capacity(
    qty: _Quantities,
    doc: Mapping[str, Any],
    rows: list[dict[str, Any]],
    items: list[str],
    weeks: list[str],
    mrp: MrpResult,
    n_fg: int,
    stored_unplaced: Mapping[str, Any] | None,
) -> CapacityResult:
    n_items, n_weeks = len(items), len(weeks)
    summary = doc.get("weekly_summary")
    if not isinstance(summary, list) or [r.get("week") for r in summary] != weeks:
        raise DerivationError("plan_final.json weekly_summary must hold one row per week, in week order")
    weekly = {
        k: qty.column(summary, k, np.float64)
        for k in ("capacity", "original_load", "adjusted_load", "prebuild_in", "spill_in", "spill_out")
    }
    adjusted = {
        k: qty.grid(rows, k, n_items, n_weeks)
        for k in (
            "planned_order_receipt_adj",
            "planned_order_release_adj",
            "on_hand_end_adj",
            "gross_req_adj",
        )
    }
    return CapacityResult(
        **adjusted,
        **weekly,
        orders_adj=_ints(rows, "orders_adj", n_items, n_weeks),
        unplaced=_unplaced(qty, stored_unplaced, items, mrp, adjusted["planned_order_receipt_adj"], n_fg),
        past_due_adj=_flags(rows, "past_due_adj", n_items, n_weeks),
        zone=[r.get("zone") for r in summary],
    )


def _unplaced(
    qty: _Quantities,
    stored: Mapping[str, Any] | None,
    items: list[str],
    mrp: MrpResult,
    receipts_adj: np.ndarray,
    n_fg: int,
) -> np.ndarray:
    """FG quantity capacity reconciliation left after the last week, per item."""
    if stored is not None:
        index = {item: i for i, item in enumerate(items)}
        unknown = sorted(set(stored) - set(index))
        if unknown:
            raise DerivationError(f"plan_final.json reconcile_params.unplaced names unknown items {unknown}")
        values = qty.array(list(stored.values()))
        out = np.zeros(len(items), dtype=values.dtype)
        out[[index[item] for item in stored]] = values
        return out
    # Moves between weeks conserve each item's total, so what is missing from it was not placed.
    lost = np.zeros(len(items), dtype=np.float64)
    lost[:n_fg] = np.asarray(mrp.planned_order_receipt[:n_fg], dtype=np.float64).sum(axis=1) - np.asarray(
        receipts_adj[:n_fg], dtype=np.float64
    ).sum(axis=1)
    return round_qty(np.maximum(lost, 0.0), qty.params.decimals)


# --------------------------------------------------------------------------------------------------
# Reading documents


def _document(documents: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    doc = documents.get(name)
    if not isinstance(doc, Mapping):
        raise DerivationError(f"{name} must be a JSON object")
    return doc


def _rows(documents: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    rows = _document(documents, name).get("rows")
    if isinstance(rows, docs.RowTable):  # the engine's own table
        return rows.rows()
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        raise DerivationError(f"{name} rows must be a list of objects")
    return rows


def _grid_axes(name: str, rows: list[dict[str, Any]], major: str, minor: Any) -> tuple[list[str], list[Any]]:
    """The axes of a table written major-by-minor (every major holds the same minors, in order)."""
    majors = list(dict.fromkeys(r[major] for r in rows))
    if not majors:
        return [], []
    first = majors[0]
    minors = [minor(r) for r in rows if r[major] == first]
    if len(rows) != len(majors) * len(minors):
        raise DerivationError(f"{name}: every {major} must have the same {len(minors)} rows")
    for i, r in enumerate(rows):
        if r[major] != majors[i // len(minors)] or minor(r) != minors[i % len(minors)]:
            raise DerivationError(f"{name}: row {i} is out of the {major}-by-time order")
    return majors, minors


class _Quantities:
    """Quantity columns as the engine holds them: int64 in ``int`` mode, float64 otherwise."""

    def __init__(self, params: PlanParams):
        self.params = params

    def array(self, values: list[Any], dtype: type | None = None) -> np.ndarray:
        """``values`` as an array: int64 when the plan is in ``int`` mode and every value is an integer."""
        arr = np.asarray(values)
        if arr.size and arr.dtype.kind not in "iuf":
            raise DerivationError(f"expected numbers, got values like {values[0]!r}")
        if dtype is None:
            dtype = np.int64 if self.params.is_int and arr.dtype.kind in "iu" else np.float64
        return arr.astype(dtype)

    def column(self, rows: list[dict[str, Any]], key: str, dtype: type | None = None) -> np.ndarray:
        return self.array(list(map(itemgetter(key), rows)), dtype)

    def grid(
        self, rows: list[dict[str, Any]], key: str, n: int, m: int, dtype: type | None = None
    ) -> np.ndarray:
        return self.column(rows, key, dtype).reshape(n, m)

    def first_week(self, rows: list[dict[str, Any]], key: str, n: int, m: int) -> np.ndarray:
        return self.grid(rows, key, n, m, np.float64)[:, 0].copy() if m else np.zeros(n)


def _ints(rows: list[dict[str, Any]], key: str, n: int, m: int) -> np.ndarray:
    return np.asarray(list(map(itemgetter(key), rows)), dtype=np.int64).reshape(n, m)


def _flags(rows: list[dict[str, Any]], key: str, n: int, m: int) -> np.ndarray:
    """An item's flag sits on its week-1 row."""
    if not m:
        return np.zeros(n, dtype=bool)
    return np.asarray(list(map(itemgetter(key), rows)), dtype=bool).reshape(n, m)[:, 0].copy()
