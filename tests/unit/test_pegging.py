"""Pegging a component shortage up the bill of material to the finished goods it endangers."""

from __future__ import annotations

import numpy as np

from app.planning.pegging import Peg, ancestor_edges, parents_of, peg_shortage

# Items: FG0, FG1 (finished goods), SUB (sub-assembly of both), RAW (in SUB and directly in FG1).
FG0, FG1, SUB, RAW = range(4)
PARENTS = parents_of(np.array([FG0, FG1, SUB, FG1]), np.array([SUB, SUB, RAW, RAW]))
LT = np.array([1, 2, 1, 0])


def test_a_shortage_is_pegged_through_a_sub_assembly_and_directly():
    # RAW is short in week 1. In week 1 SUB releases 10 (received week 2) and FG1 releases 5 (received
    # week 3). SUB's receipt in week 2 feeds what its parents release in week 2: FG0 6 (received week 3)
    # and FG1 4 (received week 4). So FG1 is endangered in weeks 3..4 by 5 + 4 = 9 and FG0 in week 3 by 6.
    releases = np.zeros((4, 6))
    releases[SUB, 1], releases[FG1, 1] = 10, 5
    releases[FG0, 2], releases[FG1, 2] = 6, 4
    assert peg_shortage(RAW, 1, 1, PARENTS, releases, LT, n_fg=2) == [Peg(FG1, 3, 4, 9), Peg(FG0, 3, 3, 6)]


def test_no_parent_order_in_the_short_weeks_pegs_nothing_and_receipts_stop_at_the_horizon():
    releases = np.zeros((4, 4))
    assert peg_shortage(RAW, 0, 1, PARENTS, releases, LT, n_fg=2) == []
    releases[FG1, 3] = 7  # released in the last week, received "after" it: pegged to the last week
    assert peg_shortage(RAW, 3, 3, PARENTS, releases, LT, n_fg=2) == [Peg(FG1, 3, 3, 7)]


def test_the_edges_up_from_a_short_item_are_kept_once_each():
    assert ancestor_edges([RAW], PARENTS) == [(FG0, SUB), (FG1, SUB), (FG1, RAW), (SUB, RAW)]
    assert ancestor_edges([FG0], PARENTS) == []
