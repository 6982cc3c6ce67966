"""What changed between two plan versions: the planner's diff (SPEC 5.2 ``diff``, ``diff.csv``).

A version is compared with a *base*: the one asked for, else its parent (a reconcile or reopen child),
else the previous ready version planned from the same input set. Comparing versions of different
input sets compares every cell and is refused (``DiffConflict``) unless the caller confirms it.

One row per (level, key, measure) whose *effective* values differ — plan rows with the PSI overrides of
each version applied to its aggregate and sku_week cells — with ``base`` (the base's value), ``other``
(this version's value) and ``delta = other − base``, each in its unit. Levels: ``aggregate``,
``sku_week``, ``plan_final`` (the item master's constants — lot, moq, lead time, safety stock, low-level
code — are inputs, not compared), KPIs first. A key present on one side only has null on the other.

Where both versions are read from PlanRepository rows and their rows line up — the same keys at the
same positions, as versions of one input set have — the database finds the differences: per level one
query pairs the two versions' rows on the primary key and keeps those whose values are DISTINCT FROM,
so only what differs leaves the database (KPIs, a few hundred rows, by a full outer join on their
keys). Otherwise (artifacts, or versions whose rows do not line up) the rows are read and compared
here. Reads only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
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
    built (the counts are always whole)."""
    info = store.get_version(version_id)
    base, reason = choose_base(store, info, against, across_inputs)
    sources = {v.version_id: views.read_source(store, v) for v in (base, info)}  # looked up once
    patch = _OverridePatch.of(store, base, info, sources)
    page = _Page(offset, None if limit is None else offset + limit)
    with store.engine.connect() as conn:
        groups = _row_groups(conn, base, info) if set(sources.values()) == {views.ROWS} else None
        source = views.ROWS
        if groups is None:
            groups, source = _artifact_groups(store, base, info, sources), views.ARTIFACTS
        for level in LEVELS:
            for group in groups[level.name]:
                skip = patch.replaced(level, group[1])
                page.take(level, _count(group, skip), lambda g=group, s=skip: _cells(g, s))
            patched = patch.cells.get(level.name, [])
            page.take(level, len(patched), lambda p=patched: p)
    return Diff(info.version_id, base.version_id, reason, source, page.counts, page.rows)


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


def diff_csv(rows: Iterable[dict[str, Any]]) -> str:
    """``diff.csv``: ``level,key,measure,base,other,delta`` (SPEC 5.2), numbers plain."""
    return "".join(views.csv_from_dicts(COLUMNS, list(rows)))


# --- in the database ---------------------------------------------------------------------------------


def _row_groups(conn: Any, base: VersionInfo, info: VersionInfo) -> dict[str, Iterable[Group]] | None:
    """Per level, the keys whose values differ as the database finds them (read as they are iterated),
    or None when the two versions' rows do not line up (a level's rows differ in number or in the
    keys at some position: other input sets or calendars)."""
    if not all(
        _aligned(conn, level, base.version_id, info.version_id) for level in LEVELS if level.name != "kpis"
    ):
        return None

    def level_groups(level: DiffLevel) -> Iterator[Group]:
        if level.name == "kpis":
            query, shape = _kpi_query(base.version_id, info.version_id)
        else:
            query, shape = _series_query(level, base.version_id, info.version_id)
        for r in conn.execute(query):
            yield (level, *shape(r))

    return {level.name: level_groups(level) for level in LEVELS}


def _series_keys(level: DiffLevel, t: Any) -> list[Any]:
    if level.name == "aggregate":
        return [t.c.group_key, t.c.period_key]
    return [t.c.item_key, t.c.time_bucket_key]  # a detail bucket's week@period holds its period


