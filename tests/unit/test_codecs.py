"""The two plan encodings are lossless (SPEC 1): artifacts -> rows -> artifacts and rows -> artifacts ->
rows reproduce the original exactly, numbers keep their form, and malformed documents are refused."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from plan_strategies import plan_contents
from sqlalchemy import BigInteger, Boolean, Double, String, Text

from app.planning import documents as docs
from app.planning.model import PlanContent, PlanParams
from app.planning.pipeline import plan_input_set
from app.storage import codec_artifacts, codec_series, digests
from app.storage.codec_series import LEVEL_COLUMNS, SeriesRows
from app.storage.schema import plan_kpis, plan_series

PARAMS = PlanParams().to_dict()
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "planning"


@pytest.fixture(scope="module")
def sample_plan_content() -> PlanContent:
    return plan_input_set(SAMPLE, PlanParams(), version_id="v-sample")


def canonical(content: PlanContent) -> dict[str, str]:
    return {name: docs.artifact_text(name, doc) for name, doc in content.documents.items()}


def rows_to_content(rows: SeriesRows, content: PlanContent) -> PlanContent:
    return codec_series.decode(
        content.version_id, content.params, rows.schema_version, rows.levels, rows.kpis,
        overrides=rows.overrides, events=rows.events, approval=rows.approval,
    )  # fmt: skip


def small_plan(**changes: Any) -> PlanContent:
    """A hand-made plan: one family, one SKU split over two periods in week 5, one MRP item."""
    doc = docs.document
    vid = "v-small"
    det = [
        {"family": "F1", "period": "2026-01", "sku": "S1", "week": "2026-W05", "demand": 3, "supply": 2.5,
         "backlog": 0},
        {"family": "F1", "period": "2026-02", "sku": "S1", "week": "2026-W05", "demand": 4, "supply": 0.1,
         "backlog": 1},
    ]  # fmt: skip
    mrp_row = {
        "item": "S1", "week": "2026-W05", "llc": 0, "gross_req": 7, "scheduled_receipts": 0, "on_hand_start": 10,
        "net_req": 0, "planned_order_receipt": 0, "planned_order_release": 0, "on_hand_end": 3, "orders": 0,
        "lt_weeks": 1, "lot": 1, "moq": 0, "safety_stock": 0.5, "past_due": True,
    }  # fmt: skip
    final_row = {**mrp_row, "gross_req_adj": 0, "planned_order_receipt_adj": 0, "planned_order_release_adj": 0, "on_hand_end_adj": 3,
                 "orders_adj": 0, "past_due_adj": False}  # fmt: skip
    report = [{"type": "capacity", "week": "2026-W05", "capacity": 100, "original_load": 7, "adjusted_load": 7,
               "utilization": 0.07, "spill_in": 0, "spill_out": 0, "demand": None, "supply_plan": None,
               "fill_rate": None}]  # fmt: skip
    documents = {
        "aggregate.json": doc(vid, PARAMS, []),
        "sku_week.json": doc(vid, PARAMS, det),
        "mrp.json": doc(vid, PARAMS, [mrp_row]),
        "plan_final.json": doc(
            vid, PARAMS, [final_row], weekly_summary=[], anchor_log=[],
            kpis=[{"metric": "fill_rate", "bucket_type": "total", "bucket_key": "total", "value": 0.1,
                   "unit": "ratio"}],
            boundary_summary=None, reconcile_params={"prebuild_weeks": 4},
        ),
        "report.csv": docs.csv_text(docs.REPORT_COLUMNS, report),
    }  # fmt: skip
    documents.update(changes)
    return PlanContent(version_id=vid, params=PARAMS, documents=documents)


# --- properties -------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(plan_contents())
def test_artifacts_to_rows_to_artifacts_is_identity(content: PlanContent) -> None:
    texts = codec_artifacts.encode(content)
    from_texts = codec_artifacts.decode(content.version_id, texts)
    back = rows_to_content(codec_series.encode(from_texts), from_texts)
    assert codec_artifacts.encode(back) == texts


@settings(max_examples=100, deadline=None)
@given(plan_contents())
def test_rows_to_artifacts_to_rows_is_identity(content: PlanContent) -> None:
    rows = codec_series.encode(content)
    texts = codec_artifacts.encode(rows_to_content(rows, content))
    again = codec_series.encode(codec_artifacts.decode(content.version_id, texts))
    assert again == rows


@settings(max_examples=150, deadline=None)
@given(plan_contents())
def test_rows_decoded_straight_to_text_give_the_same_artifacts(content: PlanContent) -> None:
    rows = codec_series.encode(content)
    as_text = codec_series.decode(
        content.version_id, content.params, rows.schema_version, rows.levels, rows.kpis,
        overrides=rows.overrides, events=rows.events, approval=rows.approval, fragments=True,
    )  # fmt: skip
    assert codec_artifacts.encode(as_text, validated=True) == canonical(rows_to_content(rows, content))


def test_text_decoding_escapes_what_json_must_and_keeps_leftover_keys() -> None:
    tricky = ['qu"ote', "back\\slash", "tab\tand\nline", "caf\u00e9 \u2028 \U0001f600", "plain"]
    det = [
        {"family": f, "period": "2026-01", "sku": f"S{i}", "week": "2026-W05", "demand": i, "supply": docs.num(i / 10),
         "backlog": 0, **({"note": "kept"} if i == 2 else {})}
        for i, f in enumerate(tricky)
    ]  # fmt: skip
    content = small_plan(**{"sku_week.json": docs.document("v-small", PARAMS, det)})
    rows = codec_series.encode(content)
    as_text = codec_series.decode(
        content.version_id, content.params, rows.schema_version, rows.levels, rows.kpis, fragments=True
    )
    assert (
        codec_artifacts.encode(as_text, validated=True)["sku_week.json"]
        == canonical(content)["sku_week.json"]
    )


@settings(max_examples=50, deadline=None)
@given(plan_contents())
def test_decoding_does_not_depend_on_the_order_rows_arrive_in(content: PlanContent) -> None:
    rows = codec_series.encode(content)
    shuffled = {level: list(reversed(level_rows)) for level, level_rows in rows.levels.items()}
    back = codec_series.decode(
        content.version_id, content.params, rows.schema_version, shuffled, rows.kpis[::-1],
        overrides=rows.overrides, events=rows.events, approval=rows.approval,
    )  # fmt: skip
    assert canonical(back) == canonical(content)


@settings(max_examples=50, deadline=None)
@given(plan_contents())
def test_every_series_row_fits_the_table(content: PlanContent) -> None:
    rows = codec_series.encode(content)
    for level, level_rows in rows.levels.items():
        assert all(len(row) == len(LEVEL_COLUMNS[level]) for row in level_rows)
    for columns, batch in rows.series_batches(content.version_id, 1):
        assert set(columns) <= set(plan_series.c.keys())
        assert all(len(row) == len(columns) for row in batch)
    columns, batch = rows.kpi_batch(content.version_id, 1)
    assert set(columns) <= set(plan_kpis.c.keys())


# --- hand-written cases -----------------------------------------------------------------------


def test_every_field_sits_in_a_typed_column_of_plan_series() -> None:
    expected = {"num": Double, "num?": Double, "int": BigInteger, "bool": Boolean, "str": (String, Text),
                "str?": (String, Text)}  # fmt: skip
    for level in codec_series.LEVELS:
        for key, column in zip(level.keys, level.columns[1:], strict=False):
            assert isinstance(plan_series.c[column].type, expected[level.shape[key]]), (level.name, key)


def test_one_series_row_per_artifact_row_and_one_meta_row_per_document() -> None:
    rows = codec_series.encode(small_plan())
    assert len(rows.levels["det"]) == 2
    assert len(rows.levels["mrp"]) == 1 and len(rows.levels["mrp_final"]) == 1
    assert len(rows.levels["report"]) == 1 and rows.levels["weekly_summary"] == []
    assert [label for _, label, _ in rows.levels["meta"]] == sorted(small_plan().documents)
    assert rows.kpis == [(0, "fill_rate", "total", "total", 0.1, "ratio")]


def test_a_split_week_keeps_its_period_in_the_bucket_key_and_round_trips() -> None:
    content = small_plan()
    rows = codec_series.encode(content)
    key = LEVEL_COLUMNS["det"].index("time_bucket_key")
    assert [row[key] for row in rows.levels["det"]] == ["2026-W05@2026-01", "2026-W05@2026-02"]
    back = rows_to_content(rows, content)
    assert [(r["week"], r["period"]) for r in back.documents["sku_week.json"]["rows"]] == [
        ("2026-W05", "2026-01"),
        ("2026-W05", "2026-02"),
    ]


def test_integers_stay_integers_and_one_tenth_stays_one_tenth() -> None:
    content = small_plan()
    rows = codec_series.encode(content)
    as_read = {level: [tuple(float(v) if type(v) is int else v for v in row) for row in level_rows]
               for level, level_rows in rows.levels.items()}  # fmt: skip
    back = codec_series.decode(content.version_id, PARAMS, 1, as_read, rows.kpis)
    det = back.documents["sku_week.json"]["rows"]
    assert det[0]["demand"] == 3 and type(det[0]["demand"]) is int
    assert det[1]["supply"] == 0.1 and type(det[1]["supply"]) is float
    assert '"demand":3,' in docs.dumps(back.documents["sku_week.json"])
    assert back.documents["plan_final.json"]["kpis"][0]["value"] == 0.1
    assert canonical(back) == canonical(content)


def test_flags_read_back_as_integers_become_booleans() -> None:
    content = small_plan()
    rows = codec_series.encode(content)
    as_read = {level: [tuple(int(v) if type(v) is bool else v for v in row) for row in level_rows]
               for level, level_rows in rows.levels.items()}  # fmt: skip
    back = codec_series.decode(content.version_id, PARAMS, 1, as_read, rows.kpis)
    assert back.documents["mrp.json"]["rows"][0]["past_due"] is True
    assert canonical(back) == canonical(content)


def test_report_csv_is_rebuilt_byte_for_byte() -> None:
    content = small_plan()
    back = rows_to_content(codec_series.encode(content), content)
    assert back.documents["report.csv"] == content.documents["report.csv"]
    assert back.documents["report.csv"].splitlines()[1] == "capacity,2026-W05,100,7,7,0.07,0,0,,,"


def test_a_document_missing_a_row_key_is_refused_with_its_name() -> None:
    content = small_plan()
    del content.documents["mrp.json"]["rows"][0]["orders"]
    with pytest.raises(ValueError, match=r"mrp\.json: rows\[0\] lacks key 'orders'"):
        codec_series.encode(content)
    with pytest.raises(ValueError, match=r"mrp\.json"):
        codec_artifacts.encode(content)


def test_a_document_missing_a_side_table_or_meta_key_is_refused() -> None:
    content = small_plan()
    del content.documents["plan_final.json"]["weekly_summary"]
    with pytest.raises(ValueError, match=r"plan_final\.json: 'weekly_summary' must be a list"):
        codec_series.validate_document("plan_final.json", content.documents["plan_final.json"])
    del content.documents["plan_final.json"]["boundary_summary"]
    with pytest.raises(ValueError, match=r"plan_final\.json: the document lacks key 'boundary_summary'"):
        codec_series.validate_document("plan_final.json", content.documents["plan_final.json"])


@pytest.mark.parametrize(
    ("value", "problem"),
    [(5.0, "number rule"), ("5", "not of kind num"), (None, "not of kind num"), (float("nan"), "finite"),
     (True, "not of kind num"), (2**60, "DOUBLE")],
)  # fmt: skip
def test_a_quantity_that_would_not_round_trip_is_refused(value: Any, problem: str) -> None:
    content = small_plan()
    content.documents["sku_week.json"]["rows"][1]["demand"] = value
    with pytest.raises(ValueError, match=rf"sku_week\.json: rows\[1\] key 'demand'.*{problem}"):
        codec_series.validate_document("sku_week.json", content.documents["sku_week.json"])


def test_kpis_with_a_duplicate_key_are_refused() -> None:
    content = small_plan()
    final = content.documents["plan_final.json"]
    final["kpis"].append(dict(final["kpis"][0]))
    with pytest.raises(ValueError, match="duplicate"):
        codec_series.encode(content)


def test_a_report_that_would_not_render_back_identically_is_refused() -> None:
    content = small_plan(**{"report.csv": docs.csv_text(docs.REPORT_COLUMNS, []).replace("\n", "\r\n")})
    with pytest.raises(ValueError, match="report.csv"):
        codec_series.encode(content)


def test_an_unknown_artifact_is_refused() -> None:
    with pytest.raises(ValueError, match="diff.csv: not a plan artifact"):
        codec_series.encode(small_plan(**{"diff.csv": "a\n"}))


def test_row_keys_beyond_the_shape_and_unknown_document_keys_survive() -> None:
    content = small_plan()
    content.documents["sku_week.json"]["rows"][0]["note"] = {"locked": True}
    content.documents["aggregate.json"]["warnings"] = ["mix share renormalized"]
    content.documents["mrp.json"]["version_id"] = "imported-under-another-id"
    rows = codec_series.encode(content)
    assert rows.levels["det"][0][-1] == '{"note":{"locked":true}}'
    assert canonical(rows_to_content(rows, content)) == canonical(content)


def test_psi_documents_become_event_rows_and_the_approval_not_a_series_blob() -> None:
    event = {"type": "submit", "ts": 5, "level": None, "key_hash": None, "actor": "ann", "note": None,
             "before": "draft", "after": "pending"}  # fmt: skip
    state = {"schema_version": 1, "version_id": "v-small", "approval": "pending", "events": [event]}
    content = small_plan(**{"psi_state.json": state})
    rows = codec_series.encode(content)
    assert rows.levels["psi"] == []
    assert rows.approval == "pending"
    assert rows.events == [("submit", 5, None, None, "ann", None, '{"after":"pending","before":"draft"}')]
    assert rows_to_content(rows, content).documents["psi_state.json"] == state


def test_rows_without_their_document_are_a_broken_encoding() -> None:
    rows = codec_series.encode(small_plan())
    rows.levels["meta"] = [r for r in rows.levels["meta"] if r[1] != "mrp.json"]
    rows.levels["meta"] = [(i, *r[1:]) for i, r in enumerate(rows.levels["meta"])]
    with pytest.raises(ValueError, match="level 'mrp' has rows but no mrp.json"):
        codec_series.decode("v-small", PARAMS, 1, rows.levels, rows.kpis)


def test_a_missing_row_is_detected_by_its_sequence_gap() -> None:
    rows = codec_series.encode(small_plan())
    rows.levels["det"] = rows.levels["det"][1:]
    with pytest.raises(ValueError, match="'det': seq is not 0..n-1"):
        codec_series.decode("v-small", PARAMS, 1, rows.levels, rows.kpis)


def test_artifact_decode_takes_params_from_aggregate_and_ignores_foreign_names() -> None:
    content = small_plan()
    texts = {**codec_artifacts.encode(content), "notes.txt": "hello"}
    back = codec_artifacts.decode(content.version_id, texts)
    assert back.params == PARAMS
    assert set(back.documents) == set(content.documents)


def test_encoding_does_not_modify_the_content() -> None:
    content = small_plan()
    before = copy.deepcopy(content.documents)
    codec_series.encode(content)
    codec_artifacts.encode(content)
    assert content.documents == before


# --- each fact stored once ----------------------------------------------------------------------


def two_week_plan() -> PlanContent:
    """small_plan with two items of two weeks each, plan_final repeating mrp.json's planned part."""
    content = small_plan()
    base = content.documents["mrp.json"]["rows"][0]
    mrp = [
        {**base, "item": item, "week": week, "gross_req": 7 + i, "lt_weeks": lt, "past_due": i == 0}
        for i, (item, week, lt) in enumerate(
            [("S1", "2026-W05", 1), ("S1", "2026-W06", 1), ("C1", "2026-W05", 2), ("C1", "2026-W06", 2)]
        )
    ]
    adjusted = {"gross_req_adj": 0, "planned_order_receipt_adj": 0, "planned_order_release_adj": 0,
                "on_hand_end_adj": 3, "orders_adj": 0, "past_due_adj": False}  # fmt: skip
    final = [{**row, **adjusted} for row in mrp]
    content.documents["mrp.json"]["rows"] = mrp
    content.documents["plan_final.json"]["rows"] = final
    return content


