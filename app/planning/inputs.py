"""Loading and validating an input set (SPEC 2).

Owns reading the CSV files and the optional ``planning_calendar.json`` of an input set folder,
checking all of them before any computation, and indexing them into a :class:`PlanInputs`. Every
problem found is collected and raised at once as one :class:`InputError`; tolerated oddities (extra
columns, mix shares that do not sum to one, a month without capacity) become ``warnings``.

This is the one planning module that reads files. It computes no plan: the stages receive the
validated ``PlanInputs`` and never look at the folder.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.planning.calendar import add_months, calendar_from_document, derive_calendar, iso_week_code
from app.planning.model import Calendar, InputError, PlanInputs, Problem

CALENDAR_FILE = "planning_calendar.json"
REQUIRED_FILES = (
    "demand_family.csv",
    "mix_share.csv",
    "capacity.csv",
    "item.csv",
    "inventory.csv",
    "open_po.csv",
    "bom.csv",
)
OPTIONAL_FILES = ("routing.csv", "period_cost.csv", "period_score.csv", CALENDAR_FILE)

#: Required and optional columns of every CSV file.
COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "demand_family.csv": (("family", "period", "demand"), ()),
    "mix_share.csv": (("family", "sku", "share"), ()),
    "capacity.csv": (("workcenter", "period", "capacity"), ()),
    "routing.csv": (("family", "workcenter", "units_per_unit"), ()),
    "item.csv": (("item", "lt", "lot", "moq"), ("safety_stock", "max_lot", "unit_cost")),
    "inventory.csv": (("item", "loc", "qty"), ()),
    "open_po.csv": (("item", "due", "qty"), ()),
    "bom.csv": (("parent", "child", "qty"), ("scrap",)),
    "period_cost.csv": (("period", "cost"), ()),
    "period_score.csv": (("period", "score"), ()),
}
SHARE_TOLERANCE = 1e-6
#: The largest value each numeric column accepts (docs/inputs.md). Each is far beyond a real plan and
#: small enough that the engine's sums and products (quantity x BOM qty over thousands of parents and
#: weeks) stay exact in int64 and float64.
MAX_VALUES: dict[tuple[str, str], float] = {
    ("demand_family.csv", "demand"): 1e9,
    ("mix_share.csv", "share"): 1e9,
    ("capacity.csv", "capacity"): 1e12,
    ("routing.csv", "units_per_unit"): 1e6,
    ("item.csv", "lt"): 3650,  # days (or weeks with lt_unit=week): ten years
    ("item.csv", "lot"): 1e9,
    ("item.csv", "moq"): 1e9,
    ("item.csv", "safety_stock"): 1e9,
    ("item.csv", "max_lot"): 1e9,
    ("item.csv", "unit_cost"): 1e9,
    ("inventory.csv", "qty"): 1e9,
    ("open_po.csv", "qty"): 1e9,
    ("bom.csv", "qty"): 1e4,
    ("bom.csv", "scrap"): 1.0,
    ("period_cost.csv", "cost"): 1e9,
    ("period_score.csv", "score"): 1e9,
}
MAX_CALENDAR_BYTES = 10_000_000
#: The largest CSV file of an input set: a generated 10k-SKU set's largest file (bom.csv) is 0.7 MB.
MAX_INPUT_BYTES = 64_000_000

_PERIOD_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_WEEK_RE = re.compile(r"^\d{4}-W\d{2}$")


# --------------------------------------------------------------------------------------------------
# Reading


@dataclass
class Findings:
    """Problems and warnings collected while reading one input set."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    #: Problems beyond this are counted, not listed: a broken large file must not make a huge answer.
    limit: int = 1000
    unlisted: int = 0

    def problem(self, file: str, row: int | None, column: str | None, reason: str) -> None:
        if len(self.problems) < self.limit:
            self.problems.append(Problem(file, row, column, reason))
        else:
            self.unlisted += 1

    def listed(self) -> list[Problem]:
        """The problems to report, with one closing entry counting those not listed."""
        if not self.unlisted:
            return self.problems
        more = Problem("(input set)", None, None, f"{self.unlisted:,} more problem(s) not listed")
        return [*self.problems, more]


