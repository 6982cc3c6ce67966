"""``scpln db``: schema upgrade and downgrade, integrity check, backup, restore and maintenance."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from app.cli.terminal import Progress, console, copy_progress, open_engine
from app.errors import ScplnError

db_app = typer.Typer(
    help="The plan database: schema, integrity check, backup, restore, maintenance.", no_args_is_help=True
)


@contextmanager
def _schema_change() -> Iterator[None]:
    """Alembic reports unknown revisions and failed steps with its own types: a failed operation."""
    try:
        yield
    except Exception as exc:
        raise ScplnError(str(exc)) from exc


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Alembic revision to upgrade to.")] = "head",
) -> None:
    """Upgrade the database schema (Alembic) to a revision."""
    from app import db

    engine = open_engine(init=False)
    with _schema_change():
        db.upgrade_schema(engine, revision)
    console.print(f"schema at revision {db.schema_revision(engine)}", highlight=False)


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Alembic revision to downgrade to ('base' drops all).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation on a terminal.")] = False,
) -> None:
    """Downgrade the database schema (Alembic); tables of newer revisions and their data are dropped."""
    from app import db

    engine = open_engine(init=False)
    question = f"Downgrade the schema to {revision}? Tables added after it are dropped with their data."
    if not yes and sys.stdin.isatty() and not typer.confirm(question):
        raise typer.Exit(1)
    with _schema_change():
        db.downgrade_schema(engine, revision)
    console.print(f"schema at revision {db.schema_revision(engine) or 'base (empty)'}", highlight=False)


@db_app.command("check")
def db_check(
    version: Annotated[str | None, typer.Option("--version", help="Check only this version.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep", help="Decode and compare every version, even those whose certified digests match."
        ),
    ] = False,
    jobs: Annotated[
        int | None, typer.Option("--jobs", min=1, help="Processes checking versions (default: one per core).")
    ] = None,
) -> None:
    """Check database integrity, completeness of every version, agreement of both encodings and the
    plan identities. A version whose two encodings still hash to the digests recorded when one was
    made from the other is known to agree without decoding; any other is decoded, compared and checked
    against the plan identities. Exit 1 when anything is wrong."""
    from app.ops.check import check_database

    with Progress("check") as progress:
        report = check_database(open_engine(init=False), version, progress=progress, deep=deep, jobs=jobs)
    if as_json:
        import json

        print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    else:
        console.print(report.as_text(), highlight=False, markup=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


@db_app.command("backup")
def db_backup(
    dest: Annotated[
        Path | None,
        typer.Option(
            "--dest",
            help="Folder of the backups (default: backup/ in the data directory: SCPLN_HOME, else beside "
            "the database).",
        ),
    ] = None,
) -> None:
    """Copy the database while it is in use (SQLite online backup verified by integrity_check, pg_dump
    on PostgreSQL)."""
    from app.ops.backup import backup_database

    with Progress("backup") as progress:
        path = backup_database(dest, open_engine(init=False), progress=copy_progress(progress))
    console.print(f"Backup written and verified: {path}", highlight=False)


@db_app.command("restore")
def db_restore(
    file: Annotated[Path, typer.Argument(help="Backup file (.db for SQLite, .dump for PostgreSQL).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Replace the database's content with a verified backup (the current one is kept beside it)."""
    from app.ops.backup import restore_database

    if not yes and not typer.confirm(f"Replace the database's content with {file}?"):
        raise typer.Exit(1)
    with Progress("restore") as progress:
        result = restore_database(file, open_engine(init=False), progress=copy_progress(progress))
    console.print(f"Restored from {result.restored_from}", highlight=False)
    if result.previous_copy:
        console.print(f"The database as it was is kept in {result.previous_copy}", highlight=False)


@db_app.command("maint")
def db_maint(
    keep_days: Annotated[
        float | None, typer.Option("--keep-days", help="Delete versions older than N days.")
    ] = None,
    keep_versions: Annotated[
        int | None, typer.Option("--keep-versions", help="Delete versions beyond the newest N.")
    ] = None,
    kpi_keep_days: Annotated[
        float | None,
        typer.Option("--kpi-keep-days", help="Keep only the total KPIs of versions older than N days."),
    ] = None,
    vacuum: Annotated[bool, typer.Option("--vacuum/--no-vacuum", help="VACUUM afterwards.")] = True,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be done; change nothing.")
    ] = False,
) -> None:
    """Retention (running and approved versions are kept), KPI retention and VACUUM."""
    from app.ops.maint import run_maintenance

    with Progress("maintenance") as progress:
        report = run_maintenance(
            open_engine(), keep_days=keep_days, keep_versions=keep_versions, kpi_keep_days=kpi_keep_days,
            vacuum=vacuum, dry_run=dry_run, progress=progress,
        )  # fmt: skip
    console.print(report.as_text(), highlight=False, markup=False, soft_wrap=True)
