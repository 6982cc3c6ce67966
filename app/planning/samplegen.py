"""Deterministic synthetic input sets (``scpln sample generate``).

Owns writing an input set in the SPEC 2 format from a seed: seasonal family demand with noise, a mix,
pooled capacity around the average demand (so some months are tight), a BOM of a given depth whose
components sit in levels (edges only go down a level or more, so it is acyclic by construction, and
some components are shared across parents and levels), an item master, inventory over two locations
and open purchase orders in the three ``due`` formats. The same arguments give byte-identical files.

It writes files only; it plans nothing and reads no input set.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.planning.apportion import apportion
from app.planning.calendar import add_months, derive_calendar, iso_week_code
from app.planning.documents import format_number, num
from app.planning.model import Calendar

SHARE_UNITS = 1_000_000  # mix shares are written with 6 decimals and sum to exactly 1
WORKCENTERS = ("ASSY-1", "ASSY-2", "PACK-1")
LOCATIONS = ("DC-1", "DC-2")


def generate_sample(
    out_dir: str | Path,
    families: int = 3,
    skus_per_family: int = 5,
    components: int = 20,
    bom_depth: int = 2,
    months: int = 12,
    seed: int = 1,
    start: str = "2026-01",
) -> Path:
    """Write a valid, acyclic input set to ``out_dir`` and return its path."""
    _check_arguments(families, skus_per_family, components, bom_depth, months, start)
    rng = np.random.default_rng(seed)
    periods = [add_months(start, k) for k in range(months)]
    fams = [f"FAM-{f + 1:02d}" for f in range(families)]
    skus = [f"SKU-{f + 1:02d}-{s + 1:04d}" for f in range(families) for s in range(skus_per_family)]
    levels = np.array_split(np.arange(components), bom_depth)
    comps = [f"CMP-{lv + 1}-{k + 1:05d}" for lv, part in enumerate(levels) for k in range(len(part))]
    items = skus + comps

    demand = family_demand(rng, families, months, skus_per_family)
    share_units = apportion(np.full(families, SHARE_UNITS), rng.gamma(2.0, size=(families, skus_per_family)))
    sku_month = demand.mean(axis=1).repeat(skus_per_family) * share_units.ravel() / SHARE_UNITS
    parent, child = bom_edges(rng, len(skus), [len(skus) + part for part in levels])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(
        out / "demand_family.csv", ("family", "period", "demand"), _family_period(fams, periods, demand)
    )
    write_csv(
        out / "mix_share.csv", ("family", "sku", "share"), _mix(fams, skus, share_units, skus_per_family)
    )
    write_csv(out / "capacity.csv", ("workcenter", "period", "capacity"), _capacity(rng, demand, periods))
    write_csv(out / "bom.csv", ("parent", "child", "qty", "scrap"), _bom(rng, items, parent, child))
    item_cols = item_master(rng, len(skus), len(comps), sku_month)
    write_csv(
        out / "item.csv",
        ("item", "lt", "lot", "moq", "safety_stock", "max_lot", "unit_cost"),
        [items, *item_cols],
    )
    write_csv(out / "inventory.csv", ("item", "loc", "qty"), _inventory(rng, items, sku_month, item_cols[1]))
    write_csv(
        out / "open_po.csv", ("item", "due", "qty"), _open_po(rng, items, len(skus), item_cols, periods)
    )
    write_csv(
        out / "period_cost.csv", ("period", "cost"), [periods, np.round(rng.uniform(0.9, 1.3, months), 2)]
    )
    write_csv(
        out / "period_score.csv", ("period", "score"), [periods, np.round(rng.uniform(0.5, 1.5, months), 2)]
    )
    return out


def _check_arguments(families: int, skus: int, components: int, depth: int, months: int, start: str) -> None:
    if min(families, skus, months, depth) < 1:
        raise ValueError("families, skus_per_family, months and bom_depth must be at least 1")
    if components < depth:
        raise ValueError(f"a BOM of depth {depth} needs at least {depth} components")
    add_months(start, 0)  # raises on a malformed start period


# --------------------------------------------------------------------------------------------------
# Quantities


def family_demand(rng: np.random.Generator, families: int, months: int, skus_per_family: int) -> np.ndarray:
    """Integer [F, P] demand: a level per family, a yearly sine with its own phase, and noise."""
    level = rng.uniform(200.0, 600.0, families) * skus_per_family
    amplitude = rng.uniform(0.1, 0.35, families)
    phase = rng.integers(0, 12, families)
    month = np.arange(months)
    season = 1.0 + amplitude[:, None] * np.sin(2 * math.pi * (month[None, :] + phase[:, None]) / 12)
    noise = np.clip(rng.normal(1.0, 0.06, (families, months)), 0.5, None)
    return np.rint(level[:, None] * season * noise).astype(np.int64)


def bom_edges(
    rng: np.random.Generator, n_skus: int, levels: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Edges (parent, child) level by level, every component used at least once, sorted and unique.

    Each parent takes 1-3 children from the next level; about one SKU in ten also uses a deeper
    component directly, so some components are shared by parents on different levels.
    """
    parents = np.arange(n_skus)
    pairs = []
    for children in levels:
        pairs.append(_level_edges(rng, parents, children))
        parents = children
    deeper = np.concatenate(levels[1:]) if len(levels) > 1 else np.empty(0, dtype=np.int64)
    if deeper.size:
        users = np.flatnonzero(rng.random(n_skus) < 0.1)
        pairs.append((users, deeper[rng.integers(0, deeper.size, users.size)]))
    parent = np.concatenate([p for p, _ in pairs])
    child = np.concatenate([c for _, c in pairs])
    n = n_skus + sum(len(lv) for lv in levels)
    key = np.unique(parent.astype(np.int64) * n + child)
    return key // n, key % n


