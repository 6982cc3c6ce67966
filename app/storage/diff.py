"""What changed between two plan versions: the planner's diff (SPEC 5.2 ``diff``, ``diff.csv``).

A version is compared with a *base*: the one asked for, else its parent (a reconcile or reopen child),
else the previous ready version planned from the same input set. Comparing versions of different
input sets compares every cell and is refused (``DiffConflict``) unless the caller confirms it.

One row per (level, key, measure) whose *effective* values differ — plan rows with the PSI overrides of
each version applied to its aggregate and sku_week cells — with ``base`` (the base's value), ``other``
(this version's value) and ``delta = other − base``, each in its unit. Levels: ``aggregate``,
``sku_week``, ``plan_final`` (the item master's constants — lot, moq, lead time, safety stock, low-level
code — are inputs, not compared), KPIs first. A key present on one side only has null on the other.

Every answer is one *walk* over the levels in a fixed order, so a page, the whole count and
``diff.csv`` agree: per level the base's rows in their order, then the keys only this version has,
then the cells PSI overrides touch. A position in that walk (:class:`Cursor`) is where a page ends and
the next begins. Where both versions are read from PlanRepository rows and a level's rows line up —
the same number of rows and the same keys at every position (``seq``), as versions of one input set
have — the database walks it: bounded ranges of ``seq``, the two versions' rows paired on the primary
key, and only the rows whose keys or values are DISTINCT FROM leave the database, so a page costs the
rows it looks through, not the level. A level whose rows do not line up (found out by its row count,
or by a range in which the keys differ) and every level of a version read from artifacts are read
whole and compared here by key: there is no key to walk in order without reading it all. KPIs, a few
hundred rows, are compared whole (a full outer join on their keys). Reads only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, tuple_

from app.errors import DiffConflict
from app.planning import documents as docs
from app.storage import views
from app.storage.codec_series import ITEM_CONSTANTS, PLANNED_KEYS, Level
from app.storage.plans import PlanStore, VersionInfo
from app.storage.schema import plan_kpis, plan_series

COLUMNS = ("level", "key", "measure", "base", "other", "delta")
#: Measures counted in orders; every other plan quantity is in units (KPIs carry their own unit).
COUNT_MEASURES = ("orders", "orders_adj")


@dataclass(frozen=True)
class DiffLevel:
    """One compared level: its table (``views.TABLES``), row keys and compared measures."""

    name: str
    table: str
    keys: tuple[str, ...]
    measures: tuple[str, ...]
    psi_level: str | None  # the PSI level whose overrides apply to its cells


def _numeric(table: str, keys: tuple[str, ...], leave_out: tuple[str, ...] = ()) -> tuple[str, ...]:
    shape = views.TABLES[table].shape
    return tuple(
        k for k, kind in shape.items() if kind in ("num", "num?", "int") and k not in keys + leave_out
    )


LEVELS = (
    DiffLevel("kpis", "kpis", ("metric", "bucket_type", "bucket_key"), ("value",), None),
    DiffLevel("aggregate", "aggregate", ("family", "period"), _numeric("aggregate", ("family", "period")), "aggregate"),
    DiffLevel("sku_week", "detail", ("sku", "period", "week"), _numeric("detail", ("sku", "period", "week")), "det"),
    DiffLevel("plan_final", "final", ("item", "week"), _numeric("final", ("item", "week"), ITEM_CONSTANTS), None),
)  # fmt: skip


# --- the base ---------------------------------------------------------------------------------------


def choose_base(
    store: PlanStore, info: VersionInfo, against: str | None, across_inputs: bool = False
) -> tuple[VersionInfo, str]:
    """The base version and why it was chosen. ``DiffConflict`` when there is none, or when it was
    planned from another input set and ``across_inputs`` is not set."""
    if against:
        base, reason = store.get_version(against), "given"
    elif info.parent_version_id:
        base, reason = store.get_version(info.parent_version_id), "parent"
    else:
        previous = store.previous_version(info)
        if previous is None:
            raise DiffConflict(
                f"plan version {info.version_id!r} has no parent and no earlier version of input set "
                f"{info.input_label!r}: give the version to compare with (against)",
                {"version_id": info.version_id, "input_label": info.input_label},
            )
        base, reason = previous, "previous"
    for version in (info, base):
        if version.status != "ready":
            raise DiffConflict(
                f"plan version {version.version_id!r} is {version.status}; only ready versions are compared",
                {"version_id": version.version_id, "status": version.status},
            )
    if base.input_label != info.input_label and not across_inputs:
        raise DiffConflict(
            f"{info.version_id!r} was planned from input set {info.input_label!r} and {base.version_id!r} "
            f"from {base.input_label!r}: every cell may differ; confirm with across_inputs=true",
            {"input_label": info.input_label, "against_input_label": base.input_label},
        )
    return base, reason


@dataclass
class Diff:
    """The differences of ``version_id`` against its base ``against``: every level's count and the
    rows asked for (all of them, or one page)."""

    version_id: str
    against: str
    base_reason: str  # given | parent | previous
    source: str  # rows (compared in the database) | artifacts
    counts: dict[str, int]
    rows: list[dict[str, Any]]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


#: One key's values on both sides: (level, key, base values, this version's values, (in base, in this),
#: unit) — values in ``level.measures`` order, as read.
Group = tuple[DiffLevel, tuple[Any, ...], Sequence[Any], Sequence[Any], tuple[bool, bool], str | None]

#: A position within a level's walk: (part, index). Parts, in walk order: the base's rows (index: the
#: base's row position), the keys only this version has (index: its row position), the cells PSI
#: overrides touch (index: their place in that list).
At = tuple[int, int]
BASE_ROWS, ADDED, OVERRIDDEN = 0, 1, 2
CELL_LEVELS = tuple(level for level in LEVELS if level.name != "kpis")
#: How far a page request's walk goes at most: this many base rows compared, or this long spent
#: walking (the first range past either ends it). A page stops there even when it holds fewer cells
#: than asked for (a sparse diff: its cursor goes on from there), so a page costs a bounded time; a
#: plan_final row (four rows read) costs about three SKU x week rows.
PAGE_LOOK, PAGE_SECONDS = 100_000, 0.05
#: Base rows a page compares before the clock may stop it (a small plan's page does not depend on load).
PAGE_LOOK_FIRST = 5_000
#: Rows of one range query: small for a page (it stops early), larger for a whole walk.
PAGE_CHUNK, WHOLE_CHUNK = 1_000, 50_000
_CURSOR = re.compile(r"(?P<level>[a-z_]+):(?P<part>[012]):(?P<index>-1|\d{1,10})")


@dataclass(frozen=True)
class Cursor:
    """Where a page of changed cells ends: everything up to ``at`` of ``level`` is shown."""

    level: str
    at: At

    def text(self) -> str:
        return f"{self.level}:{self.at[0]}:{self.at[1]}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """A cursor from :meth:`text`; anything else is a ValueError (422)."""
        found = _CURSOR.fullmatch(text)
        if found is None or found["level"] not in {level.name for level in CELL_LEVELS}:
            raise ValueError(f"after must be a cursor from the diff page (level:part:index), not {text!r}")
        level, part, index = found["level"], found["part"], found["index"]
        return cls(level, (int(part), int(index)))


@dataclass
class DiffPage:
    """One page of the changed cells after ``after`` (KPIs apart): the cells, the KPIs that differ,
    and the cursor of the next page (None: the walk is at its end)."""

    version_id: str
    against: str
    base_reason: str
    source: str
    kpis: list[dict[str, Any]]
    cells: list[dict[str, Any]]
    next: Cursor | None
    looked: int  # base rows compared by this request (the ones read whole included)


@dataclass(frozen=True)
class _Found:
    """A key's differing cells (``n`` of them, built by ``make``) at a position of the walk."""

    level: DiffLevel
    at: At
    n: int
    make: Callable[[], list[dict[str, Any]]]


