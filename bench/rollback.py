#!/usr/bin/env python3
"""Benchmark ``scpln rollback`` and ``scpln rollforward`` on many 1k-SKU versions (SQLite).

Generates one 1k-SKU input set (10 families x 100 SKUs, 300 components, BOM depth 3), plans it once and
stores that content under N version ids (the first through the plan store in ``both`` mode, the others
copied table to table in SQL with their write generations and certification: the volume of rows and
artifacts is what matters). Every other version stands for a ``db``-mode write: it is copied without
artifacts, as a db-mode write stores none (so the file holds no pages freed by deleting them), and gets
its ready copy through the plan store, so the rollback must make artifacts for half the versions. The rollback and the roll-forward are timed as
library calls, phase by phase. ``--profile`` prints the top functions of each
(cProfile). ``--write FILE`` replaces this benchmark's marked section of the benchmarks page. Target:
each under 30 s for 100 versions, with no native code of our own.

The full run builds a database of several GB (about 90 MB per version) and takes long to set up;
``--versions 20`` is a scaled-down run (rows per second are what compare).

    python bench/rollback.py --versions 100 --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select, text  # noqa: E402

from app import db  # noqa: E402
from app.ops import rollback as rb  # noqa: E402
from app.planning.pipeline import plan_input_set  # noqa: E402
from app.planning.samplegen import generate_sample  # noqa: E402
from app.storage import digests, ready_copy  # noqa: E402
from app.storage.plans import PlanStore  # noqa: E402
from app.storage.schema import (  # noqa: E402
    plan_artifacts,
    plan_kpis,
    plan_series,
    plan_versions,
    plan_write_generations,
)
from bench.pages import write_section  # noqa: E402

SIZE = dict(families=10, skus_per_family=100, components=300, bom_depth=3)
MARK_BEGIN = "<!-- bench:rollback:begin -->"
MARK_END = "<!-- bench:rollback:end -->"
TARGET_S = 30.0


def build(workdir: Path, versions: int) -> tuple[PlanStore, dict[str, Any]]:
    url = f"sqlite:///{workdir / 'scpln.db'}"
    db.init_db(url)
    store = PlanStore(db.get_engine(url))
    inputs = generate_sample(workdir / "input", **SIZE)
    started = time.perf_counter()
    first = "bench-0000"
    write = store.write_version(plan_input_set(inputs, version_id=first), mode="both")
    ready_copy.wait()
    ids = [f"bench-{i:04d}" for i in range(versions)]
    # half the versions stand for db-mode writes: rows and a ready copy, never any artifacts (so the file
    # holds no pages freed by deleting them); the rest are both-mode writes, whose artifacts are their copy
    stripped = ids[1::2]
    with store.engine.connect() as conn:
        first_texts = dict(
            conn.execute(
                select(plan_artifacts.c.name, plan_artifacts.c.json_text).where(
                    plan_artifacts.c.version_id == first
                )
            ).all()
        )
    with store.engine.begin() as conn:
        for i, vid in enumerate(ids[1:], start=1):
            tables = (plan_versions, plan_artifacts, plan_series, plan_kpis, plan_write_generations)
            # the counters last, as the plan store does: the copied rows' triggers find none to raise
            for table in (t for t in tables if not (t is plan_artifacts and vid in stripped)):
                cols = [c.name for c in table.columns if c.name not in ("id", "version_id")]
                # the documents name their version: a copy names its own
                values = [
                    "REPLACE(json_text, :old_id, :new_id)"
                    if c == "json_text"
                    else "created_at + :i"
                    if c == "created_at"
                    else c
                    for c in cols
                ]
                conn.execute(
                    text(
                        f"INSERT INTO {table.name} (version_id, {', '.join(cols)}) "
                        f"SELECT :vid, {', '.join(values)} FROM {table.name} WHERE version_id = :first"
                    ),
                    {"vid": vid, "first": first, "i": i, "old_id": f'"version_id":"{first}"',
                     "new_id": f'"version_id":"{vid}"'},
                )  # fmt: skip
            if vid in stripped:
                conn.execute(
                    plan_versions.update().where(plan_versions.c.version_id == vid).values(storage_mode="db")
                )
                digests.set_artifacts(conn, vid, None)
                continue
            # the copies' documents name their own version, so their artifacts digest is their own too
            texts = dict(
                conn.execute(
                    select(plan_artifacts.c.name, plan_artifacts.c.json_text).where(
                        plan_artifacts.c.version_id == vid
                    )
                ).all()
            )
            digests.set_artifacts(conn, vid, digests.artifacts_digest(texts))
    generation = store.certification(first).rows_generation
    for vid in stripped:
        old, new = f'"version_id":"{first}"', f'"version_id":"{vid}"'
        texts = {name: body.replace(old, new) for name, body in first_texts.items()}
        assert store.write_ready_copy(vid, texts, rows_generation=generation), vid
    db.dispose_engines(url)
    store = PlanStore(db.get_engine(url))
    facts = {
        "versions": versions,
        "rows_per_version": write.series_rows,
        "rows": write.series_rows * versions,
        "stripped": len(stripped),
        "setup_s": time.perf_counter() - started,
        "db_mb": (workdir / "scpln.db").stat().st_size / 1e6,
    }
    return store, facts


def reuse_or_build(workdir: Path, versions: int, keep: bool) -> tuple[PlanStore, dict[str, Any]]:
    """``build``, or with ``keep`` a copy of the database an earlier run kept (same version count)."""
    pristine, facts_file = workdir / "pristine.db", workdir / "pristine.json"
    for leftover in ("scpln.db", "scpln.db-wal", "scpln.db-shm", "rb.json", "rf.json", "backup", "tmp"):
        path = workdir / leftover
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    if keep and pristine.is_file() and facts_file.is_file():
        facts = json.loads(facts_file.read_text())
        if facts["versions"] == versions:
            shutil.copyfile(pristine, workdir / "scpln.db")
            _settle(pristine)
            url = f"sqlite:///{workdir / 'scpln.db'}"
            db.init_db(url)  # a copy kept by an older checkout: at head, as the commands bring it
            return PlanStore(db.get_engine(url)), facts
    store, facts = build(workdir, versions)
    if keep:
        url = store.engine.url.render_as_string(hide_password=False)
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        db.dispose_engines(url)
        shutil.copyfile(workdir / "scpln.db", pristine)
        _settle(pristine)
        facts_file.write_text(json.dumps(facts))
        store = PlanStore(db.get_engine(url))
    return store, facts


def _settle(kept: Path) -> None:
    """Write every dirty page to disk and drop the kept copy from the page cache, so the timed commands
    start as after a fresh build: the working database cached, no writeback pending."""
    os.sync()
    fd = os.open(kept, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def timed_phases(fn, profile: bool, **kwargs) -> tuple[Any, float, dict[str, float], str, float]:
    """Run ``fn`` with a progress hook that times each phase; optionally under cProfile. Also returns
    the CPU seconds it used, its worker processes included."""
    marks: list[tuple[str, float]] = []

    def progress(stage: str, _percent: int) -> None:
        name = stage.split()[0]
        if not marks or marks[-1][0] != name:
            marks.append((name, time.perf_counter()))

    profiler = cProfile.Profile() if profile else None
    print("cpu split before:", _cpu_split(), flush=True)
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    report = fn(progress=progress, **kwargs)
    if profiler:
        profiler.disable()
    total = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    print("cpu split:", _cpu_split(), flush=True)
    ends = [t for _, t in marks[1:]] + [started + total]
    phases = {name: end - t for (name, t), end in zip(marks, ends, strict=True) if name != "done"}
    top = ""
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        top = out.getvalue()
    return report, total, phases, top, cpu


def _cpu_seconds() -> float:
    """User and system CPU time of this process and its finished children (the worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _cpu_split() -> dict[str, float]:
    """User and system CPU so far of this process and of its finished children, and the machine's steal."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    with open("/proc/stat") as stat:
        steal = int(stat.readline().split()[8]) / os.sysconf("SC_CLK_TCK")
    return {
        "self_user": round(own.ru_utime, 1), "self_sys": round(own.ru_stime, 1),
        "children_user": round(children.ru_utime, 1), "children_sys": round(children.ru_stime, 1),
        "steal": round(steal, 1),
    }  # fmt: skip


def section(facts: dict[str, Any], back: dict[str, Any], forward: dict[str, Any]) -> str:
    lines = [
        MARK_BEGIN,
        "## Rollback and roll-forward (`bench/rollback.py`)",
        "",
        f"{facts['versions']} versions of one generated 1k-SKU plan ({facts['rows_per_version']:,} `plan_series` "
        f"rows each, {facts['rows']:,} in all, database {facts['db_mb']:,.0f} MB): {facts['stripped']} stand for "
        f"db-mode writes (rows and a ready copy, no artifacts), the rest for both-mode writes. SQLite, "
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores. "
        f"Target: each command under {TARGET_S:.0f} s for 100 versions.",
        "",
        "| command | total (s) | per version (s) | rows/s | CPU (s, all processes) | slowest phases (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in (("rollback", back), ("rollforward", forward)):
        slow = ", ".join(f"{p} {s:.1f}" for p, s in sorted(r["phases"].items(), key=lambda x: -x[1])[:3])
        lines.append(
            f"| {name} | {r['total']:.1f} | {r['total'] / facts['versions']:.2f} "
            f"| {facts['rows'] / r['total']:,.0f} | {r['cpu']:.0f} | {slow} |"
        )
    for note in back.get("notes", []):
        lines += ["", note]
    lines += ["", MARK_END]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--versions", type=int, default=100, help="versions to store (default 100)")
    ap.add_argument("--profile", action="store_true", help="print the top functions of each command")
    ap.add_argument("--note", action="append", default=[], help="a line added under the table")
    ap.add_argument("--write", type=Path, help="benchmarks page to update")
    ap.add_argument("--jobs", type=int, help="worker processes of both commands (default: theirs)")
    ap.add_argument(
        "--keep",
        type=Path,
        help="work in this folder and keep the built database there (as pristine.db); a later run with the "
        "same folder and version count starts from a copy of it instead of building again",
    )
    args = ap.parse_args()
    for name in ("PLAN_STORAGE_MODE", "JOBS_ENABLED", "SCPLN_INPUT_DIR", "REGISTRY_BACKEND"):
        os.environ.pop(name, None)
    with contextlib.ExitStack() as stack:
        if args.keep:
            workdir = args.keep.resolve()
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scpln-bench-rollback-")))
        store, facts = reuse_or_build(workdir, args.versions, keep=bool(args.keep))
        print(f"setup: {facts}", flush=True)
        os.environ["SCPLN_DB"] = str(workdir / "scpln.db")  # the RunRegistry snapshot reads the same file
        paths = {
            "state_file": workdir / "rb.json",
            "backup_dir": workdir / "backup",
            "tmp_dir": workdir / "tmp",
        }
        report, total, phases, top, cpu = timed_phases(
            rb.rollback, args.profile, engine=store.engine, jobs=args.jobs, **paths
        )
        assert len(report.repaired) == facts["stripped"], report.as_text()
        back = {"total": total, "phases": phases, "cpu": cpu, "notes": args.note}
        print(report.as_text(), "\nphases:", {k: round(v, 2) for k, v in phases.items()}, top, flush=True)
        report, total, phases, top, cpu = timed_phases(
            rb.rollforward, args.profile, engine=store.engine, state_file=workdir / "rf.json", jobs=args.jobs
        )
        assert report.ok, report.message
        forward = {"total": total, "phases": phases, "cpu": cpu}
        print(report.as_text(), "\nphases:", {k: round(v, 2) for k, v in phases.items()}, top, flush=True)
        db.dispose_engines()
    body = section(facts, back, forward)
    print(body)
    if args.write:
        write_section(args.write, MARK_BEGIN, MARK_END, body)


if __name__ == "__main__":
    main()
