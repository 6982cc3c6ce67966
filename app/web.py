"""The composition root: the HTTP API (``app.api.app``) and the web UI (``app.ui``) as one application.

``create_app()`` builds a fresh one; ``app`` is one for ``uvicorn app.web:app``. ``scpln serve``
serves it after bringing the database schema to head. The API and the UI know nothing of each other;
only this module imports both. ``/`` redirects to the UI's plan list.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from app.api.app import create_app as create_api
from app.ui import install_ui


def create_app() -> FastAPI:
    """The API with every router, its error mapping and metrics hooks, plus the UI's pages and files."""
    application = create_api()
    install_ui(application)

    @application.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/plans")

    return application


app = create_app()
