"""The Planning Hub web UI (SPEC 5.4): server-rendered pages under ``/ui``, static files under
``/ui/static`` (vendored htmx and uPlot, no build step).

Owns the pages and what they show; every view parses its input, calls one service function (the plan
store and ``app.api.tables`` for plan tables, ``app.jobs.service``, ``app.storage.overrides``,
``app.ops``, ``app.storage.settings``) and renders a template. It calls those functions in-process,
never the HTTP API over the network, and holds no planning or storage rule of its own.

Also owns the UI's session (SPEC 5.3): with API tokens configured the login page asks for a token once
and keeps the token's hash in a signed, HttpOnly cookie (itsdangerous; the key is ``SCPLN_SECRET_KEY``
or one generated and kept in ``app_settings``); the role is looked up again on every request, so a
revoked token ends its sessions. Without tokens everyone is admin (local use). Every form carries a
CSRF token bound to the session, checked on every POST.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import ValidationError
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from app.api import tables
from app.api.schemas import RunBody
from app.errors import IntakePaused, ScplnError
from app.planning.levels import compare_rows
from app.planning.model import InputError
from app.storage import settings as st
from app.storage import tokens
from app.storage.plans import PlanStore, VersionInfo

log = logging.getLogger("scpln.ui")

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))

COOKIE = "scpln_ui"
SESSION_SECONDS = 12 * 3600
SECRET_ENV = "SCPLN_SECRET_KEY"
SECRET_SETTING = "ui_secret_key"
CSRF_FIELD = "csrf_token"

TABS = ("overview", "aggregate", "detail", "mrp", "capacity", "reconciliation", "exceptions", "psi", "diff")
TAB_TITLES = {"mrp": "MRP", "psi": "PSI"}
PLAN_STATUSES = ("running", "ready", "failed")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "canceled")
PLANS_PAGE = 20
TABLE_PAGE = 100
MRP_ITEMS_PER_PAGE = 5
JOBS_PAGE = 25
RUNS_PAGE = 25
DIFF_ROWS_SHOWN = 200
PSI_DETAIL_PAGE = 100
KPI_CARDS = (
    "fill_rate", "supply_total", "demand_total", "backlog_total", "capacity_utilization_avg",
    "capacity_utilization_peak", "inventory_avg", "inventory_turns", "planned_orders", "past_due_releases",
    "exceptions",
)  # fmt: skip


# --- errors the pages answer with ----------------------------------------------------------------


class LoginRequired(Exception):
    """Tokens are configured and the session holds none (or a revoked one)."""


class Forbidden(ScplnError):
    status = 403
    title = "forbidden"


class PageNotFound(ScplnError):
    status = 404
    title = "not found"


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
                response = error_page(request, 503, "plan intake paused", exc.message)
            except ScplnError as exc:
                response = error_page(request, exc.status, exc.title, exc.message, _detail_list(exc.detail))
            except InputError as exc:
                response = error_page(request, 422, "invalid input", str(exc), exc.as_dicts())
            except (RequestValidationError, ValidationError) as exc:
                problems = [
                    {"field": ".".join(str(p) for p in e.get("loc", ())), "reason": e.get("msg")}
                    for e in exc.errors()
                ]
                response = error_page(request, 422, "invalid request", "the request is not valid", problems)
            except ValueError as exc:
                response = error_page(request, 422, "invalid request", str(exc))
            except Exception:
                log.exception("UI page %s failed", request.url.path)
                response = error_page(
                    request, 500, "internal error", "something went wrong; see the server log"
                )
            _store_session(request, response)
            return response

        return guarded


def _detail_list(detail: Any) -> list[Any] | None:
    if isinstance(detail, list):
        return detail
    if isinstance(detail, dict):
        return [detail]
    return None


router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)


def install_ui(app: FastAPI) -> None:
    """Serve the UI on ``app``: static files at ``/ui/static`` and the pages under ``/ui``."""
    app.mount("/ui/static", StaticFiles(directory=str(STATIC_DIR)), name="ui-static")
    app.include_router(router)


# --- session, roles, CSRF --------------------------------------------------------------------------


@dataclass
class User:
    role: str | None
    tokens_required: bool
    csrf: str
    token_hash: str | None

    def can(self, role: str) -> bool:
        return self.role is not None and tokens.role_allows(self.role, role)

    @property
    def actor(self) -> str:
        return f"ui:{self.role}" if self.tokens_required else "local"


def _engine() -> Engine:
    return PlanStore().engine


def _secret(engine: Engine) -> str:
    """The signing key: ``SCPLN_SECRET_KEY``, else one generated once and kept in ``app_settings``."""
    configured = os.environ.get(SECRET_ENV, "").strip()
    if configured:
        return configured
    stored = st.get_value(engine, SECRET_SETTING)
    if stored:
        return stored
    st.set_value(engine, SECRET_SETTING, secrets.token_urlsafe(32))
    return st.get_value(engine, SECRET_SETTING) or ""


def _serializer(engine: Engine) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_secret(engine), salt="scpln-ui-session")


def _role_of_hash(engine: Engine, token_hash: str) -> str | None:
    for known, role in tokens.env_tokens().items():
        if hmac.compare_digest(known, token_hash):
            return role
    for info in tokens.list_tokens(engine):
        if hmac.compare_digest(info.token_hash, token_hash):
            return info.role
    return None


def current_user(request: Request) -> User:
    """The session's user, read once per request: its role (admin without tokens) and CSRF token."""
    found = getattr(request.state, "ui_user", None)
    if found is not None:
        return found
    engine = _engine()
    data: dict[str, Any] = {}
    raw = request.cookies.get(COOKIE)
    if raw:
        try:
            loaded = _serializer(engine).loads(raw, max_age=SESSION_SECONDS)
            data = loaded if isinstance(loaded, dict) else {}
        except BadSignature:
            data = {}
    csrf = data.get("csrf") if isinstance(data.get("csrf"), str) else None
    request.state.ui_session_dirty = csrf is None
    csrf = csrf or secrets.token_urlsafe(24)
    required = tokens.tokens_configured(engine)
    token_hash = data.get("th") if isinstance(data.get("th"), str) else None
    role = "admin" if not required else (_role_of_hash(engine, token_hash) if token_hash else None)
    user = User(role, required, csrf, token_hash if role else None)
    request.state.ui_user = user
    return user


