#!/usr/bin/env python3
"""Benchmark the whole ``scpln plan run`` process, as a user runs it, in each storage mode.

Generates the 1k- and 10k-SKU input sets with ``scpln sample generate`` (10 families x 100 SKUs with
300 components, and 100 families x 100 SKUs with 3,000 components; BOM depth 2, 12 months), then runs
the real ``scpln plan run --input DIR --storage MODE`` command once per mode, each into a fresh SQLite
database whose schema ``scpln db upgrade`` made beforehand (not timed: a hub's database exists before
its plans; the very first run of a new database adds the schema's creation, about 0.3 s), and reports the seconds from start to exit, the peak resident memory of the process
(``resource.getrusage`` of the finished child) and the bytes the database file holds afterwards.
``--write FILE`` replaces this benchmark's section of the benchmarks page.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pages import write_section  # noqa: E402

MARK_BEGIN = "<!-- bench:plan-run:begin -->"
MARK_END = "<!-- bench:plan-run:end -->"
SETS = {
    "1k": ["--families", "10", "--skus-per-family", "100", "--components", "300", "--bom-depth", "2"],
    "10k": ["--families", "100", "--skus-per-family", "100", "--components", "3000", "--bom-depth", "2"],
}
MODES = ("files", "both", "db")
GIB = 1024**3
#: (set, mode) -> (seconds, peak bytes, database bytes); None: no target.
TARGETS: dict[tuple[str, str], tuple[float | None, int | None, int | None]] = {
    ("10k", "files"): (10.0, 2 * GIB, None),
    ("10k", "both"): (20.0, 2 * GIB, 1_200_000_000),
    ("10k", "db"): (None, 2 * GIB, 400_000_000),
    ("1k", "both"): (3.0, None, None),
}


def scpln() -> list[str]:
    found = shutil.which("scpln", path=str(Path(sys.executable).parent)) or shutil.which("scpln")
    return [found] if found else [sys.executable, "-m", "app.cli"]


def generate(size: str, workdir: Path) -> Path:
    out = workdir / f"input-{size}"
    subprocess.run(
        [*scpln(), "sample", "generate", *SETS[size], "-o", str(out)], check=True, capture_output=True
    )
    return out


def run_once(inputs: Path, mode: str, database: Path) -> dict:
    """One ``scpln plan run`` in a child process; its own peak RSS is read when it has exited."""
    for leftover in database.parent.glob(database.name + "*"):
        leftover.unlink()
    env = {**os.environ, "SCPLN_DB": str(database), "PYTHONPATH": str(ROOT)}
    # a hub's database exists before its plans: the schema is made first, outside the timed run
    subprocess.run([*scpln(), "db", "upgrade"], env=env, check=True, capture_output=True)
    command = [*scpln(), "plan", "run", "--input", str(inputs), "--storage", mode]
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    errors = child.stderr.read().decode() if child.stderr else ""
    if child.returncode != 0:
        raise RuntimeError(f"plan run --storage {mode} failed:\n{errors}")
    # fold the write-ahead log into the file, as the next connection would, so the bytes are the version's
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    stored = sum(p.stat().st_size for p in database.parent.glob(database.name + "*"))
    cpu = usage.ru_utime + usage.ru_stime
    return {"mode": mode, "seconds": seconds, "cpu": cpu, "peak": usage.ru_maxrss * 1024, "db_bytes": stored}


def verdict(size: str, r: dict) -> str:
    limits = TARGETS.get((size, r["mode"]))
    if limits is None:
        return ""
    checks = []
    for value, limit, label in zip(
        (r["seconds"], r["peak"], r["db_bytes"]), limits, ("s", "peak", "database"), strict=True
    ):
        if limit is not None:
            checks.append(f"{label} {'met' if value <= limit else 'missed'}")
    return ", ".join(checks)


def median_run(inputs: Path, mode: str, database: Path, repeat: int) -> dict:
    """The run with the median seconds of ``repeat`` runs (this machine's cores are shared, so one run
    can be a third off), with the range of all of them."""
    runs = sorted((run_once(inputs, mode, database) for _ in range(repeat)), key=lambda r: r["seconds"])
    chosen = dict(runs[len(runs) // 2])
    chosen["range"] = f"{runs[0]['seconds']:.1f}–{runs[-1]['seconds']:.1f}" if repeat > 1 else ""
    return chosen


def render(results: dict[str, list[dict]], load: float, baseline: dict | None = None, repeat: int = 1) -> str:
    lines = [
        MARK_BEGIN,
        "## `scpln plan run`, the whole process (`bench/plan_run.py`)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{dt.date.today().isoformat()}. SQLite, one fresh database per run, its schema made first (not timed); "
        f"each figure is the median of {repeat} runs (the range of their seconds beside it). Sets from `scpln sample generate "
        f"--bom-depth 2 --months 12`: 1k = `{' '.join(SETS['1k'][:6])}`, 10k = `{' '.join(SETS['10k'][:6])}`. "
        "Time is from start to exit of the process; CPU seconds are the user and system time of the process and of the child "
        "process it forks (what the run costs whatever else the machine does); peak RSS is the larger of the "
        "two processes'; database bytes are the "
        "file after its write-ahead log is checkpointed.",
        "",
        "| set | mode | seconds | range (s) | CPU seconds | peak RSS (MB) | database (MB) | targets |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size, rows in results.items():
        for r in rows:
            lines.append(
                f"| {size} | {r['mode']} | {r['seconds']:.1f} | {r.get('range', '')} | {r['cpu']:.1f} "
                f"| {r['peak'] / 1e6:,.0f} | {r['db_bytes'] / 1e6:,.0f} "
                f"| {verdict(size, r)} |"
            )
    if baseline:
        lines += [
            "",
            f"Before: {baseline['label']}, run on the same sets and machine:",
            "",
            "| set | mode | seconds | CPU seconds | peak RSS (MB) | database (MB) |",
            "|---|---|---|---|---|---|",
        ]
        for size, rows in baseline["results"].items():
            for r in rows:
                lines.append(
                    f"| {size} | {r['mode']} | {r['seconds']:.1f} | {r['cpu']:.1f} | {r['peak'] / 1e6:,.0f} "
                    f"| {r['db_bytes'] / 1e6:,.0f} |"
                )
    lines += [
        "",
        "Targets: 10k `files` at most 10 s, `both` at most 20 s, peak RSS at most 2 GiB, database at most "
        "400 MB in `db` mode and 1.2 GB in `both` mode; 1k `both` at most 3 s.",
        "",
        f"5-minute load average at the end: {load:.1f} (the machine is shared; figures from a busy machine are "
        "only comparable within the same run).",
        MARK_END,
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", choices=sorted(SETS), default=["1k", "10k"])
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--write", type=Path, help="benchmarks page to update")
    ap.add_argument("--json", type=Path, help="also save the figures as JSON (a later run's --baseline)")
    ap.add_argument("--baseline", type=Path, help="JSON of an earlier run to show as 'before'")
    ap.add_argument("--label", default="this run", help="what the --json figures are of")
    ap.add_argument("--repeat", type=int, default=3, help="runs per set and mode; the median is shown")
    args = ap.parse_args()
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="scpln-plan-run-") as tmp:
        workdir = Path(tmp)
        for size in args.sizes:
            inputs = generate(size, workdir)
            results[size] = []
            for mode in args.modes:
                r = median_run(inputs, mode, workdir / f"{size}-{mode}.db", args.repeat)
                print(f"{size} {mode}: {r['seconds']:.1f} s ({r['cpu']:.1f} s CPU), {r['peak'] / 1e6:,.0f} MB peak, "
                      f"{r['db_bytes'] / 1e6:,.0f} MB database", file=sys.stderr)  # fmt: skip
                results[size].append(r)
    if args.json:
        args.json.write_text(
            json.dumps({"label": args.label, "results": results}, indent=1), encoding="utf-8"
        )
    baseline = json.loads(args.baseline.read_text(encoding="utf-8")) if args.baseline else None
    section = render(results, os.getloadavg()[1], baseline, args.repeat)
    print(section)
    if args.write:
        write_section(args.write, MARK_BEGIN, MARK_END, section)


if __name__ == "__main__":
    main()