@dataclass(frozen=True)
class _LookedThrough:
    """Every row of the level up to ``at`` is compared; ``rows`` of them since the previous mark."""

    level: DiffLevel
    at: At
    rows: int


def diff_versions(
    store: PlanStore,
    version_id: str,
    against: str | None = None,
    across_inputs: bool = False,
    *,
    offset: int = 0,
    limit: int | None = None,
) -> Diff:
    """The differences of ``version_id`` against ``against`` (default: its parent or the previous
    version of its input set); see the module docstring. With ``limit`` only the rows of that page are
    built (the counts are always whole: the whole walk)."""
    walk = _Walk.of(store, version_id, against, across_inputs)
    page = _Page(offset, None if limit is None else offset + limit)
    with store.engine.connect() as conn:
        for step in walk.steps(conn, LEVELS, None, WHOLE_CHUNK):
            if isinstance(step, _Found):
                page.take(step.level, step.n, step.make)
    return Diff(walk.info.version_id, walk.base.version_id, walk.reason, walk.source, page.counts, page.rows)


def diff_page(
    store: PlanStore,
    version_id: str,
    against: str | None = None,
    across_inputs: bool = False,
    *,
    after: Cursor | None = None,
    limit: int = 200,
    look: int = PAGE_LOOK,
    seconds: float = PAGE_SECONDS,
) -> DiffPage:
    """The KPIs that differ and the next ``limit`` changed cells after ``after`` (whole keys: a page
    ends with a key's last cell, so it may hold a few more). The walk stops at the first change past a
    full page, or at the first range past ``look`` base rows compared or past ``seconds`` spent (once
    ``PAGE_LOOK_FIRST`` rows are compared): nothing counts the changes a page does not show."""
    walk = _Walk.of(store, version_id, against, across_inputs)
    until = time.monotonic() + seconds
    kpi_level = LEVELS[0]
    cells: list[dict[str, Any]] = []
    looked, last, ended = 0, after, True
    with store.engine.connect() as conn:
        kpis = [c for s in walk.steps(conn, (kpi_level,), None, WHOLE_CHUNK) if isinstance(s, _Found) for c in s.make()]  # fmt: skip
        for step in walk.steps(conn, CELL_LEVELS, after, PAGE_CHUNK):
            if isinstance(step, _Found):
                if len(cells) >= limit:
                    ended = False
                    break
                cells.extend(step.make())
            else:
                looked += step.rows
            last = Cursor(step.level.name, step.at)
            if isinstance(step, _LookedThrough) and (
                looked >= look or (looked >= min(look, PAGE_LOOK_FIRST) and time.monotonic() >= until)
            ):
                ended = False
                break
    next_cursor = None if ended else last
    return DiffPage(walk.info.version_id, walk.base.version_id, walk.reason, walk.source, kpis, cells, next_cursor, looked)  # fmt: skip


