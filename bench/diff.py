"""Benchmark the planner's diff as it is asked for: HTTP requests to a running hub.

Plans a generated 1k-SKU set (10 families x 100 SKUs, 300 components, 12 months) three times into one
SQLite file in ``db`` mode with ``scpln plan run``: a base plan, a what-if with one pre-build month
(hundreds of thousands of changed cells) and, through the API, a PSI reconcile child of the base with
20 detail edits. Then measures, against a ``scpln serve`` process, the latency of:

- ``GET /plans/{what-if}/diff?against={base}`` — the first page and a page from the middle;
- ``GET /plans/{child}/diff`` — the default base (the parent), the planner's usual question;
- ``GET /plans/{what-if}/diff.csv?against={base}`` — every changed cell.

Figures go to ``docs/benchmarks.md`` between this benchmark's own markers.

    python bench/diff.py --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.planning.samplegen import generate_sample  # noqa: E402
from bench.api import free_port, start, stop, wait_healthy  # noqa: E402
from bench.pages import write_section  # noqa: E402

MARK_BEGIN = "<!-- bench:diff:begin -->"
MARK_END = "<!-- bench:diff:end -->"
SET_1K = dict(families=10, skus_per_family=100, components=300, bom_depth=2)
TARGET_S = 1.0  # a diff page of two 1k-SKU versions


def plan(env: dict[str, str], inputs: Path, version_id: str, *extra: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "app.cli", "plan", "run", "--input", str(inputs), "--storage", "db",
         "--version-id", version_id, *extra], cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip


def timed(client: httpx.Client, path: str, repeat: int) -> dict:
    times, size, body = [], 0, None
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        content = response.content
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"{path}: {response.status_code} {content[:300]!r}")
        size = len(content)
        body = response
    summary = body.json() if body is not None and path.split("?")[0].endswith("/diff") else None
    return {
        "path": path,
        "median_s": statistics.median(times),
        "max_s": max(times),
        "bytes": size,
        "total": summary["total"] if summary else None,
    }


def reconcile_child(client: httpx.Client, base_id: str) -> str:
    rows = client.get(f"/plans/{base_id}/psi?level=det&limit=20").json()["rows"]
    edits = [{"key": r["key"], "field": "demand", "value": r["demand"] + 10} for r in rows]
    response = client.patch(f"/plans/{base_id}/psi", json={"level": "det", "edits": edits, "note": "bench"})
    if response.status_code != 200:
        raise SystemExit(f"PSI edit: {response.status_code} {response.text[:300]}")
    response = client.post(f"/plans/{base_id}/psi/reconcile?storage=db")
    if response.status_code != 201:
        raise SystemExit(f"reconcile: {response.status_code} {response.text[:300]}")
    return response.json()["version_id"]


def run(workdir: Path, repeat: int) -> dict:
    db = workdir / "hub.db"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PLAN_STORAGE_MODE", "SCPLN_API_TOKENS", "JOBS_ENABLED")
    }
    env.update(SCPLN_DB=str(db), SCPLN_INPROCESS_WORKER="0", PYTHONUNBUFFERED="1")
    inputs = generate_sample(workdir / "1k", months=12, seed=7, **SET_1K)
    print("planning the base and the what-if ...", flush=True)
    plan(env, inputs, "base-1k")
    plan(env, inputs, "whatif-1k", "--prebuild-months", "1")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start(["serve", "--port", str(port)], env, workdir / "server.log")
    try:
        wait_healthy(url, server)
        with httpx.Client(base_url=url, timeout=600) as client:
            child = reconcile_child(client, "base-1k")
            total = client.get("/plans/whatif-1k/diff?against=base-1k&limit=1").json()["total"]
            cases = {
                "what-if vs base, first page (500 rows)": "/plans/whatif-1k/diff?against=base-1k&limit=500",
                "what-if vs base, a middle page": f"/plans/whatif-1k/diff?against=base-1k&limit=500&offset={total // 2}",
                "reconcile child vs its parent (default base)": f"/plans/{child}/diff",
                "what-if vs base, whole diff.csv": "/plans/whatif-1k/diff.csv?against=base-1k",
            }  # fmt: skip
            results = {name: timed(client, path, repeat) for name, path in cases.items()}
    finally:
        stop(server)
    return {"cases": results, "changed": total, "load": os.getloadavg()[1]}


def render(results: dict) -> str:
    lines = [
        MARK_BEGIN,
        "## Diff",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}; 5-minute load average {results['load']:.2f}. A 1k-SKU set "
        "(10 families x 100 SKUs, 300 components, 12 months) planned three times into one SQLite file in "
        f"`db` mode: a base, a what-if with one pre-build month ({results['changed']:,} changed cells) and "
        "a PSI reconcile child of the base with 20 detail edits. Requests to one `scpln serve` process "
        "(httpx, one client), each repeated; the differences are found by the database. Target: a diff page "
        f"of two 1k-SKU versions in <= {TARGET_S:.0f} s.",
        "",
        "| request | median s | max s | bytes | changed cells | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, r in results["cases"].items():
        page = "csv" not in name
        verdict = ("met" if r["max_s"] <= TARGET_S else "missed") if page else "—"
        total = f"{r['total']:,}" if r["total"] is not None else "—"
        lines.append(
            f"| {name} | {r['median_s']:.3f} | {r['max_s']:.3f} | {r['bytes']:,} | {total} | {verdict} |"
        )
    lines += ["", MARK_END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="replace this benchmark's section of the page")
    parser.add_argument("--repeat", type=int, default=5, help="requests per case")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="scpln-bench-diff-"))
    try:
        results = run(workdir, args.repeat)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    section = render(results)
    print(section)
    if args.write:
        write_section(args.write, MARK_BEGIN, MARK_END, section)


if __name__ == "__main__":
    main()