@dataclass
class Table:
    """The cells of one CSV file by column, with the 1-based line number of every data row."""

    file: str
    lines: list[int]
    cols: dict[str, list[str]]

    def __len__(self) -> int:
        return len(self.lines)


def read_table(folder: Path, file: str, found: Findings) -> Table | None:
    """Read one CSV file column by column as it streams (only the columns the hub reads are kept, no
    row lists); None when it is absent, larger than ``MAX_INPUT_BYTES`` or unusable (the reason is
    recorded)."""
    path = folder / file
    if not path.is_file():
        if file in REQUIRED_FILES:
            found.problem(file, None, None, "missing file")
        return None
    if path.stat().st_size > MAX_INPUT_BYTES:
        found.problem(file, None, None, f"larger than {MAX_INPUT_BYTES:,} bytes")
        return None
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            wanted = _wanted_columns(file, header, found)
            if wanted is None:
                return None
            cols: dict[str, list[str]] = {name: [] for name in wanted}
            lines: list[int] = []
            picks = list(wanted.items())
            for rec in reader:
                if any(cell.strip() for cell in rec):
                    width = len(rec)
                    for name, k in picks:
                        cols[name].append(rec[k].strip() if k < width else "")
                    lines.append(reader.line_num)
    except (UnicodeDecodeError, csv.Error) as exc:
        found.problem(file, None, None, f"unreadable CSV: {exc}")
        return None
    return Table(file, lines, cols)


def _wanted_columns(file: str, header: list[str], found: Findings) -> dict[str, int] | None:
    """Column name -> position of the columns the hub reads; None (reported) when one is missing."""
    required, optional = COLUMNS[file]
    missing = [c for c in required if c not in header]
    for c in missing:
        found.problem(file, 1, c, "missing column")
    extra = [h for h in header if h not in required + optional]
    if extra:
        found.warnings.append(f"{file}: ignoring extra columns {', '.join(extra)}")
    if missing:
        return None
    return {name: header.index(name) for name in required + optional if name in header}


# --------------------------------------------------------------------------------------------------
# Cells


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def numbers(
    t: Table, column: str, found: Findings, *, minimum: float | None = 0.0, default: float = 0.0
) -> np.ndarray:
    """Parse a numeric column. Unparsable cells and values below ``minimum`` are reported.

    An absent optional column, or an empty cell in one, takes ``default``. Bad cells come back NaN.
    """
    if column not in t.cols:
        return np.full(len(t), default, dtype=np.float64)
    raw = t.cols[column]
    optional = column in COLUMNS[t.file][1]
    cells = [c if c or not optional else repr(default) for c in raw]
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        values = np.array([_to_float(c) for c in cells], dtype=np.float64)
    # float() also reads "1_000", "inf" and "nan": none of them is a number of an input file
    bad = ~np.isfinite(values) | np.array(["_" in c for c in cells], dtype=bool)
    flag(t, column, bad, "unparsable number {value!r}", found)
    top = MAX_VALUES.get((t.file, column))
    if top is not None:
        flag(t, column, ~bad & (values > top), f"too large: {{value}} (at most {top:g})", found)
        bad |= values > top
    if minimum == 0.0:
        flag(t, column, ~bad & (values < 0), "negative quantity {value}", found)
    elif minimum is not None:
        flag(t, column, ~bad & (values < minimum), f"must be >= {minimum:g}, got {{value}}", found)
    values[bad] = np.nan
    return values


def flag(t: Table, column: str, mask: np.ndarray, reason: str, found: Findings) -> None:
    """Report every row of ``mask``; ``{value}`` in the reason is the cell text."""
    cells = t.cols.get(column) or [""] * len(t)  # an absent optional column holds its default
    for i in np.flatnonzero(mask):
        found.problem(t.file, t.lines[i], column, reason.format(value=cells[i]))


def codes(t: Table, column: str, found: Findings) -> list[str]:
    """A code column (family, SKU, item...); empty cells are reported."""
    cells = t.cols[column]
    flag(t, column, np.array([c == "" for c in cells], dtype=bool), "empty value", found)
    return cells


