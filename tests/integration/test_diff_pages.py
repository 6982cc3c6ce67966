"""The diff a page at a time (``app.storage.diff.diff_page``): pages walked to the end are the whole
diff in its order; a page compares only the rows it looks through; rows that stop lining up are
compared by key; ``diff.csv`` streams the same walk."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import update

from app.planning.model import PlanParams
from app.services.plans import PlanRequest, run_plan
from app.storage import diff as plan_diff
from app.storage import views
from app.storage.plans import PlanStore
from app.storage.schema import plan_series
from tests.conftest import SAMPLE


def plan(store: PlanStore, version_id: str, mode: str = "db", **params) -> str:
    request = PlanRequest(input_dir=str(SAMPLE), version_id=version_id, params=PlanParams(**params))
    run_plan(request, storage=mode, store=store)
    return version_id


def every_page(store: PlanStore, version_id: str, against: str, limit: int, look: int) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        page = plan_diff.diff_page(store, version_id, against, after=cursor, limit=limit, look=look)
        pages.append(page.cells)
        if page.next is None:
            return pages
        assert page.next != cursor  # every page moves on
        cursor = plan_diff.Cursor.parse(page.next.text())


def cells_of(diff: plan_diff.Diff) -> list[dict]:
    return [r for r in diff.rows if r["level"] != "kpis"]


@pytest.mark.parametrize("base_mode", ["db", "files"])
def test_pages_walked_to_the_end_are_the_whole_diff_in_its_order(store: PlanStore, base_mode: str) -> None:
    base = plan(store, "base", base_mode)
    plan(store, "whatif", prebuild_months=1)
    whole = plan_diff.diff_versions(store, "whatif", base)
    assert whole.counts["sku_week"] > 0 and whole.counts["plan_final"] > 0
    # against a files-mode base every page reads both versions' levels whole (by key): fewer, larger pages
    limit = 50 if base_mode == "db" else 200
    pages = every_page(store, "whatif", base, limit=limit, look=2_000)
    assert [cell for page in pages for cell in page] == cells_of(whole)
    assert len(pages) > 2
    # a page ends with a key's last cell: about ``limit`` cells, never fewer unless it stopped looking
    assert all(len(page) < limit + len(plan_diff.LEVELS[3].measures) for page in pages)
    first = plan_diff.diff_page(store, "whatif", base, limit=50)
    assert first.kpis == [r for r in whole.rows if r["level"] == "kpis"]
    assert first.source == whole.source == ("rows" if base_mode == "db" else "artifacts")


def test_a_page_compares_only_the_rows_it_looks_through(store: PlanStore, monkeypatch) -> None:
    plan(store, "base")
    plan(store, "whatif", prebuild_months=1)
    whole = plan_diff.diff_versions(store, "whatif", "base")

    def no_whole_level(*args, **kwargs):
        raise AssertionError("a page of versions whose rows line up reads no level whole")

    monkeypatch.setattr(views, "read_all", no_whole_level)
    page = plan_diff.diff_page(store, "whatif", "base", limit=100, seconds=600)
    assert page.cells == cells_of(whole)[: len(page.cells)] and len(page.cells) >= 100
    assert page.next is not None and page.looked <= plan_diff.PAGE_CHUNK
    # a sparse stretch: the page stops once it has compared ``look`` rows, with what it found so far
    short = plan_diff.diff_page(store, "whatif", "base", limit=10**6, look=1)
    assert short.next is not None and 0 < short.looked <= plan_diff.PAGE_CHUNK
    assert short.cells == cells_of(whole)[: len(short.cells)]


def test_an_identical_plan_has_no_changed_cells_and_no_next_page(store: PlanStore) -> None:
    plan(store, "base")
    plan(store, "again")
    page = plan_diff.diff_page(store, "again", "base", seconds=600)
    assert (page.cells, page.kpis, page.next) == ([], [], None)


def test_rows_that_stop_lining_up_midway_are_compared_by_key(store: PlanStore) -> None:
    plan(store, "base")
    plan(store, "whatif", prebuild_months=1)
    expected = plan_diff.diff_versions(store, "whatif", "base")
    # the what-if's SKU x week rows 300 and 1,300 change places: the same keys, no longer at the
    # same positions as the base's
    level = views.TABLES["detail"].level.name
    with store.engine.begin() as conn:
        for old, new in ((300, -1), (1_300, 300), (-1, 1_300)):
            conn.execute(
                update(plan_series)
                .where(plan_series.c.version_id == "whatif", plan_series.c.level == level, plan_series.c.seq == old)
                .values(seq=new)
            )  # fmt: skip
    assert plan_diff.diff_versions(store, "whatif", "base").rows == expected.rows
    pages = every_page(store, "whatif", "base", limit=40, look=500)
    assert [cell for page in pages for cell in page] == cells_of(expected)


def test_diff_csv_streams_the_whole_walk(store: PlanStore) -> None:
    plan(store, "base")
    plan(store, "whatif", prebuild_months=1)
    base_id, chunks = plan_diff.diff_csv_stream(store, "whatif")
    rows = list(csv.reader(io.StringIO("".join(chunks))))
    assert base_id == "base" and rows[0] == list(plan_diff.COLUMNS)
    assert len(rows) - 1 == plan_diff.diff_versions(store, "whatif").total > 1_000


@pytest.mark.parametrize("text", ["kpis:0:1", "aggregate:3:1", "aggregate:0:-2", "sku_week:0", "x"])
def test_a_cursor_is_only_what_a_page_made(text: str) -> None:
    with pytest.raises(ValueError, match="cursor"):
        plan_diff.Cursor.parse(text)
    assert plan_diff.Cursor.parse("plan_final:1:-1") == plan_diff.Cursor("plan_final", (1, -1))
