"""PSI editing rules (SPEC 6) on hand-made cells: apportionment of an aggregate edit, roll-up of a detail
edit, locks, the key hash, value checks, and the PSI documents' mapping onto override and event rows."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest

from app.planning import documents as docs
from app.planning.calendar import derive_calendar
from app.planning.model import PlanContent, PlanParams
from app.planning.psi import (
    Editor,
    Grid,
    PsiConflict,
    PsiInputError,
    State,
    apply_request,
    key_hash,
    parse_value,
    pipeline_decisions,
    transition,
)
from app.storage import codec_artifacts, codec_series
from tests.unit.builders import plan_inputs

FAMILY = ("F1", "2026-01")
CELLS = [("A", "2026-W01", "2026-01"), ("B", "2026-W01", "2026-01"), ("C", "2026-W01", "2026-01")]
KEY_A = {"sku": "A", "week": "2026-W01", "period": "2026-01"}
TS = 1_767_225_600_000  # the time every event here is recorded at


def grid(values: tuple[int, ...] = (50, 30, 20), supply: int = 7) -> Grid:
    """One family-period of 100 over three SKUs in one week."""
    agg = [{"family": "F1", "period": "2026-01", "demand": sum(values), "supply": supply, "backlog": 0}]
    det = [{"family": "F1", "period": p, "sku": s, "week": w, "demand": v, "supply": 0, "backlog": 0}
           for (s, w, p), v in zip(CELLS, values, strict=True)]  # fmt: skip
    return Grid.from_rows(agg, det)


def editor(g: Grid, decimals: int | None = 0) -> Editor:
    return Editor(g, State({}, [], "draft", "none"), decimals, "ann", "why", ts=TS)


def demand(e: Editor, level: str, key: tuple[str, ...]) -> Any:
    return e.state.value(e.grid, level, key, "demand")


def test_aggregate_edit_apportions_the_new_total_over_unlocked_cells_by_largest_remainder() -> None:
    # 100 -> 130 with C (20) locked: A and B share 130 - 20 = 110 in proportion 50:30.
    # Quotas 110 * 50/80 = 68.75 and 110 * 30/80 = 41.25; floors 68 + 41 = 109, one unit short;
    # the larger remainder (.75, A) takes it: A 69, B 41, C stays 20; 69 + 41 + 20 = 130.
    e = editor(grid())
    e.set_lock("det", CELLS[2], True)
    e.edit("aggregate", FAMILY, "demand", 130)
    assert [demand(e, "det", c) for c in CELLS] == [69, 41, 20]
    assert demand(e, "aggregate", FAMILY) == 130
    edit = e.state.events[-1]
    assert (edit["type"], edit["before"], edit["after"], edit["field"]) == ("edit", 100, 130, "demand")
    assert [(c["key"]["sku"], c["before"], c["after"]) for c in edit["cells"]] == [
        ("A", 50, 69),
        ("B", 30, 41),
    ]


def test_aggregate_edit_keeps_integers_in_int_mode_and_decimals_in_dec1() -> None:
    e = editor(grid((1, 1, 1)))
    e.edit("aggregate", FAMILY, "demand", 4)  # 4 over equal weights: 2, 1, 1 (ties to the first)
    assert [demand(e, "det", c) for c in CELLS] == [2, 1, 1]
    assert all(type(demand(e, "det", c)) is int for c in CELLS)
    e = editor(grid((1, 1, 1)), decimals=1)
    e.edit("aggregate", FAMILY, "demand", 1)  # 10 tenths: 4, 3, 3
    assert [demand(e, "det", c) for c in CELLS] == [0.4, 0.3, 0.3]


def test_detail_edit_rolls_up_so_the_family_total_is_the_sum() -> None:
    e = editor(grid())
    e.edit("det", CELLS[1], "demand", 45)
    assert demand(e, "det", CELLS[1]) == 45
    assert demand(e, "aggregate", FAMILY) == 50 + 45 + 20
    assert e.state.events[-1]["rollup"]["before"] == 100 and e.state.events[-1]["rollup"]["after"] == 115
    assert [c["source"] for c in e.changes] == ["edit", "rollup"]
    assert e.state.value(e.grid, "aggregate", FAMILY, "supply") == 7  # the other field is untouched


def test_editing_a_locked_cell_is_a_conflict_until_it_is_unlocked() -> None:
    e = editor(grid())
    e.set_lock("det", CELLS[0], True)
    with pytest.raises(PsiConflict, match="locked"):
        e.edit("det", CELLS[0], "demand", 1)
    e.set_lock("det", CELLS[0], False)
    e.edit("det", CELLS[0], "demand", 1)
    assert [ev["type"] for ev in e.state.events] == ["lock", "unlock", "edit"]
    assert (e.state.events[0]["before"], e.state.events[0]["after"]) == (False, True)


def test_a_locked_family_total_refuses_detail_edits_and_locking_twice_records_once() -> None:
    e = editor(grid())
    e.set_lock("aggregate", FAMILY, True)
    e.set_lock("aggregate", FAMILY, True)
    assert [ev["type"] for ev in e.state.events] == ["lock"]
    with pytest.raises(PsiConflict, match="family total"):
        e.edit("det", CELLS[0], "demand", 1)
    with pytest.raises(PsiConflict):
        e.edit("aggregate", FAMILY, "demand", 1)


def test_an_aggregate_target_below_the_locked_cells_is_refused() -> None:
    e = editor(grid())
    e.set_lock("det", CELLS[0], True)
    with pytest.raises(PsiInputError, match="locked detail cells hold 50"):
        e.edit("aggregate", FAMILY, "demand", 40)


def test_key_hash_is_the_sha256_of_the_canonical_json() -> None:
    expected = hashlib.sha256(b'{"family":"F1","period":"2026-01"}').hexdigest()
    assert key_hash({"period": "2026-01", "family": "F1"}) == expected
    assert (
        key_hash({"sku": "A", "week": "2026-W01", "period": "2026-01"})
        == hashlib.sha256(b'{"period":"2026-01","sku":"A","week":"2026-W01"}').hexdigest()
    )


@pytest.mark.parametrize(
    ("value", "decimals", "ok"),
    [(5, 0, 5), (5.0, 0, 5), (5.5, 0, None), (-1, 0, None), (True, 0, None), (float("nan"), None, None),
     ("5", 0, None), (0.25, 1, None), (0.3, 1, 0.3), (0.125, None, 0.125), (1e9, 0, 1_000_000_000),
     (1e9 + 1, 0, None), (1e17, 0, None), (1e20, None, None), (10**30, 0, None)],
)  # fmt: skip
def test_a_value_must_be_a_non_negative_number_on_the_plans_grid(
    value: Any, decimals: int | None, ok: Any
) -> None:
    problems: list[dict[str, Any]] = []
    parsed = parse_value(value, decimals, "edits[0]", problems)
    assert parsed == ok and (type(parsed) is type(ok))
    assert bool(problems) is (ok is None)


def test_a_request_with_several_bad_parts_lists_them_all_and_changes_nothing() -> None:
    g, st = grid(), State({}, [], "draft", "none")
    edits = [
        {"key": KEY_A, "field": "demand", "value": -1},
        {"key": {"sku": "Z"}, "field": "cost", "value": 1},
    ]
    with pytest.raises(PsiInputError) as refused:
        apply_request(g, st, "det", edits, [{"sku": "nope"}], [], decimals=0, actor="ann", note=None, ts=TS)
    assert [p["at"] for p in refused.value.detail] == ["lock[0]", "edits[0]", "edits[1]", "edits[1]"]
    assert st.overrides == {} and st.events == []


def test_a_change_after_submit_sends_the_plan_back_to_draft_on_its_first_event() -> None:
    submitted = State({}, [], "draft", "none")
    event = transition(submitted, "submit", version_id="v", actor="bob", note=None, ts=TS)
    assert (event["type"], event["before"], event["after"]) == ("submit", "draft", "pending")
    st = State({}, list(submitted.events), submitted.approval, "files")  # as the next request reads it
    done = apply_request(
        grid(), st, "det", [{"key": KEY_A, "field": "demand", "value": 45}], [KEY_A], [],
        decimals=0, actor="ann", note="later", ts=TS + 1,
    )  # fmt: skip
    assert (done["approval"], done["events"], done["locked"]) == ("draft", 2, [KEY_A])
    assert st.new_events[0]["type"] == "edit"
    assert st.new_events[0]["approval"] == {"before": "pending", "after": "draft"}
    assert [(e["type"], e["ts"]) for e in st.events] == [("submit", TS), ("edit", TS + 1), ("lock", TS + 1)]


def test_approval_steps_run_draft_pending_approved_and_refuse_any_other_order() -> None:
    st = State({}, [], "draft", "none")
    with pytest.raises(PsiConflict, match="approve needs it pending"):
        transition(st, "approve", version_id="v", actor="carl", note=None, ts=TS)
    transition(st, "submit", version_id="v", actor="bob", note=None, ts=TS)
    transition(st, "approve", version_id="v", actor="carl", note=None, ts=TS)
    with pytest.raises(PsiConflict, match="submit needs it draft"):
        transition(st, "submit", version_id="v", actor="bob", note=None, ts=TS)
    assert st.approval == "approved" and [e["type"] for e in st.events] == ["submit", "approve"]


def psi_plan(e: Editor) -> PlanContent:
    """A small plan carrying the editor's state as PSI documents."""
    params = PlanParams().to_dict()
    documents = {
        name: docs.document("v1", params, [], **extra)
        for name, extra in {
            "aggregate.json": {}, "sku_week.json": {}, "mrp.json": {},
            "plan_final.json": {"weekly_summary": [], "anchor_log": [], "kpis": [], "boundary_summary": None,
                                "reconcile_params": {}},
        }.items()
    }  # fmt: skip
    documents["report.csv"] = docs.csv_text(docs.REPORT_COLUMNS, [])
    documents["psi_overrides.json"] = codec_series.psi_overrides_document(
        "v1", list(e.state.overrides.values())
    )
    documents["psi_state.json"] = codec_series.psi_state_document("v1", "pending", e.state.events)
    return PlanContent("v1", params, documents)


