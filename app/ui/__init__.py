"""The Planning Hub web UI: server-rendered pages under ``/ui`` (see ``app.ui.routes``)."""

from app.ui.routes import install_ui, router

__all__ = ["install_ui", "router"]
