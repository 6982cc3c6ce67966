"""The HTTP API of the Planning Hub (FastAPI): ``app.api.app.create_app`` builds it; ``app.web`` adds the UI."""