def test_psi_documents_map_to_override_and_event_rows_and_back() -> None:
    e = editor(grid())
    e.set_lock("det", CELLS[2], True)
    e.edit("aggregate", FAMILY, "demand", 130)
    content = psi_plan(e)
    rows = codec_series.encode(content)
    assert rows.levels["psi"] == []  # nothing beyond the tables: no blob, no marker
    assert len(rows.overrides) == 4 and [r[0] for r in rows.overrides] == ["det", "det", "det", "aggregate"]
    assert [r[0] for r in rows.events] == ["lock", "edit"] and rows.approval == "pending"
    lock_flag = codec_series.OVERRIDE_COLUMNS.index("lock_flag")
    assert [r[lock_flag] for r in rows.overrides] == [True, False, False, False]
    back = codec_series.decode(
        "v1", content.params, rows.schema_version, rows.levels, rows.kpis,
        overrides=rows.overrides, events=rows.events, approval=rows.approval,
    )  # fmt: skip
    assert codec_artifacts.encode(back) == codec_artifacts.encode(content)


def test_an_empty_psi_document_or_extra_keys_survive_through_the_psi_level() -> None:
    e = editor(grid())
    content = psi_plan(e)
    content.documents["psi_state.json"] = {
        **codec_series.psi_state_document("v1", "draft", []),
        "origin": "ui",
    }
    rows = codec_series.encode(content)
    assert [(r[1], r[2]) for r in rows.levels["psi"]] == [
        ("psi_overrides.json", None),
        ("psi_state.json", '{"origin":"ui"}'),
    ]
    back = codec_series.decode(
        "v1", content.params, rows.schema_version, rows.levels, rows.kpis, approval="draft"
    )
    assert codec_artifacts.encode(back) == codec_artifacts.encode(content)


