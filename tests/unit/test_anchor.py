"""Cutover zones and anchor policies (SPEC 3.6).

The hand-computed cases use one family with one SKU over January-March 2026 whose monthly demand
equals the days of the month, so the allocation puts exactly each bucket's weight (its days) in it:

    bucket  0..4  = Jan W01..W05 (4, 7, 7, 7, 6)
    bucket  5..9  = Feb W05, W06, W07, W08, W09 (1, 7, 7, 7, 6)
    bucket 10..15 = Mar W09..W14 (1, 7, 7, 7, 7, 2)

With the cutover on Wednesday 2026-02-11 and a 7-day window (one week each side), W06-W08 are
``at``, W01-W05 ``near`` and W09-W14 ``far``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.planning.aggregate import plan_aggregate
from app.planning.allocate import DetailLayout, allocate_to_weeks, rollup
from app.planning.anchor import apply_anchor, boundary_summary, bucket_zones, week_zones
from app.planning.calendar import derive_calendar
from app.planning.documents import ANCHOR_LOG_ROW
from app.planning.model import AllocationResult, Decisions, PlanParams
from app.planning.pipeline import run_stages
from tests.unit.builders import family_inputs

PERIODS = ["2026-01", "2026-02", "2026-03"]
DAYS = [31, 28, 31]


def params(policy="DET_near", carryover="none", window=7, **kw) -> PlanParams:
    return PlanParams(
        cutover_date="2026-02-11", recon_window_days=window, anchor_policy=policy, carryover=carryover, **kw
    )


def plan(p: PlanParams, **extra):
    inputs = family_inputs([DAYS], 100, periods=PERIODS, **extra)
    agg = plan_aggregate(inputs, p)
    return inputs, agg, allocate_to_weeks(inputs, agg, p)


def lock(cells: dict[int, int], n_buckets: int = 16):
    mask = np.zeros((1, n_buckets), dtype=bool)
    values = np.zeros((1, n_buckets), dtype=np.int64)
    for b, v in cells.items():
        mask[0, b], values[0, b] = True, v
    return {"demand": (mask, values)}


def edited(alloc: AllocationResult, cells: dict[int, int]) -> AllocationResult:
    demand = alloc.demand.copy()
    for b, v in cells.items():
        demand[0, b] = v
    return AllocationResult(demand, alloc.supply.copy(), alloc.backlog.copy())


def changes(log, measure="demand"):
    """{(period, week): (before, after)} of the detail rows of one measure."""
    return {
        (r["period"], r["week"]): (r["before"], r["after"])
        for r in log
        if r["measure"] == measure and r["sku"]
    }


def family_rows(log, measure="demand"):
    """(period, before, after) of the residual and carryover rows of one measure."""
    return [
        (r["period"], r["before"], r["after"])
        for r in log
        if r["measure"] == measure and r["sku"] is None and not r["reason"].startswith("aggregate")
    ]


def aggregate_rows(log, measure="demand"):
    """(period, before, after) of the aggregate cells that changed."""
    return [
        (r["period"], r["before"], r["after"])
        for r in log
        if r["measure"] == measure and r["sku"] is None and r["reason"].startswith("aggregate")
    ]


# --------------------------------------------------------------------------------------------------
# Zones


def test_fixture_buckets_hold_their_days():
    _, _, alloc = plan(params())
    assert alloc.demand.tolist() == [[4, 7, 7, 7, 6, 1, 7, 7, 7, 6, 1, 7, 7, 7, 7, 2]]


def test_week_zones_around_a_one_week_window():
    cal = derive_calendar(PERIODS)
    zones = week_zones(cal, params())
    assert dict(zip(cal.weeks, zones, strict=True)) == {
        **{f"2026-W{w:02d}": "near" for w in range(1, 6)},
        **{f"2026-W{w:02d}": "at" for w in (6, 7, 8)},
        **{f"2026-W{w:02d}": "far" for w in range(9, 15)},
    }
    # the split weeks W05 and W09 give each zone one bucket more than weeks
    assert bucket_zones(cal, params()).count("near") == 6
    assert boundary_summary(cal, params()) == {
        "cutover_date": "2026-02-11",
        "window_days": 7,
        "window_weeks": 1,
        "near_buckets": 6,
        "at_buckets": 3,
        "far_buckets": 7,
    }


def test_window_days_round_up_to_whole_weeks():
    # 10 days -> 2 weeks: [Wed 28 Jan, Tue 24 Feb] touches W05..W09
    cal = derive_calendar(PERIODS)
    zones = dict(zip(cal.weeks, week_zones(cal, params(window=10)), strict=True))
    assert [w for w, z in zones.items() if z == "at"] == [f"2026-W{w:02d}" for w in range(5, 10)]
    assert boundary_summary(cal, params(window=10))["window_weeks"] == 2


def test_zero_window_has_no_at_weeks_and_the_cutover_week_is_far():
    cal = derive_calendar(PERIODS)
    zones = dict(zip(cal.weeks, week_zones(cal, params(window=0)), strict=True))
    assert zones["2026-W06"] == "near" and zones["2026-W07"] == "far"
    assert "at" not in zones.values()


def test_cutover_outside_the_horizon_puts_everything_on_one_side():
    cal = derive_calendar(PERIODS)
    assert set(week_zones(cal, PlanParams(cutover_date="2025-06-01"))) == {"far"}
    assert set(week_zones(cal, PlanParams(cutover_date="2027-06-01"))) == {"near"}


def test_without_cutover_there_are_no_zones_and_nothing_changes():
    p = PlanParams(anchor_policy="DET_near")
    inputs, agg, alloc = plan(p)
    assert week_zones(inputs.calendar, p) == [None] * inputs.calendar.n_weeks
    assert bucket_zones(inputs.calendar, p) == [None] * inputs.calendar.n_buckets
    assert boundary_summary(inputs.calendar, p) is None
    assert apply_anchor(inputs, agg, alloc, p) == (agg, alloc, [])


def test_without_policy_nothing_changes():
    p = PlanParams(cutover_date="2026-02-11")
    inputs, agg, alloc = plan(p)
    assert apply_anchor(inputs, agg, alloc, p) == (agg, alloc, [])


@pytest.mark.parametrize("mode", ["int", "dec2", "none"])
@pytest.mark.parametrize("policy", ["DET_near", "AGG_far", "blend"])
def test_unedited_detail_passes_through_every_policy(policy, mode):
    p = params(policy, carryover="both", round_mode=mode)
    inputs, agg, alloc = plan(p)
    new_agg, new_alloc, log = apply_anchor(inputs, agg, alloc, p)
    assert log == []
    assert new_alloc.demand.tolist() == alloc.demand.tolist()
    assert new_agg.demand.tolist() == agg.demand.tolist()


# --------------------------------------------------------------------------------------------------
# DET_near


def test_det_near_keeps_a_near_edit_and_rolls_it_up_into_the_aggregate():
    # Jan W03 locked at 10 (was 7): January is wholly near, so its aggregate becomes 31 + 3 = 34;
    # supply stays 31, so 3 units are owed from January on.
    p = params("DET_near")
    inputs, agg, alloc = plan(p)
    new_agg, new_alloc, log = apply_anchor(inputs, agg, edited(alloc, {2: 10}), p, lock({2: 10}))
    assert new_alloc.demand[0, :5].tolist() == [4, 7, 10, 7, 6]
    assert new_agg.demand.tolist() == [[34, 28, 31]]
    assert new_agg.supply.tolist() == [[31, 28, 31]]
    assert new_agg.backlog.tolist() == [[3, 3, 3]]
    assert aggregate_rows(log) == [("2026-01", 31, 34)]
    assert new_alloc.backlog.sum(axis=1).tolist() == [9]  # re-spread: 3 per month


def test_det_near_cutover_month_is_near_and_at_rollup_plus_far_share():
    # Feb: W05 1 (near) + W06 7 + W07 12 (edited, at) + W08 7 (at) + W09 6 (far share) = 33
    p = params("DET_near")
    inputs, agg, alloc = plan(p)
    new_agg, new_alloc, log = apply_anchor(inputs, agg, edited(alloc, {7: 12}), p)
    assert new_alloc.demand[0, 5:10].tolist() == [1, 7, 12, 7, 6]
    assert new_agg.demand.tolist() == [[31, 33, 31]]
    assert changes(log) == {}  # the at edit is kept, the detail does not move
    assert aggregate_rows(log) == [("2026-02", 28, 33)]


def test_det_near_reapportions_an_unlocked_far_edit_back_to_the_aggregate():
    p = params("DET_near")
    inputs, agg, alloc = plan(p)
    _, new_alloc, log = apply_anchor(inputs, agg, edited(alloc, {12: 10}), p)
    assert new_alloc.demand[0, 10:].tolist() == [1, 7, 7, 7, 7, 2]
    assert changes(log) == {("2026-03", "2026-W11"): (10, 7)}
    assert log[0]["reason"].startswith("far: re-apportioned")


def test_det_near_far_lock_is_kept_and_the_rest_of_the_month_takes_the_remainder():
    # Mar W11 locked at 10: 31 - 10 = 21 over W09, W10, W12, W13, W14 by 1,7,7,7,2 (/24):
    # .875, 6.125, 6.125, 6.125, 1.75 -> floors 19, spare units to W09 (.875) and W14 (.75)
    p = params("DET_near")
    inputs, agg, alloc = plan(p)
    new_agg, new_alloc, log = apply_anchor(inputs, agg, edited(alloc, {12: 10}), p, lock({12: 10}))
    assert new_alloc.demand[0, 10:].tolist() == [1, 6, 10, 6, 6, 2]
    assert new_agg.demand.tolist() == agg.demand.tolist()
    assert changes(log) == {
        ("2026-03", "2026-W10"): (7, 6),
        ("2026-03", "2026-W12"): (7, 6),
        ("2026-03", "2026-W13"): (7, 6),
    }


# --------------------------------------------------------------------------------------------------
# AGG_far


def test_agg_far_keeps_only_at_buckets_before_the_cutover():
    # W06 (2-8 Feb) is at and ends before 11 Feb: edited to 10 and kept. The rest of February
    # is 28 - 10 = 18 over W05, W07, W08, W09 by 1,7,7,6 (/21): .857, 6, 6, 5.14 -> 17 + 1 to W05
    p = params("AGG_far")
    inputs, agg, alloc = plan(p)
    new_agg, new_alloc, log = apply_anchor(inputs, agg, edited(alloc, {6: 10}), p)
    assert new_alloc.demand[0, 5:10].tolist() == [1, 10, 6, 6, 5]
    assert new_agg.demand.tolist() == agg.demand.tolist()
    assert changes(log) == {
        ("2026-02", "2026-W07"): (7, 6),
        ("2026-02", "2026-W08"): (7, 6),
        ("2026-02", "2026-W09"): (6, 5),
    }


def test_agg_far_overrides_an_unlocked_near_edit():
    p = params("AGG_far")
    inputs, agg, alloc = plan(p)
    _, new_alloc, log = apply_anchor(inputs, agg, edited(alloc, {2: 10}), p)
    assert new_alloc.demand[0, :5].tolist() == [4, 7, 7, 7, 6]
    assert changes(log) == {("2026-01", "2026-W03"): (10, 7)}


def test_agg_far_near_lock_is_kept_and_the_month_still_matches_the_aggregate():
    # Jan W03 locked at 10: 21 over W01, W02, W04, W05 by 4,7,7,6 (/24): 3.5, 6.125, 6.125, 5.25
    # -> floors 20, spare unit to W01 (.5)
    p = params("AGG_far")
    inputs, agg, alloc = plan(p)
    new_agg, new_alloc, _ = apply_anchor(inputs, agg, edited(alloc, {2: 10}), p, lock({2: 10}))
    assert new_alloc.demand[0, :5].tolist() == [4, 6, 10, 6, 5]
    assert new_agg.demand.tolist() == agg.demand.tolist()


# --------------------------------------------------------------------------------------------------
# blend


def test_blend_mixes_detail_and_aggregate_share_across_the_window():
    # at weeks W06, W07, W08 get w = 1, 0.5, 0. All three edited to 15 (share 7):
    # W06 15, W07 .5*15 + .5*7 = 11, W08 7. Feb = 1 + 15 + 11 + 7 + 6 (far share) = 40.
    p = params("blend")
    inputs, agg, alloc = plan(p)
    new_agg, new_alloc, log = apply_anchor(inputs, agg, edited(alloc, {6: 15, 7: 15, 8: 15}), p)
    assert new_alloc.demand[0, 5:10].tolist() == [1, 15, 11, 7, 6]
    assert new_agg.demand.tolist() == [[31, 40, 31]]
    assert changes(log) == {("2026-02", "2026-W07"): (15, 11), ("2026-02", "2026-W08"): (15, 7)}
    # supply is unchanged, so February leaves 12 owed to the end
    assert new_agg.backlog.tolist() == [[0, 12, 12]]
    assert new_agg.unserved_end.tolist() == [12]


def test_blend_keeps_a_locked_at_cell():
    p = params("blend")
    inputs, agg, alloc = plan(p)
    _, new_alloc, _ = apply_anchor(inputs, agg, edited(alloc, {8: 15}), p, lock({8: 15}))
    assert new_alloc.demand[0, 8] == 15


def test_blend_keeps_near_edits_and_follows_the_aggregate_far():
    p = params("blend")
    inputs, agg, alloc = plan(p)
    new_agg, new_alloc, _ = apply_anchor(inputs, agg, edited(alloc, {1: 9, 12: 9}), p)
    assert new_alloc.demand[0, 1] == 9 and new_alloc.demand[0, 12] == 7
    assert new_agg.demand.tolist() == [[33, 28, 31]]


# --------------------------------------------------------------------------------------------------
# Carryover (AGG_far: the aggregate stays, so locks leave residuals; the aggregate rows then follow
# the detail, so the horizon keeps its total when the residual can move)


def test_carryover_none_reports_the_residual():
    # Jan W03 locked at 40 > 31: the rest of January is 0 and the residual -9 is reported; the
    # aggregate follows the detail (40), so both levels stay one plan.
    p = params("AGG_far", carryover="none")
    inputs, agg, alloc = plan(p)
    new_agg, new_alloc, log = apply_anchor(inputs, agg, edited(alloc, {2: 40}), p, lock({2: 40}))
    assert new_alloc.demand[0, :5].tolist() == [0, 0, 40, 0, 0]
    assert new_alloc.demand[0, 5:10].tolist() == [1, 7, 7, 7, 6]
    assert family_rows(log) == [("2026-01", 31, 40)]
    assert any("residual of -9" in r["reason"] for r in log)
    assert new_agg.demand.tolist() == [[40, 28, 31]]
    assert aggregate_rows(log) == [("2026-01", 31, 40)]


def test_carryover_next_moves_the_residual_into_february():
    # February's target: 28 - 7 (W06 kept) - 9 = 12 over W05, W07, W08, W09 by 1,7,7,6 (/21):
    # .571, 4, 4, 3.43 -> floors 11, spare unit to W05 -> 1, 4, 4, 3; Feb detail 1+7+4+4+3 = 19
    p = params("AGG_far", carryover="next")
    inputs, agg, alloc = plan(p)
    new_agg, new_alloc, log = apply_anchor(inputs, agg, edited(alloc, {2: 40}), p, lock({2: 40}))
    assert new_alloc.demand[0, 5:10].tolist() == [1, 7, 4, 4, 3]
    assert new_alloc.demand[0].sum() == 90  # the horizon keeps its 31 + 28 + 31
    assert new_agg.demand.tolist() == [[40, 19, 31]]  # the roll-up of the detail
    rows = family_rows(log)
    assert rows == [("2026-01", 31, 40)]
    assert "-9 to 2026-02" in [r for r in log if r["sku"] is None][0]["reason"]


def test_carryover_prev_from_the_first_month_has_nowhere_to_go():
    p = params("AGG_far", carryover="prev")
    inputs, agg, alloc = plan(p)
    _, new_alloc, log = apply_anchor(inputs, agg, edited(alloc, {2: 40}), p, lock({2: 40}))
    assert new_alloc.demand[0, 5:10].tolist() == [1, 7, 7, 7, 6]
    assert family_rows(log) == [("2026-01", 31, 40)]
    assert "residual of -9 (carryover prev)" in [r for r in log if r["sku"] is None][0]["reason"]


def test_carryover_both_splits_half_and_half_ties_to_the_previous_month():
    # Feb W07 locked at 38: Feb target 28 - 7 (W06 kept) = 21 -> residual -17, split 8.5/8.5 -> 9 back, 8 on.
    # Jan 31 - 9 = 22 by 4,7,7,7,6 (/31): 2.84, 4.97, 4.97, 4.97, 4.26 -> 18 + 4 -> 3, 5, 5, 5, 4
    # Mar 31 - 8 = 23 by 1,7,7,7,7,2 (/31): .74, 5.19 x4, 1.48 -> 21 + 2 -> 1, 5, 5, 5, 5, 2
    p = params("AGG_far", carryover="both")
    inputs, agg, alloc = plan(p)
    _, new_alloc, log = apply_anchor(inputs, agg, edited(alloc, {7: 38}), p, lock({7: 38}))
    assert new_alloc.demand[0].tolist() == [3, 5, 5, 5, 4, 0, 7, 38, 0, 0, 1, 5, 5, 5, 5, 2]
    assert new_alloc.demand[0].sum() == 90
    carried = [r for r in log if r["sku"] is None and "carried" in r["reason"]]
    assert len(carried) == 1 and "-9 to 2026-01, -8 to 2026-03" in carried[0]["reason"]


def test_carryover_split_sends_the_given_share_to_the_next_month():
    p = params("AGG_far", carryover="both", carryover_split=1.0)
    inputs, agg, alloc = plan(p)
    _, new_alloc, _ = apply_anchor(inputs, agg, edited(alloc, {7: 38}), p, lock({7: 38}))
    assert new_alloc.demand[0, :5].tolist() == [4, 7, 7, 7, 6]
    assert new_alloc.demand[0, 10:].sum() == 31 - 17


def test_carryover_auto_prefers_the_neighbour_with_more_weighted_free_capacity():
    # free capacity 69 / 72 / 69. Score 2 in March -> 138 > 69: all -17 to March:
    # 14 by 1,7,7,7,7,2 (/31): .45, 3.16 x4, .90 -> 12 + 2 -> 1, 3, 3, 3, 3, 1
    p = params("AGG_far", carryover="auto")
    inputs, agg, alloc = plan(p, period_score=np.array([1.0, 1.0, 2.0]))
    _, new_alloc, _ = apply_anchor(inputs, agg, edited(alloc, {7: 38}), p, lock({7: 38}))
    assert new_alloc.demand[0, 10:].tolist() == [1, 3, 3, 3, 3, 1]
    assert new_alloc.demand[0, :5].tolist() == [4, 7, 7, 7, 6]
    # cost 4 in March -> 69 / 4 = 17.25 < 69: all to January:
    # 14 by 4,7,7,7,6 (/31): 1.81, 3.16 x3, 2.71 -> 12 + 2 -> 2, 3, 3, 3, 3
    inputs, agg, alloc = plan(p, period_cost=np.array([1.0, 1.0, 4.0]))
    _, new_alloc, _ = apply_anchor(inputs, agg, edited(alloc, {7: 38}), p, lock({7: 38}))
    assert new_alloc.demand[0, :5].tolist() == [2, 3, 3, 3, 3]
    assert new_alloc.demand[0, 10:].tolist() == [1, 7, 7, 7, 7, 2]


# --------------------------------------------------------------------------------------------------
# Properties


@st.composite
def anchor_cases(draw):
    n_sku = draw(st.integers(1, 3))
    fam = sorted(draw(st.lists(st.integers(0, 1), min_size=n_sku, max_size=n_sku)))
    fam = [f - fam[0] for f in fam]
    n_fam = fam[-1] + 1
    demand = draw(
        st.lists(st.lists(st.integers(0, 120), min_size=3, max_size=3), min_size=n_fam, max_size=n_fam)
    )
    shares = draw(st.lists(st.sampled_from([0.5, 1.0, 2.0]), min_size=n_sku, max_size=n_sku))
    p = PlanParams(
        cutover_date=draw(st.sampled_from(["2026-01-20", "2026-02-11", "2026-03-02"])),
        recon_window_days=draw(st.sampled_from([0, 3, 7, 15])),
        anchor_policy=draw(st.sampled_from(["DET_near", "AGG_far", "blend"])),
        carryover=draw(st.sampled_from(["none", "prev", "next", "both", "auto"])),
        round_mode=draw(st.sampled_from(["int", "dec1", "none"])),
    )
    inputs = family_inputs(demand, draw(st.integers(50, 300)), sku_family=fam, shares=shares, periods=PERIODS)
    return inputs, p, draw(st.randoms())


@settings(max_examples=60, deadline=None)
@given(case=anchor_cases())
def test_anchoring_never_goes_negative_keeps_locks_and_logs_every_change(case):
    inputs, p, rnd = case
    rng = np.random.default_rng(rnd.randrange(2**32))
    agg = plan_aggregate(inputs, p)
    alloc = allocate_to_weeks(inputs, agg, p)
    shape = alloc.demand.shape
    scale = 10 ** (p.decimals if p.decimals is not None else 1)
    edit = rng.random(shape) < 0.2
    demand = np.where(edit, rng.integers(0, 40, shape) / scale, alloc.demand)
    demand = demand.astype(alloc.demand.dtype)
    mask = edit & (rng.random(shape) < 0.5)
    locks = {"demand": (mask, demand), "supply": (mask, np.where(mask, demand, alloc.supply))}
    supply = np.where(mask, demand, alloc.supply).astype(alloc.supply.dtype)
    before = AllocationResult(demand, supply, alloc.backlog)
    new_agg, new_alloc, log = apply_anchor(inputs, agg, before, p, locks)
    for arr in (
        new_alloc.demand,
        new_alloc.supply,
        new_alloc.backlog,
        new_agg.demand,
        new_agg.supply,
        new_agg.backlog,
        new_agg.inventory_close,
    ):
        assert np.all(arr >= 0)
    assert np.allclose(new_alloc.demand[mask], demand[mask])
    assert np.allclose(new_alloc.supply[mask], supply[mask])
    assert all(set(r) == set(ANCHOR_LOG_ROW) for r in log)
    logged = {(r["sku"], r["week"], r["period"], r["measure"]) for r in log if r["sku"]}
    for measure, old, new in (("demand", demand, new_alloc.demand), ("supply", supply, new_alloc.supply)):
        s_idx, b_idx = np.nonzero(old != new if p.decimals is not None else ~np.isclose(old, new, atol=1e-9))
        for s, b in zip(s_idx, b_idx, strict=True):
            bucket = inputs.calendar.buckets[b]
            assert (inputs.skus[s], bucket.week, bucket.period, measure) in logged
    layout = DetailLayout.from_inputs(inputs)
    # both levels are one plan: the aggregate rows are the roll-up of the anchored detail
    for measure in ("demand", "supply"):
        assert np.allclose(rollup(layout, getattr(new_alloc, measure), p.decimals), getattr(new_agg, measure))
    if p.anchor_policy == "AGG_far" and p.carryover == "none":
        # the aggregate stays wherever no locked cell holds the detail away from it
        locked_rows = rollup(layout, mask.astype(np.int64), 0) > 0
        assert np.allclose(new_agg.demand[~locked_rows], agg.demand[~locked_rows])
    # the detail backlog always rolls up to the anchored aggregate backlog
    assert np.allclose(rollup(layout, new_alloc.backlog, p.decimals), new_agg.backlog)
    # the row identity still holds on the anchored aggregate
    backlog_in = np.concatenate([np.zeros((new_agg.backlog.shape[0], 1)), new_agg.backlog[:, :-1]], axis=1)
    assert np.allclose(
        new_agg.inventory_close - new_agg.backlog,
        new_agg.inventory_open - backlog_in + new_agg.supply - new_agg.demand,
    )


# --------------------------------------------------------------------------------------------------
# The policies side by side, through the pipeline, on the same planner's edits


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        # no policy: every edit is kept and the aggregate is the roll-up: 31+3, 28+5, 31+3
        (None, [34, 33, 34]),
        # DET_near: near (Jan W03) and at (Feb W07) edits kept, the far one (Mar W11) goes back to 7
        ("DET_near", [34, 33, 31]),
        # AGG_far: only at weeks before the cutover keep the detail; W07 ends after 11 Feb, so all go
        ("AGG_far", [31, 28, 31]),
        # blend: near kept; W07 (w = 0.5) -> .5 * 12 + .5 * 7 = 9.5 -> 10 (half to even); far goes back
        ("blend", [34, 31, 31]),
    ],
)
def test_policies_weigh_the_same_unlocked_edits_differently(policy, expected):
    p = params(policy) if policy else PlanParams()
    inputs = family_inputs([DAYS], 100, periods=PERIODS)
    mask = np.zeros((1, 16), dtype=bool)
    values = np.zeros((1, 16), dtype=np.int64)
    for b, v in {2: 10, 7: 12, 12: 10}.items():  # Jan W03 7->10, Feb W07 7->12, Mar W11 7->10
        mask[0, b], values[0, b] = True, v
    results = run_stages(inputs, p, Decisions(edited={"demand": (mask, values)}))
    assert results.aggregate.demand.tolist() == [expected]
    layout = DetailLayout.from_inputs(inputs)
    assert rollup(layout, results.allocation.demand).tolist() == [expected]
    assert results.fg_gross.sum() == sum(expected)  # the MRP nets exactly this demand
