"""Rough-cut aggregate plan: family x month supply against capacity (SPEC 3.1).

Owns the month-by-month S&OP plan of the families: need from demand, backlog and safety stock, the
capacity check (pooled, or per workcenter with a routing), prebuild into earlier months and the
one-factor scaling with largest-remainder rounding.

Inventory and backlog of a row are the two signs of one cumulative net position per family,
``N_t = on_hand + sum_{s<=t} (supply_s - demand_s)``: ``inventory_close = max(0, N_t)`` and
``backlog = max(0, -N_t)``. Hence the row identity ``inventory_close - backlog = inventory_open -
backlog_in + supply - demand`` holds by construction, backlog is unserved demand only (a safety stock
top-up that capacity could not build is a low closing inventory, not backlog), and stock built ahead
(prebuild) first serves whatever is still owed. Must not do I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.planning.apportion import apportion_one, round_qty
from app.planning.model import AggregateResult, PlanInputs, PlanParams

_TOL = 1e-9


@dataclass
class AggregateTrace:
    """The aggregate plan plus the working figures the rows do not show (for checks and tests)."""

    result: AggregateResult
    need: np.ndarray  # [F, P] need of each month as first computed, before any prebuild for it
    pulled: np.ndarray  # [F, P] part of each month's need built in earlier months
    load: np.ndarray  # [W, P] load placed per workcenter (one pooled row without a routing)


def plan_aggregate(inputs: PlanInputs, params: PlanParams) -> AggregateResult:
    """The family x month aggregate plan of SPEC 3.1."""
    return trace_aggregate(inputs, params).result


def trace_aggregate(inputs: PlanInputs, params: PlanParams) -> AggregateTrace:
    """Plan month by month and keep the need, prebuild origin and workcenter load."""
    dec = params.decimals
    demand = _quantize(round_qty(inputs.demand, dec), dec)
    n_fam, n_per = demand.shape
    on_hand = _quantize(family_total(inputs, inputs.on_hand[: inputs.n_fg]), dec)
    safety = _quantize(family_total(inputs, inputs.item_safety_stock[: inputs.n_fg]), dec)
    routing, capacity = load_model(inputs)
    supply = np.zeros((n_fam, n_per))
    prebuild = np.zeros((n_fam, n_per))
    need = np.zeros((n_fam, n_per))
    pulled = np.zeros((n_fam, n_per))
    used = np.zeros_like(capacity)
    position = on_hand.copy()  # cumulative net position before month t
    for t in range(n_per):
        need[:, t] = _quantize(np.maximum(0.0, demand[:, t] + safety - position), dec)
        free_t = np.maximum(0.0, capacity[:, t] - used[:, t])
        excess = need[:, t] - fit_to_capacity(need[:, t], routing, free_t, dec)
        for s in range(t - 1, max(0, t - params.prebuild_months) - 1, -1):
            if excess.sum() <= _TOL:
                break
            moved = fit_to_capacity(excess, routing, np.maximum(0.0, capacity[:, s] - used[:, s]), dec)
            supply[:, s] += moved
            prebuild[:, s] += moved
            used[:, s] += moved @ routing
            excess = _quantize(excess - moved, dec)
            pulled[:, t] += moved
        served = fit_to_capacity(_quantize(need[:, t] - pulled[:, t], dec), routing, free_t, dec)
        supply[:, t] += served
        used[:, t] += served @ routing
        position = _quantize(position + pulled[:, t] + served - demand[:, t], dec)
    result = _result(inputs, on_hand, demand, supply, prebuild, used, dec)
    return AggregateTrace(result, _cast(need, dec), _cast(pulled, dec), used)


def rebalance_aggregate(
    inputs: PlanInputs, agg: AggregateResult, demand: np.ndarray, supply: np.ndarray, params: PlanParams
) -> AggregateResult:
    """The aggregate with new demand and supply rows: inventory, backlog and load recomputed.

    Opening inventory of the first month, prebuild and capacity stay as they were.
    """
    dec = params.decimals
    routing, _ = load_model(inputs)
    d = _quantize(np.asarray(demand, dtype=np.float64), dec)
    s = _quantize(np.asarray(supply, dtype=np.float64), dec)
    inv_open, inv_close, backlog = balance_rows(agg.inventory_open[:, 0].astype(np.float64), d, s, dec)
    used = (s.T @ routing).sum(axis=1)
    return AggregateResult(
        demand=_cast(d, dec),
        supply=_cast(s, dec),
        backlog=_cast(backlog, dec),
        inventory_open=_cast(inv_open, dec),
        inventory_close=_cast(inv_close, dec),
        prebuild=agg.prebuild.copy(),
        capacity_total=agg.capacity_total.copy(),
        capacity_used=_capacity_figure(used),
        unserved_end=_cast(backlog[:, -1], dec),
    )


def family_total(inputs: PlanInputs, per_sku: np.ndarray) -> np.ndarray:
    """Sum a per-SKU quantity over each family's SKUs -> [F]."""
    return np.bincount(
        inputs.sku_family, weights=np.asarray(per_sku, dtype=np.float64), minlength=len(inputs.families)
    )


