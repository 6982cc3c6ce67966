"""Largest-remainder apportionment: totals are conserved and every cell stays within a unit of its quota."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.planning.apportion import apportion, apportion_one, ceil_qty, round_qty


def test_spec_example_80_40_over_100_gives_the_extra_unit_to_the_larger_remainder():
    # quotas 100*80/120 = 66.67 and 100*40/120 = 33.33 -> floors 66 + 33 = 99; the spare unit goes to A
    assert apportion_one(100, [80, 40]).tolist() == [67, 33]


def test_int_mode_returns_int64():
    assert apportion_one(10, [1, 2]).dtype == np.int64


def test_ties_go_to_the_lower_index():
    # 1 over three equal weights: every quota is 1/3, the single unit goes to column 0
    assert apportion_one(1, [1, 1, 1]).tolist() == [1, 0, 0]
    # 5 over two equal weights: 2.5 each, the spare unit goes to column 0
    assert apportion_one(5, [2, 2]).tolist() == [3, 2]


def test_all_zero_weights_split_evenly():
    assert apportion_one(6, [0, 0, 0]).tolist() == [2, 2, 2]
    # 7 / 3 = 2.33 each: one spare unit, to the lowest index
    assert apportion_one(7, [0, 0, 0]).tolist() == [3, 2, 2]


def test_zero_weight_cells_get_nothing():
    assert apportion_one(9, [0, 3, 0, 6]).tolist() == [0, 3, 0, 6]


def test_dec1_splits_tenths_and_sums_to_the_total():
    # 1.0 = 10 tenths over three equal weights: 3.33 tenths each -> 4, 3, 3 tenths
    out = apportion_one(1.0, [1, 1, 1], decimals=1)
    assert out.tolist() == [0.4, 0.3, 0.3]
    assert round(out.sum(), 1) == 1.0


def test_dec2_splits_hundredths_and_sums_to_the_total():
    # 1.00 = 100 hundredths over 1:2 -> 33.33 and 66.67 hundredths -> 33 and 67
    out = apportion_one(1.0, [1, 2], decimals=2)
    assert out.tolist() == [0.33, 0.67]
    assert round(out.sum(), 2) == 1.0


def test_unrounded_mode_is_the_plain_proportional_split():
    assert apportion_one(10, [1, 3], decimals=None).tolist() == [2.5, 7.5]


def test_rows_are_independent():
    out = apportion(np.array([100, 1]), np.array([[80, 40], [1, 1]]))
    assert out.tolist() == [[67, 33], [1, 0]]


def test_negative_totals_are_refused():
    with pytest.raises(ValueError):
        apportion(np.array([-1.0]), np.array([[1.0]]))


def test_round_and_ceil_follow_the_mode():
    assert round_qty(np.array([1.4, 2.6]), 0).tolist() == [1, 3]
    assert ceil_qty(np.array([1.01, 2.0]), 0).tolist() == [2, 2]
    assert ceil_qty(np.array([1.01]), 1).tolist() == [1.1]


weights_rows = st.integers(1, 6).flatmap(
    lambda m: st.lists(st.lists(st.integers(0, 1000), min_size=m, max_size=m), min_size=1, max_size=5)
)


@settings(max_examples=80, deadline=None)
@given(weights=weights_rows, data=st.data(), decimals=st.sampled_from([0, 1, 2]))
def test_sums_are_exact_and_cells_stay_within_one_unit_of_their_quota(weights, data, decimals):
    w = np.array(weights, dtype=np.float64)
    scale = 10**decimals
    units = np.array(data.draw(st.lists(st.integers(0, 10_000), min_size=len(w), max_size=len(w))))
    totals = units / scale
    out = apportion(totals, w, decimals)
    out_units = np.rint(out * scale).astype(np.int64)
    assert out_units.sum(axis=1).tolist() == units.tolist()
    wsum = w.sum(axis=1, keepdims=True)
    share = np.where(wsum > 0, w / np.where(wsum > 0, wsum, 1), 1.0 / w.shape[1])
    quota = units[:, None] * share
    assert np.all(np.abs(out_units - quota) < 1 + 1e-9)
    assert np.all(out_units >= 0)
