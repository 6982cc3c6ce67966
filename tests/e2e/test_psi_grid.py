"""The planner's PSI grid in Chromium: keyboard editing of several cells and one save, a pasted block,
projected inventory following the typing, and the read-only approved grid with its reopen action."""

from __future__ import annotations

import re

import httpx
import pytest

pytest.importorskip("playwright", reason="the playwright Python package is not installed")
from playwright.sync_api import expect  # noqa: E402

from tests.e2e.conftest import plan_sample  # noqa: E402


def cells(hub, version_id: str, sku: str) -> dict[tuple[str, str], dict]:
    rows = httpx.get(hub.url(f"/plans/{version_id}/psi"), params={"level": "det", "sku": sku, "limit": 500}, timeout=30).json()["rows"]  # fmt: skip
    return {(r["week"], r["period"]): r for r in rows}


def test_keyboard_edits_of_several_cells_are_saved_in_one_request_with_one_note(
    hub, browser_page, save_screenshot
):
    plan_sample(hub, "grid")
    page = browser_page
    page.goto(hub.url("/ui/plans/grid/psi"))
    sheet = page.locator("#psi-sheet")
    first = sheet.locator("tbody.sku").first
    sku = first.get_attribute("data-sku")
    demand = first.locator("tr.demand input.g")
    inventory = first.locator("td.inv")
    start = [int(v) for v in demand.evaluate_all("els => els.slice(0, 3).map(e => e.value)")]
    inv_before = inventory.nth(2).inner_text()
    total = sheet.locator("td.total[data-field=demand]").first
    total_before = int(total.inner_text().replace(",", ""))

    demand.first.click()
    demand.first.fill(str(start[0] + 10))
    page.keyboard.press("ArrowRight")  # the next week of the same row
    page.keyboard.type(str(start[1] + 20))
    page.keyboard.press("ArrowRight")
    page.keyboard.type(str(start[2] + 30))
    # before saving: the family total and the projected inventory follow what was typed
    expect(total).to_have_text(f"{total_before + 10:,}")
    assert int(inventory.nth(2).inner_text().replace(",", "")) == int(inv_before.replace(",", "")) - 60
    expect(page.locator("#grid-changes")).to_have_text("3 changed cells")
    page.fill("#grid-note", "three weeks of promotion")
    sheet.scroll_into_view_if_needed()
    save_screenshot(page, "plan-psi-grid", full_page=False)
    with page.expect_response(re.compile(r"/psi/grid$")) as answer:
        page.click("#grid-save")
    assert answer.value.status == 200
    expect(page.locator("#psi-message")).to_contain_text("saved 3 cell(s)")

    stored = cells(hub, "grid", sku)
    weeks = sorted(stored)[:3]
    assert [stored[w]["demand"] for w in weeks] == [start[0] + 10, start[1] + 20, start[2] + 30]
    events = httpx.get(hub.url("/plans/grid/psi/events"), timeout=30).json()["events"]
    edits = [e for e in events if e["type"] == "edit"]
    assert len(edits) == 3 and {e.get("note") for e in edits} == {"three weeks of promotion"}
    expect(page.locator("#psi-history tbody tr").first).to_contain_text("three weeks of promotion")


def test_a_block_pasted_from_a_spreadsheet_fills_cells_from_where_it_lands(hub, browser_page):
    plan_sample(hub, "paste")
    page = browser_page
    page.goto(hub.url("/ui/plans/paste/psi"))
    first = page.locator("#psi-sheet tbody.sku").first
    sku = first.get_attribute("data-sku")
    target = first.locator("tr.demand input.g").nth(1)
    target.focus()
    # two rows (demand, supply) by three weeks, tab-separated as a spreadsheet copies them
    page.evaluate(
        """el => { const data = new DataTransfer(); data.setData('text/plain', '11\\t12\\t13\\n21\\t22\\t23\\n');
                   el.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true})); }""",
        target.element_handle(),
    )

    def values(row: str) -> list[str]:
        return first.locator(f"tr.{row} input.g").evaluate_all("els => els.slice(1, 4).map(e => e.value)")

    assert values("demand") == ["11", "12", "13"]
    assert values("supply") == ["21", "22", "23"]
    expect(page.locator("#grid-changes")).to_contain_text("changed cell")
    page.click("#grid-save")
    expect(page.locator("#psi-message")).to_contain_text("saved 6 cell(s)")
    stored = cells(hub, "paste", sku)
    weeks = sorted(stored)[1:4]
    assert [stored[w]["demand"] for w in weeks] == [11, 12, 13]
    assert [stored[w]["supply"] for w in weeks] == [21, 22, 23]


