"""Hypothesis strategies for random, well-formed plan content (every artifact of SPEC 1 and 3).

Shared by the codec, plan store and export tests. Documents follow the row shapes of
``app.planning.documents`` and the number rule (integral values are ints), but their values are
otherwise arbitrary: empty tables, split-week buckets, unicode names, nulls where a field allows them,
optional derived and PSI documents. Quantities stay within +-1e15 so that a DOUBLE holds them exactly.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from app.planning import documents as docs
from app.planning.model import CORE_ARTIFACTS, PSI_ARTIFACTS, PlanContent, PlanParams

MAX_ROWS = 6

#: Names: unicode text (no NUL, no surrogates), including the empty string.
names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)
#: Numbers by the number rule: ints, and floats that are not integral.
numbers = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(min_value=-1e15, max_value=1e15, allow_nan=False, allow_infinity=False).map(docs.num),
)
small_ints = st.integers(min_value=0, max_value=10**6)
months = st.builds("{}-{:02d}".format, st.integers(2020, 2035), st.integers(1, 12))
iso_weeks = st.builds("{}-W{:02d}".format, st.integers(2020, 2035), st.integers(1, 53))
#: A period: usually a month, sometimes any text (the codec must not rely on the format).
periods = st.one_of(months, months, names)
weeks = st.one_of(iso_weeks, iso_weeks, names)

_KIND = {
    "str": names,
    "str?": st.none() | names,
    "num": numbers,
    "num?": st.none() | numbers,
    "int": small_ints,
    "bool": st.booleans(),
}
_FIELDS = {
    "family": names, "period": periods, "sku": names, "week": weeks, "item": names,
    "zone": st.sampled_from(["near", "at", "far", None]),
    "type": st.sampled_from(docs.EXCEPTION_TYPES),
    "unit": st.sampled_from(["ratio", "units", "weeks", "count"]),
    "bucket_type": st.sampled_from(["total", "month"]),
    "bucket_key": st.one_of(st.just("total"), months),
    "measure": st.sampled_from(docs.RECON_MEASURES),
    "policy": st.sampled_from(["DET_near", "AGG_far", "blend"]),
}  # fmt: skip
#: Small JSON values for the object-valued keys beside ``rows``.
json_values = st.recursive(
    st.none() | st.booleans() | numbers | names,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=6,
)
json_objects = st.dictionaries(names, json_values, max_size=4)


def _field_strategy(key: str, kind: str, overrides: dict[str, Any]) -> Any:
    if key in overrides:
        return overrides[key]
    return _FIELDS[key] if key in _FIELDS else _KIND[kind]


def rows_of(shape: dict[str, str], overrides: dict[str, Any] | None = None, max_size: int = MAX_ROWS) -> Any:
    """Lists of rows of ``shape``: each key drawn by its field name, else by its kind."""
    fields = {}
    for key, kind in shape.items():
        strategy = _field_strategy(key, kind, overrides or {})
        fields[key] = st.none() | strategy if kind.endswith("?") else strategy
    return st.lists(st.fixed_dictionaries(fields), max_size=max_size)


@st.composite
def split_week_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    """sku_week rows where some ISO weeks appear twice, once per period they straddle."""
    rows = draw(rows_of(docs.SKU_WEEK_ROW))
    for row in list(rows):
        if draw(st.booleans()):
            rows.append({**row, "period": draw(months), "demand": draw(numbers)})
    return rows


plan_params = st.builds(
    PlanParams,
    round_mode=st.sampled_from(["int", "none", "dec1", "dec2"]),
    lt_unit=st.sampled_from(["day", "week"]),
    prebuild_months=st.integers(0, 3),
    prebuild_weeks=st.integers(0, 8),
    cutover_date=st.none() | st.dates().map(str),
    recon_window_days=st.integers(0, 28),
    anchor_policy=st.sampled_from([None, "DET_near", "AGG_far", "blend"]),
    carryover=st.sampled_from(["none", "prev", "next", "both", "auto"]),
    carryover_split=st.floats(0, 1),
    tol_abs=st.sampled_from([1e-6, 0.5, 1]),
    tol_rel=st.sampled_from([1e-6, 0.01]),
).map(PlanParams.to_dict)

version_ids = st.from_regex(r"\Av[0-9]{8}-[0-9]{6}-[0-9a-f]{6}\Z") | st.from_regex(
    r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,20}\Z"
)


def report_text(rows: list[dict[str, Any]]) -> str:
    return docs.csv_text(docs.REPORT_COLUMNS, rows)


report_rows = rows_of(docs.REPORT_ROW, {"type": st.sampled_from(["capacity", "service"]), "week": iso_weeks})
kpi_rows = st.lists(
    st.fixed_dictionaries(
        {
            "metric": st.sampled_from(["fill_rate", "backlog_total", "inventory_turns", "planned_orders"])
            | names,
            "bucket_type": _FIELDS["bucket_type"],
            "bucket_key": _FIELDS["bucket_key"],
            "value": numbers,
            "unit": _FIELDS["unit"],
        }
    ),
    max_size=MAX_ROWS,
    unique_by=lambda r: (r["metric"], r["bucket_type"], r["bucket_key"]),
)
#: Keys a PSI entry may carry beyond its columns (they land in payload_json).
_psi_payload = st.dictionaries(
    st.sampled_from(["key", "values", "field", "before", "after", "cells"]), json_values
)
psi_override_entries = st.lists(
    st.fixed_dictionaries(
        {
            "level": st.sampled_from(["aggregate", "det"]),
            "key_hash": st.text("0123456789abcdef", min_size=1, max_size=64),
            "locked": st.booleans(),
            "weight": st.none() | numbers,
            "author": st.none() | names,
            "source": st.none() | st.sampled_from(["edit", "apportion", "rollup"]),
            "created_at": small_ints,
            "updated_at": small_ints,
        }
    ).flatmap(lambda entry: _psi_payload.map(lambda extra: {**extra, **entry})),
    max_size=MAX_ROWS,
    unique_by=lambda e: (e["level"], e["key_hash"]),
)
psi_events = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                ["edit", "lock", "unlock", "submit", "approve", "reconcile", "rollback", "export"]
            ),
            "ts": small_ints,
            "level": st.sampled_from([None, "aggregate", "det"]),
            "key_hash": st.none() | st.text("0123456789abcdef", max_size=64),
            "actor": st.none() | names,
            "note": st.none() | names,
        }
    ).flatmap(lambda event: _psi_payload.map(lambda extra: {**extra, **event})),
    max_size=MAX_ROWS,
)


def psi_documents(name: str, version_id: str) -> Any:
    """psi_overrides.json / psi_state.json: usually the plan's own header, sometimes another one, and
    sometimes keys beyond the declared shape."""
    header = st.fixed_dictionaries(
        {"schema_version": st.just(1) | small_ints, "version_id": st.just(version_id) | names}
    )
    body = (
        st.fixed_dictionaries({"overrides": psi_override_entries})
        if name == PSI_ARTIFACTS[0]
        else st.fixed_dictionaries(
            {"approval": st.sampled_from(["draft", "pending", "approved"]), "events": psi_events}
        )
    )
    extra = st.just({}) | st.dictionaries(st.sampled_from(["note", "exported_at"]), json_values, max_size=1)
    return st.tuples(extra, header, body).map(lambda parts: {**parts[0], **parts[1], **parts[2]})


@st.composite
def plan_contents(
    draw: st.DrawFn, with_derived: bool | None = None, with_psi: bool | None = None
) -> PlanContent:
    """A whole plan: the core five artifacts, the derived two and the PSI documents when drawn."""
    version_id = draw(version_ids)
    params = draw(plan_params)

    def document(rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return docs.document(version_id, params, rows, **extra)

    documents: dict[str, Any] = {
        "aggregate.json": document(draw(rows_of(docs.AGGREGATE_ROW))),
        "sku_week.json": document(draw(split_week_rows())),
        "mrp.json": document(draw(rows_of(docs.MRP_ROW))),
        "plan_final.json": document(
            draw(rows_of(docs.FINAL_ROW)),
            weekly_summary=draw(rows_of(docs.WEEKLY_SUMMARY_ROW)),
            anchor_log=draw(rows_of(docs.ANCHOR_LOG_ROW)),
            kpis=draw(kpi_rows),
            boundary_summary=draw(st.none() | json_objects),
            reconcile_params=draw(json_objects),
        ),
        "report.csv": report_text(draw(report_rows)),
    }
    assert set(documents) == set(CORE_ARTIFACTS)
    if with_derived if with_derived is not None else draw(st.booleans()):
        documents["reconciliation_log.json"] = document(
            draw(rows_of(docs.RECON_ROW)),
            tolerance=draw(json_objects),
            summary=draw(json_objects),
        )
        documents["exceptions.json"] = document(draw(rows_of(docs.EXCEPTION_ROW)))
    for name in PSI_ARTIFACTS:
        if with_psi if with_psi is not None else draw(st.booleans()):
            documents[name] = draw(psi_documents(name, version_id))
    return PlanContent(version_id=version_id, params=params, documents=documents)
