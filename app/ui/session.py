"""The UI's session (SPEC 5.3): who the browser is, and the CSRF token of its forms.

With API tokens configured the login page asks for a token once and keeps the token's hash in a
signed, HttpOnly cookie (itsdangerous; the key is ``SCPLN_SECRET_KEY`` or one generated and kept in
``app_settings``); the role is looked up again on every request, so a revoked token ends its sessions.
Without tokens everyone is admin (local use). Every form carries a CSRF token bound to the session,
checked on every POST. Renders nothing.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.errors import Forbidden
from app.storage import settings as st
from app.storage import tokens
from app.storage.plans import PlanStore

COOKIE = "scpln_ui"
SESSION_SECONDS = 12 * 3600
SECRET_ENV = "SCPLN_SECRET_KEY"
SECRET_SETTING = "ui_secret_key"
CSRF_FIELD = "csrf_token"


# --- errors the pages answer with ----------------------------------------------------------------


class LoginRequired(Exception):
    """Tokens are configured and the session holds none (or a revoked one)."""


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


def ui_store() -> PlanStore:
    return PlanStore()


def _secret(store: PlanStore) -> str:
    """The signing key: ``SCPLN_SECRET_KEY``, else one generated once and kept in ``app_settings``."""
    configured = os.environ.get(SECRET_ENV, "").strip()
    if configured:
        return configured
    stored = st.get_value(store.engine, SECRET_SETTING)
    if stored:
        return stored
    st.set_value(store.engine, SECRET_SETTING, secrets.token_urlsafe(32))
    return st.get_value(store.engine, SECRET_SETTING) or ""


def _serializer(store: PlanStore) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_secret(store), salt="scpln-ui-session")


def _role_of_hash(store: PlanStore, token_hash: str) -> str | None:
    for known, role in tokens.env_tokens().items():
        if hmac.compare_digest(known, token_hash):
            return role
    for info in tokens.list_tokens(store.engine):
        if hmac.compare_digest(info.token_hash, token_hash):
            return info.role
    return None


def current_user(request: Request) -> User:
    """The session's user, read once per request: its role (admin without tokens) and CSRF token."""
    found = getattr(request.state, "ui_user", None)
    if found is not None:
        return found
    store = ui_store()
    data: dict[str, Any] = {}
    raw = request.cookies.get(COOKIE)
    if raw:
        try:
            loaded = _serializer(store).loads(raw, max_age=SESSION_SECONDS)
            data = loaded if isinstance(loaded, dict) else {}
        except BadSignature:
            data = {}
    csrf = data.get("csrf") if isinstance(data.get("csrf"), str) else None
    request.state.ui_session_dirty = csrf is None
    csrf = csrf or secrets.token_urlsafe(24)
    required = tokens.tokens_configured(store.engine)
    token_hash = data.get("th") if isinstance(data.get("th"), str) else None
    role = "admin" if not required else (_role_of_hash(store, token_hash) if token_hash else None)
    user = User(role, required, csrf, token_hash if role else None)
    request.state.ui_user = user
    return user


def store_session(request: Request, response: Response) -> None:
    user: User | None = getattr(request.state, "ui_user", None)
    if user is None or not getattr(request.state, "ui_session_dirty", False):
        return
    value = _serializer(ui_store()).dumps({"csrf": user.csrf, "th": user.token_hash})
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
