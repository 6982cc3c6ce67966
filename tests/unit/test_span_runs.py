"""Spans of a level's rows: one per run of consecutive rows with the same family or item."""

from __future__ import annotations

from app.storage.spans import spans_of

NAMES = ("seq", "item_key", "group_key", "demand")


def test_each_run_of_a_key_is_one_span_and_rows_without_the_key_are_in_none():
    rows = [
        (0, "A", "F1", 1.0),
        (1, "A", "F1", 2.0),
        (2, "B", "F1", 3.0),
        (3, None, "F2", 4.0),
        (4, "A", "F2", 5.0),  # A again after B: a second span
        (5, "C", "F2", 6.0),
    ]
    found = list(spans_of("det", NAMES, rows))
    assert [s for s in found if s[1] == "group"] == [
        ("det", "group", "F1", 0, 2),
        ("det", "group", "F2", 3, 5),
    ]
    assert [s for s in found if s[1] == "item"] == [
        ("det", "item", "A", 0, 1),
        ("det", "item", "B", 2, 2),
        ("det", "item", "A", 4, 4),
        ("det", "item", "C", 5, 5),
    ]


def test_levels_not_read_by_key_and_empty_levels_have_no_spans():
    assert list(spans_of("report", NAMES, [(0, "A", "F1", 1.0)])) == []
    assert list(spans_of("det", NAMES, [])) == []
    # a kind whose column the level does not have is skipped
    assert list(spans_of("aggregate", ("seq", "group_key"), [(0, "F1"), (1, "F1")])) == [
        ("aggregate", "group", "F1", 0, 1)
    ]
