"""``scpln rollback`` and ``scpln rollforward``: the runbook in one command each way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.terminal import Progress, console, open_store


def rollback_cmd(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be done; change nothing.")
    ] = False,
    state_file: Annotated[
        Path | None,
        typer.Option(
            help="Resumable state of this rollback (default: tmp/rollback_state.json in the data directory)."
        ),
    ] = None,
    cutover_ts: Annotated[
        int | None, typer.Option(help="Clear runs.plan_job_id for runs created at/after this ms timestamp.")
    ] = None,
    backup_dir: Annotated[
        Path | None,
        typer.Option(help="Where the pre-rollback backup goes (default: backup/ in the data directory)."),
    ] = None,
    tmp_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the plan_series and RunRegistry snapshots go (default: tmp/ in the data directory)."
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            min=1,
            help="Processes reading, checking and repairing versions (default: one per core, at most 4, plus one).",
        ),
    ] = None,
) -> None:
    """Fall back to plan_artifacts in one command: pause, backup, snapshot, repair artifacts from the
    PlanRepository, pin files mode, clear run job links, verify, resume. Safe to run again after a crash.
    Exit 1 when a version needs a restore from the backup or a phase failed."""
    from app.ops.rollback import rollback

    open_store()
    with Progress("rollback") as progress:
        report = rollback(state_file=state_file, dry_run=dry_run, cutover_ts=cutover_ts,
                          backup_dir=backup_dir, tmp_dir=tmp_dir, progress=progress, jobs=jobs)  # fmt: skip
    console.print(report.as_text(), highlight=False, markup=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


def rollforward_cmd(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be done; change nothing.")
    ] = False,
    state_file: Annotated[
        Path | None,
        typer.Option(
            help="Resumable state of this roll-forward (default: tmp/rollforward_state.json in the data directory)."
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs", min=1, help="Processes reading and checking versions (default: one per core)."
        ),
    ] = None,
) -> None:
    """Return to the PlanRepository: backfill rows from artifacts, check both encodings agree, clear the
    storage pin. Safe to run again after a crash. Exit 1 (pin kept) when the check fails."""
    from app.ops.rollback import rollforward

    open_store()
    with Progress("rollforward") as progress:
        report = rollforward(state_file=state_file, dry_run=dry_run, progress=progress, jobs=jobs)
    console.print(report.as_text(), highlight=False, markup=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)
