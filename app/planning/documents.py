"""Artifact document shapes and their canonical text.

Owns the field list of every artifact row, the number rule and the canonical JSON serialization that
the pipeline, both codecs and the exporter share. Number rule: every numeric value is written as an
``int`` when it is integral and as a ``float`` otherwise, so ``5`` never appears as ``5.0`` and a
round trip through a DOUBLE column gives back the same JSON.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import orjson

# Field kinds: "str", "num" (int when integral, else float), "int", "bool", "str?" and "num?" (nullable).
AGGREGATE_ROW = {
    "family": "str",
    "period": "str",
    "demand": "num",
    "supply": "num",
    "backlog": "num",
    "inventory_open": "num",
    "inventory_close": "num",
    "prebuild": "num",
    "capacity_total": "num",
    "capacity_used": "num",
}
SKU_WEEK_ROW = {
    "family": "str",
    "period": "str",
    "sku": "str",
    "week": "str",
    "demand": "num",
    "supply": "num",
    "backlog": "num",
}
MRP_ROW = {
    "item": "str",
    "week": "str",
    "llc": "int",
    "gross_req": "num",
    "scheduled_receipts": "num",
    "on_hand_start": "num",
    "net_req": "num",
    "planned_order_receipt": "num",
    "planned_order_release": "num",
    "on_hand_end": "num",
    "orders": "int",
    "lt_weeks": "int",
    "lot": "num",
    "moq": "num",
    "safety_stock": "num",
    "past_due": "bool",
}
FINAL_ROW = {
    **MRP_ROW,
    "gross_req_adj": "num",
    "planned_order_receipt_adj": "num",
    "planned_order_release_adj": "num",
    "on_hand_end_adj": "num",
    "orders_adj": "int",
    "past_due_adj": "bool",
}
WEEKLY_SUMMARY_ROW = {
    "week": "str",
    "capacity": "num",
    "original_load": "num",
    "adjusted_load": "num",
    "prebuild_in": "num",
    "spill_in": "num",
    "spill_out": "num",
    "utilization": "num",
    "zone": "str?",
}
ANCHOR_LOG_ROW = {
    "family": "str",
    "period": "str",
    "sku": "str?",
    "week": "str?",
    "measure": "str",
    "before": "num",
    "after": "num",
    "policy": "str",
    "reason": "str",
}
KPI_ROW = {"metric": "str", "bucket_type": "str", "bucket_key": "str", "value": "num", "unit": "str"}
RECON_MEASURES = ("demand", "supply", "backlog")
RECON_ROW = {
    "family": "str",
    "period": "str",
    **{
        f"{m}_{k}": kind
        for m in RECON_MEASURES
        for k, kind in (("agg", "num"), ("det", "num"), ("delta", "num"), ("rel", "num"), ("ok", "bool"))
    },
    "ok": "bool",
}
EXCEPTION_TYPES = (
    "shortage",
    "below_safety_stock",
    "capacity_overload",
    "past_due_release",
    "unplanned_after_horizon",
    "reconciliation_violation",
)
EXCEPTION_ROW = {
    "type": "str",
    "item": "str?",
    "family": "str?",
    "start": "str",
    "end": "str",
    "quantity": "num",
    "message": "str",
}
REPORT_COLUMNS = (
    "type",
    "week",
    "capacity",
    "original_load",
    "adjusted_load",
    "utilization",
    "spill_in",
    "spill_out",
    "demand",
    "supply_plan",
    "fill_rate",
)
REPORT_ROW = {"type": "str", "week": "str", **{c: "num?" for c in REPORT_COLUMNS[2:]}}

#: Row shape of each JSON artifact's ``rows`` and of its list-valued side tables.
ARTIFACT_ROWS: dict[str, dict[str, str]] = {
    "aggregate.json": AGGREGATE_ROW,
    "sku_week.json": SKU_WEEK_ROW,
    "mrp.json": MRP_ROW,
    "plan_final.json": FINAL_ROW,
    "reconciliation_log.json": RECON_ROW,
    "exceptions.json": EXCEPTION_ROW,
}
#: List-valued keys beside ``rows`` (name -> row shape), per artifact.
ARTIFACT_TABLES: dict[str, dict[str, dict[str, str]]] = {
    "plan_final.json": {"weekly_summary": WEEKLY_SUMMARY_ROW, "anchor_log": ANCHOR_LOG_ROW, "kpis": KPI_ROW},
}
#: Small object-valued keys beside ``rows`` (may be null), per artifact.
ARTIFACT_META_KEYS: dict[str, tuple[str, ...]] = {
    "plan_final.json": ("boundary_summary", "reconcile_params"),
    "reconciliation_log.json": ("tolerance", "summary"),
}


def num(value: Any) -> int | float:
    """The number rule: integral values become ``int``; NaN/inf are refused."""
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"non-finite number in plan content: {value!r}")
    return int(v) if v.is_integer() else v


def num_list(values: np.ndarray) -> list[int | float]:
    """Vectorized :func:`num` over an array (fast path for integer arrays)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.tolist()
    if arr.dtype.kind == "b":
        raise TypeError("num_list got a boolean array")
    if not np.all(np.isfinite(arr)):
        raise ValueError("non-finite number in plan content")
    integral = arr == np.floor(arr)
    if integral.all():
        return arr.astype(np.int64).tolist()
    return [int(v) if i else v for v, i in zip(arr.tolist(), integral.tolist(), strict=True)]