def diff_csv_stream(
    store: PlanStore, version_id: str, against: str | None = None, across_inputs: bool = False
) -> tuple[str, Iterator[str]]:
    """The base's id and ``diff.csv`` (SPEC 5.2) in chunks, the whole walk streamed: one key's cells
    at a time. A bad request (no base, another input set) fails here, before the first chunk."""
    walk = _Walk.of(store, version_id, against, across_inputs)

    def cells() -> Iterator[dict[str, Any]]:
        with store.engine.connect() as conn:
            for step in walk.steps(conn, LEVELS, None, WHOLE_CHUNK):
                if isinstance(step, _Found):
                    yield from step.make()

    return walk.base.version_id, views.csv_from_dicts(COLUMNS, cells())


class _Page:
    """Counts every level's differences and builds only the cells that fall on the page."""

    def __init__(self, offset: int, end: int | None):
        self.offset, self.end, self.seen = offset, end, 0
        self.counts = {level.name: 0 for level in LEVELS}
        self.rows: list[dict[str, Any]] = []

    def take(self, level: DiffLevel, n: int, make: Callable[[], list[dict[str, Any]]]) -> None:
        if n and self.seen + n > self.offset and (self.end is None or self.seen < self.end):
            lo = max(0, self.offset - self.seen)
            hi = None if self.end is None else self.end - self.seen
            self.rows.extend(make()[lo:hi])
        self.seen += n
        self.counts[level.name] += n


# --- the walk -------------------------------------------------------------------------------------------


