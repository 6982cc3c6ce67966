"""The PlanRepository codec: plan content <-> typed ``plan_series`` and ``plan_kpis`` rows, losslessly.

Owns the mapping of every artifact row onto ``plan_series`` columns (``LEVELS``), the validation of
documents against the row shapes of ``app.planning.documents`` (``validate_document``), and the exact
rebuilding of every document from rows. It does no I/O: the plan store inserts ``SeriesRows`` in bulk
and hands back what it selects, one level at a time in ``LEVEL_COLUMNS`` order. Documents from
outside the engine are validated here; the engine's own (``PlanContent.trusted``) are taken column by
column as made.

One ``plan_series`` row per artifact row, every field in a typed column, each fact stored once: an
item's constants only on its first MRP row (``Level.carried``), a plan_final row's planned part only
when it differs from the mrp row with the same ``seq`` (``Level.borrowed``); NULL marks what the
decoder puts back (``fill_rows``), so rows that hold every value (versions written before) decode
the same. ``extra_json`` holds only a row's keys beyond its declared shape. Level ``meta`` holds one
row per stored document (its name in ``label``) with the document's small object-valued keys. The PSI documents map onto their own tables:
each entry of ``psi_overrides.json`` is a ``plan_overrides`` row, each event of ``psi_state.json`` a
``plan_override_events`` row (in document order) and its approval is ``plan_versions.approval``; level
``psi`` keeps only what those cannot hold (a PSI document's extra keys, or that an empty one exists).
Quantities come back by the number rule.

Hot paths work column-wise (``itemgetter``/``zip``/numpy) because a 10k-SKU plan has ~2M rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from operator import is_, itemgetter, ne
from typing import Any, NoReturn

import numpy as np
import orjson

from app.planning import documents as docs
from app.planning.model import PSI_ARTIFACTS, SCHEMA_VERSION, PlanContent

PSI_OVERRIDES, PSI_STATE = PSI_ARTIFACTS
PSI_LEVELS = ("aggregate", "det")
APPROVAL_STATES = ("draft", "pending", "approved")
EVENT_TYPES = ("edit", "lock", "unlock", "submit", "approve", "reopen", "reconcile", "rollback", "export")
#: Entry key -> (table column, kind) of a psi_overrides.json entry; its other keys go to ``payload_json``.
OVERRIDE_FIELDS: dict[str, tuple[str, str]] = {
    "level": ("level", "str"), "key_hash": ("key_hash", "str"), "locked": ("lock_flag", "bool"),
    "weight": ("weight", "num?"), "author": ("author", "str?"), "source": ("source", "str?"),
    "created_at": ("created_at", "int"), "updated_at": ("updated_at", "int"),
}  # fmt: skip
#: Entry key -> (table column, kind) of a psi_state.json event; its other keys go to ``payload_json``.
EVENT_FIELDS: dict[str, tuple[str, str]] = {
    "type": ("event_type", "str"), "ts": ("event_ts", "int"), "level": ("level", "str?"),
    "key_hash": ("key_hash", "str?"), "actor": ("actor", "str?"), "note": ("notes", "str?"),
}  # fmt: skip
OVERRIDE_COLUMNS = (*(column for column, _ in OVERRIDE_FIELDS.values()), "payload_json")
EVENT_COLUMNS = (*(column for column, _ in EVENT_FIELDS.values()), "payload_json")

REPORT = "report.csv"
HEADER_KEYS = ("schema_version", "version_id", "params")
#: Largest integer a DOUBLE column holds exactly.
MAX_EXACT_INT = 2**53

Row = tuple[Any, ...]
#: A validated table: its field columns in shape order, and per-row leftovers (None when no row has any).
Table = tuple[list[Sequence[Any]], list[str | None] | None]


@dataclass(frozen=True)
class Level:
    """One ``plan_series`` level: which table of which document it holds, and where each field goes."""

    name: str
    document: str
    table: str  # "rows" or a list-valued key beside it
    shape: Mapping[str, str]  # row key -> kind (documents.py)
    columns_of: Mapping[str, str]  # row key -> plan_series column, when not the key itself
    bucket_type: str
    week_at_period: bool = False  # "week" is stored as "<week>@<period>"
    period_is_bucket: bool = False  # "period" is copied into time_bucket_key too
    #: Per-item constants: stored on an item's first row (and wherever one of them changes), NULL on
    #: the rows after it, which carry the values of the row before.
    carried: tuple[str, ...] = ()
    #: The level whose row with the same ``seq`` holds ``borrowed``: a row whose borrowed keys are all
    #: NULL takes them from that row (decoded, so with its carried values filled in).
    base: str | None = None
    borrowed: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.shape)

    @property
    def columns(self) -> tuple[str, ...]:
        """The ``plan_series`` columns of this level's row tuples, in order."""
        mapped = tuple(self.columns_of.get(k, k) for k in self.shape)
        copy = ("time_bucket_key",) if self.period_is_bucket else ()
        return ("seq", *mapped, *copy, "extra_json")


_KEYED = {"family": "group_key", "period": "period_key"}
_MRP = {"item": "item_key", "week": "time_bucket_key"}
#: The item master's values on an MRP row: the same on every week of an item.
ITEM_CONSTANTS = ("llc", "lt_weeks", "lot", "moq", "safety_stock")
#: What plan_final.json's rows repeat of mrp.json's rows (the plan before capacity reconciliation).
PLANNED_KEYS = tuple(k for k in docs.MRP_ROW if k not in ("item", "week"))

