"""Backfill: artifacts -> PlanRepository rows (SPEC 7, runbook 4.7). Idempotent, resumable through its
state file (also after SIGKILL), never touching PSI overrides and events, and honest about versions
it cannot backfill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, func, insert, select

from app import db
from app.ops.backfill import backfill_repository
from app.planning.model import DERIVED_ARTIFACTS, PLAN_ARTIFACTS, PlanContent
from app.planning.pipeline import plan_input_set
from app.storage import codec_artifacts
from app.storage.plans import PlanStore
from app.storage.schema import (
    plan_artifacts,
    plan_kpis,
    plan_override_events,
    plan_overrides,
    plan_series,
    plan_versions,
)
from tests.conftest import ROOT, SAMPLE

BACKFILL_SCRIPT = ROOT / "scripts" / "plan_backfill_repository.py"


@pytest.fixture
def store(sqlite_url: str) -> PlanStore:
    db.init_db(sqlite_url)
    return PlanStore(db.get_engine(sqlite_url))


def sample_plan(version_id: str) -> PlanContent:
    return plan_input_set(SAMPLE, version_id=version_id)


def write_versions(store: PlanStore, mode: str, *version_ids: str) -> dict[str, PlanContent]:
    plans = {}
    for vid in version_ids:
        plans[vid] = sample_plan(vid)
        store.write_version(plans[vid], mode=mode)
    return plans


def table_snapshot(store: PlanStore) -> dict[str, list[tuple]]:
    """Every row of every plan table: equal snapshots mean nothing was written."""
    tables = (plan_versions, plan_artifacts, plan_series, plan_kpis, plan_overrides, plan_override_events)
    with store.engine.connect() as conn:
        return {t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key))] for t in tables}


def series_ids(store: PlanStore, version_id: str) -> list[tuple]:
    """The version's rows by key, with the time each was written: a rewrite changes the times."""
    c = plan_series.c
    with store.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(c.level, c.seq, c.created_at)
                .where(c.version_id == version_id)
                .order_by(c.level, c.seq)
            )
        ]


def assert_rows_decode_to(store: PlanStore, content: PlanContent) -> None:
    """The plan documents read back from rows equal the content's (PSI documents are not plan rows)."""
    from_rows = store.read_rows(content.version_id)
    assert from_rows is not None
    decoded = {n: t for n, t in codec_artifacts.encode(from_rows).items() if n in PLAN_ARTIFACTS}
    assert decoded == codec_artifacts.encode(content)


def test_dry_run_writes_nothing_not_even_the_state_file(store: PlanStore, tmp_path: Path) -> None:
    write_versions(store, "files", "d-1", "d-2")
    write_versions(store, "both", "d-3")
    before = table_snapshot(store)
    state = tmp_path / "state.json"

    report = backfill_repository(store.engine, dry_run=True, state_file=state)

    assert report.would_backfill == ["d-1", "d-2"] and report.backfilled == []
    assert report.skipped == ["d-3"] and report.checked == 3
    assert report.summary().startswith("dry run: checked 3, would backfill 2, skipped 1, failed 0")
    assert table_snapshot(store) == before
    assert not state.exists()
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("scpln.db")] == []


def test_backfill_writes_rows_for_files_mode_versions_in_version_order(store: PlanStore) -> None:
    plans = write_versions(store, "files", "f-2", "f-1")  # f-2 is older
    plans.update(write_versions(store, "db", "f-3"))

    report = backfill_repository(store.engine)

    assert report.backfilled == ["f-2", "f-1"] and report.skipped == ["f-3"]
    assert report.series_rows > 0 and report.ok
    for content in plans.values():
        assert_rows_decode_to(store, content)
    assert [store.get_version(v).storage_mode for v in ("f-2", "f-1", "f-3")] == ["both", "both", "db"]


def test_a_second_run_does_nothing(store: PlanStore) -> None:
    write_versions(store, "files", "i-1", "i-2")
    backfill_repository(store.engine)
    before = table_snapshot(store)

    again = backfill_repository(store.engine)

    assert again.backfilled == [] and again.skipped == ["i-1", "i-2"]
    assert table_snapshot(store) == before