@dataclass
class _Walk:
    """The two versions compared, where each is read from, and the cells their PSI overrides touch."""

    store: PlanStore
    info: VersionInfo
    base: VersionInfo
    reason: str
    sources: dict[str, str]
    patch: _OverridePatch

    @classmethod
    def of(cls, store: PlanStore, version_id: str, against: str | None, across_inputs: bool) -> _Walk:
        info = store.get_version(version_id)
        base, reason = choose_base(store, info, against, across_inputs)
        sources = {v.version_id: views.read_source(store, v) for v in (base, info)}  # looked up once
        return cls(store, info, base, reason, sources, _OverridePatch.of(store, base, info, sources))

    @property
    def source(self) -> str:
        return views.ROWS if set(self.sources.values()) == {views.ROWS} else views.ARTIFACTS

    def steps(
        self, conn: Any, levels: Sequence[DiffLevel], after: Cursor | None, chunk: int
    ) -> Iterator[_Found | _LookedThrough]:
        """The walk over ``levels`` from just after ``after``: each key that differs, and marks of how
        far the rows are compared."""
        names = [level.name for level in levels]
        start = names.index(after.level) if after is not None else 0
        for level in levels[start:]:
            at = after.at if after is not None and after.level == level.name else (BASE_ROWS, -1)
            if at[0] < OVERRIDDEN:
                for item in self._groups(conn, level, at, chunk):
                    if isinstance(item, _LookedThrough):
                        yield item
                        continue
                    where, group = item
                    skip = self.patch.replaced(level, group[1])
                    n = _count(group, skip)
                    if n:
                        yield _Found(level, where, n, lambda g=group, s=skip: _cells(g, s))
            patched = self.patch.cells.get(level.name, [])
            first = at[1] + 1 if at[0] == OVERRIDDEN else 0
            for i in range(first, len(patched)):
                yield _Found(level, (OVERRIDDEN, i), 1, lambda c=patched[i]: [c])

    def _groups(self, conn: Any, level: DiffLevel, at: At, chunk: int) -> Iterator[tuple[At, Group] | _LookedThrough]:  # fmt: skip
        if self.source != views.ROWS:
            yield from self._by_key(level, at)
        elif level.name == "kpis":
            query, shape = _kpi_query(self.base.version_id, self.info.version_id)
            for i, r in enumerate(conn.execute(query)):
                yield (BASE_ROWS, i), (level, *shape(r))
        else:
            yield from self._in_database(conn, level, at, chunk)

    def _in_database(self, conn: Any, level: DiffLevel, at: At, chunk: int) -> Iterator[tuple[At, Group] | _LookedThrough]:  # fmt: skip
        """A level whose rows line up, walked by ranges of ``seq``; where they turn out not to, the
        rest of the level by key. Only :meth:`_by_key` makes an ``ADDED`` position, so a cursor there
        means the level does not line up."""
        b_id, o_id = self.base.version_id, self.info.version_id
        last = _last_seq(conn, level, b_id)
        if at[0] != BASE_ROWS or last != _last_seq(conn, level, o_id):
            yield from self._by_key(level, at)
            return
        lo = at[1]
        while last is not None and lo < last:
            hi = min(lo + chunk, last)
            query, shape = _series_query(level, b_id, o_id, (lo, hi))
            for r in conn.execute(query):
                seq, keys_match, group = shape(r)
                if not keys_match:  # the rows stop lining up here: by key from the row before
                    yield from self._by_key(level, (BASE_ROWS, seq - 1))
                    return
                yield (BASE_ROWS, seq), (level, *group)
            yield _LookedThrough(level, (BASE_ROWS, hi), hi - lo)
            lo = hi

    def _by_key(self, level: DiffLevel, at: At) -> Iterator[tuple[At, Group] | _LookedThrough]:
        """The level read whole from both versions and compared by key: the base's rows after ``at``,
        then the keys only this version has."""
        spec = views.TABLES[level.table]
        b_rows = views.read_all(self.store, self.base, spec, self.sources[self.base.version_id])
        o_rows = views.read_all(self.store, self.info, spec, self.sources[self.info.version_id])
        b, o = _keyed(b_rows, level.keys), _keyed(o_rows, level.keys)

        def group(key: tuple[Any, ...], br: dict | None, orow: dict | None) -> Group:
            values = [[(row or {}).get(m) for m in level.measures] for row in (br, orow)]
            unit = (br or orow or {}).get("unit")
            return level, key, values[0], values[1], (br is not None, orow is not None), unit

        looked = 0
        if at[0] == BASE_ROWS:
            for i in range(at[1] + 1, len(b_rows)):
                key = tuple(b_rows[i].get(k) for k in level.keys)
                looked += 1
                yield (BASE_ROWS, i), group(key, b_rows[i], o.get(key))
        first = at[1] + 1 if at[0] == ADDED else 0
        for j in range(first, len(o_rows)):
            key = tuple(o_rows[j].get(k) for k in level.keys)
            looked += 1
            if key not in b:
                yield (ADDED, j), group(key, None, o_rows[j])
        if looked:  # a mark only where rows were compared, so a cursor at the end moves on
            yield _LookedThrough(level, (ADDED, len(o_rows) - 1), looked)


