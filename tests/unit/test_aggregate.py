"""Aggregate plan (SPEC 3.1): need, capacity scaling, prebuild, backlog and the row identity."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.planning.aggregate import plan_aggregate, rebalance_aggregate, trace_aggregate
from app.planning.model import PlanInputs, PlanParams
from tests.unit.builders import family_inputs


def test_spec_worked_example_scales_80_and_40_into_capacity_100():
    # need A 80, B 40 = 120 > 100: factor 100/120 -> 66.67/33.33 -> largest remainder 67/33;
    # backlog 13/7 is served first next month: need 20+13 = 33 and 10+7 = 17 fit in 100.
    inputs = family_inputs([[80, 20], [40, 10]], [[100, 100]])
    agg = plan_aggregate(inputs, PlanParams())
    assert agg.supply[:, 0].tolist() == [67, 33]
    assert agg.backlog[:, 0].tolist() == [13, 7]
    assert agg.supply[:, 1].tolist() == [33, 17]
    assert agg.backlog[:, 1].tolist() == [0, 0]
    assert agg.unserved_end.tolist() == [0, 0]
    assert agg.capacity_used.tolist() == [100, 50]
    assert agg.capacity_total.tolist() == [100, 100]


def test_need_nets_family_on_hand_and_builds_family_safety_stock():
    # one family of two SKUs: on hand 30 + 20 = 50, safety stock 5 + 5 = 10.
    # month 1: need = 100 + 10 - 50 = 60, close = 50 + 60 - 100 = 10 (the safety stock)
    # month 2: need = 40 + 10 - 10 = 40, close stays 10
    inputs = family_inputs(
        [[100, 40]],
        [[1000, 1000]],
        sku_family=[0, 0],
        shares=[0.5, 0.5],
        on_hand=[30, 20],
        safety_stock=[5, 5],
    )
    agg = plan_aggregate(inputs, PlanParams())
    assert agg.inventory_open.tolist() == [[50, 10]]
    assert agg.supply.tolist() == [[60, 40]]
    assert agg.inventory_close.tolist() == [[10, 10]]
    assert agg.backlog.tolist() == [[0, 0]]


def test_prebuild_pulls_excess_into_the_previous_month():
    # k=1, capacity 100/100, demand 50/150: month 2 needs 150, 50 over capacity; month 1 has 50 free,
    # so month 1 supplies 50 + 50 (prebuild 50, close 50) and month 2 builds 150 - 50 = 100.
    inputs = family_inputs([[50, 150]], [[100, 100]])
    agg = plan_aggregate(inputs, PlanParams(prebuild_months=1))
    assert agg.supply.tolist() == [[100, 100]]
    assert agg.prebuild.tolist() == [[50, 0]]
    assert agg.inventory_close.tolist() == [[50, 0]]
    assert agg.inventory_open.tolist() == [[0, 50]]
    assert agg.backlog.tolist() == [[0, 0]]


def test_prebuild_fills_the_latest_month_first_and_the_rest_becomes_backlog():
    # k=2, capacity 100 each, demand 60/90/200: free 40 (m1) and 10 (m2); month 3 is 100 over,
    # pulls 10 into m2 first, then 40 into m1; 50 stay unserved.
    # closes: m1 = 100 - 60 = 40, m2 = 40 + 100 - 90 = 50, m3 = 50 + 100 - 200 = -50 -> backlog 50
    inputs = family_inputs([[60, 90, 200]], [[100, 100, 100]])
    trace = trace_aggregate(inputs, PlanParams(prebuild_months=2))
    agg = trace.result
    assert agg.supply.tolist() == [[100, 100, 100]]
    assert agg.prebuild.tolist() == [[40, 10, 0]]
    assert agg.inventory_close.tolist() == [[40, 50, 0]]
    assert agg.backlog.tolist() == [[0, 0, 50]]
    assert agg.unserved_end.tolist() == [50]
    assert trace.need.tolist() == [[60, 90, 200]]
    assert trace.pulled.tolist() == [[0, 0, 50]]


def test_without_prebuild_months_the_excess_is_backlog():
    inputs = family_inputs([[60, 90, 200]], [[100, 100, 100]])
    agg = plan_aggregate(inputs, PlanParams(prebuild_months=0))
    assert agg.prebuild.tolist() == [[0, 0, 0]]
    assert agg.unserved_end.tolist() == [100]


def test_routing_scales_by_the_tightest_workcenter():
    # A loads W0 1:1; B loads W0 1:1 and W1 2:1. need 40/40 -> W0 80 <= 100, W1 80 > 60:
    # factor min(100/80, 60/80) = 0.75 -> 30/30, loads W0 60 and W1 60; pooled total 160, used 120.
    inputs = family_inputs([[40], [40]], [[100], [60]], routing=[[1, 0], [1, 2]])
    agg = plan_aggregate(inputs, PlanParams())
    assert agg.supply.tolist() == [[30], [30]]
    assert agg.backlog.tolist() == [[10], [10]]
    assert agg.capacity_total.tolist() == [160]
    assert agg.capacity_used.tolist() == [120]


def test_a_rounded_up_unit_that_overloads_a_workcenter_is_taken_back():
    # A loads 1, B loads 5 per unit on one workcenter of 10.5; need A 9, B 1 -> load 14, factor 0.75:
    # quotas 6.75 / 0.75, total floor(7.5) = 7, largest remainder gives 6 / 1 -> load 6 + 5 = 11 > 10.5.
    # B's rounded-up unit is taken back (load 6) and the freed unit refilled to A (load 7).
    inputs = family_inputs([[9], [1]], [[10.5]], routing=[[1], [5]])
    trace = trace_aggregate(inputs, PlanParams())
    assert trace.result.supply.tolist() == [[7], [0]]
    assert trace.load.tolist() == [[7]]


def test_dec1_mode_keeps_tenths():
    # need 10 / 5 over capacity 10: factor 2/3 -> 6.67 / 3.33 tenths-grid -> 6.7 / 3.3
    inputs = family_inputs([[10], [5]], [[10]])
    agg = plan_aggregate(inputs, PlanParams(round_mode="dec1"))
    assert agg.supply.dtype == np.float64
    assert agg.supply.tolist() == [[6.7], [3.3]]
    assert agg.backlog.tolist() == [[3.3], [1.7]]


def test_rebalance_recomputes_inventory_and_backlog_from_new_rows():
    inputs = family_inputs([[10, 10]], [[100, 100]], on_hand=[5])
    agg = plan_aggregate(inputs, PlanParams())
    # new demand 20/10 with supply 5/10: positions 5 + 5 - 20 = -10, then -10 + 10 - 10 = -10
    new = rebalance_aggregate(inputs, agg, np.array([[20, 10]]), np.array([[5, 10]]), PlanParams())
    assert new.backlog.tolist() == [[10, 10]]
    assert new.inventory_close.tolist() == [[0, 0]]
    assert new.capacity_used.tolist() == [5, 10]
    assert new.unserved_end.tolist() == [10]


# --------------------------------------------------------------------------------------------------
# Properties


@st.composite
def aggregate_cases(draw):
    n_fam = draw(st.integers(1, 3))
    n_per = draw(st.integers(1, 4))
    n_wc = draw(st.integers(1, 2))
    demand = draw(
        st.lists(
            st.lists(st.integers(0, 200), min_size=n_per, max_size=n_per), min_size=n_fam, max_size=n_fam
        )
    )
    capacity = draw(
        st.lists(st.lists(st.integers(0, 300), min_size=n_per, max_size=n_per), min_size=n_wc, max_size=n_wc)
    )
    routing = None
    if draw(st.booleans()):
        routing = draw(
            st.lists(
                st.lists(st.sampled_from([0, 0.5, 1, 2, 3]), min_size=n_wc, max_size=n_wc),
                min_size=n_fam,
                max_size=n_fam,
            )
        )
    on_hand = draw(st.lists(st.integers(0, 100), min_size=n_fam, max_size=n_fam))
    safety = draw(st.lists(st.integers(0, 30), min_size=n_fam, max_size=n_fam))
    params = PlanParams(
        round_mode=draw(st.sampled_from(["int", "dec1", "dec2", "none"])),
        prebuild_months=draw(st.integers(0, 2)),
    )
    inputs = family_inputs(demand, capacity, on_hand=on_hand, safety_stock=safety, routing=routing)
    return inputs, params


def _load_capacity(inputs: PlanInputs) -> np.ndarray:
    return inputs.capacity.sum(axis=0, keepdims=True) if inputs.routing is None else inputs.capacity


@settings(max_examples=80, deadline=None)
@given(case=aggregate_cases())
def test_aggregate_invariants(case):
    inputs, params = case
    trace = trace_aggregate(inputs, params)
    agg = trace.result
    tol = 1e-6
    backlog_in = np.concatenate([np.zeros((agg.backlog.shape[0], 1)), agg.backlog[:, :-1]], axis=1)
    # row identity
    lhs = agg.inventory_close - agg.backlog
    rhs = agg.inventory_open - backlog_in + agg.supply - agg.demand
    assert np.allclose(lhs, rhs, atol=tol)
    # a month never builds more than its need (own production plus what was prebuilt for it)
    assert np.all(agg.supply - agg.prebuild + trace.pulled <= trace.need + tol)
    # load within capacity on every workcenter and month
    cap = _load_capacity(inputs)
    assert np.all(trace.load <= cap + 1e-6 * np.maximum(1, cap))
    assert np.all(agg.capacity_used <= agg.capacity_total + 1e-6)
    # nothing goes negative
    for arr in (agg.supply, agg.backlog, agg.inventory_open, agg.inventory_close, agg.prebuild):
        assert np.all(arr >= -tol)
    # nothing dropped: what is not served by the horizon is unserved_end
    served = np.minimum(agg.demand + backlog_in, agg.inventory_open + agg.supply)
    assert np.isclose(agg.demand.sum(), served.sum() + agg.unserved_end.sum(), atol=1e-6)
    assert np.allclose(agg.unserved_end, agg.backlog[:, -1])
    if params.round_mode == "int":
        for arr in (
            agg.demand,
            agg.supply,
            agg.backlog,
            agg.inventory_open,
            agg.inventory_close,
            agg.prebuild,
        ):
            assert arr.dtype == np.int64
        assert np.all(agg.capacity_used == np.round(agg.capacity_used)) or inputs.routing is not None
    elif params.decimals is not None:
        scale = 10**params.decimals
        assert np.allclose(agg.supply * scale, np.round(agg.supply * scale), atol=1e-6)
