"""The PSI tab of a plan: the editable grid of one family's months and one month's SKU x week cells,
locks, submit and approve, the history, and the PSI cells as CSV."""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool

from app.errors import PageNotFound, ScplnError, outcome
from app.planning import psi as psi_rules
from app.planning.calendar import week_share
from app.planning.psi import KEY_FIELDS
from app.services import psi
from app.storage import views
from app.storage.plans import PlanStore, VersionInfo
from app.ui.render import (
    Pager,
    csv_response,
    detail_list,
    filter_value,
    page_number,
    page_router,
    qty,
    read_form,
    render,
)
from app.ui.session import CSRF_FIELD, checked, current_user, is_htmx, need

router = page_router()

#: Cells per page of the list of one month's cells with their locks (the grid is where cells are typed).
PSI_DETAIL_PAGE = 25
#: SKUs per page of the PSI grid.
PSI_GRID_SKUS = 10


@router.get("/plans/{version_id}/psi.csv")
def psi_download(request: Request, version_id: str, level: str = "aggregate") -> Response:
    """The PSI cells as CSV, as the API serves them, behind the UI session."""
    need(request)
    return csv_response(psi.psi_csv(version_id, level), f"{version_id}-psi-{level}.csv")


def psi_tab(request: Request, store: PlanStore, info: VersionInfo) -> dict[str, Any]:
    q = request.query_params
    view = {"family": filter_value(q.get("family")), "period": filter_value(q.get("period")), "sku": filter_value(q.get("sku")),
            "dpage": page_number(q.get("dpage")), "gpage": page_number(q.get("gpage")), "gshow": q.get("gshow")}  # fmt: skip
    return psi_context(info.version_id, view, q.get("msg"), can_edit=current_user(request).can("planner"))


def psi_context(version_id: str, view: dict[str, Any], message: str | None = None,
                error: dict[str, Any] | None = None, can_edit: bool = False) -> dict[str, Any]:  # fmt: skip
    """The PSI panel: one family's months, one month's SKU x week cells (a page of them, optionally
    one SKU), and the history. ``can_edit``: the user may edit (a planner); the grid's inputs are
    read-only otherwise, and on an approved plan."""
    family, period, sku, dpage = (
        view.get("family"),
        view.get("period"),
        view.get("sku"),
        view.get("dpage") or 1,
    )

    reader = psi.PsiReader.of_family(version_id, family)
    families, family = reader.families, reader.family
    everything = reader.view("aggregate", {}, 5000, 0)
    agg_rows = everything["rows"]
    periods = [r["period"] for r in agg_rows]
    period = period if period in periods else (periods[0] if periods else None)
    det_filters = {"family": family, "period": period, "sku": sku}
    offset = (dpage - 1) * PSI_DETAIL_PAGE
    det = reader.view("det", det_filters, PSI_DETAIL_PAGE, offset) if family else None
    pager = Pager(det["total"] if det else 0, dpage, PSI_DETAIL_PAGE, f"/ui/plans/{quote(version_id)}/psi",
                  {"family": family, "period": period, "sku": sku}, "dpage")  # fmt: skip
    history = reader.events()
    gpage = view.get("gpage") or 1
    show = view.get("gshow") if view.get("gshow") in GRID_SHOW else "all"
    editable = can_edit and everything["approval"] != "approved"
    grid = _grid(reader, family, gpage, show, editable) if family else None
    return {"psi": {"approval": everything["approval"], "mode": everything["mode"], "families": families,
                    "family": family, "period": period, "sku": sku, "dpage": dpage, "gpage": gpage,
                    "agg_rows": agg_rows, "det_rows": det["rows"] if det else [], "det_pager": pager,
                    "grid": grid, "events": list(reversed(history))[:100], "events_total": len(history),
                    "message": message, "error": error}}  # fmt: skip


#: What the grid's SKUs can be narrowed to: every SKU, those with an exception, those whose projected
#: inventory falls below safety stock somewhere in the horizon.
GRID_SHOW = {"all": "every SKU", "exception": "has an exception", "below": "below safety stock"}