def periods(t: Table, column: str, found: Findings) -> list[str | None]:
    """A ``YYYY-MM`` column; malformed cells are reported and come back None."""
    out: list[str | None] = []
    for cell, line in zip(t.cols[column], t.lines, strict=True):
        if _PERIOD_RE.match(cell):
            out.append(cell)
        else:
            out.append(None)
            found.problem(t.file, line, column, f"bad period {cell!r} (expected YYYY-MM)")
    return out


def duplicates(t: Table, columns: tuple[str, ...], found: Findings) -> None:
    """Report rows repeating the key of an earlier row."""
    first: dict[tuple[str, ...], int] = {}
    keys = zip(*(t.cols[c] for c in columns), strict=True)
    for line, key in zip(t.lines, keys, strict=True):
        if key in first:
            shown = ", ".join(key)
            found.problem(
                t.file, line, ",".join(columns), f"duplicate key ({shown}), first at line {first[key]}"
            )
        else:
            first[key] = line


def lookup(t: Table, column: str, index: dict[str, int], found: Findings, reason: str) -> np.ndarray:
    """Positions of a code column in ``index``; unknown non-empty codes are reported and map to -1."""
    cells = t.cols[column]
    pos = np.array([index.get(c, -1) for c in cells], dtype=np.int64)
    flag(t, column, (pos < 0) & np.array([c != "" for c in cells], dtype=bool), reason, found)
    return pos


def period_positions(t: Table, column: str, cal: Calendar | None, found: Findings) -> np.ndarray:
    """Period column as calendar positions; bad or outside periods are reported and map to -1."""
    parsed = periods(t, column, found)
    if cal is None:
        return np.full(len(t), -1, dtype=np.int64)
    index = {p: i for i, p in enumerate(cal.periods)}
    pos = np.array([index.get(p, -1) if p else -1 for p in parsed], dtype=np.int64)
    outside = (pos < 0) & np.array([p is not None for p in parsed], dtype=bool)
    flag(t, column, outside, "period {value} is outside the calendar", found)
    return pos


def valid(*masks: np.ndarray) -> np.ndarray:
    """Rows usable for indexing: every position >= 0 and every number finite."""
    ok = np.ones(len(masks[0]), dtype=bool)
    for m in masks:
        ok &= (m >= 0) if m.dtype.kind == "i" else np.isfinite(m)
    return ok


# --------------------------------------------------------------------------------------------------
# Calendar and demand


def load_calendar(folder: Path, demand: Table | None, found: Findings) -> Calendar | None:
    """The explicit calendar when the folder has one, else derived from the demand periods."""
    path = folder / CALENDAR_FILE
    if path.is_file():
        if path.stat().st_size > MAX_CALENDAR_BYTES:
            found.problem(CALENDAR_FILE, None, None, f"larger than {MAX_CALENDAR_BYTES:,} bytes")
            return None
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            found.problem(CALENDAR_FILE, None, None, f"unparsable JSON: {exc}")
            return None
        except RecursionError:
            found.problem(CALENDAR_FILE, None, None, "unparsable JSON: nested too deeply")
            return None
        cal, problems, warnings = calendar_from_document(doc, CALENDAR_FILE)
        found.problems.extend(problems)
        found.warnings.extend(warnings)
        return cal
    if demand is None:
        return None
    seen = sorted({c for c in demand.cols["period"] if _PERIOD_RE.match(c)})
    if not seen:
        found.problem(demand.file, None, "period", "no valid period to derive the calendar from")
        return None
    span = _month_span(seen[0], seen[-1])
    missing = sorted(set(span) - set(seen))
    if missing:
        reason = f"periods must be consecutive months to derive the calendar; missing {', '.join(missing)}"
        found.problem(demand.file, None, "period", reason)
    return derive_calendar(span)


def _month_span(first: str, last: str) -> list[str]:
    span = [first]
    while span[-1] < last:
        span.append(add_months(span[-1], 1))
    return span


@dataclass
class Demand:
    families: list[str]
    demand: np.ndarray  # [F, P]
    first_line: dict[str, int]  # first demand line of each family


