#!/usr/bin/env python3
"""Benchmark the plan store on SQLite and PostgreSQL with a generated 10k-SKU plan.

Plans the set once, then on each database (a fresh SQLite file; a fresh PostgreSQL database created
and dropped here): the plan store's write of the version in ``db`` and ``both`` mode, its read back
from rows, and its export to files; and, in the same run, the raw bulk insert of the very same
``plan_series`` rows (``executemany`` on SQLite, ``COPY`` on PostgreSQL) into a second fresh database
(the same empty tables the store starts from), timing only the insert and its commit. The plan store's rate is compared with that raw rate (target:
at least 60 %) and the export time with the write time (target: no longer). ``--write FILE`` replaces
the storage section of the benchmarks page.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import platform
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import db  # noqa: E402
from app.ops.export import export_version  # noqa: E402
from app.planning.model import PlanContent  # noqa: E402
from app.planning.pipeline import plan_input_set  # noqa: E402
from app.planning.samplegen import generate_sample  # noqa: E402
from app.storage import codec_artifacts, codec_series  # noqa: E402
from app.storage.plans import PlanStore  # noqa: E402
from app.storage.schema import plan_versions  # noqa: E402
from bench.pages import write_section  # noqa: E402

SIZES = {
    "1k": dict(families=10, skus_per_family=100, components=300, bom_depth=3),
    "10k": dict(families=20, skus_per_family=500, components=3000, bom_depth=3),
}
MARK_BEGIN = "<!-- bench:storage:begin -->"
MARK_END = "<!-- bench:storage:end -->"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def timed(fn, *args, **kwargs) -> tuple[Any, float]:
    gc.collect()
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def renamed(content: PlanContent, version_id: str) -> PlanContent:
    """The same plan under another version id (the documents carry the id in their header)."""
    documents = {
        n: ({**d, "version_id": version_id} if isinstance(d, dict) and "version_id" in d else d)
        for n, d in content.documents.items()
    }
    return dataclasses.replace(content, version_id=version_id, documents=documents)


def raw_insert(store: PlanStore, content: PlanContent, version_id: str) -> tuple[int, float]:
    """Insert the codec's plan_series rows of ``content`` under ``version_id`` with the driver's own bulk
    path, outside the plan store; only the insert and its commit are timed."""
    rows = codec_series.encode(content)
    ts = db.now_ms()
    with store.engine.begin() as conn:
        conn.execute(
            insert(plan_versions).values(
                version_id=version_id, status="ready", approval="draft", created_at=ts, updated_at=ts,
                storage_mode="db", params_json="{}",
            )
        )  # fmt: skip
    batches = list(rows.series_batches(version_id, ts))
    count = sum(len(values) for _, values in batches)
    gc.collect()
    started = time.perf_counter()
    with store.engine.begin() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        for columns, values in batches:
            names = ", ".join(columns)
            if store.dialect == "sqlite":
                marks = ", ".join("?" * len(columns))
                cursor.executemany(f"INSERT INTO plan_series ({names}) VALUES ({marks})", values)
            else:
                with cursor.copy(f"COPY plan_series ({names}) FROM STDIN") as copy:
                    for row in values:
                        copy.write_row(row)
    return count, time.perf_counter() - started


def measure_store(url: str, label: str, content: PlanContent, workdir: Path) -> dict[str, Any]:
    """The plan store on a fresh database: write (db, then both mode), read back from rows, export."""
    db.init_db(url)
    store = PlanStore(db.get_engine(url))
    vid = content.version_id
    _, encode_s = timed(codec_series.encode, content)
    # as export_version makes the texts: documents decoded from either encoding are not re-validated
    _, artifacts_encode_s = timed(lambda c: codec_artifacts.encode(c, validated=True), content)
    result, write_db_s = timed(store.write_version, content, mode="db")
    _, read_s = timed(store.read_version, vid, mode="db")
    _, export_s = timed(export_version, vid, workdir / f"export-{label}", store)
    _, write_both_s = timed(store.write_version, renamed(content, f"{vid}-both"), mode="both")
    rows = result.series_rows
    return {
        "database": label,
        "rows": rows,
        "encode_s": encode_s,
        "artifacts_encode_s": artifacts_encode_s,
        "write_db_s": write_db_s,
        "write_both_s": write_both_s,
        "read_s": read_s,
        "export_s": export_s,
        "store_rate": rows / write_db_s,
        "read_rate": rows / read_s,
        "load": os.getloadavg()[0],
    }


def measure_raw(url: str, content: PlanContent) -> dict[str, Any]:
    """The raw bulk insert on another fresh database, so both start from the same empty tables."""
    db.init_db(url)
    rows, raw_s = raw_insert(PlanStore(db.get_engine(url)), content, f"{content.version_id}-raw")
    return {"raw_rows": rows, "raw_s": raw_s, "raw_rate": rows / raw_s}


@contextmanager
def fresh_database(label: str, sqlite_file: Path, pg_admin_url: str):
    """A fresh SQLite file or PostgreSQL database for one measurement, removed afterwards."""
    if label == "SQLite":
        url = f"sqlite:///{sqlite_file}"
        try:
            yield url
        finally:
            db.dispose_engines(url)
            for path in sqlite_file.parent.glob(sqlite_file.name + "*"):
                path.unlink()
        return
    with fresh_postgres(pg_admin_url) as url:
        yield url


@contextmanager
def fresh_postgres(admin_url: str):
    """A new, empty PostgreSQL database for the run, dropped afterwards."""
    url = make_url(db.normalize_url(admin_url))
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"scpln_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        bench_url = url.set(database=name).render_as_string(hide_password=False)
        try:
            yield bench_url
        finally:
            db.dispose_engines(bench_url)
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def render(size: str, plan_s: float, results: list[dict[str, Any]]) -> str:
    skus = SIZES[size]["families"] * SIZES[size]["skus_per_family"]
    lines = [
        MARK_BEGIN,
        "## Plan storage",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}. One generated {size} set ({skus:,} SKUs, "
        f"{SIZES[size]['components']:,} components, 12 months, planned in {plan_s:.1f} s), "
        f"{results[0]['rows']:,} `plan_series` rows. `bench/storage.py --write docs/benchmarks.md`.",
        "",
        "| database | plan store write, db mode (s) | rows/s | of which encode (s) | raw bulk insert (s) "
        "| raw rows/s | store / raw | write, both mode (s) | read from rows (s) | export (s) | export / write |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['database']} | {r['write_db_s']:.1f} | {r['store_rate']:,.0f} | {r['encode_s']:.1f} "
            f"| {r['raw_s']:.1f} | {r['raw_rate']:,.0f} | {r['store_rate'] / r['raw_rate']:.0%} "
            f"| {r['write_both_s']:.1f} | {r['read_s']:.1f} | {r['export_s']:.1f} "
            f"| {r['export_s'] / r['write_db_s']:.2f} |"
        )
    lines += [
        "",
        "Raw bulk insert: the same `plan_series` rows the codec makes, inserted "
        "into a second fresh database with `executemany` (SQLite) or `COPY` (PostgreSQL) in one transaction, timing the insert and "
        "its commit only. The plan store's time includes validating and encoding the plan "
        "(`codec_series.encode`, the *encode* column), the catalogue row and the commit. "
        "Targets: store / raw at least 60 %, export / write at most 1.",
        "",
        f"Load average while measuring: up to {max(r['load'] for r in results):.1f} on {os.cpu_count()} CPUs "
        "(figures from a busy machine are only comparable within the same run).",
        "",
    ]
    for r in results:
        insert_s = r["write_db_s"] - r["encode_s"]
        lines.append(
            f"- {r['database']}: validating and encoding rows take {r['encode_s'] / r['write_db_s']:.0%} "
            f"of the store's write; the rest (write minus a separate encode run) runs at about {r['rows'] / max(insert_s, 1e-9):,.0f} rows/s "
            f"({r['rows'] / max(insert_s, 1e-9) / r['raw_rate']:.0%} of raw). Export = read from rows "
            f"({r['read_s']:.1f} s: fetch and rebuild every row as a dict) + artifact encode "
            f"({r['artifacts_encode_s']:.1f} s: canonical JSON text) + files."
        )
    lines.append(MARK_END)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="10k")
    ap.add_argument("--pg-url", default=os.environ.get("SCPLN_TEST_PG_URL", DEFAULT_PG_URL))
    ap.add_argument("--no-pg", action="store_true", help="SQLite only")
    ap.add_argument("--write", type=Path, help="benchmarks page to update")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="scpln-bench-") as tmp:
        workdir = Path(tmp)
        path = generate_sample(workdir / "input", months=12, seed=7, **SIZES[args.size])
        content, plan_s = timed(plan_input_set, path, version_id=f"bench-{args.size}")
        print(f"planned {args.size} in {plan_s:.1f} s", file=sys.stderr)
        results = []
        for label in ("SQLite", "PostgreSQL"):
            if label == "PostgreSQL" and args.no_pg:
                continue
            with fresh_database(label, workdir / "raw.db", args.pg_url) as url:
                raw = measure_raw(url, content)
            with fresh_database(label, workdir / "store.db", args.pg_url) as url:
                results.append({**measure_store(url, label, content, workdir), **raw})
            assert results[-1]["rows"] == results[-1]["raw_rows"]
            print(results[-1], file=sys.stderr)
    section = render(args.size, plan_s, results)
    print(section)
    if args.write:
        write_section(args.write, MARK_BEGIN, MARK_END, section)


if __name__ == "__main__":
    main()