# --- in the database ---------------------------------------------------------------------------------


def _series_keys(level: DiffLevel, t: Any) -> list[Any]:
    if level.name == "aggregate":
        return [t.c.group_key, t.c.period_key]
    return [t.c.item_key, t.c.time_bucket_key]  # a detail bucket's week@period holds its period


def _last_seq(conn: Any, level: DiffLevel, version_id: str) -> int | None:
    """The level's last ``seq`` (rows are ``seq`` 0..n-1, so this is its row count less one): one
    look at the primary key, not a count."""
    t = plan_series
    query = select(func.max(t.c.seq)).where(
        t.c.version_id == version_id, t.c.level == _series_level(level).name
    )
    return conn.execute(query).scalar_one()


def _series_level(level: DiffLevel) -> Level:
    found = views.TABLES[level.table].level
    assert found is not None
    return found


def _series_query(
    level: DiffLevel, base_id: str, this_id: str, seqs: tuple[int, int]
) -> tuple[Any, Callable[[Sequence[Any]], tuple]]:
    """The base's rows with ``seq`` in ``(seqs[0], seqs[1]]`` whose keys or measures differ from this
    version's row at the same ``seq``, in ``seq`` order: (seq, keys match, group without its level)."""
    series = _series_level(level)
    b, o = plan_series.alias("b"), plan_series.alias("o")

    def rows_of(t: Any, version_id: str, level_name: str) -> Any:
        # every side names its version, level and seq range, so each is one range of the primary key
        # whatever join the database picks (PostgreSQL without statistics otherwise scans a whole level
        # for every row of the range)
        return and_(
            t.c.version_id == version_id, t.c.level == level_name, t.c.seq > seqs[0], t.c.seq <= seqs[1]
        )

    source = b.join(o, and_(rows_of(o, this_id, series.name), o.c.seq == b.c.seq))
    sides = {"b": b, "o": o}
    if series.base:  # plan_final rows borrow their planned part from the mrp row at the same seq
        for name, row, version_id in (("b", b, base_id), ("o", o, this_id)):
            planned = plan_series.alias(f"{name}_planned")
            source = source.outerjoin(
                planned, and_(rows_of(planned, version_id, series.base), planned.c.seq == row.c.seq)
            )
            sides[f"{name}_planned"] = planned

    def value(side: str, measure: str) -> Any:
        column = series.columns_of.get(measure, measure)
        own = sides[side].c[column]
        if series.base and measure in PLANNED_KEYS:
            return func.coalesce(own, sides[f"{side}_planned"].c[column])
        return own

    pairs = [(value("b", m), value("o", m)) for m in level.measures]
    key_pairs = list(zip(_series_keys(level, b), _series_keys(level, o), strict=True))
    keys = _series_keys(level, b) + ([b.c.period_key] if level.name == "sku_week" else [])
    keys_differ = or_(*(x.is_distinct_from(y) for x, y in key_pairs))
    query = (
        select(b.c.seq, keys_differ, *keys, *(x for x, _ in pairs), *(y for _, y in pairs))
        .select_from(source)
        .where(
            rows_of(b, base_id, series.name),
            or_(keys_differ, *(x.is_distinct_from(y) for x, y in pairs)),
        )
        .order_by(b.c.seq)
    )
    n_keys, n = len(keys), len(level.measures)

    def shape(r: Sequence[Any]) -> tuple[Any, ...]:
        seq, differ, r = r[0], r[1], r[2:]
        key = tuple(r[:n_keys])
        if level.name == "sku_week":  # (sku, week@period, period) -> (sku, period, week)
            sku, bucket, period = key
            key = (sku, period, bucket.removesuffix(f"@{period}"))
        return seq, not differ, (key, r[n_keys : n_keys + n], r[n_keys + n :], (True, True), None)

    return query, shape


