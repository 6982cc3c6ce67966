"""Admission of every HTTP request before any route reads it, and the last word on what leaves.

One pure ASGI middleware, the outermost of the application's own, owns:

- **Host**: a request whose ``Host`` header is not allowed is a 400 (DNS rebinding): the names in
  ``SCPLN_ALLOWED_HOSTS`` (``*`` allows any), loopback names and addresses and the address the server
  was reached on always, and any host once API tokens are configured (a rebound page cannot hold a
  bearer token).
- **Cross-site state changes**: a POST, PUT, PATCH or DELETE that a browser marks as coming from another
  site (an ``Origin`` other than the request's own host, or ``Sec-Fetch-Site: cross-site``) is a 403,
  whatever its content type — so a page elsewhere cannot pause intake or start plans of a local hub.
- **Body size**: a body larger than ``SCPLN_MAX_BODY_BYTES`` (10 MB by default) is a 413, refused from
  its ``Content-Length`` before anything is read, or as soon as a chunked body passes the limit.
- **Who before what**: where tokens are configured, an API request that carries a body must present a
  valid token before its body is read (401 otherwise); ``app.api.auth.authenticate`` decides.
- **Unexpected errors**: an exception no handler took becomes a logged 500 JSON body, and the
  connection stays usable for the next request (nothing is re-raised to the server).
- **Security headers** on every response: ``X-Content-Type-Options: nosniff``,
  ``X-Frame-Options: DENY``, ``Referrer-Policy: same-origin``, and on the UI's pages a
  ``Content-Security-Policy`` that allows only the hub's own scripts and no framing.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api import auth
from app.config import Settings, get_settings
from app.errors import ScplnError, outcome
from app.storage.plans import PlanStore

log = logging.getLogger("scpln.api")

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
UI_POLICY = (
    b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


class RequestGuard:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        settings = get_settings()
        method, path = scope.get("method", "GET"), scope.get("path", "")
        ui_page = path == "/" or path.startswith("/ui")
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = SECURITY_HEADERS + ([(b"content-security-policy", UI_POLICY)] if ui_page else [])
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        refusal = _admission(scope, headers, method, path, settings)
        if refusal is not None:
            await _send_json(send_with_headers, *refusal)
            return
        limit = settings.scpln_max_body_bytes
        received = 0
        refused = False

        async def limited_receive() -> Message:
            # past the limit the 413 goes out at once and the route sees the client gone; whatever
            # it then answers is dropped (a route may swallow an exception raised from here)
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        await _send_json(send_with_headers, 413, "payload too large", _too_large(limit))
                    return {"type": "http.disconnect"}
            return message

        async def send_unless_refused(message: Message) -> None:
            if not refused:
                await send_with_headers(message)

        try:
            await self.app(scope, limited_receive, send_unless_refused)
        except Exception:
            if refused:
                return
            log.exception("unhandled error on %s %s", method, path)
            if started:
                raise
            await _send_json(send_with_headers, 500, "internal error", "see server log")


def _admission(
    scope: Scope, headers: dict[str, str], method: str, path: str, settings: Settings
) -> tuple[int, str, object] | None:
    """(status, error, detail) of a request refused before it reaches a route, else None."""
    host = _host_name(headers.get("host", ""))
    if not _host_allowed(host, scope, settings):
        return (
            400,
            "host not allowed",
            f"the Host {host!r} is not served here; set SCPLN_ALLOWED_HOSTS to allow it",
        )
    if method in UNSAFE_METHODS and _cross_site(headers):
        return 403, "forbidden", "a cross-site request may not change anything here"
    length = headers.get("content-length")
    if length is not None:
        try:
            if int(length) > settings.scpln_max_body_bytes:
                return 413, "payload too large", _too_large(settings.scpln_max_body_bytes)
        except ValueError:
            return 400, "bad request", "Content-Length is not a number"
    if method in UNSAFE_METHODS and not path.startswith("/ui") and _has_body(headers):
        try:
            auth.authenticate(PlanStore(), headers.get("authorization"), auth.reached_over_loopback(scope))
        except ScplnError as exc:
            return outcome(exc).status, exc.title, exc.message
    return None


def _has_body(headers: dict[str, str]) -> bool:
    return headers.get("content-length", "0") not in ("", "0") or "chunked" in headers.get(
        "transfer-encoding", ""
    )


def _host_name(value: str) -> str:
    """The host of a Host header without its port (IPv6 literals keep their brackets off)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _host_allowed(host: str, scope: Scope, settings: Settings) -> bool:
    """Loopback names, the address the server was reached on (no name to rebind), the configured
    names, and any name once tokens are in force."""
    allowed = [h.strip().lower() for h in (settings.scpln_allowed_hosts or "").split(",") if h.strip()]
    server = scope.get("server") or ("",)
    if "*" in allowed or host in allowed or host == "testserver" or auth.is_loopback(host or "localhost"):
        return True
    if host == str(server[0]).lower().strip("[]"):
        return True
    return auth.tokens_in_force()


def _cross_site(headers: dict[str, str]) -> bool:
    if headers.get("sec-fetch-site", "").lower() == "cross-site":
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    if origin == "null":
        return True
    own = headers.get("host", "").strip().lower()
    return urlsplit(origin).netloc.lower() != own


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit:,} bytes (SCPLN_MAX_BODY_BYTES)"


async def _send_json(send: Send, status: int, error: str, detail: object) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