def load_demand(t: Table | None, cal: Calendar | None, found: Findings) -> Demand | None:
    """Family demand per period; families sorted by code."""
    if t is None:
        return None
    fam = codes(t, "family", found)
    per = period_positions(t, "period", cal, found)
    qty = numbers(t, "demand", found)
    duplicates(t, ("family", "period"), found)
    families = sorted({f for f in fam if f})
    fidx = {f: i for i, f in enumerate(families)}
    first_line: dict[str, int] = {}
    for f, line in zip(fam, t.lines, strict=True):
        first_line.setdefault(f, line)
    demand = np.zeros((len(families), cal.n_periods if cal else 0), dtype=np.float64)
    fpos = np.array([fidx.get(f, -1) for f in fam], dtype=np.int64)
    ok = valid(fpos, per, qty)
    np.add.at(demand, (fpos[ok], per[ok]), qty[ok])
    return Demand(families, demand, first_line)


# --------------------------------------------------------------------------------------------------
# Mix: the finished goods


@dataclass
class Mix:
    skus: list[str]
    sku_family: np.ndarray  # [S]
    sku_share: np.ndarray  # [S] renormalized


def load_mix(t: Table | None, dem: Demand | None, found: Findings) -> Mix | None:
    """Finished goods grouped by family (family order), sorted by SKU code within a family."""
    if t is None or dem is None:
        return None
    fidx = {f: i for i, f in enumerate(dem.families)}
    codes(t, "family", found)
    sku = codes(t, "sku", found)
    fpos = lookup(t, "family", fidx, found, "unknown family {value} (not in demand_family.csv)")
    share = numbers(t, "share", found)
    duplicates(t, ("sku",), found)
    _families_without_skus(dem, set(fpos[fpos >= 0].tolist()), found)
    ok = valid(fpos, share) & np.array([s != "" for s in sku], dtype=bool)
    rows = sorted((int(f), s, float(x)) for f, s, x, k in zip(fpos, sku, share, ok, strict=True) if k)
    first: dict[str, tuple[int, str, float]] = {}
    for r in rows:
        first.setdefault(r[1], r)
    unique = sorted(first.values())
    sku_family = np.array([r[0] for r in unique], dtype=np.int64)
    raw = np.array([r[2] for r in unique], dtype=np.float64)
    return Mix([r[1] for r in unique], sku_family, _renormalize(raw, sku_family, dem.families, found))


def _families_without_skus(dem: Demand, with_skus: set[int], found: Findings) -> None:
    for i, f in enumerate(dem.families):
        if i not in with_skus:
            found.problem(
                "demand_family.csv",
                dem.first_line[f],
                "family",
                f"family {f} has demand but no SKUs in mix_share.csv",
            )


def _renormalize(
    share: np.ndarray, sku_family: np.ndarray, families: list[str], found: Findings
) -> np.ndarray:
    total = np.bincount(sku_family, weights=share, minlength=len(families))
    for i in np.flatnonzero(np.abs(total - 1.0) > SHARE_TOLERANCE):
        if np.any(sku_family == i) and total[i] <= 0:
            found.problem("mix_share.csv", None, "share", f"shares of family {families[i]} sum to 0")
        elif np.any(sku_family == i):
            found.warnings.append(
                f"mix_share.csv: shares of family {families[i]} sum to {total[i]:g}; renormalized"
            )
    safe = np.where(total > 0, total, 1.0)
    return share / safe[sku_family]


# --------------------------------------------------------------------------------------------------
# Capacity and routing


@dataclass
class Capacity:
    workcenters: list[str]
    capacity: np.ndarray  # [W, P]


def load_capacity(t: Table | None, cal: Calendar | None, found: Findings) -> Capacity | None:
    """Units per month per workcenter (workcenters sorted); a month with none at all is a warning."""
    if t is None:
        return None
    wc = codes(t, "workcenter", found)
    per = period_positions(t, "period", cal, found)
    qty = numbers(t, "capacity", found)
    duplicates(t, ("workcenter", "period"), found)
    workcenters = sorted({w for w in wc if w})
    widx = {w: i for i, w in enumerate(workcenters)}
    wpos = np.array([widx.get(w, -1) for w in wc], dtype=np.int64)
    capacity = np.zeros((len(workcenters), cal.n_periods if cal else 0), dtype=np.float64)
    ok = valid(wpos, per, qty)
    np.add.at(capacity, (wpos[ok], per[ok]), qty[ok])
    if cal is not None:
        empty = [cal.periods[p] for p in np.flatnonzero(capacity.sum(axis=0) <= 0)]
        if empty:
            found.warnings.append(f"capacity.csv: no capacity in {', '.join(empty)}")
    return Capacity(workcenters, capacity)


