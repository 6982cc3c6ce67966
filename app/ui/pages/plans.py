"""The plan pages: the plan list with the new-plan form, and one plan's tabs (overview, aggregate,
detail, MRP, capacity, reconciliation, exceptions, PSI, diff) with their CSV downloads. Plan data comes
from the read model (``app.storage.views``); new plans are queued through the job service."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.errors import DiffConflict, PageNotFound
from app.planning.levels import compare_rows
from app.services import jobs
from app.services.plans import RunBody
from app.storage import diff as plan_diff
from app.storage import modes, views
from app.storage import settings as st
from app.storage.plans import PlanStore, VersionInfo
from app.ui.pages.jobs import job_fragment
from app.ui.pages.psi import psi_tab
from app.ui.render import Pager, csv_response, filter_value, page_number, page_router, read_form, render
from app.ui.session import CSRF_FIELD, User, checked, is_htmx, need

router = page_router()

TABS = ("overview", "aggregate", "detail", "mrp", "capacity", "reconciliation", "exceptions", "psi", "diff")
PLAN_STATUSES = ("running", "ready", "failed")
PLANS_PAGE = 20
TABLE_PAGE = 100
MRP_ITEMS_PER_PAGE = 5
DIFF_ROWS_SHOWN = 200
#: Rows of the level reconciliation per page.
RECON_PAGE = 300
KPI_CARDS = (
    "fill_rate", "supply_total", "demand_total", "backlog_total", "capacity_utilization_avg",
    "capacity_utilization_peak", "inventory_avg", "inventory_turns", "planned_orders", "past_due_releases",
    "exceptions",
)  # fmt: skip


def _new_plan_context(store: PlanStore) -> dict[str, Any]:
    from app.config import get_settings
    from app.ops.intake import intake_state

    return {
        "default_input": get_settings().scpln_input_dir,
        "intake": intake_state(store.engine),
        "pin": st.storage_pin(store.engine),
        "default_mode": modes.default_mode(),
    }


@router.get("/plans", response_class=HTMLResponse)
def plans_page(request: Request, status: str | None = None, page: str | None = None) -> Response:
    need(request)
    status = filter_value(status)
    if status is not None and status not in PLAN_STATUSES:
        raise ValueError(f"status must be one of {', '.join(PLAN_STATUSES)}")
    number = page_number(page)
    store = PlanStore()
    versions, total, kpis = views.plan_list(store, PLANS_PAGE, (number - 1) * PLANS_PAGE, status)
    plans = [{**v.as_dict(), "kpis": kpis.get(v.version_id)} for v in versions]
    pager = Pager(total, number, PLANS_PAGE, "/ui/plans", {"status": status})
    context = {"nav": "plans", "plans": plans, "pager": pager, "status": status,
               "statuses": PLAN_STATUSES, **_new_plan_context(store)}  # fmt: skip
    return render(request, "plans.html", context)


@router.post("/plans", response_class=HTMLResponse)
async def new_plan(request: Request) -> Response:
    """Queue a plan job from the new-plan form; answers with the job's live progress."""
    return await run_in_threadpool(_new_plan, request, await read_form(request))


def _new_plan(request: Request, form: dict[str, str]) -> Response:
    fields = {k: v.strip() for k, v in form.items()}
    checked(request, fields.pop(CSRF_FIELD, ""), "planner")
    storage = fields.pop("storage", "") or None
    plan = RunBody(**{k: v for k, v in fields.items() if v != ""}).plan_request()
    job = jobs.submit_plan(plan, storage, "ui")
    if is_htmx(request):
        return job_fragment(request, job["job_id"])
    return RedirectResponse(f"/ui/jobs/{quote(job['job_id'])}", status_code=303)


def _version(store: PlanStore, version_id: str) -> VersionInfo:
    return store.get_version(version_id)


@router.get("/plans/{version_id}/compare.csv")
def compare_download(request: Request, version_id: str, violations_only: bool = False) -> Response:
    """``compare.csv`` as the API serves it, behind the UI session (a link cannot send a bearer token)."""
    need(request)
    text = views.compare_text(PlanStore(), version_id, violations_only)
    return csv_response(text, f"{version_id}-compare.csv")


