"""Allocation of the family x month plan to SKU x bucket (SPEC 3.2).

Owns the two-stage largest-remainder split (family -> SKUs by mix share, SKU -> the month's buckets
by calendar weight) of demand and backlog, the split of supply by each SKU's own net requirement
(:func:`split_supply_by_need`: the S&OP supply becomes the finished goods' schedule), their variants
that honour locked cells and restricted target cells (used by PSI and by the anchor policy), and the
roll-up of detail back to family x month. Splits are vectorized over every (family, period) row at
once (supply month by month, since a month's need depends on the months before). Must not do I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.planning.apportion import apportion
from app.planning.model import AggregateResult, AllocationResult, PlanInputs, PlanParams

MEASURES = ("demand", "supply", "backlog")
#: ``{"demand"|"supply"|"backlog": (locked mask [S, B] bool, values [S, B])}``
Locks = dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class DetailLayout:
    """Index structure shared by every split: who belongs to which family and month."""

    n_families: int
    n_periods: int
    sku_family: np.ndarray  # [S]
    share: np.ndarray  # [S] mix share; even within a family whose shares are all zero
    members: np.ndarray  # [F, Smax] SKU indices of each family in ascending index order, -1 padded
    bucket_period: np.ndarray  # [B]
    period_buckets: np.ndarray  # [P, Bmax] bucket indices of each period in order, -1 padded
    weight: np.ndarray  # [B] calendar weight; 1 for every bucket of a period whose weights are all 0
    period_of_bucket: np.ndarray  # [B, P] one-hot, int64

    @classmethod
    def from_inputs(cls, inputs: PlanInputs) -> DetailLayout:
        cal = inputs.calendar
        n_fam, n_per = len(inputs.families), cal.n_periods
        fam = np.asarray(inputs.sku_family, dtype=np.int64)
        share = np.asarray(inputs.sku_share, dtype=np.float64)
        fam_share = np.bincount(fam, weights=share, minlength=n_fam)
        share = np.where(fam_share[fam] > 0, share, 1.0)
        weight = np.asarray(cal.bucket_weight, dtype=np.float64)
        per_weight = np.bincount(cal.bucket_period_idx, weights=weight, minlength=n_per)
        weight = np.where(per_weight[cal.bucket_period_idx] > 0, weight, 1.0)
        onehot = np.zeros((cal.n_buckets, n_per), dtype=np.int64)
        onehot[np.arange(cal.n_buckets), cal.bucket_period_idx] = 1
        return cls(
            n_families=n_fam,
            n_periods=n_per,
            sku_family=fam,
            share=share,
            members=_padded_groups(fam, n_fam),
            bucket_period=np.asarray(cal.bucket_period_idx, dtype=np.int64),
            period_buckets=_padded_groups(cal.bucket_period_idx, n_per),
            weight=weight,
            period_of_bucket=onehot,
        )

    @property
    def n_skus(self) -> int:
        return len(self.sku_family)

    def cell_row(self) -> np.ndarray:
        """[S, B] index ``family * P + period`` of the aggregate row each detail cell belongs to."""
        return self.sku_family[:, None] * self.n_periods + self.bucket_period[None, :]


def allocate_to_weeks(
    inputs: PlanInputs, agg: AggregateResult, params: PlanParams, locks: Locks | None = None
) -> AllocationResult:
    """Split demand, supply and month-end backlog of every aggregate row over SKU x bucket."""
    return allocate_with_residual(inputs, agg, params, locks)[0]


def allocate_with_residual(
    inputs: PlanInputs, agg: AggregateResult, params: PlanParams, locks: Locks | None = None
) -> tuple[AllocationResult, dict[str, np.ndarray]]:
    """:func:`allocate_to_weeks` plus, per measure, the residual [F, P] = aggregate - detail roll-up.

    The residual is non-zero only where locked cells keep a (family, period) from its total:
    negative when the locked values exceed it, positive when no unlocked cell can take the rest.
    """
    layout = DetailLayout.from_inputs(inputs)
    details: dict[str, np.ndarray] = {}
    residual: dict[str, np.ndarray] = {}
    for measure in MEASURES:
        locked, values = (locks or {}).get(measure, (None, None))
        if measure == "supply":
            details[measure], residual[measure] = split_supply_by_need(
                layout, agg.supply, details["demand"], SkuStock.from_inputs(inputs, params),
                params.decimals, locked=locked, values=values,
            )  # fmt: skip
            continue
        details[measure], residual[measure] = split_to_detail(
            layout, getattr(agg, measure), params.decimals, locked=locked, values=values
        )
    return AllocationResult(**details), residual


@dataclass(frozen=True)
class SkuStock:
    """What the supply split needs to know of each finished good's stock: opening on-hand [S], safety
    stock [S] and the open purchase orders due in each period [S, P] (a week's go to the period of
    its Monday, as the monthly KPIs count them)."""

    on_hand: np.ndarray
    safety_stock: np.ndarray
    scheduled: np.ndarray

    @classmethod
    def from_inputs(cls, inputs: PlanInputs, params: PlanParams) -> SkuStock:
        n_fg, cal = inputs.n_fg, inputs.calendar
        week_period = cal.week_period_index()
        scheduled = np.asarray(inputs.scheduled_receipts, dtype=np.float64).reshape(len(inputs.items), -1)[
            :n_fg
        ]
        per_period = np.zeros((n_fg, cal.n_periods))
        np.add.at(per_period.T, week_period, scheduled.T)
        dec = params.decimals
        return cls(
            on_hand=_on_grid(np.asarray(inputs.on_hand, dtype=np.float64)[:n_fg], dec).astype(np.float64),
            safety_stock=_on_grid(np.asarray(inputs.item_safety_stock, dtype=np.float64)[:n_fg], dec).astype(
                np.float64
            ),  # fmt: skip
            scheduled=_on_grid(per_period, dec).astype(np.float64),
        )


def split_supply_by_need(
    layout: DetailLayout,
    totals: np.ndarray,
    demand: np.ndarray,
    stock: SkuStock,
    decimals: int | None,
    *,
    locked: np.ndarray | None = None,
    values: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split the family supply ``totals[F, P]`` over SKU x bucket by each SKU's own net requirement
    (SPEC 3.2, ``docs/planning.md``) -> (detail [S, B], residual [F, P]).

    Month by month, a SKU's need is ``max(0, demand + safety stock - (projected stock + open orders
    due) - its locked supply)``, its projected stock being the opening on-hand plus what earlier months
    supplied and received less what they demanded. When the family's free supply does not cover the
    needs of its SKUs, it is shared by need (largest remainder), so none is built beyond its need while
    another is short; what is left once every need is met goes by mix share (the surplus the S&OP plan
    builds ahead, pre-build included). Each SKU's month then goes over its unlocked buckets by calendar
    weight, as demand does. Locked cells keep their values and count toward their row's total."""
    shape = (layout.n_skus, len(layout.bucket_period))
    locked = np.zeros(shape, dtype=bool) if locked is None else np.asarray(locked, dtype=bool)
    free = ~locked
    fixed = _on_grid(np.where(locked, 0 if values is None else values, 0), decimals)
    onehot = layout.period_of_bucket.astype(np.float64)
    fixed_sp = fixed @ onehot  # [S, P]
    demand_sp = np.asarray(demand, dtype=np.float64) @ onehot
    free_part = ((free * layout.weight[None, :]) @ onehot) > 0  # the SKU has an unlocked bucket that month
    rest = np.maximum(_on_grid(np.asarray(totals) - rollup(layout, fixed, decimals), decimals), 0)
    members, fam = layout.members, layout.sku_family
    valid = members >= 0
    safe = np.where(valid, members, 0)
    sku_period = np.zeros((layout.n_skus, layout.n_periods))
    projected = stock.on_hand.copy()
    for p in range(layout.n_periods):
        available = projected + stock.scheduled[:, p] + fixed_sp[:, p]
        need = np.where(free_part[:, p], np.maximum(demand_sp[:, p] + stock.safety_stock - available, 0), 0.0)
        need_f = np.bincount(fam, weights=need, minlength=layout.n_families)
        short = rest[:, p] <= need_f
        by_need = np.where(valid, need[safe], 0.0)
        open_now = valid & free_part[safe, p]
        share = np.where(open_now, layout.share[safe], 0.0)
        share = np.where(share.sum(axis=1, keepdims=True) > 0, share, open_now.astype(float))
        # a row with nowhere to go keeps its total as the residual (the apportioner splits a zero total
        # over zero weights into zeros)
        shared = _apportion(np.where(short & (need_f > 0), rest[:, p], 0), by_need, decimals)
        placeable = share.sum(axis=1) > 0
        surplus = _apportion(np.where(~short & placeable, rest[:, p] - need_f, 0), share, decimals)
        parts = np.where(short[:, None], shared, by_need + surplus)  # a need exists only where placeable
        sku_period[safe[valid], p] = parts[valid]
        projected = available + sku_period[:, p] - demand_sp[:, p]
    sku_period = _on_grid(sku_period, decimals)
    detail = fixed + _split_over_buckets(layout, sku_period, free, decimals)
    return detail, _on_grid(np.asarray(totals) - rollup(layout, detail, decimals), decimals)


