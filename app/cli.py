"""The ``scpln`` command line: a thin edge over the engine, storage and operations.

Parses options, calls one service function and formats the answer. Exit codes: 0 success, 1 a failed
check or operation, 2 bad input (the problems listed one per line).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.errors import ScplnError
from app.planning.model import InputError, PlanContent, PlanParams

app = typer.Typer(
    help="scpln Planning Hub: plan, store and operate supply chain plans.", no_args_is_help=True
)
plan_app = typer.Typer(help="Run and manage plan versions.", no_args_is_help=True)
sample_app = typer.Typer(help="Sample input sets.", no_args_is_help=True)
app.add_typer(plan_app, name="plan")
storage_app = typer.Typer(help="Storage mode of new plans (operator pin).", no_args_is_help=True)
app.add_typer(sample_app, name="sample")
app.add_typer(storage_app, name="storage")

console = Console()
err = Console(stderr=True)


def main() -> None:
    app()


class _Progress:
    """Stage progress: a rich bar on a terminal, plain lines otherwise."""

    def __init__(self, label: str):
        self.label = label
        self.tty = sys.stderr.isatty()
        self._bar = None

    def __enter__(self):
        if self.tty:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=100)
        return self

    def __call__(self, stage: str, percent: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=percent, description=f"{self.label}: {stage}")
        else:
            err.print(f"{self.label}: {stage} ({percent}%)", highlight=False)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()


def _fail_input(exc: InputError) -> None:
    err.print(f"[bold red]Invalid input set[/]: {len(exc.problems)} problem(s)")
    for p in exc.problems:
        err.print(f"  - {p.describe()}", highlight=False, markup=False)
    raise typer.Exit(2)


def _fail(exc: Exception, code: int = 1) -> None:
    err.print(f"[bold red]Error[/]: {exc}", highlight=False)
    raise typer.Exit(code)


def _store():
    """The plan store on ``SCPLN_DB``, its schema brought to head first."""
    from app import db
    from app.storage.plans import PlanStore

    db.init_db()
    return PlanStore()


def print_summary(content: PlanContent, elapsed: float | None = None) -> None:
    """KPI table and exception counts of a plan."""
    final = content.documents["plan_final.json"]
    kpis = {k["metric"]: k for k in final["kpis"] if k["bucket_type"] == "total"}
    table = Table(title=f"Plan {content.version_id}", show_header=True)
    table.add_column("KPI")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for name, row in kpis.items():
        value = row["value"]
        text = (
            f"{value:.1%}"
            if row["unit"] == "ratio"
            else (f"{value:,.2f}" if isinstance(value, float) else f"{value:,}")
        )
        table.add_row(name, text, row["unit"])
    console.print(table)
    counts: dict[str, int] = {}
    for e in content.documents["exceptions.json"]["rows"]:
        counts[e["type"]] = counts.get(e["type"], 0) + 1
    if counts:
        console.print("Exceptions: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    else:
        console.print("Exceptions: none")
    if elapsed is not None:
        console.print(f"Planned in {elapsed:.2f} s")


@plan_app.command("run")
def plan_run(
    input_dir: Annotated[
        Path, typer.Option("--input", help="Input set folder (CSV files, optional calendar).")
    ] = Path("samples/planning"),
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the artifacts into this folder.")
    ] = None,
    storage: Annotated[
        str | None, typer.Option(help="db | files | both (default: operator pin, PLAN_STORAGE_MODE, both).")
    ] = None,
    version_id: Annotated[
        str | None, typer.Option(help="Version id (default v<YYYYMMDD-HHMMSS>-<hex>).")
    ] = None,
    note: Annotated[str | None, typer.Option(help="A note stored with the version.")] = None,
    round_mode: Annotated[str, typer.Option(help="int | none | dec1 | dec2")] = "int",
    lt_unit: Annotated[str, typer.Option(help="Lead-time unit of item.csv: day | week")] = "day",
    prebuild_months: Annotated[int, typer.Option(help="Months the aggregate may pre-build into.")] = 0,
    prebuild_weeks: Annotated[
        int, typer.Option(help="Weeks capacity reconciliation may pull work forward.")
    ] = 4,
    cutover_date: Annotated[
        str | None, typer.Option(help="Cutover date YYYY-MM-DD for the anchor policy.")
    ] = None,
    recon_window_days: Annotated[
        int, typer.Option(help="Days either side of the cutover (the 'at' zone).")
    ] = 0,
    anchor_policy: Annotated[str | None, typer.Option(help="DET_near | AGG_far | blend")] = None,
    carryover: Annotated[str, typer.Option(help="none | prev | next | both | auto")] = "none",
    tol_abs: Annotated[float, typer.Option(help="Absolute tolerance of level reconciliation.")] = 1e-6,
    tol_rel: Annotated[float, typer.Option(help="Relative tolerance of level reconciliation.")] = 1e-6,
) -> None:
    """Plan an input set, store the version in the database and optionally write its artifacts."""
    from app.service import PlanRequest, run_plan
    from app.storage.codec_artifacts import encode

    try:
        params = _params(locals())
        if storage is not None and storage not in ("db", "files", "both"):
            raise ValueError(f"storage must be db, files or both, not {storage!r}")
    except ValueError as exc:
        err.print(f"[bold red]Invalid parameters[/]: {exc}")
        raise typer.Exit(2) from None
    request = PlanRequest(input_dir=str(input_dir.resolve()), version_id=version_id, params=params, note=note)
    try:
        store = _store()
        with _Progress("planning") as progress:
            outcome = run_plan(request, storage=storage, store=store, progress=progress)
    except InputError as exc:
        _fail_input(exc)
    except ValueError as exc:
        _fail(exc, 2)
    except ScplnError as exc:
        _fail(exc)
    content = outcome.content
    w = outcome.write
    console.print(
        f"Stored {content.version_id} in mode [bold]{w.mode}[/]: {len(w.artifacts)} artifacts, "
        f"{w.series_rows:,} series rows, {w.kpi_rows} KPI rows"
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        # the texts just stored, when this mode stored them: each artifact is encoded once
        for name, text in (w.texts or encode(content)).items():
            (out / name).write_text(text, encoding="utf-8")
        console.print(f"Wrote {len(content.documents)} artifacts to {out}")
    print_summary(content, outcome.seconds)


@plan_app.command("list")
def plan_list(
    limit: Annotated[int, typer.Option(help="How many versions.")] = 20,
    status: Annotated[str | None, typer.Option(help="running | ready | failed")] = None,
) -> None:
    """List plan versions, newest first."""
    versions, total = _store().list_versions(limit=limit, status=status)
    table = Table(title=f"{len(versions)} of {total} plan versions")
    for col in ("version", "status", "approval", "storage", "created (UTC)", "input", "note"):
        table.add_column(col)
    for v in versions:
        table.add_row(
            v.version_id,
            v.status,
            v.approval,
            v.storage_mode or "",
            _ts(v.created_at),
            v.input_label or "",
            v.note or "",
        )
    console.print(table)


@plan_app.command("show")
def plan_show(version_id: Annotated[str, typer.Argument(help="Version id.")]) -> None:
    """Show a version's catalogue entry, encodings and KPIs."""
    store = _store()
    try:
        info = store.get_version(version_id)
        content = store.read_for_export(version_id) if info.status == "ready" else None
    except ScplnError as exc:
        _fail(exc)
    console.print(
        f"[bold]{info.version_id}[/] status={info.status} approval={info.approval} "
        f"storage={info.storage_mode} created={_ts(info.created_at)} input={info.input_label}"
    )
    console.print(
        f"artifacts: {', '.join(store.artifact_names(version_id)) or 'none'}; "
        f"PlanRepository rows: {'yes' if store.has_rows(version_id) else 'no'}"
    )
    if info.error:
        console.print(f"[red]error[/]: {info.error}")
    if content is not None:
        print_summary(content)