def test_a_malformed_psi_document_is_refused_with_its_name() -> None:
    e = editor(grid())
    e.edit("det", CELLS[0], "demand", 3)
    content = psi_plan(e)
    content.documents["psi_state.json"]["events"][0]["type"] = "delete"
    with pytest.raises(ValueError, match=r"psi_state\.json: events\[0\] key 'type'"):
        codec_series.encode(content)
    content = psi_plan(e)
    content.documents["psi_overrides.json"]["overrides"].append(
        content.documents["psi_overrides.json"]["overrides"][0]
    )
    with pytest.raises(ValueError, match="share a"):
        codec_artifacts.encode(content)


def test_an_approved_plan_refuses_every_change_and_stays_as_it_was() -> None:
    st = State({}, [], "draft", "none")
    transition(st, "submit", version_id="v", actor="bob", note=None, ts=TS)
    transition(st, "approve", version_id="v", actor="carl", note=None, ts=TS)
    recorded = len(st.new_events)
    for edits, lock in (([{"key": KEY_A, "field": "demand", "value": 45}], []), ([], [KEY_A])):
        with pytest.raises(PsiConflict, match="approved and cannot be changed; reopen it as a draft"):
            apply_request(grid(), st, "det", edits, lock, [], decimals=0, actor="ann", note=None, ts=TS + 1)
    assert st.approval == "approved" and not st.overrides and len(st.new_events) == recorded
    assert [e["type"] for e in st.events] == ["submit", "approve"]