def _aligned(conn: Any, level: DiffLevel, base_id: str, this_id: str) -> bool:
    """Whether both versions hold the level's rows in the same number and with the same keys at every
    position (``seq``), so they can be paired on the primary key."""
    name = _series_level(level).name
    b, o = plan_series.alias("b"), plan_series.alias("o")
    counts = dict(
        conn.execute(
            select(plan_series.c.version_id, func.count())
            .where(plan_series.c.version_id.in_([base_id, this_id]), plan_series.c.level == name)
            .group_by(plan_series.c.version_id)
        ).all()
    )
    if counts.get(base_id, 0) != counts.get(this_id, 0):
        return False
    mismatch = or_(
        *(x.is_distinct_from(y) for x, y in zip(_series_keys(level, b), _series_keys(level, o), strict=True))
    )
    query = (
        select(func.count())
        .select_from(b.join(o, and_(o.c.version_id == this_id, o.c.level == b.c.level, o.c.seq == b.c.seq)))
        .where(b.c.version_id == base_id, b.c.level == name, mismatch)
    )
    return conn.execute(query).scalar_one() == 0


def _series_level(level: DiffLevel) -> Level:
    found = views.TABLES[level.table].level
    assert found is not None
    return found


def _series_query(
    level: DiffLevel, base_id: str, this_id: str
) -> tuple[Any, Callable[[Sequence[Any]], tuple]]:
    """The rows of a level whose measures differ, the two versions' rows paired on the primary key."""
    series = _series_level(level)
    b, o = plan_series.alias("b"), plan_series.alias("o")
    source = b.join(o, and_(o.c.version_id == this_id, o.c.level == b.c.level, o.c.seq == b.c.seq))
    sides = {"b": b, "o": o}
    if series.base:  # plan_final rows borrow their planned part from the mrp row at the same seq
        for name, row in list(sides.items()):
            planned = plan_series.alias(f"{name}_planned")
            source = source.outerjoin(
                planned,
                and_(planned.c.version_id == row.c.version_id, planned.c.level == series.base, planned.c.seq == row.c.seq),
            )  # fmt: skip
            sides[f"{name}_planned"] = planned

    def value(side: str, measure: str) -> Any:
        column = series.columns_of.get(measure, measure)
        own = sides[side].c[column]
        if series.base and measure in PLANNED_KEYS:
            return func.coalesce(own, sides[f"{side}_planned"].c[column])
        return own

    pairs = [(value("b", m), value("o", m)) for m in level.measures]
    keys = _series_keys(level, b) + ([b.c.period_key] if level.name == "sku_week" else [])
    query = (
        select(*keys, *(x for x, _ in pairs), *(y for _, y in pairs))
        .select_from(source)
        .where(
            b.c.version_id == base_id,
            b.c.level == series.name,
            or_(*(x.is_distinct_from(y) for x, y in pairs)),
        )
        .order_by(b.c.seq)
    )
    n_keys, n = len(keys), len(level.measures)

    def shape(r: Sequence[Any]) -> tuple[Any, ...]:
        key = tuple(r[:n_keys])
        if level.name == "sku_week":  # (sku, week@period, period) -> (sku, period, week)
            sku, bucket, period = key
            key = (sku, period, bucket.removesuffix(f"@{period}"))
        return key, r[n_keys : n_keys + n], r[n_keys + n :], (True, True), None

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


# --- from artifacts ------------------------------------------------------------------------------------


def _artifact_groups(
    store: PlanStore, base: VersionInfo, info: VersionInfo, sources: dict[str, str]
) -> dict[str, Iterable[Group]]:
    """Per level, every key of either version with its values (compared by :func:`_count`)."""
    out: dict[str, Iterable[Group]] = {}
    for level in LEVELS:
        spec = views.TABLES[level.table]
        b = _keyed(views.read_all(store, base, spec, sources[base.version_id]), level.keys)
        o = _keyed(views.read_all(store, info, spec, sources[info.version_id]), level.keys)
        groups: list[Group] = []
        for key in [*b, *(k for k in o if k not in b)]:
            br, orow = b.get(key), o.get(key)
            values = [[(row or {}).get(m) for m in level.measures] for row in (br, orow)]
            unit = (br or orow or {}).get("unit")
            groups.append((level, key, values[0], values[1], (br is not None, orow is not None), unit))
        out[level.name] = groups
    return out


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
