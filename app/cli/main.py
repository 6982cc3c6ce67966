"""The ``scpln`` command line: the root Typer app and the ONE error mapper.

Each command group lives in its own module of this package and is added to the root app here. A
command parses its options, calls one service or operations function and prints the answer; it does
not decide exit codes for errors. Errors leave every command through :func:`report_error`, which
reads the exit code from ``app.errors.OUTCOMES`` (0 success, 1 a failed check or operation, 2 bad
input, the problems listed one per line).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import typer

from app.cli import db, jobs, plan, repo, rollback, sample, serve, storage, token
from app.cli.terminal import err
from app.errors import OUTCOMES, outcome
from app.planning.model import InputError

app = typer.Typer(
    help="scpln Planning Hub: plan, store and operate supply chain plans.", no_args_is_help=True
)
app.command("serve")(serve.serve)
app.command("worker")(serve.worker)
app.command("rollback")(rollback.rollback_cmd)
app.command("rollforward")(rollback.rollforward_cmd)
app.add_typer(plan.plan_app, name="plan")
app.add_typer(sample.sample_app, name="sample")
app.add_typer(storage.storage_app, name="storage")
app.add_typer(repo.repo_app, name="repo")
app.add_typer(token.token_app, name="token")
app.add_typer(jobs.jobs_app, name="jobs")
app.add_typer(db.db_app, name="db")

#: What the mapper answers for; anything else is a bug and keeps its traceback.
MAPPED = tuple(OUTCOMES)


def report_error(exc: BaseException) -> int:
    """Print ``exc`` for the operator and return the exit code the table gives it."""
    if isinstance(exc, InputError):
        err.print(f"[bold red]Invalid input set[/]: {len(exc.problems)} problem(s)")
        for p in exc.problems:
            err.print(f"  - {p.describe()}", highlight=False, markup=False)
    else:
        err.print(f"[bold red]Error[/]: {exc}", highlight=False)
    return outcome(exc).exit_code


def run(program: typer.Typer) -> None:
    """Run ``program`` with the error mapping (the console script, ``python -m app.cli``, scripts/)."""
    try:
        program()
    except MAPPED as exc:
        sys.exit(report_error(exc))


def run_alone(command: Callable[..., Any]) -> None:
    """Run one command function as a program of its own (``scripts/``), errors mapped alike."""
    alone = typer.Typer(add_completion=False)
    alone.command()(command)
    run(alone)


def main() -> None:
    run(app)
