"""Error mapping of the HTTP API: every error leaves as JSON ``{error, detail}`` with the right status.

Owns the translation of domain errors into responses: the status comes from the one table,
``app.errors.OUTCOMES`` (``ScplnError`` with its title and detail, ``InputError`` with its problem
list, ``ValueError`` from services); also request validation errors, unknown routes and anything
unexpected (500, traceback logged server-side only). No stack trace ever reaches a client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import IntakePaused, ScplnError, outcome
from app.planning.model import InputError

log = logging.getLogger("scpln.api")

_HTTP_TITLES = {
    400: "bad request",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    409: "conflict",
    413: "request too large",
    415: "unsupported media type",
    422: "invalid request",
    503: "service unavailable",
}


def error_body(error: str, detail: Any = None) -> dict[str, Any]:
    return {"error": error, "detail": detail}


def error_response(status: int, error: str, detail: Any = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(error, detail), status_code=status, headers=headers)


def readable_validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic/FastAPI validation errors as ``{location, field, reason}`` (no echoed input objects)."""
    out = []
    for e in errors:
        loc = [str(part) for part in e.get("loc", ())]
        where = loc[0] if loc else "request"
        field = ".".join(loc[1:]) or None
        out.append({"location": where, "field": field, "reason": str(e.get("msg", "invalid value"))})
    return out


async def _scpln_error(_request: Request, exc: ScplnError) -> JSONResponse:
    if isinstance(exc, IntakePaused):
        # SPEC 5.1 gives this body verbatim; scripts compare it whole, so it carries no detail.
        return JSONResponse({"error": "plan intake paused"}, status_code=503)
    status = outcome(exc).status
    if status >= 500:
        log.error("%s: %s", type(exc).__name__, exc.message)
    detail = exc.detail if exc.detail is not None else exc.message
    if isinstance(detail, dict):
        detail = {"message": exc.message, **detail}
    return error_response(status, exc.title, detail)


async def _input_error(_request: Request, exc: InputError) -> JSONResponse:
    return error_response(outcome(exc).status, "invalid input", exc.as_dicts())


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(422, "invalid request", readable_validation_errors(list(exc.errors())))


async def _value_error(_request: Request, exc: ValueError) -> JSONResponse:
    return error_response(outcome(exc).status, "invalid request", str(exc))


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    title = _HTTP_TITLES.get(exc.status_code, "error")
    detail = exc.detail
    if exc.status_code == 404 and detail in (None, "Not Found"):
        detail = "no such route"
    if exc.status_code == 405 and detail == "Method Not Allowed":
        detail = "method not allowed on this route"
    return error_response(exc.status_code, title, detail, headers=getattr(exc, "headers", None))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ScplnError, _scpln_error)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ValueError, _value_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
