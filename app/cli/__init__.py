"""The ``scpln`` command line (Typer): ``app.cli.main`` holds the root app and the one error mapper;
each command group has its own module."""

from app.cli.main import app, main

__all__ = ["app", "main"]