def load_model(inputs: PlanInputs) -> tuple[np.ndarray, np.ndarray]:
    """(load per unit [F, W], capacity [W, P]); without a routing one pooled workcenter loaded 1:1."""
    if inputs.routing is None:
        pooled = np.asarray(inputs.capacity, dtype=np.float64).sum(axis=0, keepdims=True)
        return np.ones((len(inputs.families), 1)), pooled
    return np.asarray(inputs.routing, dtype=np.float64), np.asarray(inputs.capacity, dtype=np.float64)


def fit_to_capacity(
    need: np.ndarray, routing: np.ndarray, free: np.ndarray, decimals: int | None
) -> np.ndarray:
    """What of ``need[F]`` the free capacity ``free[W]`` can build.

    All of it when it fits; otherwise every family is scaled by one factor (the tightest
    capacity/load ratio) and the servable total is apportioned by largest remainder with the needs as
    weights. A unit rounded up onto a workcenter that then overflows is taken back, so the load never
    exceeds ``free``.
    """
    load = need @ routing
    loaded = load > _TOL
    if not loaded.any() or np.all(load[loaded] <= free[loaded] + _tol(free[loaded])):
        return need.copy()
    factor = max(0.0, float(np.min(free[loaded] / load[loaded])))
    quota = need * factor
    if decimals is None:
        return quota
    scale = 10**decimals
    total = np.floor(quota.sum() * scale + 1e-6) / scale
    served = apportion_one(total, need, decimals).astype(np.float64)
    if np.all(served @ routing <= free + _tol(free)):
        return served
    served = _trim_overload(served, quota, routing, free, 1.0 / scale, decimals)
    return _refill(served, quota, need, routing, free, 1.0 / scale, total, decimals)


def balance_rows(
    on_hand: np.ndarray, demand: np.ndarray, supply: np.ndarray, decimals: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inventory_open, inventory_close, backlog) [F, P] from the cumulative net position."""
    position = _quantize(on_hand[:, None] + np.cumsum(supply - demand, axis=1), decimals)
    close = np.maximum(position, 0.0)
    backlog = np.maximum(-position, 0.0)
    inv_open = np.concatenate([on_hand[:, None], close[:, :-1]], axis=1)
    return inv_open, close, backlog


def _trim_overload(
    served: np.ndarray,
    quota: np.ndarray,
    routing: np.ndarray,
    free: np.ndarray,
    unit: float,
    decimals: int | None,
) -> np.ndarray:
    """Take units back from the most rounded-up family on an overloaded workcenter until all fit."""
    while True:
        over = served @ routing - free - _tol(free)
        w = int(np.argmax(over))
        if over[w] <= 0:
            return served
        candidates = (routing[:, w] > 0) & (served >= unit - _TOL)
        i = int(np.argmax(np.where(candidates, served - quota, -np.inf)))
        served[i] = _quantize(served[i] - unit, decimals)


def _refill(
    served: np.ndarray,
    quota: np.ndarray,
    need: np.ndarray,
    routing: np.ndarray,
    free: np.ndarray,
    unit: float,
    total: float,
    decimals: int | None,
) -> np.ndarray:
    """After trimming, give single units back (largest remainder first) where they still fit."""
    for i in np.argsort(-(quota - served), kind="stable"):
        if served.sum() >= total - _TOL:
            break
        trial = served @ routing + unit * routing[i]
        if served[i] + unit <= need[i] + _TOL and np.all(trial <= free + _tol(free)):
            served[i] = _quantize(served[i] + unit, decimals)
    return served


def _result(
    inputs: PlanInputs,
    on_hand: np.ndarray,
    demand: np.ndarray,
    supply: np.ndarray,
    prebuild: np.ndarray,
    used: np.ndarray,
    dec: int | None,
) -> AggregateResult:
    supply = _quantize(supply, dec)
    inv_open, inv_close, backlog = balance_rows(on_hand, demand, supply, dec)
    return AggregateResult(
        demand=_cast(demand, dec),
        supply=_cast(supply, dec),
        backlog=_cast(backlog, dec),
        inventory_open=_cast(inv_open, dec),
        inventory_close=_cast(inv_close, dec),
        prebuild=_cast(prebuild, dec),
        capacity_total=_capacity_figure(np.asarray(inputs.capacity, dtype=np.float64).sum(axis=0)),
        capacity_used=_capacity_figure(used.sum(axis=0)),
        unserved_end=_cast(backlog[:, -1], dec),
    )


def _tol(values: np.ndarray) -> np.ndarray:
    return _TOL * np.maximum(1.0, np.abs(values))


def _quantize(values: np.ndarray, decimals: int | None) -> np.ndarray:
    """Float quantities kept on the mode's grid (removes float noise from sums)."""
    values = np.asarray(values, dtype=np.float64)
    return values if decimals is None else np.round(values, decimals)


def _cast(values: np.ndarray, decimals: int | None) -> np.ndarray:
    """int64 in int mode, float64 on the mode's grid otherwise."""
    values = _quantize(values, decimals)
    return values.astype(np.int64) if decimals == 0 else values


def _capacity_figure(values: np.ndarray) -> np.ndarray:
    """Capacity figures stay float64 (routings may be fractional); float noise is rounded away."""
    return np.round(np.asarray(values, dtype=np.float64), 9)
