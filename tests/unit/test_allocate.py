"""Allocation to SKU x bucket (SPEC 3.2): two-stage largest remainder, exact conservation, locks."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.planning.allocate import (
    DetailLayout,
    allocate_to_weeks,
    allocate_with_residual,
    rollup,
    split_to_detail,
)
from app.planning.model import PlanParams
from tests.unit.builders import aggregate_result, family_inputs

# February 2026 starts on a Sunday: buckets W05 (1 day), W06, W07, W08 (7 days), W09 (6 days) = 28.
FEB_WEIGHTS = [1, 7, 7, 7, 6]


def test_family_month_splits_by_mix_share_then_by_calendar_weight():
    # 100 over shares 0.6/0.4 -> 60/40.
    # S00: 60 over 1,7,7,7,6 (/28) -> 2.14, 15, 15, 15, 12.86 -> floors 59, spare unit to W09 -> 2,15,15,15,13
    # S01: 40 -> 1.43, 10, 10, 10, 8.57 -> floors 39, spare unit to W09 -> 1,10,10,10,9
    inputs = family_inputs(sku_family=[0, 0], shares=[0.6, 0.4], periods=["2026-02"])
    alloc = allocate_to_weeks(inputs, aggregate_result([[100]]), PlanParams())
    assert [b.weight for b in inputs.calendar.buckets] == FEB_WEIGHTS
    assert alloc.demand.tolist() == [[2, 15, 15, 15, 13], [1, 10, 10, 10, 9]]
    assert alloc.demand.dtype == np.int64


def test_equal_shares_give_the_spare_unit_to_the_lower_sku_code():
    inputs = family_inputs(sku_family=[0, 0], shares=[0.5, 0.5], periods=["2026-02"])
    alloc = allocate_to_weeks(inputs, aggregate_result([[1]]), PlanParams())
    # 1 over two SKUs: 0.5/0.5 -> S00; then over S00's weeks 1,7,7,7,6: quotas .04,.25,.25,.25,.21 -> W06
    assert alloc.demand.tolist() == [[0, 1, 0, 0, 0], [0, 0, 0, 0, 0]]


def test_split_week_appears_as_two_buckets_one_per_month():
    # ISO week 2026-W05 runs Mon 26 Jan - Sun 1 Feb: 6 days in January, 1 in February.
    inputs = family_inputs(sku_family=[0], shares=[1.0], periods=["2026-01", "2026-02"])
    cal = inputs.calendar
    w05 = [i for i, b in enumerate(cal.buckets) if b.week == "2026-W05"]
    assert [(cal.buckets[i].period, cal.buckets[i].weight) for i in w05] == [("2026-01", 6), ("2026-02", 1)]
    alloc = allocate_to_weeks(inputs, aggregate_result([[31, 28]]), PlanParams())
    # demand = days: every bucket gets its weight, so W05 gets 6 in January and 1 in February
    assert alloc.demand[0, w05].tolist() == [6, 1]
    assert alloc.demand[0].tolist() == [b.weight for b in cal.buckets]


def test_split_week_demand_is_conserved_per_month():
    inputs = family_inputs(
        sku_family=[0, 0, 1], shares=[0.3, 0.7, 1.0], periods=["2026-01", "2026-02", "2026-03"]
    )
    agg = aggregate_result([[101, 57, 13], [7, 0, 99]])
    alloc = allocate_to_weeks(inputs, agg, PlanParams())
    assert rollup(DetailLayout.from_inputs(inputs), alloc.demand).tolist() == agg.demand.tolist()


def test_supply_and_backlog_are_spread_like_demand():
    inputs = family_inputs(sku_family=[0, 0], shares=[0.6, 0.4], periods=["2026-02"])
    alloc = allocate_to_weeks(
        inputs, aggregate_result([[100]], supply=[[100]], backlog=[[100]]), PlanParams()
    )
    assert alloc.supply.tolist() == alloc.demand.tolist() == alloc.backlog.tolist()


def test_a_bucket_of_another_month_is_zero():
    inputs = family_inputs(sku_family=[0], shares=[1.0], periods=["2026-01", "2026-02"])
    alloc = allocate_to_weeks(inputs, aggregate_result([[31, 0]]), PlanParams())
    feb = inputs.calendar.bucket_period_idx == 1
    assert alloc.demand[0, feb].sum() == 0
    assert alloc.demand[0, ~feb].sum() == 31


def test_locked_cell_keeps_its_value_and_the_rest_is_apportioned():
    # lock W06 at 40: the other 60 go over W05, W07, W08, W09 by 1,7,7,6 (/21):
    # 2.86, 20, 20, 17.14 -> floors 59, spare unit to W05 (.86) -> 3, 20, 20, 17
    inputs = family_inputs(sku_family=[0], shares=[1.0], periods=["2026-02"])
    mask = np.array([[False, True, False, False, False]])
    values = np.array([[0, 40, 0, 0, 0]])
    alloc, residual = allocate_with_residual(
        inputs, aggregate_result([[100]]), PlanParams(), {"demand": (mask, values)}
    )
    assert alloc.demand.tolist() == [[3, 40, 20, 20, 17]]
    assert residual["demand"].tolist() == [[0]]
    assert alloc.supply.tolist() == [[4, 25, 25, 25, 21]]  # supply has no lock: 100 by 1,7,7,7,6


def test_locks_exceeding_the_total_leave_the_rest_at_zero_and_report_the_residual():
    inputs = family_inputs(sku_family=[0], shares=[1.0], periods=["2026-02"])
    mask = np.array([[False, True, False, False, False]])
    values = np.array([[0, 120, 0, 0, 0]])
    alloc, residual = allocate_with_residual(
        inputs, aggregate_result([[100]]), PlanParams(), {"demand": (mask, values)}
    )
    assert alloc.demand.tolist() == [[0, 120, 0, 0, 0]]
    assert residual["demand"].tolist() == [[-20]]  # aggregate 100 - detail 120


def test_fully_locked_month_reports_what_it_cannot_place():
    inputs = family_inputs(sku_family=[0], shares=[1.0], periods=["2026-02"])
    mask = np.ones((1, 5), dtype=bool)
    values = np.array([[10, 20, 20, 20, 20]])
    alloc, residual = allocate_with_residual(
        inputs, aggregate_result([[100]]), PlanParams(), {"demand": (mask, values)}
    )
    assert alloc.demand.tolist() == values.tolist()
    assert residual["demand"].tolist() == [[10]]


def test_sku_with_every_bucket_locked_takes_no_more():
    # S00's February is locked at 10 in total; the other 90 all go to S01 (1,7,7,7,6 /28):
    # 3.21, 22.5, 22.5, 22.5, 19.29 -> floors 88; spare units to the .5 remainders W06 and W07
    inputs = family_inputs(sku_family=[0, 0], shares=[0.5, 0.5], periods=["2026-02"])
    mask = np.array([[True] * 5, [False] * 5])
    values = np.array([[2, 2, 2, 2, 2], [0] * 5])
    alloc, residual = allocate_with_residual(
        inputs, aggregate_result([[100]]), PlanParams(), {"demand": (mask, values)}
    )
    assert alloc.demand.tolist() == [[2, 2, 2, 2, 2], [3, 23, 23, 22, 19]]
    assert residual["demand"].tolist() == [[0]]


def test_dec1_mode_splits_tenths_and_conserves_the_total():
    inputs = family_inputs(sku_family=[0, 0, 0], shares=[1, 1, 1], periods=["2026-02"])
    alloc = allocate_to_weeks(inputs, aggregate_result([[1.0]]), PlanParams(round_mode="dec1"))
    assert alloc.demand.dtype == np.float64
    # 10 tenths over three equal SKUs: 3.33 each -> 4/3/3 tenths, the spare one to the lowest SKU code
    assert np.round(alloc.demand.sum(axis=1), 1).tolist() == [0.4, 0.3, 0.3]
    assert round(float(alloc.demand.sum()), 1) == 1.0


def test_split_to_detail_restricted_to_some_cells():
    # only W08 and W09 may take the 26: by 7 and 6 (/13) -> 14, 12
    inputs = family_inputs(sku_family=[0], shares=[1.0], periods=["2026-02"])
    layout = DetailLayout.from_inputs(inputs)
    cells = np.array([False, False, False, True, True])
    detail, residual = split_to_detail(layout, np.array([[26]]), 0, cells=cells[None, :])
    assert detail.tolist() == [[0, 0, 0, 14, 12]]
    assert residual.tolist() == [[0]]


# --------------------------------------------------------------------------------------------------
# Properties


@st.composite
def allocation_cases(draw):
    n_fam = draw(st.integers(1, 3))
    fam = sorted(draw(st.lists(st.integers(0, n_fam - 1), min_size=n_fam, max_size=8)) + list(range(n_fam)))
    shares = draw(
        st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 3.0]), min_size=len(fam), max_size=len(fam))
    )
    start = draw(st.integers(1, 10))
    n_per = draw(st.integers(1, 3))
    periods = [f"2026-{m:02d}" for m in range(start, start + n_per)]
    mode = draw(st.sampled_from(["int", "dec1", "dec2"]))
    scale = 10 ** PlanParams(round_mode=mode).decimals
    units = st.lists(
        st.lists(st.integers(0, 5000), min_size=n_per, max_size=n_per), min_size=n_fam, max_size=n_fam
    )
    totals = [np.array(draw(units)) for _ in range(3)]
    totals = [t if mode == "int" else t / scale for t in totals]
    return (
        family_inputs(sku_family=fam, shares=shares, periods=periods),
        aggregate_result(*totals),
        PlanParams(round_mode=mode),
        draw(st.randoms()),
    )


@settings(max_examples=60, deadline=None)
@given(case=allocation_cases())
def test_detail_rolls_up_exactly_to_every_aggregate_row(case):
    inputs, agg, params, _ = case
    alloc = allocate_to_weeks(inputs, agg, params)
    layout = DetailLayout.from_inputs(inputs)
    for measure in ("demand", "supply", "backlog"):
        detail = getattr(alloc, measure)
        assert detail.shape == (len(inputs.skus), inputs.calendar.n_buckets)
        assert np.all(detail >= 0)
        rolled = rollup(layout, detail, params.decimals)
        if params.is_int:
            assert detail.dtype == np.int64
            assert rolled.tolist() == getattr(agg, measure).tolist()
        else:
            assert np.allclose(rolled, getattr(agg, measure), atol=1e-9)
            scale = 10**params.decimals
            assert np.allclose(detail * scale, np.round(detail * scale), atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(case=allocation_cases())
def test_locked_cells_keep_their_values_and_the_residual_closes_the_gap(case):
    inputs, agg, params, rnd = case
    shape = (len(inputs.skus), inputs.calendar.n_buckets)
    rng = np.random.default_rng(rnd.randrange(2**32))
    mask = rng.random(shape) < 0.3
    values = rng.integers(0, 300, shape).astype(np.float64)
    if not params.is_int:
        values = values / 10**params.decimals
    alloc, residual = allocate_with_residual(inputs, agg, params, {"demand": (mask, values)})
    layout = DetailLayout.from_inputs(inputs)
    assert np.allclose(alloc.demand[mask], values[mask])
    assert np.all(alloc.demand >= 0)
    rolled = rollup(layout, alloc.demand, params.decimals)
    assert np.allclose(rolled + residual["demand"], agg.demand, atol=1e-9)
    # a residual only appears where the locks are in the way: rows with an unlocked cell and locks
    # below the total have none
    locked_sum = rollup(layout, np.where(mask, values, 0), params.decimals)
    has_free = rollup(layout, (~mask).astype(np.int64), 0) > 0
    fits = (locked_sum <= agg.demand + 1e-9) & has_free
    assert np.allclose(residual["demand"][fits], 0, atol=1e-9)