LEVELS: tuple[Level, ...] = (
    Level("aggregate", "aggregate.json", "rows", docs.AGGREGATE_ROW, _KEYED, "month", period_is_bucket=True),
    Level(
        "det", "sku_week.json", "rows", docs.SKU_WEEK_ROW,
        {**_KEYED, "sku": "item_key", "week": "time_bucket_key"}, "bucket", week_at_period=True,
    ),
    Level("mrp", "mrp.json", "rows", docs.MRP_ROW, _MRP, "week", carried=ITEM_CONSTANTS),
    Level(
        "mrp_final", "plan_final.json", "rows", docs.FINAL_ROW, _MRP, "week", base="mrp",
        borrowed=PLANNED_KEYS,
    ),
    Level(
        "weekly_summary", "plan_final.json", "weekly_summary", docs.WEEKLY_SUMMARY_ROW,
        {"week": "time_bucket_key"}, "week",
    ),
    Level(
        "anchor_log", "plan_final.json", "anchor_log", docs.ANCHOR_LOG_ROW,
        {**_KEYED, "sku": "item_key", "week": "time_bucket_key", "before": "qty_before",
         "after": "qty_after", "reason": "message"},
        "week",
    ),
    Level("recon", "reconciliation_log.json", "rows", docs.RECON_ROW, _KEYED, "month", period_is_bucket=True),
    Level(
        "exception", "exceptions.json", "rows", docs.EXCEPTION_ROW,
        {"type": "label", "item": "item_key", "family": "group_key", "start": "time_bucket_key",
         "end": "time_bucket_end"},
        "range",
    ),
    Level(
        "report", REPORT, "rows", docs.REPORT_ROW,
        {"type": "label", "week": "time_bucket_key", "supply_plan": "supply"}, "week",
    ),
)  # fmt: skip

#: Levels holding a whole document per row: ``meta`` (small keys of each stored document) and ``psi``.
DOCUMENT_LEVEL_COLUMNS = ("seq", "label", "extra_json")
_LEVEL_BY_NAME = {lv.name: lv for lv in LEVELS}
_BASE_DOCUMENTS = frozenset(lv.document for lv in LEVELS if lv.name in {b.base for b in LEVELS})
LEVEL_COLUMNS: dict[str, tuple[str, ...]] = {
    **{lv.name: lv.columns for lv in LEVELS},
    "meta": DOCUMENT_LEVEL_COLUMNS,
    "psi": DOCUMENT_LEVEL_COLUMNS,
}
LEVEL_BUCKET_TYPE: dict[str, str | None] = {
    **{lv.name: lv.bucket_type for lv in LEVELS},
    "meta": None,
    "psi": None,
}
LEVEL_NAMES = tuple(LEVEL_COLUMNS)
#: Levels of each document, in the order of their tables.
DOCUMENT_LEVELS: dict[str, tuple[Level, ...]] = {
    name: tuple(lv for lv in LEVELS if lv.document == name)
    for name in dict.fromkeys(lv.document for lv in LEVELS)
}
KPI_TABLE = ("plan_final.json", "kpis")
KPI_COLUMNS = ("seq", "metric", "bucket_type", "bucket_key", "value", "unit")
KNOWN_DOCUMENTS = (*DOCUMENT_LEVELS, *PSI_ARTIFACTS)


@dataclass
class SeriesRows:
    """A plan's PlanRepository encoding: per level, row tuples in ``LEVEL_COLUMNS[level]`` order (``seq``
    first), and the KPI rows in ``KPI_COLUMNS`` order."""

    schema_version: int
    #: Every value already has the type its column reads back as, rows in seq order (the engine's
    #: content is encoded so): the rows digest can hash them as they are.
    canonical: bool = field(default=False, compare=False)
    levels: dict[str, list[Row]] = field(default_factory=dict)
    kpis: list[Row] = field(default_factory=list)
    #: ``plan_overrides`` rows in ``OVERRIDE_COLUMNS`` order and ``plan_override_events`` rows in
    #: ``EVENT_COLUMNS`` order, both in document order; the approval of psi_state.json (None without it).
    overrides: list[Row] = field(default_factory=list)
    events: list[Row] = field(default_factory=list)
    approval: str | None = None
    #: Per level, where its rows hold NULL, as :func:`encode` made them: the row list it describes,
    #: the row positions that may be NULL, and one bit pattern per row (bit i set: position
    #: ``positions[i]`` is NULL). A level not listed, or whose list was replaced, is bound as it is.
    nulls: dict[str, tuple[list[Row], tuple[int, ...], np.ndarray]] = field(
        default_factory=dict, compare=False
    )

    @property
    def series_row_count(self) -> int:
        return sum(map(len, self.levels.values()))

    def release(self) -> None:
        """Let the series rows go (once they are stored), so a large plan's texts are made without them."""
        self.levels = {}
        self.nulls = {}

    def level_runs(self, level: str) -> Iterator[tuple[tuple[int, ...], int, int]]:
        """The level's rows as runs of consecutive rows that are NULL in the same columns:
        ``(positions of the values that are not NULL, start, end)``. Binding a NULL costs a driver
        several times a number's, so a writer can leave a run's NULL columns out of its statement."""
        n, width = len(self.levels[level]), len(LEVEL_COLUMNS[level])
        known = self.nulls.get(level)
        if known is None or known[0] is not self.levels[level] or len(known[2]) != n:
            yield tuple(range(width)), 0, n
            return
        _, positions, codes = known
        bounds = [0, *(np.flatnonzero(codes[1:] != codes[:-1]) + 1).tolist(), n]
        for start, end in zip(bounds, bounds[1:]):  # noqa: B905 - bounds and bounds[1:] differ by one
            code = int(codes[start])
            skip = {p for bit, p in enumerate(positions) if code >> bit & 1}
            yield tuple(i for i in range(width) if i not in skip), start, end

    def series_batches(
        self, version_id: str, created_at: int, *, lazy: bool = False
    ) -> Iterator[tuple[tuple[str, ...], Iterable[Row]]]:
        """Insert-ready batches, one per non-empty level: column names and full row tuples (made one
        at a time as they are consumed when ``lazy``)."""
        for shared, names, rows in self.series_parts(version_id, created_at, split_nulls=False):
            prefix = tuple(shared.values())
            full = (prefix + row for row in rows)
            yield (*shared, *names), full if lazy else list(full)

    def series_parts(
        self, version_id: str, created_at: int, *, split_nulls: bool
    ) -> Iterator[tuple[dict[str, Any], tuple[str, ...], Iterable[Row]]]:
        """Insert-ready parts of ``plan_series``: the values every row of the part shares (version,
        level, bucket type, time), the columns of the rest and its row tuples (made as consumed).
        ``split_nulls``: one part per run of :meth:`level_runs`, leaving each run's NULL columns out."""
        for level, rows in self.levels.items():
            if not rows:
                continue
            shared = {"version_id": version_id, "level": level, "time_bucket_type": LEVEL_BUCKET_TYPE[level], "created_at": created_at}  # fmt: skip
            names = LEVEL_COLUMNS[level]
            runs = self.level_runs(level) if split_nulls else iter([(tuple(range(len(names))), 0, len(rows))])
            for keep, start, end in runs:
                part = rows if (start, end) == (0, len(rows)) else rows[start:end]
                if len(keep) == len(names):
                    yield shared, names, part
                elif len(keep) == 1:
                    yield shared, (names[keep[0]],), ((row[keep[0]],) for row in part)
                else:
                    yield shared, tuple(names[i] for i in keep), map(itemgetter(*keep), part)

    def kpi_batch(self, version_id: str, created_at: int) -> tuple[tuple[str, ...], list[Row]]:
        """Insert-ready ``plan_kpis`` rows: column names and full row tuples."""
        return ("version_id", "created_at", *KPI_COLUMNS), [(version_id, created_at, *r) for r in self.kpis]

    def override_batch(self, version_id: str) -> tuple[tuple[str, ...], list[Row]]:
        """Insert-ready ``plan_overrides`` rows: column names and full row tuples."""
        return ("version_id", *OVERRIDE_COLUMNS), [(version_id, *r) for r in self.overrides]

    def event_batch(self, version_id: str) -> tuple[tuple[str, ...], list[Row]]:
        """Insert-ready ``plan_override_events`` rows (``override_id`` is linked by the store)."""
        return ("version_id", *EVENT_COLUMNS), [(version_id, *r) for r in self.events]