def _grid(reader: psi.PsiReader, family: str, gpage: int, show: str = "all", editable: bool = False) -> dict[str, Any]:  # fmt: skip
    """One family's SKU x week grid, a page of SKUs (of those ``show`` keeps): each SKU's demand and
    supply per bucket (the PSI values, edits applied), its opening stock, safety stock and open orders
    by bucket from its MRP record (so the page can project inventory and weeks of cover as cells are
    typed), and the family's totals per bucket over all its SKUs."""
    version_id = reader.version_id
    store = PlanStore()
    sheet = reader.family_sheet(family)
    buckets = sheet.buckets
    # an open order counts in the first bucket of its week (a week split across two months has two)
    first: dict[str, int] = {}
    for i, (week, _period) in enumerate(buckets):
        first.setdefault(week, i)

    def stock(record: list[dict[str, Any]]) -> dict[str, Any]:
        receipts = {r["week"]: r["scheduled_receipts"] for r in record}
        return {"opening": record[0]["on_hand_start"] if record else 0,
                "safety": record[0]["safety_stock"] if record else 0,
                "receipts": [receipts.get(w, 0) if first[w] == i else 0 for i, (w, _p) in enumerate(buckets)]}  # fmt: skip

    skus, records = sheet.skus, {}
    if show == "exception":
        found = views.items_with_exceptions(store, version_id, skus)
        skus = [s for s in skus if s in found]
    elif show == "below":
        records = views.item_records(store, version_id, skus)
        skus = [
            s for s in skus
            if (k := stock(records[s])) and psi_rules.below_safety(psi_rules.projected_inventory(
                k["opening"], k["receipts"], sheet.values[s]["demand"], sheet.values[s]["supply"]), k["safety"])
        ]  # fmt: skip
    pager = Pager(len(skus), gpage, PSI_GRID_SKUS, f"/ui/plans/{quote(version_id)}/psi",
                  {"family": family, "gshow": show if show != "all" else None}, "gpage")  # fmt: skip
    shown = skus[pager.offset : pager.offset + PSI_GRID_SKUS]
    missing = [s for s in shown if s not in records]
    if missing:
        records.update(views.item_records(store, version_id, missing))
    rows = []
    for s in shown:
        backlog = sheet.values[s]["backlog"]
        rows.append({"sku": s, "cells": sheet.cells(s), "backlog": backlog, "has_backlog": any(backlog),
                     **stock(records[s])})  # fmt: skip
    for n, row in enumerate(rows):
        row["html"] = _sku_block(row, 2 * n, editable)
    parts = Counter(week for week, _ in buckets)
    # weeks of cover count a split week's bucket as the share of the week it holds
    # (a week whose code is not an ISO week splits evenly)
    shares = [1.0 if parts[w] == 1 else week_share(w, p) or 1 / parts[w] for w, p in buckets]
    return {"buckets": [{"week": w, "period": p, "split": parts[w] > 1} for w, p in buckets],
            "shares": [round(x, 4) for x in shares], "columns": buckets, "show": show, "shows": GRID_SHOW,
            "rows": rows, "totals": sheet.totals, "pager": pager}  # fmt: skip


def _sku_block(row: dict[str, Any], first_row: int, editable: bool) -> Markup:
    """One SKU's rows of the grid (demand and supply inputs, the inventory and cover rows the page
    fills in, backlog where there is any) as HTML. A page holds over a thousand inputs: made here in
    one pass instead of through the template, which spends several times as long per input."""
    sku = escape(row["sku"])
    out = [
        f'<tbody class="sku" data-sku="{sku}" data-opening="{escape(row["opening"])}" '
        f'data-safety="{escape(row["safety"])}" data-receipts="{escape(json.dumps(row["receipts"]))}">'
    ]
    cells = row["cells"]
    columns = [escape(f"{c['week']} {c['period']}") if c else "" for c in cells]
    for r, field in enumerate(("demand", "supply"), start=first_row):
        head = (
            f'<th scope="row" rowspan="{5 if row["has_backlog"] else 4}">{sku}</th>' if r == first_row else ""
        )
        out.append(f'<tr class="{field}">{head}<td>{field.capitalize()}</td>')
        for c, cell in enumerate(cells):
            if cell is None:
                out.append("<td></td>")
                continue
            locked = cell["locked"] or cell["family_locked"]
            edited = " edited" if field in cell["overridden"] else ""
            flags = (' data-locked="1"' if locked else "") + (" readonly" if locked or not editable else "")
            # the value is a number (nothing to escape); the week and period are the column's
            out.append(
                f'<td><input class="g{edited}" aria-label="{field} {sku} {columns[c]}" data-r="{r}" '
                f'data-c="{c}" value="{cell[field]}" inputmode="decimal"{flags}></td>'
            )
        out.append("</tr>")
    for kind, name in (("inv", "inventory"), ("cov", "cover")):  # filled in by the page's script
        empty = "".join(f'<td class="n {kind}" data-c="{c}"></td>' for c in range(len(cells)))
        out.append(
            f'<tr class="{name}"><td>{"Inventory" if kind == "inv" else "Cover (wk)"}</td>{empty}</tr>'
        )
    if row["has_backlog"]:
        backlog = "".join(f'<td class="n">{escape(qty(v)) if v else ""}</td>' for v in row["backlog"])
        out.append(f'<tr class="backlog"><td>Backlog</td>{backlog}</tr>')
    out.append("</tbody>")
    return Markup("".join(out))