class RowTable(Sequence):
    """An artifact table as the engine makes it: its rows held column by column, in shape order.

    The engine's large tables have hundreds of thousands of rows. Both codecs read the columns
    (:attr:`columns`) and write the canonical text straight from them (:func:`dumps`), so the engine's
    own output never becomes a dict per row on its way to storage. A row dict is made only when
    someone reads a row (the CLI summary, tests); reading rows freezes the columns out
    (:attr:`columns` is then None), so that a caller who edits a row dict is what gets written.

    Columns are numpy arrays (quantities, counts, flags) or lists (text); quantity columns obey the
    number rule when written, as :func:`num_list` does.
    """

    __slots__ = ("shape", "_columns", "_rows")

    def __init__(self, shape: Mapping[str, str], columns: Sequence[Any]):
        if len(columns) != len(shape):
            raise ValueError(f"a table of {len(shape)} keys got {len(columns)} columns")
        lengths = {len(c) for c in columns}
        if len(lengths) > 1:
            raise ValueError(f"columns of unequal length: {sorted(lengths)}")
        self.shape = dict(shape)
        self._columns: list[Any] | None = list(columns)
        self._rows: list[dict[str, Any]] | None = None

    @property
    def columns(self) -> list[Any] | None:
        """The columns in shape order, or None once rows were handed out as dicts."""
        return self._columns

    def column_values(self, j: int) -> list[Any]:
        """Column ``j`` as plain Python values (quantities by the number rule)."""
        assert self._columns is not None
        column = self._columns[j]
        if not isinstance(column, np.ndarray):
            return list(column)
        kind = self.shape[tuple(self.shape)[j]]
        if kind in ("num", "num?"):
            return num_list(column)
        return column.tolist()

    def rows(self) -> list[dict[str, Any]]:
        if self._rows is None:
            keys = tuple(self.shape)
            values = [self.column_values(j) for j in range(len(keys))]
            self._rows = [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)]
            self._columns = None
        return self._rows

    def __len__(self) -> int:
        if self._columns is not None:
            return len(self._columns[0]) if self._columns else 0
        return len(self._rows or ())

    def __getitem__(self, i: Any) -> Any:
        return self.rows()[i]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RowTable):
            other = other.rows()
        return self.rows() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RowTable({len(self)} rows of {', '.join(self.shape)})"

    def json_bytes(self) -> bytes:
        """The canonical JSON text of the table (an array of objects with sorted keys)."""
        return b"".join(self.json_pieces())

    def json_pieces(self) -> list[bytes]:
        """:meth:`json_bytes` in pieces whose concatenation is the text (a large table's text is then
        copied once, into the document that holds it)."""
        if self._columns is None:
            return [orjson.dumps(self._rows, option=orjson.OPT_SORT_KEYS)]
        return rows_json_pieces(self.shape, self._columns)


#: Rows written per piece of a table's text: bounds the per-value texts alive at once.
_TEXT_CHUNK = 65_536


def rows_json(shape: Mapping[str, str], columns: Sequence[Any]) -> bytes:
    """The canonical JSON text of a table given column by column (shape order): each column's values
    are written by orjson once and cut into items, then every row is one bytes template filled in."""
    return b"".join(rows_json_pieces(shape, columns))


def rows_json_pieces(shape: Mapping[str, str], columns: Sequence[Any]) -> list[bytes]:
    """:func:`rows_json` as pieces to concatenate: the brackets, and the text of each chunk of rows
    with the commas between them."""
    keys = tuple(shape)
    n = len(columns[0]) if columns else 0
    if n == 0:
        return [b"[]"]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    pieces = [b"["]
    for start in range(0, n, _TEXT_CHUNK):
        parts, items = [], []
        for j in order:
            quoted, cut = json_items(columns[j][start : start + _TEXT_CHUNK], shape[keys[j]])
            parts.append(orjson.dumps(keys[j]) + (b':"%s"' if quoted else b":%s"))
            items.append(cut)
        template = b"{" + b",".join(parts) + b"}"
        if start:
            pieces.append(b",")
        pieces.append(b",".join([template % item for item in zip(*items, strict=True)]))
    pieces.append(b"]")
    return pieces


#: Integers below this size are exact as doubles, so a whole-valued double is written as that integer.
_EXACT_INT = 2.0**53


