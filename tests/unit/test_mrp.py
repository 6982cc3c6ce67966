"""MRP (SPEC 3.3): low-level codes, netting, lot sizing, lead-time offset, explosion."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.planning.calendar import derive_calendar
from app.planning.model import PlanInputs, PlanParams
from app.planning.mrp import fg_gross_from_buckets, lead_time_weeks, low_level_codes, run_mrp
from tests.unit.builders import plan_inputs

#: Feb 2027 is four whole ISO weeks (W05-W08); March adds W09-W13 (W13 only 3 days): 9 weeks in all.
PERIODS = ["2027-02", "2027-03"]
N_WEEKS = 9
INT = PlanParams()


def build_inputs(
    n_fg: int,
    n_components: int = 0,
    *,
    bom: tuple[tuple[int, int, float, float], ...] = (),
    scheduled: dict[tuple[int, int], float] | None = None,
    **item_columns: list[float],
) -> PlanInputs:
    """A one-family input set; item columns (lt, lot, moq, safety_stock, max_lot, on_hand) default to 0
    (lot to 1). ``bom`` holds (parent, child, qty, scrap) by item index; ``scheduled`` (item, week) -> qty."""
    n = n_fg + n_components
    calendar = derive_calendar(PERIODS)
    sched = np.zeros((n, calendar.n_weeks))
    for (item, week), qty in (scheduled or {}).items():
        sched[item, week] = qty
    return plan_inputs(
        calendar,
        families=["F"],
        skus=[f"FG{i}" for i in range(n_fg)],
        sku_family=np.zeros(n_fg, dtype=np.int64),
        sku_share=np.full(n_fg, 1.0 / n_fg),
        components=[f"C{j}" for j in range(n_components)],
        workcenters=["WC"],
        capacity=1e9,
        scheduled_receipts=sched,
        bom=bom,
        **item_columns,
    )


def weeks(*values: float, n_rows: int = 1) -> np.ndarray:
    """A [1, N_WEEKS] int row with the given leading values (rest zero)."""
    row = np.zeros((n_rows, N_WEEKS), dtype=np.int64)
    row[0, : len(values)] = values
    return row


def assert_inventory_identity(result) -> None:
    np.testing.assert_allclose(
        result.on_hand_end,
        result.on_hand_start + result.scheduled_receipts + result.planned_order_receipt - result.gross_req,
        atol=1e-6,
    )


# --- hand-computed cases ------------------------------------------------------------------------------


def test_single_item_nets_against_stock_and_sizes_orders_with_moq_and_lot():
    # on_hand 20, safety stock 5, moq 25, lot 10, lead time 7 days = 1 week, open PO 10 in week 3.
    # week  gross  start  sched  net               receipt             end
    #  1     10     20     0     10+5-20 <0 -> 0    0                  10
    #  2     30     10     0     30+5-10 = 25       max(25,25)=25->30  10+30-30 = 10
    #  3      0     10    10     0+5-20 <0 -> 0     0                  20
    #  4     15     20     0     15+5-20 = 0        0                   5
    #  5     40      5     0     40+5-5 = 40        40 (lot multiple)   5
    #  6      5      5     0     5+5-5 = 5          max(5,25)=25->30   30
    inputs = build_inputs(
        1, on_hand=[20], safety_stock=[5], moq=[25], lot=[10], lt=[7], scheduled={(0, 2): 10}
    )
    result = run_mrp(inputs, weeks(10, 30, 0, 15, 40, 5), INT)
    assert result.net_req[0, :6].tolist() == [0, 25, 0, 0, 40, 5]
    assert result.planned_order_receipt[0, :6].tolist() == [0, 30, 0, 0, 40, 30]
    assert result.on_hand_end[0, :6].tolist() == [10, 10, 20, 5, 5, 30]
    assert result.on_hand_start[0, :6].tolist() == [20, 10, 10, 20, 5, 5]
    # Releases one week earlier: 30 in week 1, 40 in week 4, 30 in week 5.
    assert result.planned_order_release[0, :6].tolist() == [30, 0, 0, 40, 30, 0]
    assert result.orders[0, :6].tolist() == [0, 1, 0, 0, 1, 1]
    assert result.planned_order_receipt.dtype == np.int64
    assert not result.past_due[0]
    assert_inventory_identity(result)


def test_max_lot_splits_a_receipt_into_orders_landing_the_same_week():
    # net 45 -> lot 10 -> 50; max_lot 25 floors to 20 (a multiple of lot) -> ceil(50 / 20) = 3 orders.
    inputs = build_inputs(1, lot=[10], max_lot=[25])
    result = run_mrp(inputs, weeks(45), INT)
    assert result.planned_order_receipt[0, 0] == 50
    assert result.orders[0, 0] == 3


def test_scrap_inflates_component_requirement_and_rounds_up():
    # FG releases 7 in week 1 (lead time 0); 3 per unit with 10% scrap: 7 * 3 / 0.9 = 23.33 -> 24.
    # A second component, 1 per unit with 10% scrap on a release of 9: 9 / 0.9 = 10.000000000000002 -> 10.
    inputs = build_inputs(2, 2, bom=((0, 2, 3, 0.1), (1, 3, 1, 0.1)))
    gross = np.zeros((2, N_WEEKS), dtype=np.int64)
    gross[:, 0] = [7, 9]
    result = run_mrp(inputs, gross, INT)
    assert result.gross_req[2, 0] == 24
    assert result.gross_req[3, 0] == 10


def test_release_before_week_one_is_placed_in_week_one_and_flagged_past_due():
    # Lead time 14 days = 2 weeks. Receipts 10, 5, 7 in weeks 1-3 release in weeks -1, 0, 1:
    # the first two are past due (10 + 5 = 15) and land in week 1 with the on-time 7: 22.
    inputs = build_inputs(1, lt=[14])
    result = run_mrp(inputs, weeks(10, 5, 7), INT)
    assert result.lt_weeks.tolist() == [2]
    assert result.planned_order_release[0, :3].tolist() == [22, 0, 0]
    assert result.past_due.tolist() == [True]
    assert result.past_due_qty.tolist() == [15]


def test_shared_component_collects_requirements_from_every_parent():
    # FG0 -> SUB (2 per) -> C (3 per), and FG0 -> C (1 per) directly; every lead time is 1 week.
    # FG0 demand 10 in week 4 -> FG0 releases 10 in week 3.
    # SUB gross 2 * 10 = 20 in week 3 -> releases 20 in week 2.
    # C gross: 1 * 10 = 10 in week 3 (from FG0) and 3 * 20 = 60 in week 2 (from SUB).
    inputs = build_inputs(1, 2, lt=[7, 7, 7], bom=((0, 1, 2, 0), (1, 2, 3, 0), (0, 2, 1, 0)))
    result = run_mrp(inputs, weeks(0, 0, 0, 10), INT)
    assert result.llc.tolist() == [0, 1, 2]
    assert result.gross_req[1, :4].tolist() == [0, 0, 20, 0]
    assert result.gross_req[2, :4].tolist() == [0, 60, 10, 0]
    assert result.planned_order_release[2, :3].tolist() == [60, 10, 0]


def test_given_fg_receipts_are_kept_and_components_follow_their_releases():
    # FG0 (lot 50, ignored for given receipts) demand 10 in week 3, receipt given as 10 in week 2.
    # Lead time 1 week -> release 10 in week 1 -> component (2 per) gross 20 in week 1.
    # FG on-hand: end of week 2 = 10, end of week 3 = 0.
    inputs = build_inputs(1, 1, lot=[50, 1], lt=[7, 0], bom=((0, 1, 2, 0),))
    result = run_mrp(inputs, weeks(0, 0, 10), INT, fg_receipts=weeks(0, 10))
    assert result.planned_order_receipt[0, :3].tolist() == [0, 10, 0]
    assert result.planned_order_release[0, :3].tolist() == [10, 0, 0]
    assert result.on_hand_end[0, :3].tolist() == [0, 10, 0]
    assert result.gross_req[1, :3].tolist() == [20, 0, 0]
    assert result.planned_order_receipt[1, :3].tolist() == [20, 0, 0]


def test_given_fg_receipts_may_leave_negative_on_hand():
    # Demand 10 in week 1 and nothing received: projected on-hand -10, then stays there.
    inputs = build_inputs(1)
    result = run_mrp(inputs, weeks(10), INT, fg_receipts=weeks())
    assert result.on_hand_end[0, :2].tolist() == [-10, -10]
    assert_inventory_identity(result)


def test_low_level_code_is_one_below_the_deepest_parent():
    # 0 -> 1 -> 2 and 0 -> 2: item 2 sits under item 1, so its code is 2; 3 is nobody's child.
    llc = low_level_codes(4, np.array([0, 1, 0]), np.array([1, 2, 2]))
    assert llc.tolist() == [0, 1, 2, 0]


def test_lead_time_in_days_rounds_up_to_weeks_and_weeks_are_taken_as_is():
    inputs = build_inputs(3, lt=[0, 8, 14])
    assert lead_time_weeks(inputs, PlanParams(lt_unit="day")).tolist() == [0, 2, 2]
    assert lead_time_weeks(inputs, PlanParams(lt_unit="week")).tolist() == [0, 8, 14]


def test_split_week_buckets_are_summed_per_iso_week():
    calendar = derive_calendar(["2027-03", "2027-04"])  # W13 is split: 3 days in March, 4 in April
    demand = np.arange(calendar.n_buckets, dtype=np.int64)[None, :]
    gross = fg_gross_from_buckets(calendar, demand)
    w13 = calendar.weeks.index("2027-W13")
    split = [b for b, bucket in enumerate(calendar.buckets) if bucket.week == "2027-W13"]
    assert gross[0, w13] == sum(split)
    assert gross.sum() == demand.sum()


def test_decimal_mode_keeps_float_quantities_rounded():
    inputs = build_inputs(1, 1, bom=((0, 1, 1, 0.3),))
    result = run_mrp(inputs, np.array([[1.25] + [0.0] * (N_WEEKS - 1)]), PlanParams(round_mode="dec1"))
    # FG: 1.25 rounds to 1.2 (half to even); lot 1 -> receipt 2; component 2 / 0.7 = 2.857 -> 2.9 -> lot 3.
    assert result.gross_req.dtype == np.float64
    assert result.gross_req[0, 0] == 1.2
    assert result.gross_req[1, 0] == 2.9
    assert result.planned_order_receipt[1, 0] == 3.0


# --- properties -----------------------------------------------------------------------------------------


@st.composite
def mrp_cases(draw):
    """Random small plans: a DAG BOM (parents before children), lot rules, stock, demand and open POs."""
    n_fg = draw(st.integers(1, 3))
    n_comp = draw(st.integers(0, 4))
    n = n_fg + n_comp
    bom = []
    for child in range(n_fg, n):
        for parent in draw(st.lists(st.integers(0, child - 1), min_size=1, max_size=3, unique=True)):
            bom.append(
                (parent, child, draw(st.integers(1, 3)), draw(st.sampled_from([0.0, 0.05, 0.1, 0.25])))
            )
    ints = st.lists
    lot = draw(ints(st.integers(1, 12), min_size=n, max_size=n))
    moq = draw(ints(st.integers(0, 30), min_size=n, max_size=n))
    max_lot = [
        draw(st.sampled_from([0, m + lt, m + 3 * lt, 2 * m + 40])) for m, lt in zip(moq, lot, strict=True)
    ]
    scheduled = draw(
        st.dictionaries(st.tuples(st.integers(0, n - 1), st.integers(0, N_WEEKS - 1)), st.integers(1, 40))
    )
    inputs = build_inputs(
        n_fg,
        n_comp,
        bom=tuple(bom),
        scheduled=scheduled,
        lt=draw(ints(st.integers(0, 21), min_size=n, max_size=n)),
        lot=lot,
        moq=moq,
        max_lot=max_lot,
        safety_stock=draw(ints(st.integers(0, 20), min_size=n, max_size=n)),
        on_hand=draw(ints(st.integers(0, 50), min_size=n, max_size=n)),
    )
    gross = np.array(
        draw(ints(ints(st.integers(0, 60), min_size=N_WEEKS, max_size=N_WEEKS), min_size=n_fg, max_size=n_fg))
    )
    return inputs, gross


@settings(max_examples=75, deadline=None)
@given(mrp_cases(), st.sampled_from(["int", "dec1", "none"]))
def test_inventory_identity_holds_on_every_row(case, round_mode):
    inputs, gross = case
    result = run_mrp(inputs, gross, PlanParams(round_mode=round_mode))
    assert_inventory_identity(result)
    np.testing.assert_allclose(result.on_hand_start[:, 0], inputs.on_hand)
    np.testing.assert_allclose(result.on_hand_start[:, 1:], result.on_hand_end[:, :-1])


@settings(max_examples=75, deadline=None)
@given(mrp_cases())
def test_planned_receipts_follow_lot_rules_and_orders_respect_max_lot(case):
    inputs, gross = case
    result = run_mrp(inputs, gross, INT)
    q = result.planned_order_receipt
    lot = inputs.item_lot.astype(np.int64)[:, None]
    moq = inputs.item_moq.astype(np.int64)[:, None]
    assert np.all((q == 0) | ((q >= moq) & (q % lot == 0)))
    max_eff = (inputs.item_max_lot.astype(np.int64) // lot[:, 0] * lot[:, 0])[:, None]
    split = (max_eff > 0) & (q > 0)
    assert np.all(~split | (q <= result.orders * max_eff))  # every order <= max_lot
    assert np.all(~split | ((result.orders - 1) * max_eff < q))  # and no more orders than needed
    assert np.all((q > 0) == (result.orders > 0))


@settings(max_examples=75, deadline=None)
@given(mrp_cases())
def test_parents_are_planned_before_children_and_shared_components_sum_every_parent(case):
    inputs, gross = case
    result = run_mrp(inputs, gross, INT)
    assert np.all(result.llc[inputs.bom_parent] < result.llc[inputs.bom_child])
    release = result.planned_order_release
    for child in range(inputs.n_fg, len(inputs.items)):
        raw = np.zeros(N_WEEKS)
        for e in np.nonzero(inputs.bom_child == child)[0]:
            raw += release[inputs.bom_parent[e]] * inputs.bom_qty[e] / (1 - inputs.bom_scrap[e])
        expected = [math.ceil(round(v, 6)) for v in raw]
        assert result.gross_req[child].tolist() == expected


@settings(max_examples=75, deadline=None)
@given(mrp_cases())
def test_releases_are_receipts_shifted_by_lead_time(case):
    inputs, gross = case
    result = run_mrp(inputs, gross, INT)
    np.testing.assert_array_equal(
        result.planned_order_release.sum(axis=1), result.planned_order_receipt.sum(axis=1)
    )
    for item, lt in enumerate(result.lt_weeks):
        late = result.planned_order_receipt[item, :lt].sum()
        assert result.past_due_qty[item] == late
        assert result.past_due[item] == (late > 0)
        np.testing.assert_array_equal(
            result.planned_order_release[item, 1 : N_WEEKS - lt], result.planned_order_receipt[item, lt + 1 :]
        )
