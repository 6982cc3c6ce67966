"""Capacity reconciliation (SPEC 3.4): make the MRP plan's finished-goods receipts fit weekly capacity.

Owns weekly capacity (monthly capacity split over buckets by calendar weight), the week-by-week relief
of overloaded weeks (prebuild into the latest earlier weeks with free capacity within
``prebuild_weeks``, else spill into the following weeks, else ``unplaced``) and the re-netting of
components from the adjusted finished-goods releases through :func:`run_mrp`.

Loads are measured per workcenter: with routing a unit of a family loads each workcenter by its
``units_per_unit``; without routing every unit loads one pooled workcenter 1:1. The weekly figures it
reports (capacity, loads, moves) are pooled, i.e. summed over workcenters. ``spill_out`` counts all
load leaving a week (to earlier weeks, to later weeks or unplaced), so that per week
``adjusted_load = original_load + prebuild_in + spill_in - spill_out``.

Pure numpy: must not import database, web or file code, nor build artifact rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.planning.apportion import round_qty
from app.planning.model import CapacityResult, MrpResult, PlanInputs, PlanParams
from app.planning.mrp import lot_rules, run_mrp

_TOL = 1e-9
#: Relief rounds per overloaded week before everything loading a still-overloaded workcenter moves out.
_RELIEF_ROUNDS = 25
#: Filling rounds per destination week (the second uses what whole-lot rounding left free).
_FILL_ROUNDS = 2


def weekly_capacity(inputs: PlanInputs) -> np.ndarray:
    """Capacity per workcenter and ISO week ``[W, Wk]``: each bucket gets its month's capacity x its
    weight share within the month; a split week sums its parts from both months."""
    cal = inputs.calendar
    month_weight = np.zeros(cal.n_periods, dtype=np.float64)
    np.add.at(month_weight, cal.bucket_period_idx, cal.bucket_weight)
    denom = month_weight[cal.bucket_period_idx]
    share = np.divide(cal.bucket_weight, denom, out=np.zeros_like(denom), where=denom > 0)
    per_bucket = np.asarray(inputs.capacity, dtype=np.float64)[:, cal.bucket_period_idx] * share[None, :]
    weekly = np.zeros((per_bucket.shape[0], cal.n_weeks), dtype=np.float64)
    np.add.at(weekly.T, cal.bucket_week_idx, per_bucket.T)
    return weekly


def load_model(inputs: PlanInputs) -> tuple[np.ndarray, np.ndarray]:
    """``(unit_load[S, W], capacity[W, Wk])``: routing per workcenter, or one pooled workcenter at 1:1."""
    weekly = weekly_capacity(inputs)
    if inputs.routing is None:
        return np.ones((inputs.n_fg, 1)), weekly.sum(axis=0, keepdims=True)
    return np.asarray(inputs.routing, dtype=np.float64)[inputs.sku_family], weekly


def _tol(values: np.ndarray) -> np.ndarray:
    return _TOL * np.maximum(1.0, np.abs(values))


def to_steps(values: np.ndarray, step: np.ndarray | float, up: bool, decimals: int | None) -> np.ndarray:
    """Round ``values`` up or down to multiples of ``step`` (0 = continuous), in the plan's dtype."""
    x = np.asarray(values, dtype=np.float64)
    step = np.asarray(step, dtype=np.float64)
    safe = np.where(step > 0, step, 1.0)
    n = np.ceil(x / safe - _TOL) if up else np.floor(x / safe + _TOL)
    return round_qty(np.where(step > 0, n * safe, x), decimals)


@dataclass(frozen=True)
class MoveGrid:
    """How finished-goods quantities may be cut: ``granule`` is the item's lot when > 1, else the
    plan's rounding unit (0 = continuous, in ``none`` mode)."""

    granule: np.ndarray
    decimals: int | None

    def take(self, idx: np.ndarray) -> MoveGrid:
        return MoveGrid(self.granule[idx], self.decimals)


