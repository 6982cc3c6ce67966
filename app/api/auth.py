"""Who may call what (SPEC 5.3): bearer tokens mapped to roles ``viewer < planner < approver < admin``.

With no token configured at all (no ``SCPLN_API_TOKENS`` and no row in ``api_tokens``) every caller is
admin: that is local use, and ``scpln serve`` then refuses to bind anything but loopback. Should the last
token be deleted while a server listens on another address, requests arriving there get 401. Otherwise
every route that declares a role needs ``Authorization: Bearer <token>``: 401 without a valid token,
403 when the token's role is too low. ``/healthz`` and ``/metrics`` declare none.

The dependencies are ``async``: they run on the event loop (one indexed lookup at most), so a route
that is itself ``async`` is served without any thread-pool hop.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.config import get_settings
from app.errors import AuthMisconfigured, Forbidden, Unauthorized
from app.storage import tokens
from app.storage.db import database_url, get_engine
from app.storage.plans import PlanStore

bearer = HTTPBearer(auto_error=False, description="An API token made by `scpln token create`.")


@dataclass(frozen=True)
class Caller:
    """The authenticated caller: its role, and whether tokens are in force at all."""

    role: str
    authenticated: bool

    @property
    def actor(self) -> str:
        """Name recorded on events made by this caller."""
        return f"token:{self.role}" if self.authenticated else "local"


async def request_store(request: Request) -> PlanStore:
    """The plan store of this request: the environment is read once per request (it is not cheap),
    and auth and the route share the result (FastAPI caches a dependency within a request)."""
    store = getattr(request.state, "store", None)
    if store is None:
        settings = get_settings()
        store = PlanStore(get_engine(database_url(settings)))
        request.state.store, request.state.settings = store, settings
    return store


async def current_caller(
    request: Request,
    _credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # declares the scheme in OpenAPI
    store: PlanStore = Depends(request_store),
) -> Caller:
    caller = authenticate(store, request.headers.get("authorization"), reached_over_loopback(request.scope))
    request.state.caller = caller
    return caller


def authenticate(store: PlanStore, authorization: str | None, over_loopback: bool) -> Caller:
    """The caller of a request from its ``Authorization`` header — the one rule, for the route
    dependencies and for the request guard that checks callers before reading a body. Raises
    ``Unauthorized`` (401) or ``AuthMisconfigured`` (500)."""
    try:
        env = tokens.parse_env_tokens(get_settings().scpln_api_tokens)
    except ValueError as exc:  # a malformed SCPLN_API_TOKENS: refuse everyone rather than guess
        raise AuthMisconfigured("the server's API token configuration is invalid", str(exc)) from None
    if not tokens.tokens_configured(store.engine, env):
        if not over_loopback:
            # tokens deleted while serving a non-loopback address: nobody is admin by default there
            raise Unauthorized(
                "no API tokens are configured and this server is reached on a non-loopback address; "
                "create one with `scpln token create --role ROLE`"
            )
        return Caller("admin", authenticated=False)
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("an API token is required: send 'Authorization: Bearer <token>'")
    role = tokens.resolve_role(store.engine, token.strip(), env)
    if role is None:
        raise Unauthorized("the API token is not valid")
    return Caller(role, authenticated=True)


def tokens_in_force() -> bool:
    """Whether API tokens are configured (a malformed configuration counts: it refuses everyone)."""
    try:
        env = tokens.parse_env_tokens(get_settings().scpln_api_tokens)
    except ValueError:
        return True
    return tokens.tokens_configured(PlanStore().engine, env)


def reached_over_loopback(scope: Any) -> bool:
    """False only when the address the request came in on is a non-loopback IP address (the test
    client's symbolic host names count as local)."""
    server = scope.get("server")
    if not server:
        return True
    host = str(server[0])
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return True
    return is_loopback(host)


def require(role: str):
    """A dependency that admits callers whose role is at least ``role``."""
    tokens.role_rank(role)

    async def check(caller: Caller = Depends(current_caller)) -> Caller:
        if not tokens.role_allows(caller.role, role):
            raise Forbidden(
                f"this needs the {role} role; the token has {caller.role}",
                {"needed": role, "role": caller.role},
            )
        return caller

    check.__name__ = f"require_{role}"
    return check


VIEWER = Depends(require("viewer"))
PLANNER = Depends(require("planner"))
APPROVER = Depends(require("approver"))
ADMIN = Depends(require("admin"))
#: The request's plan store, as a route parameter type.
Store = Annotated[PlanStore, Depends(request_store)]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def bind_refusal(host: str) -> str | None:
    """Why the server must not bind ``host`` (None when it may): without tokens, loopback only. A
    malformed or weak ``SCPLN_API_TOKENS`` is a ValueError whatever the address."""
    env = tokens.env_tokens()
    if is_loopback(host) or tokens.tokens_configured(PlanStore().engine, env):
        return None
    return (
        f"refusing to bind {host}: no API tokens are configured, so every caller would be admin. "
        "Bind 127.0.0.1, or create tokens with `scpln token create --role ROLE` or SCPLN_API_TOKENS."
    )
