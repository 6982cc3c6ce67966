"""The Planning Hub web UI in a real browser (Debian's Chromium under Playwright) against a real
``scpln serve`` process with its in-process worker and a temporary SQLite database.

The tests of one module share one server, and they run in file order: the first one sees the empty hub.
``SCPLN_SCREENSHOTS=1`` also saves the main pages to ``docs/screenshots/``.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx
import pytest

pytest.importorskip("playwright", reason="the playwright Python package is not installed")
from playwright.sync_api import expect  # noqa: E402

from tests.e2e.conftest import HubServer, start_hub  # noqa: E402

COMPARE_HEADER = ["family", "period", "measure", "agg", "det", "delta", "rel", "ok"]
DIFF_HEADER = ["level", "key", "measure", "base", "other", "delta"]
TABS = ("overview", "aggregate", "detail", "mrp", "capacity", "reconciliation", "exceptions", "psi", "diff")


@pytest.fixture(scope="module")
def two_plans(ui_hub: HubServer) -> tuple[str, str]:
    """Two ready versions of the sample input set planned over the API: default parameters, and one
    that pre-builds a month ahead but not a week ahead (so aggregate, detail, final rows and KPIs differ)."""
    ids = []
    for body in (
        {"note": "baseline"},
        {"prebuild_months": 1, "prebuild_weeks": 0, "note": "monthly prebuild"},
    ):
        response = httpx.post(ui_hub.url("/plans/integrated/run"), json=body, timeout=120)
        assert response.status_code == 201, response.text
        ids.append(response.json()["version_id"])
    return ids[0], ids[1]


def _csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def _number(text: str) -> float:
    return float(text.replace(",", "").strip())


def test_an_empty_hub_says_there_are_no_plans_yet(ui_hub, browser_page):
    page = browser_page
    page.goto(ui_hub.url("/"))
    assert page.url.endswith("/ui/plans")
    expect(page.locator("#no-plans")).to_contain_text("No plans yet")
    expect(page.locator("#input_dir")).to_have_value("samples/planning")


def test_new_plan_form_queues_a_job_and_follows_it_to_the_finished_plan(
    ui_hub, browser_page, save_screenshot
):
    page = browser_page
    page.goto(ui_hub.url("/ui/plans"))
    page.fill("#note", "planned from the browser")
    page.get_by_role("button", name="Queue plan").click()
    job = page.locator("#new-job .job")
    expect(job).to_be_visible()
    expect(job.locator("progress")).to_have_count(1)
    expect(page.locator("#open-plan")).to_be_visible(timeout=90_000)
    expect(page.locator("#job-status")).to_have_text("succeeded")
    version_id = page.locator("#new-job code").inner_text()

    # the plan list refreshes itself when the job ends: no reload
    row = page.locator("#plans-table tbody tr", has_text=version_id)
    expect(row).to_contain_text("ready")
    expect(row).to_contain_text("planned from the browser")
    expect(row).to_contain_text("%")  # fill rate and utilization, read from plan_kpis in both mode

    row.get_by_role("link", name=version_id).click()
    expect(page.locator('.kpi[data-metric="fill_rate"] .value')).to_contain_text("%")
    expect(page.locator('.kpi[data-metric="supply_total"]')).to_be_visible()
    expect(page.locator("#chart-monthly canvas").first).to_be_visible()
    expect(page.locator("#chart-weekly canvas").first).to_be_visible()
    expect(page.locator("#chart-monthly .u-legend")).to_contain_text("demand")
    save_screenshot(page, "plan-overview")


def test_every_plan_tab_shows_its_content(ui_hub, two_plans, browser_page, save_screenshot):
    page = browser_page
    vid = two_plans[0]
    page.goto(ui_hub.url("/ui/plans"))
    expect(page.locator("#plans-table tbody tr")).to_have_count(3)
    save_screenshot(page, "plans")
    base = ui_hub.url(f"/ui/plans/{vid}")
    for tab in TABS:
        response = page.goto(base if tab == "overview" else f"{base}/{tab}")
        assert response.status == 200, tab
        expect(page.locator(".tabs a[aria-current=page]")).to_have_text(
            {"mrp": "MRP", "psi": "PSI"}.get(tab, tab.capitalize())
        )
    page.goto(f"{base}/aggregate")
    expect(page.locator("#table-aggregate tbody tr").first).to_be_visible()
    family = page.locator("#table-aggregate tbody tr th").first.inner_text()

    page.goto(f"{base}/detail")
    page.fill("#f-family", family)
    page.get_by_role("button", name="Apply").click()
    families = page.locator("#table-detail tbody tr th").all_inner_texts()
    assert families and set(families) == {family}
    assert "family=" in page.url
    save_screenshot(page, "plan-detail", full_page=False)
    page.get_by_role("link", name="Next →").click()
    expect(page.locator(".pager")).to_contain_text("page 2 of")
    assert set(page.locator("#table-detail tbody tr th").all_inner_texts()) == {family}

    page.goto(f"{base}/mrp")
    expect(page.locator("table.mrp").first).to_contain_text("Planned releases")
    page.goto(f"{base}/capacity")
    expect(page.locator("#table-weekly tbody tr").first).to_be_visible()
    expect(page.locator("#chart-weekly canvas").first).to_be_visible()
    page.goto(f"{base}/reconciliation")
    expect(page.locator("#table-recon tbody tr").first).to_be_visible()
    page.check("#violations_only")
    page.get_by_role("button", name="Apply").click()
    assert "violations_only=1" in page.url
    expect(page.locator("#compare-csv")).to_have_attribute("href", re.compile(r"violations_only=true"))
    page.goto(f"{base}/reconciliation")
    page.fill("#f-family", "COFFEE")
    page.get_by_role("button", name="Apply").click()
    families = page.locator("#table-recon tbody th").all_inner_texts()
    assert families and set(families) == {"COFFEE"}
    expect(page.locator("nav.pager[aria-label='Reconciliation pages']")).to_contain_text(
        f"of {len(families)}"
    )
    page.goto(f"{base}/exceptions")
    expect(page.locator("#table-exceptions, .empty").first).to_be_visible()


def test_psi_edits_roll_up_to_the_family_total_and_locked_cells_keep_their_value(ui_hub, two_plans, browser_page, save_screenshot):  # fmt: skip
    page = browser_page
    page.goto(ui_hub.url(f"/ui/plans/{two_plans[0]}/psi"))
    months = page.locator("#psi-aggregate")  # months across, the selected month's column marked
    family_demand = months.locator("tr.demand td.selected input[name=value]")
    detail_total = months.locator("td.detail-demand.selected")
    cell = page.locator("#det-demand-1")
    start_total = int(family_demand.input_value())
    start_cell = int(cell.input_value())

    cell.fill(str(start_cell + 5))
    cell.press("Enter")
    expect(family_demand).to_have_value(str(start_total + 5))  # the detail edit rolled up
    expect(detail_total).to_have_text(f"{start_total + 5:,}")
    expect(page.locator("#psi-message")).to_contain_text("saved")

    page.click("#det-lock-1")
    expect(page.locator("#det-demand-1")).to_be_disabled()
    expect(page.locator("#det-lock-1")).to_have_text("Unlock")

    target = start_total + 40
    family_demand.fill(str(target))
    family_demand.press("Enter")
    expect(detail_total).to_have_text(f"{target:,}")  # apportioned over the unlocked cells
    expect(page.locator("#det-demand-1")).to_have_value(str(start_cell + 5))  # the locked cell kept its value
    cells = page.locator("#psi-detail input[name=value][id^=det-demand]")
    assert sum(int(v) for v in cells.evaluate_all("els => els.map(e => e.value)")) == target

    family_demand.fill("0")  # below what the locked cell holds: refused, and the error is shown
    family_demand.press("Enter")
    expect(page.locator("#psi-error")).to_contain_text("cannot be met")
    expect(detail_total).to_have_text(f"{target:,}")
    page.evaluate("document.querySelector('.approval').scrollIntoView()")  # the months table in view
    save_screenshot(page, "plan-psi", full_page=False)


def test_psi_submit_and_approve_are_recorded_with_actor_and_note(ui_hub, two_plans, browser_page):
    page = browser_page
    page.goto(ui_hub.url(f"/ui/plans/{two_plans[1]}/psi"))
    expect(page.locator("#psi-approval")).to_have_text("draft")
    page.fill("#submit-note", "ready for review")
    page.click("#psi-submit")
    expect(page.locator("#psi-approval")).to_have_text("pending")
    page.fill("#approve-note", "approved in S&OP meeting")
    page.click("#psi-approve")
    expect(page.locator("#psi-approval")).to_have_text("approved")
    newest = page.locator("#psi-history tbody tr").first
    expect(newest).to_contain_text("approve")
    expect(newest).to_contain_text("local")
    expect(newest).to_contain_text("approved in S&OP meeting")
    expect(page.locator("#psi-history tbody tr").nth(1)).to_contain_text("ready for review")


def test_compare_csv_and_diff_csv_download_with_their_headers_and_rows(ui_hub, two_plans, browser_page):
    page = browser_page
    base_id, other_id = two_plans
    page.goto(ui_hub.url(f"/ui/plans/{base_id}/reconciliation"))
    with page.expect_download() as download:
        page.click("#compare-csv")
    rows = _csv(Path(download.value.path()))
    assert rows[0] == COMPARE_HEADER
    assert len(rows) > 1 and rows[1][2] in ("demand", "supply", "backlog") and rows[1][7] in ("true", "false")
    assert _number(rows[1][5]) == _number(rows[1][4]) - _number(rows[1][3])  # delta = det - agg

    # the pre-building plan is compared with the previous plan of the same input set by default
    page.goto(ui_hub.url(f"/ui/plans/{other_id}/diff"))
    expect(page.locator("#against")).to_have_value(base_id)
    expect(page.locator(".hint").first).to_contain_text("previous plan of the same input set")
    expect(page.locator("#diff-kpis")).to_contain_text("inventory avg")
    page.select_option("#against", base_id)
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("#diff-kpis")).to_contain_text("inventory avg")
    # the changed cells come a page at a time after the KPI deltas, each page going on where the one
    # before ended (a cursor, no count of every change), in the order of the API's whole diff
    whole = httpx.get(ui_hub.url(f"/plans/{other_id}/diff"), params={"against": base_id, "limit": 700}, timeout=60).json()  # fmt: skip
    cells = [r for r in whole["rows"] if r["level"] != "kpis"]
    pager = page.locator("nav.pager[aria-label='Changed cell pages']")
    expect(pager).to_contain_text("page 1:")
    expect(pager.get_by_role("link", name="← First page")).to_have_count(0)
    first_page = page.locator("#diff-cells tbody tr").count()
    assert 0 < first_page < 230  # about 200; fewer when the page stopped looking (a loaded machine)
    expect(page.locator("#diff-cells tbody tr").first.locator("td").first).to_have_text(cells[0]["key"])
    pager.get_by_role("link", name="Next →").click()
    expect(pager).to_contain_text("page 2:")
    assert "after=" in page.url
    second = cells[first_page]
    row = page.locator("#diff-cells tbody tr").first
    expect(row.locator("td").nth(0)).to_have_text(second["key"])
    expect(row.locator("td").nth(1)).to_have_text(second["measure"])
    expect(page.locator("#diff-kpis")).to_contain_text("inventory avg")
    pager.get_by_role("link", name="← First page").click()
    expect(pager).to_contain_text("page 1:")
    # a cursor the page did not make is refused
    page.goto(ui_hub.url(f"/ui/plans/{other_id}/diff?against={base_id}&after=kpis:0:1"))
    expect(page.locator("body")).to_contain_text("cursor")
    page.goto(ui_hub.url(f"/ui/plans/{other_id}/diff?against={base_id}"))
    with page.expect_download() as download:
        page.click("#diff-csv")
    rows = _csv(Path(download.value.path()))
    assert rows[0] == DIFF_HEADER
    assert len(rows) > 1
    changed = next(r for r in rows[1:] if r[3] and r[4])
    assert changed[0] in ("aggregate", "sku_week", "plan_final", "kpis")
    assert _number(changed[5]) == pytest.approx(_number(changed[4]) - _number(changed[3]))


def test_switching_the_storage_mode_to_files_shows_the_banner_on_every_page(ui_hub, two_plans, browser_page, save_screenshot):  # fmt: skip
    page = browser_page
    page.goto(ui_hub.url("/ui/ops"))
    expect(page.locator("#banner-files")).to_have_count(0)
    page.check("#pin-files")
    page.click("#set-mode")
    expect(page.locator("#ops-message")).to_contain_text("pinned to files")
    expect(page.locator("#effective-mode")).to_have_text("files")
    expect(page.locator("#banner-files")).to_contain_text("Storage mode is files")
    page.click("#run-check")
    expect(page.locator("#last-check")).to_contain_text("OK")
    save_screenshot(page, "ops")

    page.goto(ui_hub.url(f"/ui/plans/{two_plans[0]}/aggregate"))
    expect(page.locator("#banner-files")).to_be_visible()
    expect(page.locator(".facts-line")).to_contain_text("read from artifacts")
    page.goto(ui_hub.url("/ui/plans"))
    expect(page.locator("#storage")).to_contain_text("files (pinned)")

    page.goto(ui_hub.url("/ui/ops"))
    page.check("#pin-none")
    page.click("#set-mode")
    expect(page.locator("#ops-message")).to_contain_text("pin cleared")
    expect(page.locator("#banner-files")).to_have_count(0)


def test_paused_intake_disables_the_form_and_a_submission_gets_the_503_message(ui_hub, browser_page):
    page = browser_page
    page.goto(ui_hub.url("/ui/ops"))
    page.click("#intake-pause")
    expect(page.locator("#intake-state")).to_have_text("paused")
    try:
        page.goto(ui_hub.url("/ui/plans"))
        expect(page.locator("#banner-intake")).to_be_visible()
        expect(page.locator("#intake-closed")).to_contain_text("paused")
        expect(page.get_by_role("button", name="Queue plan")).to_be_disabled()
        # A submission that gets past the disabled form anyway is refused by the server.
        page.evaluate("document.querySelector('#new-plan fieldset').disabled = false")
        page.get_by_role("button", name="Queue plan").click()
        expect(page.locator("#new-job")).to_contain_text("plan intake paused")
        expect(page.locator("#new-job [role=alert]")).to_contain_text("503")
    finally:
        page.goto(ui_hub.url("/ui/ops"))
        page.click("#intake-resume")
        expect(page.locator("#intake-state")).to_have_text("open")


def test_an_unknown_version_shows_the_404_page(ui_hub, browser_page):
    page = browser_page
    response = page.goto(ui_hub.url("/ui/plans/no-such-version"))
    assert response.status == 404
    expect(page.locator("h1")).to_contain_text("404")
    expect(page.locator("main")).to_contain_text("no-such-version")
    response = page.goto(ui_hub.url("/ui/plans/no-such-version/psi"))
    assert response.status == 404


# --- with API tokens ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_hub(tmp_path_factory):
    server = start_hub(
        tmp_path_factory.mktemp("ui-tokens"),
        {"SCPLN_API_TOKENS": "viewer-token-1-abcdef:viewer,admin-token-1-abcdefg:admin"},
    )
    try:
        yield server
    finally:
        server.stop()


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def test_with_tokens_the_ui_asks_for_one_once_and_a_viewer_cannot_change_anything(token_hub, browser_page):
    page = browser_page
    page.goto(token_hub.url("/ui/ops"))
    assert "/ui/login" in page.url
    page.fill("#token", "not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".login .error")).to_contain_text("not valid")
    page.fill("#token", "viewer-token-1-abcdef")
    page.get_by_role("button", name="Sign in").click()
    assert page.url.endswith("/ui/ops")
    expect(page.locator(".who")).to_contain_text("viewer")
    expect(page.locator("#set-mode")).to_be_disabled()
    cookie = next(c for c in page.context.cookies() if c["name"] == "scpln_ui")
    assert cookie["httpOnly"] and "viewer-token-1-abcdef" not in cookie["value"]
    page.goto(token_hub.url("/ui/plans"))
    expect(page.get_by_role("button", name="Queue plan")).to_be_disabled()
    # The same session may still not post an admin form, even with its own CSRF token.
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post(
        token_hub.url("/ui/ops/storage-mode"), form={"csrf_token": csrf, "mode": "files"}
    )
    assert answer.status == 403


def test_every_post_needs_the_sessions_csrf_token(token_hub):
    with httpx.Client(base_url=token_hub.base, timeout=30) as client:
        login = client.get("/ui/login")
        assert "HttpOnly" in login.headers["set-cookie"]
        refused = client.post("/ui/login", data={"token": "admin-token-1-abcdefg", "next": "/ui/ops"})
        assert refused.status_code == 403
        signed_in = client.post(
            "/ui/login",
            data={"token": "admin-token-1-abcdefg", "next": "/ui/ops", "csrf_token": _csrf(login.text)},
        )
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/ui/ops"
        ops = client.get("/ui/ops")
        assert ops.status_code == 200 and "signed in as <strong>admin</strong>" in ops.text
        assert client.post("/ui/ops/storage-mode", data={"mode": "files"}).status_code == 403
        stale = client.post("/ui/ops/storage-mode", data={"mode": "files", "csrf_token": _csrf(login.text)})
        assert stale.status_code == 403  # the token seen before signing in is void after it
        done = client.post("/ui/ops/storage-mode", data={"mode": "files", "csrf_token": _csrf(ops.text)})
        assert done.status_code == 303
        assert 'id="banner-files"' in client.get("/ui/plans").text
        assert (
            httpx.get(token_hub.url("/plans"), timeout=30).status_code == 401
        )  # the API still wants a bearer
