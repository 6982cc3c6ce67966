"""How the UI answers: templates and their formatting filters, the banners every page shows, the
pager, error pages, and the route class that turns any failure into a page.

Statuses come from the one error table (``app.errors.OUTCOMES``); a missing session redirects to the
login page, and a new session's cookie is set on the way out. Holds no page of its own.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from app.errors import IntakePaused, ScplnError, outcome
from app.planning.model import InputError
from app.storage import settings as st
from app.storage.plans import PlanStore
from app.ui.session import CSRF_FIELD, LoginRequired, current_user, is_htmx, store_session, ui_store

log = logging.getLogger("scpln.ui")

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))
TAB_TITLES = {"mrp": "MRP", "psi": "PSI"}


class UiRoute(APIRoute):
    """Routes whose failures are pages, not JSON: domain errors render the error page with their status,
    a missing session redirects to the login page, and a new session's cookie is set on the way out."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                response = RedirectResponse(f"/ui/login?next={quote(target)}", status_code=303)
            except IntakePaused as exc:
                response = error_page(request, outcome(exc).status, "plan intake paused", exc.message)
            except ScplnError as exc:
                status = outcome(exc).status
                response = error_page(request, status, exc.title, exc.message, detail_list(exc.detail))
            except InputError as exc:
                response = error_page(request, outcome(exc).status, "invalid input", str(exc), exc.as_dicts())
            except (RequestValidationError, ValidationError) as exc:
                problems = [
                    {"field": ".".join(str(p) for p in e.get("loc", ())), "reason": e.get("msg")}
                    for e in exc.errors()
                ]
                response = error_page(request, 422, "invalid request", "the request is not valid", problems)
            except ValueError as exc:
                response = error_page(request, outcome(exc).status, "invalid request", str(exc))
            except Exception:
                log.exception("UI page %s failed", request.url.path)
                response = error_page(
                    request, 500, "internal error", "something went wrong; see the server log"
                )
            store_session(request, response)
            return response

        return guarded


def detail_list(detail: Any) -> list[Any] | None:
    if isinstance(detail, list):
        return detail
    if isinstance(detail, dict):
        return [detail]
    return None


def page_router() -> APIRouter:
    """A router for UI pages: failures render as pages, and no page shows in the OpenAPI document."""
    return APIRouter(route_class=UiRoute, include_in_schema=False)


async def read_form(request: Request) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def csv_response(text: str, filename: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return PlainTextResponse(text, media_type="text/csv; charset=utf-8", headers=headers)


def _banners(store: PlanStore) -> list[dict[str, str]]:
    """Warnings every page shows: files storage mode, intake paused, maintenance."""
    out = []
    pin = st.storage_pin(store.engine)
    mode = st.effective_mode(store.engine)
    if mode == "files":
        how = "pinned by the operator" if pin else "the configured default"
        out.append({"kind": "warn", "id": "banner-files",
                    "text": f"Storage mode is files ({how}): plans are stored as artifacts only; "
                            "PlanRepository tables are neither written nor read."})  # fmt: skip
    if not st.intake_open(store.engine):
        out.append({"kind": "warn", "id": "banner-intake",
                    "text": "Plan intake is paused: new plans are refused until an operator resumes intake."})  # fmt: skip
    if st.maintenance_on(store.engine):
        out.append({"kind": "warn", "id": "banner-maintenance",
                    "text": "Maintenance is on: a rollback or roll-forward may be in progress."})  # fmt: skip
    return out


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    user = current_user(request)
    store = ui_store()
    base = {
        "user": user,
        "csrf": user.csrf,
        "csrf_field": CSRF_FIELD,
        "banners": _banners(store),
        "mode": st.effective_mode(store.engine),
        "nav": context.get("nav", ""),
    }
    return templates.TemplateResponse(request, template, {**base, **context}, status_code=status)


def error_page(
    request: Request, status: int, title: str, message: str, problems: list[Any] | None = None
) -> HTMLResponse:
    try:
        template = "_error.html" if is_htmx(request) else "error.html"
        context = {"status": status, "title": title, "message": message, "problems": problems or []}
        return render(request, template, context, status)
    except Exception:  # the database itself may be what failed: still answer with a page
        log.exception("rendering the error page failed")
        body = f"<!doctype html><title>{status} {title}</title><h1>{status} {title}</h1><p>{message}</p>"
        return HTMLResponse(body, status_code=status)


def _ts(value: Any) -> str:
    if not value:
        return "—"
    return dt.datetime.fromtimestamp(int(value) / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _num(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return f"{int(value):,}"
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return str(value)


def qty(value: Any) -> str:
    """A quantity for people: a whole number with thousands separators ("12,345"); "—" for none."""
    if value is None or value == "" or isinstance(value, bool) or not isinstance(value, (int, float)):
        return _num(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{round(value) + 0:,}"  # + 0 turns a rounded -0 into 0


def _pct(value: Any) -> str:
    """A ratio as a percentage with one decimal ("97.5 %"); "—" for none."""
    if value is None or value == "" or isinstance(value, bool) or not isinstance(value, (int, float)):
        return _num(value)
    return f"{float(value) * 100:,.1f} %"


def _size(value: Any) -> str:
    """A byte count for people: "812 KB", "6.4 GB"."""
    if not isinstance(value, int) or isinstance(value, bool):
        return _num(value)
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if value >= scale:
            return f"{value / scale:,.1f} {unit}" if value < 100 * scale else f"{value / scale:,.0f} {unit}"
    return f"{value} B"


def _kpi(value: Any, unit: str | None) -> str:
    if value is None:
        return "—"
    if unit == "ratio":
        return _pct(value)
    return _num(value)


def _duration(run: Any) -> str:
    """How long a run (or job) took, from its start to its end: "1 min 04 s", "3.2 s"; "—" while it runs."""
    start = run.get("started_at") or run.get("created_at")
    end = run.get("finished_at")
    if not start or not end:
        return "—"
    seconds = max(0.0, (int(end) - int(start)) / 1000)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


templates.env.filters["ts"] = _ts
templates.env.filters["duration"] = _duration
templates.env.filters["num"] = _num
templates.env.filters["kpi"] = _kpi
templates.env.filters["qty"] = qty
templates.env.filters["pct"] = _pct
templates.env.filters["size"] = _size
templates.env.globals["tab_title"] = lambda t: TAB_TITLES.get(t, t.capitalize())


@dataclass
class Pager:
    total: int
    page: int
    size: int
    base: str
    params: dict[str, Any]
    param: str = "page"

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    def url(self, page: int) -> str:
        query = {k: v for k, v in self.params.items() if v not in (None, "")}
        query[self.param] = page
        return f"{self.base}?{urlencode(query)}"

    @property
    def first(self) -> int:
        return min(self.total, self.offset + 1)

    @property
    def last(self) -> int:
        return min(self.total, self.offset + self.size)


def page_number(value: str | None) -> int:
    try:
        return max(1, min(int(value or 1), 10**7))
    except ValueError:
        raise ValueError(f"page must be a whole number, not {value!r}") from None


def filter_value(value: str | None) -> str | None:
    value = (value or "").strip()
    if len(value) > 200:
        raise ValueError("a filter is at most 200 characters")
    return value or None