def round_shares(
    share: np.ndarray, rest: np.ndarray, grid: MoveGrid
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Largest remainder in whole lots: floor each item's share to its granule, and rank the items
    that could take one more granule by descending remainder (ties: lower index first).

    Returns ``(base, piece, order)``: the floored quantities, the one extra piece per item (a granule,
    or what is left of ``rest``) and the ranking of the items with a non-zero remainder.
    """
    continuous = grid.granule <= 0
    granule = np.where(continuous, 1.0, grid.granule)
    count = np.floor(share / granule + _TOL)
    base = np.minimum(rest, to_steps(np.where(continuous, share, count * granule), 0.0, False, grid.decimals))
    remainder = np.where(continuous, 0.0, share / granule - count)
    piece = np.where(remainder > _TOL, np.minimum(granule, rest - base), 0)
    piece = to_steps(np.maximum(piece, 0), 0.0, False, grid.decimals)
    order = np.argsort(-remainder, kind="stable")
    return base, piece, order[piece[order] > 0]


def excess_to_move(receipt: np.ndarray, unit_load: np.ndarray, cap: np.ndarray, grid: MoveGrid) -> np.ndarray:
    """Quantity per item to move out of one week so that no workcenter exceeds ``cap[W]``.

    Each round takes the most overloaded workcenter and splits its excess over the items loading it in
    proportion to their share of that load; shares are rounded by largest remainder in whole lots
    (never beyond the item's receipt), taking just enough extra pieces to cover the excess. Further
    rounds fix other overloaded workcenters.
    """
    moved = np.zeros_like(receipt)
    for _ in range(_RELIEF_ROUNDS):
        rest = receipt - moved
        load = rest @ unit_load
        over = load - cap > _tol(cap)
        if not over.any():
            return moved
        ratio = np.where(over, np.maximum(cap, 0.0) / np.where(over, load, 1.0), np.inf)
        w = int(np.argmin(ratio))
        share = (1.0 - ratio[w]) * np.where(unit_load[:, w] > 0, rest, 0)
        base, piece, order = round_shares(share, rest, grid)
        deficit = load[w] - cap[w] - float(base @ unit_load[:, w])
        if deficit > _tol(cap[w]):
            cum = np.cumsum(piece[order] * unit_load[order, w])
            take = order[: int(np.searchsorted(cum, deficit - _tol(cap[w]))) + 1]
            base[take] += piece[take]
        moved = moved + base
    rest = receipt - moved
    over = rest @ unit_load - cap > _tol(cap)
    return moved + np.where((unit_load[:, over] > 0).any(axis=1), rest, 0)


def fill(bundle: np.ndarray, unit_load: np.ndarray, room: np.ndarray, grid: MoveGrid) -> np.ndarray:
    """How much of ``bundle`` fits into a week with free capacity ``room[W]``.

    Places the same fraction of every item, rounded down to whole lots, then adds extra pieces by
    largest remainder while they fit; a quantity that does not fit stays in the bundle for the next
    candidate week.
    """
    placed = np.zeros_like(bundle)
    for _ in range(_FILL_ROUNDS):
        rest = bundle - placed
        need = rest @ unit_load
        free = np.maximum(room - placed @ unit_load, 0.0)
        loaded = need > _tol(need)
        if not loaded.any():
            return bundle.copy()
        beta = min(1.0, float(np.min(free[loaded] / need[loaded])))
        if beta >= 1.0 - _TOL:
            return bundle.copy()
        base, piece, order = round_shares(beta * rest, rest, grid)
        left = free - base @ unit_load
        cum = np.cumsum(piece[order, None] * unit_load[order], axis=0)
        fits = np.all(cum <= left + _tol(room), axis=1)
        take = order[: int(np.argmin(fits)) if not fits.all() else order.size]
        base[take] += piece[take]
        if not np.any(base > 0):
            break
        placed = placed + base
    return placed


@dataclass
class _Reconciler:
    """Mutable state of one week-by-week reconciliation over the finished goods."""

    receipts: np.ndarray  # [S, Wk] adjusted FG receipts
    unit_load: np.ndarray  # [S, W]
    capacity: np.ndarray  # [W, Wk]
    grid: MoveGrid
    prebuild_weeks: int
    load: np.ndarray = field(init=False)  # [W, Wk]
    prebuild_in: np.ndarray = field(init=False)
    spill_in: np.ndarray = field(init=False)
    spill_out: np.ndarray = field(init=False)
    unplaced: np.ndarray = field(init=False)  # [S]

    def __post_init__(self) -> None:
        n_weeks = self.receipts.shape[1]
        self.load = self.unit_load.T @ self.receipts
        self.prebuild_in, self.spill_in, self.spill_out = (np.zeros(n_weeks) for _ in range(3))
        self.unplaced = np.zeros(self.receipts.shape[0], dtype=self.receipts.dtype)

    def relieve(self, t: int) -> None:
        """Move week t's excess out: to earlier weeks in the prebuild window, then later weeks."""
        cap = self.capacity[:, t]
        if not np.any(self.load[:, t] - cap > _tol(cap)):
            return
        items = np.nonzero(self.receipts[:, t] > 0)[0]
        moved = excess_to_move(self.receipts[items, t], self.unit_load[items], cap, self.grid.take(items))
        self.spill_out[t] += self._shift(items, -moved, t)
        for s in self._destinations(t):
            items, moved = items[moved > 0], moved[moved > 0]
            if not items.size:
                return
            placed = self._place(items, moved, s)
            if np.any(placed > 0):
                moved = moved - placed
                (self.prebuild_in if s < t else self.spill_in)[s] += self._shift(items, placed, s)
        self.unplaced[items] += moved

    def _destinations(self, t: int) -> list[int]:
        first = max(t - self.prebuild_weeks, 0)
        return list(range(t - 1, first - 1, -1)) + list(range(t + 1, self.receipts.shape[1]))

    def _place(self, items: np.ndarray, bundle: np.ndarray, s: int) -> np.ndarray:
        room = self.capacity[:, s] - self.load[:, s]
        if np.all(room <= _tol(self.capacity[:, s])):
            return np.zeros_like(bundle)
        unit_load = self.unit_load[items]
        loaded = bundle @ unit_load > _TOL
        if np.any(room[loaded] <= _tol(self.capacity[loaded, s])):
            return np.zeros_like(bundle)
        return fill(bundle, unit_load, room, self.grid.take(items))

    def _shift(self, items: np.ndarray, qty: np.ndarray, week: int) -> float:
        """Add ``qty`` to the items' receipts in ``week``; returns the pooled load moved."""
        self.receipts[items, week] += qty
        delta = qty @ self.unit_load[items]
        self.load[:, week] += delta
        return float(abs(delta.sum()))


def move_grid(inputs: PlanInputs, params: PlanParams) -> MoveGrid:
    """Finished goods move in whole lots when their lot is > 1, else in the plan's rounding unit."""
    unit = 0.0 if params.decimals is None else 10.0**-params.decimals
    lot = np.asarray(lot_rules(inputs, params).lot[: inputs.n_fg], dtype=np.float64)
    return MoveGrid(np.where(lot > 1, lot, unit), params.decimals)


def reconcile_capacity(
    inputs: PlanInputs,
    mrp: MrpResult,
    fg_gross: np.ndarray,
    params: PlanParams,
    week_zones: list[str | None] | None = None,
) -> CapacityResult:
    """Make finished-goods receipts fit weekly capacity, then re-net components (SPEC 3.4)."""
    n_fg, n_weeks = inputs.n_fg, inputs.calendar.n_weeks
    unit_load, capacity = load_model(inputs)
    original = mrp.planned_order_receipt[:n_fg]
    state = _Reconciler(
        original.copy(), unit_load, capacity, move_grid(inputs, params), params.prebuild_weeks
    )
    for t in range(n_weeks):
        state.relieve(t)
    receipts = round_qty(state.receipts, params.decimals).astype(original.dtype)
    adjusted = run_mrp(inputs, fg_gross, params, fg_receipts=receipts)
    unplaced = np.zeros(len(inputs.items), dtype=original.dtype)
    unplaced[:n_fg] = round_qty(state.unplaced, params.decimals)
    return CapacityResult(
        planned_order_receipt_adj=adjusted.planned_order_receipt,
        planned_order_release_adj=adjusted.planned_order_release,
        on_hand_end_adj=adjusted.on_hand_end,
        orders_adj=adjusted.orders,
        capacity=capacity.sum(axis=0),
        original_load=(unit_load.T @ original).sum(axis=0),
        adjusted_load=(unit_load.T @ receipts).sum(axis=0),
        prebuild_in=state.prebuild_in,
        spill_in=state.spill_in,
        spill_out=state.spill_out,
        unplaced=unplaced,
        past_due_adj=adjusted.past_due,
        zone=list(week_zones) if week_zones is not None else [None] * n_weeks,
        gross_req_adj=adjusted.gross_req,
    )
