"""Loading and validating an input set (SPEC 2)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.planning.calendar import derive_calendar
from app.planning.inputs import REQUIRED_FILES, load_input_set
from app.planning.model import InputError, Problem
from app.planning.samplegen import calendar_document

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "planning"

# A tiny input set: two families, three SKUs, a sub-assembly SUB and two purchased parts.
# The derived calendar (2026-01, 2026-02) has weeks W01..W09 and ten buckets (W05 is split).
TINY = {
    "demand_family.csv": "family,period,demand\nA,2026-01,100\nA,2026-02,120\nB,2026-01,50\nB,2026-02,60\n",
    "mix_share.csv": "family,sku,share\nA,A1,0.5\nA,A2,0.5\nB,B1,1\n",
    "capacity.csv": "workcenter,period,capacity\nWC,2026-01,300\nWC,2026-02,300\n",
    "item.csv": "item,lt,lot,moq\nA1,7,10,0\nA2,7,1,0\nB1,14,5,5\nSUB,7,1,0\nC1,21,50,100\nC2,28,1,0\n",
    "bom.csv": "parent,child,qty,scrap\nA1,SUB,1,0\nSUB,C1,2,0.1\nA2,C1,1,0\nB1,C2,3,0\n",
    "inventory.csv": "item,loc,qty\nA1,DC1,10\nA1,DC2,5\nC1,DC1,100\n",
    "open_po.csv": "item,due,qty\nC1,2026-01-15,50\nC2,2026-W06,20\nC1,2026-02,30\n",
}


def write_set(folder: Path, changes: dict[str, str | None] | None = None, base: dict | None = None) -> Path:
    """Write TINY (or ``base``) with ``changes`` applied; a None value leaves that file out."""
    files = {**(base or TINY), **(changes or {})}
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        if text is not None:
            (folder / name).write_text(text, encoding="utf-8")
    return folder


def problems(folder: Path) -> list[Problem]:
    with pytest.raises(InputError) as info:
        load_input_set(folder)
    return info.value.problems


def only_problem(folder: Path) -> Problem:
    found = problems(folder)
    assert len(found) == 1, found
    return found[0]


# --------------------------------------------------------------------------------------------------
# A valid set is indexed


def test_tiny_set_is_indexed_in_planning_order(tmp_path):
    inputs = load_input_set(write_set(tmp_path / "tiny"))
    assert inputs.label == "tiny"
    assert inputs.families == ["A", "B"]
    assert inputs.skus == ["A1", "A2", "B1"]
    assert inputs.sku_family.tolist() == [0, 0, 1]
    # SKUs first in mix order, then components sorted by code
    assert inputs.items == ["A1", "A2", "B1", "C1", "C2", "SUB"]
    assert inputs.demand.tolist() == [[100, 120], [50, 60]]
    assert inputs.workcenters == ["WC"]
    assert inputs.capacity.tolist() == [[300, 300]]
    assert inputs.routing is None
    assert inputs.period_cost is None and inputs.period_score is None
    assert inputs.warnings == []


def test_inventory_is_summed_over_locations(tmp_path):
    inputs = load_input_set(write_set(tmp_path))
    # A1: 10 at DC1 + 5 at DC2 = 15; C1: 100; the others have none
    assert inputs.on_hand.tolist() == [15, 0, 0, 100, 0, 0]


def test_open_po_due_accepts_date_iso_week_and_month(tmp_path):
    inputs = load_input_set(write_set(tmp_path))
    weeks = inputs.calendar.weeks
    c1, c2 = inputs.items.index("C1"), inputs.items.index("C2")
    assert inputs.scheduled_receipts.shape == (6, 9)
    # 2026-01-15 is a Thursday in 2026-W03
    assert inputs.scheduled_receipts[c1, weeks.index("2026-W03")] == 50
    assert inputs.scheduled_receipts[c2, weeks.index("2026-W06")] == 20
    # 2026-02 means the last week of February: Mon 23 Feb .. Sun 1 Mar = 2026-W09
    assert inputs.scheduled_receipts[c1, weeks.index("2026-W09")] == 30
    assert inputs.scheduled_receipts.sum() == 100


def test_bom_edges_use_item_positions(tmp_path):
    inputs = load_input_set(write_set(tmp_path))
    edges = {
        (inputs.items[p], inputs.items[c], q, s)
        for p, c, q, s in zip(
            inputs.bom_parent, inputs.bom_child, inputs.bom_qty, inputs.bom_scrap, strict=True
        )
    }
    assert edges == {("A1", "SUB", 1, 0), ("SUB", "C1", 2, 0.1), ("A2", "C1", 1, 0), ("B1", "C2", 3, 0)}


def test_item_optional_columns_default_to_zero(tmp_path):
    inputs = load_input_set(write_set(tmp_path))
    assert inputs.item_lt.tolist() == [7, 7, 14, 21, 28, 7]
    assert inputs.item_lot.tolist() == [10, 1, 5, 50, 1, 1]
    assert inputs.item_moq.tolist() == [0, 0, 5, 100, 0, 0]
    for arr in (inputs.item_safety_stock, inputs.item_max_lot, inputs.item_unit_cost):
        assert arr.tolist() == [0] * 6


def test_item_optional_columns_are_read_and_blank_cells_default(tmp_path):
    items = (
        "item,lt,lot,moq,safety_stock,max_lot,unit_cost\n"
        "A1,7,10,0,25,100,9.5\nA2,7,1,0,,,\nB1,14,5,5,0,0,0\nSUB,7,1,0,0,0,0\nC1,21,50,100,0,0,0\nC2,28,1,0,0,0,0\n"
    )
    inputs = load_input_set(write_set(tmp_path, {"item.csv": items}))
    assert inputs.item_safety_stock[:2].tolist() == [25, 0]
    assert inputs.item_max_lot[:2].tolist() == [100, 0]
    assert inputs.item_unit_cost[:2].tolist() == [9.5, 0]


def test_skus_are_grouped_by_family_then_sorted_by_code(tmp_path):
    demand = "family,period,demand\nZ,2026-01,1\nM,2026-01,1\n"
    mix = "family,sku,share\nZ,Z-B,0.5\nM,M-9,0.5\nZ,Z-A,0.5\nM,M-1,0.5\n"
    items = "item,lt,lot,moq\n" + "".join(
        f"{s},0,1,0\n" for s in ("Z-B", "M-9", "Z-A", "M-1", "C1", "C2", "SUB")
    )
    bom = "parent,child,qty\nZ-A,C1,1\nM-1,C2,1\nM-9,SUB,1\n"
    folder = write_set(
        tmp_path,
        {
            "demand_family.csv": demand,
            "mix_share.csv": mix,
            "item.csv": items,
            "bom.csv": bom,
            "inventory.csv": "item,loc,qty\n",
            "open_po.csv": "item,due,qty\n",
            "capacity.csv": "workcenter,period,capacity\nWC,2026-01,5\n",
        },
    )
    inputs = load_input_set(folder)
    assert inputs.families == ["M", "Z"]
    assert inputs.skus == ["M-1", "M-9", "Z-A", "Z-B"]
    assert inputs.sku_family.tolist() == [0, 0, 1, 1]
    assert inputs.items == ["M-1", "M-9", "Z-A", "Z-B", "C1", "C2", "SUB"]


def test_capacity_not_given_is_zero_and_a_month_without_any_warns(tmp_path):
    capacity = "workcenter,period,capacity\nWC1,2026-01,300\nWC2,2026-01,100\n"
    inputs = load_input_set(write_set(tmp_path, {"capacity.csv": capacity}))
    assert inputs.workcenters == ["WC1", "WC2"]
    assert inputs.capacity.tolist() == [[300, 0], [100, 0]]
    assert inputs.warnings == ["capacity.csv: no capacity in 2026-02"]


def test_routing_gives_family_by_workcenter_loads(tmp_path):
    capacity = (
        "workcenter,period,capacity\nWC1,2026-01,300\nWC1,2026-02,300\nWC2,2026-01,50\nWC2,2026-02,50\n"
    )
    routing = "family,workcenter,units_per_unit\nA,WC1,1\nA,WC2,0.25\nB,WC1,2\n"
    inputs = load_input_set(write_set(tmp_path, {"capacity.csv": capacity, "routing.csv": routing}))
    assert inputs.routing.tolist() == [[1, 0.25], [2, 0]]


def test_period_cost_and_score_give_one_value_per_month(tmp_path):
    changes = {
        "period_cost.csv": "period,cost\n2026-01,1.5\n2026-02,2\n",
        "period_score.csv": "period,score\n2026-02,0.5\n",
    }
    inputs = load_input_set(write_set(tmp_path, changes))
    assert inputs.period_cost.tolist() == [1.5, 2]
    assert inputs.period_score.tolist() == [0, 0.5]
    assert inputs.warnings == ["period_score.csv: no score for 2026-01; 0 used"]


def test_explicit_calendar_file_is_used(tmp_path):
    doc = calendar_document(derive_calendar(["2026-01", "2026-02", "2026-03"]))
    inputs = load_input_set(write_set(tmp_path, {"planning_calendar.json": json.dumps(doc)}))
    # the calendar has three months while demand only covers two: March demand is 0
    assert inputs.calendar.periods == ["2026-01", "2026-02", "2026-03"]
    assert not inputs.calendar.derived
    assert inputs.demand.tolist() == [[100, 120, 0], [50, 60, 0]]
    assert inputs.capacity.tolist() == [[300, 300, 0]]


def test_extra_columns_are_ignored_with_a_warning_naming_them(tmp_path):
    mix = "family,sku,share,sequence,region\nA,A1,0.5,1,EU\nA,A2,0.5,2,EU\nB,B1,1,3,US\n"
    inputs = load_input_set(write_set(tmp_path, {"mix_share.csv": mix}))
    assert inputs.warnings == ["mix_share.csv: ignoring extra columns sequence, region"]


def test_extra_calendar_keys_are_ignored_with_a_warning(tmp_path):
    doc = {**calendar_document(derive_calendar(["2026-01", "2026-02"])), "calendar_type": "4-4-5"}
    inputs = load_input_set(write_set(tmp_path, {"planning_calendar.json": json.dumps(doc)}))
    assert any("calendar_type" in w for w in inputs.warnings)


def test_shares_not_summing_to_one_are_renormalized_with_a_warning(tmp_path):
    mix = "family,sku,share\nA,A1,3\nA,A2,1\nB,B1,1\n"
    inputs = load_input_set(write_set(tmp_path, {"mix_share.csv": mix}))
    # A: 3 / (3 + 1) = 0.75 and 1 / 4 = 0.25
    assert inputs.sku_share.tolist() == [0.75, 0.25, 1.0]
    assert inputs.warnings == ["mix_share.csv: shares of family A sum to 4; renormalized"]


def test_label_defaults_to_folder_name_and_can_be_given(tmp_path):
    folder = write_set(tmp_path / "july-set")
    assert load_input_set(folder).label == "july-set"
    assert load_input_set(str(folder), label="custom").label == "custom"


# --------------------------------------------------------------------------------------------------
# Problems: every one with file, line, column and reason


@pytest.mark.parametrize("name", REQUIRED_FILES)
def test_missing_required_file_is_a_problem(tmp_path, name):
    assert Problem(name, None, None, "missing file") in problems(write_set(tmp_path, {name: None}))


def test_missing_folder_is_a_problem(tmp_path):
    assert only_problem(tmp_path / "nope").reason == "input folder not found"


def test_missing_column_is_reported_on_the_header_line(tmp_path):
    found = only_problem(write_set(tmp_path, {"inventory.csv": "item,location,qty\nA1,DC1,10\n"}))
    assert found == Problem("inventory.csv", 1, "loc", "missing column")


def test_unparsable_number_names_line_and_column(tmp_path):
    inventory = "item,loc,qty\nA1,DC1,10\nA1,DC2,ten\n"
    assert only_problem(write_set(tmp_path, {"inventory.csv": inventory})) == Problem(
        "inventory.csv", 3, "qty", "unparsable number 'ten'"
    )


def test_empty_and_non_finite_numbers_are_unparsable(tmp_path):
    demand = "family,period,demand\nA,2026-01,\nA,2026-02,nan\nB,2026-01,50\nB,2026-02,inf\n"
    found = problems(write_set(tmp_path, {"demand_family.csv": demand}))
    assert [(p.row, p.reason) for p in found] == [
        (2, "unparsable number ''"),
        (3, "unparsable number 'nan'"),
        (5, "unparsable number 'inf'"),
    ]


def test_negative_quantity_is_a_problem(tmp_path):
    open_po = "item,due,qty\nC1,2026-01-15,-5\n"
    assert only_problem(write_set(tmp_path, {"open_po.csv": open_po})) == Problem(
        "open_po.csv", 2, "qty", "negative quantity -5"
    )


def test_bad_period_format_is_a_problem(tmp_path):
    capacity = "workcenter,period,capacity\nWC,2026-01,300\nWC,2026-2,300\n"
    found = only_problem(write_set(tmp_path, {"capacity.csv": capacity}))
    assert (found.file, found.row, found.column) == ("capacity.csv", 3, "period")
    assert "bad period '2026-2'" in found.reason


def test_demand_periods_must_be_consecutive_without_a_calendar(tmp_path):
    demand = "family,period,demand\nA,2026-01,100\nA,2026-04,120\nB,2026-01,50\n"
    found = only_problem(write_set(tmp_path, {"demand_family.csv": demand}))
    assert found.file == "demand_family.csv" and found.column == "period"
    assert "missing 2026-02, 2026-03" in found.reason


def test_unknown_family_in_mix_is_a_problem(tmp_path):
    mix = "family,sku,share\nA,A1,0.5\nA,A2,0.5\nB,B1,1\nC,C9,1\n"
    found = problems(write_set(tmp_path, {"mix_share.csv": mix}))
    assert Problem("mix_share.csv", 5, "family", "unknown family C (not in demand_family.csv)") in found


def test_family_with_demand_but_no_skus_is_a_problem(tmp_path):
    mix = "family,sku,share\nA,A1,0.5\nA,A2,0.5\n"
    found = problems(write_set(tmp_path, {"mix_share.csv": mix}))
    # B's first demand row is line 4
    assert (
        Problem("demand_family.csv", 4, "family", "family B has demand but no SKUs in mix_share.csv") in found
    )


def test_family_whose_shares_are_all_zero_is_a_problem(tmp_path):
    mix = "family,sku,share\nA,A1,0.5\nA,A2,0.5\nB,B1,0\n"
    found = only_problem(write_set(tmp_path, {"mix_share.csv": mix}))
    assert found.reason == "shares of family B sum to 0"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("inventory.csv", TINY["inventory.csv"] + "ZZ,DC1,1\nZY,DC1,2\n"),
        ("open_po.csv", TINY["open_po.csv"] + "ZZ,2026-01-15,5\nZY,2026-01-15,1\n"),
        ("item.csv", TINY["item.csv"] + "ZZ,7,1,0\nZY,7,1,0\n"),
    ],
)
def test_items_the_plan_does_not_use_are_one_warning_not_a_problem_each(tmp_path, name, text):
    # an ERP export lists items no BOM line or mix share uses: accepted, named once, not planned
    inputs = load_input_set(write_set(tmp_path, {name: text}))
    assert "ZZ" not in inputs.items and "ZY" not in inputs.items
    said = [w for w in inputs.warnings if w.startswith(name)]
    assert said == [
        f"{name}: 2 item(s) neither a finished good in mix_share.csv nor in bom.csv are not planned (ZY, ZZ)"
    ]
    plain = load_input_set(write_set(tmp_path / "plain"))
    assert inputs.on_hand.tolist() == plain.on_hand.tolist()
    assert inputs.scheduled_receipts.tolist() == plain.scheduled_receipts.tolist()


def test_a_component_without_an_item_row_is_reported_at_the_bom_row_naming_it(tmp_path):
    items = "item,lt,lot,moq\nA1,7,10,0\nA2,7,1,0\nB1,14,5,5\nSUB,7,1,0\n"
    found = problems(write_set(tmp_path, {"item.csv": items}))
    bom = TINY["bom.csv"].splitlines()
    first = {
        code: next(i + 1 for i, line in enumerate(bom) if code in line.split(",")[:2])
        for code in ("C1", "C2")
    }
    assert [(p.file, p.row, p.reason) for p in found] == [
        ("bom.csv", first["C1"], "item C1 has no row in item.csv"),
        ("bom.csv", first["C2"], "item C2 has no row in item.csv"),
    ]


def test_bom_cycle_is_named_with_arrows(tmp_path):
    # SUB -> C1 already exists; adding C1 -> C2 -> SUB closes SUB -> C1 -> C2 -> SUB
    bom = TINY["bom.csv"] + "C1,C2,1,0\nC2,SUB,1,0\n"
    found = only_problem(write_set(tmp_path, {"bom.csv": bom}))
    assert found.file == "bom.csv"
    assert found.reason == "BOM cycle: C1 → C2 → SUB → C1"
    assert found.row == 6  # the C1 -> C2 row, where the named cycle starts


def test_two_separate_bom_cycles_are_both_named(tmp_path):
    bom = TINY["bom.csv"] + "C1,SUB,1,0\nC2,B1,1,0\n"
    reasons = sorted(p.reason for p in problems(write_set(tmp_path, {"bom.csv": bom})))
    assert reasons == ["BOM cycle: B1 → C2 → B1", "BOM cycle: C1 → SUB → C1"]


def test_self_referencing_bom_row_is_a_problem(tmp_path):
    bom = TINY["bom.csv"] + "C2,C2,1,0\n"
    found = only_problem(write_set(tmp_path, {"bom.csv": bom}))
    assert (found.row, found.column) == (6, "child")
    assert "self-referencing" in found.reason


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        ("A1,SUB,0,0", "qty", "qty must be > 0, got 0"),
        ("A1,SUB,-1,0", "qty", "qty must be > 0, got -1"),
        ("A1,SUB,1,1", "scrap", "scrap must be in [0, 1), got 1"),
        ("A1,SUB,1,-0.1", "scrap", "negative quantity -0.1"),
    ],
)
def test_bom_quantity_and_scrap_are_checked(tmp_path, row, column, reason):
    bom = TINY["bom.csv"].replace("A1,SUB,1,0", row)
    assert only_problem(write_set(tmp_path, {"bom.csv": bom})) == Problem("bom.csv", 2, column, reason)


def test_period_outside_the_calendar_is_a_problem(tmp_path):
    capacity = TINY["capacity.csv"] + "WC,2026-03,300\n"
    assert only_problem(write_set(tmp_path, {"capacity.csv": capacity})) == Problem(
        "capacity.csv", 4, "period", "period 2026-03 is outside the calendar"
    )


def test_demand_outside_an_explicit_calendar_is_a_problem(tmp_path):
    doc = calendar_document(derive_calendar(["2026-01"]))
    found = problems(write_set(tmp_path, {"planning_calendar.json": json.dumps(doc)}))
    assert Problem("demand_family.csv", 3, "period", "period 2026-02 is outside the calendar") in found


@pytest.mark.parametrize(
    ("due", "reason"),
    [
        ("2026-03-02", "due 2026-03-02 is outside the calendar"),
        ("2025-W52", "due 2025-W52 is outside the calendar"),
        ("2026-05", "due 2026-05 is outside the calendar"),
        ("next week", "bad due 'next week' (expected YYYY-MM-DD, YYYY-Www or YYYY-MM)"),
        ("2026-02-30", "bad due '2026-02-30' (expected YYYY-MM-DD, YYYY-Www or YYYY-MM)"),
        ("2026-W60", "bad due '2026-W60' (expected YYYY-MM-DD, YYYY-Www or YYYY-MM)"),
    ],
)
def test_unusable_open_po_due_is_a_problem(tmp_path, due, reason):
    open_po = f"item,due,qty\nC1,{due},5\n"
    assert only_problem(write_set(tmp_path, {"open_po.csv": open_po})) == Problem(
        "open_po.csv", 2, "due", reason
    )


@pytest.mark.parametrize(
    ("name", "text", "line", "column"),
    [
        ("demand_family.csv", TINY["demand_family.csv"] + "A,2026-01,5\n", 6, "family,period"),
        ("mix_share.csv", TINY["mix_share.csv"] + "B,A1,0.5\n", 5, "sku"),
        ("capacity.csv", TINY["capacity.csv"] + "WC,2026-02,1\n", 4, "workcenter,period"),
        ("item.csv", TINY["item.csv"] + "C2,1,1,0\n", 8, "item"),
        ("inventory.csv", TINY["inventory.csv"] + "A1,DC2,1\n", 5, "item,loc"),
        ("bom.csv", TINY["bom.csv"] + "SUB,C1,1,0\n", 6, "parent,child"),
    ],
)
def test_duplicate_keys_are_a_problem(tmp_path, name, text, line, column):
    found = only_problem(write_set(tmp_path, {name: text}))
    assert (found.file, found.row, found.column) == (name, line, column)
    assert found.reason.startswith("duplicate key")


def test_moq_above_max_lot_is_a_problem(tmp_path):
    items = "item,lt,lot,moq,max_lot\nA1,7,10,0,0\nA2,7,1,0,0\nB1,14,5,5,0\nSUB,7,1,0,0\nC1,21,50,100,50\nC2,28,1,0,0\n"
    assert only_problem(write_set(tmp_path, {"item.csv": items})) == Problem(
        "item.csv", 6, "moq", "moq 100 exceeds max_lot"
    )


def test_max_lot_below_lot_is_a_problem(tmp_path):
    items = (
        TINY["item.csv"]
        .replace("item,lt,lot,moq\n", "item,lt,lot,moq,max_lot\n")
        .replace("A1,7,10,0", "A1,7,10,0,5")
    )
    assert only_problem(write_set(tmp_path, {"item.csv": items})) == Problem(
        "item.csv", 2, "max_lot", "max_lot 5 is below lot"
    )


def test_lot_below_one_is_a_problem(tmp_path):
    items = TINY["item.csv"].replace("A2,7,1,0", "A2,7,0.5,0")
    assert only_problem(write_set(tmp_path, {"item.csv": items})) == Problem(
        "item.csv", 3, "lot", "must be >= 1, got 0.5"
    )


def test_unparsable_calendar_json_is_a_problem(tmp_path):
    found = only_problem(write_set(tmp_path, {"planning_calendar.json": "{periods: ["}))
    assert found.file == "planning_calendar.json"
    assert found.reason.startswith("unparsable JSON")


def test_malformed_calendar_document_is_a_problem(tmp_path):
    found = problems(write_set(tmp_path, {"planning_calendar.json": json.dumps({"periods": "2026-01"})}))
    assert [p.file for p in found] == ["planning_calendar.json"]


def test_all_problems_are_reported_at_once(tmp_path):
    changes = {
        "open_po.csv": None,
        "inventory.csv": "item,loc,qty\nA1,DC1,-1\n",
        "capacity.csv": "workcenter,period,capacity\nWC,2026-01,x\n",
        "bom.csv": TINY["bom.csv"] + "C1,SUB,1,0\n",
    }
    found = {(p.file, p.row, p.column) for p in problems(write_set(tmp_path, changes))}
    assert found == {
        ("open_po.csv", None, None),
        ("inventory.csv", 2, "qty"),
        ("capacity.csv", 2, "capacity"),
        ("bom.csv", 6, "child"),  # C1 -> SUB -> C1, named from its C1,SUB row
    }


def test_utf8_byte_order_mark_and_blank_lines_are_tolerated(tmp_path):
    folder = write_set(tmp_path, {"inventory.csv": "\ufeffitem,loc,qty\n\nA1,DC1,10\n\nC1,DC1,1\n"})
    inputs = load_input_set(folder)
    assert inputs.on_hand[0] == 10


def test_blank_lines_do_not_shift_reported_line_numbers(tmp_path):
    inventory = "item,loc,qty\n\nA1,DC1,10\n\nC1,DC1,oops\n"
    assert only_problem(write_set(tmp_path, {"inventory.csv": inventory})).row == 5


# --------------------------------------------------------------------------------------------------
# Invariants


@st.composite
def dag_boms(draw):
    """A random acyclic BOM over n nodes: edges only from lower to higher node number."""
    n = draw(st.integers(3, 9))
    pairs = st.tuples(st.integers(0, n - 2), st.integers(1, n - 1)).filter(lambda e: e[0] < e[1])
    edges = draw(st.lists(pairs, min_size=1, max_size=20, unique=True))
    return n, edges


def bom_set(edges: list[tuple[int, int]]) -> dict[str, str]:
    """TINY with one family whose only SKU is N0 and the given BOM over nodes N0..Nk."""
    names = sorted({f"N{k}" for e in edges for k in e} | {"N0"})
    return {
        **TINY,
        "demand_family.csv": "family,period,demand\nA,2026-01,1\n",
        "mix_share.csv": "family,sku,share\nA,N0,1\n",
        "capacity.csv": "workcenter,period,capacity\nWC,2026-01,1\n",
        "item.csv": "item,lt,lot,moq\n" + "".join(f"{n},0,1,0\n" for n in names),
        "bom.csv": "parent,child,qty\n" + "".join(f"N{p},N{c},1\n" for p, c in edges),
        "inventory.csv": "item,loc,qty\n",
        "open_po.csv": "item,due,qty\n",
    }


@settings(max_examples=60, deadline=None)
@given(dag_boms())
def test_acyclic_boms_load_and_a_back_edge_is_named_as_a_real_cycle(bom):
    _, edges = bom
    with tempfile.TemporaryDirectory() as tmp:
        inputs = load_input_set(write_set(Path(tmp) / "ok", base=bom_set(edges)))
        assert len(inputs.bom_parent) == len(edges)
        p, c = edges[0]
        found = problems(write_set(Path(tmp) / "bad", base=bom_set([*edges, (c, p)])))
    cycles = [x.reason.removeprefix("BOM cycle: ").split(" → ") for x in found]
    assert cycles and all(x.reason.startswith("BOM cycle: ") for x in found)
    edge_names = {(f"N{a}", f"N{b}") for a, b in [*edges, (c, p)]}
    for cycle in cycles:
        assert cycle[0] == cycle[-1] and len(cycle) >= 3
        assert all(step in edge_names for step in zip(cycle, cycle[1:], strict=False))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 1000), min_size=2, max_size=6),  # A1 and A2 are used by the BOM
    st.lists(st.tuples(st.sampled_from(["A1", "C1", "SUB"]), st.integers(0, 500)), max_size=12),
)
def test_shares_sum_to_one_and_inventory_is_conserved(weights, stock):
    mix = "family,sku,share\n" + "".join(f"A,A{k + 1},{w}\n" for k, w in enumerate(weights)) + "B,B1,1\n"
    items = "item,lt,lot,moq\n" + "".join(f"A{k + 1},0,1,0\n" for k in range(len(weights)))
    items += "B1,0,1,0\nSUB,0,1,0\nC1,0,1,0\nC2,0,1,0\n"
    inventory = "item,loc,qty\n" + "".join(f"{item},L{k},{q}\n" for k, (item, q) in enumerate(stock))
    files = {"mix_share.csv": mix, "item.csv": items, "inventory.csv": inventory}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = load_input_set(write_set(Path(tmp), files))
    fam = inputs.sku_family
    assert np.allclose(np.bincount(fam, weights=inputs.sku_share), 1.0)
    assert inputs.on_hand.sum() == sum(q for _, q in stock)


# --------------------------------------------------------------------------------------------------
# The shipped sample


def test_sample_input_set_loads_with_the_documented_shapes():
    inputs = load_input_set(SAMPLE)
    assert inputs.warnings == []
    assert inputs.families == ["BLEND", "COFFEE", "KETTLE"]
    assert len(inputs.skus) == 7 and inputs.items[:7] == inputs.skus
    assert inputs.calendar.periods == [f"2026-{m:02d}" for m in range(1, 13)]
    assert not inputs.calendar.derived
    f, p, i, w = len(inputs.families), 12, len(inputs.items), inputs.calendar.n_weeks
    assert inputs.demand.shape == (f, p)
    assert inputs.capacity.shape == (2, p)
    assert inputs.scheduled_receipts.shape == (i, w)
    for arr in (inputs.item_lt, inputs.item_lot, inputs.on_hand, inputs.item_max_lot):
        assert arr.shape == (i,)
    assert inputs.period_cost.shape == (p,) and inputs.period_score.shape == (p,)
    assert inputs.routing is None


def test_sample_calendar_matches_the_derived_one():
    explicit = load_input_set(SAMPLE).calendar
    derived = derive_calendar(explicit.periods)
    assert explicit.buckets == derived.buckets
    assert any(b.weight < 7 for b in explicit.buckets[1:-1])  # split weeks inside the horizon


def test_sample_has_exactly_one_month_over_capacity():
    inputs = load_input_set(SAMPLE)
    over = inputs.demand.sum(axis=0) > inputs.capacity.sum(axis=0)
    assert [inputs.calendar.periods[k] for k in np.flatnonzero(over)] == ["2026-11"]


def test_sample_bom_shares_a_component_across_levels():
    inputs = load_input_set(SAMPLE)
    name = inputs.items
    parents_of = {}
    for p, c in zip(inputs.bom_parent, inputs.bom_child, strict=True):
        parents_of.setdefault(name[c], set()).add(name[p])
    # MOT-700 goes straight into BL-700 and into BASE-PRO, the motor base of BL-PRO
    assert parents_of["MOT-700"] == {"BL-700", "BASE-PRO"}
    assert parents_of["BASE-PRO"] == {"BL-PRO"}
    assert np.count_nonzero(inputs.item_max_lot) == 1
    assert (inputs.scheduled_receipts.sum() > 0) and np.count_nonzero(inputs.bom_scrap) >= 1


def test_routing_to_an_unknown_workcenter_is_a_problem(tmp_path):
    routing = "family,workcenter,units_per_unit\nA,WC,1\nB,PAINT,1\n"
    assert only_problem(write_set(tmp_path, {"routing.csv": routing})) == Problem(
        "routing.csv", 3, "workcenter", "unknown workcenter PAINT (not in capacity.csv)"
    )


def test_bom_parent_that_nothing_demands_is_a_warning(tmp_path):
    bom = TINY["bom.csv"] + "KIT,C2,1,0\n"
    items = TINY["item.csv"] + "KIT,0,1,0\n"
    inputs = load_input_set(write_set(tmp_path, {"bom.csv": bom, "item.csv": items}))
    assert inputs.warnings == ["bom.csv: KIT is neither a finished good nor used by a parent; never demanded"]


# --- extreme input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "row", "column", "value", "top"),
    [
        ("demand_family.csv", 2, "demand", "1e15", "1e+09"),
        ("inventory.csv", 2, "qty", "1e308", "1e+09"),
        ("item.csv", 2, "lot", "1e308", "1e+09"),
        ("item.csv", 2, "lt", "1e19", "3650"),
        ("bom.csv", 2, "qty", "1e308", "10000"),
        ("capacity.csv", 2, "capacity", "1e308", "1e+12"),
    ],
)
def test_a_value_beyond_its_columns_bound_is_a_problem_at_its_cell(tmp_path, name, row, column, value, top):
    lines = TINY[name].splitlines()
    header = lines[0].split(",")
    cells = lines[row - 1].split(",")
    cells[header.index(column)] = value
    lines[row - 1] = ",".join(cells)
    found = only_problem(write_set(tmp_path, {name: "\n".join(lines) + "\n"}))
    assert (found.file, found.row, found.column) == (name, row, column)
    assert found.reason == f"too large: {value} (at most {top})"


@pytest.mark.parametrize("value", ["1_000", "inf", "nan", "-inf"])
def test_underscores_and_non_finite_numbers_are_unparsable(tmp_path, value):
    lines = TINY["inventory.csv"].splitlines()
    lines[1] = f"A1,DC1,{value}"
    found = only_problem(write_set(tmp_path, {"inventory.csv": "\n".join(lines) + "\n"}))
    assert (found.file, found.row, found.column) == ("inventory.csv", 2, "qty")
    assert found.reason == f"unparsable number {value!r}"


def test_a_deeply_nested_calendar_is_a_problem_not_a_crash(tmp_path):
    folder = write_set(tmp_path)
    (folder / "planning_calendar.json").write_text("[" * 100_000, encoding="utf-8")
    found = only_problem(folder)
    assert (found.file, found.reason) == ("planning_calendar.json", "unparsable JSON: nested too deeply")


def _calendar(weight: str = "7", start: str = "2026-01-01", end: str = "2026-01-31") -> str:
    weeks = ",".join(
        f'{{"week_code": "2026-W0{w}", "start_date": "2026-01-0{1 + 7 * (w - 1) if w > 1 else 1}", '
        f'"end_date": "2026-01-{7 * w - 3:02d}", "weight": {weight}}}'
        for w in (1,)
    )
    return f'{{"periods": [{{"period": "2026-01", "start_date": "{start}", "end_date": "{end}", "weeks": [{weeks}]}}]}}'


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        (_calendar(weight="NaN"), "periods[0].weeks[0]", "weight must be a number in [0, 1e+06], got nan"),
        (_calendar(weight="1e300"), "periods[0].weeks[0]", "weight must be a number in [0, 1e+06], got 1e+300"),
        (_calendar(start="2026-01-31", end="2026-01-01"), "periods[0]", "end_date 2026-01-01 is before start_date 2026-01-31"),
    ],
)  # fmt: skip
def test_a_calendar_with_a_nan_weight_or_a_reversed_period_is_refused(tmp_path, text, where, reason):
    folder = write_set(tmp_path)
    (folder / "planning_calendar.json").write_text(text, encoding="utf-8")
    found = [p for p in problems(folder) if p.file == "planning_calendar.json"]
    assert [(p.column, p.reason) for p in found] == [(where, reason)]


def test_a_file_with_very_many_problems_lists_a_thousand_and_counts_the_rest(tmp_path):
    rows = "".join(f"A1,DC{i},x\n" for i in range(5000))
    with pytest.raises(InputError) as err:
        load_input_set(write_set(tmp_path, {"inventory.csv": "item,loc,qty\n" + rows}))
    listed = err.value.problems
    assert len(listed) == 1001
    assert listed[-1].reason == "4,000 more problem(s) not listed"


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    from app.planning.inputs import MAX_INPUT_BYTES

    folder = write_set(tmp_path)
    with (folder / "demand_family.csv").open("r+b") as fh:
        fh.truncate(MAX_INPUT_BYTES + 1)  # sparse: nothing is written, nothing is read
    found = [p for p in problems(folder) if p.file == "demand_family.csv"]
    assert [(p.row, p.reason) for p in found] == [(None, "larger than 64,000,000 bytes")]
