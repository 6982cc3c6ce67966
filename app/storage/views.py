"""The read model of plan data: pages and CSV downloads of plan tables, KPI totals, artifact lists,
comparisons, diffs and the plan list. Every query that the API and the UI need to show plan data is
here; the edges call these functions and hold no SQL.

Owns which table lives where — a ``plan_series`` level (``app.storage.codec_series.LEVELS`` says which
column holds each field) or ``plan_kpis``, and the artifact document holding the same rows. Which
encoding a version is read from is decided by ``app.storage.modes`` (``files`` reads artifacts only and
never touches the PlanRepository tables, ``db`` reads rows only, ``both`` reads rows and falls back to
artifacts for a version without them); this module fetches the values that rule needs and reads where
it says. A page from rows is one SQL query (WHERE version/level/filters, ORDER BY seq, LIMIT/OFFSET, or
a seq range when unfiltered), so a page of a 10k-SKU plan never decodes the whole plan.

It never writes: plan content is written by the plan store alone.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, LargeBinary, and_, bindparam, cast, exists, func, select, text

from app.errors import EncodingMissing, PlanNotFound
from app.planning import documents as docs
from app.planning.levels import compare_csv
from app.storage import codec_artifacts, codec_series, modes, settings, spans
from app.storage.codec_series import LEVELS, Level
from app.storage.db import fetch_tuples, sqlite_path
from app.storage.layout import field_value
from app.storage.plans import PlanStore, VersionInfo
from app.storage.schema import app_settings, plan_artifacts, plan_jobs, plan_kpis, plan_series, plan_versions

ROWS, ARTIFACTS = modes.ROWS, modes.ARTIFACTS
CSV_CHUNK_ROWS = 5000


@dataclass(frozen=True)
class TableSpec:
    """One readable table: its row shape, where its rows live in each encoding, and its filters."""

    name: str
    title: str
    document: str
    doc_key: str  # list-valued key of the document holding the rows
    shape: dict[str, str]
    level: Level | None  # None: plan_kpis
    filters: dict[str, str]  # query filter -> row key
    #: Keys beyond the row shape (stored in a row's leftovers) that the CSV download shows as columns.
    csv_extras: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.shape)


_LEVEL = {lv.name: lv for lv in LEVELS}


def _spec(
    name: str, title: str, level: str, filters: dict[str, str], csv_extras: tuple[str, ...] = ()
) -> TableSpec:
    lv = _LEVEL[level]
    return TableSpec(name, title, lv.document, lv.table, dict(lv.shape), lv, filters, csv_extras)


TABLES: dict[str, TableSpec] = {
    "aggregate": _spec(
        "aggregate", "family x month S&OP plan (aggregate.json)", "aggregate",
        {"family": "family", "period": "period"},
    ),
    "detail": _spec(
        "detail", "SKU x week-bucket plan (sku_week.json)", "det",
        {"family": "family", "sku": "sku", "period": "period", "week": "week"},
    ),
    "mrp": _spec(
        "mrp", "item x week MRP before capacity reconciliation (mrp.json)", "mrp",
        {"item": "item", "sku": "item", "week": "week"},
    ),
    "final": _spec(
        "final", "item x week plan after capacity reconciliation (plan_final.json rows)", "mrp_final",
        {"item": "item", "sku": "item", "week": "week"},
    ),
    "weekly": _spec(
        "weekly", "weekly capacity summary (plan_final.json weekly_summary)", "weekly_summary",
        {"week": "week"},
    ),
    "exceptions": _spec(
        "exceptions", "typed exceptions (exceptions.json), largest impact first", "exception",
        {"family": "family", "item": "item", "sku": "item"}, csv_extras=("impact",),
    ),
    "kpis": TableSpec(
        "kpis", "KPIs, total and per month (plan_final.json kpis, plan_kpis)", "plan_final.json", "kpis",
        dict(docs.KPI_ROW), None, {"metric": "metric", "period": "bucket_key"},
    ),
}  # fmt: skip
RECON = _spec("recon", "level reconciliation (reconciliation_log.json)", "recon", {})


@dataclass
class Page:
    table: str
    version_id: str
    source: str
    total: int
    limit: int
    offset: int
    rows: list[dict[str, Any]]


# --- where a version's content is read from --------------------------------------------------


def read_source(store: PlanStore, info: VersionInfo, mode: str | None = None) -> str:
    """``rows`` or ``artifacts``: where the effective storage mode reads this version from."""
    mode = mode or store.effective_mode()
    has_rows = info.status == "ready" and modes.uses_rows(mode) and store.has_rows(info.version_id)
    return modes.read_source(info.version_id, info.status, mode, has_rows)


def check_filters(spec: TableSpec, filters: dict[str, str | None]) -> dict[str, str]:
    """The filters that were given, mapped to row keys; a filter the table lacks is a ValueError (422)."""
    given = {k: v for k, v in filters.items() if v is not None}
    wrong = sorted(set(given) - set(spec.filters))
    if wrong:
        allowed = ", ".join(sorted(spec.filters)) or "none"
        raise ValueError(
            f"the {spec.name} table cannot be filtered by {', '.join(wrong)} (filters: {allowed})"
        )
    return {spec.filters[k]: v for k, v in given.items()}


# --- rows: SQL paging ------------------------------------------------------------------------


def _num(value: Any) -> Any:
    return None if value is None else docs.num(value)


def _series_columns(spec: TableSpec) -> list[Any]:
    if spec.level is None:
        return [plan_kpis.c[k] for k in spec.columns]
    return [field_value(spec.level, k) for k in spec.columns] + [plan_series.c.extra_json]


def _series_where(spec: TableSpec, version_id: Any, row_filters: dict[str, Any]) -> list[Any]:
    """WHERE clauses of a table's rows; values are literals or bind parameters, and a week filter on a
    level that stores ``week@period`` takes the LIKE pattern made by :func:`_bound_values`."""
    if spec.level is None:
        where = [plan_kpis.c.version_id == version_id]
        where += [plan_kpis.c[k] == v for k, v in row_filters.items()]
        return where
    level = spec.level
    where = [plan_series.c.version_id == version_id, plan_series.c.level == level.name]
    for key, value in row_filters.items():
        column = plan_series.c[level.columns_of.get(key, key)]
        if key == "week" and level.week_at_period:
            where.append(column.like(value, escape="/"))
        else:
            where.append(column == value)
    return where


def _bound_values(spec: TableSpec, row_filters: dict[str, str]) -> dict[str, str]:
    """Filter values as the WHERE clauses take them: a week on a ``week@period`` level becomes the
    pattern ``<week>@%`` with LIKE's special characters escaped."""
    out = dict(row_filters)
    if "week" in out and spec.level is not None and spec.level.week_at_period:
        escaped = out["week"].replace("/", "//").replace("%", "/%").replace("_", "/_")
        out["week"] = f"{escaped}@%"
    return out