def load_routing(
    t: Table | None, dem: Demand | None, cap: Capacity | None, found: Findings
) -> np.ndarray | None:
    """The [F, W] load per unit, or None without routing.csv (pooled capacity)."""
    if t is None or dem is None or cap is None:
        return None
    codes(t, "family", found)
    codes(t, "workcenter", found)
    fpos = lookup(t, "family", {f: i for i, f in enumerate(dem.families)}, found, "unknown family {value}")
    wmap = {w: i for i, w in enumerate(cap.workcenters)}
    wpos = lookup(t, "workcenter", wmap, found, "unknown workcenter {value} (not in capacity.csv)")
    load = numbers(t, "units_per_unit", found)
    duplicates(t, ("family", "workcenter"), found)
    routing = np.zeros((len(dem.families), len(cap.workcenters)), dtype=np.float64)
    ok = valid(fpos, wpos, load)
    np.add.at(routing, (fpos[ok], wpos[ok]), load[ok])
    unrouted = [dem.families[i] for i in np.flatnonzero(routing.sum(axis=1) <= 0)]
    if unrouted:
        found.warnings.append(f"routing.csv: families {', '.join(unrouted)} load no workcenter")
    return routing


# --------------------------------------------------------------------------------------------------
# BOM and the item list


@dataclass
class Bom:
    items: list[str]  # skus first, then components sorted by code
    parent: np.ndarray
    child: np.ndarray
    qty: np.ndarray
    scrap: np.ndarray
    #: component -> (line, column) of the first bom.csv row naming it
    named_at: dict[str, tuple[int, str]] = field(default_factory=dict)


def load_bom(t: Table | None, mix: Mix | None, found: Findings) -> Bom | None:
    """Product structure; the known items are the finished goods plus every BOM parent and child."""
    if t is None or mix is None:
        return None
    parent = codes(t, "parent", found)
    child = codes(t, "child", found)
    qty = numbers(t, "qty", found, minimum=None)
    flag(t, "qty", qty <= 0, "qty must be > 0, got {value}", found)
    scrap = numbers(t, "scrap", found)
    flag(t, "scrap", scrap >= 1, "scrap must be in [0, 1), got {value}", found)
    duplicates(t, ("parent", "child"), found)
    selfref = np.array([p == c and p != "" for p, c in zip(parent, child, strict=True)], dtype=bool)
    flag(t, "child", selfref, "self-referencing BOM row ({value} uses itself)", found)
    fg = set(mix.skus)
    components = sorted(({*parent, *child} - fg) - {""})
    items = mix.skus + components
    index = {code: i for i, code in enumerate(items)}
    ppos = np.array([index.get(p, -1) for p in parent], dtype=np.int64)
    cpos = np.array([index.get(c, -1) for c in child], dtype=np.int64)
    ok = valid(ppos, cpos, qty, scrap) & ~selfref & (qty > 0) & (scrap < 1) & (scrap >= 0)
    _report_cycles(t, items, ppos[ok], cpos[ok], found)
    _warn_orphans(items, fg, ppos[ok], cpos[ok], found)
    named_at: dict[str, tuple[int, str]] = {}
    for line, p, c in zip(t.lines, parent, child, strict=True):
        for code, column in ((p, "parent"), (c, "child")):
            if code and code not in fg:
                named_at.setdefault(code, (line, column))
    return Bom(items, ppos[ok], cpos[ok], qty[ok], scrap[ok], named_at)


def _warn_orphans(
    items: list[str], fg: set[str], parent: np.ndarray, child: np.ndarray, found: Findings
) -> None:
    is_child = np.zeros(len(items), dtype=bool)
    is_child[child] = True
    tops = sorted({items[p] for p in np.unique(parent) if not is_child[p] and items[p] not in fg})
    if tops:
        found.warnings.append(
            f"bom.csv: {', '.join(tops)} is neither a finished good nor used by a parent; never demanded"
        )


