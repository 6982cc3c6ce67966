"""``scpln jobs``: list plan jobs, pause and resume plan intake."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from app.cli.terminal import console, err, open_engine, open_store, timestamp

jobs_app = typer.Typer(help="Plan jobs: list, pause and resume intake.", no_args_is_help=True)


@jobs_app.command("list")
def jobs_list(
    limit: Annotated[int, typer.Option(help="How many jobs.")] = 20,
    status: Annotated[
        str | None, typer.Option(help="queued | running | succeeded | failed | canceled")
    ] = None,
) -> None:
    """List plan jobs, newest first."""
    from app.services.jobs import list_jobs

    open_store()
    jobs, total = list_jobs(limit=limit, status=status)
    table = Table(title=f"{len(jobs)} of {total} jobs")
    columns = ("job", "status", "progress", "stage", "version", "run", "attempts", "submitted (UTC)")
    for col in (*columns, "error"):
        table.add_column(col)
    for j in jobs:
        error = (j["error"] or {}).get("error", "")
        table.add_row(
            j["job_id"], j["status"] + (" (cancel requested)" if j["cancel_requested"] else ""),
            f"{j['progress'] or 0:.0f}%", j["stage"] or "", j["version_id"] or "", j["run_id"] or "",
            str(j["attempts"]), timestamp(j["submitted_at"]), error,
        )  # fmt: skip
    console.print(table)


@jobs_app.command("pause")
def jobs_pause(
    actor: Annotated[str | None, typer.Option(help="Who pauses (default: $USER).")] = None,
) -> None:
    """Stop plan intake (stored in the database) and checkpoint SQLite's WAL into the main file."""
    import getpass

    from app.ops.intake import pause_intake

    state = pause_intake(open_engine(), actor=actor or getpass.getuser())
    _print_intake(state)
    checkpoint = state.get("checkpoint")
    if checkpoint is not None and not checkpoint["complete"]:
        err.print("[yellow]WAL checkpoint incomplete[/]: readers still hold old snapshots; run it again")
        raise typer.Exit(1)


@jobs_app.command("resume")
def jobs_resume() -> None:
    """Clear the stored intake pause."""
    from app.ops.intake import resume_intake

    _print_intake(resume_intake(open_engine()))


def _print_intake(state: dict) -> None:
    status = "[green]open[/]" if state["open"] else "[red]paused[/]"
    reasons = []
    if state["paused_in_db"]:
        reasons.append(f"paused in the database by {state['paused_by'] or 'unknown'}")
    if not state["jobs_enabled_env"]:
        reasons.append("JOBS_ENABLED=0 in this environment")
    console.print(f"plan intake: {status}" + (f" ({'; '.join(reasons)})" if reasons else ""))
