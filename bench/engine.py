#!/usr/bin/env python3
"""Benchmark the planning engine (no I/O) on generated input sets.

Generates 1k- and 10k-SKU sets (12 months, 3-level BOM) with ``scpln sample generate``'s generator and
measures each size in a fresh child process: the stages alone, then the whole engine including the
artifact documents, and the child's peak resident memory. ``--write FILE`` replaces the engine section
of the benchmarks page.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.planning.inputs import load_input_set  # noqa: E402
from app.planning.model import PlanParams  # noqa: E402
from app.planning.pipeline import run_pipeline, run_stages  # noqa: E402
from app.planning.samplegen import generate_sample  # noqa: E402
from bench.pages import write_section  # noqa: E402

SIZES = {
    "1k": dict(families=10, skus_per_family=100, components=300, bom_depth=3),
    "10k": dict(families=20, skus_per_family=500, components=3000, bom_depth=3),
}
MARK_BEGIN = "<!-- engine-bench:begin -->"
MARK_END = "<!-- engine-bench:end -->"


def measure(size: str, workdir: Path) -> dict:
    """Plan one generated set (run in a child process so peak memory is this size's alone)."""
    path = generate_sample(workdir / size, months=12, seed=7, **SIZES[size])
    t0 = time.perf_counter()
    inputs = load_input_set(path)
    load_s = time.perf_counter() - t0
    params = PlanParams()
    gc.collect()
    t0 = time.perf_counter()
    run_stages(inputs, params)
    stages_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    content = run_pipeline(inputs, params, version_id=f"bench-{size}")
    total_s = time.perf_counter() - t0
    rows = sum(len(d["rows"]) for n, d in content.documents.items() if n.endswith(".json"))
    return {
        "size": size,
        "skus": len(inputs.skus),
        "items": len(inputs.items),
        "weeks": len(inputs.calendar.weeks),
        "load_s": load_s,
        "pipeline_s": total_s,
        "stages_s": stages_s,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": rows,
    }


def measure_in_child(size: str, workdir: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--one", size, "--workdir", str(workdir)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def render(results: list[dict]) -> str:
    lines = [
        MARK_BEGIN,
        "## Planning engine (`bench/engine.py`)",
        "",
        "Target: 10k SKUs in at most 15 s and 2 GB on this 2-core machine.",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}. Default parameters (int mode), 12 months, 3-level BOM.",
        "",
        "| set | SKUs | items | weeks | load inputs (s) | stages (s) | engine incl. documents (s) | peak RSS (MB) | artifact rows |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['size']} | {r['skus']:,} | {r['items']:,} | {r['weeks']} | {r['load_s']:.2f} | {r['stages_s']:.2f} "
            f"| {r['pipeline_s']:.2f} | {r['peak_mb']:.0f} | {r['rows']:,} |"
        )
    lines.append(MARK_END)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="1k,10k", help="comma-separated: 1k,10k")
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--write", type=Path, help="benchmarks page to update")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.workdir)))
        return
    results = [measure_in_child(s, args.workdir) for s in args.sizes.split(",")]
    section = render(results)
    print(section)
    if args.write:
        write_section(args.write, MARK_BEGIN, MARK_END, section)


if __name__ == "__main__":
    main()