def json_items(values: Any, kind: str) -> tuple[bool, list[bytes]]:
    """The JSON text of each value of a column as it is written inside a document (numbers by the
    number rule), and whether the texts are plain strings given without their quotes. orjson writes
    the whole column once; numbers, booleans and nulls never hold a comma, and strings without a
    quote, backslash or control character are written verbatim between quotes, so the column's text
    is cut at the separators."""
    if kind in ("num", "int"):
        whole = whole_numbers(values)
        if whole is not None:
            return False, orjson.dumps(whole, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")
        if kind == "num" and isinstance(values, np.ndarray):
            values = num_list(values)
    elif isinstance(values, np.ndarray):
        values = values.tolist()
    text = orjson.dumps(values)[1:-1]
    if kind not in ("str", "str?"):
        return False, text.split(b",")
    # orjson escapes a quote, a backslash and every control character with a backslash, so a column
    # whose text holds none was written verbatim
    if None not in values and b"\\" not in text:
        return True, text[1:-1].split(b'","')
    return False, [orjson.dumps(v) for v in values]


def whole_numbers(values: Any) -> np.ndarray | None:
    """The column as int64 when every value is a whole number below 2**53 (the number rule writes
    them as integers); None when it holds a fraction, a None, a non-number or a larger value."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return values
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.ndim != 1 or not (arr == np.floor(arr)).all() or not (np.abs(arr) < _EXACT_INT).all():
        return None
    return arr.astype(np.int64)


def document(
    version_id: str, params: dict[str, Any], rows: list[dict[str, Any]] | RowTable, **extra: Any
) -> dict[str, Any]:
    """A JSON artifact: ``{schema_version, version_id, params, rows, ...}``."""
    from app.planning.model import SCHEMA_VERSION

    return {
        "schema_version": SCHEMA_VERSION,
        "version_id": version_id,
        "params": params,
        "rows": rows,
        **extra,
    }


def dumps(doc: Any) -> str:
    """Canonical JSON text of an artifact: sorted keys, compact, UTF-8, trailing newline.

    One serializer (orjson) writes every artifact everywhere, so the same content always has the same
    text; floats are written in their shortest round-trip form (``1e-05`` as ``0.00001``). Non-finite
    numbers never get here: the number rule and the codecs' validation refuse them first. An engine
    table (:class:`RowTable`) is written from its columns."""
    return dumps_bytes(doc).decode()


def dumps_bytes(doc: Any) -> bytes:
    """:func:`dumps` as UTF-8 bytes, the form that is hashed and written.

    An engine table is written in its place as a NUL byte (which orjson's text never holds: it escapes
    every control character), and the document's text is then joined once from the parts around those
    marks and the tables' own pieces, so a large table's text is copied once, not once per layer."""
    tables: list[RowTable] = []

    def mark(value: Any) -> Any:
        if isinstance(value, RowTable):
            tables.append(value)
            return orjson.Fragment(b"\x00")
        raise TypeError(f"{type(value).__name__} is not part of an artifact")

    text = orjson.dumps(doc, default=mark, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
    if not tables:
        return text
    outside = text.split(b"\x00")
    pieces = [outside[0]]
    for table, after in zip(tables, outside[1:], strict=True):
        pieces.extend(table.json_pieces())
        pieces.append(after)
    return b"".join(pieces)


def artifact_text(name: str, payload: Any) -> str:
    """Text of an artifact as written to ``plan_artifacts`` and to export files."""
    if name.endswith(".csv"):
        if not isinstance(payload, str):
            raise TypeError(f"{name} must be CSV text")
        return payload
    return dumps(payload)


def artifact_bytes(name: str, payload: Any) -> bytes:
    """:func:`artifact_text` as UTF-8 bytes."""
    if name.endswith(".csv"):
        return artifact_text(name, payload).encode()
    return dumps_bytes(payload)


def parse_artifact(name: str, text: str) -> Any:
    return text if name.endswith(".csv") else orjson.loads(text)


def format_number(value: Any) -> str:
    """Plain number text for CSV: integers without ``.0``, floats in shortest round-trip form."""
    if value is None:
        return ""
    return repr(num(value)) if isinstance(num(value), float) else str(num(value))


def csv_text(header: tuple[str, ...] | list[str], rows: list[dict[str, Any]]) -> str:
    """CSV text (``\\n`` line ends) with numbers formatted by :func:`format_number`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(
            [
                format_number(row.get(c))
                if isinstance(row.get(c), (int, float)) and not isinstance(row.get(c), bool)
                else ("" if row.get(c) is None else str(row.get(c)))
                for c in header
            ]
        )
    return buf.getvalue()


def report_rows_from_csv(text: str) -> list[dict[str, Any]]:
    """Parse ``report.csv`` back into typed rows (numbers by the number rule, blanks as None)."""
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for rec in reader:
        row: dict[str, Any] = {"type": rec["type"], "week": rec["week"]}
        for c in REPORT_COLUMNS[2:]:
            row[c] = num(rec[c]) if rec.get(c, "") != "" else None
        rows.append(row)
    return rows
