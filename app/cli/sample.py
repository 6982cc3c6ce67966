"""``scpln sample``: deterministic generated input sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.terminal import console

sample_app = typer.Typer(help="Sample input sets.", no_args_is_help=True)


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