def _psi_key(form: dict[str, str], level: str) -> dict[str, str]:
    if level not in KEY_FIELDS:
        raise ValueError("level must be aggregate or det")
    return {name: form.get(name, "") for name in KEY_FIELDS[level]}


def _number(text: str) -> int | float:
    text = text.strip().replace(",", "")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _psi_action(request: Request, version_id: str, action: str, form: dict[str, str]) -> Response:
    role = "approver" if action == "approve" else "planner"
    user = checked(request, form.get(CSRF_FIELD, ""), role)
    view = {"family": form.get("view_family") or None, "period": form.get("view_period") or None,
            "sku": form.get("view_sku") or None, "dpage": page_number(form.get("view_dpage")),
            "gpage": page_number(form.get("view_gpage")), "gshow": form.get("view_gshow") or None}  # fmt: skip
    note = form.get("note", "").strip() or None
    level = form.get("level", "aggregate")

    reopened: list[str] = []

    def run() -> str:
        if action == "grid":
            edits = _grid_edits(form.get("edits", ""))
            result = psi.apply_edits(version_id, "det", edits, note=note, actor=user.actor)
            return f"saved {len(edits)} cell(s): {len(result['changes'])} cell(s) changed"
        if action == "reopen":
            reopened.append(psi.reopen(version_id, user.actor, note))
            return f"reopened as draft {reopened[0]}"
        if action == "edit":
            key = _psi_key(form, level)
            edit = {"key": key, "field": form.get("field", ""), "value": _number(form.get("value", ""))}
            result = psi.apply_edits(version_id, level, [edit], note=note, actor=user.actor)
            return f"saved: {len(result['changes'])} cell(s) changed"
        if action in ("lock", "unlock"):
            key = _psi_key(form, level)
            kwargs = {"lock": [key]} if action == "lock" else {"unlock": [key]}
            psi.apply_edits(version_id, level, note=note, actor=user.actor, **kwargs)
            return f"{action}ed {' '.join(key.values())}"
        if action == "submit":
            psi.submit(version_id, user.actor, note)
            return "submitted for approval"
        psi.approve(version_id, user.actor, note)
        return "approved"

    error = None
    status = 200
    try:
        message = run()
        if reopened:  # the draft is a new version: go to its grid
            target = f"/ui/plans/{quote(reopened[0])}/psi"
            if is_htmx(request):
                return Response(status_code=200, headers={"HX-Redirect": target})
            return RedirectResponse(target, status_code=303)
    except (ScplnError, ValueError) as exc:
        if not is_htmx(request):
            raise
        message = None
        status = outcome(exc).status
        problems = detail_list(getattr(exc, "detail", None))
        error = {"message": getattr(exc, "message", str(exc)), "problems": problems or []}
    if not is_htmx(request):
        query = urlencode({k: v for k, v in {**view, "msg": message}.items() if v and v != 1})
        return RedirectResponse(f"/ui/plans/{quote(version_id)}/psi?{query}", status_code=303)
    context = psi_context(version_id, view, message, error, can_edit=user.can("planner"))
    info = PlanStore().get_version(version_id)
    return render(request, "_psi_panel.html", {"plan": info, **context}, status)


def _grid_edits(text: str) -> list[dict[str, Any]]:
    """The grid's changed cells, sent as JSON ``[{sku, week, period, field, value}]``, as PSI edits."""
    try:
        cells = json.loads(text or "[]")
    except ValueError:
        raise ValueError("the grid's edits are not readable; reload the page") from None
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise ValueError("the grid's edits are not readable; reload the page")
    return [
        {"key": {k: str(c.get(k, "")) for k in KEY_FIELDS["det"]}, "field": c.get("field"),
         "value": _number(str(c.get("value", "")))}
        for c in cells
    ]  # fmt: skip


@router.post("/plans/{version_id}/psi/{action}", response_class=HTMLResponse)
async def psi_post(request: Request, version_id: str, action: str) -> Response:
    if action not in ("edit", "lock", "unlock", "submit", "approve", "grid", "reopen"):
        raise PageNotFound(f"unknown PSI action {action!r}")
    return await run_in_threadpool(_psi_action, request, version_id, action, await read_form(request))