def _kpi_query(base_id: str, this_id: str) -> tuple[Any, Callable[[Sequence[Any]], tuple]]:
    """The KPI rows that differ (a few hundred rows a version: a full outer join on their keys), in the
    base's document order."""
    t = plan_kpis

    def side(version_id: str, name: str) -> Any:
        return (
            select(t.c.metric, t.c.bucket_type, t.c.bucket_key, t.c.value, t.c.unit, t.c.seq)
            .where(t.c.version_id == version_id)
            .subquery(name)
        )

    b, o = side(base_id, "b"), side(this_id, "o")
    keys = ("metric", "bucket_type", "bucket_key")
    on = and_(*(b.c[k] == o.c[k] for k in keys))
    differs = or_(b.c.metric.is_(None), o.c.metric.is_(None), b.c.value.is_distinct_from(o.c.value))
    query = (
        select(*(b.c[k] for k in keys), *(o.c[k] for k in keys), b.c.value, o.c.value, b.c.unit, o.c.unit)
        .select_from(b.join(o, on, full=True))
        .where(differs)
        .order_by(func.coalesce(b.c.seq, o.c.seq + 1_000_000))  # document order; this version's extras last
    )

    def shape(r: Sequence[Any]) -> tuple[Any, ...]:
        bk, ok = r[0:3], r[3:6]
        present = (bk[0] is not None, ok[0] is not None)
        return tuple(bk if present[0] else ok), (r[6],), (r[7],), present, r[8] or r[9]

    return query, shape


def _keyed(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r.get(k) for k in keys): r for r in rows}


# --- rows of the result ----------------------------------------------------------------------------------


_NOTHING: frozenset[str] = frozenset()


def _count(group: Group, skip: frozenset[str] = _NOTHING) -> int:
    """How many of a key's measures differ (all of them for a key on one side only), ``skip`` aside."""
    level, _, base, other, present, _ = group
    if not (present[0] and present[1]):
        return len(level.measures) - len(skip)
    if skip:
        return sum(1 for m, b, o in zip(level.measures, base, other, strict=True) if b != o and m not in skip)
    return sum(1 for b, o in zip(base, other, strict=True) if b != o)


def _cells(group: Group, skip: frozenset[str] = _NOTHING) -> list[dict[str, Any]]:
    """The diff rows of one key: one per measure whose values differ; values converted only there."""
    level, key, base, other, present, unit = group
    both = present[0] and present[1]
    text = "|".join(map(str, key))
    return [
        _cell(level, text, m, _value(bv), _value(ov), unit)
        for m, bv, ov in zip(level.measures, base, other, strict=True)
        if not (both and bv == ov) and m not in skip
    ]


def _cell(
    level: DiffLevel, key: str, measure: str, base: Any, other: Any, unit: str | None
) -> dict[str, Any]:
    numbers = isinstance(base, (int, float)) and isinstance(other, (int, float))
    delta = docs.num(round(other - base, 9)) if numbers else None  # no float noise in a delta
    if level.name != "kpis":
        unit = "count" if measure in COUNT_MEASURES else "units"
    return {"level": level.name, "key": key, "measure": measure, "base": base, "other": other, "delta": delta, "unit": unit}  # fmt: skip


