"""Details a walk through the UI in Chromium found: a failed plan's page, and no 404 on first load."""

from __future__ import annotations

import re
import shutil

import httpx
import pytest

pytest.importorskip("playwright", reason="the playwright Python package is not installed")
from playwright.sync_api import expect  # noqa: E402

from tests.conftest import SAMPLE  # noqa: E402
from tests.e2e.conftest import start_hub  # noqa: E402


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


def test_the_first_load_of_a_page_asks_for_nothing_that_is_missing(tmp_path, browser_page):
    hub = start_hub(tmp_path)
    try:
        missing = []
        page = browser_page
        page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
        page.goto(hub.url("/ui/plans"))
        page.wait_for_load_state("networkidle")
        icon = page.evaluate("document.querySelector('link[rel=icon]').href")
        assert page.request.get(icon).status == 200
        assert missing == []
    finally:
        hub.stop()


def test_the_new_plan_form_looks_disabled_while_intake_is_paused(tmp_path, browser_page):
    hub = start_hub(tmp_path)
    try:
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
    finally:
        hub.stop()


def test_the_runs_page_shows_durations_and_opens_a_run_with_its_whole_summary(tmp_path, browser_page):
    hub = start_hub(tmp_path)
    try:
        assert (
            httpx.post(
                hub.url("/plans/integrated/run"), json={"version_id": "timed"}, timeout=120
            ).status_code
            == 201
        )
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
    finally:
        hub.stop()
