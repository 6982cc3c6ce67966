"""Capacity reconciliation (SPEC 3.4): weekly capacity, prebuild, spill, lots, unplaced, re-netting."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.planning.calendar import derive_calendar
from app.planning.capacity import reconcile_capacity, weekly_capacity
from app.planning.model import CapacityResult, PlanInputs, PlanParams
from app.planning.mrp import run_mrp
from tests.unit.builders import plan_inputs

#: Feb 2027 is exactly four ISO weeks (W05-W08), so a monthly capacity of 400 is 100 per week.
FEB = ["2027-02"]


def build_inputs(
    n_fg: int,
    n_components: int = 0,
    *,
    periods: list[str] = FEB,
    monthly_capacity: list[list[float]] | None = None,
    routing: list[list[float]] | None = None,
    bom: tuple[tuple[int, int, float, float], ...] = (),
    **item_columns: list[float],
) -> PlanInputs:
    """One family per finished good; item columns (lt, lot, moq, safety_stock, max_lot, on_hand) default
    to 0 (lot to 1); capacity defaults to 400 per month on one workcenter."""
    calendar = derive_calendar(periods)
    capacity = np.array(monthly_capacity or [[400.0] * calendar.n_periods], dtype=np.float64)
    return plan_inputs(
        calendar,
        skus=[f"FG{i}" for i in range(n_fg)],
        sku_family=np.arange(n_fg, dtype=np.int64),
        components=[f"C{j}" for j in range(n_components)],
        workcenters=[f"WC{w}" for w in range(capacity.shape[0])],
        capacity=capacity,
        routing=routing,
        bom=bom,
        **item_columns,
    )


def reconcile(inputs: PlanInputs, gross: list[list[int]], **params) -> CapacityResult:
    """Plan MRP (lead time 0, no stock: receipts = demand up to lots) and reconcile it."""
    plan_params = PlanParams(**params)
    fg_gross = np.array(gross, dtype=plan_params.qty_dtype)
    return reconcile_capacity(inputs, run_mrp(inputs, fg_gross, plan_params), fg_gross, plan_params)


# --- hand-computed cases ------------------------------------------------------------------------------


def test_split_week_gets_capacity_from_both_months():
    # March 310 over 31 days = 10/day; April 600 over 30 days = 20/day.
    # W13 = Mar 29-31 (3 days) + Apr 1-4 (4 days) = 30 + 80 = 110; W09 = 7 * 10; W14 = 7 * 20.
    inputs = build_inputs(1, periods=["2027-03", "2027-04"], monthly_capacity=[[310.0, 600.0]])
    cap = weekly_capacity(inputs)[0]
    weeks = inputs.calendar.weeks
    assert cap[weeks.index("2027-W13")] == 110
    assert cap[weeks.index("2027-W09")] == 70
    assert cap[weeks.index("2027-W14")] == 140
    assert abs(cap.sum() - 910) < 1e-9


def test_overload_moves_to_the_earlier_week_split_by_load_share():
    # Capacity 100/week. Week 2: A 25 + B 15 = 40 (60 free). Week 3: A 100 + B 50 = 150 (50 over).
    # Shares of the 50: A 50*100/150 = 33.33, B 50*50/150 = 16.67 -> floors 33 + 16 = 49, the last unit
    # goes to the larger remainder (B .67): A 33, B 17. All 50 fit into week 2.
    inputs = build_inputs(2)
    result = reconcile(inputs, [[0, 25, 100, 0], [0, 15, 50, 0]])
    assert result.planned_order_receipt_adj[:2].tolist() == [[0, 58, 67, 0], [0, 32, 33, 0]]
    assert result.original_load.tolist() == [0, 40, 150, 0]
    assert result.adjusted_load.tolist() == [0, 90, 100, 0]
    assert result.prebuild_in.tolist() == [0, 50, 0, 0]
    assert result.spill_out.tolist() == [0, 0, 50, 0]
    assert result.spill_in.tolist() == [0, 0, 0, 0]
    assert result.capacity.tolist() == [100, 100, 100, 100]
    assert result.unplaced.tolist() == [0, 0]


def test_prebuild_fills_the_latest_earlier_week_first():
    # Week 4 load 130 (30 over); week 3 has 90 (10 free), week 2 is empty: 10 to week 3, 20 to week 2.
    inputs = build_inputs(1)
    result = reconcile(inputs, [[0, 0, 90, 130]])
    assert result.planned_order_receipt_adj[0].tolist() == [0, 20, 100, 100]
    assert result.prebuild_in.tolist() == [0, 20, 10, 0]


def test_prebuild_stays_within_the_prebuild_window():
    # Week 4 is 30 over, week 3 is full; with prebuild_weeks=1 week 2 is out of reach: nowhere to go.
    inputs = build_inputs(1)
    result = reconcile(inputs, [[0, 0, 100, 130]], prebuild_weeks=1)
    assert result.planned_order_receipt_adj[0].tolist() == [0, 0, 100, 100]
    assert result.unplaced.tolist() == [30]


def test_without_prebuild_the_excess_spills_to_the_next_week_with_free_capacity():
    # Week 1 load 130, week 2 full (100), week 3 empty: the 30 spill past week 2 into week 3.
    inputs = build_inputs(1)
    result = reconcile(inputs, [[130, 100, 0, 0]], prebuild_weeks=0)
    assert result.planned_order_receipt_adj[0].tolist() == [100, 100, 30, 0]
    assert result.spill_out.tolist() == [30, 0, 0, 0]
    assert result.spill_in.tolist() == [0, 0, 30, 0]
    assert result.prebuild_in.tolist() == [0, 0, 0, 0]


def test_moved_quantity_is_rounded_up_to_whole_lots():
    # Week 2: A 90 (lot 30) + B 20 (lot 1) = 110, 10 over. Shares: A 10*90/110 = 8.18, B 1.82 ->
    # floors 8 + 1, the extra unit to B (.82): A 8, B 2. A rounds up to one lot: 30. Moved: 32 to week 1.
    inputs = build_inputs(2, lot=[30, 1])
    result = reconcile(inputs, [[0, 90, 0, 0], [0, 20, 0, 0]])
    assert result.planned_order_receipt_adj[:2, :2].tolist() == [[30, 60], [2, 18]]
    assert result.adjusted_load[:2].tolist() == [32, 78]


def test_a_lot_that_does_not_fit_an_earlier_week_is_not_cut():
    # Lot 40. Week 1: 80 (20 free); week 2: 120, 20 over -> one whole lot of 40 moves. It does not fit
    # the 20 free in week 1, so it spills whole into week 3.
    inputs = build_inputs(1, lot=[40])
    result = reconcile(inputs, [[80, 120, 0, 0]])
    assert result.planned_order_receipt_adj[0].tolist() == [80, 80, 40, 0]
    assert result.spill_in.tolist() == [0, 0, 40, 0]
    assert result.prebuild_in.tolist() == [0, 0, 0, 0]


def test_quantity_left_after_the_last_week_is_unplaced_never_dropped():
    # Weeks 3 and 4 are 130 each with no prebuild: week 3 spills 30 into week 4, which is full;
    # week 4's own 30 have nowhere to go. 60 unplaced, receipts 100 + 100.
    inputs = build_inputs(1)
    result = reconcile(inputs, [[0, 0, 130, 130]], prebuild_weeks=0)
    assert result.planned_order_receipt_adj[0].tolist() == [0, 0, 100, 100]
    assert result.unplaced.tolist() == [60]


def test_routing_loads_each_workcenter_and_only_items_on_the_overloaded_one_move():
    # A loads WC0 2 per unit, B loads WC1 1 per unit; each workcenter has 100/week.
    # Week 2: A 60 -> 120 on WC0 (20 over = 10 units of A); B 50 -> 50 on WC1. Only A moves: 10 to week 1.
    inputs = build_inputs(2, monthly_capacity=[[400.0], [400.0]], routing=[[2.0, 0.0], [0.0, 1.0]])
    result = reconcile(inputs, [[0, 60, 0, 0], [0, 50, 0, 0]])
    assert result.planned_order_receipt_adj[:2, :2].tolist() == [[10, 50], [0, 50]]
    assert result.capacity.tolist() == [200, 200, 200, 200]  # pooled over both workcenters
    assert result.original_load.tolist() == [0, 170, 0, 0]  # 2 * 60 + 50
    assert result.adjusted_load.tolist() == [20, 150, 0, 0]


def test_components_are_renetted_from_the_adjusted_fg_releases():
    # FG (lead time 0) needs 2 of C per unit. Week 3 is 50 over and prebuilds 50 into week 2, so C's
    # requirement moves with it: 2 * 50 = 100 in week 2, 2 * 100 = 200 in week 3.
    inputs = build_inputs(1, 1, bom=((0, 1, 2, 0),))
    result = reconcile(inputs, [[0, 0, 150, 0]])
    assert result.planned_order_release_adj[0].tolist() == [0, 50, 100, 0]
    assert result.planned_order_receipt_adj[1].tolist() == [0, 100, 200, 0]
    assert result.unplaced.tolist() == [0, 0]


def test_fg_on_hand_follows_the_adjusted_receipts_and_may_go_negative():
    # Spilled 30 from week 1 to week 2: on-hand -30 at the end of week 1 (a shortage), 0 after week 2.
    inputs = build_inputs(1)
    result = reconcile(inputs, [[130, 0, 0, 0]], prebuild_weeks=0)
    assert result.on_hand_end_adj[0].tolist() == [-30, 0, 0, 0]


def test_zones_default_to_none_and_are_passed_through():
    inputs = build_inputs(1)
    params = PlanParams()
    gross = np.zeros((1, 4), dtype=np.int64)
    mrp = run_mrp(inputs, gross, params)
    assert reconcile_capacity(inputs, mrp, gross, params).zone == [None] * 4
    zones = ["near", "at", "far", "far"]
    assert reconcile_capacity(inputs, mrp, gross, params, week_zones=zones).zone == zones


# --- properties -----------------------------------------------------------------------------------------

PERIODS = ["2027-02", "2027-03"]  # 9 weeks; W13 has 3 days, so its capacity is smaller
N_WEEKS = 9


@st.composite
def capacity_cases(draw):
    n_fg = draw(st.integers(1, 3))
    n_comp = draw(st.integers(0, 2))
    n = n_fg + n_comp
    bom = tuple(
        (draw(st.integers(0, n_fg - 1)), child, draw(st.integers(1, 3)), draw(st.sampled_from([0.0, 0.1])))
        for child in range(n_fg, n)
    )
    routed = draw(st.booleans())
    n_wc = 2 if routed else 1
    capacity = [[float(draw(st.integers(0, 800))) for _ in PERIODS] for _ in range(n_wc)]
    routing = [[draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])) for _ in range(n_wc)] for _ in range(n_fg)]
    lists = st.lists
    inputs = build_inputs(
        n_fg,
        n_comp,
        periods=PERIODS,
        monthly_capacity=capacity,
        routing=routing if routed else None,
        bom=bom,
        lt=draw(lists(st.integers(0, 14), min_size=n, max_size=n)),
        lot=draw(lists(st.sampled_from([1, 1, 5, 20]), min_size=n, max_size=n)),
        moq=draw(lists(st.integers(0, 25), min_size=n, max_size=n)),
        on_hand=draw(lists(st.integers(0, 60), min_size=n, max_size=n)),
    )
    gross = draw(
        lists(lists(st.integers(0, 90), min_size=N_WEEKS, max_size=N_WEEKS), min_size=n_fg, max_size=n_fg)
    )
    params = PlanParams(
        prebuild_weeks=draw(st.integers(0, 4)),
        round_mode=draw(st.sampled_from(["int", "int", "dec1", "none"])),
    )
    fg_gross = np.array(gross, dtype=params.qty_dtype)
    mrp = run_mrp(inputs, fg_gross, params)
    return inputs, fg_gross, params, mrp, reconcile_capacity(inputs, mrp, fg_gross, params)


@settings(max_examples=75, deadline=None)
@given(capacity_cases())
def test_fg_receipts_are_conserved_with_unplaced(case):
    inputs, _, _, mrp, result = case
    n_fg = inputs.n_fg
    total = result.planned_order_receipt_adj[:n_fg].sum(axis=1) + result.unplaced[:n_fg]
    np.testing.assert_allclose(total, mrp.planned_order_receipt[:n_fg].sum(axis=1), atol=1e-6)
    assert np.all(result.planned_order_receipt_adj[:n_fg] >= 0)
    assert np.all(result.unplaced[n_fg:] == 0)


@settings(max_examples=75, deadline=None)
@given(capacity_cases())
def test_no_week_exceeds_its_capacity_on_any_workcenter(case):
    inputs, *_, result = case
    weekly = weekly_capacity(inputs)
    receipts = result.planned_order_receipt_adj[: inputs.n_fg]
    if inputs.routing is None:
        load, cap = receipts.sum(axis=0)[None, :], weekly.sum(axis=0)[None, :]
    else:
        load, cap = inputs.routing[inputs.sku_family].T @ receipts, weekly
    assert np.all(load <= cap + 1e-6)
    # The weekly summary balances: what stays + what came in - what left.
    np.testing.assert_allclose(
        result.adjusted_load,
        result.original_load + result.prebuild_in + result.spill_in - result.spill_out,
        atol=1e-6,
    )


@settings(max_examples=75, deadline=None)
@given(capacity_cases())
def test_fg_on_hand_follows_adjusted_receipts_cumulatively(case):
    inputs, fg_gross, _, _, result = case
    n_fg = inputs.n_fg
    flow = inputs.scheduled_receipts[:n_fg] + result.planned_order_receipt_adj[:n_fg] - fg_gross
    expected = inputs.on_hand[:n_fg, None] + np.cumsum(flow, axis=1)
    np.testing.assert_allclose(result.on_hand_end_adj[:n_fg], expected, atol=1e-6)


@settings(max_examples=75, deadline=None)
@given(capacity_cases())
def test_renetted_components_keep_their_lot_rules(case):
    inputs, _, params, _, result = case
    n_fg = inputs.n_fg
    q = result.planned_order_receipt_adj[n_fg:]
    lot = inputs.item_lot[n_fg:, None]
    moq = inputs.item_moq[n_fg:, None]
    multiple = np.abs(q / lot - np.round(q / lot)) < 1e-9
    assert np.all((q == 0) | ((q >= moq - 1e-9) & multiple))
    assert result.planned_order_receipt_adj.dtype == params.qty_dtype
