"""Level reconciliation: the feasible detail rolled up to (family, period) against the aggregate."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.planning.documents import RECON_ROW
from app.planning.levels import compare_csv, compare_rows, detail_rollup, reconcile_levels
from app.planning.model import (
    AggregateResult,
    AllocationResult,
    Calendar,
    CapacityResult,
    PlanInputs,
    PlanParams,
)
from tests.unit.builders import aggregate_result, capacity_result, plan_inputs, three_week_calendar


def make_inputs(
    calendar: Calendar, families: list[str], sku_family: list[int], n_components: int = 0
) -> PlanInputs:
    """SKUs ``SKU0, SKU1, ...`` in the given families, then components ``C0, C1, ...``; int quantities."""
    return plan_inputs(
        calendar,
        families=families,
        skus=[f"SKU{i}" for i in range(len(sku_family))],
        sku_family=sku_family,
        components=[f"C{i}" for i in range(n_components)],
        workcenters=["WC"],
        dtype=np.int64,
    )


def example() -> tuple[PlanInputs, AggregateResult, AllocationResult, CapacityResult]:
    """F1 = {SKU0, SKU1}, F2 = {SKU2}, one component C0; buckets Jan-W04, Jan-W05, Feb-W05, Feb-W06.

    Detail demand F1: Jan = SKU0 (10 + 6) + SKU1 (5 + 0) = 21, Feb = SKU0 (1 + 7) + SKU1 (0 + 5) = 13;
    F2: Jan = 3 + 3 = 6, Feb = 0 + 4 = 4. Backlog: SKU0 has 2 in Feb-W06, so F1 Feb = 2.
    Adjusted receipts per week F1 = SKU0 + SKU1 = [20, 15, 10], F2 = [5, 0, 3]; the component's 100s
    are not finished goods. W05 splits 6:1: 15 * 6/7 = 12.86 and 15 * 1/7 = 2.14 -> 12 + 2 = 14, the
    spare unit goes to the larger remainder (January) -> 13 / 2. Detail supply F1: Jan 20 + 13 = 33,
    Feb 2 + 10 = 12; F2: Jan 5 + 0 = 5, Feb 0 + 3 = 3.
    The aggregate says F1 Feb supply 10: delta 12 - 10 = 2, rel 2 / max(10, 12, 1) = 1/6.
    """
    inputs = make_inputs(three_week_calendar(), ["F1", "F2"], [0, 0, 1], n_components=1)
    alloc = AllocationResult(
        demand=np.array([[10, 6, 1, 7], [5, 0, 0, 5], [3, 3, 0, 4]]),
        supply=np.zeros((3, 4), dtype=np.int64),
        backlog=np.array([[0, 0, 0, 2], [0, 0, 0, 0], [0, 0, 0, 0]]),
    )
    cap = capacity_result(np.array([[20, 15, 0], [0, 0, 10], [5, 0, 3], [100, 100, 100]]))
    agg = aggregate_result(
        demand=[[21, 13], [6, 4]], supply=[[33, 10], [5, 3]], backlog=[[0, 2], [0, 0]], dtype=np.int64
    )
    return inputs, agg, alloc, cap


def test_detail_rolls_up_to_family_and_period_with_split_week_receipts_by_weight():
    inputs, _, alloc, cap = example()
    det = detail_rollup(inputs, alloc, cap, PlanParams())
    assert det["demand"].tolist() == [[21, 13], [6, 4]]
    assert det["supply"].tolist() == [[33, 12], [5, 3]]
    assert det["backlog"].tolist() == [[0, 2], [0, 0]]


def test_reconciliation_log_flags_the_supply_difference():
    inputs, agg, alloc, cap = example()
    doc = reconcile_levels(inputs, agg, alloc, cap, PlanParams())
    assert doc["tolerance"] == {"abs": 1e-6, "rel": 1e-6}
    assert [(r["family"], r["period"], r["ok"]) for r in doc["rows"]] == [
        ("F1", "2026-01", True),
        ("F1", "2026-02", False),
        ("F2", "2026-01", True),
        ("F2", "2026-02", True),
    ]
    feb = doc["rows"][1]
    assert set(feb) == set(RECON_ROW) | {"severity", "note"}
    assert (feb["supply_agg"], feb["supply_det"], feb["supply_delta"]) == (10, 12, 2)
    assert feb["supply_rel"] == 2 / 12
    assert feb["supply_ok"] is False and feb["demand_ok"] is True and feb["backlog_ok"] is True
    # Integral values follow the number rule: 0, not 0.0.
    assert type(feb["demand_rel"]) is int and type(feb["supply_delta"]) is int


def test_a_supply_difference_within_one_lot_per_sku_is_info_not_a_violation():
    # F1 has two SKUs of lot 1: allowance 2, and its February supply differs by 2 -> info.
    inputs, agg, alloc, cap = example()
    doc = reconcile_levels(inputs, agg, alloc, cap, PlanParams())
    assert doc["summary"] == {"rows": 4, "violations": 0, "info": 1, "max_abs_delta": 2}
    assert [r["severity"] for r in doc["rows"]] == ["ok", "info", "ok", "ok"]
    assert doc["rows"][1]["note"] == "supply +2: within one lot per SKU (2), lot sizing and capacity moves"
    assert doc["rows"][0]["note"] is None


def test_a_supply_difference_beyond_one_lot_per_sku_is_a_violation():
    # F1 February supply 9 in the aggregate: delta 12 - 9 = 3 > 2 (two SKUs of lot 1).
    inputs, agg, alloc, cap = example()
    agg.supply[0, 1] = 9
    doc = reconcile_levels(inputs, agg, alloc, cap, PlanParams())
    assert doc["summary"] == {"rows": 4, "violations": 1, "info": 0, "max_abs_delta": 3}
    assert doc["rows"][1]["severity"] == "violation"
    assert doc["rows"][1]["note"] == "supply +3: beyond tolerance and one lot per SKU (2)"
    # a lot of 5 on SKU0 widens F1's allowance to 5 + 1 = 6: info again
    inputs.item_lot[0] = 5
    assert reconcile_levels(inputs, agg, alloc, cap, PlanParams())["rows"][1]["severity"] == "info"


def test_a_demand_difference_is_always_a_violation():
    inputs, agg, alloc, cap = example()
    agg.demand[1, 0] = 5  # F2 January: detail 6
    doc = reconcile_levels(inputs, agg, alloc, cap, PlanParams())
    assert doc["rows"][2]["severity"] == "violation"
    assert doc["rows"][2]["note"] == "demand +1: beyond tolerance"


def test_absolute_tolerance_accepts_a_small_delta():
    inputs, agg, alloc, cap = example()
    doc = reconcile_levels(inputs, agg, alloc, cap, PlanParams(tol_abs=2))
    assert doc["summary"]["violations"] == 0 and doc["summary"]["info"] == 0
    assert doc["tolerance"] == {"abs": 2, "rel": 1e-6}


def test_relative_tolerance_accepts_a_proportional_delta():
    inputs, agg, alloc, cap = example()
    # rel = 1/6 = 0.1667 <= 0.2
    doc = reconcile_levels(inputs, agg, alloc, cap, PlanParams(tol_rel=0.2))
    assert doc["summary"]["violations"] == 0


def test_compare_csv_lists_every_measure():
    inputs, agg, alloc, cap = example()
    doc = reconcile_levels(inputs, agg, alloc, cap, PlanParams())
    assert compare_csv(doc) == (
        "family,period,measure,agg,det,delta,rel,ok\n"
        "F1,2026-01,demand,21,21,0,0,true\n"
        "F1,2026-01,supply,33,33,0,0,true\n"
        "F1,2026-01,backlog,0,0,0,0,true\n"
        "F1,2026-02,demand,13,13,0,0,true\n"
        "F1,2026-02,supply,10,12,2,0.16666666666666666,false\n"
        "F1,2026-02,backlog,2,2,0,0,true\n"
        "F2,2026-01,demand,6,6,0,0,true\n"
        "F2,2026-01,supply,5,5,0,0,true\n"
        "F2,2026-01,backlog,0,0,0,0,true\n"
        "F2,2026-02,demand,4,4,0,0,true\n"
        "F2,2026-02,supply,3,3,0,0,true\n"
        "F2,2026-02,backlog,0,0,0,0,true\n"
    )


def test_compare_csv_violations_only_keeps_the_violations_not_the_info_rows():
    inputs, agg, alloc, cap = example()
    doc = reconcile_levels(inputs, agg, alloc, cap, PlanParams())
    assert compare_csv(doc, violations_only=True) == "family,period,measure,agg,det,delta,rel,ok\n"
    agg.supply[0, 1] = 9
    doc = reconcile_levels(inputs, agg, alloc, cap, PlanParams())
    assert compare_csv(doc, violations_only=True) == (
        "family,period,measure,agg,det,delta,rel,ok\nF1,2026-02,supply,9,12,3,0.25,false\n"
    )
    assert compare_rows(doc, violations_only=True) == [
        {
            "family": "F1",
            "period": "2026-02",
            "measure": "supply",
            "agg": 9,
            "det": 12,
            "delta": 3,
            "rel": 0.25,
            "ok": False,
            "severity": "violation",
        }
    ]


def test_float_mode_splits_a_week_proportionally():
    inputs, agg, alloc, cap = example()
    cap.planned_order_receipt_adj = cap.planned_order_receipt_adj.astype(np.float64)
    det = detail_rollup(inputs, alloc, cap, PlanParams(round_mode="none"))
    # F1 W05 = 15 -> January 15 * 6/7, February 15 * 1/7.
    np.testing.assert_allclose(det["supply"][0], [20 + 15 * 6 / 7, 15 / 7 + 10])


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_rollup_conserves_every_unit_and_matches_an_aggregate_built_from_it(data):
    n_sku = data.draw(st.integers(1, 5))
    n_fam = data.draw(st.integers(1, n_sku))
    sku_family = sorted(data.draw(st.lists(st.integers(0, n_fam - 1), min_size=n_sku, max_size=n_sku)))
    cal = three_week_calendar()
    inputs = make_inputs(cal, [f"F{i}" for i in range(n_fam)], sku_family)

    def cells(rows: int, cols: int) -> np.ndarray:
        row = st.lists(st.integers(0, 1000), min_size=cols, max_size=cols)
        return np.array(data.draw(st.lists(row, min_size=rows, max_size=rows)), dtype=np.int64)

    alloc = AllocationResult(cells(n_sku, 4), cells(n_sku, 4), cells(n_sku, 4))
    cap = capacity_result(cells(n_sku, 3))
    det = detail_rollup(inputs, alloc, cap, PlanParams())
    assert det["demand"].sum() == alloc.demand.sum()
    assert det["backlog"].sum() == alloc.backlog.sum()
    assert det["supply"].sum() == cap.planned_order_receipt_adj.sum()
    assert det["supply"].dtype.kind == "i"
    agg = aggregate_result(
        det["demand"].tolist(), det["supply"].tolist(), det["backlog"].tolist(), dtype=np.int64
    )
    doc = reconcile_levels(inputs, agg, alloc, cap, PlanParams())
    assert doc["summary"] == {"rows": n_fam * 2, "violations": 0, "info": 0, "max_abs_delta": 0}
    assert len(compare_rows(doc)) == 3 * n_fam * 2
