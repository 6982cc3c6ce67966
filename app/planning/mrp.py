"""Time-phased material requirements planning (SPEC 3.3).

Owns low-level codes, lead-time offsetting, netting, lot sizing (moq, lot multiple, max_lot splits)
and the explosion of parent releases into component gross requirements. Items are planned level by
level in low-level-code order; within a level the netting runs week by week, vectorized over every
item of the level. Pure numpy: must not import database, web or file code, nor build artifact rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.planning.apportion import ceil_qty, round_qty
from app.planning.model import Calendar, MrpResult, PlanInputs, PlanParams

_EPS = 1e-9
#: Requirements are cleaned to this many decimals before rounding up, so that float noise from
#: ``qty / (1 - scrap)`` never turns 10.000000000000002 into 11.
_NOISE_DECIMALS = 6


@dataclass(frozen=True)
class LotRules:
    """Per-item order rules in the plan's quantity dtype. ``max_lot`` is already floored to whole lots."""

    lot: np.ndarray
    moq: np.ndarray
    max_lot: np.ndarray
    safety_stock: np.ndarray

    def take(self, idx: np.ndarray) -> LotRules:
        return LotRules(self.lot[idx], self.moq[idx], self.max_lot[idx], self.safety_stock[idx])


def lot_rules(inputs: PlanInputs, params: PlanParams) -> LotRules:
    """The items' lot rules rounded to the plan's mode; ``max_lot`` floored to a multiple of ``lot``."""
    dec = params.decimals
    lot = np.maximum(np.asarray(inputs.item_lot, dtype=np.float64), 1.0)
    max_lot = np.floor(np.asarray(inputs.item_max_lot, dtype=np.float64) / lot + _EPS) * lot
    return LotRules(
        lot=round_qty(lot, dec),
        moq=round_qty(inputs.item_moq, dec),
        max_lot=round_qty(max_lot, dec),
        safety_stock=round_qty(inputs.item_safety_stock, dec),
    )


def low_level_codes(n_items: int, bom_parent: np.ndarray, bom_child: np.ndarray) -> np.ndarray:
    """Low-level code per item: 0 for items that are no one's child, else 1 + the deepest parent's code.

    Relaxes all edges at once until nothing changes; an acyclic BOM settles after depth + 1 rounds.
    """
    parent = np.asarray(bom_parent, dtype=np.int64)
    child = np.asarray(bom_child, dtype=np.int64)
    llc = np.zeros(n_items, dtype=np.int64)
    for _ in range(n_items + 1):
        deeper = np.zeros(n_items, dtype=np.int64)
        np.maximum.at(deeper, child, llc[parent] + 1)
        if np.array_equal(deeper, llc):
            return llc
        llc = deeper
    raise ValueError("the BOM has a cycle")


def lead_time_weeks(inputs: PlanInputs, params: PlanParams) -> np.ndarray:
    """Lead time in whole weeks per item: ``ceil(lt / 7)`` for days, ``lt`` (rounded up) for weeks."""
    lt = np.asarray(inputs.item_lt, dtype=np.float64)
    weeks = lt if params.lt_unit == "week" else lt / 7.0
    return np.maximum(np.ceil(weeks - _EPS), 0).astype(np.int64)


def fg_gross_from_buckets(calendar: Calendar, bucket_demand: np.ndarray) -> np.ndarray:
    """Sum ``bucket_demand[S, B]`` per ISO week: a split week's two buckets become one column."""
    demand = np.asarray(bucket_demand)
    gross = np.zeros((demand.shape[0], calendar.n_weeks), dtype=demand.dtype)
    np.add.at(gross.T, calendar.bucket_week_idx, demand.T)
    return gross


def master_schedule(
    inputs: PlanInputs, supply: np.ndarray, params: PlanParams, firm: np.ndarray | None = None
) -> np.ndarray:
    """The finished goods' planned receipts [S, Wk] from the allocated supply ``supply[S, B]`` (SPEC 3.3).

    The weekly schedule is the supply of the week's buckets (a split week's two summed). Week by week
    a SKU receives, lot-sized by its own rules (``max(gap, moq)`` rounded up to a multiple of ``lot``),
    the gap between the cumulative schedule and what it has received so far, or nothing when it is
    ahead: cumulative receipts never fall behind the cumulative schedule and lead it by less than one
    lot (or one minimum order), so the S&OP plan's pre-build and rationing reach MRP as they are.

    ``firm[S, B]`` marks the planner's locked supply cells: a week holding one is a firm planned order
    and receives exactly that week's schedule, not lot-sized; the weeks after it track the cumulative
    schedule again from what was received."""
    schedule = fg_gross_from_buckets(inputs.calendar, supply)
    rules = lot_rules(inputs, params).take(np.arange(inputs.n_fg))
    dec = params.decimals
    firm_week = None
    if firm is not None and firm.any():
        firm_week = fg_gross_from_buckets(inputs.calendar, firm.astype(np.int64)) > 0
    cumulative = _clean(np.cumsum(schedule, axis=1), dec)
    receipts = np.zeros_like(schedule)
    received = np.zeros(schedule.shape[0], dtype=schedule.dtype)
    for w in range(schedule.shape[1]):
        gap = _clean(cumulative[:, w] - received, dec)
        receipts[:, w] = _clean(lot_size(gap, rules), dec)
        if firm_week is not None:
            receipts[:, w] = np.where(firm_week[:, w], schedule[:, w], receipts[:, w])
        received = _clean(received + receipts[:, w], dec)
    return receipts