def _add_psi_edits(store: PlanStore, version_id: str) -> None:
    ts = db.now_ms()
    with store.engine.begin() as conn:
        override_id = conn.execute(
            insert(plan_overrides)
            .values(
                version_id=version_id, level="det", key_hash="a" * 64, payload_json='{"value": 12}',
                lock_flag=True, weight=1.0, author="planner", source="ui", created_at=ts, updated_at=ts,
            )
            .returning(plan_overrides.c.id)
        ).scalar_one()  # fmt: skip
        conn.execute(
            insert(plan_override_events),
            [
                {"override_id": override_id, "version_id": version_id, "level": "det", "key_hash": "a" * 64,
                 "event_type": kind, "event_ts": ts + i, "payload_json": "{}", "actor": "planner", "notes": None}
                for i, kind in enumerate(("edit", "lock"))
            ],
        )  # fmt: skip


def psi_rows(store: PlanStore) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for t in (plan_overrides, plan_override_events) for r in conn.execute(select(t))]


def test_backfill_force_keeps_overrides_and_events(db_url: str) -> None:
    db.init_db(db_url)
    store = PlanStore(db.get_engine(db_url))
    plans = write_versions(store, "both", "p-1")
    _add_psi_edits(store, "p-1")
    edits = psi_rows(store)
    with store.engine.begin() as conn:  # a damaged row that --force repairs from the artifacts
        conn.execute(
            plan_series.update()
            .where(
                plan_series.c.version_id == "p-1", plan_series.c.level == "aggregate", plan_series.c.seq == 0
            )
            .values(demand=-1)
        )
    assert store.read_rows("p-1").documents["aggregate.json"]["rows"][0]["demand"] == -1

    report = backfill_repository(store.engine, force=True)

    assert report.backfilled == ["p-1"]
    assert psi_rows(store) == edits and len(edits) == 3
    assert_rows_decode_to(store, plans["p-1"])


def test_limit_and_resume_from(store: PlanStore) -> None:
    write_versions(store, "files", "l-1", "l-2", "l-3", "l-4")

    assert backfill_repository(store.engine, limit=2).backfilled == ["l-1", "l-2"]
    assert backfill_repository(store.engine, resume_from="l-4").backfilled == ["l-4"]
    assert backfill_repository(store.engine).backfilled == ["l-3"]
    with pytest.raises(Exception, match="no ready plan version 'nope'"):
        backfill_repository(store.engine, resume_from="nope")


def test_state_file_records_done_versions_failures_and_a_cursor(store: PlanStore, tmp_path: Path) -> None:
    write_versions(store, "files", "s-1", "s-2", "s-3")
    db.upsert_plan_artifact("s-2", "mrp.json", '{"schema_version": 1}', url=str(store.engine.url))
    state = tmp_path / "run" / "state.json"

    first = backfill_repository(store.engine, state_file=state, limit=2)

    saved = json.loads(state.read_text())
    assert first.backfilled == ["s-1"] and list(first.failed) == ["s-2"]
    assert (
        saved["done"] == ["s-1"] and list(saved["failed"]) == ["s-2"] and "mrp.json" in saved["failed"]["s-2"]
    )
    assert saved["cursor"]["version_id"] == "s-2" and saved["complete"] is False

    rest = backfill_repository(store.engine, state_file=state)  # continues after the cursor

    assert rest.backfilled == ["s-3"] and rest.checked == 1
    saved = json.loads(state.read_text())
    assert saved["done"] == ["s-1", "s-3"] and saved["complete"] is True


def test_a_version_whose_artifacts_do_not_decode_is_reported_and_skipped(store: PlanStore) -> None:
    plans = write_versions(store, "files", "u-1", "u-2", "u-3")
    with store.engine.begin() as conn:  # a damaged artifact, as a disk or an old tool may leave it
        conn.execute(
            plan_artifacts.update()
            .where(plan_artifacts.c.version_id == "u-2", plan_artifacts.c.name == "sku_week.json")
            .values(json_text='{"rows": [')
        )

    report = backfill_repository(store.engine)

    assert report.backfilled == ["u-1", "u-3"] and list(report.failed) == ["u-2"]
    assert not report.ok and "failed 1" in report.summary()
    assert series_ids(store, "u-2") == [] and store.get_version("u-2").storage_mode == "files"
    assert_rows_decode_to(store, plans["u-3"])


def test_a_version_missing_core_artifacts_is_reported_not_backfilled(store: PlanStore) -> None:
    write_versions(store, "files", "c-1")
    with store.engine.begin() as conn:
        conn.execute(
            delete(plan_artifacts).where(
                plan_artifacts.c.version_id == "c-1", plan_artifacts.c.name == "mrp.json"
            )
        )

    report = backfill_repository(store.engine)

    assert "missing core artifact(s) mrp.json" in report.failed["c-1"] and series_ids(store, "c-1") == []