def unplanned_after_peeling(n: int, parent: np.ndarray, child: np.ndarray) -> np.ndarray:
    """Nodes left after repeatedly removing nodes without parents: empty exactly when acyclic."""
    indeg = np.bincount(child, minlength=n)
    removed = np.zeros(n, dtype=bool)
    while True:
        frontier = (indeg == 0) & ~removed
        if not frontier.any():
            return np.flatnonzero(~removed)
        removed |= frontier
        indeg = indeg - np.bincount(child[frontier[parent]], minlength=n)


def _report_cycles(
    t: Table, items: list[str], parent: np.ndarray, child: np.ndarray, found: Findings
) -> None:
    left = unplanned_after_peeling(len(items), parent, child)
    if left.size == 0:
        return
    line_of = _edge_lines(t, items)
    for cycle in find_cycles(left.tolist(), parent, child, items):
        names = " → ".join(items[k] for k in cycle)
        found.problem(t.file, line_of.get((cycle[0], cycle[1])), "child", f"BOM cycle: {names}")


def _edge_lines(t: Table, items: list[str]) -> dict[tuple[int, int], int]:
    """First line of every (parent, child) pair; built only when a cycle must be reported."""
    index = {code: i for i, code in enumerate(items)}
    lines: dict[tuple[int, int], int] = {}
    for p, c, line in zip(t.cols["parent"], t.cols["child"], t.lines, strict=True):
        if p in index and c in index:
            lines.setdefault((index[p], index[c]), line)
    return lines


def find_cycles(nodes: list[int], parent: np.ndarray, child: np.ndarray, names: list[str]) -> list[list[int]]:
    """One cycle per strongly connected group of ``nodes``, closed (first == last), smallest name first."""
    keep = set(nodes)
    adj: dict[int, list[int]] = {v: [] for v in nodes}
    for p, c in zip(parent.tolist(), child.tolist(), strict=True):
        if p in keep and c in keep:
            adj[p].append(c)
    cycles = []
    for group in strong_components(sorted(nodes, key=names.__getitem__), adj):
        if len(group) > 1:
            cycles.append(_walk_cycle(set(group), adj, names))
    return sorted(cycles, key=lambda c: [names[k] for k in c])


def _walk_cycle(group: set[int], adj: dict[int, list[int]], names: list[str]) -> list[int]:
    """Follow the smallest-named successor inside ``group`` until a node repeats."""
    path = [min(group, key=names.__getitem__)]
    seen = {path[0]: 0}
    while True:
        nxt = min((w for w in adj[path[-1]] if w in group), key=names.__getitem__)
        if nxt in seen:
            cycle = path[seen[nxt] :]
            start = cycle.index(min(cycle, key=names.__getitem__))
            cycle = cycle[start:] + cycle[:start]
            return cycle + [cycle[0]]
        seen[nxt] = len(path)
        path.append(nxt)


def strong_components(nodes: list[int], adj: dict[int, list[int]]) -> list[list[int]]:
    """Strongly connected components (Kosaraju, iterative)."""
    order: list[int] = []
    seen: set[int] = set()
    for s in nodes:
        if s in seen:
            continue
        seen.add(s)
        stack = [(s, iter(adj[s]))]
        while stack:
            v, it = stack[-1]
            nxt = next((w for w in it if w not in seen), None)
            if nxt is None:
                stack.pop()
                order.append(v)
            else:
                seen.add(nxt)
                stack.append((nxt, iter(adj[nxt])))
    radj: dict[int, list[int]] = {v: [] for v in nodes}
    for v, outs in adj.items():
        for w in outs:
            radj[w].append(v)
    groups, seen = [], set()
    for s in reversed(order):
        if s in seen:
            continue
        seen.add(s)
        group, todo = [], [s]
        while todo:
            v = todo.pop()
            group.append(v)
            fresh = [w for w in radj[v] if w not in seen]
            seen.update(fresh)
            todo.extend(fresh)
        groups.append(group)
    return groups


# --------------------------------------------------------------------------------------------------
# Item master, inventory, open purchase orders