def column(rows: SeriesRows, level: str, name: str) -> list[Any]:
    j = LEVEL_COLUMNS[level].index(name)
    return [row[j] for row in rows.levels[level]]


def test_item_constants_sit_on_the_first_row_of_each_item_only() -> None:
    content = two_week_plan()
    rows = codec_series.encode(content)
    assert column(rows, "mrp", "lt_weeks") == [1, None, 2, None]
    assert column(rows, "mrp", "lot") == [1, None, 1, None]
    assert column(rows, "mrp", "gross_req") == [7, 8, 9, 10]
    assert canonical(rows_to_content(rows, content)) == canonical(content)


def test_plan_final_rows_hold_only_what_capacity_reconciliation_adds() -> None:
    content = two_week_plan()
    content.documents["plan_final.json"]["rows"][3]["net_req"] = 4  # this row's planned part differs
    rows = codec_series.encode(content)
    assert column(rows, "mrp_final", "item_key") == ["S1", "S1", "C1", "C1"]
    assert column(rows, "mrp_final", "on_hand_end_adj") == [3, 3, 3, 3]
    for name in ("gross_req", "lt_weeks", "past_due", "llc"):
        assert column(rows, "mrp_final", name)[:3] == [None, None, None]
    assert column(rows, "mrp_final", "net_req")[3] == 4 and column(rows, "mrp_final", "lt_weeks")[3] == 2
    assert canonical(rows_to_content(rows, content)) == canonical(content)
    as_text = codec_series.decode(
        content.version_id, content.params, rows.schema_version, rows.levels, rows.kpis, fragments=True
    )
    assert codec_artifacts.encode(as_text, validated=True) == canonical(content)


