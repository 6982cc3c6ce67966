"""The operations page (admin): storage-mode pin, plan intake, integrity check, backups, maintenance."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.storage import modes
from app.storage import settings as st
from app.ui.render import page_router, render
from app.ui.session import checked, need, ui_store

router = page_router()


@router.get("/ops", response_class=HTMLResponse)
def ops_page(request: Request, msg: str | None = None) -> Response:
    from app.ops.backup import list_backups
    from app.ops.check import last_check
    from app.ops.intake import intake_state

    need(request)
    engine = ui_store().engine
    context = {
        "nav": "ops",
        "pin": st.storage_pin(engine),
        "default_mode": modes.default_mode(),
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
    st.set_storage_pin(ui_store().engine, pin)
    return _ops_done(f"storage mode pinned to {pin}" if pin else "storage mode pin cleared")


@router.post("/ops/intake", response_class=HTMLResponse)
def ops_intake(request: Request, csrf_token: str = Form(""), action: str = Form("")) -> Response:
    from app.ops.intake import pause_intake, resume_intake

    user = checked(request, csrf_token, "admin")
    if action == "pause":
        pause_intake(ui_store().engine, actor=user.actor)
        return _ops_done("plan intake paused")
    if action == "resume":
        resume_intake(ui_store().engine)
        return _ops_done("plan intake resumed")
    raise ValueError("action must be pause or resume")


@router.post("/ops/check", response_class=HTMLResponse)
def ops_check(request: Request, csrf_token: str = Form("")) -> Response:
    from app.ops.check import check_database

    checked(request, csrf_token, "admin")
    report = check_database(ui_store().engine)
    found = "no problems" if report.ok else f"{len(report.problems)} problem(s)"
    return _ops_done(f"integrity check of {report.versions_checked} version(s): {found}")


@router.post("/ops/backup", response_class=HTMLResponse)
def ops_backup(request: Request, csrf_token: str = Form("")) -> Response:
    from app.ops.backup import backup_database

    checked(request, csrf_token, "admin")
    path = backup_database(engine=ui_store().engine)
    return _ops_done(f"backup written to {path.name}")


@router.post("/ops/maintenance", response_class=HTMLResponse)
def ops_maintenance(request: Request, csrf_token: str = Form(""), enabled: str = Form("")) -> Response:
    checked(request, csrf_token, "admin")
    on = enabled == "1"
    st.set_value(ui_store().engine, st.MAINTENANCE, "1" if on else None)
    return _ops_done("maintenance on" if on else "maintenance off")
