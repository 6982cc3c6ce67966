"""Planning calendar: months split into ISO-week buckets.

Owns the derivation of buckets from real dates (SPEC 2) and the reading of an explicit
``planning_calendar.json`` document (already parsed). A month's buckets are the ISO weeks with at
least one day in it, weighted by those days; a week straddling two months becomes two buckets.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from app.planning.model import Bucket, Calendar, Problem


def month_bounds(period: str) -> tuple[dt.date, dt.date]:
    """First and last day of a ``YYYY-MM`` period."""
    year, month = (int(x) for x in period.split("-"))
    first = dt.date(year, month, 1)
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    return first, nxt - dt.timedelta(days=1)


def iso_week_code(day: dt.date) -> str:
    y, w, _ = day.isocalendar()
    return f"{y}-W{w:02d}"


def month_buckets(period: str) -> list[Bucket]:
    first, last = month_bounds(period)
    buckets: list[Bucket] = []
    day = first
    while day <= last:
        monday = day - dt.timedelta(days=day.weekday())
        end = min(monday + dt.timedelta(days=6), last)
        buckets.append(Bucket(period, iso_week_code(day), day, end, float((end - day).days + 1)))
        day = end + dt.timedelta(days=1)
    return buckets


def week_share(week: str, period: str) -> float | None:
    """The share of ISO week ``week`` (``YYYY-Www``) that falls in month ``period`` (``YYYY-MM``): the
    week's days in the month over seven; None when either is not in that form."""
    try:
        year, number = week.split("-W")
        monday = dt.date.fromisocalendar(int(year), int(number), 1)
        first, last = month_bounds(period)
    except ValueError:
        return None
    days = sum(first <= monday + dt.timedelta(days=i) <= last for i in range(7))
    return days / 7


def derive_calendar(periods: list[str]) -> Calendar:
    """Calendar from real dates for consecutive or gapped ``YYYY-MM`` periods (sorted)."""
    periods = sorted(set(periods))
    buckets = [b for p in periods for b in month_buckets(p)]
    bounds = [month_bounds(p) for p in periods]
    return Calendar(periods, [b[0] for b in bounds], [b[1] for b in bounds], buckets, derived=True)


def add_months(period: str, n: int) -> str:
    year, month = (int(x) for x in period.split("-"))
    idx = year * 12 + (month - 1) + n
    return f"{idx // 12:04d}-{idx % 12 + 1:02d}"


#: A week's weight is its share of the month (days by default): beyond this it cannot be meant.
MAX_WEEK_WEIGHT = 1e6


def calendar_from_document(
    doc: Any, file: str = "planning_calendar.json"
) -> tuple[Calendar | None, list[Problem], list[str]]:
    """Read a parsed ``planning_calendar.json``. Returns (calendar, problems, warnings)."""
    problems: list[Problem] = []
    warnings: list[str] = []

    def bad(where: str, reason: str) -> None:
        problems.append(Problem(file, None, where, reason))

    if not isinstance(doc, dict) or not isinstance(doc.get("periods"), list) or not doc["periods"]:
        bad("periods", "expected an object with a non-empty list 'periods'")
        return None, problems, warnings
    extra = sorted(set(doc) - {"periods"})
    if extra:
        warnings.append(f"{file}: ignoring extra keys {', '.join(extra)}")
    periods: list[str] = []
    starts: list[dt.date] = []
    ends: list[dt.date] = []
    buckets: list[Bucket] = []
    for i, p in enumerate(doc["periods"]):
        where = f"periods[{i}]"
        if not isinstance(p, dict):
            bad(where, "expected an object")
            continue
        try:
            period = str(p["period"])
            month_bounds(period)
            start = dt.date.fromisoformat(str(p["start_date"]))
            end = dt.date.fromisoformat(str(p["end_date"]))
        except (KeyError, ValueError) as exc:
            bad(where, f"needs period (YYYY-MM), start_date and end_date: {exc}")
            continue
        if end < start:
            bad(where, f"end_date {end} is before start_date {start}")
            continue
        weeks = p.get("weeks")
        if not isinstance(weeks, list) or not weeks:
            bad(f"{where}.weeks", "expected a non-empty list of weeks")
            continue
        periods.append(period)
        starts.append(start)
        ends.append(end)
        for j, w in enumerate(weeks):
            wwhere = f"{where}.weeks[{j}]"
            try:
                code = str(w["week_code"])
                y, wk = code.split("-W")
                dt.date.fromisocalendar(int(y), int(wk), 1)
                ws = dt.date.fromisoformat(str(w["start_date"]))
                we = dt.date.fromisoformat(str(w["end_date"]))
                weight = float(w.get("weight", (we - ws).days + 1))
            except (KeyError, ValueError, TypeError) as exc:
                bad(wwhere, f"needs week_code (YYYY-Www), start_date, end_date and a numeric weight: {exc}")
                continue
            if not math.isfinite(weight) or weight < 0 or weight > MAX_WEEK_WEIGHT:
                bad(wwhere, f"weight must be a number in [0, {MAX_WEEK_WEIGHT:g}], got {weight!r}")
                continue
            if we < ws:
                bad(wwhere, f"end_date {we} is before start_date {ws}")
                continue
            buckets.append(Bucket(period, code, ws, we, weight))
    if problems:
        return None, problems, warnings
    if len(set(periods)) != len(periods):
        bad("periods", "duplicate period")
        return None, problems, warnings
    order = sorted(range(len(periods)), key=lambda k: periods[k])
    periods = [periods[k] for k in order]
    starts = [starts[k] for k in order]
    ends = [ends[k] for k in order]
    buckets.sort(key=lambda b: (b.start_date, b.period))
    try:
        cal = Calendar(periods, starts, ends, buckets)
    except ValueError as exc:
        bad("weeks", str(exc))
        return None, problems, warnings
    return cal, problems, warnings