def test_a_row_whose_planned_part_differs_from_mrp_is_stored_whole() -> None:
    content = two_week_plan()
    final = content.documents["plan_final.json"]["rows"]
    final[1]["safety_stock"] = 0.25  # mrp.json says 0.5
    rows = codec_series.encode(content)
    assert column(rows, "mrp_final", "safety_stock") == [None, 0.25, None, None]
    assert canonical(rows_to_content(rows, content)) == canonical(content)


def old_layout_rows(content: PlanContent) -> SeriesRows:
    """The rows as written before each fact was stored once: one row per artifact row with every
    value, built straight from the documents (not by the codec)."""
    rows = codec_series.encode(content)
    for level in codec_series.LEVELS:
        if level.name in ("mrp", "mrp_final"):
            table = content.documents[level.document][level.table]
            rows.levels[level.name] = [(i, *(r[k] for k in level.keys), None) for i, r in enumerate(table)]
    return rows


def test_rows_of_the_earlier_layout_decode_to_the_same_plan() -> None:
    content = two_week_plan()
    old = old_layout_rows(content)
    assert None not in column(old, "mrp", "lt_weeks") + column(old, "mrp_final", "gross_req")
    assert canonical(rows_to_content(old, content)) == canonical(content)
    as_text = codec_series.decode(
        content.version_id, content.params, old.schema_version, old.levels, old.kpis, fragments=True
    )
    assert codec_artifacts.encode(as_text, validated=True) == canonical(content)