# --- validation ---------------------------------------------------------------------------------

_NONE = type(None)
_KIND_TYPES: dict[str, frozenset[type]] = {
    "str": frozenset({str}),
    "str?": frozenset({str, _NONE}),
    "num": frozenset({int, float}),
    "num?": frozenset({int, float, _NONE}),
    "int": frozenset({int}),
    "bool": frozenset({bool}),
}


def validate_document(name: str, doc: Any) -> None:
    """Refuse a document that does not have the shape documents.py declares (or cannot be stored
    losslessly), with a ValueError naming the artifact, the row and the key."""
    _document_tables(name, doc)


def _document_tables(name: str, doc: Any) -> dict[str, Table]:
    """Validate ``doc`` and return, per table, its field columns (in shape order) and row leftovers."""
    if name in PSI_ARTIFACTS:
        _psi_entries(name, doc)
        return {}
    if name not in DOCUMENT_LEVELS:
        raise ValueError(f"{name}: not a plan artifact (expected one of {', '.join(KNOWN_DOCUMENTS)})")
    if name == REPORT:
        return {"rows": _columns(name, "rows", _report_rows(doc), docs.REPORT_ROW)}
    if not isinstance(doc, dict):
        raise ValueError(f"{name}: a JSON artifact must be an object, got {type(doc).__name__}")
    for key in (*HEADER_KEYS, *docs.ARTIFACT_META_KEYS.get(name, ())):
        if key not in doc:
            raise ValueError(f"{name}: the document lacks key {key!r}")
    tables = {lv.table: _columns(name, lv.table, doc.get(lv.table), lv.shape) for lv in DOCUMENT_LEVELS[name]}
    if name == KPI_TABLE[0]:
        tables["kpis"] = _columns(name, "kpis", doc.get("kpis"), docs.KPI_ROW)
        _check_kpis(tables["kpis"])
    return tables


def _report_rows(text: Any) -> list[dict[str, Any]]:
    """Typed rows of report.csv; refuse text that would not render back identically."""
    if not isinstance(text, str):
        raise ValueError(f"{REPORT}: must be CSV text, got {type(text).__name__}")
    try:
        rows = docs.report_rows_from_csv(text)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{REPORT}: unreadable ({exc})") from exc
    if docs.csv_text(docs.REPORT_COLUMNS, rows) != text:
        raise ValueError(f"{REPORT}: not in canonical form (header, number format or line ends differ)")
    return rows


def _columns(name: str, table: str, rows: Any, shape: Mapping[str, str]) -> Table:
    """The columns of a table in shape order, each checked against its kind, and the row leftovers."""
    if not isinstance(rows, list):
        raise ValueError(f"{name}: {table!r} must be a list of rows")
    keys = tuple(shape)
    if rows and set(map(type, rows)) != {dict}:
        i = next(i for i, row in enumerate(rows) if type(row) is not dict)
        raise ValueError(f"{name}: {table}[{i}] is not an object")
    try:
        columns: list[Sequence[Any]] = [list(map(itemgetter(key), rows)) for key in keys]
    except KeyError:
        i, key = next((i, k) for i, row in enumerate(rows) for k in keys if k not in row)
        raise ValueError(f"{name}: {table}[{i}] lacks key {key!r}") from None
    for key, column in zip(keys, columns, strict=True):
        _check_kind(f"{name}: {table}", key, shape[key], column)
    return columns, _leftovers(rows, keys)


