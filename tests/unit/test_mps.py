"""The S&OP plan drives the master schedule (SPEC 3.2-3.3, docs/planning.md): the family supply goes to
the SKUs by their own net requirement, and that schedule, lot-sized, is the finished goods' receipts."""

from __future__ import annotations

import numpy as np

from app.planning.allocate import DetailLayout, SkuStock, split_supply_by_need
from app.planning.calendar import derive_calendar
from app.planning.model import PlanParams
from app.planning.mrp import master_schedule, run_mrp
from tests.unit.builders import family_inputs, plan_inputs

# February 2026 starts on a Sunday: buckets W05 (1 day), W06, W07, W08 (7 days), W09 (6 days) = 28.
FEB = ["2026-02"]


def layout_of(shares: list[float], periods: list[str]) -> DetailLayout:
    return DetailLayout.from_inputs(
        family_inputs(sku_family=[0] * len(shares), shares=shares, periods=periods)
    )


def monthly(layout: DetailLayout, per_sku_month: list[list[int]]) -> np.ndarray:
    """[S, B] detail holding each SKU's month total in the month's first bucket."""
    out = np.zeros((layout.n_skus, len(layout.bucket_period)), dtype=np.int64)
    for p in range(layout.n_periods):
        first = layout.period_buckets[p, 0]
        for s, row in enumerate(per_sku_month):
            out[s, first] = row[p]
    return out


def stock(on_hand: list[int], periods: int = 1, safety: list[int] | None = None) -> SkuStock:
    n = len(on_hand)
    return SkuStock(
        on_hand=np.asarray(on_hand, dtype=float),
        safety_stock=np.asarray(safety or [0] * n, dtype=float),
        scheduled=np.zeros((n, periods)),
    )


def sku_totals(detail: np.ndarray) -> list[int]:
    return detail.sum(axis=1).tolist()


def test_a_short_family_month_goes_to_the_sku_that_needs_it_not_by_mix_share():
    # needs: A 30 - 0 = 30, B 10 - 20 on hand = 0 -> all 25 to A (mix share would give B 12)
    layout = layout_of([0.5, 0.5], FEB)
    demand = monthly(layout, [[30], [10]])
    detail, residual = split_supply_by_need(layout, np.array([[25]]), demand, stock([0, 20]), 0)
    assert sku_totals(detail) == [25, 0] and residual.tolist() == [[0]]
    # A's 25 over the buckets by weight 1,7,7,7,6 (/28): .89, 6.25, 6.25, 6.25, 5.36 -> floors 23,
    # the two spare units to the largest remainders (.89 and .36)
    assert detail[0].tolist() == [1, 6, 6, 6, 6]


def test_a_shortage_is_shared_by_need_with_largest_remainder():
    # needs A 10, B 10 - 5 = 5; 7 by need: 4.67 / 2.33 -> 4 + 2, the spare unit to A (.67)
    layout = layout_of([0.5, 0.5], FEB)
    detail, _ = split_supply_by_need(layout, np.array([[7]]), monthly(layout, [[10], [10]]), stock([0, 5]), 0)
    assert sku_totals(detail) == [5, 2]


def test_supply_beyond_every_need_goes_by_mix_share_once_each_need_is_met():
    # needs A 30, B 0; 50 - 30 = 20 surplus by share 0.5/0.5 -> A 30 + 10, B 0 + 10
    layout = layout_of([0.5, 0.5], FEB)
    detail, _ = split_supply_by_need(
        layout, np.array([[50]]), monthly(layout, [[30], [10]]), stock([0, 20]), 0
    )
    assert sku_totals(detail) == [40, 10]


def test_safety_stock_counts_in_the_need():
    # needs A 10 + 5 ss = 15, B 10; 20 by need 15/10: 12 / 8
    layout = layout_of([0.5, 0.5], FEB)
    detail, _ = split_supply_by_need(
        layout, np.array([[20]]), monthly(layout, [[10], [10]]), stock([0, 0], safety=[5, 0]), 0
    )
    assert sku_totals(detail) == [12, 8]


def test_projected_stock_carries_from_month_to_month():
    # Feb: needs 10/10, 30 -> surplus 10 by share 0.8/0.2 -> A 18, B 12; stock A 8, B 2.
    # Mar: needs A 10 - 8 = 2, B 10 - 2 = 8 -> 10 goes 2 / 8 (mix share would give 8 / 2).
    layout = layout_of([0.8, 0.2], ["2026-02", "2026-03"])
    demand = monthly(layout, [[10, 10], [10, 10]])
    detail, _ = split_supply_by_need(layout, np.array([[30, 10]]), demand, stock([0, 0], periods=2), 0)
    march = layout.period_of_bucket[:, 1].astype(bool)
    assert detail[:, ~march].sum(axis=1).tolist() == [18, 12]
    assert detail[:, march].sum(axis=1).tolist() == [2, 8]


