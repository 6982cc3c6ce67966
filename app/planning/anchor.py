"""Cutover zones and the anchor policy between the detail and aggregate levels (SPEC 3.6).

Owns the near/at/far zoning of weeks and buckets around ``cutover_date``, the three anchor policies
(``DET_near``, ``AGG_far``, ``blend``) applied to demand and supply, the carryover of residuals that
locked cells leave, and the ``anchor_log``. Must not do I/O.

Zoning is by whole ISO week: a week is ``at`` when it overlaps the window of ``ceil(recon_window_days
/ 7)`` weeks on either side of D (``[D - 7n, D + 7n - 1]``), otherwise ``near`` when it ends before D
and ``far`` when it does not (so with a zero window the week containing D is far). A bucket takes
its week's zone; "at buckets before D" are the at weeks that end before D.

Per policy, a (family, period) row's cells are kept (detail value), blended (at, ``blend`` only) or
re-apportioned to a target; the new aggregate row is:

- ``DET_near``: kept = near + at; target of the far cells = the aggregate's share of them (its
  allocation); aggregate = roll-up of the kept cells + that share.
- ``AGG_far``: kept = at weeks before D; target of the other cells = aggregate - roll-up of the kept
  cells; the aggregate is unchanged.
- ``blend``: kept = near; at cells = w * detail + (1 - w) * aggregate share (w from 1 at the window's
  first week to 0 at its last, 0.5 for a one-week window); far cells take the aggregate's share;
  aggregate = roll-up of near and at cells + the far share.

Re-apportioned rows whose target equals the aggregate's own share and which hold no locked cell take
that share unchanged, so an unedited plan passes through untouched. Locked cells always keep their
value; what they keep a row from reaching is its residual, carried one hop to a neighbouring period
of the same family per ``carryover`` or reported. ``anchor_policy=None`` means no anchoring.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.planning.aggregate import rebalance_aggregate
from app.planning.allocate import (
    MEASURES,
    DetailLayout,
    Locks,
    SkuStock,
    rollup,
    split_supply_by_need,
    split_to_detail,
)
from app.planning.apportion import apportion
from app.planning.documents import num, num_list
from app.planning.model import AggregateResult, AllocationResult, Calendar, PlanInputs, PlanParams

ZONES = ("near", "at", "far")


@dataclass(frozen=True)
class _Cells:
    """Per-bucket roles under one policy."""

    keep: np.ndarray  # [B] bool: detail value kept
    blend: np.ndarray  # [B] bool: blended (blend policy, at buckets)
    target: np.ndarray  # [B] bool: re-apportioned to a target
    blend_weight: np.ndarray  # [B] w of the detail in blended buckets


@dataclass(frozen=True)
class _Context:
    """What every step of one anchoring run reads."""

    inputs: PlanInputs
    layout: DetailLayout
    params: PlanParams
    cells: _Cells
    zones: list[str | None]
    carry_score: np.ndarray  # [P] weighted free capacity for carryover=auto


def window_weeks(params: PlanParams) -> int:
    """The reconciliation window in whole weeks (rounded up)."""
    return max(0, math.ceil(max(0, params.recon_window_days) / 7))


def week_zones(calendar: Calendar, params: PlanParams) -> list[str | None]:
    """near|at|far per ISO week of the calendar, or all None without a cutover date."""
    if not params.cutover_date:
        return [None] * calendar.n_weeks
    cutover = dt.date.fromisoformat(params.cutover_date)
    span = dt.timedelta(days=7 * window_weeks(params))
    first, last = cutover - span, cutover + span - dt.timedelta(days=1)
    zones: list[str | None] = []
    for w in range(calendar.n_weeks):
        start = calendar.week_start(w)
        end = start + dt.timedelta(days=6)
        if span and start <= last and end >= first:
            zones.append("at")
        else:
            zones.append("near" if end < cutover else "far")
    return zones


def bucket_zones(calendar: Calendar, params: PlanParams) -> list[str | None]:
    """near|at|far per bucket (its week's zone), or all None without a cutover date."""
    weeks = week_zones(calendar, params)
    return [weeks[int(w)] for w in calendar.bucket_week_idx]


def boundary_summary(calendar: Calendar, params: PlanParams) -> dict[str, Any] | None:
    """Cutover date, window and bucket counts per zone; None without a cutover date."""
    if not params.cutover_date:
        return None
    zones = bucket_zones(calendar, params)
    return {
        "cutover_date": params.cutover_date,
        "window_days": params.recon_window_days,
        "window_weeks": window_weeks(params),
        **{f"{z}_buckets": zones.count(z) for z in ZONES},
    }


def apply_anchor(
    inputs: PlanInputs,
    agg: AggregateResult,
    alloc: AllocationResult,
    params: PlanParams,
    locks: Locks | None = None,
) -> tuple[AggregateResult, AllocationResult, list[dict[str, Any]]]:
    """Anchor the detail and aggregate levels around the cutover; returns them with the anchor log.

    Without a cutover or a policy the detail stays as it is. Either way the returned aggregate's demand
    and supply rows are the roll-up of the returned detail, its inventory and backlog rebalanced from
    them, so a plan whose detail holds a planner's decisions is one plan at both levels."""
    if not params.cutover_date or not params.anchor_policy:
        return follow_detail(inputs, agg, alloc, params)
    ctx = _context(inputs, agg, params)
    log: list[dict[str, Any]] = []
    details: dict[str, np.ndarray] = {}
    for measure in ("demand", "supply"):
        lock = (locks or {}).get(measure)
        split = _splitter(ctx, measure, details.get("demand"))
        details[measure], measure_log = _anchor_measure(
            ctx, measure, getattr(agg, measure), getattr(alloc, measure), lock, split
        )
        log += measure_log
    anchored = AllocationResult(details["demand"], details["supply"], alloc.backlog)
    new_agg, new_alloc, rolled = follow_detail(inputs, agg, anchored, params)
    log += _detail_log(ctx, "backlog", alloc.backlog, new_alloc.backlog, None)
    return new_agg, new_alloc, log + rolled


def follow_detail(
    inputs: PlanInputs, agg: AggregateResult, alloc: AllocationResult, params: PlanParams
) -> tuple[AggregateResult, AllocationResult, list[dict[str, Any]]]:
    """The aggregate whose demand and supply rows are the roll-up of ``alloc`` (inventory and backlog
    rebalanced, the detail backlog re-spread where a row's backlog changed) and a log row per changed
    aggregate cell; ``agg`` and ``alloc`` themselves when they already agree."""
    layout = DetailLayout.from_inputs(inputs)
    dec = params.decimals
    totals = {m: rollup(layout, getattr(alloc, m), dec) for m in ("demand", "supply")}
    if not any(_differs(totals[m], getattr(agg, m), dec).any() for m in totals):
        return agg, alloc, []
    new_agg = rebalance_aggregate(inputs, agg, totals["demand"], totals["supply"], params)
    backlog = _respread_backlog(layout, dec, agg.backlog, new_agg.backlog, alloc.backlog)
    return (
        new_agg,
        AllocationResult(alloc.demand, alloc.supply, backlog),
        _aggregate_log(inputs, params, agg, new_agg),
    )


# --------------------------------------------------------------------------------------------------
# Policy cells


def _context(inputs: PlanInputs, agg: AggregateResult, params: PlanParams) -> _Context:
    zones = bucket_zones(inputs.calendar, params)
    free = np.maximum(0.0, np.asarray(agg.capacity_total, float) - np.asarray(agg.capacity_used, float))
    score = free.copy()
    if inputs.period_score is not None:
        score = score * np.asarray(inputs.period_score, dtype=np.float64)
    if inputs.period_cost is not None:
        cost = np.asarray(inputs.period_cost, dtype=np.float64)
        score = score / np.where(cost > 0, cost, 1.0)
    cells = _policy_cells(inputs.calendar, zones, params)
    return _Context(inputs, DetailLayout.from_inputs(inputs), params, cells, zones, score)


def _policy_cells(calendar: Calendar, zones: list[str | None], params: PlanParams) -> _Cells:
    z = np.array(zones, dtype=object)
    near, at, far = (z == "near"), (z == "at"), (z == "far")
    cutover = dt.date.fromisoformat(str(params.cutover_date))
    week_end = np.array(
        [calendar.week_start(int(w)) + dt.timedelta(days=6) for w in calendar.bucket_week_idx]
    )
    before = np.array([e < cutover for e in week_end], dtype=bool)
    none = np.zeros(len(zones), dtype=bool)
    weight = _blend_weights(calendar, at)
    if params.anchor_policy == "DET_near":
        return _Cells(near | at, none, far, weight)
    if params.anchor_policy == "AGG_far":
        keep = at & before
        return _Cells(keep, none, ~keep, weight)
    if params.anchor_policy == "blend":
        return _Cells(near, at, far, weight)
    raise ValueError(f"unknown anchor_policy {params.anchor_policy!r}")


def _blend_weights(calendar: Calendar, at: np.ndarray) -> np.ndarray:
    """w per bucket: 1 at the first at week, falling linearly to 0 at the last (0.5 for one week)."""
    at_weeks = np.unique(calendar.bucket_week_idx[at])
    weight = np.zeros(calendar.n_buckets)
    if len(at_weeks) == 0:
        return weight
    pos = np.searchsorted(at_weeks, calendar.bucket_week_idx[at])
    weight[at] = 0.5 if len(at_weeks) == 1 else 1.0 - pos / (len(at_weeks) - 1)
    return weight


# --------------------------------------------------------------------------------------------------
# One measure


Split = Callable[..., tuple[np.ndarray, np.ndarray]]


def _splitter(ctx: _Context, measure: str, demand: np.ndarray | None) -> Split:
    """How a measure's rows are split to the detail: demand by mix share; supply by the SKUs' net
    requirement against the (anchored) demand detail, as allocation splits it (SPEC 3.2), so anchoring
    an unedited plan changes nothing and never hands a SKU surplus while a sibling is short.

    ``split(totals, cells=None, locked=None, values=None, outside=None)``: ``outside`` holds the values
    of the cells not in ``cells`` (the kept ones), which the supply split counts in the SKUs' stock."""
    lay, dec = ctx.layout, ctx.params.decimals
    if measure != "supply":
        return lambda totals, cells=None, locked=None, values=None, outside=None: split_to_detail(
            lay, totals, dec, cells=cells, locked=locked, values=values
        )
    assert demand is not None
    stock = SkuStock.from_inputs(ctx.inputs, ctx.params)

    def split(totals, cells=None, locked=None, values=None, outside=None):  # type: ignore[no-untyped-def]
        if cells is None:
            return split_supply_by_need(lay, totals, demand, stock, dec, locked=locked, values=values)
        shape = demand.shape
        cells = np.broadcast_to(cells, shape)
        kept = np.where(cells, 0, np.zeros(shape) if outside is None else outside)
        held = (cells & (np.zeros(shape, bool) if locked is None else locked)) | ~cells
        fixed = np.where(cells, 0 if values is None else values, kept)
        detail, residual = split_supply_by_need(
            lay, _on_grid(np.asarray(totals) + rollup(lay, kept, dec), dec), demand, stock, dec,
            locked=held, values=fixed,
        )  # fmt: skip
        return _on_grid(np.where(cells, detail, 0), dec), residual

    return split


def _anchor_measure(
    ctx: _Context,
    measure: str,
    agg_row: np.ndarray,
    detail: np.ndarray,
    lock: tuple[np.ndarray, np.ndarray] | None,
    split: Split,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """New detail [S, B] and log rows for demand or supply."""
    dec, cells = ctx.params.decimals, ctx.cells
    mask = np.zeros(detail.shape, dtype=bool) if lock is None else np.asarray(lock[0], dtype=bool)
    current = _on_grid(detail if lock is None else np.where(mask, lock[1], detail), dec)
    share, _ = split(agg_row)
    share = _on_grid(share, dec)
    fixed = np.where(cells.keep[None, :], current, 0) + _blend(current, share, cells, mask, dec)
    target = _target(ctx, agg_row, share, fixed)
    placed, incoming, log = _place(ctx, measure, target, share, mask, current, fixed, split)
    new_detail = _on_grid(fixed + placed, dec)
    return new_detail, _detail_log(ctx, measure, detail, new_detail, incoming) + log


def _place(
    ctx: _Context,
    measure: str,
    target: np.ndarray,
    share: np.ndarray,
    mask: np.ndarray,
    current: np.ndarray,
    fixed: np.ndarray,
    split_rows: Split,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Detail of the re-apportioned cells, residual carried in [F, P], and the carryover log.

    Rows whose target is the aggregate's own share and hold no lock take that share as it is.
    """
    lay, dec, in_target = ctx.layout, ctx.params.decimals, ctx.cells.target[None, :]
    own = np.where(in_target, share, 0)
    own_rows = rollup(lay, own, dec)
    locked_rows = rollup(lay, (mask & in_target).astype(np.int64), 0) > 0
    incoming = np.zeros_like(target)
    if not (_differs(target, own_rows, dec) | locked_rows).any():
        return own, incoming, []

    def split(goal: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        resplit = _differs(goal, own_rows, dec) | locked_rows
        placed, residual = split_rows(goal, cells=in_target, locked=mask, values=current, outside=fixed)
        placed = np.where(resplit.reshape(-1)[lay.cell_row()], placed, own)
        return placed, np.where(resplit & _differs(residual, 0, dec), residual, 0), goal

    placed, residual, goal = split(target)
    outgoing, incoming, log = _carry(ctx, measure, residual, target)
    if incoming.any():
        placed, residual, goal = split(_on_grid(target + incoming, dec))
    return placed, incoming, log + _residual_log(ctx, measure, residual - outgoing, goal)


def _blend(
    current: np.ndarray, share: np.ndarray, cells: _Cells, mask: np.ndarray, dec: int | None
) -> np.ndarray:
    w = cells.blend_weight[None, :]
    mixed = _on_grid(share + w * (current - share), dec)
    return np.where(cells.blend[None, :], np.where(mask, current, mixed), 0)


def _target(ctx: _Context, agg_row: np.ndarray, share: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """[F, P] total the re-apportioned cells of each row should reach (may be negative)."""
    dec = ctx.params.decimals
    if ctx.params.anchor_policy == "AGG_far":
        return _on_grid(agg_row - rollup(ctx.layout, kept, dec), dec)
    return rollup(ctx.layout, np.where(ctx.cells.target[None, :], share, 0), dec)


# --------------------------------------------------------------------------------------------------
# Carryover


def _carry(
    ctx: _Context, measure: str, residual: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """(outgoing [F, P], incoming [F, P], log) of residuals moved one hop to a neighbouring period."""
    dec, n_per = ctx.params.decimals, residual.shape[1]
    to_next_frac, carried = _carry_direction(ctx, n_per)
    moving = np.where(carried[None, :], residual, 0)
    magnitude = np.abs(moving).reshape(-1).astype(np.float64)
    frac = np.broadcast_to(to_next_frac[None, :], residual.shape).reshape(-1)
    parts = apportion(magnitude, np.stack([1.0 - frac, frac], axis=1), dec)
    sign = np.sign(moving).reshape(-1)
    to_prev = _on_grid((parts[:, 0] * sign).reshape(residual.shape), dec)
    to_next = _on_grid((parts[:, 1] * sign).reshape(residual.shape), dec)
    incoming = np.zeros_like(to_prev)
    incoming[:, 1:] += to_next[:, :-1]
    incoming[:, :-1] += to_prev[:, 1:]
    log = [
        _family_row(
            ctx,
            f,
            p,
            measure,
            target[f, p],
            target[f, p] - moving[f, p],
            reason,
        )
        for f, p in zip(*np.nonzero(moving), strict=True)
        for reason in [_carry_reason(ctx, moving[f, p], to_prev[f, p], to_next[f, p], p)]
    ]
    return _on_grid(moving, dec), _on_grid(incoming, dec), log


def _carry_direction(ctx: _Context, n_per: int) -> tuple[np.ndarray, np.ndarray]:
    """(share of a residual sent to the next period [P], whether a period's residual moves [P])."""
    mode = ctx.params.carryover
    has_prev = np.arange(n_per) > 0
    has_next = np.arange(n_per) < n_per - 1
    if mode == "next":
        return np.ones(n_per), has_next
    if mode == "prev":
        return np.zeros(n_per), has_prev
    if mode == "both":
        frac = np.full(n_per, float(ctx.params.carryover_split))
    elif mode == "auto":
        score = ctx.carry_score
        nxt = np.append(score[1:], -np.inf)
        prv = np.insert(score[:-1], 0, -np.inf)
        frac = (nxt >= prv).astype(np.float64)
    else:
        return np.zeros(n_per), np.zeros(n_per, dtype=bool)
    frac = np.where(has_next, np.where(has_prev, frac, 1.0), 0.0)
    return frac, has_prev | has_next


def _carry_reason(ctx: _Context, amount: float, to_prev: float, to_next: float, p: int) -> str:
    periods = ctx.inputs.calendar.periods
    moves = []
    if to_prev:
        moves.append(f"{num(to_prev)} to {periods[p - 1]}")
    if to_next:
        moves.append(f"{num(to_next)} to {periods[p + 1]}")
    return f"locked cells leave a residual of {num(amount)}; carried ({ctx.params.carryover}): {', '.join(moves)}"


# --------------------------------------------------------------------------------------------------
# Backlog and log


def _respread_backlog(
    layout: DetailLayout, decimals: int | None, old_row: np.ndarray, new_row: np.ndarray, detail: np.ndarray
) -> np.ndarray:
    """Detail backlog re-spread from the new aggregate where a row's backlog changed."""
    changed = _differs(old_row, new_row, decimals)
    if not changed.any():
        return detail
    spread, _ = split_to_detail(layout, new_row, decimals)
    return np.where(changed.reshape(-1)[layout.cell_row()], spread, detail)


def _detail_log(
    ctx: _Context, measure: str, before: np.ndarray, after: np.ndarray, incoming: np.ndarray | None
) -> list[dict[str, Any]]:
    """One log row per changed cell, built column-wise (edits can touch many cells)."""
    cal, inputs = ctx.inputs.calendar, ctx.inputs
    s_idx, b_idx = np.nonzero(_differs(before, after, ctx.params.decimals))
    if len(s_idx) == 0:
        return []
    f_idx = ctx.layout.sku_family[s_idx]
    p_idx = cal.bucket_period_idx[b_idx]
    carried = np.zeros(len(s_idx), dtype=bool) if incoming is None else incoming[f_idx, p_idx] != 0
    reasons = {
        (b, c): _cell_reason(ctx, b, measure, c) for b in np.unique(b_idx).tolist() for c in (False, True)
    }
    columns = zip(
        np.asarray(inputs.families, dtype=object)[f_idx].tolist(),
        np.asarray(cal.periods, dtype=object)[p_idx].tolist(),
        np.asarray(inputs.skus, dtype=object)[s_idx].tolist(),
        np.asarray([bk.week for bk in cal.buckets], dtype=object)[b_idx].tolist(),
        num_list(before[s_idx, b_idx]),
        num_list(after[s_idx, b_idx]),
        [reasons[key] for key in zip(b_idx.tolist(), carried.tolist(), strict=True)],
        strict=True,
    )
    policy = str(ctx.params.anchor_policy)
    return [
        {
            "family": fam,
            "period": per,
            "sku": sku,
            "week": week,
            "measure": measure,
            "before": old,
            "after": new,
            "policy": policy,
            "reason": why,
        }
        for fam, per, sku, week, old, new, why in columns
    ]


def _cell_reason(ctx: _Context, b: int, measure: str, carried: bool) -> str:
    zone, cells = ctx.zones[b], ctx.cells
    if measure == "backlog":
        return "backlog re-spread from the anchored aggregate"
    if cells.keep[b]:
        return f"{zone}: detail kept"
    if cells.blend[b]:
        return f"{zone}: blend w={cells.blend_weight[b]:.2f} of detail and aggregate share"
    reason = f"{zone}: re-apportioned to the aggregate"
    return reason + " with carryover" if carried else reason


def _residual_log(
    ctx: _Context, measure: str, residual: np.ndarray, target: np.ndarray
) -> list[dict[str, Any]]:
    return [
        _family_row(
            ctx,
            f,
            p,
            measure,
            target[f, p],
            target[f, p] - residual[f, p],
            f"locked cells leave a residual of {num(residual[f, p])} (carryover {ctx.params.carryover})",
        )
        for f, p in zip(*np.nonzero(residual), strict=True)
    ]


_AGGREGATE_REASON = {
    "DET_near": "aggregate = detail roll-up of near/at buckets + aggregate share of far buckets",
    "blend": "aggregate = roll-up of near and blended at buckets + aggregate share of far buckets",
    "AGG_far": "aggregate kept but for what locked cells hold beyond it or carry in from a neighbour",
    None: "aggregate = roll-up of the detail with the planner's edits (no anchor policy)",
}


def _aggregate_log(
    inputs: PlanInputs, params: PlanParams, old: AggregateResult, new: AggregateResult
) -> list[dict[str, Any]]:
    policy = params.anchor_policy if params.cutover_date else None
    reason = _AGGREGATE_REASON[policy]
    rows = []
    for measure in MEASURES:
        before, after = getattr(old, measure), getattr(new, measure)
        note = reason if measure != "backlog" else "backlog rebalanced from the detail's demand and supply"
        for f, p in zip(*np.nonzero(_differs(before, after, params.decimals)), strict=True):
            rows.append(
                _row(inputs, policy, int(f), int(p), None, None, measure, before[f, p], after[f, p], note)
            )
    return rows


def _family_row(
    ctx: _Context, f: int, p: int, measure: str, before: Any, after: Any, reason: str
) -> dict[str, Any]:
    """A log row of a (family, period) rather than a detail cell."""
    return _row(ctx.inputs, ctx.params.anchor_policy, f, p, None, None, measure, before, after, reason)


def _row(
    inputs: PlanInputs,
    policy: str | None,
    f: int,
    p: int,
    s: int | None,
    b: int | None,
    measure: str,
    before: Any,
    after: Any,
    reason: str,
) -> dict[str, Any]:
    return {
        "family": inputs.families[int(f)],
        "period": inputs.calendar.periods[int(p)],
        "sku": None if s is None else inputs.skus[s],
        "week": None if b is None else inputs.calendar.buckets[b].week,
        "measure": measure,
        "before": num(before),
        "after": num(after),
        "policy": policy or "none",
        "reason": reason,
    }


def _differs(a: np.ndarray, b: np.ndarray | float, decimals: int | None) -> np.ndarray:
    """Element-wise inequality; unrounded quantities compare up to float noise."""
    if decimals is not None:
        return np.asarray(a) != b
    return ~np.isclose(a, b, rtol=1e-12, atol=1e-9)


def _on_grid(values: np.ndarray, decimals: int | None) -> np.ndarray:
    values = np.asarray(values)
    if decimals == 0:
        return np.rint(values).astype(np.int64) if values.dtype.kind == "f" else values.astype(np.int64)
    values = values.astype(np.float64)
    return values if decimals is None else np.round(values, decimals)