def split_to_detail(
    layout: DetailLayout,
    totals: np.ndarray,
    decimals: int | None,
    *,
    cells: np.ndarray | None = None,
    locked: np.ndarray | None = None,
    values: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``totals[F, P]`` over the SKU x bucket ``cells`` (default: all) -> (detail [S, B], residual [F, P]).

    Locked cells inside ``cells`` keep ``values`` and count toward their row's total; the rest of
    each total goes to the unlocked cells by the two-stage split (mix share weighted by the part of
    the month the SKU still has unlocked, then calendar weight). Cells outside ``cells`` are 0.
    The residual is total - roll-up of the returned detail.
    """
    shape = (layout.n_skus, len(layout.bucket_period))
    cells = np.ones(shape, dtype=bool) if cells is None else np.broadcast_to(cells, shape)
    locked = cells & (np.zeros(shape, dtype=bool) if locked is None else np.asarray(locked, dtype=bool))
    free = cells & ~locked
    totals = np.asarray(totals)
    fixed = _on_grid(np.where(locked, 0 if values is None else values, 0), decimals)
    rest = np.maximum(_on_grid(totals - rollup(layout, fixed, decimals), decimals), 0)
    sku_period = _split_over_skus(layout, rest, free, decimals)
    detail = fixed + _split_over_buckets(layout, sku_period, free, decimals)
    return detail, _on_grid(totals - rollup(layout, detail, decimals), decimals)


def rollup(layout: DetailLayout, detail: np.ndarray, decimals: int | None = 0) -> np.ndarray:
    """Sum SKU x bucket detail to family x period [F, P] (int64 in int mode)."""
    detail = np.asarray(detail)
    onehot = (
        layout.period_of_bucket if detail.dtype.kind in "iu" else layout.period_of_bucket.astype(np.float64)
    )
    sku_period = detail @ onehot
    out = np.zeros((layout.n_families, layout.n_periods), dtype=sku_period.dtype)
    np.add.at(out, layout.sku_family, sku_period)
    return _on_grid(out, decimals)


def _split_over_skus(
    layout: DetailLayout, rest: np.ndarray, free: np.ndarray, decimals: int | None
) -> np.ndarray:
    """Stage 1: every (family, period) total over the family's SKUs -> [S, P]."""
    n_per = layout.n_periods
    free_weight = (free * layout.weight[None, :]) @ layout.period_of_bucket  # [S, P]
    month_weight = layout.weight @ layout.period_of_bucket  # [P]
    open_part = free_weight / np.where(month_weight > 0, month_weight, 1.0)[None, :]
    free_count = free.astype(np.float64) @ layout.period_of_bucket
    # Weights per row, falling back (share -> unlocked part -> unlocked cell count) when a row has none.
    candidates = (layout.share[:, None] * open_part, open_part, free_count)
    weights = _gather_rows(layout.members, candidates[0], n_per)
    for fallback in candidates[1:]:
        empty = weights.sum(axis=1) <= 0
        if not empty.any():
            break
        weights[empty] = _gather_rows(layout.members, fallback, n_per)[empty]
    placeable = weights.sum(axis=1) > 0
    row_totals = np.where(placeable, rest.reshape(-1), 0)
    parts = _apportion(row_totals, weights, decimals)
    out = np.zeros((layout.n_skus, n_per), dtype=parts.dtype)
    fam_idx, col = np.nonzero(layout.members >= 0)
    skus = layout.members[fam_idx, col]
    rows = fam_idx[:, None] * n_per + np.arange(n_per)[None, :]
    out[skus] = parts[rows, col[:, None]]
    return out


def _split_over_buckets(
    layout: DetailLayout, sku_period: np.ndarray, free: np.ndarray, decimals: int | None
) -> np.ndarray:
    """Stage 2: every (SKU, period) part over the period's unlocked buckets by weight -> [S, B]."""
    n_sku, n_per = sku_period.shape
    pad = layout.period_buckets  # [P, Bmax]
    valid = pad >= 0
    safe = np.where(valid, pad, 0)
    rows_sku = np.repeat(np.arange(n_sku), n_per)
    rows_per = np.tile(np.arange(n_per), n_sku)
    cell_free = free[rows_sku[:, None], safe[rows_per]] & valid[rows_per]  # [S*P, Bmax]
    weights = np.where(cell_free, layout.weight[safe[rows_per]], 0.0)
    empty = weights.sum(axis=1) <= 0
    weights[empty] = cell_free[empty]
    parts = _apportion(sku_period.reshape(-1), weights, decimals)
    out = np.zeros(free.shape, dtype=parts.dtype)
    keep = valid[rows_per]
    out[np.broadcast_to(rows_sku[:, None], keep.shape)[keep], safe[rows_per][keep]] = parts[keep]
    return out


def _gather_rows(members: np.ndarray, per_sku: np.ndarray, n_per: int) -> np.ndarray:
    """[F * P, Smax] matrix of a per-(SKU, period) quantity laid out by family row, 0 on padding."""
    safe = np.where(members >= 0, members, 0)
    block = per_sku[safe]  # [F, Smax, P]
    block = np.where((members >= 0)[:, :, None], block, 0.0)
    return np.ascontiguousarray(block.transpose(0, 2, 1)).reshape(-1, members.shape[1]).astype(np.float64)


def _apportion(totals: np.ndarray, weights: np.ndarray, decimals: int | None) -> np.ndarray:
    out = apportion(np.asarray(totals, dtype=np.float64), weights, decimals)
    return out if decimals is not None else out.astype(np.float64)


def _padded_groups(group: np.ndarray, n_groups: int) -> np.ndarray:
    """[G, max size] indices of each group's members in ascending order, -1 padded."""
    group = np.asarray(group, dtype=np.int64)
    counts = np.bincount(group, minlength=n_groups)
    order = np.argsort(group, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(group)) - np.repeat(starts, counts)
    out = np.full((n_groups, max(1, int(counts.max(initial=0)))), -1, dtype=np.int64)
    out[group[order], pos] = order
    return out


def _on_grid(values: np.ndarray, decimals: int | None) -> np.ndarray:
    """Quantities on the rounding mode's grid: int64 in int mode, rounded floats in dec modes."""
    values = np.asarray(values)
    if decimals == 0:
        return np.rint(values).astype(np.int64) if values.dtype.kind == "f" else values.astype(np.int64)
    values = values.astype(np.float64)
    return values if decimals is None else np.round(values, decimals)
