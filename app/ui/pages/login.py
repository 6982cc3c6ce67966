"""The login and logout pages, and the UI's root address."""

from __future__ import annotations

import hmac
import secrets

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.errors import Forbidden
from app.storage import tokens
from app.ui.render import page_router, render
from app.ui.session import User, current_user, ui_store

router = page_router()


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
    role = tokens.resolve_role(ui_store().engine, token.strip()) if token.strip() else None
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
