"""Weekly summary, FG service, KPIs, exceptions and report.csv over hand-built stage results."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.planning.calendar import derive_calendar
from app.planning.documents import (
    EXCEPTION_ROW,
    KPI_ROW,
    REPORT_ROW,
    WEEKLY_SUMMARY_ROW,
    report_rows_from_csv,
)
from app.planning.levels import reconcile_levels
from app.planning.model import AllocationResult, Calendar, CapacityResult, MrpResult, PlanInputs, PlanParams
from app.planning.report import (
    build_exceptions,
    compute_kpis,
    fg_service,
    find_runs,
    report_csv,
    report_rows,
    run_peaks,
    weekly_summary_rows,
)
from tests.unit.builders import aggregate_result, capacity_result, plan_inputs, three_week_calendar


def i64(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def make_inputs(
    calendar: Calendar,
    skus: list[str],
    components: list[str] = (),
    on_hand=None,
    safety_stock=None,
    scheduled=None,
) -> PlanInputs:
    """One family F1 holding every SKU; components follow the SKUs in ``items``."""
    return plan_inputs(
        calendar,
        families=["F1"],
        skus=skus,
        sku_family=i64(np.zeros(len(skus))),
        sku_share=np.full(len(skus), 1 / len(skus)),
        components=components,
        workcenters=["WC"],
        dtype=np.int64,
        on_hand=on_hand,
        safety_stock=safety_stock,
        scheduled_receipts=scheduled,
    )


def make_mrp(n_items: int, n_weeks: int, past_due_qty) -> MrpResult:
    z = i64(np.zeros((n_items, n_weeks)))
    qty = i64(past_due_qty)
    return MrpResult(z, z, z, z, z, z, z, z, i64(np.zeros(n_items)), i64(np.zeros(n_items)), qty > 0, qty)


# --------------------------------------------------------------------------------------------------
# The 2-item x 3-week plan
#
# Weekly demand (buckets Jan-W04 | Jan-W05 + Feb-W05 | Feb-W06): A1 = [10, 6+2, 10] = [10, 8, 10],
# A2 = [4, 3+0, 4] = [4, 3, 4]. Opening on-hand A1 5, A2 0; A2 has a scheduled receipt of 2 in W04.
# Adjusted planned receipts A1 = [0, 10, 10], A2 = [0, 8, 3]; projected on-hand (opening + all
# receipts - demand, cumulatively): A1 = [-5, -3, -3], A2 = [-2, 3, 2].
#
# A1: W04 need 10, available 5       -> served 5,  backlog 5
#     W05 need 8+5=13, available 0+10 -> served 10, backlog 3
#     W06 need 10+3=13, available 0+10 -> served 10, backlog 3
# A2: W04 need 4, available 0+2       -> served 2, backlog 2
#     W05 need 3+2=5, available 0+8   -> served 5, backlog 0
#     W06 need 4, available 3+3       -> served 4, backlog 0
#
# total: demand 28 + 11 = 39, served 25 + 11 = 36 -> fill rate 36/39 = 0.923077; backlog at the end 3;
# supply 20 + 11 = 31; inventory per week max(0, on-hand) summed [0, 3, 2] -> avg 5/3 = 1.666667;
# turns 39 / (5/3) * 52 / 3 = 405.6; capacity [20, 20, 10], load [0, 18, 13] -> avg 31/50 = 0.62,
# peak 13/10 = 1.3; orders 1 per receipt -> 4; A2 past due -> 1; 5 exceptions passed in.
# January (Mondays 19 and 26 Jan: W04, W05): demand 14 + 11 = 25, served 5+10+2+5 = 22 -> 0.88;
# backlog after W05 = 3; supply 10 + 8 = 18; inventory [0, 3] -> 1.5; turns 25 / 1.5 * 52 / 2 =
# 433.333333; utilization 18/40 = 0.45, peak 0.9; orders 2.
# February (W06): demand 14, served 14 -> 1; backlog 3; supply 13; inventory 2; turns 14 / 2 * 52 = 364;
# utilization 13/10 = 1.3, peak 1.3; orders 2.


def plan() -> tuple[PlanInputs, AllocationResult, CapacityResult]:
    inputs = make_inputs(
        three_week_calendar(), ["A1", "A2"], on_hand=[5, 0], scheduled=[[0, 0, 0], [2, 0, 0]]
    )
    alloc = AllocationResult(
        demand=i64([[10, 6, 2, 10], [4, 3, 0, 4]]),
        supply=i64(np.zeros((2, 4))),
        backlog=i64(np.zeros((2, 4))),
    )
    cap = capacity_result(
        receipts=i64([[0, 10, 10], [0, 8, 3]]),
        on_hand_end=i64([[-5, -3, -3], [-2, 3, 2]]),
        capacity=i64([20, 20, 10]),
        adjusted_load=i64([0, 18, 13]),
        original_load=i64([5, 20, 6]),
        spill_in=i64([0, 0, 7]),
        spill_out=i64([5, 2, 0]),
        orders=[[0, 1, 1], [0, 1, 1]],
        past_due=[False, True],
    )
    return inputs, alloc, cap


def kpi_table(rows: list[dict]) -> dict[tuple[str, str], int | float]:
    return {(r["bucket_key"], r["metric"]): r["value"] for r in rows}


def total_kpis(rows: list[dict]) -> dict[str, int | float]:
    return {r["metric"]: r["value"] for r in rows if r["bucket_type"] == "total"}


def test_fg_service_serves_backlog_first_from_physical_stock():
    inputs, alloc, cap = plan()
    svc = fg_service(inputs, alloc, cap)
    assert svc.demand.tolist() == [[10, 8, 10], [4, 3, 4]]
    assert svc.served.tolist() == [[5, 10, 10], [2, 5, 4]]
    assert svc.backlog_in.tolist() == [[0, 5, 3], [0, 2, 0]]
    assert svc.backlog_end.tolist() == [[5, 3, 3], [2, 0, 0]]
    assert svc.on_hand_start.tolist() == [[5, 0, 0], [0, 0, 3]]


def test_on_time_fill_rate_counts_only_demand_served_in_the_week_it_is_demanded():
    # a week serves older backlog first: A1 serves 5, 10 (5 of them backlog), 10 (3 backlog) -> on time
    # 5, 5, 7 of 10, 8, 10; A2 serves 2, 5 (2 backlog), 4 -> on time 2, 3, 4 of 4, 3, 4; 26 of 39
    inputs, alloc, cap = plan()
    svc = fg_service(inputs, alloc, cap)
    assert svc.served_on_time.tolist() == [[5, 5, 7], [2, 3, 4]]
    total = total_kpis(compute_kpis(inputs, alloc, None, cap, [], PlanParams()))
    assert (total["on_time_fill_rate"], total["fill_rate"]) == (0.666667, 0.923077)


def test_total_kpis_follow_the_spec_formulas():
    inputs, alloc, cap = plan()
    rows = compute_kpis(inputs, alloc, None, cap, [{}] * 5, PlanParams())
    assert all(set(r) == set(KPI_ROW) for r in rows)
    total = {r["metric"]: (r["value"], r["unit"]) for r in rows if r["bucket_type"] == "total"}
    assert total == {
        "fill_rate": (0.923077, "ratio"),
        "on_time_fill_rate": (0.666667, "ratio"),  # 26 of 39 served in the week demanded
        "backlog_total": (3, "units"),
        "demand_total": (39, "units"),
        "supply_total": (31, "units"),
        "inventory_avg": (1.666667, "units"),
        "inventory_turns": (405.6, "turns/yr"),
        "capacity_utilization_avg": (0.62, "ratio"),
        "capacity_utilization_peak": (1.3, "ratio"),
        "planned_orders": (4, "count"),
        "past_due_releases": (1, "count"),
        "exceptions": (5, "count"),
    }
    assert type(total["demand_total"][0]) is int


def test_month_kpis_cover_the_weeks_whose_monday_is_in_the_month():
    inputs, alloc, cap = plan()
    assert inputs.calendar.week_period_index().tolist() == [0, 0, 1]
    kpis = kpi_table(compute_kpis(inputs, alloc, None, cap, [], PlanParams()))
    jan = {m: v for (k, m), v in kpis.items() if k == "2026-01"}
    feb = {m: v for (k, m), v in kpis.items() if k == "2026-02"}
    assert jan == {
        "fill_rate": 0.88,
        "on_time_fill_rate": 0.6,  # 15 of 25
        "backlog_total": 3,
        "demand_total": 25,
        "supply_total": 18,
        "inventory_avg": 1.5,
        "inventory_turns": 433.333333,
        "capacity_utilization_avg": 0.45,
        "capacity_utilization_peak": 0.9,
        "planned_orders": 2,
    }
    assert feb == {
        "fill_rate": 1,
        "on_time_fill_rate": 0.785714,  # 11 of 14: the eventual rate also serves January's backlog
        "backlog_total": 3,
        "demand_total": 14,
        "supply_total": 13,
        "inventory_avg": 2,
        "inventory_turns": 364,
        "capacity_utilization_avg": 1.3,
        "capacity_utilization_peak": 1.3,
        "planned_orders": 2,
    }


def test_the_horizons_first_week_belongs_to_the_first_month_even_when_its_monday_is_earlier():
    # 2026-01-01 is a Thursday: 2026-W01 starts on Monday 2025-12-29.
    inputs = make_inputs(derive_calendar(["2026-01", "2026-02"]), ["A1"])
    idx = inputs.calendar.week_period_index().tolist()
    assert inputs.calendar.weeks[0] == "2026-W01" and idx[0] == 0
    # 2026-W05 (Monday 26 Jan) is January; 2026-W06 (Monday 2 Feb) is February.
    assert idx[inputs.calendar.weeks.index("2026-W05")] == 0
    assert idx[inputs.calendar.weeks.index("2026-W06")] == 1


def test_kpis_without_demand_or_stock_are_neutral():
    inputs = make_inputs(three_week_calendar(), ["A1"])
    alloc = AllocationResult(*(i64(np.zeros((1, 4))) for _ in range(3)))
    cap = capacity_result(i64(np.zeros((1, 3))), i64(np.zeros((1, 3))), i64(np.zeros(3)), i64(np.zeros(3)))
    total = total_kpis(compute_kpis(inputs, alloc, None, cap, [], PlanParams()))
    assert total["fill_rate"] == 1
    assert total["inventory_turns"] == 0
    assert total["capacity_utilization_avg"] == 0 and total["capacity_utilization_peak"] == 0


def test_decimal_mode_totals_carry_no_float_noise():
    inputs = make_inputs(three_week_calendar(), ["A1", "A2"])
    demand = np.array([[0.1, 0.0, 0.0, 0.0], [0.2, 0.0, 0.0, 0.0]])
    alloc = AllocationResult(demand, np.zeros_like(demand), np.zeros_like(demand))
    receipts = np.array([[0.1, 0.0, 0.0], [0.2, 0.0, 0.0]])
    cap = capacity_result(receipts, np.zeros((2, 3)), np.ones(3), receipts.sum(axis=0))
    params = PlanParams(round_mode="dec2")
    total = total_kpis(compute_kpis(inputs, alloc, None, cap, [], params))
    # 0.1 + 0.2 is 0.30000000000000004 in binary floating point; the plan keeps 2 decimals.
    assert (total["demand_total"], total["supply_total"], total["fill_rate"]) == (0.3, 0.3, 1)
    service = report_rows(inputs, alloc, cap, params)[1]
    assert (service["demand"], service["supply_plan"]) == (0.3, 0.3)


def test_weekly_summary_rounds_utilization_and_reports_zero_without_capacity():
    inputs, _, cap = plan()
    cap.capacity = i64([30, 20, 0])
    rows = weekly_summary_rows(inputs, cap)
    assert all(set(r) == set(WEEKLY_SUMMARY_ROW) for r in rows)
    # W04: 0/30 = 0; W05: 18/20 = 0.9; W06: no capacity -> 0.
    assert [(r["week"], r["utilization"]) for r in rows] == [
        ("2026-W04", 0),
        ("2026-W05", 0.9),
        ("2026-W06", 0),
    ]
    cap.capacity, cap.adjusted_load = i64([3, 3, 3]), i64([1, 2, 3])
    # 1/3 = 0.3333, 2/3 = 0.6667
    assert [r["utilization"] for r in weekly_summary_rows(inputs, cap)] == [0.3333, 0.6667, 1]


# --------------------------------------------------------------------------------------------------
# report.csv


def test_report_has_a_capacity_and_a_service_row_per_week():
    inputs, alloc, cap = plan()
    rows = report_rows(inputs, alloc, cap, PlanParams())
    assert all(set(r) == set(REPORT_ROW) for r in rows)
    blank_service = {"demand": None, "supply_plan": None, "fill_rate": None}
    blank_capacity = dict.fromkeys(
        ("capacity", "original_load", "adjusted_load", "utilization", "spill_in", "spill_out")
    )
    # Service fill rate per week: W04 (5+2)/14 = 0.5; W05 (10+5)/11 capped at 1; W06 (10+4)/14 = 1.
    assert rows[:2] == [
        {"type": "capacity", "week": "2026-W04", "capacity": 20, "original_load": 5, "adjusted_load": 0,
         "utilization": 0, "spill_in": 0, "spill_out": 5, **blank_service},
        {"type": "service", "week": "2026-W04", **blank_capacity,
         "demand": 14, "supply_plan": 0, "fill_rate": 0.5},
    ]  # fmt: skip
    assert [(r["type"], r["week"]) for r in rows[2:]] == [
        ("capacity", "2026-W05"),
        ("service", "2026-W05"),
        ("capacity", "2026-W06"),
        ("service", "2026-W06"),
    ]
    assert [rows[3][k] for k in ("demand", "supply_plan", "fill_rate")] == [11, 18, 1]
    assert [rows[4][k] for k in ("utilization", "spill_in")] == [1.3, 7]


def test_report_csv_text_and_round_trip():
    inputs, alloc, cap = plan()
    rows = report_rows(inputs, alloc, cap, PlanParams())
    text = report_csv(rows)
    assert text.splitlines()[:3] == [
        "type,week,capacity,original_load,adjusted_load,utilization,spill_in,spill_out,"
        "demand,supply_plan,fill_rate",
        "capacity,2026-W04,20,5,0,0,0,5,,,",
        "service,2026-W04,,,,,,,14,0,0.5",
    ]
    assert report_rows_from_csv(text) == rows


@settings(max_examples=50, deadline=None)
@given(
    cap_values=st.lists(st.floats(0, 1e6, allow_nan=False), min_size=3, max_size=3),
    load_values=st.lists(st.floats(0, 1e6, allow_nan=False), min_size=3, max_size=3),
)
def test_report_csv_round_trips_fractional_numbers(cap_values, load_values):
    inputs, alloc, cap = plan()
    cap.capacity = np.round(np.asarray(cap_values), 2)
    cap.adjusted_load = np.round(np.asarray(load_values), 2)
    cap.original_load = np.asarray(load_values) / 3
    rows = report_rows(inputs, alloc, cap, PlanParams(round_mode="dec2"))
    assert report_rows_from_csv(report_csv(rows)) == rows


# --------------------------------------------------------------------------------------------------
# Exceptions


def test_runs_are_found_per_row_even_when_they_touch_the_row_ends():
    mask = np.array([[True, True, False, True], [True, False, False, True], [False] * 4])
    rows, starts, ends = find_runs(mask)
    assert list(zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True)) == [
        (0, 0, 1),
        (0, 3, 3),
        (1, 0, 0),
        (1, 3, 3),
    ]
    values = np.array([[4, 9, 100, 2], [7, 100, 100, 5], [100] * 4])
    assert run_peaks(values, mask, (rows, starts, ends)).tolist() == [9, 2, 7, 5]


def exception_case():
    """Each exception type fires exactly once.

    A1 on-hand [5, -2, -6]: short in W05..W06, deepest 6 (safety stock 3 is met in W04).
    A2 on-hand [1, 4, 4] with safety stock 2: below safety stock in W04 only, by 2 - 1 = 1.
    C1 on-hand [0, 0, 0], no safety stock: nothing; its release fell 7 units before the horizon.
    Load [0, 18, 13] on capacity [20, 20, 10]: W06 overloaded by 3.
    Family F1 keeps 4 units unserved after 2026-02; the reconciliation row F1 2026-02 fails on supply.
    """
    inputs = make_inputs(three_week_calendar(), ["A1", "A2"], ["C1"], safety_stock=[3, 2, 0])
    cap = capacity_result(
        receipts=i64(np.zeros((3, 3))),
        on_hand_end=i64([[5, -2, -6], [1, 4, 4], [0, 0, 0]]),
        capacity=i64([20, 20, 10]),
        adjusted_load=i64([0, 18, 13]),
        past_due=[False, False, True],
    )
    agg = aggregate_result(i64(np.zeros((1, 2))), unserved_end=[4])
    alloc = AllocationResult(*(i64(np.zeros((2, 4))) for _ in range(3)))
    mrp = make_mrp(3, 3, past_due_qty=[0, 0, 7])
    recon = reconcile_levels(inputs, agg, alloc, cap, PlanParams())
    bad = recon["rows"][1]
    bad.update(supply_agg=10, supply_det=12, supply_delta=2, supply_rel=2 / 12, supply_ok=False, ok=False,
               severity="violation")  # fmt: skip
    return inputs, agg, alloc, mrp, cap, recon


def exception(kind, item, family, start, end, quantity, message, impact=None) -> dict:
    return {"type": kind, "item": item, "family": family, "start": start, "end": end, "quantity": quantity,
            "message": message, "impact": impact}  # fmt: skip


def test_each_exception_type_is_reported_once_in_type_order():
    inputs, agg, alloc, mrp, cap, recon = exception_case()
    rows = build_exceptions(inputs, agg, alloc, mrp, cap, recon, PlanParams())
    assert all(set(r) == set(EXCEPTION_ROW) | {"impact"} for r in rows)
    assert rows == [
        exception("shortage", "A1", None, "2026-W05", "2026-W06", 6,
                  "A1 is short by 6 units in 2026-W05..2026-W06"),
        exception("below_safety_stock", "A2", None, "2026-W04", "2026-W04", 1,
                  "A2 is below safety stock by 1 units in 2026-W04"),
        exception("capacity_overload", None, None, "2026-W06", "2026-W06", 3,
                  "Load exceeds capacity by up to 3 units in 2026-W06"),
        exception("past_due_release", "C1", None, "2026-W04", "2026-W04", 7,
                  "C1 needs a release of 7 units before 2026-W04 (past due)"),
        exception("unplanned_after_horizon", None, "F1", "2026-02", "2026-02", 4,
                  "F1 has 4 units of demand unserved after 2026-02"),
        exception("reconciliation_violation", None, "F1", "2026-02", "2026-02", 2,
                  "F1 2026-02: supply differs by 2 (agg 10, det 12)"),
    ]  # fmt: skip


def test_exceptions_carry_quantity_times_unit_cost_and_are_listed_by_impact():
    # A1 costs 2.5, A2 no cost known, C1 40. F1's unit cost is its SKUs' cost weighted by planned
    # demand: A1 30, A2 10 units -> (30 * 2.5) / 30 = 2.5 (A2's unknown cost does not count).
    inputs, agg, alloc, mrp, cap, recon = exception_case()
    inputs.item_unit_cost[:] = [2.5, 0, 40]
    alloc.demand[:] = [[10, 10, 0, 10], [5, 0, 0, 5]]
    rows = build_exceptions(inputs, agg, alloc, mrp, cap, recon, PlanParams())
    assert [(r["type"], r["item"] or r["family"], r["impact"]) for r in rows] == [
        ("past_due_release", "C1", 280),  # 7 x 40
        ("shortage", "A1", 15),  # 6 x 2.5
        ("unplanned_after_horizon", "F1", 10),  # 4 x 2.5
        ("reconciliation_violation", "F1", 5),  # 2 x 2.5
        ("below_safety_stock", "A2", None),  # no cost known
        ("capacity_overload", None, None),  # load, not units of one item
    ]


def test_a_component_shortage_is_pegged_to_the_finished_goods_it_endangers():
    # C1 is short in W05..W06. A1 (lead time 1 week) releases 8 in W05 and A2 (lead time 0) releases 3
    # in W06, both needing C1: A1's order received in W06 and A2's in W06 are at risk.
    inputs, agg, alloc, mrp, cap, recon = exception_case()
    inputs.bom_parent, inputs.bom_child = i64([0, 1]), i64([2, 2])
    inputs.bom_qty, inputs.bom_scrap = np.ones(2), np.zeros(2)
    mrp.lt_weeks = i64([1, 0, 0])
    cap.on_hand_end_adj = i64([[5, 5, 5], [4, 4, 4], [0, -3, -1]])
    cap.planned_order_release_adj = i64([[0, 8, 0], [0, 0, 3], [0, 0, 0]])
    rows = build_exceptions(inputs, agg, alloc, mrp, cap, recon, PlanParams())
    short = next(r for r in rows if r["type"] == "shortage")
    assert short["item"] == "C1" and (short["start"], short["end"], short["quantity"]) == (
        "2026-W05",
        "2026-W06",
        3,
    )
    assert short["pegging"] == [
        {"item": "A1", "start": "2026-W06", "end": "2026-W06", "quantity": 8},
        {"item": "A2", "start": "2026-W06", "end": "2026-W06", "quantity": 3},
    ]
    assert short["message"].endswith("it endangers 2 finished good(s): A1 (2026-W06), A2 (2026-W06)")


def test_a_component_past_due_release_is_pegged_to_the_orders_its_late_receipts_feed():
    # C1 (lead time 2 weeks) receives 7 in W04, which needed a release before W04: the past-due
    # receipt weeks are W04..W05 where it receives anything (W04 only). A1 releases 5 in W04 needing
    # C1 (received W05 with A1's one-week lead time): A1 is endangered in W05 by 5.
    inputs, agg, alloc, mrp, cap, recon = exception_case()
    inputs.bom_parent, inputs.bom_child = i64([0]), i64([2])
    inputs.bom_qty, inputs.bom_scrap = np.ones(1), np.zeros(1)
    mrp.lt_weeks = i64([1, 0, 2])
    cap.planned_order_receipt_adj = i64([[0, 0, 0], [0, 0, 0], [7, 0, 0]])
    cap.planned_order_release_adj = i64([[5, 0, 0], [0, 0, 0], [7, 0, 0]])
    rows = build_exceptions(inputs, agg, alloc, mrp, cap, recon, PlanParams())
    late = next(r for r in rows if r["type"] == "past_due_release")
    assert late["pegging"] == [{"item": "A1", "start": "2026-W05", "end": "2026-W05", "quantity": 5}]
    assert "it endangers 1 finished good(s): A1 (2026-W05)" in late["message"]


def test_unplaced_quantity_is_reported_per_item_at_the_last_week():
    inputs, agg, alloc, mrp, cap, recon = exception_case()
    cap.unplaced = i64([0, 9, 0])
    rows = [
        r
        for r in build_exceptions(inputs, agg, alloc, mrp, cap, recon, PlanParams())
        if r["type"] == "unplanned_after_horizon"
    ]
    # Family rows (no item) sort before item rows.
    assert [(r["family"], r["item"], r["start"], r["quantity"]) for r in rows] == [
        ("F1", None, "2026-02", 4),
        (None, "A2", "2026-W06", 9),
    ]
    assert rows[1]["message"] == "A2 has 9 units that do not fit capacity by 2026-W06"


def test_past_due_quantity_falls_back_to_the_first_week_release_without_mrp():
    inputs, agg, alloc, _, cap, recon = exception_case()
    cap.planned_order_release_adj = i64([[0, 0, 0], [0, 0, 0], [11, 0, 0]])
    rows = build_exceptions(inputs, agg, alloc, None, cap, recon, PlanParams())
    assert [r["quantity"] for r in rows if r["type"] == "past_due_release"] == [11]


def test_two_shortage_runs_of_one_item_are_two_exceptions():
    inputs, agg, alloc, mrp, cap, recon = exception_case()
    cap.on_hand_end_adj = i64([[-1, 5, -4], [2, 2, 2], [0, 0, 0]])
    rows = build_exceptions(inputs, agg, alloc, mrp, cap, recon, PlanParams())
    assert [(r["start"], r["end"], r["quantity"]) for r in rows if r["type"] == "shortage"] == [
        ("2026-W04", "2026-W04", 1),
        ("2026-W06", "2026-W06", 4),
    ]


# --------------------------------------------------------------------------------------------------
# Properties


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_fill_rate_is_a_ratio_and_nothing_is_served_beyond_what_is_owed(data):
    n_sku = data.draw(st.integers(1, 4))
    cal = derive_calendar(["2026-03", "2026-04"][: data.draw(st.integers(1, 2))])
    n_b, n_w = cal.n_buckets, cal.n_weeks

    def ints(shape: tuple[int, ...], hi: int = 50) -> np.ndarray:
        size = int(np.prod(shape))
        return i64(data.draw(st.lists(st.integers(0, hi), min_size=size, max_size=size))).reshape(shape)

    demand, receipts, scheduled = ints((n_sku, n_b)), ints((n_sku, n_w)), ints((n_sku, n_w), 10)
    opening = ints((n_sku,), 100)
    inputs = make_inputs(cal, [f"S{i}" for i in range(n_sku)], on_hand=opening, scheduled=scheduled)
    weekly = np.zeros((n_sku, n_w), dtype=np.int64)
    np.add.at(weekly.T, cal.bucket_week_idx, demand.T)
    on_hand_end = opening[:, None] + np.cumsum(scheduled + receipts - weekly, axis=1)
    cap = capacity_result(receipts, on_hand_end, ints((n_w,), 200), receipts.sum(axis=0))
    alloc = AllocationResult(demand, np.zeros_like(demand), np.zeros_like(demand))

    svc = fg_service(inputs, alloc, cap)
    assert np.all(svc.served >= 0)
    assert np.all(svc.served <= svc.demand + svc.backlog_in)
    # Every unit of demand is either served or still owed at the end.
    assert svc.served.sum() + svc.backlog_end[:, -1].sum() == svc.demand.sum()
    # With a consistent projection, what is owed is exactly the negative projected on-hand.
    np.testing.assert_array_equal(svc.backlog_end, np.maximum(-on_hand_end, 0))
    assert np.all(svc.served_on_time <= np.minimum(svc.served, svc.demand))
    rows = compute_kpis(inputs, alloc, None, cap, [], PlanParams())
    for row in rows:
        if row["metric"] == "fill_rate":
            assert 0 <= row["value"] <= 1
    on_time = {(r["bucket_key"]): r["value"] for r in rows if r["metric"] == "on_time_fill_rate"}
    eventual = {(r["bucket_key"]): r["value"] for r in rows if r["metric"] == "fill_rate"}
    assert on_time.keys() == eventual.keys() and all(0 <= on_time[k] <= eventual[k] for k in on_time)
    assert all(
        0 <= r["fill_rate"] <= 1
        for r in report_rows(inputs, alloc, cap, PlanParams())
        if r["fill_rate"] is not None
    )