def test_an_approved_grid_is_read_only_and_reopens_as_a_draft_child(hub, browser_page):
    plan_sample(hub, "done")
    for step in ("submit", "approve"):
        assert httpx.post(hub.url(f"/plans/done/psi/{step}"), json={}, timeout=30).status_code == 200
    page = browser_page
    page.goto(hub.url("/ui/plans/done/psi"))
    expect(page.locator("#psi-approval")).to_have_text("approved")
    cell = page.locator("#psi-sheet tbody.sku").first.locator("tr.demand input.g").first
    expect(cell).not_to_be_editable()
    expect(page.locator("#grid-save")).to_have_count(0)
    page.fill("#reopen-note", "one more change")
    page.click("#psi-reopen")
    expect(page).to_have_url(re.compile(r"/ui/plans/(?!done/)[^/]+/psi$"))
    expect(page.locator("#psi-approval")).to_have_text("draft")
    expect(page.locator("#psi-sheet tbody.sku").first.locator("tr.demand input.g").first).to_be_editable()
    expect(page.locator("#psi-history")).to_contain_text("reopen")


def test_a_cell_that_is_not_a_number_is_not_sent_and_unreadable_edits_change_nothing(hub, browser_page):
    plan_sample(hub, "bad")
    page = browser_page
    page.goto(hub.url("/ui/plans/bad/psi"))
    cell = page.locator("#psi-sheet tbody.sku").first.locator("tr.demand input.g").first
    cell.fill("lots")
    expect(page.locator("#grid-changes")).to_have_text("a cell is not a number")
    expect(page.locator("#grid-save")).to_be_disabled()
    # edits the page did not make (a stale or tampered form) are refused whole, with the reason shown
    cell.fill("5")
    page.eval_on_selector("#grid-edits", "e => { e.value = '{not json'; }")
    page.eval_on_selector("#grid-form", "f => f.requestSubmit()")
    expect(page.locator("#psi-error")).to_contain_text("the grid's edits are not readable")
    events = httpx.get(hub.url("/plans/bad/psi/events"), timeout=30).json()["events"]
    assert events == []


def test_weeks_of_cover_count_a_split_weeks_two_buckets_as_one_week(hub, browser_page):
    """Cover over a week split across two months: the two buckets hold 6/7 and 1/7 of it (or so), so
    an inventory that lasts exactly through both covers 1.0 week, not 2."""
    plan_sample(hub, "cover")
    page = browser_page
    page.goto(hub.url("/ui/plans/cover/psi"))
    sheet = page.locator("#psi-sheet")
    shares = [float(x) for x in sheet.evaluate("t => JSON.parse(t.dataset.shares)")]
    k = next(i for i, share in enumerate(shares) if i >= 1 and share < 1)  # a split week's first bucket
    assert abs(shares[k] + shares[k + 1] - 1) < 1e-3 and 0 < shares[k] < 1
    first = sheet.locator("tbody.sku").first
    demand, supply = first.locator("tr.demand input.g"), first.locator("tr.supply input.g")
    supply.nth(k - 1).fill("1000")  # stock on hand before the split week
    stock = float(first.locator("td.inv").nth(k - 1).inner_text().replace(",", ""))
    assert stock > 0
    for c in (k, k + 1):  # the split week's two buckets use it all up, with nothing supplied
        supply.nth(c).fill("0")
        demand.nth(c).fill(str(stock / 2))
    expect(first.locator("td.cov").nth(k - 1)).to_have_text("1.0")
    expect(first.locator("td.inv").nth(k + 1)).to_have_text("0")


def test_the_grid_narrows_to_skus_with_an_exception_or_below_safety_stock(hub, browser_page):
    """ "Has an exception" keeps the family's SKUs an exception names; "below safety stock" keeps those
    whose projected inventory row shows a cell below safety stock or short, and no other."""
    plan_sample(hub, "narrow")
    page = browser_page
    page.goto(hub.url("/ui/plans/narrow/psi"))
    sheet = page.locator("#psi-sheet")

    def shown() -> list[str]:
        return sheet.locator("tbody.sku").evaluate_all("els => els.map(e => e.dataset.sku)")

    every = shown()
    assert every
    named = {
        e.get("item")
        for e in httpx.get(hub.url("/plans/narrow/artifacts/exceptions.json"), timeout=30).json()["rows"]
    }
    page.select_option("#grid-show", "exception")
    page.click("#grid-filter button")
    expect(page.locator("#grid-show")).to_have_value("exception")
    with_exception = shown() if sheet.count() else []
    assert with_exception == [s for s in every if s in named]

    page.goto(hub.url("/ui/plans/narrow/psi"))
    flagged = [
        s for s in every
        if sheet.locator(f'tbody.sku[data-sku="{s}"] td.inv.below, tbody.sku[data-sku="{s}"] td.inv.short').count()
    ]  # fmt: skip
    page.select_option("#grid-show", "below")
    page.click("#grid-filter button")
    expect(page.locator("#grid-show")).to_have_value("below")
    if flagged:
        assert shown() == flagged
    else:
        expect(page.locator("#grid-empty")).to_be_visible()
