"""``scpln plan``: run, list, show, export, import and delete plan versions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from app.cli.terminal import Progress, console, open_store, timestamp
from app.planning.model import PlanContent, PlanParams

plan_app = typer.Typer(help="Run and manage plan versions.", no_args_is_help=True)


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
    from app.services.plans import PlanRequest, run_plan
    from app.storage import modes
    from app.storage.codec_artifacts import encode_bytes

    params = _params(locals())
    if storage is not None:
        modes.check_mode(storage)
    request = PlanRequest(input_dir=str(input_dir.resolve()), version_id=version_id, params=params, note=note)
    store = open_store()
    with Progress("planning") as progress:
        outcome = run_plan(request, storage=storage, store=store, progress=progress)
    content = outcome.content
    w = outcome.write
    console.print(
        f"Stored {content.version_id} in mode [bold]{w.mode}[/]: {len(w.artifacts)} artifacts, "
        f"{w.series_rows:,} series rows, {w.kpi_rows} KPI rows"
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        # the texts just stored, when this mode stored them: each artifact is encoded once
        for name, text in (w.texts or encode_bytes(content)).items():
            (out / name).write_bytes(text)
        console.print(f"Wrote {len(content.documents)} artifacts to {out}")
    print_summary(content, outcome.seconds)


@plan_app.command("list")
def plan_list(
    limit: Annotated[int, typer.Option(help="How many versions.")] = 20,
    status: Annotated[str | None, typer.Option(help="running | ready | failed")] = None,
) -> None:
    """List plan versions, newest first."""
    versions, total = open_store().list_versions(limit=limit, status=status)
    table = Table(title=f"{len(versions)} of {total} plan versions")
    for col in ("version", "status", "approval", "storage", "created (UTC)", "input", "note"):
        table.add_column(col)
    for v in versions:
        table.add_row(
            v.version_id,
            v.status,
            v.approval,
            v.storage_mode or "",
            timestamp(v.created_at),
            v.input_label or "",
            v.note or "",
        )
    console.print(table)


@plan_app.command("show")
def plan_show(version_id: Annotated[str, typer.Argument(help="Version id.")]) -> None:
    """Show a version's catalogue entry, encodings and KPIs."""
    store = open_store()
    info = store.get_version(version_id)
    content = store.read_for_export(version_id) if info.status == "ready" else None
    console.print(
        f"[bold]{info.version_id}[/] status={info.status} approval={info.approval} "
        f"storage={info.storage_mode} created={timestamp(info.created_at)} input={info.input_label}"
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

    files = export_version(version_id, out, open_store())
    console.print(f"Exported {len(files)} artifacts of {version_id} to {out}")


@plan_app.command("import")
def plan_import(
    version_id: Annotated[str, typer.Argument(help="Version id.")],
    folder: Annotated[Path, typer.Argument(help="Folder holding the artifact files.")],
) -> None:
    """Store artifact files of a folder into plan_artifacts (the runbook's re-import)."""
    from app.ops.export import import_version

    open_store()
    names = import_version(version_id, folder)
    console.print(f"Imported {len(names)} artifacts into {version_id}: {', '.join(names)}")


@plan_app.command("delete")
def plan_delete(
    version_id: Annotated[str, typer.Argument(help="Version id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a version from every encoding."""
    from app.services.plans import delete_plan

    store = open_store()
    if not yes and not typer.confirm(f"Delete plan version {version_id} from every encoding?"):
        raise typer.Exit(1)
    delete_plan(version_id, store)
    console.print(f"Deleted {version_id}")


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
        try:
            dt.date.fromisoformat(values["cutover_date"])
        except ValueError:
            raise ValueError(f"cutover_date must be YYYY-MM-DD, not {values['cutover_date']!r}") from None
    fields = PlanParams.__dataclass_fields__
    return PlanParams(**{k: v for k, v in values.items() if k in fields})