def test_missing_derived_artifacts_are_recomputed_and_stored_with_the_rows(store: PlanStore) -> None:
    plans = write_versions(store, "files", "r-1")
    expected = codec_artifacts.encode(plans["r-1"])
    with store.engine.begin() as conn:
        conn.execute(
            delete(plan_artifacts).where(
                plan_artifacts.c.version_id == "r-1", plan_artifacts.c.name.in_(DERIVED_ARTIFACTS)
            )
        )

    report = backfill_repository(store.engine)

    assert report.backfilled == ["r-1"], report.failed or report.needs_derivation
    for name in DERIVED_ARTIFACTS:
        assert store.artifact_text("r-1", name) == expected[name]
    assert_rows_decode_to(store, plans["r-1"])


def test_versions_imported_through_the_legacy_helper_backfill_losslessly(store: PlanStore) -> None:
    """The runbook's re-import may store report.csv first: the catalogue then lacks params."""
    content = sample_plan("legacy-1")
    texts = codec_artifacts.encode(content)
    url = str(store.engine.url)
    for name in ["report.csv", *sorted(n for n in texts if n != "report.csv")]:
        db.upsert_plan_artifact("legacy-1", name, texts[name], url=url)

    assert backfill_repository(store.engine).backfilled == ["legacy-1"]
    assert_rows_decode_to(store, content)


def test_a_killed_backfill_resumes_from_its_state_file_and_backfills_each_version_once(
    sqlite_url: str, tmp_path: Path
) -> None:
    db.init_db(sqlite_url)
    store = PlanStore(db.get_engine(sqlite_url))
    write_versions(store, "both", "k-1", "k-2", "k-3")
    original = {v: series_ids(store, v) for v in ("k-1", "k-2", "k-3")}
    state = tmp_path / "recover.json"
    env = {**os.environ, "SCPLN_DB": str(db.sqlite_path(sqlite_url)), "SCPLN_BACKFILL_PAUSE_AFTER": "1"}
    args = [sys.executable, str(BACKFILL_SCRIPT), "--force", "--state-file", str(state)]

    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (state.exists() and json.loads(state.read_text())["done"]):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert json.loads(state.read_text())["done"] == ["k-1"]
    after_kill = {v: series_ids(store, v) for v in ("k-1", "k-2", "k-3")}
    assert after_kill["k-1"] != original["k-1"]  # rewritten by the killed run
    assert after_kill["k-2"] == original["k-2"] and after_kill["k-3"] == original["k-3"]

    env.pop("SCPLN_BACKFILL_PAUSE_AFTER")
    resumed = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert resumed.returncode == 0, resumed.stderr
    assert "backfilled k-2" in resumed.stdout and "backfilled k-3" in resumed.stdout
    assert "k-1" not in resumed.stdout
    final = {v: series_ids(store, v) for v in ("k-1", "k-2", "k-3")}
    assert final["k-1"] == after_kill["k-1"]  # not written a second time
    assert final["k-2"] != original["k-2"] and final["k-3"] != original["k-3"]
    saved = json.loads(state.read_text())
    assert saved["done"] == ["k-1", "k-2", "k-3"] and saved["complete"] is True
    with store.engine.connect() as conn:
        per_version = dict(
            conn.execute(
                select(plan_series.c.version_id, func.count()).group_by(plan_series.c.version_id)
            ).all()
        )
    assert len(set(per_version.values())) == 1  # each version holds exactly one copy of its rows


def test_a_version_whose_derived_artifacts_cannot_be_recomputed_is_reported_as_needing_derivation(
    store: PlanStore,
) -> None:
    plans = write_versions(store, "files", "n-1", "n-2")
    mrp = dict(plans["n-1"].documents["mrp.json"], rows=[])  # well-formed, but does not fit plan_final.json
    with store.engine.begin() as conn:
        conn.execute(
            delete(plan_artifacts).where(
                plan_artifacts.c.version_id == "n-1", plan_artifacts.c.name.in_(DERIVED_ARTIFACTS)
            )
        )
    db.upsert_plan_artifact("n-1", "mrp.json", json.dumps(mrp), url=str(store.engine.url))

    report = backfill_repository(store.engine)

    assert list(report.needs_derivation) == ["n-1"] and report.backfilled == ["n-2"]
    assert "needing derivation 1" in report.summary() and not report.ok
    assert series_ids(store, "n-1") == [] and store.artifact_text("n-1", "exceptions.json") is None