def _rows_maker(spec: TableSpec) -> Callable[[Sequence[Sequence[Any]]], list[dict[str, Any]]]:
    """Row tuples -> row dicts, converted column by column (a page is hundreds of rows)."""
    keys = spec.columns
    kinds = [spec.shape[k] for k in keys]
    week = (keys.index("week"), keys.index("period")) if spec.level and spec.level.week_at_period else None
    has_extra = spec.level is not None

    def make(tuples: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        if not tuples:
            return []
        columns = list(zip(*tuples, strict=True))
        values = [_convert_column(columns[i], kind) for i, kind in enumerate(kinds)]
        if week:
            values[week[0]] = [
                None if w is None else w.removesuffix(f"@{p}")
                for w, p in zip(values[week[0]], values[week[1]], strict=True)
            ]
        rows = [dict(zip(keys, vals, strict=True)) for vals in zip(*values, strict=True)]
        if has_extra and any(columns[-1]):
            for row, extra in zip(rows, columns[-1], strict=True):
                if extra:
                    row.update(json.loads(extra))
        return rows

    return make


def _convert_column(values: Sequence[Any], kind: str) -> list[Any]:
    if kind in ("str", "str?"):
        return list(values)
    if kind == "bool":
        return [None if v is None else bool(v) for v in values]
    if kind == "int":
        return [None if v is None else int(v) for v in values]
    if None in values:
        return [_num(v) for v in values]
    numbers = np.asarray(values, dtype=np.float64)
    integral = numbers == np.floor(numbers)
    if integral.all():
        return numbers.astype(np.int64).tolist()
    out = numbers.tolist()
    for i, v in zip(
        np.flatnonzero(integral).tolist(), numbers[integral].astype(np.int64).tolist(), strict=True
    ):
        out[i] = v
    return out


def _seq(spec: TableSpec) -> Any:
    return plan_kpis.c.seq if spec.level is None else plan_series.c.seq


def _page_head(conn: Connection, version_id: str) -> tuple[str, str | None] | None:
    """The version's status and the operator's storage pin in one query (None: no such version)."""

    def build() -> Any:
        pin = select(app_settings.c.value).where(app_settings.c.key == bindparam("pin")).scalar_subquery()
        return select(plan_versions.c.status, pin).where(plan_versions.c.version_id == bindparam("vid"))

    found = fetch_tuples(conn, ("head",), build, {"vid": version_id, "pin": settings.PIN})
    return (found[0][0], found[0][1]) if found else None


def _rows_extent(conn: Connection, spec: TableSpec, version_id: str) -> tuple[bool, int | None]:
    """Whether the version has PlanRepository rows at all, and the last ``seq`` of this table's rows."""
    seq = _seq(spec)

    def build() -> Any:
        level = _series_where(spec, bindparam("vid"), {})
        return select(
            exists().where(plan_series.c.version_id == bindparam("vid")),
            select(func.max(seq)).where(*level).scalar_subquery(),
        )

    has_rows, last = fetch_tuples(conn, ("extent", spec.name), build, {"vid": version_id})[0]
    return bool(has_rows), last


def _rows_page(conn: Connection, spec: TableSpec, version_id: str, row_filters: dict[str, str], limit: int, offset: int, last: int | None) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
    keys = tuple(sorted(row_filters))
    values = _bound_values(spec, row_filters)
    params: dict[str, Any] = {"vid": version_id, **{f"f_{k}": values[k] for k in keys}}
    seq = _seq(spec)

    def where() -> list[Any]:
        return _series_where(spec, bindparam("vid"), {k: bindparam(f"f_{k}") for k in keys})

    def count() -> Any:
        return select(func.count()).where(and_(*where()))

    def page() -> Any:
        query = select(*_series_columns(spec)).where(*where()).order_by(seq)
        return query.limit(bindparam("lim")).offset(bindparam("off"))

    def index_range() -> Any:
        bounds = (seq >= bindparam("lo"), seq < bindparam("hi"))
        return select(*_series_columns(spec)).where(*where(), *bounds).order_by(seq)

    if keys:
        total = fetch_tuples(conn, ("count", spec.name, keys), count, params)[0][0]
        fetched = fetch_tuples(conn, ("page", spec.name, keys), page, {**params, "lim": limit, "off": offset})
    else:
        # seq runs 0..n-1 within a level, so an unfiltered page is an index range, at any offset.
        total = 0 if last is None else last + 1
        fetched = fetch_tuples(
            conn, ("range", spec.name), index_range, {**params, "lo": offset, "hi": offset + limit}
        )
    return _rows_maker(spec)(fetched), total


def _row_chunks(store: PlanStore, spec: TableSpec, version_id: str, row_filters: dict[str, str]) -> Iterator[list[tuple]]:  # fmt: skip
    """Row tuples in seq order, a chunk at a time, straight from the DBAPI cursor (a whole 10k-SKU
    level is ~600k rows; SQLAlchemy's per-row result objects would double the time to read it).

    Each chunk is its own short query (``seq > last ORDER BY seq LIMIT n``, keyset paging on the
    version/level/seq index), so a slow download never holds a pooled connection or a read
    transaction — which would starve other requests and keep SQLite from checkpointing its WAL.
    Versions are immutable, so the chunks add up to one consistent table. A whole level that stores
    facts once is read as stored and filled in by the codec (:func:`_filled_chunks`)."""
    level = spec.level
    if level is not None and not row_filters and (level.carried or level.borrowed):
        yield from _filled_chunks(store, level, version_id)
        return
    keys = tuple(sorted(row_filters))
    values = _bound_values(spec, row_filters)
    params: dict[str, Any] = {"vid": version_id, **{f"f_{k}": values[k] for k in keys}}
    seq = _seq(spec)

    def after() -> Any:
        where = _series_where(spec, bindparam("vid"), {k: bindparam(f"f_{k}") for k in keys})
        query = select(*_series_columns(spec), seq).where(*where, seq > bindparam("after"))
        return query.order_by(seq).limit(bindparam("lim"))

    last = -1
    while True:
        with store.engine.connect() as conn:
            chunk = fetch_tuples(
                conn, ("chunk", spec.name, keys), after, {**params, "after": last, "lim": CSV_CHUNK_ROWS}
            )
        if not chunk:
            return
        last = chunk[-1][-1]
        yield [row[:-1] for row in chunk]
        if len(chunk) < CSV_CHUNK_ROWS:
            return


def _filled_chunks(store: PlanStore, level: Level, version_id: str) -> Iterator[list[tuple]]:
    """A whole level's row tuples (as :func:`_row_chunks` makes them) in chunks, read as stored —
    constants only where an item's rows start, a plan_final row's planned part only where it differs
    from the mrp row at the same ``seq`` — and filled in by the codec (``codec_series.fill_rows``):
    carried values from the last filled row of the chunk before, borrowed ones from the base level's
    rows of the same ``seq`` range, read alongside. A SQL expression per field and row would look the
    constants up again for every row (three times slower on a 10k-SKU MRP download)."""
    base = next(lv for lv in LEVELS if lv.name == level.base) if level.base else None
    last: dict[str, tuple | None] = {level.name: None, **({base.name: None} if base else {})}
    n_keys = len(level.keys)

    def stored(lv: Level, after: int, upto: int | None) -> list[tuple]:
        """The level's rows as stored after ``after``: the next chunk, or those up to ``upto``."""
        t = plan_series

        def build() -> Any:
            query = select(*(t.c[c] for c in lv.columns)).where(
                t.c.version_id == bindparam("vid"), t.c.level == lv.name, t.c.seq > bindparam("after")
            )
            if upto is None:
                return query.order_by(t.c.seq).limit(bindparam("lim"))
            return query.where(t.c.seq <= bindparam("upto")).order_by(t.c.seq)

        bound = {"lim": CSV_CHUNK_ROWS} if upto is None else {"upto": upto}
        with store.engine.connect() as conn:
            return fetch_tuples(
                conn, ("stored", lv.name, upto is None), build, {"vid": version_id, "after": after, **bound}
            )

    def filled(lv: Level, rows: list[tuple], base_rows: list[tuple] | None = None) -> list[tuple]:
        carrier = last[lv.name]
        if carrier is not None:  # the row before the chunk, filled: where its carried values come from
            rows = [carrier, *rows]
            base_rows = None if base_rows is None else [base_rows[0], *base_rows]
        out = codec_series.fill_rows(lv, rows, base_rows)[1 if carrier is not None else 0 :]
        if out:
            last[lv.name] = out[-1]
        return out

    after = -1
    while True:
        rows = stored(level, after, None)
        if not rows:
            return
        upto = rows[-1][0]
        base_rows = None
        if base is not None:
            base_rows = filled(base, stored(base, after, upto))
            if [r[0] for r in base_rows] != [r[0] for r in rows]:
                raise ValueError(
                    f"plan_series level {level.name!r} of {version_id!r}: rows {after + 1} to {upto} do not "
                    f"line up with level {base.name!r}, which they borrow from"
                )
        yield [(*r[1 : 1 + n_keys], r[-1]) for r in filled(level, rows, base_rows)]
        after = upto
        if len(rows) < CSV_CHUNK_ROWS:
            return


# --- artifacts: parse one document -----------------------------------------------------------

_DOC_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_DOC_CACHE_LOCK = threading.Lock()
_DOC_CACHE_ENTRIES = 4
_DOC_CACHE_MAX_CHARS = 16_000_000


def artifact_document(store: PlanStore, version_id: str, name: str) -> Any:
    """The parsed artifact ``name`` of a version (EncodingMissing when it is not stored). Parsed
    documents of moderate size are kept briefly, keyed by their store time and length, so paging
    through a legacy version does not parse the same JSON for every page."""
    head = select(plan_artifacts.c.created_at, func.length(plan_artifacts.c.json_text)).where(
        plan_artifacts.c.version_id == version_id, plan_artifacts.c.name == name
    )
    with store.engine.connect() as conn:
        found = conn.execute(head).first()
    if found is None:
        raise EncodingMissing(f"plan version {version_id!r} has no artifact {name}", {"artifact": name})
    key = (str(store.engine.url), version_id, name, found[0], found[1])
    with _DOC_CACHE_LOCK:
        if key in _DOC_CACHE:
            _DOC_CACHE.move_to_end(key)
            return _DOC_CACHE[key]
    text = store.artifact_text(version_id, name)
    if text is None:
        raise EncodingMissing(f"plan version {version_id!r} has no artifact {name}", {"artifact": name})
    document = docs.parse_artifact(name, text)
    if found[1] <= _DOC_CACHE_MAX_CHARS:
        with _DOC_CACHE_LOCK:
            _DOC_CACHE[key] = document
            while len(_DOC_CACHE) > _DOC_CACHE_ENTRIES:
                _DOC_CACHE.popitem(last=False)
    return document


def _artifact_rows(store: PlanStore, spec: TableSpec, version_id: str, row_filters: dict[str, str]) -> list[dict[str, Any]]:  # fmt: skip
    document = artifact_document(store, version_id, spec.document)
    rows = document.get(spec.doc_key) if isinstance(document, dict) else None
    if not isinstance(rows, list):
        raise EncodingMissing(f"{spec.document} of {version_id!r} has no {spec.doc_key!r} table")
    if not row_filters:
        return rows
    items = list(row_filters.items())
    return [r for r in rows if all(r.get(k) == v for k, v in items)]


# --- public --------------------------------------------------------------------------------------


def read_page(
    store: PlanStore, version_id: str, table: str, filters: dict[str, str | None], limit: int, offset: int
) -> Page:
    """One page of a plan table, from the encoding the storage mode reads."""
    page = read_rows_page(store, version_id, table, filters, limit, offset)
    if page is not None:
        return page
    spec = TABLES[table]
    everything = _artifact_rows(store, spec, version_id, check_filters(spec, filters))
    rows = [_in_shape_order(spec, r) for r in everything[offset : offset + limit]]
    return Page(table, version_id, ARTIFACTS, len(everything), limit, offset, rows)


def read_rows_page(
    store: PlanStore, version_id: str, table: str, filters: dict[str, str | None], limit: int, offset: int
) -> Page | None:
    """The page from PlanRepository rows, or None when the storage mode reads this version from its
    artifacts. Three short queries on one connection (status and pin, rows present and table size, the
    page), cheap enough to run on the event loop; parsing an artifact is not, so it is left to
    :func:`read_page`."""
    spec = TABLES[table]
    row_filters = check_filters(spec, filters)
    with store.engine.connect() as conn:
        head = _page_head(conn, version_id)
        if head is None:
            raise PlanNotFound(f"plan version {version_id!r} does not exist")
        status, pin = head
        mode = modes.effective_mode(pin)
        # files mode never touches the PlanRepository tables, not even to look for rows
        has_rows, last = _rows_extent(conn, spec, version_id) if modes.uses_rows(mode) else (False, None)
        if modes.read_source(version_id, status, mode, has_rows) != ROWS:
            return None
        rows, total = _rows_page(conn, spec, version_id, row_filters, limit, offset, last)
    return Page(table, version_id, ROWS, total, limit, offset, rows)


def _in_shape_order(spec: TableSpec, row: dict[str, Any]) -> dict[str, Any]:
    """An artifact row with its declared keys first, in shape order (as rows are served), extras after."""
    ordered = {k: row[k] for k in spec.columns if k in row}
    if len(ordered) != len(row):
        ordered.update((k, v) for k, v in row.items() if k not in ordered)
    return ordered


def read_all(store: PlanStore, info: VersionInfo, spec: TableSpec, source: str) -> list[dict[str, Any]]:
    """Every row of a table (for diffs and reconciliation views)."""
    if source == ROWS:
        make = _rows_maker(spec)
        return [row for chunk in _row_chunks(store, spec, info.version_id, {}) for row in make(chunk)]
    return list(_artifact_rows(store, spec, info.version_id, {}))


def item_records(store: PlanStore, version_id: str, items: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The MRP records (``mrp.json`` rows, week by week) of several items, by item: one query for all
    of them when the version is read from rows."""
    spec = TABLES["mrp"]
    info = store.get_version(version_id)
    out: dict[str, list[dict[str, Any]]] = {item: [] for item in items}
    if not items:
        return out
    if read_source(store, info) == ROWS:
        assert spec.level is not None
        item_column = plan_series.c[spec.level.columns_of.get("item", "item")]
        with store.engine.connect() as conn:
            level = spec.level.name
            ranges = spans.seq_ranges(conn, version_id, level, "item", out)
            if ranges is not None and all(len(found) <= 1 for found in ranges.values()):
                # each span is an item's whole run, its constants on its first row: the codec fills
                # them in, with no subquery per row
                columns = [plan_series.c[c] for c in codec_series.LEVEL_COLUMNS[level]]
                found = spans.read_rows(
                    conn, ("level", level), lambda: columns, version_id, level, "item", ranges
                )
                rows = codec_series.decode_level_rows(level, found, part=True, whole_items=True)
            else:  # stored before spans: scan the level
                query = (
                    select(*_series_columns(spec))
                    .where(*_series_where(spec, version_id, {}), item_column.in_(list(out)))
                    .order_by(_seq(spec))
                )
                rows = _rows_maker(spec)([tuple(r) for r in conn.execute(query)])
    else:
        rows = [r for r in _artifact_rows(store, spec, version_id, {}) if r["item"] in out]
    for row in rows:
        out[row["item"]].append(row)
    return out


def items_with_exceptions(store: PlanStore, version_id: str, items: Sequence[str]) -> set[str]:
    """Which of ``items`` an exception of the version names (one query when read from rows)."""
    spec = TABLES["exceptions"]
    info = store.get_version(version_id)
    wanted = set(items)
    if not wanted:
        return set()
    if read_source(store, info) == ROWS:
        assert spec.level is not None
        query = (
            select(plan_series.c.item_key)
            .where(*_series_where(spec, version_id, {}), plan_series.c.item_key.in_(sorted(wanted)))
            .distinct()
        )
        with store.engine.connect() as conn:
            return set(conn.execute(query).scalars())
    return {r["item"] for r in read_all(store, info, spec, ARTIFACTS) if r.get("item") in wanted}


def pegging_rows(store: PlanStore, version_id: str, item: str | None = None) -> list[dict[str, Any]]:
    """The pegging of a version's component shortages, one row per (shortage, finished good): the
    component, its shortage run and quantity, and the finished good with the receipt weeks and order
    quantity it endangers; largest shortage impact first, as the exceptions are listed. ``item``
    keeps the rows naming it as the component or as the finished good."""
    info = store.get_version(version_id)
    spec = TABLES["exceptions"]
    rows = []
    for e in read_all(store, info, spec, read_source(store, info)):
        for peg in e.get("pegging") or ():
            if item and item not in (e["item"], peg["item"]):
                continue
            rows.append({
                "component": e["item"], "shortage_start": e["start"], "shortage_end": e["end"],
                "shortage_quantity": e["quantity"], "impact": e.get("impact"), "item": peg["item"],
                "start": peg["start"], "end": peg["end"], "quantity": peg["quantity"],
            })  # fmt: skip
    return rows


def csv_stream(
    store: PlanStore, version_id: str, table: str, filters: dict[str, str | None]
) -> tuple[str, Iterator[str]]:
    """The source and the CSV text, in chunks, of a whole (filtered) table. Everything that can fail
    for a bad request fails here, before the first chunk."""
    spec = TABLES[table]
    row_filters = check_filters(spec, filters)
    info = store.get_version(version_id)
    source = read_source(store, info)
    if source == ROWS:
        return source, _csv_from_chunks(spec, _row_chunks(store, spec, version_id, row_filters))
    rows = _artifact_rows(store, spec, version_id, row_filters)
    return source, csv_from_dicts(spec.columns + spec.csv_extras, rows)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return value


def _csv_from_chunks(spec: TableSpec, chunks: Iterator[list[tuple]]) -> Iterator[str]:
    """CSV text of row-tuple chunks, formatted column by column (numbers plain, flags true/false)."""
    columns = spec.columns
    kinds = [spec.shape[k] for k in columns]
    week = (
        (columns.index("week"), columns.index("period")) if spec.level and spec.level.week_at_period else None
    )
    yield ",".join(columns + spec.csv_extras) + "\n"
    for chunk in chunks:
        cells = list(zip(*chunk, strict=True))
        out = [_format_column(cells[i], kind) for i, kind in enumerate(kinds)]
        if spec.csv_extras:
            extras = [json.loads(text) if text else {} for text in cells[len(columns)]]
            out += [[str(_cell(e.get(key))) for e in extras] for key in spec.csv_extras]
        if week:
            out[week[0]] = _quoted([w.removesuffix(f"@{p}") for w, p in zip(cells[week[0]], cells[week[1]], strict=True)])  # fmt: skip
        yield "\n".join(map(",".join, zip(*out, strict=True))) + "\n"


def _format_column(values: Sequence[Any], kind: str) -> list[str]:
    if kind in ("str", "str?"):
        return _quoted(["" if v is None else v for v in values] if None in values else list(values))
    if kind == "bool":
        return ["" if v is None else ("true" if v else "false") for v in values]
    if None in values:
        return [str(_cell(v)) for v in values]
    numbers = np.asarray(values, dtype=np.float64)
    integral = numbers == np.floor(numbers)
    if integral.all():
        return numbers.astype(np.int64).astype(str).tolist()
    out = [repr(float(v)) for v in values]
    for i, digits in zip(np.flatnonzero(integral).tolist(), numbers[integral].astype(np.int64).astype(str).tolist(), strict=True):  # fmt: skip
        out[i] = digits
    return out


def _quoted(texts: list[str]) -> list[str]:
    """CSV quoting for the few texts that need it (a comma, quote or line break)."""
    joined = "\x1f".join(texts)
    if not any(c in joined for c in (",", '"', "\n", "\r")):
        return texts
    return ['"' + t.replace('"', '""') + '"' if any(c in t for c in ',"\n\r') else t for t in texts]


def csv_from_dicts(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for i, row in enumerate(rows, start=1):
        writer.writerow([_cell(row.get(c)) for c in columns])
        if i % CSV_CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def compare_text(store: PlanStore, version_id: str, violations_only: bool) -> str:
    """``compare.csv`` (AGG vs DET per family, period and measure) from the reconciliation rows."""
    info = store.get_version(version_id)
    source = read_source(store, info)
    rows = read_all(store, info, RECON, source)
    return compare_csv({"rows": rows}, violations_only)


# --- catalogue: plan lists, total KPIs, artifacts -------------------------------------------------


def reads_rows(store: PlanStore) -> bool:
    """Whether the effective storage mode reads PlanRepository rows at all."""
    return modes.uses_rows(store.effective_mode())


def stored_counts(store: PlanStore, version_id: str) -> tuple[int, int]:
    """How many ``plan_series`` and ``plan_kpis`` rows the version has (0, 0 when it has none)."""
    with store.engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(select(func.count()).select_from(t).where(t.c.version_id == version_id)).scalar_one()
            for t in (plan_series, plan_kpis)
        )


def total_kpis(store: PlanStore, version_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Total KPIs per version from ``plan_kpis`` (one query); call it only when the mode reads rows."""
    if not version_ids:
        return {}
    query = select(plan_kpis.c.version_id, plan_kpis.c.metric, plan_kpis.c.value).where(
        plan_kpis.c.version_id.in_(version_ids), plan_kpis.c.bucket_type == "total"
    )
    out: dict[str, dict[str, Any]] = {}
    with store.engine.connect() as conn:
        for vid, metric, value in conn.execute(query):
            out.setdefault(vid, {})[metric] = _num(value)
    return out


def plan_list(
    store: PlanStore, limit: int, offset: int = 0, status: str | None = None, order: str = "desc"
) -> tuple[list[VersionInfo], int, dict[str, dict[str, Any]]]:
    """A page of the catalogue, its total count, and the total KPIs of the listed versions when the
    mode reads rows (the list never parses artifacts: a plan's own page shows those KPIs)."""
    versions, total = store.list_versions(limit=limit, offset=offset, status=status, order=order)
    kpis = total_kpis(store, [v.version_id for v in versions]) if reads_rows(store) else {}
    return versions, total, kpis


@dataclass
class PlanDetail:
    """One version as its page shows it: the catalogue entry and where its content is read from."""

    info: VersionInfo
    artifacts: list[str]
    has_rows: bool | None  # None: not looked up (files mode)
    kpis: dict[str, Any] | None
    read_from: str | None  # rows | artifacts | None (not ready, or nothing readable)


def plan_detail(store: PlanStore, version_id: str) -> PlanDetail:
    info = store.get_version(version_id)
    mode = store.effective_mode()
    has_rows = store.has_rows(version_id) if modes.uses_rows(mode) else None
    kpis = total_kpis(store, [version_id]).get(version_id) if has_rows else None
    read_from = None
    if info.status == "ready":
        try:
            read_from = modes.read_source(version_id, info.status, mode, bool(has_rows))
        except EncodingMissing:
            read_from = None
    return PlanDetail(info, store.artifact_names(version_id), has_rows, kpis, read_from)


def _row_documents(store: PlanStore, version_id: str, known: Sequence[str]) -> list[str]:
    query = select(plan_series.c.label).where(
        plan_series.c.version_id == version_id, plan_series.c.level.in_(("meta", "psi"))
    )
    with store.engine.connect() as conn:
        return sorted(n for n in conn.execute(query).scalars() if n in known)


def artifact_list(store: PlanStore, version_id: str, known: Sequence[str]) -> list[dict[str, Any]]:
    """Names and sizes (bytes) of the stored artifacts; a version held only as rows lists the
    documents among ``known`` its rows rebuild (when the mode reads rows), with no size."""
    store.get_version(version_id)
    size = (
        func.length(cast(plan_artifacts.c.json_text, LargeBinary))
        if store.dialect == "sqlite"
        else func.octet_length(plan_artifacts.c.json_text)
    )
    query = (
        select(plan_artifacts.c.name, size)
        .where(plan_artifacts.c.version_id == version_id)
        .order_by(plan_artifacts.c.name)
    )
    with store.engine.connect() as conn:
        items = [{"name": n, "bytes": int(b), "source": ARTIFACTS} for n, b in conn.execute(query)]
    if not items and reads_rows(store):
        items = [{"name": n, "bytes": None, "source": ROWS} for n in _row_documents(store, version_id, known)]
    return items


def artifact_text(store: PlanStore, version_id: str, name: str) -> str:
    """The artifact's text as stored; for a version held only as rows, rebuilt from them when the mode
    reads rows. ``EncodingMissing`` when neither gives it."""
    store.get_version(version_id)
    text = store.artifact_text(version_id, name)
    if text is None and reads_rows(store) and store.has_rows(version_id):
        content = store.read_rows(version_id)
        if content is not None and name in content.documents:
            text = codec_artifacts.encode(content)[name]
    if text is None:
        raise EncodingMissing(f"plan version {version_id!r} has no artifact {name}", {"artifact": name})
    return text


def list_kpis(store: PlanStore, info: VersionInfo) -> dict[str, Any] | None:
    """Total KPIs of a ready version from its ``plan_kpis`` rows (one SQL page); None without rows."""
    if info.status != "ready" or not store.has_rows(info.version_id):
        return None
    page = read_page(store, info.version_id, "kpis", {"period": "total"}, 100, 0)
    return {r["metric"]: r["value"] for r in page.rows}


# --- service gauges ---------------------------------------------------------------------------------


def series_row_count(store: PlanStore) -> int:
    """Rows in ``plan_series`` over every version (the ``plan_series_rows`` gauge)."""
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(plan_series)).scalar_one())


def jobs_per_status(store: PlanStore) -> dict[str, int]:
    """``plan_jobs`` rows per status (statuses without jobs are absent)."""
    query = select(plan_jobs.c.status, func.count()).group_by(plan_jobs.c.status)
    with store.engine.connect() as conn:
        return {status: int(n) for status, n in conn.execute(query).all()}


def database_size(store: PlanStore) -> int:
    """Bytes the database takes: the SQLite file and its WAL, or PostgreSQL's database size."""
    path = sqlite_path(str(store.engine.url))
    if path is not None:
        return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
