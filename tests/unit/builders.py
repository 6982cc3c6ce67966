"""Small builders of planning inputs and stage results shared by the unit tests.

Every builder fills what a test does not care about with zeros (lot sizes with ones), so a test only
spells out the part of the plan it exercises. Import them as ``from tests.unit.builders import ...``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from app.planning.calendar import derive_calendar
from app.planning.model import AggregateResult, Bucket, Calendar, CapacityResult, PlanInputs

D = dt.date


def three_week_calendar() -> Calendar:
    """2026-W04 (all January), 2026-W05 split 6 days January / 1 day February, 2026-W06 (February).

    Four buckets: Jan-W04 (7 days), Jan-W05 (6), Feb-W05 (1), Feb-W06 (7).
    """
    buckets = [
        Bucket("2026-01", "2026-W04", D(2026, 1, 19), D(2026, 1, 25), 7.0),
        Bucket("2026-01", "2026-W05", D(2026, 1, 26), D(2026, 1, 31), 6.0),
        Bucket("2026-02", "2026-W05", D(2026, 2, 1), D(2026, 2, 1), 1.0),
        Bucket("2026-02", "2026-W06", D(2026, 2, 2), D(2026, 2, 8), 7.0),
    ]
    return Calendar(
        ["2026-01", "2026-02"], [D(2026, 1, 19), D(2026, 2, 1)], [D(2026, 1, 31), D(2026, 2, 28)], buckets
    )


def plan_inputs(
    calendar: Calendar,
    *,
    skus: Sequence[str],
    sku_family: ArrayLike,
    families: Sequence[str] | None = None,
    demand: ArrayLike | None = None,
    sku_share: ArrayLike | None = None,
    components: Sequence[str] = (),
    workcenters: Sequence[str] | None = None,
    capacity: float | ArrayLike = 0.0,
    routing: ArrayLike | None = None,
    dtype: DTypeLike = np.float64,
    lt: ArrayLike | None = None,
    lot: ArrayLike | None = None,
    moq: ArrayLike | None = None,
    safety_stock: ArrayLike | None = None,
    max_lot: ArrayLike | None = None,
    unit_cost: ArrayLike | None = None,
    on_hand: ArrayLike | None = None,
    scheduled_receipts: ArrayLike | None = None,
    bom: Sequence[tuple[int, int, float, float]] = (),
    **extra: Any,
) -> PlanInputs:
    """A ``PlanInputs`` over ``calendar`` with the given structure; everything left out is empty.

    - ``families`` default to ``F0, F1, ...``: one per ``demand`` row, or up to the highest index in
      ``sku_family`` without demand. ``demand`` (float64, [F, P]) defaults to zeros.
    - ``sku_share`` defaults to 1 for every SKU.
    - ``items`` are the SKUs followed by ``components``.
    - ``capacity`` is a [W, P] array, or one number for a single workcenter in every period (0 by
      default); ``workcenters`` default to ``W0, W1, ...``, one per capacity row.
    - The item columns (``lt``, ``lot``, ``moq``, ``safety_stock``, ``max_lot``, ``on_hand``) and
      ``scheduled_receipts`` ([I, weeks]) are held in ``dtype`` and default to zeros, ``lot`` to ones;
      ``unit_cost`` is always float64 zeros unless given.
    - ``bom`` holds (parent, child, qty, scrap) edges by item index.
    - ``extra`` goes straight to ``PlanInputs`` (``period_score``, ``period_cost``).
    """
    skus = list(skus)
    sku_family = np.asarray(sku_family, dtype=np.int64)
    items = skus + list(components)
    n_items = len(items)
    if families is None:
        n_families = len(demand) if demand is not None else int(sku_family.max()) + 1
        families = [f"F{i}" for i in range(n_families)]
    families = list(families)
    capacity = np.asarray(capacity, dtype=np.float64)
    if capacity.ndim == 0:
        capacity = np.full((1, calendar.n_periods), float(capacity))
    capacity = np.atleast_2d(capacity)

    def column(values: ArrayLike | None, default: float = 0.0, column_dtype: DTypeLike = dtype) -> np.ndarray:
        if values is None:
            return np.full(n_items, default, dtype=column_dtype)
        return np.asarray(values, dtype=column_dtype)

    edges = np.array(bom, dtype=np.float64).reshape(-1, 4)
    return PlanInputs(
        label="test",
        calendar=calendar,
        families=families,
        demand=(
            np.zeros((len(families), calendar.n_periods))
            if demand is None
            else np.asarray(demand, dtype=np.float64)
        ),
        skus=skus,
        sku_family=sku_family,
        sku_share=np.ones(len(skus)) if sku_share is None else np.asarray(sku_share, dtype=np.float64),
        workcenters=(
            [f"W{i}" for i in range(capacity.shape[0])] if workcenters is None else list(workcenters)
        ),
        capacity=capacity,
        routing=None if routing is None else np.asarray(routing, dtype=np.float64),
        items=items,
        item_lt=column(lt),
        item_lot=column(lot, 1.0),
        item_moq=column(moq),
        item_safety_stock=column(safety_stock),
        item_max_lot=column(max_lot),
        item_unit_cost=column(unit_cost, column_dtype=np.float64),
        on_hand=column(on_hand),
        scheduled_receipts=(
            np.zeros((n_items, calendar.n_weeks), dtype=dtype)
            if scheduled_receipts is None
            else np.asarray(scheduled_receipts, dtype=dtype)
        ),
        bom_parent=edges[:, 0].astype(np.int64),
        bom_child=edges[:, 1].astype(np.int64),
        bom_qty=edges[:, 2],
        bom_scrap=edges[:, 3],
        **extra,
    )


def family_inputs(
    demand: ArrayLike | None = None,
    capacity: float | ArrayLike = 0.0,
    *,
    sku_family: ArrayLike | None = None,
    shares: ArrayLike | None = None,
    periods: Sequence[str] | None = None,
    **fields: Any,
) -> PlanInputs:
    """Family-level inputs: SKUs ``S00, S01, ...`` (no components) in families ``F0, F1, ...``.

    ``demand`` is [family, period]; without it every family's demand is zero and ``periods`` must be
    given. ``periods`` default to the 2026 months from January, one per demand column. ``sku_family``
    defaults to one SKU per family and ``shares`` to 1 each. ``capacity`` is one number (a single
    workcenter) or a [workcenter, period] array. Any other ``plan_inputs`` field passes through
    (``on_hand``, ``safety_stock``, ``routing``, ``period_score``, ...).
    """
    if sku_family is None:
        sku_family = np.arange(len(demand))
    if periods is None:
        periods = [f"2026-{m:02d}" for m in range(1, np.shape(demand)[1] + 1)]
    n_sku = len(sku_family)
    return plan_inputs(
        derive_calendar(list(periods)),
        skus=[f"S{i:02d}" for i in range(n_sku)],
        sku_family=sku_family,
        demand=demand,
        sku_share=shares,
        capacity=capacity,
        **fields,
    )


def aggregate_result(
    demand: ArrayLike,
    supply: ArrayLike | None = None,
    backlog: ArrayLike | None = None,
    *,
    unserved_end: ArrayLike | None = None,
    dtype: DTypeLike | None = None,
) -> AggregateResult:
    """An ``AggregateResult`` from its [family, period] rows; inventory and prebuild are zero.

    ``supply`` defaults to ``demand`` (the same array), ``backlog`` and ``unserved_end`` to zeros; the
    capacity rows are float64 zeros. ``dtype`` forces the rows' dtype; by default it follows ``demand``.
    """
    demand = np.asarray(demand, dtype=dtype)
    zero = np.zeros_like(demand)
    return AggregateResult(
        demand=demand,
        supply=demand if supply is None else np.asarray(supply, dtype=dtype),
        backlog=zero if backlog is None else np.asarray(backlog, dtype=dtype),
        inventory_open=zero,
        inventory_close=zero,
        prebuild=zero,
        capacity_total=np.zeros(demand.shape[1]),
        capacity_used=np.zeros(demand.shape[1]),
        unserved_end=zero[:, -1] if unserved_end is None else np.asarray(unserved_end, dtype=demand.dtype),
    )


def capacity_result(
    receipts: ArrayLike,
    on_hand_end: ArrayLike | None = None,
    capacity: ArrayLike | None = None,
    adjusted_load: ArrayLike | None = None,
    *,
    orders: ArrayLike | None = None,
    past_due: ArrayLike | None = None,
    unplaced: ArrayLike | None = None,
    original_load: ArrayLike | None = None,
    spill_in: ArrayLike | None = None,
    spill_out: ArrayLike | None = None,
) -> CapacityResult:
    """A ``CapacityResult`` whose adjusted receipts and releases are both ``receipts`` ([item, week]).

    Left out: on-hand zeros like ``receipts``; weekly capacity, loads, prebuild and spills int64 zeros
    (``original_load`` defaults to ``adjusted_load``); orders and unplaced int64 zeros; nothing past
    due; no zones.
    """
    receipts = np.asarray(receipts)
    n_items, n_weeks = receipts.shape
    week0 = np.zeros(n_weeks, dtype=np.int64)
    adjusted_load = week0 if adjusted_load is None else np.asarray(adjusted_load)
    return CapacityResult(
        planned_order_receipt_adj=receipts,
        planned_order_release_adj=receipts,
        on_hand_end_adj=np.zeros_like(receipts) if on_hand_end is None else np.asarray(on_hand_end),
        orders_adj=np.zeros((n_items, n_weeks), dtype=np.int64)
        if orders is None
        else np.asarray(orders, dtype=np.int64),
        capacity=week0 if capacity is None else np.asarray(capacity),
        original_load=adjusted_load if original_load is None else np.asarray(original_load),
        adjusted_load=adjusted_load,
        prebuild_in=week0,
        spill_in=week0 if spill_in is None else np.asarray(spill_in),
        spill_out=week0 if spill_out is None else np.asarray(spill_out),
        unplaced=np.zeros(n_items, dtype=np.int64)
        if unplaced is None
        else np.asarray(unplaced, dtype=np.int64),
        past_due_adj=np.zeros(n_items, dtype=bool) if past_due is None else np.asarray(past_due, dtype=bool),
        zone=[None] * n_weeks,
    )
