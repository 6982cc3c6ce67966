"""Content digests (revision 0004): recorded on every write path, equal when recomputed from what was
stored (SQLite and PostgreSQL), and what lets db check and the rollback skip decoding intact versions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select, text

from app import db
from app.ops import backfill
from app.ops.check import check_database
from app.ops.rollback import content_checksums, rollback
from app.planning.model import PLAN_ARTIFACTS
from app.services import psi
from app.services.plans import PlanRequest, run_plan
from app.storage import digests, ready_copy
from app.storage.plans import PlanStore
from app.storage.schema import plan_artifacts, plan_versions

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "planning"


def open_store(url: str) -> PlanStore:
    db.init_db(url)
    return PlanStore(db.get_engine(url))


def plan(store: PlanStore, version_id: str, mode: str) -> None:
    run_plan(PlanRequest(input_dir=str(SAMPLE), version_id=version_id), storage=mode, store=store)


def rollback_in(store: PlanStore, tmp_path: Path, jobs: int = 1):
    """A rollback of ``store`` with its state, backup and snapshots under ``tmp_path``."""
    return rollback(
        store.engine,
        state_file=tmp_path / "s.json",
        backup_dir=tmp_path / "b",
        tmp_dir=tmp_path / "t",
        jobs=jobs,
    )


def stored_texts(store: PlanStore, version_id: str) -> dict[str, str]:
    query = select(plan_artifacts.c.name, plan_artifacts.c.json_text).where(
        plan_artifacts.c.version_id == version_id
    )
    with store.engine.connect() as conn:
        return dict(conn.execute(query).all())


def test_each_storage_mode_records_the_digests_of_what_it_stored(db_url: str) -> None:
    store = open_store(db_url)
    for mode in ("both", "db", "files"):
        plan(store, f"d-{mode}", mode)
    ready_copy.wait()
    rows, artifacts = store.stored_digests("d-both")
    assert rows == store.rows_digest_now("d-both") and len(rows) == 64
    assert artifacts == digests.artifacts_digest(stored_texts(store, "d-both"))
    assert store.stored_digests("d-db") == (store.rows_digest_now("d-db"), None)
    # the ready copy (db mode) carries the digest of its texts and the rows it was made from; the texts
    # are those a both-mode write stores, and both- and files-mode versions keep none (their artifacts are)
    copy = store.ready_copy("d-db")
    assert copy.artifacts_digest == digests.artifacts_digest(copy.texts)
    assert copy.rows_generation == store.certification("d-db").rows_generation
    assert {n: t for n, t in copy.texts.items()} == {
        n: t.encode().replace(b"d-both", b"d-db") for n, t in stored_texts(store, "d-both").items()
    }
    assert not stored_texts(store, "d-db")
    assert not store.has_ready_copy("d-both") and not store.has_ready_copy("d-files")
    assert store.stored_digests("d-files") == (None, digests.artifacts_digest(stored_texts(store, "d-files")))
    # one content: the rows digest does not depend on the mode it was written in
    assert store.stored_digests("d-db")[0] == rows


def test_the_rows_digest_normalizes_types_and_sees_every_value() -> None:
    meta = {"meta": [(0, "aggregate.json", None), (1, "mrp.json", '{"x":1}')]}
    kpis = [(0, "fill_rate", "total", "all", 1, "%"), (1, "fill_rate", "month", "2026-01", 0.5, "%")]
    # ints where the database gives floats, bools where it gives ints, rows out of seq order: same digest
    same_kpis = [(1, "fill_rate", "month", "2026-01", 0.5, "%"), (0, "fill_rate", "total", "all", 1.0, "%")]
    assert digests.rows_digest(meta, kpis) == digests.rows_digest(meta, same_kpis)
    assert digests.rows_digest(meta, kpis) != digests.rows_digest(meta, [kpis[0], (*kpis[1][:4], 0.25, "%")])
    assert digests.rows_digest(meta, kpis) != digests.rows_digest({"meta": meta["meta"][:1]}, kpis)
    assert digests.rows_digest(meta, kpis) != digests.rows_digest({"meta": [(0, "aggregate.json", "{}"), meta["meta"][1]]}, kpis)  # fmt: skip


def test_a_changed_value_breaks_the_certified_pair_and_the_check_names_it(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    plan(store, "v", "both")
    certified = store.stored_digests("v")
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE plan_series SET demand = demand + 1 WHERE version_id = 'v' AND level = 'det' AND seq = 3"
            )
        )
    assert store.rows_digest_now("v") != certified[0]
    report = check_database(store.engine)
    kinds = {p.kind for p in report.problems}
    assert "encoding_mismatch" in kinds and all(p.version_id == "v" for p in report.problems)
    assert "sku_week.json" in report.as_text()


def test_a_certified_version_is_checked_without_decoding(db_url: str, monkeypatch) -> None:
    store = open_store(db_url)
    plan(store, "v", "both")
    assert check_database(store.engine).ok

    def no_decoding(*_args, **_kwargs):
        raise AssertionError("decoded although the certified digests match")

    monkeypatch.setattr(PlanStore, "read_rows_and_digest", no_decoding)
    assert check_database(store.engine).ok
    # --deep decodes anyway
    report = check_database(store.engine, deep=True)
    assert not report.ok and "decoded although" in report.as_text()


def test_psi_edits_keep_the_pair_and_are_compared_in_full(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    plan(store, "v", "both")
    certified = store.stored_digests("v")
    cell = psi.psi_view("v", "det", {"family": "BLEND", "period": "2026-01"}, store=store)["rows"][0]
    psi.apply_edits("v", "det", [{"key": cell["key"], "field": "demand", "value": 3}], store=store)
    assert store.stored_digests("v") == certified and check_database(store.engine).ok
    with store.engine.begin() as conn:  # the artifact copy of the PSI state no longer matches the rows
        conn.execute(
            text(
                "UPDATE plan_artifacts SET json_text = REPLACE(json_text, :old, :new) "
                "WHERE version_id = 'v' AND name = 'psi_overrides.json'"
            ),
            {"old": '"values":{"demand":3}', "new": '"values":{"demand":4}'},
        )
    report = check_database(store.engine)
    assert not report.ok and "psi_overrides.json" in report.as_text()


def test_legacy_writes_clear_and_backfill_and_repair_certify(sqlite_url: str, tmp_path: Path) -> None:
    store = open_store(sqlite_url)
    plan(store, "legacy", "files")
    plan(store, "repaired", "both")
    texts = stored_texts(store, "legacy")
    db.upsert_plan_artifact("legacy", "aggregate.json", texts["aggregate.json"], url=sqlite_url)
    assert store.stored_digests("legacy") == (None, None)

    backfill.backfill_repository(store.engine)
    rows, artifacts = store.stored_digests("legacy")
    assert rows == store.rows_digest_now("legacy")
    assert artifacts == digests.artifacts_digest(stored_texts(store, "legacy"))

    with store.engine.begin() as conn:
        conn.execute(plan_artifacts.delete().where(plan_artifacts.c.version_id == "repaired"))
    report = rollback_in(store, tmp_path)
    assert report.repaired == ["repaired"]
    rows, artifacts = store.stored_digests("repaired")
    assert rows == store.rows_digest_now("repaired")
    assert artifacts == digests.artifacts_digest(stored_texts(store, "repaired"))
    assert set(PLAN_ARTIFACTS) <= set(stored_texts(store, "repaired"))


@pytest.mark.parametrize("jobs", [1, 2])
def test_worker_processes_give_the_same_report(sqlite_url: str, jobs: int) -> None:
    store = open_store(sqlite_url)
    for vid in ("p1", "p2", "p3"):
        plan(store, vid, "both")
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE plan_series SET supply = supply + 7 WHERE version_id = 'p2' AND level = 'aggregate' "
                 "AND seq = 0")
        )  # fmt: skip
        conn.execute(
            plan_versions.update().where(plan_versions.c.version_id == "p3").values(rows_digest=None)
        )
    report = check_database(store.engine, jobs=jobs)
    assert report.versions_checked == 3
    assert {p.version_id for p in report.problems} == {"p2"}
    assert "aggregate" in report.as_text()


def test_a_rollback_with_worker_processes_repairs_and_certifies(sqlite_url: str, tmp_path: Path) -> None:
    store = open_store(sqlite_url)
    for vid in ("w1", "w2", "w3", "w4"):
        plan(store, vid, "both")
    before = content_checksums(store.engine)
    with store.engine.begin() as conn:
        conn.execute(plan_artifacts.delete().where(plan_artifacts.c.version_id.in_(["w2", "w4"])))
    report = rollback_in(store, tmp_path, jobs=2)
    assert report.ok and report.repaired == ["w2", "w4"] and report.versions_checked == 4
    for vid in ("w2", "w4"):  # written by a worker once the backup was recorded, or here before that
        rows, artifacts = store.stored_digests(vid)
        assert rows == store.rows_digest_now(vid)
        assert artifacts == digests.artifacts_digest(stored_texts(store, vid))
    assert content_checksums(store.engine) == {
        **before,
        report.verify_version: content_checksums(store.engine)[report.verify_version],
    }
    with sqlite3.connect(report.backup_path) as backup:  # the backup holds the database before the repair
        assert backup.execute("SELECT COUNT(*) FROM plan_artifacts WHERE version_id = 'w2'").fetchone() == (
            0,
        )


def test_a_stripped_both_mode_version_is_repaired_from_rows_whose_texts_match_its_artifacts_digest(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A both-mode version keeps no ready copy (its artifacts are one): stripped of them, it is rebuilt
    from its rows, whose texts hash to the certified artifacts digest again; rows changed since
    certification are judged in full and their broken identity found."""
    store = open_store(sqlite_url)
    for vid in ("s1", "s2", "s3"):
        plan(store, vid, "both")
    assert not any(store.has_ready_copy(vid) for vid in ("s1", "s2", "s3"))
    certified = {vid: store.stored_digests(vid) for vid in ("s1", "s2", "s3")}
    texts_before = stored_texts(store, "s1")
    with store.engine.begin() as conn:
        conn.execute(plan_artifacts.delete().where(plan_artifacts.c.version_id.in_(["s1", "s2"])))
        # s2's rows change after certification: one detail quantity no longer adds up to its family
        conn.execute(
            text(
                "UPDATE plan_series SET supply = supply + 7 WHERE version_id = 's2' AND level = 'det' "
                "AND seq = (SELECT MIN(seq) FROM plan_series WHERE version_id = 's2' AND level = 'det' "
                "AND supply > 0)"
            )
        )
    report = rollback_in(store, tmp_path)
    assert report.repaired == ["s1"] and report.repaired_from_copy == [], report.as_text()
    assert stored_texts(store, "s1") == texts_before, "the repaired texts are the certified ones"
    assert store.stored_digests("s1") == certified["s1"], "the certified pair stands"
    assert store.has_ready_copy("s1"), "the repair keeps a copy of what it made"
    assert "s2" in report.needs_restore and "rows break" in report.needs_restore["s2"]
    assert not report.ok