# --- decisions for a re-plan --------------------------------------------------------------------------


def decisions_of(e: Editor):
    calendar = derive_calendar(["2026-01"])
    inputs = plan_inputs(
        calendar, skus=["A", "B", "C"], sku_family=[0, 0, 0], families=["F1"], dtype=np.int64
    )
    return pipeline_decisions(e.grid, e.state, inputs, PlanParams())


def test_a_detail_edit_is_edited_detail_a_detail_lock_is_held_and_firm() -> None:
    # B's demand typed (its family total only rolls up: not a decision of its own); C locked.
    e = editor(grid())
    e.edit("det", CELLS[1], "demand", 45)
    e.set_lock("det", CELLS[2], True)
    decisions, touched = decisions_of(e)
    mask, values = decisions.edited["demand"]
    assert mask[:, 0].tolist() == [False, True, False] and values[1, 0] == 45
    assert "supply" not in decisions.edited
    for field in ("demand", "supply"):
        held, held_values = decisions.held[field]
        assert held[:, 0].tolist() == [False, False, True]
    assert decisions.held["demand"][1][2, 0] == 20
    assert decisions.firm[:, 0].tolist() == [False, False, True]
    assert touched == 2


def test_a_family_total_set_by_the_planner_holds_every_cell_of_it() -> None:
    # 100 -> 130 at the aggregate: A 65, B 39, C 26 are held at those values (nothing is firm).
    e = editor(grid())
    e.edit("aggregate", FAMILY, "demand", 130)
    decisions, touched = decisions_of(e)
    held, values = decisions.held["demand"]
    assert held[:, 0].all() and values[:, 0].tolist() == [65, 39, 26]
    assert not decisions.edited and decisions.firm is None and touched == 3


def test_projected_inventory_carries_opening_stock_open_orders_and_supply_less_demand():
    from app.planning.psi import below_safety, projected_inventory

    # 10 on hand; week 1: +5 ordered +0 made -8 sold = 7; week 2: +0 +4 -6 = 5; week 3: +0 +0 -9 = -4
    inventory = projected_inventory(10, [5, 0, 0], [8, 6, 9], [0, 4, 0])
    assert inventory == [7, 5, -4]
    assert below_safety(inventory, 0)  # short in week 3
    assert below_safety([7, 5, 6], 6)  # 5 is below a safety stock of 6
    assert not below_safety([7, 6, 6], 6)  # at safety stock is not below it