def _store_session(request: Request, response: Response) -> None:
    user: User | None = getattr(request.state, "ui_user", None)
    if user is None or not getattr(request.state, "ui_session_dirty", False):
        return
    value = _serializer(_engine()).dumps({"csrf": user.csrf, "th": user.token_hash})
    response.set_cookie(
        COOKIE, value, max_age=SESSION_SECONDS, path="/", httponly=True, samesite="lax",
        secure=request.url.scheme == "https",
    )  # fmt: skip


def need(request: Request, role: str = "viewer") -> User:
    """The user, who must be logged in (when tokens are configured) and hold at least ``role``."""
    user = current_user(request)
    if user.role is None:
        raise LoginRequired()
    if not user.can(role):
        raise Forbidden(f"this needs the {role} role; you are signed in as {user.role}")
    return user


def checked(request: Request, csrf_token: str, role: str) -> User:
    """``need`` for a POST, which must also carry the session's CSRF token."""
    user = current_user(request)
    if not csrf_token or not hmac.compare_digest(csrf_token, user.csrf):
        raise Forbidden("the form's security token is missing or stale; reload the page and try again")
    return need(request, role)


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


# --- rendering -------------------------------------------------------------------------------------


def _banners(engine: Engine) -> list[dict[str, str]]:
    """Warnings every page shows: files storage mode, intake paused, maintenance."""
    out = []
    pin = st.storage_pin(engine)
    mode = st.effective_mode(engine)
    if mode == "files":
        how = "pinned by the operator" if pin else "the configured default"
        out.append({"kind": "warn", "id": "banner-files",
                    "text": f"Storage mode is files ({how}): plans are stored as artifacts only; "
                            "PlanRepository tables are neither written nor read."})  # fmt: skip
    if not st.intake_open(engine):
        out.append({"kind": "warn", "id": "banner-intake",
                    "text": "Plan intake is paused: new plans are refused until an operator resumes intake."})  # fmt: skip
    if st.maintenance_on(engine):
        out.append({"kind": "warn", "id": "banner-maintenance",
                    "text": "Maintenance is on: a rollback or roll-forward may be in progress."})  # fmt: skip
    return out


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    user = current_user(request)
    engine = _engine()
    base = {
        "user": user,
        "csrf": user.csrf,
        "csrf_field": CSRF_FIELD,
        "banners": _banners(engine),
        "mode": st.effective_mode(engine),
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


def _kpi(value: Any, unit: str | None) -> str:
    if value is None:
        return "—"
    if unit == "ratio":
        return f"{float(value) * 100:.1f} %"
    return _num(value)


templates.env.filters["ts"] = _ts
templates.env.filters["num"] = _num
templates.env.filters["kpi"] = _kpi
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


def _page_number(value: str | None) -> int:
    try:
        return max(1, min(int(value or 1), 10**7))
    except ValueError:
        raise ValueError(f"page must be a whole number, not {value!r}") from None


def _filter(value: str | None) -> str | None:
    value = (value or "").strip()
    if len(value) > 200:
        raise ValueError("a filter is at most 200 characters")
    return value or None


# --- login -----------------------------------------------------------------------------------------


def _safe_next(value: str | None) -> str:
    return value if value and value.startswith("/ui") and not value.startswith("//") else "/ui/plans"


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def ui_root() -> Response:
    return RedirectResponse("/ui/plans", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> Response:  # noqa: A002
    user = current_user(request)
    if not user.tokens_required:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", {"next": _safe_next(next), "error": None, "nav": "login"})


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    token: str = Form(""),
    next: str = Form("/ui/plans"),  # noqa: A002
    csrf_token: str = Form(""),
) -> Response:
    user = current_user(request)
    if not csrf_token or not hmac.compare_digest(csrf_token, user.csrf):
        raise Forbidden("the form's security token is missing or stale; reload the page and try again")
    role = tokens.resolve_role(_engine(), token.strip()) if token.strip() else None
    if role is None:
        context = {"next": _safe_next(next), "error": "That token is not valid.", "nav": "login"}
        return render(request, "login.html", context, 401)
    # A new CSRF token with the new identity, so a token seen before login is worth nothing after.
    request.state.ui_user = User(role, True, secrets.token_urlsafe(24), tokens.hash_token(token.strip()))
    request.state.ui_session_dirty = True
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", response_class=HTMLResponse)
def logout(request: Request, csrf_token: str = Form("")) -> Response:
    user = current_user(request)
    if not csrf_token or not hmac.compare_digest(csrf_token, user.csrf):
        raise Forbidden("the form's security token is missing or stale; reload the page and try again")
    request.state.ui_user = User(None, user.tokens_required, secrets.token_urlsafe(24), None)
    request.state.ui_session_dirty = True
    return RedirectResponse("/ui/login" if user.tokens_required else "/ui/plans", status_code=303)


# --- plans -----------------------------------------------------------------------------------------


def _new_plan_context(engine: Engine) -> dict[str, Any]:
    from app.config import get_settings
    from app.ops.intake import intake_state

    return {
        "default_input": get_settings().scpln_input_dir,
        "intake": intake_state(engine),
        "pin": st.storage_pin(engine),
        "default_mode": st.default_mode(),
    }


@router.get("/plans", response_class=HTMLResponse)
def plans_page(request: Request, status: str | None = None, page: str | None = None) -> Response:
    need(request)
    status = _filter(status)
    if status is not None and status not in PLAN_STATUSES:
        raise ValueError(f"status must be one of {', '.join(PLAN_STATUSES)}")
    number = _page_number(page)
    store = PlanStore()
    versions, total = store.list_versions(limit=PLANS_PAGE, offset=(number - 1) * PLANS_PAGE, status=status)
    reads_rows = store.effective_mode() != "files"
    plans = [{**v.as_dict(), "kpis": _list_kpis(store, v) if reads_rows else None} for v in versions]
    pager = Pager(total, number, PLANS_PAGE, "/ui/plans", {"status": status})
    context = {"nav": "plans", "plans": plans, "pager": pager, "status": status,
               "statuses": PLAN_STATUSES, **_new_plan_context(_engine())}  # fmt: skip
    return render(request, "plans.html", context)


def _list_kpis(store: PlanStore, info: VersionInfo) -> dict[str, Any] | None:
    """Total KPIs of a ready version from its ``plan_kpis`` rows (one SQL page); None without rows.
    The list never parses artifacts: in files mode, or for a version held only as artifacts, the
    plan's own page shows its KPIs."""
    if info.status != "ready" or not store.has_rows(info.version_id):
        return None
    page = tables.read_page(store, info.version_id, "kpis", {"period": "total"}, 100, 0)
    return {r["metric"]: r["value"] for r in page.rows}


@router.post("/plans", response_class=HTMLResponse)
async def new_plan(request: Request) -> Response:
    """Queue a plan job from the new-plan form; answers with the job's live progress."""
    return await run_in_threadpool(_new_plan, request, await _form(request))


async def _form(request: Request) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def _new_plan(request: Request, form: dict[str, str]) -> Response:
    from app.jobs.service import submit_plan
    from app.service import PlanRequest

    fields = {k: v.strip() for k, v in form.items()}
    checked(request, fields.pop(CSRF_FIELD, ""), "planner")
    storage = fields.pop("storage", "") or None
    body = RunBody(**{k: v for k, v in fields.items() if v != ""})
    plan = PlanRequest(input_dir=body.input_dir, input_label=body.input_label, version_id=body.version_id,
                       params=body.params(), note=body.note)  # fmt: skip
    job = submit_plan(plan, storage, "ui")
    if is_htmx(request):
        return _job_fragment(request, job["job_id"])
    return RedirectResponse(f"/ui/jobs/{quote(job['job_id'])}", status_code=303)


def _version(store: PlanStore, version_id: str) -> VersionInfo:
    return store.get_version(version_id)


@router.get("/plans/{version_id}/compare.csv")
def compare_download(request: Request, version_id: str, violations_only: bool = False) -> Response:
    """``compare.csv`` as the API serves it, behind the UI session (a link cannot send a bearer token)."""
    need(request)
    text = tables.compare_text(PlanStore(), version_id, violations_only)
    return _csv_response(text, f"{version_id}-compare.csv")


@router.get("/plans/{version_id}/diff.csv")
def diff_download(request: Request, version_id: str, against: str) -> Response:
    """``diff.csv`` as the API serves it, behind the UI session."""
    need(request)
    rows, _ = tables.diff_rows(PlanStore(), version_id, against)
    return _csv_response(tables.diff_csv(rows), f"{version_id}-diff-{against}.csv")


@router.get("/plans/{version_id}/psi.csv")
def psi_download(request: Request, version_id: str, level: str = "aggregate") -> Response:
    """The PSI cells as CSV, as the API serves them, behind the UI session."""
    from app.storage import overrides

    need(request)
    return _csv_response(overrides.psi_csv(version_id, level), f"{version_id}-psi-{level}.csv")


def _csv_response(text: str, filename: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return PlainTextResponse(text, media_type="text/csv; charset=utf-8", headers=headers)


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
    }
    if info.status == "ready":
        context.update(TAB_VIEWS[tab](request, store, info))
    return render(request, "plan.html", context)


def _csv_base(user: User) -> str:
    """Where CSV download links point: the API's routes when a plain link reaches them (no tokens), the
    UI's session-checked copies otherwise."""
    return "/ui" if user.tokens_required else ""


def _page(store: PlanStore, info: VersionInfo, table: str, filters: dict[str, str | None], number: int, size: int) -> tables.Page:  # fmt: skip
    return tables.read_page(store, info.version_id, table, filters, size, (number - 1) * size)


def _all(store: PlanStore, info: VersionInfo, table: str, filters: dict[str, str | None] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    return tables.read_page(store, info.version_id, table, filters or {}, 5000, 0).rows


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
        filters = {name: _filter(q.get(name)) for name in filter_names}
        number = _page_number(q.get("page"))
        page = _page(store, info, table, filters, number, size)
        base = f"/ui/plans/{quote(info.version_id)}/{table if table != 'weekly' else 'capacity'}"
        pager = Pager(page.total, number, size, base, filters)
        columns = list(tables.TABLES[table].columns)
        return {"page": page, "pager": pager, "filters": filters, "columns": columns, "source": page.source}

    return view


_aggregate = _table_tab("aggregate", ("family", "period"))
_detail = _table_tab("detail", ("family", "sku", "period"))
_exceptions = _table_tab("exceptions", ("family", "item"))


def _capacity(request: Request, store: PlanStore, info: VersionInfo) -> dict[str, Any]:
    rows = _all(store, info, "weekly")
    return {"rows": rows, "weekly": _weekly_chart(rows), "columns": list(tables.TABLES["weekly"].columns)}


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
    item = _filter(q.get("item"))
    number = _page_number(q.get("page"))
    weeks = max(1, tables.read_page(store, info.version_id, "weekly", {}, 1, 0).total)
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
    source = tables.read_source(store, info)
    recon = tables.read_all(store, info, tables.RECON, source)
    rows = compare_rows({"rows": recon}, violations_only)
    violations = sum(1 for r in compare_rows({"rows": recon}, True))
    return {"rows": rows, "violations_only": violations_only, "violations": violations,
            "tolerance": info.params.get("tol_abs"), "tolerance_rel": info.params.get("tol_rel")}  # fmt: skip


def _psi(request: Request, store: PlanStore, info: VersionInfo) -> dict[str, Any]:
    q = request.query_params
    view = {"family": _filter(q.get("family")), "period": _filter(q.get("period")), "sku": _filter(q.get("sku")),
            "dpage": _page_number(q.get("dpage"))}  # fmt: skip
    return psi_context(info.version_id, view, q.get("msg"))


def psi_context(version_id: str, view: dict[str, Any], message: str | None = None,
                error: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The PSI panel: one family's months, one month's SKU x week cells (a page of them, optionally
    one SKU), and the history."""
    from app.storage import overrides

    family, period, sku, dpage = (
        view.get("family"),
        view.get("period"),
        view.get("sku"),
        view.get("dpage") or 1,
    )

    everything = overrides.psi_view(version_id, "aggregate", {}, 5000, 0)
    families = sorted({r["family"] for r in everything["rows"]})
    family = family if family in families else (families[0] if families else None)
    agg_rows = [r for r in everything["rows"] if r["family"] == family]
    periods = [r["period"] for r in agg_rows]
    period = period if period in periods else (periods[0] if periods else None)
    det_filters = {"family": family, "period": period, "sku": sku}
    offset = (dpage - 1) * PSI_DETAIL_PAGE
    det = overrides.psi_view(version_id, "det", det_filters, PSI_DETAIL_PAGE, offset) if family else None
    pager = Pager(det["total"] if det else 0, dpage, PSI_DETAIL_PAGE, f"/ui/plans/{quote(version_id)}/psi",
                  {"family": family, "period": period, "sku": sku}, "dpage")  # fmt: skip
    history = overrides.events(version_id)["events"]
    return {"psi": {"approval": everything["approval"], "mode": everything["mode"], "families": families,
                    "family": family, "period": period, "sku": sku, "dpage": dpage, "agg_rows": agg_rows,
                    "det_rows": det["rows"] if det else [], "det_pager": pager,
                    "events": list(reversed(history))[:100], "events_total": len(history),
                    "message": message, "error": error}}  # fmt: skip


def _diff(request: Request, store: PlanStore, info: VersionInfo) -> dict[str, Any]:
    against = _filter(request.query_params.get("against"))
    candidates, _ = store.list_versions(limit=200, status="ready")
    options = [v.version_id for v in candidates if v.version_id != info.version_id]
    if against is None:
        against = info.parent_version_id or next(iter(options), None)
    context: dict[str, Any] = {"against": against, "options": options, "diff": None}
    if against is None:
        return context
    rows, counts = tables.diff_rows(store, info.version_id, against)
    kpis = [r for r in rows if r["level"] == "kpis" and r["key"].endswith("|total|total")]
    cells = [r for r in rows if r["level"] != "kpis"]
    context["diff"] = {
        "counts": counts,
        "kpis": kpis,
        "cells": cells[:DIFF_ROWS_SHOWN],
        "cells_total": len(cells),
    }
    return context


TAB_VIEWS = {
    "overview": _overview, "aggregate": _aggregate, "detail": _detail, "mrp": _mrp, "capacity": _capacity,
    "reconciliation": _reconciliation, "exceptions": _exceptions, "psi": _psi, "diff": _diff,
}  # fmt: skip


# --- PSI actions -----------------------------------------------------------------------------------

PSI_KEY_FIELDS = {"aggregate": ("family", "period"), "det": ("sku", "week", "period")}


def _psi_key(form: dict[str, str], level: str) -> dict[str, str]:
    if level not in PSI_KEY_FIELDS:
        raise ValueError("level must be aggregate or det")
    return {name: form.get(name, "") for name in PSI_KEY_FIELDS[level]}


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
    from app.storage import overrides

    role = "approver" if action == "approve" else "planner"
    user = checked(request, form.get(CSRF_FIELD, ""), role)
    view = {"family": form.get("view_family") or None, "period": form.get("view_period") or None,
            "sku": form.get("view_sku") or None, "dpage": _page_number(form.get("view_dpage"))}  # fmt: skip
    note = form.get("note", "").strip() or None
    level = form.get("level", "aggregate")

    def run() -> str:
        if action == "edit":
            key = _psi_key(form, level)
            edit = {"key": key, "field": form.get("field", ""), "value": _number(form.get("value", ""))}
            result = overrides.apply_edits(version_id, level, [edit], note=note, actor=user.actor)
            return f"saved: {len(result['changes'])} cell(s) changed"
        if action in ("lock", "unlock"):
            key = _psi_key(form, level)
            kwargs = {"lock": [key]} if action == "lock" else {"unlock": [key]}
            overrides.apply_edits(version_id, level, note=note, actor=user.actor, **kwargs)
            return f"{action}ed {' '.join(key.values())}"
        if action == "submit":
            overrides.submit(version_id, user.actor, note)
            return "submitted for approval"
        overrides.approve(version_id, user.actor, note)
        return "approved"

    error = None
    status = 200
    try:
        message = run()
    except (ScplnError, ValueError) as exc:
        if not is_htmx(request):
            raise
        message = None
        status = getattr(exc, "status", 422)
        problems = _detail_list(getattr(exc, "detail", None))
        error = {"message": getattr(exc, "message", str(exc)), "problems": problems or []}
    if not is_htmx(request):
        query = urlencode({k: v for k, v in {**view, "msg": message}.items() if v and v != 1})
        return RedirectResponse(f"/ui/plans/{quote(version_id)}/psi?{query}", status_code=303)
    context = psi_context(version_id, view, message, error)
    info = PlanStore().get_version(version_id)
    return render(request, "_psi_panel.html", {"plan": info, **context}, status)


@router.post("/plans/{version_id}/psi/{action}", response_class=HTMLResponse)
async def psi_post(request: Request, version_id: str, action: str) -> Response:
    if action not in ("edit", "lock", "unlock", "submit", "approve"):
        raise PageNotFound(f"unknown PSI action {action!r}")
    return await run_in_threadpool(_psi_action, request, version_id, action, await _form(request))


# --- jobs and runs ---------------------------------------------------------------------------------


def _job_fragment(request: Request, job_id: str) -> HTMLResponse:
    from app.jobs.service import get_job

    return render(request, "_job.html", {"job": get_job(job_id)})


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, status: str | None = None, page: str | None = None) -> Response:
    from app.jobs.service import list_jobs

    need(request)
    status = _filter(status)
    number = _page_number(page)
    items, total = list_jobs(JOBS_PAGE, (number - 1) * JOBS_PAGE, status)
    pager = Pager(total, number, JOBS_PAGE, "/ui/jobs", {"status": status})
    live = any(j["status"] in ("queued", "running") for j in items)
    context = {"nav": "jobs", "jobs": items, "pager": pager, "status": status, "statuses": JOB_STATUSES,
               "live": live}  # fmt: skip
    if is_htmx(request) and request.headers.get("HX-Target") == "jobs-table":
        return render(request, "_jobs_table.html", context)
    return render(request, "jobs.html", context)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str) -> Response:
    from app.jobs.service import get_job

    need(request)
    return render(request, "job.html", {"nav": "jobs", "job": get_job(job_id)})


@router.get("/jobs/{job_id}/progress", response_class=HTMLResponse)
def job_progress(request: Request, job_id: str) -> Response:
    need(request)
    return _job_fragment(request, job_id)


@router.post("/jobs/{job_id}/{action}", response_class=HTMLResponse)
def job_action(request: Request, job_id: str, action: str, csrf_token: str = Form("")) -> Response:
    from app.jobs import service

    checked(request, csrf_token, "planner")
    if action == "cancel":
        service.cancel_job(job_id)
        return RedirectResponse(f"/ui/jobs/{quote(job_id)}", status_code=303)
    if action == "retry":
        retried = service.retry_job(job_id, trigger="ui")
        return RedirectResponse(f"/ui/jobs/{quote(retried['job_id'])}", status_code=303)
    raise PageNotFound(f"unknown job action {action!r}")


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, page: str | None = None) -> Response:
    from app.run_registry import REGISTRY

    need(request)
    number = _page_number(page)
    runs = REGISTRY.list(limit=RUNS_PAGE, offset=(number - 1) * RUNS_PAGE)
    pager = Pager(REGISTRY.count(), number, RUNS_PAGE, "/ui/runs", {})
    return render(request, "runs.html", {"nav": "runs", "runs": runs, "pager": pager})


# --- operations ------------------------------------------------------------------------------------


@router.get("/ops", response_class=HTMLResponse)
def ops_page(request: Request, msg: str | None = None) -> Response:
    from app.ops.backup import list_backups
    from app.ops.check import last_check
    from app.ops.intake import intake_state

    need(request)
    engine = _engine()
    context = {
        "nav": "ops",
        "pin": st.storage_pin(engine),
        "default_mode": st.default_mode(),
        "intake": intake_state(engine),
        "maintenance": st.maintenance_on(engine),
        "last_check": last_check(engine),
        "backups": list_backups(engine=engine)[:20],
        "message": msg,
    }
    return render(request, "ops.html", context)


def _ops_done(message: str) -> Response:
    return RedirectResponse(f"/ui/ops?{urlencode({'msg': message})}", status_code=303)


@router.post("/ops/storage-mode", response_class=HTMLResponse)
def ops_storage_mode(request: Request, csrf_token: str = Form(""), mode: str = Form("")) -> Response:
    checked(request, csrf_token, "admin")
    pin = mode.strip() or None
    st.set_storage_pin(_engine(), pin)
    return _ops_done(f"storage mode pinned to {pin}" if pin else "storage mode pin cleared")


@router.post("/ops/intake", response_class=HTMLResponse)
def ops_intake(request: Request, csrf_token: str = Form(""), action: str = Form("")) -> Response:
    from app.ops.intake import pause_intake, resume_intake

    user = checked(request, csrf_token, "admin")
    if action == "pause":
        pause_intake(_engine(), actor=user.actor)
        return _ops_done("plan intake paused")
    if action == "resume":
        resume_intake(_engine())
        return _ops_done("plan intake resumed")
    raise ValueError("action must be pause or resume")


@router.post("/ops/check", response_class=HTMLResponse)
def ops_check(request: Request, csrf_token: str = Form("")) -> Response:
    from app.ops.check import check_database

    checked(request, csrf_token, "admin")
    report = check_database(_engine())
    found = "no problems" if report.ok else f"{len(report.problems)} problem(s)"
    return _ops_done(f"integrity check of {report.versions_checked} version(s): {found}")


@router.post("/ops/backup", response_class=HTMLResponse)
def ops_backup(request: Request, csrf_token: str = Form("")) -> Response:
    from app.ops.backup import backup_database

    checked(request, csrf_token, "admin")
    path = backup_database(engine=_engine())
    return _ops_done(f"backup written to {path.name}")


@router.post("/ops/maintenance", response_class=HTMLResponse)
def ops_maintenance(request: Request, csrf_token: str = Form(""), enabled: str = Form("")) -> Response:
    checked(request, csrf_token, "admin")
    on = enabled == "1"
    st.set_value(_engine(), st.MAINTENANCE, "1" if on else None)
    return _ops_done("maintenance on" if on else "maintenance off")


# --- anything else under /ui -----------------------------------------------------------------------


@router.get("/{rest:path}", response_class=HTMLResponse)
def not_found(request: Request, rest: str) -> Response:
    need(request)
    raise PageNotFound(f"there is no page at /ui/{rest}")


__all__ = ["install_ui", "router"]
