"""Details a walk through the UI in Chromium found: a failed plan's page, and no 404 on first load."""

from __future__ import annotations

import re
import shutil

import httpx
import pytest

pytest.importorskip("playwright", reason="the playwright Python package is not installed")
from playwright.sync_api import expect  # noqa: E402

from tests.conftest import SAMPLE  # noqa: E402
from tests.e2e.conftest import plan_sample, start_hub  # noqa: E402


def test_a_failed_plan_lists_its_input_problems_one_per_line_and_has_no_tabs(tmp_path, browser_page):
    hub = start_hub(tmp_path, {"SCPLN_INPUT_ROOTS": str(tmp_path)})
    try:
        bad = tmp_path / "bad"
        shutil.copytree(SAMPLE, bad)
        lines = (bad / "demand_family.csv").read_text().splitlines()
        lines[2] = lines[2].rsplit(",", 1)[0] + ",lots"
        lines[3] = lines[3].rsplit(",", 1)[0] + ",-4"
        (bad / "demand_family.csv").write_text("\n".join(lines) + "\n")
        run = httpx.post(hub.url("/plans/integrated/run"), json={"input_dir": str(bad), "version_id": "broken"}, timeout=60)  # fmt: skip
        assert run.status_code == 422
        page = browser_page
        page.goto(hub.url("/ui/plans/broken"))
        expect(page.locator("#plan-failed")).to_contain_text("This plan failed")
        problems = page.locator("#plan-problems li")
        expect(problems).to_have_count(2)
        expect(problems.nth(0)).to_have_text("demand_family.csv:3 [demand]: unparsable number 'lots'")
        expect(problems.nth(1)).to_have_text("demand_family.csv:4 [demand]: negative quantity -4")
        expect(page.locator("nav.tabs")).to_have_count(0)
    finally:
        hub.stop()


def test_the_first_load_of_a_page_asks_for_nothing_that_is_missing(hub, browser_page):
    missing = []
    page = browser_page
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto(hub.url("/ui/plans"))
    page.wait_for_load_state("networkidle")
    icon = page.evaluate("document.querySelector('link[rel=icon]').href")
    assert page.request.get(icon).status == 200
    assert missing == []


def test_the_new_plan_form_looks_disabled_while_intake_is_paused(hub, browser_page):
    page = browser_page

    def background() -> str:
        return page.eval_on_selector("#input_dir", "e => getComputedStyle(e).backgroundColor")

    page.goto(hub.url("/ui/plans"))
    expect(page.locator("#input_dir")).to_be_enabled()
    enabled = background()
    assert httpx.post(hub.url("/ops/jobs/pause"), timeout=30).status_code == 200
    page.goto(hub.url("/ui/plans"))
    expect(page.locator("#intake-closed")).to_be_visible()
    expect(page.locator("#input_dir")).to_be_disabled()
    assert background() != enabled  # greyed, not only inert
    cursor = page.eval_on_selector("#input_dir", "e => getComputedStyle(e).cursor")
    assert cursor == "not-allowed"


def test_the_runs_page_shows_durations_and_opens_a_run_with_its_whole_summary(hub, browser_page):
    plan_sample(hub, "timed")
    page = browser_page
    page.goto(hub.url("/ui/runs"))
    row = page.locator("table.data tbody tr", has_text="timed")
    expect(row.locator("td.n")).to_have_text(re.compile(r"^\d+(\.\d)? s$|^\d+ min \d\d s$"))
    row.locator("th a").click()
    expect(page.locator("#run-status")).to_have_text("succeeded")
    expect(page.locator("#run-duration")).to_have_text(re.compile(r"\d"))
    summary = page.locator("#run-summary")
    for part in ("kpis", "timings", "storage", "fill rate", "write seconds"):
        expect(summary).to_contain_text(part)


def test_numbers_read_as_people_write_them(hub, browser_page):
    plan_sample(hub, "nums")
    page = browser_page
    page.goto(hub.url("/ui/plans/nums/capacity"))
    rows = page.locator("#table-weekly tbody tr")
    expect(rows.first).to_be_visible()
    first = rows.first.locator("td")
    headers = page.locator("#table-weekly thead th").all_inner_texts()
    cells = dict(zip(headers[1:], first.all_inner_texts(), strict=True))
    # capacities and loads are whole numbers with separators, utilization a percentage
    for column in ("capacity", "original load", "adjusted load"):
        assert re.fullmatch(r"-?\d{1,3}(,\d{3})*", cells[column]), (column, cells[column])
    assert re.fullmatch(r"\d+(,\d{3})*\.\d %", cells["utilization"]), cells["utilization"]
    page.goto(hub.url("/ui/plans/nums/reconciliation"))
    rel = page.locator("#table-recon tbody tr").first.locator("td").nth(5)
    expect(rel).to_have_text(re.compile(r"^\d+(,\d{3})*\.\d %$"))


def test_a_chart_legend_names_its_series_until_a_bucket_is_hovered(hub, browser_page):
    plan_sample(hub, "chart")
    page = browser_page
    page.goto(hub.url("/ui/plans/chart"))
    legend = page.locator(".chart-box .u-legend").first
    expect(legend).to_be_visible()
    # nothing hovered: the series names only, no "bucket" entry and no empty "name:" labels
    assert ":" not in legend.inner_text() and "bucket" not in legend.inner_text()
    box = page.locator(".chart-box .u-over").first.bounding_box()
    shown = "() => document.querySelector('.chart-box .u-legend').innerText"
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(f"({shown})().includes('bucket')")
    assert re.search(r"\d", legend.inner_text())
    page.mouse.move(0, 0)
    page.wait_for_function(f"!({shown})().includes('bucket')")