@dataclass
class ItemMaster:
    lt: np.ndarray
    lot: np.ndarray
    moq: np.ndarray
    safety_stock: np.ndarray
    max_lot: np.ndarray
    unit_cost: np.ndarray


def item_lookup(t: Table, items: list[str], found: Findings) -> np.ndarray:
    """Positions of the item column in ``items``. Items the plan does not use (neither a finished good
    in mix_share.csv nor in bom.csv: item masters and stock lists of ERP exports hold many) map to -1
    and are named in one warning; they are not planned."""
    names = codes(t, "item", found)
    index = {code: i for i, code in enumerate(items)}
    pos = np.array([index.get(c, -1) for c in names], dtype=np.int64)
    unused = sorted({c for c, k in zip(names, pos.tolist(), strict=True) if k < 0 and c})
    if unused:
        shown = ", ".join(unused[:5]) + (", ..." if len(unused) > 5 else "")
        found.warnings.append(
            f"{t.file}: {len(unused)} item(s) neither a finished good in mix_share.csv nor in bom.csv are "
            f"not planned ({shown})"
        )
    return pos


def load_items(t: Table | None, bom: Bom | None, found: Findings) -> ItemMaster | None:
    """Lot-sizing and planning attributes of every known item; each known item needs one row."""
    if t is None or bom is None:
        return None
    pos = item_lookup(t, bom.items, found)
    duplicates(t, ("item",), found)
    cols = {c: numbers(t, c, found) for c in ("lt", "moq", "safety_stock", "max_lot", "unit_cost")}
    cols["lot"] = numbers(t, "lot", found, minimum=1.0)
    capped = cols["max_lot"] > 0
    flag(t, "moq", capped & (cols["moq"] > cols["max_lot"]), "moq {value} exceeds max_lot", found)
    flag(t, "max_lot", capped & (cols["max_lot"] < cols["lot"]), "max_lot {value} is below lot", found)
    ok = valid(pos, *cols.values())
    out = {c: np.zeros(len(bom.items), dtype=np.float64) for c in cols}
    for c, values in cols.items():
        out[c][pos[ok]] = values[ok]
    listed = np.zeros(len(bom.items), dtype=bool)
    listed[pos[pos >= 0]] = True
    for k in np.flatnonzero(~listed):
        name = bom.items[k]
        if name in bom.named_at:  # a component: the bom.csv row that names it is where to look
            line, column = bom.named_at[name]
            found.problem("bom.csv", line, column, f"item {name} has no row in {t.file}")
        else:
            found.problem(t.file, None, "item", f"no row for finished good {name} (in mix_share.csv)")
    return ItemMaster(**out)


def load_inventory(t: Table | None, bom: Bom | None, found: Findings) -> np.ndarray | None:
    """Opening on-hand per item, summed over locations."""
    if t is None or bom is None:
        return None
    pos = item_lookup(t, bom.items, found)
    codes(t, "loc", found)
    qty = numbers(t, "qty", found)
    duplicates(t, ("item", "loc"), found)
    ok = valid(pos, qty)
    return np.bincount(pos[ok], weights=qty[ok], minlength=len(bom.items)).astype(np.float64)


def load_open_po(
    t: Table | None, bom: Bom | None, cal: Calendar | None, found: Findings
) -> np.ndarray | None:
    """Scheduled receipts [I, Wk] by the week each purchase order is due."""
    if t is None or bom is None:
        return None
    pos = item_lookup(t, bom.items, found)
    qty = numbers(t, "qty", found)
    week = due_weeks(t, cal, found)
    receipts = np.zeros((len(bom.items), cal.n_weeks if cal else 0), dtype=np.float64)
    ok = valid(pos, qty, week)
    np.add.at(receipts, (pos[ok], week[ok]), qty[ok])
    return receipts


def due_weeks(t: Table, cal: Calendar | None, found: Findings) -> np.ndarray:
    """Week positions of the ``due`` column; bad or outside dues are reported and map to -1."""
    cache: dict[str, int | str] = {}
    out = np.full(len(t), -1, dtype=np.int64)
    for i, (due, line) in enumerate(zip(t.cols["due"], t.lines, strict=True)):
        if due not in cache:
            cache[due] = due_week(due, cal)
        hit = cache[due]
        if isinstance(hit, str):
            found.problem(t.file, line, "due", hit)
        elif hit >= 0:
            out[i] = hit
    return out


