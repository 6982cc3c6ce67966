"""The planning calendar: months split into ISO-week buckets (SPEC 2)."""

from __future__ import annotations

import copy
import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from app.planning.calendar import add_months, calendar_from_document, derive_calendar, month_bounds
from app.planning.samplegen import calendar_document


def weeks_of(cal, period):
    return [(b.week, b.weight) for b in cal.buckets if b.period == period]


def test_january_2026_has_weeks_w01_to_w05_with_split_ends():
    cal = derive_calendar(["2026-01"])
    # Thu 1 Jan .. Sun 4 Jan = 4 days of W01; Mon 26 .. Sat 31 Jan = 6 days of W05
    assert weeks_of(cal, "2026-01") == [
        ("2026-W01", 4),
        ("2026-W02", 7),
        ("2026-W03", 7),
        ("2026-W04", 7),
        ("2026-W05", 6),
    ]


def test_week_straddling_two_months_is_two_buckets_and_one_week():
    cal = derive_calendar(["2026-01", "2026-02"])
    w05 = [(b.period, b.weight, b.start_date, b.end_date) for b in cal.buckets if b.week == "2026-W05"]
    # W05 = Mon 26 Jan .. Sun 1 Feb: 6 days in January, 1 in February
    assert w05 == [
        ("2026-01", 6, dt.date(2026, 1, 26), dt.date(2026, 1, 31)),
        ("2026-02", 1, dt.date(2026, 2, 1), dt.date(2026, 2, 1)),
    ]
    assert cal.weeks.count("2026-W05") == 1
    assert cal.n_weeks == 9 and cal.n_buckets == 10


def test_december_2026_ends_in_week_53():
    cal = derive_calendar(["2026-12"])
    # 2026 starts on a Thursday, so it has 53 ISO weeks; Mon 28 .. Thu 31 Dec = 4 days of W53
    assert weeks_of(cal, "2026-12")[-1] == ("2026-W53", 4)
    assert weeks_of(cal, "2026-12")[0] == ("2026-W49", 6)  # Tue 1 .. Sun 6 Dec


def test_month_that_starts_on_a_monday_has_no_split_at_its_start():
    cal = derive_calendar(["2026-06"])
    # 1 June 2026 is a Monday: W23 is whole; Mon 29 .. Tue 30 June = 2 days of W27
    assert weeks_of(cal, "2026-06")[0] == ("2026-W23", 7)
    assert weeks_of(cal, "2026-06")[-1] == ("2026-W27", 2)


def test_derived_calendar_sorts_and_deduplicates_periods():
    cal = derive_calendar(["2026-03", "2026-01", "2026-03"])
    assert cal.periods == ["2026-01", "2026-03"]
    assert cal.period_start == [dt.date(2026, 1, 1), dt.date(2026, 3, 1)]
    assert cal.derived


def test_bucket_index_arrays_follow_the_buckets():
    cal = derive_calendar(["2026-01", "2026-02"])
    assert cal.bucket_period_idx.tolist() == [0] * 5 + [1] * 5
    assert cal.bucket_week_idx.tolist() == [0, 1, 2, 3, 4, 4, 5, 6, 7, 8]
    assert cal.bucket_weight.sum() == 31 + 28
    assert cal.buckets[4].key == "2026-W05@2026-01"
    assert cal.week_start(4) == dt.date(2026, 1, 26)


@settings(max_examples=80, deadline=None)
@given(st.integers(2000, 2060), st.integers(1, 12), st.integers(1, 30))
def test_derived_buckets_tile_every_month_day_by_day(year, month, count):
    periods = [add_months(f"{year:04d}-{month:02d}", k) for k in range(count)]
    cal = derive_calendar(periods)
    for p in periods:
        first, last = month_bounds(p)
        mine = [b for b in cal.buckets if b.period == p]
        assert sum(b.weight for b in mine) == (last - first).days + 1
        assert mine[0].start_date == first and mine[-1].end_date == last
        for a, b in zip(mine, mine[1:], strict=False):
            assert b.start_date == a.end_date + dt.timedelta(days=1)
    for b in cal.buckets:
        assert b.start_date.isocalendar()[:2] == b.end_date.isocalendar()[:2]  # inside one ISO week
        assert b.weight == (b.end_date - b.start_date).days + 1 <= 7
    assert len(set(cal.weeks)) == cal.n_weeks


# --------------------------------------------------------------------------------------------------
# calendar_from_document


def document(periods=("2026-01", "2026-02")):
    return calendar_document(derive_calendar(list(periods)))


def test_document_of_a_derived_calendar_reads_back_the_same_buckets():
    cal, problems, warnings = calendar_from_document(document())
    assert problems == [] and warnings == []
    assert cal.periods == ["2026-01", "2026-02"]
    assert cal.buckets == derive_calendar(["2026-01", "2026-02"]).buckets
    assert not cal.derived


def test_document_weights_are_taken_as_given():
    doc = document(["2026-01"])
    doc["periods"][0]["weeks"][0]["weight"] = 2.5
    cal, problems, _ = calendar_from_document(doc)
    assert problems == [] and cal.buckets[0].weight == 2.5


def test_missing_weight_defaults_to_days():
    doc = document(["2026-01"])
    del doc["periods"][0]["weeks"][0]["weight"]
    cal, _, _ = calendar_from_document(doc)
    assert cal.buckets[0].weight == 4  # 1 .. 4 January


def test_document_must_be_an_object_with_periods():
    for bad in ([], {"periods": []}, {"periods": "2026-01"}, {"months": []}, None):
        cal, problems, _ = calendar_from_document(bad)
        assert cal is None
        assert [(p.file, p.column) for p in problems] == [("planning_calendar.json", "periods")]


def test_bad_period_and_week_entries_are_all_reported():
    doc = document()
    doc["periods"][0]["period"] = "January"
    doc["periods"][1]["weeks"][0]["week_code"] = "2026-05"
    doc["periods"][1]["weeks"][1]["weight"] = -1
    cal, problems, _ = calendar_from_document(doc)
    assert cal is None
    assert [p.column for p in problems] == ["periods[0]", "periods[1].weeks[0]", "periods[1].weeks[1]"]
    assert "weight must be a number in [0, 1e+06], got -1.0" in problems[-1].reason


def test_period_without_weeks_is_a_problem():
    doc = document(["2026-01"])
    doc["periods"][0]["weeks"] = []
    _, problems, _ = calendar_from_document(doc)
    assert [p.column for p in problems] == ["periods[0].weeks"]


def test_duplicate_period_is_a_problem():
    doc = document(["2026-01"])
    doc["periods"].append(copy.deepcopy(doc["periods"][0]))
    cal, problems, _ = calendar_from_document(doc)
    assert cal is None and [p.reason for p in problems] == ["duplicate period"]


def test_extra_keys_are_ignored_with_a_warning():
    doc = {**document(["2026-01"]), "calendar_type": "gregorian", "sequence": 3}
    cal, problems, warnings = calendar_from_document(doc)
    assert cal is not None and problems == []
    assert warnings == ["planning_calendar.json: ignoring extra keys calendar_type, sequence"]


def test_week_share_is_the_weeks_days_in_the_month_over_seven():
    from app.planning.calendar import week_share

    # 2026-W05 runs Monday 26 January to Sunday 1 February
    assert week_share("2026-W05", "2026-01") == 6 / 7
    assert week_share("2026-W05", "2026-02") == 1 / 7
    assert week_share("2026-W02", "2026-01") == 1.0
    assert week_share("2026-W02", "2026-03") == 0.0
    assert week_share("week 5", "2026-01") is None and week_share("2026-W05", "January") is None
