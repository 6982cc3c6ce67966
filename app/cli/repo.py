"""``scpln repo``: PlanRepository maintenance (the backfill of rows from artifacts)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.terminal import Progress, console, open_store

repo_app = typer.Typer(
    help="PlanRepository maintenance (rows in plan_series/plan_kpis).", no_args_is_help=True
)


@repo_app.command("backfill")
def repo_backfill(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be done; write nothing.")
    ] = False,
    state_file: Annotated[
        Path | None, typer.Option("--state-file", help="JSON state file: resume a killed run from it.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rewrite rows of every version with artifacts (keeps PSI edits).")
    ] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=0, help="Backfill at most N versions.")] = None,
    resume_from: Annotated[
        str | None, typer.Option("--resume-from", help="Start at this version id (version order).")
    ] = None,
) -> None:
    """Write PlanRepository rows from artifacts for versions that lack them (all with --force)."""
    from app.ops.backfill import backfill_repository

    store = open_store()
    with Progress("backfill") as progress:
        report = backfill_repository(
            store.engine, dry_run=dry_run, state_file=state_file, force=force, limit=limit,
            resume_from=resume_from, progress=progress,
        )  # fmt: skip
    listed = report.would_backfill if dry_run else report.backfilled
    lines = [f"{'would backfill' if dry_run else 'backfilled'} {v}" for v in listed]
    lines += [f"needs derivation {v}: {reason}" for v, reason in report.needs_derivation.items()]
    lines += [f"failed {v}: {reason}" for v, reason in report.failed.items()]
    for line in [*lines, report.summary()]:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)