@plan_app.command("export")
def plan_export(
    version_id: Annotated[str, typer.Argument(help="Version id.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder to write the artifacts into.")],
) -> None:
    """Write every artifact of a version (from PlanRepository rows when they exist, else artifacts)."""
    from app.ops.export import export_version

    try:
        files = export_version(version_id, out, _store())
    except ScplnError as exc:
        _fail(exc)
    console.print(f"Exported {len(files)} artifacts of {version_id} to {out}")


@plan_app.command("import")
def plan_import(
    version_id: Annotated[str, typer.Argument(help="Version id.")],
    folder: Annotated[Path, typer.Argument(help="Folder holding the artifact files.")],
) -> None:
    """Store artifact files of a folder into plan_artifacts (the runbook's re-import)."""
    from app.ops.export import import_version

    _store()
    try:
        names = import_version(version_id, folder)
    except (FileNotFoundError, ValueError) as exc:
        _fail(exc, 2)
    console.print(f"Imported {len(names)} artifacts into {version_id}: {', '.join(names)}")


@plan_app.command("delete")
def plan_delete(
    version_id: Annotated[str, typer.Argument(help="Version id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a version from every encoding."""
    store = _store()
    if not yes and not typer.confirm(f"Delete plan version {version_id} from every encoding?"):
        raise typer.Exit(1)
    try:
        store.delete_version(version_id)
    except ScplnError as exc:
        _fail(exc)
    console.print(f"Deleted {version_id}")


@storage_app.command("mode")
def storage_mode(
    mode: Annotated[str | None, typer.Argument(help="db | files | both: pin new plans to this mode.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the operator pin.")] = False,
) -> None:
    """Show, pin or clear the storage mode of new plans."""
    from app.storage import settings as st

    store = _store()
    if clear:
        st.set_storage_pin(store.engine, None)
    elif mode is not None:
        try:
            st.set_storage_pin(store.engine, mode)
        except ValueError as exc:
            _fail(exc, 2)
    pin = st.storage_pin(store.engine)
    console.print(
        f"storage mode: [bold]{st.effective_mode(store.engine)}[/] "
        f"(pin: {pin or 'none'}, default: {st.default_mode()})"
    )


repo_app = typer.Typer(
    help="PlanRepository maintenance (rows in plan_series/plan_kpis).", no_args_is_help=True
)
app.add_typer(repo_app, name="repo")


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

    store = _store()
    try:
        with _Progress("backfill") as progress:
            report = backfill_repository(
                store.engine, dry_run=dry_run, state_file=state_file, force=force, limit=limit,
                resume_from=resume_from, progress=progress,
            )  # fmt: skip
    except (ScplnError, ValueError) as exc:
        _fail(exc)
    listed = report.would_backfill if dry_run else report.backfilled
    lines = [f"{'would backfill' if dry_run else 'backfilled'} {v}" for v in listed]
    lines += [f"needs derivation {v}: {reason}" for v, reason in report.needs_derivation.items()]
    lines += [f"failed {v}: {reason}" for v, reason in report.failed.items()]
    for line in [*lines, report.summary()]:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


def _ts(ms: int | None) -> str:
    import datetime as dt

    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _params(values: dict) -> PlanParams:
    choices = {
        "round_mode": ("int", "none", "dec1", "dec2"),
        "lt_unit": ("day", "week"),
        "anchor_policy": (None, "DET_near", "AGG_far", "blend"),
        "carryover": ("none", "prev", "next", "both", "auto"),
    }
    for key, allowed in choices.items():
        if values[key] not in allowed:
            raise ValueError(
                f"{key} must be one of {', '.join(a for a in allowed if a)}, not {values[key]!r}"
            )
    if values["cutover_date"]:
        import datetime as dt

        try:
            dt.date.fromisoformat(values["cutover_date"])
        except ValueError:
            raise ValueError(f"cutover_date must be YYYY-MM-DD, not {values['cutover_date']!r}") from None
    fields = PlanParams.__dataclass_fields__
    return PlanParams(**{k: v for k, v in values.items() if k in fields})


@sample_app.command("generate")
def sample_generate(
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder to write the input set into.")],
    families: Annotated[int, typer.Option(help="Product families.")] = 3,
    skus_per_family: Annotated[int, typer.Option(help="Finished goods per family.")] = 5,
    components: Annotated[int, typer.Option(help="Components in the BOM.")] = 20,
    bom_depth: Annotated[int, typer.Option(help="BOM levels below the finished goods.")] = 2,
    months: Annotated[int, typer.Option(help="Months in the horizon.")] = 12,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 1,
) -> None:
    """Write a deterministic generated input set."""
    from app.planning.samplegen import generate_sample

    path = generate_sample(
        out,
        families=families,
        skus_per_family=skus_per_family,
        components=components,
        bom_depth=bom_depth,
        months=months,
        seed=seed,
    )
    console.print(
        f"Wrote input set to {path}: {families * skus_per_family} SKUs, {components} components, {months} months"
    )


token_app = typer.Typer(help="API tokens (stored hashed; shown once).", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="viewer | planner | approver | admin")],
    label: Annotated[str | None, typer.Option(help="What the token is for (stored with it).")] = None,
) -> None:
    """Create an API token with a role; the token is printed once and only its SHA-256 is stored."""
    from app.storage.tokens import create_token

    store = _store()
    try:
        token = create_token(store.engine, role.strip().lower(), label)
    except ValueError as exc:
        _fail(exc, 2)
    err.print(f"Created a {role} token{f' ({label})' if label else ''}; it is shown only this once:")
    print(token)


@token_app.command("list")
def token_list() -> None:
    """The stored API tokens: the first 12 hex digits of each hash, role, label and creation time."""
    import datetime as dt

    from app.storage.tokens import list_tokens

    found = list_tokens(_store().engine)
    if not found:
        err.print("no stored tokens (SCPLN_API_TOKENS may still hold some)")
    for t in found:
        created = dt.datetime.fromtimestamp(t.created_at / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        print(f"{t.token_hash[:12]}  {t.role:<8}  {created}  {t.label or ''}".rstrip())


@token_app.command("revoke")
def token_revoke(
    which: Annotated[
        str,
        typer.Argument(
            help="The token itself, or the start of its hash as `scpln token list` shows it (8+ hex)."
        ),
    ],
) -> None:
    """Delete a stored token: requests with it get 401 from now on (UI sessions made with it end too)."""
    from app.storage.tokens import hash_token, list_tokens, revoke_token

    engine = _store().engine
    hashes = [t.token_hash for t in list_tokens(engine)]
    wanted = hash_token(which)
    if wanted not in hashes:
        prefix = which.strip().lower()
        if len(prefix) < 8 or any(c not in "0123456789abcdef" for c in prefix):
            _fail(f"no stored token matches {which!r} (give the token or 8+ hex digits of its hash)", 2)
        matches = [h for h in hashes if h.startswith(prefix)]
        if len(matches) != 1:
            _fail(f"{len(matches)} stored tokens start with {prefix!r}; give more digits", 2)
        wanted = matches[0]
    revoke_token(engine, wanted)
    err.print(f"revoked token {wanted[:12]}")


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (non-loopback needs API tokens).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers_inprocess: Annotated[
        bool,
        typer.Option(
            "--workers-inprocess/--no-workers-inprocess",
            help="Run a job worker inside the server (also off with SCPLN_INPROCESS_WORKER=0).",
        ),
    ] = True,
    plan_sample_if_empty: Annotated[
        bool, typer.Option("--plan-sample-if-empty", help="Plan the default input set if no version exists.")
    ] = False,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs) after bringing the database schema to head."""
    import uvicorn

    from app.api import auth
    from app.api.app import create_app
    from app.config import get_settings

    try:
        _store()
        refusal = auth.bind_refusal(host)
    except ValueError as exc:
        _fail(exc, 2)
    if refusal:
        _fail(refusal, 2)
    if plan_sample_if_empty:
        from app.api.app import plan_sample_if_empty as seed

        try:
            seeded = seed()
        except (InputError, ScplnError, ValueError) as exc:
            _fail(exc)
        if seeded:
            err.print(f"Planned the sample input set as {seeded['version_id']}")
    worker = None
    if workers_inprocess and get_settings().scpln_inprocess_worker:
        from app.jobs.service import start_inprocess_worker

        worker = start_inprocess_worker()
    err.print(f"scpln Planning Hub on http://{host}:{port} (API docs at /docs)")
    try:
        uvicorn.run(create_app(), host=host, port=port, log_level="info")
    finally:
        if worker is not None:
            worker.stop()


jobs_app = typer.Typer(help="Plan jobs: list, pause and resume intake.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


@app.command("worker")
def worker(
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker threads (or processes).")] = 1,
    worker_type: Annotated[str, typer.Option("--worker-type", help="thread | process")] = "thread",
    shutdown_timeout: Annotated[
        float | None, typer.Option(help="Seconds SIGTERM waits for running jobs (default: until done).")
    ] = None,
    nice: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=19,
            help="Lower the workers' CPU priority by this much (default SCPLN_WORKER_NICE, 10).",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="Serve this worker's plan-write and job metrics on 127.0.0.1:PORT/metrics."
        ),
    ] = None,
) -> None:
    """Run plan jobs from the queue until SIGTERM (running jobs finish) or SIGINT."""
    import logging

    from app.jobs.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("huey", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        run_worker(
            workers,
            worker_type,
            shutdown_timeout,
            announce=lambda line: print(line, flush=True),
            nice=nice,
            metrics_port=metrics_port,
        )
    except ValueError as exc:
        _fail(exc, 2)


@jobs_app.command("list")
def jobs_list(
    limit: Annotated[int, typer.Option(help="How many jobs.")] = 20,
    status: Annotated[
        str | None, typer.Option(help="queued | running | succeeded | failed | canceled")
    ] = None,
) -> None:
    """List plan jobs, newest first."""
    from app.jobs.service import list_jobs

    _store()
    try:
        jobs, total = list_jobs(limit=limit, status=status)
    except ValueError as exc:
        _fail(exc, 2)
    table = Table(title=f"{len(jobs)} of {total} jobs")
    columns = ("job", "status", "progress", "stage", "version", "run", "attempts", "submitted (UTC)")
    for col in (*columns, "error"):
        table.add_column(col)
    for j in jobs:
        error = (j["error"] or {}).get("error", "")
        table.add_row(
            j["job_id"], j["status"] + (" (cancel requested)" if j["cancel_requested"] else ""),
            f"{j['progress'] or 0:.0f}%", j["stage"] or "", j["version_id"] or "", j["run_id"] or "",
            str(j["attempts"]), _ts(j["submitted_at"]), error,
        )  # fmt: skip
    console.print(table)


@app.command("rollback")
def rollback_cmd(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be done; change nothing.")
    ] = False,
    state_file: Annotated[Path, typer.Option(help="Resumable state of this rollback.")] = Path(
        "tmp/rollback_state.json"
    ),
    cutover_ts: Annotated[
        int | None, typer.Option(help="Clear runs.plan_job_id for runs created at/after this ms timestamp.")
    ] = None,
    backup_dir: Annotated[Path, typer.Option(help="Where the pre-rollback backup goes.")] = Path("backup"),
    tmp_dir: Annotated[Path, typer.Option(help="Where the plan_series and RunRegistry snapshots go.")] = Path(
        "tmp"
    ),
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

    _store()
    try:
        with _Progress("rollback") as progress:
            report = rollback(state_file=state_file, dry_run=dry_run, cutover_ts=cutover_ts,
                              backup_dir=backup_dir, tmp_dir=tmp_dir, progress=progress, jobs=jobs)  # fmt: skip
    except ScplnError as exc:
        _fail(exc)
    console.print(report.as_text(), highlight=False, markup=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


@app.command("rollforward")
def rollforward_cmd(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be done; change nothing.")
    ] = False,
    state_file: Annotated[Path, typer.Option(help="Resumable state of this roll-forward.")] = Path(
        "tmp/rollforward_state.json"
    ),
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

    _store()
    try:
        with _Progress("rollforward") as progress:
            report = rollforward(state_file=state_file, dry_run=dry_run, progress=progress, jobs=jobs)
    except ScplnError as exc:
        _fail(exc)
    console.print(report.as_text(), highlight=False, markup=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


db_app = typer.Typer(
    help="The plan database: schema, integrity check, backup, restore, maintenance.", no_args_is_help=True
)
app.add_typer(db_app, name="db")


def _engine(init: bool = True):
    """The engine of ``SCPLN_DB``; ``init`` brings the schema to head first (a check or a backup must
    look at the database as it is, so they do not)."""
    from app import db

    if init:
        db.init_db()
    return db.get_engine()


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Alembic revision to upgrade to.")] = "head",
) -> None:
    """Upgrade the database schema (Alembic) to a revision."""
    from app import db

    engine = _engine(init=False)
    try:
        db.upgrade_schema(engine, revision)
    except Exception as exc:  # alembic reports unknown revisions and failed steps with its own types
        _fail(exc)
    console.print(f"schema at revision {db.schema_revision(engine)}", highlight=False)


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Alembic revision to downgrade to ('base' drops all).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation on a terminal.")] = False,
) -> None:
    """Downgrade the database schema (Alembic); tables of newer revisions and their data are dropped."""
    from app import db

    engine = _engine(init=False)
    question = f"Downgrade the schema to {revision}? Tables added after it are dropped with their data."
    if not yes and sys.stdin.isatty() and not typer.confirm(question):
        raise typer.Exit(1)
    try:
        db.downgrade_schema(engine, revision)
    except Exception as exc:
        _fail(exc)
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

    try:
        with _Progress("check") as progress:
            report = check_database(_engine(init=False), version, progress=progress, deep=deep, jobs=jobs)
    except ScplnError as exc:
        _fail(exc)
    if as_json:
        import json

        print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    else:
        console.print(report.as_text(), highlight=False, markup=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


class _BackupMethod(StrEnum):
    online = "online"
    file = "file"


class _BackupVerify(StrEnum):
    full = "full"
    copy = "copy"


@db_app.command("backup")
def db_backup(
    dest: Annotated[Path, typer.Option("--dest", help="Folder of the backups.")] = Path("backup"),
    method: Annotated[
        _BackupMethod,
        typer.Option(
            "--method",
            help="SQLite only. 'online': the backup API in steps, writers keep going. 'file': "
            "checkpoint the WAL, hold the write lock and copy the file as bytes (much faster on big "
            "databases). Readers go on; writers wait for the copy and fail after their 30 s busy "
            "timeout, so pause writers on big databases. Falls back to 'online' when writers never "
            "pause.",
        ),
    ] = _BackupMethod.online,
    verify: Annotated[
        _BackupVerify,
        typer.Option(
            "--verify",
            help="SQLite only. 'full': PRAGMA integrity_check on the copy. 'copy' (needs --method "
            "file): read the copy back and compare its checksum and size with the source's, then "
            "open it as SQLite; much faster, but does not re-check the source's own structure.",
        ),
    ] = _BackupVerify.full,
) -> None:
    """Copy the database while it is in use (SQLite online backup or file copy, pg_dump on
    PostgreSQL), verified."""
    from app.ops.backup import backup_database

    try:
        with _Progress("backup") as progress:
            path = backup_database(
                dest, _engine(init=False), progress=_copy_progress(progress),
                method=method.value, verify=verify.value,
            )  # fmt: skip
    except ScplnError as exc:
        _fail(exc)
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
    try:
        with _Progress("restore") as progress:
            result = restore_database(file, _engine(init=False), progress=_copy_progress(progress))
    except ScplnError as exc:
        _fail(exc)
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

    try:
        with _Progress("maintenance") as progress:
            report = run_maintenance(
                _engine(), keep_days=keep_days, keep_versions=keep_versions, kpi_keep_days=kpi_keep_days,
                vacuum=vacuum, dry_run=dry_run, progress=progress,
            )  # fmt: skip
    except ValueError as exc:
        _fail(exc, 2)
    except ScplnError as exc:
        _fail(exc)
    console.print(report.as_text(), highlight=False, markup=False, soft_wrap=True)


@jobs_app.command("pause")
def jobs_pause(
    actor: Annotated[str | None, typer.Option(help="Who pauses (default: $USER).")] = None,
) -> None:
    """Stop plan intake (stored in the database) and checkpoint SQLite's WAL into the main file."""
    import getpass

    from app.ops.intake import pause_intake

    state = pause_intake(_engine(), actor=actor or getpass.getuser())
    _print_intake(state)
    checkpoint = state.get("checkpoint")
    if checkpoint is not None and not checkpoint["complete"]:
        err.print("[yellow]WAL checkpoint incomplete[/]: readers still hold old snapshots; run it again")
        raise typer.Exit(1)


@jobs_app.command("resume")
def jobs_resume() -> None:
    """Clear the stored intake pause."""
    from app.ops.intake import resume_intake

    _print_intake(resume_intake(_engine()))


def _print_intake(state: dict) -> None:
    status = "[green]open[/]" if state["open"] else "[red]paused[/]"
    reasons = []
    if state["paused_in_db"]:
        reasons.append(f"paused in the database by {state['paused_by'] or 'unknown'}")
    if not state["jobs_enabled_env"]:
        reasons.append("JOBS_ENABLED=0 in this environment")
    console.print(f"plan intake: {status}" + (f" ({'; '.join(reasons)})" if reasons else ""))


def _copy_progress(progress: _Progress):
    """Page-copy progress as whole percents, reported only when the percent moves."""
    last = [-1]

    def report(done: int, total: int) -> None:
        percent = int(100 * done / total) if total else 100
        if percent != last[0]:
            last[0] = percent
            progress("copying", percent)

    return report


if __name__ == "__main__":
    main()
