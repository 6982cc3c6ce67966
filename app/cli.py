"""The ``scpln`` command line: a thin edge over the engine, storage and operations.

Parses options, calls one service function and formats the answer. Exit codes: 0 success, 1 a failed
check or operation, 2 bad input (the problems listed one per line).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.planning.model import InputError, PlanContent, PlanParams

app = typer.Typer(help="scpln Planning Hub: plan, store and operate supply chain plans.", no_args_is_help=True)
plan_app = typer.Typer(help="Run and manage plan versions.", no_args_is_help=True)
sample_app = typer.Typer(help="Sample input sets.", no_args_is_help=True)
app.add_typer(plan_app, name="plan")
app.add_typer(sample_app, name="sample")

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

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err)
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
        text = f"{value:.1%}" if row["unit"] == "ratio" else (f"{value:,.2f}" if isinstance(value, float) else f"{value:,}")
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
    input_dir: Annotated[Path, typer.Option("--input", help="Input set folder (CSV files, optional calendar).")] = Path(
        "samples/planning"
    ),
    out: Annotated[Path | None, typer.Option("--out", help="Write the artifacts into this folder.")] = None,
    version_id: Annotated[str | None, typer.Option(help="Version id (default v<YYYYMMDD-HHMMSS>-<hex>).")] = None,
    round_mode: Annotated[str, typer.Option(help="int | none | dec1 | dec2")] = "int",
    lt_unit: Annotated[str, typer.Option(help="Lead-time unit of item.csv: day | week")] = "day",
    prebuild_months: Annotated[int, typer.Option(help="Months the aggregate may pre-build into.")] = 0,
    prebuild_weeks: Annotated[int, typer.Option(help="Weeks capacity reconciliation may pull work forward.")] = 4,
    cutover_date: Annotated[str | None, typer.Option(help="Cutover date YYYY-MM-DD for the anchor policy.")] = None,
    recon_window_days: Annotated[int, typer.Option(help="Days either side of the cutover (the 'at' zone).")] = 0,
    anchor_policy: Annotated[str | None, typer.Option(help="DET_near | AGG_far | blend")] = None,
    carryover: Annotated[str, typer.Option(help="none | prev | next | both | auto")] = "none",
    tol_abs: Annotated[float, typer.Option(help="Absolute tolerance of level reconciliation.")] = 1e-6,
    tol_rel: Annotated[float, typer.Option(help="Relative tolerance of level reconciliation.")] = 1e-6,
) -> None:
    """Plan an input set and write its artifacts."""
    from app.planning.pipeline import plan_input_set
    from app.storage.codec_artifacts import encode

    try:
        params = _params(locals())
    except ValueError as exc:
        err.print(f"[bold red]Invalid parameters[/]: {exc}")
        raise typer.Exit(2) from None
    started = time.perf_counter()
    try:
        with _Progress("planning") as progress:
            content = plan_input_set(input_dir, params, version_id=version_id, progress=progress)
    except InputError as exc:
        _fail_input(exc)
    except ValueError as exc:
        err.print(f"[bold red]Error[/]: {exc}")
        raise typer.Exit(2) from None
    elapsed = time.perf_counter() - started
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in encode(content).items():
            (out / name).write_text(text, encoding="utf-8")
        console.print(f"Wrote {len(content.documents)} artifacts to {out}")
    print_summary(content, elapsed)


def _params(values: dict) -> PlanParams:
    choices = {
        "round_mode": ("int", "none", "dec1", "dec2"),
        "lt_unit": ("day", "week"),
        "anchor_policy": (None, "DET_near", "AGG_far", "blend"),
        "carryover": ("none", "prev", "next", "both", "auto"),
    }
    for key, allowed in choices.items():
        if values[key] not in allowed:
            raise ValueError(f"{key} must be one of {', '.join(a for a in allowed if a)}, not {values[key]!r}")
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
        out, families=families, skus_per_family=skus_per_family, components=components,
        bom_depth=bom_depth, months=months, seed=seed,
    )
    console.print(f"Wrote input set to {path}: {families * skus_per_family} SKUs, {components} components, {months} months")


if __name__ == "__main__":
    main()
