"""The Planning Hub web UI (SPEC 5.4): server-rendered pages under ``/ui`` and static files under
``/ui/static`` (vendored htmx and uPlot, no build step).

``session`` owns the cookie, roles and CSRF; ``render`` the templates, formatting and error pages;
``pages`` one module per area. Every page parses its input, calls the services
(``app.services``), the read model (``app.storage.views``), PSI editing, operations or settings
in-process, and renders a template; it never calls the HTTP API and holds no planning or storage
rule of its own. Nothing here imports ``app.api``: ``app.web`` puts the two together.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.ui.pages import router
from app.ui.render import STATIC_DIR


def install_ui(app: FastAPI) -> None:
    """Serve the UI on ``app``: static files at ``/ui/static`` and the pages under ``/ui``."""
    app.mount("/ui/static", StaticFiles(directory=str(STATIC_DIR)), name="ui-static")
    app.include_router(router)


__all__ = ["install_ui", "router"]
