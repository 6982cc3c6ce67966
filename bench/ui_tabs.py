"""Benchmark each tab of a plan's page in the web UI at 10k SKUs, as a planner opens it.

Generates the 10k-SKU set (100 families x 100 SKUs, 3,000 components, BOM depth 2, 12 months), plans it
twice into one SQLite file in ``db`` mode with ``scpln plan run`` (a base and a what-if with one
pre-build month, so the diff tab has a base), starts ``scpln serve`` without tokens and asks for every
tab of the what-if (``GET /ui/plans/{id}/{tab}``, the whole page as a browser gets it) several times
from one client on the same machine. The time is from request to last byte; the first request of each
tab is left out (it warms the database pages). Target: every tab within 150 ms at 10k SKUs.
Figures go to ``docs/benchmarks.md`` between this benchmark's own markers.

    python bench/ui_tabs.py --write docs/benchmarks.md
    python bench/ui_tabs.py --tab diff --workdir /tmp/ui-10k   # one tab; plans once, reuses the file
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.planning.samplegen import generate_sample  # noqa: E402
from bench.api import free_port, start, stop, wait_healthy  # noqa: E402
from bench.diff import plan  # noqa: E402
from bench.pages import write_section  # noqa: E402

MARK_BEGIN = "<!-- bench:ui-tabs:begin -->"
MARK_END = "<!-- bench:ui-tabs:end -->"
SET_10K = dict(families=100, skus_per_family=100, components=3000, bom_depth=2)
TABS = ("overview", "aggregate", "detail", "mrp", "capacity", "reconciliation", "exceptions", "psi", "diff")
TARGET_S = 0.150


def run(workdir: Path, repeat: int, tabs: tuple[str, ...] = TABS) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PLAN_STORAGE_MODE", "SCPLN_API_TOKENS", "JOBS_ENABLED")
    }
    env.update(SCPLN_DB=str(workdir / "hub.db"), SCPLN_INPROCESS_WORKER="0", PYTHONUNBUFFERED="1")
    if not (workdir / "hub.db").exists():
        inputs = generate_sample(workdir / "10k", months=12, seed=7, **SET_10K)
        print("planning the 10k base and what-if ...", flush=True)
        plan(env, inputs, "base-10k")
        plan(env, inputs, "whatif-10k", "--prebuild-months", "1")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start(["serve", "--port", str(port)], env, workdir / "server.log")
    results = {}
    try:
        wait_healthy(url, server)
        with httpx.Client(base_url=url, timeout=600) as client:
            for tab in tabs:
                path = f"/ui/plans/whatif-10k/{tab}" if tab != "overview" else "/ui/plans/whatif-10k"
                times, size = [], 0
                for i in range(repeat + 1):
                    started = time.perf_counter()
                    response = client.get(path)
                    body = response.content
                    if response.status_code != 200:
                        raise SystemExit(f"{path}: {response.status_code} {body[:300]!r}")
                    if i:
                        times.append(time.perf_counter() - started)
                    size = len(body)
                results[tab] = {"median_s": statistics.median(times), "max_s": max(times), "bytes": size}
                print(f"{tab}: {results[tab]['median_s'] * 1000:.0f} ms", flush=True)
    finally:
        stop(server)
    return {"tabs": results, "load": os.getloadavg()[1]}


def render(results: dict) -> str:
    lines = [
        MARK_BEGIN,
        "## Web UI tabs at 10k SKUs (`bench/ui_tabs.py`)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}; 5-minute load average {results['load']:.2f}. A 10k-SKU plan (100 families "
        "x 100 SKUs, 3,000 components) and a what-if of it stored in `db` mode in one SQLite file; each tab of "
        "the what-if's page asked for by one client of one `scpln serve` process, the first request left out. "
        "Target: every tab within 150 ms.",
        "",
        "| tab | median ms | max ms | page bytes | target |",
        "|---|---:|---:|---:|---|",
    ]
    for tab, r in results["tabs"].items():
        verdict = "met" if r["median_s"] <= TARGET_S else "missed"
        lines.append(
            f"| {tab} | {r['median_s'] * 1000:,.0f} | {r['max_s'] * 1000:,.0f} | {r['bytes']:,} | {verdict} |"
        )
    lines += ["", MARK_END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="replace this benchmark's section of the page")
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per tab")
    parser.add_argument("--tab", action="append", choices=TABS, help="time only this tab (repeatable)")
    parser.add_argument(
        "--workdir", type=Path, help="keep the planned database here and reuse it when it is there already"
    )
    args = parser.parse_args()
    tabs = tuple(args.tab or TABS)
    if args.write and tabs != TABS:
        parser.error("--write needs every tab")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="scpln-bench-ui-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = run(workdir, args.repeat, tabs)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    section = render(results)
    print(section)
    if args.write:
        write_section(args.write, MARK_BEGIN, MARK_END, section)


if __name__ == "__main__":
    main()