def _value(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    return docs.num(value) if isinstance(value, (int, float)) else value


# --- PSI overrides: effective values ----------------------------------------------------------------------


def _overrides(store: PlanStore, version_id: str) -> dict[tuple[str, tuple[str, ...]], dict[str, Any]]:
    """(PSI level, key) -> overridden values of a version ({} without PSI state)."""
    with store.psi_session(version_id, for_update=False) as session:
        state = session.state()
    return {k: dict(e.get("values") or {}) for k, e in state.overrides.items() if e.get("values")}


@dataclass
class _OverridePatch:
    """The cells either version's PSI overrides touch: compared at their effective values instead of
    the planned ones."""

    replaced_cells: dict[tuple[str, str], frozenset[str]]  # (level, key text) -> measures
    cells: dict[str, list[dict[str, Any]]]  # level -> the effective differences of those cells

    @classmethod
    def of(
        cls, store: PlanStore, base: VersionInfo, info: VersionInfo, sources: dict[str, str]
    ) -> _OverridePatch:
        base_ov, this_ov = _overrides(store, base.version_id), _overrides(store, info.version_id)
        if not base_ov and not this_ov:
            return cls({}, {})
        by_level = {level.psi_level: level for level in LEVELS if level.psi_level}
        touched: dict[str, set[tuple[str, ...]]] = {name: set() for name in by_level}
        for psi_level, key in (*base_ov, *this_ov):
            if psi_level in touched:
                touched[psi_level].add(key)
        replaced: dict[tuple[str, str], frozenset[str]] = {}
        cells: dict[str, list[dict[str, Any]]] = {}
        for psi_level, keys in touched.items():
            if not keys:
                continue
            level = by_level[psi_level]
            raw = _raw_cells(store, level, [base, info], sources, keys)
            for key in sorted(keys):
                row_key = _row_key(level, key)
                text = "|".join(row_key)
                replaced[(level.name, text)] = frozenset(("demand", "supply"))
                for field in ("demand", "supply"):
                    b_raw = raw.get((base.version_id, row_key), {}).get(field)
                    o_raw = raw.get((info.version_id, row_key), {}).get(field)
                    bv = _value(base_ov.get((psi_level, key), {}).get(field, b_raw))
                    ov = _value(this_ov.get((psi_level, key), {}).get(field, o_raw))
                    if bv != ov:
                        cells.setdefault(level.name, []).append(_cell(level, text, field, bv, ov, None))
        return cls(replaced, cells)

    def replaced(self, level: DiffLevel, key: tuple[Any, ...]) -> frozenset[str]:
        if not self.replaced_cells or level.psi_level is None:
            return _NOTHING
        return self.replaced_cells.get((level.name, "|".join(map(str, key))), _NOTHING)


def _row_key(level: DiffLevel, psi_key: tuple[str, ...]) -> tuple[str, ...]:
    """A PSI key as the diff level keys it: aggregate (family, period); det (sku, week, period) ->
    sku_week (sku, period, week)."""
    if level.name == "sku_week":
        sku, week, period = psi_key
        return sku, period, week
    return psi_key


def _raw_cells(
    store: PlanStore,
    level: DiffLevel,
    versions: list[VersionInfo],
    sources: dict[str, str],
    psi_keys: set[tuple[str, ...]],
) -> dict[tuple[str, tuple[str, ...]], dict[str, Any]]:
    """(version, row key) -> {demand, supply} as planned, for the given cells of both versions."""
    out: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    spec = views.TABLES[level.table]
    for info in versions:
        version_id = info.version_id
        if sources[version_id] == views.ROWS:
            if level.name == "aggregate":
                key_cols = (plan_series.c.group_key, plan_series.c.period_key)
                wanted = [tuple(k) for k in psi_keys]
            else:
                key_cols = (plan_series.c.item_key, plan_series.c.time_bucket_key)
                wanted = [(sku, f"{week}@{period}") for sku, week, period in psi_keys]
            query = select(*key_cols, plan_series.c.period_key, plan_series.c.demand, plan_series.c.supply).where(
                plan_series.c.version_id == version_id,
                plan_series.c.level == spec.level.name,  # type: ignore[union-attr]
                tuple_(*key_cols).in_(wanted),
            )  # fmt: skip
            with store.engine.connect() as conn:
                for k0, k1, period, demand, supply in conn.execute(query):
                    key = (
                        (k0, k1) if level.name == "aggregate" else (k0, period, k1.removesuffix(f"@{period}"))
                    )
                    out[(version_id, key)] = {"demand": demand, "supply": supply}
        else:
            wanted_keys = {_row_key(level, k) for k in psi_keys}
            for r in views.read_all(store, info, spec, views.ARTIFACTS):
                key = tuple(r[k] for k in level.keys)
                if key in wanted_keys:
                    out[(version_id, key)] = {"demand": r["demand"], "supply": r["supply"]}
    return out
