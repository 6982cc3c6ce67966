"""Pegging: which finished goods, and which of their weeks, a component shortage endangers (SPEC 3.7).

A component short in weeks ``a..b`` (negative projected on-hand after capacity reconciliation) cannot
fully supply the parent orders released in those weeks: their gross requirement of it falls there.
Each such parent order (``planned_order_release_adj > 0`` in one of those weeks) is at risk. A
finished-good parent's order received ``lt_weeks`` later is the supply its demand of that week waits
for, so the finished good and that receipt week are pegged, with the order's quantity. A
sub-assembly parent's order at risk is received ``lt_weeks`` later too, and what its own parents
release in that receipt week is at risk in turn, up the bill of material to the finished goods.

Pure computation over the adjusted plan and the parent edges of the bill of material. Must not do I/O.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Peg:
    """One finished good endangered by a shortage: its first and last receipt week at risk (week
    indexes) and the quantity of its orders at risk."""

    fg: int
    first: int
    last: int
    quantity: float


def parents_of(bom_parent: np.ndarray, bom_child: np.ndarray) -> dict[int, list[int]]:
    """Child item index -> its distinct parent item indexes, in ascending order."""
    parents: dict[int, set[int]] = defaultdict(set)
    for p, c in zip(np.asarray(bom_parent).tolist(), np.asarray(bom_child).tolist(), strict=True):
        parents[c].add(p)
    return {c: sorted(ps) for c, ps in parents.items()}


def peg_shortage(
    item: int,
    first: int,
    last: int,
    parents: dict[int, list[int]],
    releases: np.ndarray,
    lt_weeks: np.ndarray,
    n_fg: int,
) -> list[Peg]:
    """The finished goods a shortage of ``item`` in weeks ``first..last`` endangers, largest quantity
    first (ties by finished-good index). ``releases[I, W]``: adjusted planned order releases."""
    n_weeks = releases.shape[1]
    at_risk: dict[int, dict[int, float]] = defaultdict(dict)  # fg -> receipt week -> quantity
    seen: set[tuple[int, int]] = set()
    frontier = [(item, w) for w in range(first, last + 1)]
    while frontier:
        child, week = frontier.pop()
        for parent in parents.get(child, ()):
            quantity = float(releases[parent, week])
            if quantity <= 0 or (parent, week) in seen:
                continue
            seen.add((parent, week))
            receipt = min(week + int(lt_weeks[parent]), n_weeks - 1)
            if parent < n_fg:
                at_risk[parent][receipt] = at_risk[parent].get(receipt, 0.0) + quantity
            else:
                frontier.append((parent, receipt))
    pegs = [Peg(fg, min(weeks), max(weeks), sum(weeks.values())) for fg, weeks in at_risk.items()]
    return sorted(pegs, key=lambda p: (-p.quantity, p.fg))


def ancestor_edges(items: list[int], parents: dict[int, list[int]]) -> list[tuple[int, int]]:
    """The (parent, child) edges from ``items`` up to the finished goods, each once, sorted."""
    edges: set[tuple[int, int]] = set()
    stack = list(items)
    visited: set[int] = set()
    while stack:
        child = stack.pop()
        if child in visited:
            continue
        visited.add(child)
        for parent in parents.get(child, ()):
            edges.add((parent, child))
            stack.append(parent)
    return sorted(edges)