def test_locked_supply_keeps_its_value_and_counts_toward_the_sku_need():
    # A locks 12 in W06: its need 30 - 12 = 18; B needs 10; the rest 25 - 12 = 13 by need 18/10:
    # 8.36 / 4.64 -> 8 + 4, the spare unit to B (.64) -> A 12 + 8 = 20, B 5
    layout = layout_of([0.5, 0.5], FEB)
    locked = np.zeros((2, 5), dtype=bool)
    locked[0, 1] = True
    values = np.zeros((2, 5), dtype=np.int64)
    values[0, 1] = 12
    detail, residual = split_supply_by_need(
        layout,
        np.array([[25]]),
        monthly(layout, [[30], [10]]),
        stock([0, 0]),
        0,
        locked=locked,
        values=values,
    )
    assert detail[0, 1] == 12 and sku_totals(detail) == [20, 5] and residual.tolist() == [[0]]


# --- the master schedule -----------------------------------------------------------------------------

# February and March 2027: nine whole buckets, one per ISO week (W05-W13).
PERIODS = ["2027-02", "2027-03"]


def one_sku(**columns: list[float]):
    calendar = derive_calendar(PERIODS)
    return plan_inputs(calendar, skus=["FG"], sku_family=[0], families=["F"], dtype=np.int64, **columns)


def test_receipts_track_the_cumulative_schedule_within_one_lot():
    # schedule 3 a week for four weeks, lot 5: w1 gap 3 -> 5 (5); w2 6 - 5 = 1 -> 5 (10);
    # w3 9 - 10 < 0 -> 0; w4 12 - 10 = 2 -> 5 (15): never behind, less than one lot ahead
    inputs = one_sku(lot=[5])
    supply = np.zeros((1, inputs.calendar.n_buckets), dtype=np.int64)
    supply[0, :4] = 3
    assert master_schedule(inputs, supply, PlanParams())[0, :5].tolist() == [5, 5, 0, 5, 0]


def test_a_firm_planned_order_is_received_as_typed_and_the_weeks_after_track_from_it():
    # schedule 3, 7, 3, 3, 3 with lot 5; the planner locked week 2's cell at 7
    inputs = one_sku(lot=[5])
    supply = np.zeros((1, inputs.calendar.n_buckets), dtype=np.int64)
    supply[0, :5] = [3, 7, 3, 3, 3]
    firm = np.zeros_like(supply, dtype=bool)
    firm[0, 1] = True
    # cumulative 3, 10, 13, 16, 19: w1 3 -> 5 (5); w2 firm 7, not lot-sized (12); w3 13 - 12 = 1 -> 5
    # (17); w4 16 < 17 -> 0; w5 19 - 17 = 2 -> 5 (22)
    assert master_schedule(inputs, supply, PlanParams(), firm=firm)[0, :6].tolist() == [5, 7, 5, 0, 5, 0]
    # without the lock the same week is lot-sized: w2 10 - 5 = 5 -> 5
    assert master_schedule(inputs, supply, PlanParams())[0, :2].tolist() == [5, 5]


def test_a_minimum_order_is_received_once_and_covers_the_weeks_after():
    inputs = one_sku(moq=[6])
    supply = np.zeros((1, inputs.calendar.n_buckets), dtype=np.int64)
    supply[0, 0], supply[0, 2] = 2, 3  # cumulative 2, 2, 5: one order of 6 covers both
    assert master_schedule(inputs, supply, PlanParams())[0, :4].tolist() == [6, 0, 0, 0]


def test_the_schedule_is_received_as_given_and_demand_beyond_stock_is_a_shortage_not_an_order():
    # schedule 10 in week 1; demand 4, 4, 4: on hand 10 -> 6 -> 2 -> -2 (a shortage, no new order)
    inputs = one_sku()
    receipts = np.zeros((1, inputs.calendar.n_weeks), dtype=np.int64)
    receipts[0, 0] = 10
    gross = np.zeros_like(receipts)
    gross[0, :3] = 4
    result = run_mrp(inputs, gross, PlanParams(), fg_receipts=receipts)
    assert result.planned_order_receipt[0, :4].tolist() == [10, 0, 0, 0]
    assert result.on_hand_end[0, :3].tolist() == [6, 2, -2]