def test_a_row_that_borrows_only_part_of_its_planned_values_is_refused() -> None:
    rows = codec_series.encode(two_week_plan())
    j = LEVEL_COLUMNS["mrp_final"].index("gross_req")
    broken = list(rows.levels["mrp_final"][1])
    broken[j] = 8.0
    rows.levels["mrp_final"][1] = tuple(broken)
    with pytest.raises(ValueError, match="row 1 lacks some of the values it would borrow"):
        codec_series.decode("v-small", PARAMS, 1, rows.levels, rows.kpis)


def test_the_engines_own_content_is_written_as_the_same_rows_and_texts_as_checked_content(sample_plan_content) -> None:  # fmt: skip
    content = sample_plan_content
    assert content.trusted
    texts = codec_artifacts.encode(content)
    checked = codec_artifacts.decode(content.version_id, texts)
    assert not checked.trusted
    assert codec_artifacts.encode(checked) == texts
    assert codec_series.encode(content) == codec_series.encode(checked)
    rows = codec_series.encode(content)
    assert rows.canonical  # hashed as they are: the same digest as the checked content's rows
    assert digests.rows_digest(rows.levels, rows.kpis, canonical=True) == digests.series_digest(
        codec_series.encode(checked)
    )
    assert canonical(rows_to_content(rows, content)) == texts


def test_level_runs_cover_every_row_once_and_leave_out_only_null_columns() -> None:
    rows = codec_series.encode(small_plan())
    for level, level_rows in rows.levels.items():
        covered = []
        for keep, start, end in rows.level_runs(level):
            covered.extend(range(start, end))
            width = len(codec_series.LEVEL_COLUMNS[level])
            for row in level_rows[start:end]:
                assert all(row[i] is None for i in range(width) if i not in keep), level
        assert covered == list(range(len(level_rows))), level
    # a replaced row list is bound whole: the pattern describes only the list it was made for
    rows.levels["mrp"] = list(rows.levels["mrp"])
    assert list(rows.level_runs("mrp")) == [(tuple(range(len(codec_series.LEVEL_COLUMNS["mrp"]))), 0, len(rows.levels["mrp"]))]  # fmt: skip