def due_week(due: str, cal: Calendar | None) -> int | str:
    """Week position of one due text, -1 without a calendar, or the reason it is unusable."""
    try:
        if _DATE_RE.match(due):
            week = iso_week_code(dt.date.fromisoformat(due))
        elif _WEEK_RE.match(due):
            dt.date.fromisocalendar(int(due[:4]), int(due[6:]), 1)
            week = due
        elif _PERIOD_RE.match(due):
            week = _last_week(due, cal) if cal else ""
        else:
            raise ValueError
    except ValueError:
        return f"bad due {due!r} (expected YYYY-MM-DD, YYYY-Www or YYYY-MM)"
    if cal is None:
        return -1
    if week not in cal.weeks:
        return f"due {due} is outside the calendar"
    return cal.weeks.index(week)


def _last_week(period: str, cal: Calendar) -> str:
    weeks = [b.week for b in cal.buckets if b.period == period]
    return weeks[-1] if weeks else ""


# --------------------------------------------------------------------------------------------------
# Period cost and score


def load_period_values(
    t: Table | None, column: str, cal: Calendar | None, found: Findings
) -> np.ndarray | None:
    """A [P] array from period_cost.csv or period_score.csv; a month not listed gets 0, with a warning."""
    if t is None:
        return None
    per = period_positions(t, "period", cal, found)
    values = numbers(t, column, found, minimum=0.0 if column == "cost" else None)
    duplicates(t, ("period",), found)
    if cal is None:
        return None
    out = np.zeros(cal.n_periods, dtype=np.float64)
    ok = valid(per, values)
    out[per[ok]] = values[ok]
    listed = np.zeros(cal.n_periods, dtype=bool)
    listed[per[per >= 0]] = True
    if not listed.all():
        unlisted = ", ".join(cal.periods[p] for p in np.flatnonzero(~listed))
        found.warnings.append(f"{t.file}: no {column} for {unlisted}; 0 used")
    return out


# --------------------------------------------------------------------------------------------------
# The input set


def load_input_set(path: str | Path, label: str | None = None) -> PlanInputs:
    """Read, validate and index the input set in ``path``; raises InputError with every problem."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError([Problem(str(folder), None, None, "input folder not found")])
    found = Findings()
    t = {file: read_table(folder, file, found) for file in COLUMNS}
    cal = load_calendar(folder, t["demand_family.csv"], found)
    dem = load_demand(t["demand_family.csv"], cal, found)
    mix = load_mix(t["mix_share.csv"], dem, found)
    cap = load_capacity(t["capacity.csv"], cal, found)
    routing = load_routing(t["routing.csv"], dem, cap, found)
    bom = load_bom(t["bom.csv"], mix, found)
    master = load_items(t["item.csv"], bom, found)
    on_hand = load_inventory(t["inventory.csv"], bom, found)
    receipts = load_open_po(t["open_po.csv"], bom, cal, found)
    cost = load_period_values(t["period_cost.csv"], "cost", cal, found)
    score = load_period_values(t["period_score.csv"], "score", cal, found)
    if found.problems:
        raise InputError(found.listed())
    assert cal and dem and mix and cap and bom and master and on_hand is not None and receipts is not None
    return PlanInputs(
        label=label if label is not None else folder.name,
        calendar=cal,
        families=dem.families,
        demand=dem.demand,
        skus=mix.skus,
        sku_family=mix.sku_family,
        sku_share=mix.sku_share,
        workcenters=cap.workcenters,
        capacity=cap.capacity,
        routing=routing,
        items=bom.items,
        item_lt=master.lt,
        item_lot=master.lot,
        item_moq=master.moq,
        item_safety_stock=master.safety_stock,
        item_max_lot=master.max_lot,
        item_unit_cost=master.unit_cost,
        on_hand=on_hand,
        scheduled_receipts=receipts,
        bom_parent=bom.parent,
        bom_child=bom.child,
        bom_qty=bom.qty,
        bom_scrap=bom.scrap,
        period_cost=cost,
        period_score=score,
        warnings=found.warnings,
    )
