"""Largest-remainder apportionment: split totals over weighted cells without losing a unit.

Every split of a total in the engine goes through :func:`apportion` so that conservation is exact
in ``int`` mode (and to the last decimal in ``dec1``/``dec2``). Ties in the remainders go to the
lower column index, so callers order columns by ascending key (SKU code, then week).
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-9


def apportion(totals: np.ndarray, weights: np.ndarray, decimals: int | None = 0) -> np.ndarray:
    """Split ``totals[n]`` over ``weights[n, m]`` by largest remainder.

    ``decimals=0`` returns int64 that sum exactly to the (rounded) totals; ``decimals=d > 0`` returns
    float64 multiples of 10^-d that sum to the totals rounded to d places; ``decimals=None`` returns
    the plain proportional float split. A row whose weights are all zero is split evenly.
    """
    totals = np.asarray(totals, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or totals.shape != (weights.shape[0],):
        raise ValueError(
            f"apportion needs totals[n] and weights[n, m], got {totals.shape} and {weights.shape}"
        )
    if np.any(totals < -_EPS) or np.any(weights < 0):
        raise ValueError("apportion needs non-negative totals and weights")
    n, m = weights.shape
    if m == 0:
        return np.zeros((n, 0), dtype=np.int64 if decimals == 0 else np.float64)
    wsum = weights.sum(axis=1)
    even = wsum <= 0
    if even.any():
        weights = weights.copy()
        weights[even] = 1.0
        wsum = weights.sum(axis=1)
    share = weights / wsum[:, None]
    if decimals is None:
        return totals[:, None] * share

    scale = 10**decimals
    units = np.rint(np.maximum(totals, 0.0) * scale).astype(np.int64)
    quota = units[:, None] * share
    base = np.floor(quota + _EPS).astype(np.int64)
    # Float noise can push a floor one unit too high; take it back from the largest cells.
    over = base.sum(axis=1) - units
    if np.any(over > 0):
        for r in np.nonzero(over > 0)[0]:
            for c in np.argsort(-base[r], kind="stable")[: over[r]]:
                base[r, c] -= 1
    remainder = quota - base
    short = units - base.sum(axis=1)
    # Rank each row's cells by descending remainder; stable sort keeps ties in column order.
    order = np.argsort(-remainder, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(m)[None, :].repeat(n, axis=0), axis=1)
    result = base + (rank < short[:, None])
    if decimals == 0:
        return result
    return result / scale


def apportion_one(total: float, weights, decimals: int | None = 0) -> np.ndarray:
    """Apportion a single total over a 1-D weight vector."""
    return apportion(np.array([total]), np.asarray(weights, dtype=np.float64)[None, :], decimals)[0]


def round_qty(values: np.ndarray, decimals: int | None) -> np.ndarray:
    """Round quantities to the plan's rounding mode (int64 for ``int``)."""
    values = np.asarray(values, dtype=np.float64)
    if decimals is None:
        return values
    if decimals == 0:
        return np.rint(values).astype(np.int64)
    return np.round(values, decimals)


def ceil_qty(values: np.ndarray, decimals: int | None) -> np.ndarray:
    """Round quantities up to the plan's rounding mode (used for requirements with scrap)."""
    values = np.asarray(values, dtype=np.float64)
    if decimals is None:
        return values
    scale = 10**decimals
    up = np.ceil(values * scale - _EPS) / scale
    return up.astype(np.int64) if decimals == 0 else up
