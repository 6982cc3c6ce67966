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


def document(
    version_id: str, params: dict[str, Any], rows: list[dict[str, Any]], **extra: Any
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
    numbers never get here: the number rule and the codecs' validation refuse them first."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE).decode()


def artifact_text(name: str, payload: Any) -> str:
    """Text of an artifact as written to ``plan_artifacts`` and to export files."""
    if name.endswith(".csv"):
        if not isinstance(payload, str):
            raise TypeError(f"{name} must be CSV text")
        return payload
    return dumps(payload)


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