def _level_edges(
    rng: np.random.Generator, parents: np.ndarray, children: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    count = rng.integers(1, 4, parents.size)
    picks = rng.integers(0, children.size, (parents.size, 3))
    mask = np.arange(3)[None, :] < count[:, None]
    parent = np.repeat(parents, count)
    child = children[picks[mask]]
    unused = np.setdiff1d(children, child)
    return (
        np.concatenate([parent, parents[rng.integers(0, parents.size, unused.size)]]),
        np.concatenate([child, unused]),
    )


def item_master(
    rng: np.random.Generator, n_skus: int, n_comps: int, sku_month: np.ndarray
) -> list[np.ndarray]:
    """Columns lt (days), lot, moq, safety_stock, max_lot, unit_cost; finished goods first."""
    n = n_skus + n_comps
    lt = np.concatenate([rng.choice([7, 14], n_skus), rng.choice([7, 14, 21, 28, 42, 56], n_comps)])
    lot = np.concatenate([rng.choice([1, 5, 10], n_skus), rng.choice([1, 10, 50, 100, 250], n_comps)])
    moq = lot * rng.integers(0, 5, n)
    weekly = np.concatenate([sku_month * 12 / 52, np.zeros(n_comps)])
    safety = np.where(
        np.arange(n) < n_skus, np.rint(weekly * rng.uniform(0.3, 1.2, n)), lot * rng.integers(0, 3, n)
    )
    capped = (np.arange(n) >= n_skus) & (rng.random(n) < 0.1)
    max_lot = np.where(capped, np.maximum(moq, lot) * rng.integers(2, 6, n), 0)
    cost = np.round(np.where(np.arange(n) < n_skus, rng.uniform(20, 200, n), rng.uniform(0.2, 40, n)), 2)
    return [lt, lot, moq, safety.astype(np.int64), max_lot, cost]


# --------------------------------------------------------------------------------------------------
# File contents (lists of columns)


def _family_period(fams: list[str], periods: list[str], demand: np.ndarray) -> list[Any]:
    return [np.repeat(fams, len(periods)), np.tile(periods, len(fams)), demand.ravel()]


def _mix(fams: list[str], skus: list[str], share_units: np.ndarray, per_family: int) -> list[Any]:
    share = [f"{u / SHARE_UNITS:.6f}" for u in share_units.ravel().tolist()]
    return [np.repeat(fams, per_family), skus, share]


def _capacity(rng: np.random.Generator, demand: np.ndarray, periods: list[str]) -> list[Any]:
    total = np.rint(demand.sum(axis=0).mean() * rng.uniform(0.95, 1.10, len(periods)))
    split = apportion(total, np.tile(rng.uniform(0.5, 1.5, len(WORKCENTERS)), (len(periods), 1)))
    return [np.repeat(WORKCENTERS, len(periods)), np.tile(periods, len(WORKCENTERS)), split.T.ravel()]


def _bom(rng: np.random.Generator, items: list[str], parent: np.ndarray, child: np.ndarray) -> list[Any]:
    qty = rng.choice([1, 1, 1, 1, 2, 4], parent.size)
    scrap = np.where(rng.random(parent.size) < 0.05, np.round(rng.uniform(0.01, 0.05, parent.size), 2), 0)
    names = np.array(items)
    return [names[parent], names[child], qty, scrap]


def _inventory(
    rng: np.random.Generator, items: list[str], sku_month: np.ndarray, lot: np.ndarray
) -> list[Any]:
    n_skus = sku_month.size
    base = np.concatenate(
        [sku_month * rng.uniform(0.2, 0.8, n_skus), lot[n_skus:] * rng.integers(0, 10, lot.size - n_skus)]
    )
    second = rng.random(len(items)) < 0.5
    part = np.where(second, np.rint(base * rng.uniform(0.2, 0.6, len(items))), 0)
    first = np.rint(base) - part
    idx = np.concatenate([np.arange(len(items)), np.flatnonzero(second)])
    loc = np.concatenate([np.full(len(items), LOCATIONS[0]), np.full(second.sum(), LOCATIONS[1])])
    qty = np.concatenate([first, part[second]]).astype(np.int64)
    order = np.lexsort((loc, idx))
    return [np.array(items)[idx[order]], loc[order], qty[order]]


def _open_po(
    rng: np.random.Generator, items: list[str], n_skus: int, cols: list[np.ndarray], periods: list[str]
) -> list[Any]:
    lot, moq = cols[1], cols[2]
    which = n_skus + np.flatnonzero(rng.random(len(items) - n_skus) < 0.15)
    qty = np.maximum(lot[which], moq[which]) * rng.integers(1, 4, which.size)
    kind = rng.integers(0, 3, which.size).tolist()
    cal = derive_calendar(periods)
    first_day = cal.period_start[0]
    horizon_days = (cal.period_end[-1] - first_day).days + 1
    offset = rng.integers(0, min(42, horizon_days), which.size).tolist()
    month = rng.integers(0, min(2, len(periods)), which.size).tolist()
    dues = [_due_text(k, first_day, d, periods[m]) for k, d, m in zip(kind, offset, month, strict=True)]
    return [np.array(items)[which], dues, qty]


def _due_text(kind: int, first_day: dt.date, offset: int, period: str) -> str:
    """An open PO due in one of the three accepted formats, inside the first weeks of the horizon."""
    day = first_day + dt.timedelta(days=offset)
    if kind == 0:
        return day.isoformat()
    if kind == 1:
        return iso_week_code(day)
    return period


# --------------------------------------------------------------------------------------------------
# Writing


def column_text(values: Any) -> list[str]:
    """Cell texts of one column: numbers by the plain number rule, everything else as str."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(str).tolist()
    if arr.dtype.kind == "f":
        return [format_number(v) for v in arr.tolist()]
    return [str(v) for v in arr.tolist()]


def write_csv(path: Path, header: Sequence[str], columns: Sequence[Any]) -> None:
    """Write one CSV file (``\\n`` line ends; codes never contain commas or quotes)."""
    texts = [column_text(c) for c in columns]
    lines = [",".join(header), *(",".join(row) for row in zip(*texts, strict=True))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def calendar_document(cal: Calendar) -> dict[str, Any]:
    """The ``planning_calendar.json`` document of a calendar (weights in days)."""
    periods = []
    for p, start, end in zip(cal.periods, cal.period_start, cal.period_end, strict=True):
        weeks = [
            {
                "week_code": b.week,
                "start_date": b.start_date.isoformat(),
                "end_date": b.end_date.isoformat(),
                "weight": num(b.weight),
            }
            for b in cal.buckets
            if b.period == p
        ]
        periods.append(
            {"period": p, "start_date": start.isoformat(), "end_date": end.isoformat(), "weeks": weeks}
        )
    return {"periods": periods}