def _leftovers(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[str | None] | None:
    """Per row, the JSON of its keys beyond the declared shape; None when no row has any."""
    width = len(keys)
    if set(map(len, rows)) <= {width}:
        return None
    declared = frozenset(keys)
    return [
        _json({k: v for k, v in row.items() if k not in declared}) if len(row) != width else None
        for row in rows
    ]


def _check_kind(where: str, key: str, kind: str, column: Sequence[Any]) -> None:
    allowed = _KIND_TYPES[kind]
    if not set(map(type, column)) <= allowed:
        i = next(i for i, v in enumerate(column) if type(v) not in allowed)
        raise ValueError(f"{where}[{i}] key {key!r}: {column[i]!r} is not of kind {kind}")
    if kind in ("num", "num?"):
        _check_numbers(where, key, column)
    elif kind == "int" and column and (min(column) < -(2**63) or max(column) >= 2**63):
        raise ValueError(f"{where} key {key!r}: integer out of the 64-bit range")


def _check_numbers(where: str, key: str, column: Sequence[Any]) -> None:
    """Numbers must already follow the number rule and fit a DOUBLE exactly."""

    def fail(problem: str, bad: Any) -> NoReturn:
        i = next(i for i, v in enumerate(column) if v is not None and bad(v))
        raise ValueError(f"{where}[{i}] key {key!r}: {column[i]!r} {problem}")

    present = [v for v in column if v is not None] if None in column else column
    try:
        values = np.array(present, dtype=np.float64)
    except OverflowError:
        fail("is too large for a DOUBLE", lambda v: abs(v) > MAX_EXACT_INT)
    if not np.isfinite(values).all():
        fail("is not a finite number", lambda v: not np.isfinite(v))
    integral = values == np.floor(values)
    if integral.any() and float in set(
        map(type, map(present.__getitem__, np.flatnonzero(integral).tolist()))
    ):
        fail(
            "is integral: the number rule writes it as an int", lambda v: type(v) is float and v.is_integer()
        )
    if values.size and np.abs(values).max() > MAX_EXACT_INT:
        fail("is beyond what a DOUBLE holds exactly", lambda v: abs(v) > MAX_EXACT_INT)


def _check_kpis(table: Table) -> None:
    columns, leftovers = table
    if leftovers is not None:
        raise ValueError(
            "plan_final.json: kpis rows carry keys beyond metric/bucket_type/bucket_key/value/unit"
        )
    keys = list(zip(columns[0], columns[1], columns[2], strict=True))
    if len(set(keys)) != len(keys):
        raise ValueError("plan_final.json: kpis has duplicate (metric, bucket_type, bucket_key) rows")


def _json(value: Any, name: str = "extra_json") -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: not storable as JSON ({exc})") from exc


# --- encode -------------------------------------------------------------------------------------


def encode(content: PlanContent) -> SeriesRows:
    """The PlanRepository rows of a plan. Every document is validated first, unless the content is
    the engine's own (``PlanContent.trusted``): its tables are then taken column by column as made.

    Each fact is stored once: an MRP row holds its item's constants only where they start (``carried``)
    and a plan_final row holds only what capacity reconciliation adds when the rest equals the mrp
    row with the same ``seq`` (``borrowed``)."""
    series = SeriesRows(schema_version=_schema_version(content.documents), canonical=content.trusted)
    series.levels = {level: [] for level in LEVEL_NAMES}
    params_text = _json(content.params, "params")
    made: dict[int, list[Any]] = {}
    tables_of = partial(_trusted_tables, made=made) if content.trusted else _document_tables
    planned: dict[str, list[Sequence[Any]]] = {}
    for seq, name in enumerate(sorted(n for n in content.documents if n not in PSI_ARTIFACTS)):
        doc = content.documents[name]
        tables = tables_of(name, doc)
        for level in DOCUMENT_LEVELS[name]:
            columns, leftovers = tables[level.table]
            planned[level.name] = columns
            stored, masks = _store_once(level, columns, planned)
            series.levels[level.name] = _level_rows(level, stored, leftovers)
            nulls = _null_pattern(level, stored, leftovers, masks)
            if nulls is not None:
                series.nulls[level.name] = (series.levels[level.name], *nulls)
        if "kpis" in tables:
            series.kpis = list(zip(range(len(doc["kpis"])), *tables["kpis"][0], strict=True))
        if name not in _BASE_DOCUMENTS:
            # only a base document's values are needed later (plan_final.json, the next document,
            # borrows from mrp.json); letting the rest go keeps one copy of a large plan in memory
            made.clear()
            planned.clear()
        leftovers = None if name == REPORT else _document_leftovers(name, doc, content, series, params_text)
        series.levels["meta"].append((seq, name, leftovers))
    _encode_psi(content, series)
    return series


def _trusted_tables(name: str, doc: Any, made: dict[int, list[Any]]) -> dict[str, Table]:
    """The tables of one of the engine's documents, taken as they are (no check of any value).
    ``made``: the value lists made so far, by the id of the engine column they came from."""
    if name == REPORT:
        return {"rows": _table_columns(docs.report_rows_from_csv(doc), docs.REPORT_ROW, made)}
    tables = {lv.table: _table_columns(doc[lv.table], lv.shape, made) for lv in DOCUMENT_LEVELS[name]}
    if name == KPI_TABLE[0]:
        tables["kpis"] = _table_columns(doc["kpis"], docs.KPI_ROW, made)
    return tables


#: Row shape kind -> how an engine column becomes the values its plan_series column takes back:
#: quantities as floats (DOUBLE), counts and flags as integers, text as it is.
_STORED_AS: dict[str, Any] = {"num": np.float64, "int": np.int64, "bool": np.int64}


def _table_columns(table: Any, shape: Mapping[str, str], made: dict[int, list[Any]]) -> Table:
    if isinstance(table, docs.RowTable) and table.columns is not None:
        # a column the engine shares between tables (plan_final's planned part is mrp.json's) stays
        # one list, which tells the layout that the values are the same without comparing them
        out: list[Sequence[Any]] = []
        for key, column in zip(shape, table.columns, strict=True):
            if id(column) not in made:
                dtype = _STORED_AS.get(shape[key])
                if isinstance(column, np.ndarray) and dtype is not None:
                    made[id(column)] = column.astype(dtype, copy=False).tolist()
                else:
                    made[id(column)] = _as_stored(shape[key], list(column))
            out.append(made[id(column)])
        return out, None
    keys = tuple(shape)
    columns = [list(map(itemgetter(key), table)) for key in keys]
    return [_as_stored(shape[key], column) for key, column in zip(keys, columns, strict=True)], _leftovers(table, keys)  # fmt: skip


def _as_stored(kind: str, column: list[Any]) -> list[Any]:
    """A small table's column with each value of the type its column reads back as (what the rows
    digest hashes): quantities as floats, flags as integers."""
    if kind == "num":
        return list(map(float, column))
    if kind == "num?":
        return [None if v is None else float(v) for v in column]
    if kind == "bool":
        return list(map(int, column))
    return column


def _store_once(
    level: Level, columns: list[Sequence[Any]], planned: Mapping[str, list[Sequence[Any]]]
) -> tuple[list[Sequence[Any]], dict[int, np.ndarray]]:
    """The columns as stored: carried constants and borrowed keys replaced by None where the layout
    lets the decoder rebuild them; and, by column index, where each column so changed is None."""
    n = len(columns[0]) if columns else 0
    masks: dict[int, np.ndarray] = {}
    if n == 0 or not (level.carried or level.base):
        return columns, masks
    keys = level.keys
    out = list(columns)
    if level.carried:
        item = columns[keys.index("item")]
        starts = np.ones(n, dtype=bool)
        starts[1:] = np.fromiter(map(ne, item[1:], item[:-1]), dtype=bool, count=n - 1)
        for key in level.carried:
            values = columns[keys.index(key)]
            starts[1:] |= np.fromiter(map(ne, values[1:], values[:-1]), dtype=bool, count=n - 1)
        for key in level.carried:
            masks[keys.index(key)] = ~starts
            out[keys.index(key)] = _none_where(columns[keys.index(key)], ~starts)
    if level.base and level.base in planned:
        base_keys = _LEVEL_BY_NAME[level.base].keys
        base = planned[level.base]
        m = min(n, len(base[0]) if base else 0)
        same = np.zeros(n, dtype=bool)
        same[:m] = True
        for key in level.borrowed:
            ours, theirs = columns[keys.index(key)], base[base_keys.index(key)]
            if ours is theirs:  # the engine's plan_final shares mrp.json's columns
                continue
            same[:m] &= np.fromiter(map(_same, ours[:m], theirs[:m]), dtype=bool, count=m)
        if same.any():
            for key in level.borrowed:
                masks[keys.index(key)] = same
                out[keys.index(key)] = _none_where(columns[keys.index(key)], same)
    return out, masks


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same type (1, 1.0 and True are different values in a document)."""
    return a == b and type(a) is type(b)


def _none_where(values: Sequence[Any], mask: np.ndarray) -> list[Any]:
    if mask.all():
        return [None] * len(values)
    arr = np.array(values, dtype=object)
    arr[mask] = None
    return arr.tolist()


def _schema_version(documents: Mapping[str, Any]) -> int:
    """The plan's schema version: aggregate.json's (or the first JSON document's)."""
    names = sorted(n for n, d in documents.items() if isinstance(d, dict) and n not in PSI_ARTIFACTS)
    names.sort(key=lambda n: n != "aggregate.json")
    for name in names:
        value = documents[name].get("schema_version")
        if type(value) is int:
            return value
    return SCHEMA_VERSION


def _level_rows(level: Level, columns: list[Sequence[Any]], leftovers: list[str | None] | None) -> list[Row]:
    columns = list(columns)
    if level.week_at_period:
        week, period = level.keys.index("week"), level.keys.index("period")
        columns[week] = list(map("{}@{}".format, columns[week], columns[period]))
    if level.period_is_bucket:
        columns.append(columns[level.keys.index("period")])
    return list(
        zip(range(len(columns[0])), *columns, repeat(None) if leftovers is None else leftovers, strict=False)
    )


def _null_pattern(
    level: Level,
    columns: list[Sequence[Any]],
    leftovers: list[str | None] | None,
    masks: dict[int, np.ndarray],
) -> tuple[tuple[int, ...], np.ndarray] | None:
    """Where the level's rows (as :func:`_level_rows` makes them) are NULL: the positions that may be
    and a bit pattern per row. Only the layout's NULLs, optional fields and leftovers can be; a
    required field never is (validated, or the engine's own)."""
    n = len(columns[0]) if columns else 0
    if n == 0:
        return None
    found: dict[int, np.ndarray] = {1 + k: mask for k, mask in masks.items()}
    for k, key in enumerate(level.keys):
        if k not in masks and level.shape[key].endswith("?"):
            found[1 + k] = np.fromiter(map(is_, columns[k], repeat(None)), dtype=bool, count=n)
    extra = len(LEVEL_COLUMNS[level.name]) - 1
    found[extra] = (
        np.ones(n, dtype=bool)
        if leftovers is None
        else np.fromiter(map(is_, leftovers, repeat(None)), dtype=bool, count=n)  # fmt: skip
    )
    positions = tuple(p for p in sorted(found) if found[p].any())
    if not positions or len(positions) > 62:
        return None
    codes = np.zeros(n, dtype=np.int64)
    for bit, p in enumerate(positions):
        codes |= found[p].astype(np.int64) << bit
    return positions, codes


def _document_leftovers(
    name: str, doc: dict[str, Any], content: PlanContent, series: SeriesRows, params_text: str
) -> str | None:
    """A document's keys not held by rows: its meta keys, unknown keys, and header values that differ
    from the version's own (version id, params, schema version)."""
    tables = {lv.table for lv in DOCUMENT_LEVELS[name]} | ({"kpis"} if name == KPI_TABLE[0] else set())
    common = {
        "schema_version": lambda v: type(v) is int and v == series.schema_version,
        "version_id": lambda v: v == content.version_id,
        "params": lambda v: _json(v, "params") == params_text,
    }
    rest = {k: v for k, v in doc.items() if k not in tables and not (k in common and common[k](v))}
    return _json(rest, name) if rest else None


# --- decode -------------------------------------------------------------------------------------


def decode(
    version_id: str,
    params: Mapping[str, Any],
    schema_version: int,
    series_rows: Mapping[str, Iterable[Row]],
    kpi_rows: Iterable[Row],
    *,
    overrides: Iterable[Row] = (),
    events: Iterable[Row] = (),
    approval: str | None = None,
    fragments: bool = False,
) -> PlanContent:
    """Rebuild every document exactly from rows: ``series_rows`` maps a level to its row tuples in
    ``LEVEL_COLUMNS[level]`` order (any order of rows), ``kpi_rows`` are in ``KPI_COLUMNS`` order;
    ``overrides``/``events`` are the PSI table rows in document order and ``approval`` the version's.

    ``fragments``: the row tables of the JSON documents are their canonical JSON text already
    (``orjson.Fragment``), not lists of dicts. Such documents are only good for writing their text
    (``documents.artifact_text`` gives the same text either way), which skips building a dict per row."""
    unknown = set(series_rows) - set(LEVEL_NAMES)
    if unknown:
        raise ValueError(f"plan_series of {version_id}: unknown level(s) {sorted(unknown)}")
    levels = {level: _in_seq_order(level, series_rows.get(level, ())) for level in LEVEL_NAMES}
    _fill_levels(levels)
    kpis = list(kpi_rows)
    header = {"schema_version": schema_version, "version_id": version_id, "params": _json(dict(params))}
    documents: dict[str, Any] = {}
    for _, name, leftovers in levels["meta"]:
        if name not in DOCUMENT_LEVELS:
            raise ValueError(f"plan_series of {version_id}: meta row for unknown document {name!r}")
        if name == REPORT:
            documents[name] = _decode_report(levels["report"])
        else:
            documents[name] = _decode_document(name, header, levels, kpis, leftovers, fragments)
    _refuse_orphans(version_id, documents, levels, kpis)
    documents.update(
        _decode_psi(version_id, schema_version, levels["psi"], list(overrides), list(events), approval)
    )
    return PlanContent(version_id=version_id, params=json.loads(header["params"]), documents=documents)


def _decode_document(
    name: str,
    header: Mapping[str, Any],
    levels: Mapping[str, list[Row]],
    kpis: list[Row],
    leftovers: str | None,
    fragments: bool = False,
) -> dict[str, Any]:
    """A JSON artifact: the version's header, its tables from rows, then its stored leftover keys."""
    doc: dict[str, Any] = {**header, "params": json.loads(header["params"])}
    table = _level_fragment if fragments else _decode_level
    doc.update({lv.table: table(lv, levels[lv.name]) for lv in DOCUMENT_LEVELS[name]})
    if name == KPI_TABLE[0]:
        doc["kpis"] = _decode_kpis(kpis)
    if leftovers:
        doc.update(json.loads(leftovers))
    return doc


def _in_seq_order(level: str, rows: Iterable[Row]) -> list[Row]:
    ordered = sorted(rows, key=itemgetter(0))
    if list(map(itemgetter(0), ordered)) != list(range(len(ordered))):
        raise ValueError(f"plan_series level {level!r}: seq is not 0..n-1 (rows missing or duplicated)")
    return ordered


def _fill_levels(levels: dict[str, list[Row]]) -> None:
    """Put back what the layout stores once (``Level.carried``, ``Level.borrowed``), level by level
    in ``LEVELS`` order, so a base level is whole before a level borrows from it. Rows written before
    the layout stored facts once have every value, and come back unchanged."""
    for level in LEVELS:
        rows = levels.get(level.name)
        if rows:
            base = levels.get(level.base) if level.base else None
            levels[level.name] = fill_rows(level, rows, base)


def fill_rows(level: Level, rows: list[Row], base: list[Row] | None = None) -> list[Row]:
    """A level's rows (``LEVEL_COLUMNS`` order, seq 0..n-1 in order) with every value present: carried
    constants taken from the row before, borrowed keys from ``base``'s (filled) row with the same seq."""
    if not rows or not (level.carried or level.borrowed):
        return rows
    columns = list(zip(*rows, strict=True))
    keys = level.keys
    changed = False
    if level.borrowed:
        where = [1 + keys.index(k) for k in level.borrowed]
        empty = [np.equal(np.array(columns[j], dtype=object), None) for j in where]
        borrowed = np.logical_and.reduce(empty)
        if (np.logical_or.reduce(empty) != borrowed).any():
            i = int(np.flatnonzero(np.logical_or.reduce(empty) != borrowed)[0])
            raise ValueError(f"plan_series level {level.name!r}: row {i} lacks some of the values it would borrow")  # fmt: skip
        if borrowed.any():
            at = np.flatnonzero(borrowed)
            if not base or int(at[-1]) >= len(base):
                raise ValueError(
                    f"plan_series level {level.name!r}: rows borrow from level {level.base!r}, which lacks them"
                )
            base_keys = _LEVEL_BY_NAME[level.base].keys if level.base else ()
            base_columns = list(zip(*base, strict=True))
            for key, j in zip(level.borrowed, where, strict=True):
                theirs = np.array(base_columns[1 + base_keys.index(key)], dtype=object)
                ours = np.array(columns[j], dtype=object)
                ours[at] = theirs[at]
                columns[j] = ours.tolist()
            changed = True
    for key in level.carried:
        j = 1 + keys.index(key)
        values = np.array(columns[j], dtype=object)
        present = np.not_equal(values, None)
        if present.all():
            continue
        if not present[0]:
            raise ValueError(f"plan_series level {level.name!r}: the first row lacks {key!r}")
        source = np.maximum.accumulate(np.where(present, np.arange(len(values)), 0))
        columns[j] = values[source].tolist()
        changed = True
    return list(zip(*columns, strict=True)) if changed else rows


def _level_values(level: Level, rows: list[Row]) -> tuple[list[tuple[Any, ...]], list[list[Any]]]:
    """A level's row tuples as columns, and the decoded values of each row key (in shape order)."""
    columns = list(zip(*rows, strict=True))
    keys = level.keys
    values = [_DECODERS[level.shape[k]](columns[1 + j]) for j, k in enumerate(keys)]
    if level.week_at_period:
        week, period = keys.index("week"), keys.index("period")
        values[week] = list(map(str.removesuffix, values[week], map("@{}".format, values[period])))
    return columns, values


def _decode_level(level: Level, rows: list[Row]) -> list[dict[str, Any]]:
    if not rows:
        return []
    columns, values = _level_values(level, rows)
    keys = level.keys
    out = list(map(dict, map(zip, repeat(keys), zip(*values, strict=True))))
    leftovers = columns[-1]
    if leftovers.count(None) != len(leftovers):
        for row, extra in zip(out, leftovers, strict=True):
            if extra is not None:
                row.update(json.loads(extra))
    return out


def _level_fragment(level: Level, rows: list[Row]) -> orjson.Fragment:
    """The canonical JSON text of ``_decode_level(level, rows)`` (an array of objects with sorted
    keys), made column by column: each column's values are written by orjson once and cut into items,
    then every row is one bytes template filled in. Rows with leftover keys are written whole."""
    if not rows:
        return orjson.Fragment(b"[]")
    columns = list(zip(*rows, strict=True))
    keys = level.keys
    order = sorted(range(len(keys)), key=keys.__getitem__)
    values: list[Any] = [None] * len(keys)
    parts, items = [], []
    for j in order:
        shape = level.shape[keys[j]]
        cut = _integral_items(columns[1 + j]) if shape in ("num", "int") else None
        quoted = False
        if cut is None:
            if values[j] is None:
                values[j] = _level_column(level, keys[j], columns, values)
            quoted, cut = _json_items(values[j], shape in ("str", "str?"))
        parts.append(orjson.dumps(keys[j]) + (b':"%s"' if quoted else b":%s"))
        items.append(cut)
    template = b"{" + b",".join(parts) + b"}"
    texts = [template % item for item in zip(*items, strict=True)]
    leftovers = columns[-1]
    if leftovers.count(None) != len(leftovers):
        values = [v if v is not None else _level_column(level, k, columns, values) for k, v in zip(keys, values, strict=True)]  # fmt: skip
        for i, extra in enumerate(leftovers):
            if extra is not None:
                row = {k: values[j][i] for j, k in enumerate(keys)}
                row.update(json.loads(extra))
                texts[i] = orjson.dumps(row, option=orjson.OPT_SORT_KEYS)
    return orjson.Fragment(b"[" + b",".join(texts) + b"]")


def _level_column(level: Level, key: str, columns: list[tuple[Any, ...]], values: list[Any]) -> list[Any]:
    """The decoded values of one row key of a level (``_level_values`` for a single key)."""
    keys = level.keys
    j = keys.index(key)
    decoded = _DECODERS[level.shape[key]](columns[1 + j])
    if level.week_at_period and key == "week":
        period = keys.index("period")
        periods = (
            values[period]
            if values[period] is not None
            else _DECODERS[level.shape["period"]](columns[1 + period])
        )
        decoded = list(map(str.removesuffix, decoded, map("@{}".format, periods)))
    return decoded


def _integral_items(column: Sequence[Any]) -> list[bytes] | None:
    """The JSON text of each value of a number column whose values are all whole (the number rule
    writes them as integers), made in one pass by numpy and orjson; None when the column holds a
    fraction, a None, a non-number or a value beyond 2**53 (the general path handles those)."""
    whole = docs.whole_numbers(column)
    if whole is None:
        return None
    return orjson.dumps(whole, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")


def _json_items(column: list[Any], text_kind: bool) -> tuple[bool, list[bytes]]:
    """The JSON text of each value of a column as orjson writes it inside a document, and whether the
    texts are plain strings given without their quotes. orjson writes the whole column once; numbers,
    booleans and nulls never hold a comma, and strings without a quote, backslash or control character
    are written verbatim between quotes, so the column's text is cut at the separators. ``text_kind``:
    the column holds strings (or None); any other column holds numbers, booleans or None only."""
    text = orjson.dumps(column)[1:-1]
    if not text_kind:
        return False, text.split(b",")
    # orjson escapes a quote, a backslash and every control character with a backslash, so a column
    # whose text holds none was written verbatim
    if None not in column and b"\\" not in text:
        return True, text[1:-1].split(b'","')
    return False, [orjson.dumps(v) for v in column]


def _decode_kpis(kpi_rows: Iterable[Row]) -> list[dict[str, Any]]:
    rows = _in_seq_order("plan_kpis", kpi_rows)
    if not rows:
        return []
    _seq, metric, bucket_type, bucket_key, value, unit = zip(*rows, strict=True)
    keys = tuple(docs.KPI_ROW)
    return list(
        map(
            dict,
            map(zip, repeat(keys), zip(metric, bucket_type, bucket_key, _numbers(value), unit, strict=True)),
        )
    )


def _decode_report(rows: list[Row]) -> str:
    level = DOCUMENT_LEVELS[REPORT][0]
    return docs.csv_text(docs.REPORT_COLUMNS, _decode_level(level, rows))


def _refuse_orphans(
    version_id: str,
    documents: Mapping[str, Any],
    levels: Mapping[str, list[Row]],
    kpis: list[Row],
) -> None:
    """Rows whose document has no meta row mean a broken encoding, not an empty table."""
    for level in LEVELS:
        if levels[level.name] and level.document not in documents:
            raise ValueError(
                f"plan_series of {version_id}: level {level.name!r} has rows but no {level.document}"
            )
    if kpis and KPI_TABLE[0] not in documents:
        raise ValueError(f"plan_kpis of {version_id}: rows without {KPI_TABLE[0]}")


def _numbers(column: Sequence[Any]) -> list[int | float]:
    """The number rule over a column read from DOUBLE (or int) values, vectorized."""
    values = np.asarray(column, dtype=np.float64)
    integral = values == np.floor(values)
    if integral.all():
        return values.astype(np.int64).tolist()
    out = values.tolist()
    if integral.any():
        where = np.flatnonzero(integral)
        for i, v in zip(where.tolist(), values[where].astype(np.int64).tolist(), strict=True):
            out[i] = v
    return out


def _optional_numbers(column: Sequence[Any]) -> list[int | float | None]:
    if None not in column:
        return list(_numbers(column))
    present = [i for i, v in enumerate(column) if v is not None]
    out: list[int | float | None] = [None] * len(column)
    for i, v in zip(present, _numbers([column[i] for i in present]), strict=True):
        out[i] = v
    return out


_DECODERS: dict[str, Any] = {
    "str": lambda column: column,
    "str?": lambda column: column,
    "num": _numbers,
    "num?": _optional_numbers,
    "int": lambda column: list(map(int, column)),
    "bool": lambda column: list(map(bool, column)),
}


# --- PSI documents ------------------------------------------------------------------------------
# psi_overrides.json = {schema_version, version_id, overrides: [entry]}: the current value and lock of
# every edited cell; psi_state.json = {schema_version, version_id, approval, events: [event]}.


def psi_overrides_document(version_id: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "version_id": version_id, "overrides": entries}


def psi_state_document(version_id: str, approval: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "version_id": version_id,
        "approval": approval,
        "events": events,
    }


def psi_approval(content: PlanContent) -> str | None:
    """The approval held by a plan's psi_state.json, or None without one."""
    state = content.documents.get(PSI_STATE)
    return state.get("approval") if isinstance(state, dict) else None


def override_row(entry: Mapping[str, Any]) -> Row:
    """One ``plan_overrides`` row (``OVERRIDE_COLUMNS`` order) of a validated override entry."""
    return _entry_row(OVERRIDE_FIELDS, entry)


def event_row(entry: Mapping[str, Any]) -> Row:
    """One ``plan_override_events`` row (``EVENT_COLUMNS`` order) of a validated event."""
    return _entry_row(EVENT_FIELDS, entry)


def override_entry(row: Sequence[Any]) -> dict[str, Any]:
    return _row_entry(OVERRIDE_FIELDS, row)


def event_entry(row: Sequence[Any]) -> dict[str, Any]:
    return _row_entry(EVENT_FIELDS, row)


def _entry_row(fields: Mapping[str, tuple[str, str]], entry: Mapping[str, Any]) -> Row:
    rest = {k: v for k, v in entry.items() if k not in fields}
    return (*(entry[k] for k in fields), _json(rest) if rest else None)


def _row_entry(fields: Mapping[str, tuple[str, str]], row: Sequence[Any]) -> dict[str, Any]:
    entry = {
        key: _PSI_DECODERS[kind](value) for (key, (_, kind)), value in zip(fields.items(), row, strict=False)
    }
    if row[len(fields)]:
        entry.update(json.loads(row[len(fields)]))
    return entry


_PSI_DECODERS: dict[str, Any] = {
    "str": lambda v: v,
    "str?": lambda v: v,
    "int": int,
    "bool": bool,
    "num?": lambda v: None if v is None else _numbers([v])[0],
}


def _psi_entries(name: str, doc: Any) -> list[Row]:
    """Validate a PSI document and return the table rows of its entries."""
    table, fields = ("overrides", OVERRIDE_FIELDS) if name == PSI_OVERRIDES else ("events", EVENT_FIELDS)
    if not isinstance(doc, dict):
        raise ValueError(f"{name}: a JSON artifact must be an object, got {type(doc).__name__}")
    for key in ("schema_version", "version_id", *(("approval",) if name == PSI_STATE else ()), table):
        if key not in doc:
            raise ValueError(f"{name}: the document lacks key {key!r}")
    _json(doc, name)
    if name == PSI_STATE and doc["approval"] not in APPROVAL_STATES:
        raise ValueError(f"{name}: approval {doc['approval']!r} is not one of {', '.join(APPROVAL_STATES)}")
    entries = doc[table]
    columns, leftovers = _columns(name, table, entries, {k: kind for k, (_, kind) in fields.items()})
    keys = tuple(fields)

    def refuse(key: str, allowed: Any, reason: str) -> None:
        column = columns[keys.index(key)]
        bad = [i for i, v in enumerate(column) if not allowed(v)]
        if bad:
            raise ValueError(f"{name}: {table}[{bad[0]}] key {key!r}: {column[bad[0]]!r} {reason}")

    short = lambda n: lambda v: v is None or len(v) <= n  # noqa: E731
    refuse("key_hash", short(64), "is longer than 64 characters")
    if name == PSI_OVERRIDES:
        refuse("level", PSI_LEVELS.__contains__, f"is not one of {', '.join(PSI_LEVELS)}")
        pairs = list(zip(columns[0], columns[1], strict=True))
        if len(set(pairs)) != len(pairs):
            raise ValueError(f"{name}: two overrides share a (level, key_hash)")
    else:
        refuse("type", EVENT_TYPES.__contains__, f"is not one of {', '.join(EVENT_TYPES)}")
        refuse("level", lambda v: v is None or v in PSI_LEVELS, f"is not one of {', '.join(PSI_LEVELS)}")
    rest = repeat(None) if leftovers is None else leftovers
    return list(zip(*columns, rest, strict=False)) if entries else []


def _encode_psi(content: PlanContent, series: SeriesRows) -> None:
    """PSI documents -> table rows, the approval, and a ``psi`` row only for what the tables cannot hold."""
    markers: list[tuple[str, str | None]] = []
    same = {
        "schema_version": lambda v: type(v) is int and v == series.schema_version,
        "version_id": lambda v: v == content.version_id,
    }
    for name in PSI_ARTIFACTS:
        doc = content.documents.get(name)
        if doc is None:
            continue
        rows = _psi_entries(name, doc)
        table = "overrides" if name == PSI_OVERRIDES else "events"
        rest = {
            k: v for k, v in doc.items() if k not in (table, "approval") and not (k in same and same[k](v))
        }
        if name == PSI_OVERRIDES:
            series.overrides = rows
            implied = bool(rows)
        else:
            series.events = rows
            series.approval = doc["approval"]
            implied = bool(rows) or doc["approval"] != "draft"
        if rest or not implied:
            markers.append((name, _json(rest, name) if rest else None))
    series.levels["psi"] = [(i, name, extra) for i, (name, extra) in enumerate(markers)]


def _decode_psi(
    version_id: str,
    schema_version: int,
    markers: list[Row],
    overrides: list[Row],
    events: list[Row],
    approval: str | None,
) -> dict[str, Any]:
    """The PSI documents present in the rows: a table with rows, a non-draft approval or a ``psi`` row."""
    extra: dict[str, dict[str, Any]] = {}
    for _, name, text in markers:
        if name not in PSI_ARTIFACTS:
            raise ValueError(f"plan_series of {version_id}: psi row for unknown document {name!r}")
        extra[name] = json.loads(text) if text else {}
    header = {"schema_version": schema_version, "version_id": version_id}
    out: dict[str, Any] = {}
    if overrides or PSI_OVERRIDES in extra:
        entries = [override_entry(r) for r in overrides]
        out[PSI_OVERRIDES] = {**header, "overrides": entries, **extra.get(PSI_OVERRIDES, {})}
    if events or PSI_STATE in extra or approval not in (None, "draft"):
        entries = [event_entry(r) for r in events]
        state = {**header, "approval": approval or "draft", "events": entries}
        out[PSI_STATE] = {**state, **extra.get(PSI_STATE, {})}
    return out


def decode_psi(
    version_id: str,
    schema_version: int,
    markers: Iterable[Row],
    overrides: Iterable[Row],
    events: Iterable[Row],
    approval: str | None,
) -> dict[str, Any]:
    """The PSI documents held by a version's rows alone: ``psi`` level rows (``seq, label, extra_json``),
    override and event rows, and the approval."""
    return _decode_psi(
        version_id, schema_version, _in_seq_order("psi", markers), list(overrides), list(events), approval
    )


def decode_level_rows(
    level: str, rows: Iterable[Row], *, part: bool = False, whole_items: bool = False
) -> list[dict[str, Any]]:
    """The artifact rows of one ``plan_series`` level (the PSI base values read one level at a time).
    ``part``: the rows are a selection of the level (one family's), in ``seq`` order but not all of
    it; only a level whose rows hold every value of their own (nothing carried) can be read so, unless
    ``whole_items``: the selection is every row of some items (each item's run from its first row,
    which holds its constants)."""
    spec = next((lv for lv in LEVELS if lv.name == level), None)
    if spec is None or spec.base or (part and spec.carried and not whole_items):
        raise ValueError(f"{level!r} is not a plan_series level whose rows decode on their own")
    ordered = sorted(rows, key=itemgetter(0)) if part else _in_seq_order(level, rows)
    return _decode_level(spec, fill_rows(spec, ordered))
