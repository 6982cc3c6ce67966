"""The service layer: what every edge (API, UI, CLI, worker, scripts) calls.

``plans`` runs, re-plans and deletes plan versions; ``jobs`` submits, runs now, cancels and retries
plan jobs. Services call the plan store, the read model and the engine; they import no edge (no
FastAPI router, no template, no Typer command). Import the submodules directly.
"""