@router.get("/plans/{version_id}/diff.csv")
def diff_download(
    request: Request, version_id: str, against: str | None = None, across_inputs: bool = False
) -> Response:
    """``diff.csv`` as the API serves it, behind the UI session."""
    need(request)
    base_id, chunks = plan_diff.diff_csv_stream(PlanStore(), version_id, filter_value(against), across_inputs)
    headers = {"Content-Disposition": f'attachment; filename="{version_id}-diff-{base_id}.csv"'}
    return StreamingResponse(chunks, media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/plans/{version_id}/find")
def find_in_plan(request: Request, version_id: str, q: str = "") -> Response:
    """The search box: an item (finished good or component) opens its MRP record, a family its PSI
    grid; anything else comes back to the page it was asked from with a message."""
    need(request)
    store = PlanStore()
    info = _version(store, version_id)
    name, base = q.strip(), f"/ui/plans/{quote(info.version_id)}"
    if name and info.status == "ready":
        if views.read_page(store, info.version_id, "mrp", {"item": name}, 1, 0).total:
            return RedirectResponse(f"{base}/mrp?{urlencode({'item': name})}", status_code=303)
        if views.read_page(store, info.version_id, "aggregate", {"family": name}, 1, 0).total:
            return RedirectResponse(f"{base}/psi?{urlencode({'family': name})}", status_code=303)
    return RedirectResponse(f"{base}?{urlencode({'not_found': name})}", status_code=303)


@router.get("/plans/{version_id}/pegging", response_class=HTMLResponse)
def pegging_list(request: Request, version_id: str, item: str, start: str = "") -> Response:
    """Every finished good one exception of ``item`` (starting in ``start``) endangers, as the list
    its row on the exceptions tab shows once opened."""
    need(request)
    store = PlanStore()
    info = _version(store, version_id)
    found = [r for r in views.read_page(store, version_id, "exceptions", {"item": item}, 10_000, 0).rows
             if r.get("pegging") and (not start or r.get("start") == start)]  # fmt: skip
    if not found:
        raise PageNotFound(f"plan {version_id!r} has no exception of {item!r} that endangers finished goods")
    return render(request, "_pegging_list.html", {"plan": info, "pegging": found[0]["pegging"], "more": 0})


@router.get("/plans/{version_id}", response_class=HTMLResponse)
def plan_overview(request: Request, version_id: str) -> Response:
    return plan_tab(request, version_id, "overview")


@router.get("/plans/{version_id}/{tab}", response_class=HTMLResponse)
def plan_tab(request: Request, version_id: str, tab: str) -> Response:
    user = need(request)
    if tab not in TABS:
        raise PageNotFound(f"a plan has no {tab!r} page; its tabs are {', '.join(TABS)}")
    store = PlanStore()
    info = _version(store, version_id)
    context: dict[str, Any] = {
        "nav": "plans",
        "plan": info,
        "tab": tab,
        "tabs": TABS,
        "csv_base": _csv_base(user),
        "not_found": request.query_params.get("not_found"),
    }
    if info.status == "ready":
        context.update(TAB_VIEWS[tab](request, store, info))
    return render(request, "plan.html", context)


def _csv_base(user: User) -> str:
    """Where CSV download links point: the API's routes when a plain link reaches them (no tokens), the
    UI's session-checked copies otherwise."""
    return "/ui" if user.tokens_required else ""


def _page(store: PlanStore, info: VersionInfo, table: str, filters: dict[str, str | None], number: int, size: int) -> views.Page:  # fmt: skip
    return views.read_page(store, info.version_id, table, filters, size, (number - 1) * size)


def _all(store: PlanStore, info: VersionInfo, table: str, filters: dict[str, str | None] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    return views.read_page(store, info.version_id, table, filters or {}, 5000, 0).rows


def _overview(request: Request, store: PlanStore, info: VersionInfo) -> dict[str, Any]:
    kpis = {r["metric"]: r for r in _all(store, info, "kpis", {"period": "total"})}
    cards = [kpis[m] for m in KPI_CARDS if m in kpis]
    by_month: dict[str, dict[str, float]] = {}
    for row in _all(store, info, "aggregate"):
        month = by_month.setdefault(row["period"], {"demand": 0, "supply": 0, "inventory": 0, "backlog": 0})
        month["demand"] += row["demand"]
        month["supply"] += row["supply"]
        month["inventory"] += row["inventory_close"]
        month["backlog"] += row["backlog"]
    months = sorted(by_month)
    monthly = _chart_data(
        months, {k: [by_month[m][k] for m in months] for k in ("demand", "supply", "inventory", "backlog")}
    )
    return {"cards": cards, "monthly": monthly, "weekly": _weekly_chart(_all(store, info, "weekly"))}


def _chart_data(labels: list[str], series: dict[str, list[Any]]) -> dict[str, Any]:
    """What a chart box draws: x labels and named series, in order (JSON objects would sort them)."""
    return {"labels": labels, "series": [{"name": name, "values": values} for name, values in series.items()]}


def _weekly_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return _chart_data([r["week"] for r in rows], {
        "capacity": [r["capacity"] for r in rows], "original load": [r["original_load"] for r in rows],
        "adjusted load": [r["adjusted_load"] for r in rows],
    })  # fmt: skip


def _table_tab(table: str, filter_names: tuple[str, ...], size: int = TABLE_PAGE):
    def view(request: Request, store: PlanStore, info: VersionInfo) -> dict[str, Any]:
        q = request.query_params
        filters = {name: filter_value(q.get(name)) for name in filter_names}
        number = page_number(q.get("page"))
        page = _page(store, info, table, filters, number, size)
        base = f"/ui/plans/{quote(info.version_id)}/{table if table != 'weekly' else 'capacity'}"
        pager = Pager(page.total, number, size, base, filters)
        spec = views.TABLES[table]
        columns = list(spec.columns + spec.csv_extras)
        return {"page": page, "pager": pager, "filters": filters, "columns": columns, "source": page.source}

    return view


_aggregate = _table_tab("aggregate", ("family", "period"))
_detail = _table_tab("detail", ("family", "sku", "period"))
_exception_table = _table_tab("exceptions", ("family", "item"))
#: Endangered finished goods listed in an exception's row; opening the row fetches the rest.
PEGGING_SHOWN = 8


def _exceptions(request: Request, store: PlanStore, info: VersionInfo) -> dict[str, Any]:
    return {**_exception_table(request, store, info), "pegging_shown": PEGGING_SHOWN}


def _capacity(request: Request, store: PlanStore, info: VersionInfo) -> dict[str, Any]:
    rows = _all(store, info, "weekly")
    return {"rows": rows, "weekly": _weekly_chart(rows), "columns": list(views.TABLES["weekly"].columns)}


MRP_MEASURES = (
    ("gross_req", "Gross requirements"), ("scheduled_receipts", "Scheduled receipts"),
    ("on_hand_start", "On hand (start)"), ("net_req", "Net requirements"),
    ("planned_order_receipt", "Planned receipts"), ("planned_order_release", "Planned releases"),
    ("planned_order_receipt_adj", "Planned receipts (capacity-adjusted)"),
    ("planned_order_release_adj", "Planned releases (capacity-adjusted)"),
    ("on_hand_end_adj", "On hand (end, adjusted)"),
)  # fmt: skip


def _mrp(request: Request, store: PlanStore, info: VersionInfo) -> dict[str, Any]:
    """Time-phased records after capacity reconciliation, a few items per page. Rows come item by item,
    week by week, so a page of ``items x weeks`` rows is one range read."""
    q = request.query_params
    item = filter_value(q.get("item"))
    number = page_number(q.get("page"))
    weeks = max(1, views.read_page(store, info.version_id, "weekly", {}, 1, 0).total)
    size = weeks * (1 if item else MRP_ITEMS_PER_PAGE)
    page = _page(store, info, "final", {"item": item}, number, size)
    records: dict[str, list[dict[str, Any]]] = {}
    for row in page.rows:
        records.setdefault(row["item"], []).append(row)
    items = [
        {"item": name, "weeks": [r["week"] for r in rows], "lt_weeks": rows[0]["lt_weeks"], "lot": rows[0]["lot"],
         "moq": rows[0]["moq"], "safety_stock": rows[0]["safety_stock"],
         "measures": [(label, [r[key] for r in rows]) for key, label in MRP_MEASURES],
         "past_due": [bool(r["past_due"] or r["past_due_adj"]) for r in rows]}
        for name, rows in records.items()
    ]  # fmt: skip
    pager = Pager(page.total, number, size, f"/ui/plans/{quote(info.version_id)}/mrp", {"item": item})
    return {"items": items, "pager": pager, "filters": {"item": item}, "source": page.source,
            "items_total": math.ceil(page.total / weeks)}  # fmt: skip


def _reconciliation(request: Request, store: PlanStore, info: VersionInfo) -> dict[str, Any]:
    violations_only = request.query_params.get("violations_only") in ("1", "true", "on")
    source = views.read_source(store, info)
    recon = views.read_all(store, info, views.RECON, source)
    family = filter_value(request.query_params.get("family"))
    levels = [r["severity"] for r in compare_rows({"rows": recon})]
    rows = [r for r in compare_rows({"rows": recon}, violations_only) if not family or r["family"] == family]
    pager = Pager(len(rows), min(page_number(request.query_params.get("page")), max(1, math.ceil(len(rows) / RECON_PAGE))),
                  RECON_PAGE, f"/ui/plans/{quote(info.version_id)}/reconciliation",
                  {"violations_only": "1" if violations_only else None, "family": family})  # fmt: skip
    return {"rows": rows[pager.offset : pager.offset + RECON_PAGE], "pager": pager, "family": family,
            "violations_only": violations_only, "violations": levels.count("violation"), "info": levels.count("info"),
            "tolerance": info.params.get("tol_abs"), "tolerance_rel": info.params.get("tol_rel")}  # fmt: skip


def _diff(request: Request, store: PlanStore, info: VersionInfo) -> dict[str, Any]:
    """KPI deltas, then one page of changed cells. The page is a cursor into the diff's walk (``after``);
    ``page`` only numbers it. Nothing counts the changes before the first page is shown."""
    q = request.query_params
    against = filter_value(q.get("against"))
    across = q.get("across_inputs") in ("1", "true", "on")
    after = filter_value(q.get("after"))
    cursor = plan_diff.Cursor.parse(after) if after else None
    number = page_number(q.get("page")) if cursor else 1
    candidates, _ = store.list_versions(limit=200, status="ready")
    options = [v for v in candidates if v.version_id != info.version_id]
    context: dict[str, Any] = {"against": against, "options": options, "diff": None, "across": across}
    if not options:
        return context
    try:
        found = plan_diff.diff_page(
            store, info.version_id, against, across, after=cursor, limit=DIFF_ROWS_SHOWN
        )
    except DiffConflict as exc:
        context["conflict"] = exc.message
        context["needs_confirm"] = "against_input_label" in (
            exc.detail if isinstance(exc.detail, dict) else {}
        )
        return context
    context["against"] = found.against
    link = f"/ui/plans/{quote(info.version_id)}/diff?"
    same = {"against": found.against, **({"across_inputs": "1"} if across else {})}
    next_url = None
    if found.next is not None:
        next_url = link + urlencode({**same, "after": found.next.text(), "page": number + 1})
    context["diff"] = {
        "reason": found.base_reason,
        "kpis": [r for r in found.kpis if r["key"].endswith("|total|total")],
        "kpis_changed": len(found.kpis),
        "cells": found.cells,
        "page": number,
        "size": DIFF_ROWS_SHOWN,
        "first_url": link + urlencode(same) if cursor else None,
        "next_url": next_url,
        "short": next_url is not None and len(found.cells) < DIFF_ROWS_SHOWN,
        "looked": found.looked,
    }
    return context


TAB_VIEWS = {
    "overview": _overview, "aggregate": _aggregate, "detail": _detail, "mrp": _mrp, "capacity": _capacity,
    "reconciliation": _reconciliation, "exceptions": _exceptions, "psi": psi_tab, "diff": _diff,
}  # fmt: skip