def lot_size(net: np.ndarray, rules: LotRules) -> np.ndarray:
    """Planned receipt for a net requirement: 0, or ``max(net, moq)`` rounded up to a multiple of lot."""
    wanted = np.maximum(net, rules.moq)
    if net.dtype.kind in "iu":
        sized = -(-wanted // rules.lot) * rules.lot
    else:
        sized = np.ceil(wanted / rules.lot - _EPS) * rules.lot
    return np.where(net > 0, sized, 0).astype(net.dtype)


def order_counts(receipts: np.ndarray, max_lot: np.ndarray) -> np.ndarray:
    """Orders landing per item and week: ``ceil(q / max_lot)`` with a max_lot, else 1 per receipt."""
    cap = np.asarray(max_lot, dtype=np.float64)[:, None]
    q = np.asarray(receipts, dtype=np.float64)
    split = np.ceil(q / np.where(cap > 0, cap, 1.0) - _EPS)
    return np.where(q > 0, np.where(cap > 0, np.maximum(split, 1), 1), 0).astype(np.int64)


def offset_releases(receipts: np.ndarray, lt_weeks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift receipts back by lead time. Releases before week 1 land in week 1.

    Returns ``(releases, past_due_qty)``; ``past_due_qty[i]`` is what item i had to release before week 1.
    """
    releases = np.zeros_like(receipts)
    past_due = np.zeros(receipts.shape[0], dtype=receipts.dtype)
    n_weeks = receipts.shape[1]
    for lt in np.unique(lt_weeks):
        rows = np.nonzero(lt_weeks == lt)[0]
        shifted, late = _shift_back(receipts[rows], int(lt), n_weeks)
        releases[rows] = shifted
        past_due[rows] = late
    return releases, past_due


def _shift_back(receipts: np.ndarray, lt: int, n_weeks: int) -> tuple[np.ndarray, np.ndarray]:
    """Releases of receipts sharing one lead time, and the quantity released before week 1."""
    if lt == 0:
        return receipts.copy(), np.zeros(receipts.shape[0], dtype=receipts.dtype)
    out = np.zeros_like(receipts)
    out[:, 0] = receipts[:, : lt + 1].sum(axis=1)
    if lt + 1 < n_weeks:
        out[:, 1 : n_weeks - lt] = receipts[:, lt + 1 :]
    return out, receipts[:, :lt].sum(axis=1)


@dataclass
class _Netting:
    """Week-by-week netting outcome for the items of one level."""

    on_hand_start: np.ndarray
    net_req: np.ndarray
    receipts: np.ndarray
    on_hand_end: np.ndarray


def net_requirements(
    gross: np.ndarray,
    scheduled: np.ndarray,
    on_hand: np.ndarray,
    rules: LotRules,
    decimals: int | None,
    fixed_receipts: np.ndarray | None = None,
    fixed_rows: np.ndarray | None = None,
) -> _Netting:
    """Net and lot-size ``gross[n, Wk]`` week by week, vectorized over the n items.

    Rows flagged in ``fixed_rows`` take their receipts from ``fixed_receipts`` instead of lot sizing;
    their net requirement is still reported.
    """
    result = _Netting(*(np.zeros_like(gross) for _ in range(4)))
    current = on_hand.copy()
    for w in range(gross.shape[1]):
        available = current + scheduled[:, w]
        net = _clean(np.maximum(gross[:, w] + rules.safety_stock - available, 0), decimals)
        receipt = _clean(lot_size(net, rules), decimals)
        if fixed_receipts is not None and fixed_rows is not None:
            receipt = np.where(fixed_rows, fixed_receipts[:, w], receipt)
        result.on_hand_start[:, w] = current
        result.net_req[:, w] = net
        result.receipts[:, w] = receipt
        current = _clean(available + receipt - gross[:, w], decimals)
        result.on_hand_end[:, w] = current
    return result


def _clean(values: np.ndarray, decimals: int | None) -> np.ndarray:
    """Drop float noise: round to the plan's decimals, or zero out dust in unrounded mode."""
    if values.dtype.kind in "iu":
        return values
    if decimals is None:
        return np.where(np.abs(values) < _EPS, 0.0, values)
    return np.round(values, decimals)


def _explosion_plan(inputs: PlanInputs, llc: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per parent level: (parent, child, factor) edges sorted by child; factor = qty / (1 - scrap)."""
    parent = np.asarray(inputs.bom_parent, dtype=np.int64)
    child = np.asarray(inputs.bom_child, dtype=np.int64)
    factor = np.asarray(inputs.bom_qty, dtype=np.float64) / (
        1.0 - np.asarray(inputs.bom_scrap, dtype=np.float64)
    )
    plan = []
    for level in range(int(llc.max(initial=0)) + 1):
        edges = np.nonzero(llc[parent] == level)[0]
        edges = edges[np.argsort(child[edges], kind="stable")]
        plan.append((parent[edges], child[edges], factor[edges]))
    return plan


def explode(
    dependent: np.ndarray, releases: np.ndarray, edges: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    """Add parent releases x factor to the children's rows of ``dependent`` (float, in place)."""
    parent, child, factor = edges
    if parent.size == 0:
        return
    contributions = releases[parent].astype(np.float64) * factor[:, None]
    starts = np.flatnonzero(np.r_[True, child[1:] != child[:-1]])
    dependent[child[starts]] += np.add.reduceat(contributions, starts, axis=0)


def component_gross(dependent: np.ndarray, decimals: int | None) -> np.ndarray:
    """Dependent requirements rounded up per item and week (after removing float noise)."""
    if decimals is None:
        return dependent.copy()
    return ceil_qty(np.round(dependent, _NOISE_DECIMALS), decimals)


def run_mrp(
    inputs: PlanInputs,
    fg_gross: np.ndarray,
    params: PlanParams,
    fg_receipts: np.ndarray | None = None,
) -> MrpResult:
    """Plan every item week by week in low-level-code order (SPEC 3.3).

    ``fg_gross[S, Wk]`` is the finished goods' independent demand. With ``fg_receipts[S, Wk]`` the
    finished goods' planned receipts are taken as given (no netting or lot sizing for them) and the
    components are planned from the releases those receipts imply.
    """
    n_items, n_fg, dec, dtype = len(inputs.items), inputs.n_fg, params.decimals, params.qty_dtype
    llc = low_level_codes(n_items, inputs.bom_parent, inputs.bom_child)
    lt = lead_time_weeks(inputs, params)
    rules = lot_rules(inputs, params)
    independent, fixed = _fg_rows(inputs, fg_gross, params), None
    if fg_receipts is not None:
        fixed = _fg_rows(inputs, fg_receipts, params)
    on_hand = round_qty(inputs.on_hand, dec)
    scheduled = round_qty(inputs.scheduled_receipts, dec).reshape(independent.shape)
    dependent = np.zeros(independent.shape, dtype=np.float64)
    out = {name: np.zeros_like(independent) for name in _PLAN_ARRAYS}
    past_due_qty = np.zeros(n_items, dtype=dtype)

    for level, edges in enumerate(_explosion_plan(inputs, llc)):
        idx = np.nonzero(llc == level)[0]
        gross = _clean(independent[idx] + component_gross(dependent[idx], dec), dec).astype(dtype)
        given = None if fixed is None else fixed[idx]
        netting = net_requirements(
            gross, scheduled[idx], on_hand[idx], rules.take(idx), dec, given, idx < n_fg
        )
        releases, past_due_qty[idx] = offset_releases(netting.receipts, lt[idx])
        _store(out, idx, gross, netting, releases)
        explode(dependent, out["planned_order_release"], edges)

    return MrpResult(
        **out,
        scheduled_receipts=scheduled,
        orders=order_counts(out["planned_order_receipt"], rules.max_lot),
        lt_weeks=lt,
        llc=llc,
        past_due=past_due_qty > 0,
        past_due_qty=past_due_qty,
    )


_PLAN_ARRAYS = (
    "gross_req",
    "on_hand_start",
    "net_req",
    "planned_order_receipt",
    "planned_order_release",
    "on_hand_end",
)


def _fg_rows(inputs: PlanInputs, fg_values: np.ndarray, params: PlanParams) -> np.ndarray:
    """An [I, Wk] array holding ``fg_values[S, Wk]`` in the finished goods' rows, zero elsewhere."""
    rows = np.zeros((len(inputs.items), inputs.calendar.n_weeks), dtype=params.qty_dtype)
    rows[: inputs.n_fg] = round_qty(fg_values, params.decimals)
    return rows


def _store(
    out: dict[str, np.ndarray], idx: np.ndarray, gross: np.ndarray, netting: _Netting, releases: np.ndarray
) -> None:
    out["gross_req"][idx] = gross
    out["on_hand_start"][idx] = netting.on_hand_start
    out["net_req"][idx] = netting.net_req
    out["planned_order_receipt"][idx] = netting.receipts
    out["planned_order_release"][idx] = releases
    out["on_hand_end"][idx] = netting.on_hand_end