def test_the_backups_table_fits_its_card(hub, browser_page):
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(hub.url("/ui/ops"))
    for _ in range(2):
        page.click("#backup-now")
        page.wait_for_load_state("networkidle")
    page.goto(hub.url("/ui/ops"))
    table = page.locator("#backups")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tbody td.n").first).to_have_text(re.compile(r"^\d+(\.\d)? (KB|MB|GB)$"))
    card = page.locator("section.card", has=table)
    fits = card.evaluate("c => c.scrollWidth <= c.clientWidth && c.querySelector('table').getBoundingClientRect().right <= c.getBoundingClientRect().right")  # fmt: skip
    assert fits


def test_one_click_on_a_late_component_shows_the_finished_goods_it_endangers(
    hub, browser_page, save_screenshot
):
    plan_sample(hub, "peg")
    page = browser_page
    page.goto(hub.url("/ui/plans/peg/exceptions?item=PUMP-15B"))
    row = page.locator("#table-exceptions tbody tr", has_text="past due release")
    expect(row).to_have_count(1)
    pegged = row.locator("details.pegging li")
    expect(pegged).not_to_be_visible()
    row.locator("details.pegging summary").click()
    # the pump's past-due release endangers the espresso machine's receipts in weeks 6 to 11
    expect(pegged).to_have_text("CM-ESP receipts 2026-W06–2026-W11 · 630 units")
    save_screenshot(page, "plan-exceptions")
    pegged.locator("a").click()
    expect(page).to_have_url(re.compile(r"/ui/plans/peg/mrp\?item=CM-ESP$"))
    expect(page.locator("table caption strong").first).to_have_text("CM-ESP")


def test_the_search_box_jumps_to_an_item_or_a_family(hub, browser_page):
    plan_sample(hub, "find")
    page = browser_page
    page.goto(hub.url("/ui/plans/find/capacity"))
    page.fill("#find-q", "PUMP-15B")
    page.press("#find-q", "Enter")
    expect(page).to_have_url(re.compile(r"/ui/plans/find/mrp\?item=PUMP-15B$"))
    expect(page.locator("table caption strong").first).to_have_text("PUMP-15B")
    page.fill("#find-q", "COFFEE")
    page.press("#find-q", "Enter")
    expect(page).to_have_url(re.compile(r"/ui/plans/find/psi\?family=COFFEE$"))
    expect(page.locator("#grid-title")).to_have_text("COFFEE: SKU × week")
    page.fill("#find-q", "NO-SUCH")
    page.press("#find-q", "Enter")
    expect(page.locator("#find-missing")).to_have_text("No item or family named “NO-SUCH” in this plan.")


def test_an_exception_endangering_many_finished_goods_lists_a_few_and_fetches_the_rest_when_opened(
    tmp_path, browser_page
):
    """A row lists its first endangered finished goods; opening it fetches the whole list, the same
    finished goods the plan's exceptions.json gives for that component and shortage."""
    from app.planning.samplegen import generate_sample
    from app.ui.pages.plans import PEGGING_SHOWN

    # few components shared by 30 finished goods: a shortage endangers many of them
    inputs = generate_sample(tmp_path / "inputs" / "wide", families=2, skus_per_family=15, components=3,
                             bom_depth=1, months=6, seed=3)  # fmt: skip
    (tmp_path / "hub").mkdir()
    hub = start_hub(tmp_path / "hub", {"SCPLN_INPUT_ROOTS": str(tmp_path / "inputs")})
    try:
        answer = httpx.post(hub.url("/plans/integrated/run"), json={"version_id": "wide", "input_dir": str(inputs)}, timeout=120)  # fmt: skip
        assert answer.status_code == 201, answer.text
        exceptions = httpx.get(hub.url("/plans/wide/artifacts/exceptions.json"), timeout=30).json()["rows"]
        wide = max(exceptions, key=lambda e: len(e.get("pegging") or []))
        whole = [p["item"] for p in wide["pegging"]]
        assert len(whole) > PEGGING_SHOWN
        page = browser_page
        page.goto(hub.url(f"/ui/plans/wide/exceptions?item={wide['item']}"))
        row = page.locator(
            "#table-exceptions tbody tr", has=page.locator(f"td:text-is('{wide['start']}')")
        ).first
        listed = row.locator("details.pegging li:not(.more) a")
        expect(listed).to_have_count(PEGGING_SHOWN)
        expect(row.locator("details.pegging li.more")).to_have_text(f"{len(whole) - PEGGING_SHOWN} more")
        row.locator("details.pegging summary").click()
        expect(listed).to_have_count(len(whole))
        assert listed.all_inner_texts() == whole
        # an item no exception names: a clear 404, not an empty list
        missing = httpx.get(hub.url("/ui/plans/wide/pegging"), params={"item": "NO-SUCH-ITEM"}, timeout=30)
        assert missing.status_code == 404 and "NO-SUCH-ITEM" in missing.text
    finally:
        hub.stop()
