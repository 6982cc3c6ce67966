#!/usr/bin/env python3
"""What the write-generation triggers (revision 0005) cost a bulk write, on SQLite and PostgreSQL.

Plans one generated 1k-SKU set once, then for each database and each round writes it through the plan
store in ``db`` mode on a fresh database with the triggers and on one without them (dropped right
after the migrations), and the same rows with the raw bulk insert of ``bench/storage.py`` (with the
triggers, as the store's target compares with). Rounds alternate the two kinds so a busy machine
weighs on both alike; the table gives the median. ``--write FILE`` replaces this benchmark's marked
section of the benchmarks page.

    python bench/generations.py --rounds 3 --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import db  # noqa: E402
from app.planning.pipeline import plan_input_set  # noqa: E402
from app.planning.samplegen import generate_sample  # noqa: E402
from app.storage import ready_copy  # noqa: E402
from app.storage.plans import PlanStore  # noqa: E402
from bench.pages import write_section  # noqa: E402
from bench.storage import fresh_database, raw_insert, renamed, timed  # noqa: E402

SIZE = dict(families=10, skus_per_family=100, components=300, bom_depth=3)
MARK_BEGIN = "<!-- bench:generations:begin -->"
MARK_END = "<!-- bench:generations:end -->"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def _revision():
    path = ROOT / "migrations" / "versions" / "0005_write_generations.py"
    spec = importlib.util.spec_from_file_location("revision_0005", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def drop_triggers(url: str) -> None:
    revision = _revision()
    engine = db.get_engine(url)
    with engine.begin() as conn:
        for table in revision.CONTENT_TABLES:
            for event in ("insert", "update", "delete", "truncate"):
                if engine.dialect.name == "sqlite" and event == "truncate":
                    continue
                on = f" ON {table}" if engine.dialect.name == "postgresql" else ""
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS trg_{table}_generation_{event}{on}")


def one_write(
    label: str, workdir: Path, pg_url: str, content: Any, triggers: bool, tag: str
) -> dict[str, float]:
    with fresh_database(label, workdir / "gen.db", pg_url) as url:
        db.init_db(url)
        if not triggers:
            drop_triggers(url)
        store = PlanStore(db.get_engine(url))
        cpu = time.process_time()
        result, seconds = timed(store.write_version, renamed(content, f"gen-{tag}"), mode="db")
        out = {"write_s": seconds, "cpu_s": time.process_time() - cpu, "rows": result.series_rows}
        ready_copy.wait()  # the copy is made after the write: outside the timing, before the next one
        if triggers:
            rows, raw_s = raw_insert(store, content, f"gen-{tag}-raw")
            out["raw_s"] = raw_s
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pg-url", default=os.environ.get("SCPLN_TEST_PG_URL", DEFAULT_PG))
    ap.add_argument("--write", type=Path, help="benchmarks page to update")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="scpln-bench-generations-") as tmp:
        workdir = Path(tmp)
        content = plan_input_set(generate_sample(workdir / "input", **SIZE), version_id="gen")
        results: dict[tuple[str, bool], list[dict[str, float]]] = {}
        for label in ("SQLite", "PostgreSQL"):
            for i in range(args.rounds):
                for triggers in (True, False) if i % 2 == 0 else (False, True):
                    found = one_write(label, workdir, args.pg_url, content, triggers, f"{i}")
                    results.setdefault((label, triggers), []).append(found)
                    print(
                        label,
                        "triggers" if triggers else "none",
                        found,
                        f"load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
    body = render(results, args.rounds)
    print(body)
    if args.write:
        write_section(args.write, MARK_BEGIN, MARK_END, body)


def render(results: dict[tuple[str, bool], list[dict[str, float]]], rounds: int) -> str:
    lines = [
        MARK_BEGIN,
        "## Write generations: the triggers' cost (`bench/generations.py`)",
        "",
        f"One generated 1k-SKU plan written through the plan store in `db` mode on a fresh database, with "
        f"the triggers of revision 0005 and with them dropped; median of {rounds} alternating rounds. Raw: the "
        "same `plan_series` rows inserted with `executemany`/`COPY` outside the store (triggers on). "
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d')}; the machine was shared (figures compare within a run).",
        "",
        "| database | rows | store write, triggers (s) | rows/s | store write, no triggers (s) | rows/s "
        "| trigger cost | CPU of this process, triggers / none (s) | raw insert (s) | store / raw |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label in ("SQLite", "PostgreSQL"):
        on, off = results[(label, True)], results[(label, False)]
        rows = on[0]["rows"]
        w_on = statistics.median(r["write_s"] for r in on)
        w_off = statistics.median(r["write_s"] for r in off)
        raw = statistics.median(r["raw_s"] for r in on)
        c_on = statistics.median(r["cpu_s"] for r in on)
        c_off = statistics.median(r["cpu_s"] for r in off)
        lines.append(
            f"| {label} | {rows:,} | {w_on:.2f} | {rows / w_on:,.0f} | {w_off:.2f} | {rows / w_off:,.0f} "
            f"| {w_on / w_off - 1:+.0%} | {c_on:.2f} / {c_off:.2f} | {raw:.2f} | {raw / w_on:.0%} |"
        )
    lines += [
        "",
        "SQLite's triggers are row level, so the plan store's write of a whole version drops the insert "
        "triggers of its tables inside its own transaction and raises the generations once "
        '(`docs/storage.md`, "Write generations"): with and without them the store\'s write should cost the '
        "same, while the raw insert still meets them row by row. On SQLite the whole write runs in this "
        "process, so its CPU time is the steadier figure on a busy machine. PostgreSQL's are statement level "
        "(one `UPDATE` per `COPY`), and the work is the server's.",
        "",
        MARK_END,
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
