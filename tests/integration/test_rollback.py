"""``scpln rollback`` and ``scpln rollforward`` (SPEC 7, the seed runbook §4 in one command), on real
SQLite files, as library calls and as real ``scpln`` processes.

The scenario database holds what a PlanRepository incident leaves behind: versions in both mode, some
with artifacts deleted, rewritten by hand or never written (db mode), one whose rows break the plan
identities while its artifacts are sound, one with neither encoding healthy, a files-mode version from
before the cut-over, PSI edits, and RunRegistry records on both sides of the cut-over.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text

from app import db
from app.ops import backup as backup_ops
from app.ops import check
from app.ops.rollback import VERIFY_NOTE, content_checksums, rollback, rollforward
from app.planning.model import CORE_ARTIFACTS, PLAN_ARTIFACTS, PSI_ARTIFACTS
from app.services import psi
from app.services.plans import PlanRequest, run_plan
from app.storage import codec_artifacts, digests, ready_copy
from app.storage import settings as st
from app.storage.plans import PlanStore
from app.storage.schema import plan_artifacts, plan_series, plan_versions, runs
from tests.conftest import ROOT, SAMPLE

ENV_CLEARED = ("PLAN_STORAGE_MODE", "JOBS_ENABLED", "SCPLN_INPUT_DIR", "REGISTRY_BACKEND", "SCPLN_CRASH_AT")
REPAIRED = ["rb-psi", "rb-db", "rb-missing", "rb-changed"]
#: Repaired from their ready copy: the db-mode version (both-mode versions keep none: their artifacts
#: are one, so rb-missing and rb-changed are rebuilt from rows, as rb-psi, whose PSI edit wrote rows).
FROM_COPY = ["rb-db"]


@dataclass
class Scenario:
    path: Path
    store: PlanStore
    cutover_ts: int
    artifacts_before: dict[str, dict[str, str]]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)


def open_store(path: Path) -> PlanStore:
    url = f"sqlite:///{path}"
    db.init_db(url)
    return PlanStore(db.get_engine(url))


def plan(store: PlanStore, version_id: str, mode: str | None) -> None:
    """Plan the sample as ``version_id`` and wait for its ready copy (db and both mode)."""
    run_plan(PlanRequest(input_dir=str(SAMPLE), version_id=version_id), storage=mode, store=store)
    ready_copy.wait()


def artifacts(store: PlanStore, version_id: str | None = None) -> dict[str, dict[str, str]]:
    query = select(plan_artifacts.c.version_id, plan_artifacts.c.name, plan_artifacts.c.json_text)
    if version_id is not None:
        query = query.where(plan_artifacts.c.version_id == version_id)
    out: dict[str, dict[str, str]] = {}
    with store.engine.connect() as conn:
        for vid, name, body in conn.execute(query):
            out.setdefault(vid, {})[name] = body
    return out


def corrupt_rows(store: PlanStore, version_id: str) -> None:
    """A hand-made fault: one aggregate row's supply no longer balances its inventory."""
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE plan_series SET supply = supply + 7 WHERE version_id = :v AND level = 'aggregate' AND seq = 0"
            ),
            {"v": version_id},
        )


def drop_artifacts(store: PlanStore, version_id: str, *names: str) -> None:
    with store.engine.begin() as conn:
        query = delete(plan_artifacts).where(plan_artifacts.c.version_id == version_id)
        conn.execute(query.where(plan_artifacts.c.name.in_(names)) if names else query)


def build_scenario(path: Path) -> Scenario:
    store = open_store(path)
    plan(store, "rb-files", "files")  # before the cut-over: artifacts only
    for vid in ("rb-ok", "rb-psi", "rb-db", "rb-missing", "rb-changed", "rb-rows-bad", "rb-broken"):
        plan(store, vid, "db" if vid == "rb-db" else "both")
    cell = psi.psi_view("rb-psi", "det", {"family": "BLEND", "period": "2026-01"}, store=store)["rows"][0]
    psi.apply_edits(
        "rb-psi",
        "det",
        [{"key": cell["key"], "field": "demand", "value": 3}],
        lock=[cell["key"]],
        store=store,
    )
    drop_artifacts(store, "rb-psi", "sku_week.json", *PSI_ARTIFACTS)
    drop_artifacts(store, "rb-missing")
    changed = json.loads(store.artifact_text("rb-changed", "aggregate.json"))
    changed["rows"][0]["demand"] += 1
    with store.engine.begin() as conn:
        conn.execute(
            plan_artifacts.update()
            .where(plan_artifacts.c.version_id == "rb-changed", plan_artifacts.c.name == "aggregate.json")
            .values(json_text=json.dumps(changed))
        )
    corrupt_rows(store, "rb-rows-bad")
    with store.engine.begin() as conn:  # stored before content digests were recorded (revision 0004)
        digests.clear(conn, ["rb-rows-bad"])
    corrupt_rows(store, "rb-broken")
    drop_artifacts(store, "rb-broken", "plan_final.json")
    with store.engine.connect() as conn:
        cutover = conn.execute(
            select(plan_versions.c.created_at).where(plan_versions.c.version_id == "rb-ok")
        ).scalar_one()
    records = [("run-old", "rb-files", "job-old", cutover - 60_000), ("run-new-1", "rb-ok", "job-1", cutover),
               ("run-new-2", "rb-psi", "job-2", cutover + 5)]  # fmt: skip
    with store.engine.begin() as conn:
        for run_id, vid, job, ts in records:
            conn.execute(
                runs.insert().values(
                    run_id=run_id, plan_version_id=vid, plan_job_id=job, status="succeeded", created_at=ts
                )
            )
    return Scenario(path, store, cutover, artifacts(store))


def copy_database(template: Path, path: Path) -> Path:
    """A copy of a prepared database file (its engine disposed first, so the WAL is in the file)."""
    db.dispose_engines(f"sqlite:///{template}")
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)
    return path


@pytest.fixture(scope="module")
def scenario_template(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    saved = {name: os.environ.pop(name) for name in ENV_CLEARED if name in os.environ}
    try:
        built = build_scenario(tmp_path_factory.mktemp("scenario") / "scpln.db")
    finally:
        os.environ.update(saved)
    db.dispose_engines(f"sqlite:///{built.path}")
    return built


@pytest.fixture
def scenario(scenario_template: Scenario, tmp_path: Path) -> Scenario:
    path = copy_database(scenario_template.path, tmp_path / "scpln.db")
    yield Scenario(path, open_store(path), scenario_template.cutover_ts, scenario_template.artifacts_before)
    db.dispose_engines(f"sqlite:///{path}")


@pytest.fixture(scope="module")
def healthy_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("healthy") / "scpln.db"
    store = open_store(path)
    plan(store, "h-files", "files")
    plan(store, "h-both", "both")
    plan(store, "h-db", "db")
    db.dispose_engines(f"sqlite:///{path}")
    return path


@pytest.fixture
def healthy(healthy_template: Path, tmp_path: Path) -> PlanStore:
    """Three sound versions (files, both, db) in a fresh copy."""
    path = copy_database(healthy_template, tmp_path / "scpln.db")
    yield open_store(path)
    db.dispose_engines(f"sqlite:///{path}")


def scpln(database: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ENV_CLEARED}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env={**base, "SCPLN_DB": str(database), "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def run_jobs(store: PlanStore) -> dict[str, str | None]:
    with store.engine.connect() as conn:
        return dict(conn.execute(select(runs.c.run_id, runs.c.plan_job_id)).all())


def dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


def ops_paths(tmp_path: Path) -> dict[str, Path]:
    return {
        "state_file": tmp_path / "state.json",
        "backup_dir": tmp_path / "backup",
        "tmp_dir": tmp_path / "tmp",
    }


def test_rollback_repairs_artifacts_from_healthy_rows_keeps_the_rest_and_names_the_restore(
    scenario, tmp_path
):
    store = scenario.store
    checksums = content_checksums(store.engine)

    report = rollback(store.engine, **ops_paths(tmp_path))

    assert report.repaired == REPAIRED and report.repaired_from_copy == FROM_COPY
    assert (
        list(report.kept_artifacts) == ["rb-rows-bad"]
        and "aggregate_identity" in report.kept_artifacts["rb-rows-bad"]
    )
    assert list(report.needs_restore) == ["rb-broken"]
    assert (
        "aggregate_identity" in report.needs_restore["rb-broken"]
        and "plan_final.json" in report.needs_restore["rb-broken"]
    )
    assert report.versions_checked == 8 and not report.ok and "restore" in report.message
    for vid in REPAIRED:
        assert artifacts(store, vid)[vid] == codec_artifacts.encode(store.read_rows(vid)), vid
    assert set(PSI_ARTIFACTS) <= set(artifacts(store, "rb-psi")["rb-psi"])
    after = artifacts(store)
    for vid in ("rb-files", "rb-ok", "rb-rows-bad", "rb-broken"):
        assert after[vid] == scenario.artifacts_before[vid], vid
    assert content_checksums(store.engine).items() >= checksums.items()


def test_rollback_backs_up_snapshots_pins_files_clears_run_jobs_verifies_and_reopens_intake(
    scenario, tmp_path
):
    store = scenario.store

    report = rollback(store.engine, **ops_paths(tmp_path))

    backup_file = Path(report.backup_path)
    assert backup_file.parent == tmp_path / "backup"
    assert re.fullmatch(r"plan_db_prerollback_\d{12}\.db", backup_file.name)
    assert backup_ops.verify_sqlite_backup(backup_file) is None
    with sqlite3.connect(backup_file) as conn:  # the database as it was before the repair
        assert conn.execute("SELECT COUNT(*) FROM plan_versions").fetchone() == (8,)
        assert conn.execute(
            "SELECT COUNT(*) FROM plan_artifacts WHERE version_id='rb-missing'"
        ).fetchone() == (0,)
    series_csv, registry_json = (Path(p) for p in report.snapshots)
    assert re.fullmatch(r"plan_series_latest_\d{14}\.csv", series_csv.name)
    with sqlite3.connect(scenario.path) as conn:
        latest = conn.execute(
            "SELECT COUNT(*) FROM plan_series WHERE version_id IN "
            "(SELECT version_id FROM plan_versions WHERE version_id NOT LIKE 'rollback-verify-%' "
            "ORDER BY created_at DESC LIMIT 5)"
        ).fetchone()[0]
    lines = series_csv.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("version_id,level,seq") and len(lines) == latest + 1 and latest > 0
    recorded = {r["run_id"]: r["plan_job_id"] for r in json.loads(registry_json.read_text(encoding="utf-8"))}
    assert recorded == {"run-old": "job-old", "run-new-1": "job-1", "run-new-2": "job-2"}
    assert st.storage_pin(store.engine) == "files" and st.effective_mode(store.engine) == "files"
    assert st.intake_open(store.engine) and not st.maintenance_on(store.engine)
    assert run_jobs(store) == {"run-old": "job-old", "run-new-1": None, "run-new-2": None}
    assert report.runs_cleared == 2 and report.cutover_ts == scenario.cutover_ts
    verify = store.get_version(report.verify_version)
    assert (verify.status, verify.storage_mode, verify.note) == ("ready", "files", VERIFY_NOTE)
    assert not store.has_rows(report.verify_version)
    assert set(store.artifact_names(report.verify_version)) == set(PLAN_ARTIFACTS)
    assert report.phases_done == ["pause", "backup", "snapshot", "repair", "pin", "runs", "verify", "resume"]


def test_rollback_cli_exits_1_naming_the_version_that_needs_restore_with_plain_progress_lines(
    scenario, tmp_path
):
    paths = ops_paths(tmp_path)

    res = scpln(scenario.path, "rollback", "--state-file", str(paths["state_file"]),
                "--backup-dir", str(paths["backup_dir"]), "--tmp-dir", str(paths["tmp_dir"]))  # fmt: skip

    assert res.returncode == 1, res.stderr
    assert "rollback FAILED in" in res.stdout and "versions checked: 8" in res.stdout
    assert (
        f"artifacts repaired: 4 ({', '.join(REPAIRED)}), of which 1 moved from their ready copy" in res.stdout
    )
    assert "artifacts kept (rows unhealthy): 1 (rb-rows-bad)" in res.stdout
    assert "need restore from backup: 1 (rb-broken)" in res.stdout
    assert "RESTORE NEEDED: rb-broken:" in res.stdout and "scpln db restore" in res.stdout
    assert "rollback: repair rb-missing (" in res.stderr and "rollback: verify (" in res.stderr
    assert "━" not in res.stderr and "Traceback" not in res.stderr
    assert json.loads(paths["state_file"].read_text())["finished"] is True


def test_rollback_dry_run_changes_nothing_and_prints_the_plan(scenario, tmp_path):
    db.dispose_engines(f"sqlite:///{scenario.path}")
    before = dump(scenario.path)
    paths = ops_paths(tmp_path)

    res = scpln(scenario.path, "rollback", "--dry-run", "--state-file", str(paths["state_file"]),
                "--backup-dir", str(paths["backup_dir"]), "--tmp-dir", str(paths["tmp_dir"]))  # fmt: skip

    assert res.returncode == 0, res.stderr
    assert dump(scenario.path) == before
    assert not any(p.exists() for p in paths.values())
    out = res.stdout
    assert "rollback (dry run, nothing changed): would do" in out
    for vid in REPAIRED:
        source = "ready copy" if vid in FROM_COPY else "rows"
        assert f"version {vid}: repair artifacts from {source}" in out
    assert "version rb-rows-bad: keep artifacts (rows unhealthy)" in out
    assert "version rb-broken: NEEDS RESTORE from backup" in out
    assert "8 ready versions checked" in out and "(2 runs)" in out and "pin the storage mode to files" in out


def test_rollforward_backfills_versions_written_during_the_rollback_and_clears_the_pin(healthy, tmp_path):
    store = healthy
    back = rollback(store.engine, **ops_paths(tmp_path))
    assert back.ok and back.repaired == ["h-db"]
    plan(store, "during-1", None)  # the pin decides: files
    plan(store, "during-2", None)
    assert not store.has_rows("during-1") and st.effective_mode(store.engine) == "files"
    checksums = content_checksums(store.engine)

    report = rollforward(store.engine, state_file=tmp_path / "forward.json")

    assert report.ok, report.message
    # the files-mode version of before, the two plans of the rollback period and the verification plan
    assert report.backfilled == 4
    for vid in ("h-files", "during-1", "during-2", back.verify_version):
        assert store.get_version(vid).storage_mode == "both"
        assert codec_artifacts.encode(store.read_rows(vid)) == codec_artifacts.encode(
            store.read_artifacts(vid)
        )
    assert check.check_database(store.engine).ok
    assert st.storage_pin(store.engine) is None and st.effective_mode(store.engine) == "both"
    assert st.intake_open(store.engine) and not st.maintenance_on(store.engine)
    assert content_checksums(store.engine) == checksums
    assert report.phases_done == ["pause", "backfill", "check", "unpin", "resume"]


def test_rollforward_refuses_to_clear_the_pin_when_db_check_fails(scenario, tmp_path):
    rollback(scenario.store.engine, **ops_paths(tmp_path))
    state = tmp_path / "forward.json"

    res = scpln(scenario.path, "rollforward", "--state-file", str(state))

    assert res.returncode == 1, res.stderr
    assert (
        "rollforward FAILED" in res.stdout and "db check failed; the storage pin stays on files" in res.stdout
    )
    assert "rb-rows-bad" in res.stdout and "rb-broken" in res.stdout
    engine = scenario.store.engine
    assert st.storage_pin(engine) == "files"
    assert st.intake_open(engine) and not st.maintenance_on(engine)
    again = rollforward(engine, state_file=state)  # a new run from the start, the same verdict
    assert not again.ok and again.phases_done == ["pause", "backfill", "check"] and again.phases_skipped == []
    assert st.storage_pin(engine) == "files" and st.intake_open(engine)


def test_rollforward_dry_run_lists_the_versions_to_backfill_and_changes_nothing(healthy, tmp_path):
    store = healthy
    rollback(store.engine, **ops_paths(tmp_path))
    plan(store, "during-1", None)
    db.dispose_engines(f"sqlite:///{tmp_path / 'scpln.db'}")
    before = dump(tmp_path / "scpln.db")

    res = scpln(tmp_path / "scpln.db", "rollforward", "--dry-run", "--state-file", str(tmp_path / "f.json"))

    assert res.returncode == 0, res.stderr
    assert "would backfill 3" in res.stdout and "version during-1: backfill rows" in res.stdout
    assert "clear the storage pin (now files; default mode both)" in res.stdout
    assert dump(tmp_path / "scpln.db") == before and not (tmp_path / "f.json").exists()


def test_rollback_shows_a_progress_bar_on_a_terminal(healthy, tmp_path):
    store = healthy
    db.dispose_engines(f"sqlite:///{tmp_path / 'scpln.db'}")
    paths = ops_paths(tmp_path)
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ENV_CLEARED}
    with subprocess.Popen(
        [sys.executable, "-m", "app.cli", "rollback", "--state-file", str(paths["state_file"]),
         "--backup-dir", str(paths["backup_dir"]), "--tmp-dir", str(paths["tmp_dir"])],
        cwd=ROOT, env={**env, "SCPLN_DB": str(store.engine.url.database), "TERM": "xterm"},
        stdout=subprocess.PIPE, stderr=follower, text=True,
    ) as proc:  # fmt: skip
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            shown += chunk
        out, _ = proc.communicate(timeout=120)
    os.close(leader)
    assert proc.returncode == 0, shown.decode(errors="replace")
    assert "rollback completed" in out
    terminal = shown.decode("utf-8", errors="replace")
    assert "━" in terminal and "rollback" in terminal
    assert "rollback: repair h-db (" not in terminal  # a bar, not plain lines


def test_a_finished_rollback_state_file_starts_a_new_rollback(healthy, tmp_path):
    store = healthy
    first = rollback(store.engine, **ops_paths(tmp_path))

    second = rollback(store.engine, **ops_paths(tmp_path))

    assert second.phases_skipped == [] and second.phases_done == first.phases_done
    assert second.backup_path != first.backup_path and Path(second.backup_path).is_file()
    assert second.repaired == [] and second.versions_checked == 4


@pytest.mark.pg
def test_rollback_and_rollforward_on_postgresql_back_up_with_pg_dump(pg_url, tmp_path):
    db.init_db(pg_url)
    store = PlanStore(db.get_engine(pg_url))
    plan(store, "pg-both", "both")
    plan(store, "pg-db", "db")
    drop_artifacts(store, "pg-both", "mrp.json")

    back = rollback(store.engine, **ops_paths(tmp_path))

    assert back.ok and back.repaired == ["pg-both", "pg-db"]
    assert Path(back.backup_path).suffix == ".dump"
    backup_ops.verify_postgres_backup(back.backup_path)
    for vid in ("pg-both", "pg-db"):
        assert artifacts(store, vid)[vid] == codec_artifacts.encode(store.read_rows(vid))
    assert st.storage_pin(store.engine) == "files"
    forward = rollforward(store.engine, state_file=tmp_path / "forward.json")
    assert forward.ok and forward.backfilled == 1 and st.storage_pin(store.engine) is None
    assert set(CORE_ARTIFACTS) <= set(store.artifact_names(back.verify_version))
    with store.engine.connect() as conn:
        assert conn.execute(
            select(plan_series.c.seq).where(plan_series.c.version_id == back.verify_version)
        ).first()


def _niceness_after_repair_start() -> int:
    from app.ops.rollback import repair

    before = os.nice(0)
    repair.repair_worker_start(None, None)
    return os.nice(0) - before


def test_repair_workers_are_one_more_than_the_cores_and_yield_the_cpu() -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from app.ops import parallel
    from app.ops.rollback import repair

    assert repair.repair_jobs(None, 100) == parallel.default_jobs() + 1
    assert repair.repair_jobs(3, 100) == 3
    assert repair.repair_jobs(None, 2) is None, "a few versions: the map decides (here, in order)"
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(_niceness_after_repair_start).result() == repair.REPAIR_WORKER_NICE


def test_repair_workers_add_artifacts_once_the_backups_snapshot_is_open_and_replace_only_after_it(
    scenario, tmp_path, monkeypatch
):
    """The backup signals when its snapshot is open; from then on a repair worker writes the artifacts of
    a version that has none (the backup cannot see them), while a repair that replaces artifacts waits
    until the backup is recorded. The backup holds every version as it was."""
    import threading

    from app.ops.rollback import repair

    store = scenario.store
    url = store.engine.url.render_as_string(hide_password=False)
    may_write, may_add = threading.Event(), threading.Event()
    monkeypatch.setattr(repair, "_MAY_WRITE", may_write)
    monkeypatch.setattr(repair, "_MAY_ADD", may_add)
    early: dict[str, dict] = {}

    def while_the_backup_copies() -> None:
        may_add.set()
        for vid in ("rb-db", "rb-missing", "rb-changed"):
            early[vid] = repair.repair_in_worker(url, vid)

    assert "written" not in repair.repair_in_worker(url, "rb-db"), "nothing before the snapshot is open"
    copy = backup_ops.backup_database(
        tmp_path / "backup", store.engine, verify=False, on_snapshot=while_the_backup_copies
    )

    assert early["rb-db"].get("written") and early["rb-missing"].get("written"), "versions without artifacts"
    assert not early["rb-changed"].get("written") and early["rb-changed"]["texts"], "a replacement waits"
    with sqlite3.connect(copy) as conn:  # the database as it was when the snapshot opened
        counts = dict(conn.execute("SELECT version_id, COUNT(*) FROM plan_artifacts GROUP BY version_id"))
        changed = conn.execute(
            "SELECT json_text FROM plan_artifacts WHERE version_id='rb-changed' AND name='aggregate.json'"
        ).fetchone()[0]
    assert "rb-db" not in counts and "rb-missing" not in counts
    assert changed == scenario.artifacts_before["rb-changed"]["aggregate.json"]
    assert set(CORE_ARTIFACTS) <= set(store.artifact_names("rb-db"))
    assert set(CORE_ARTIFACTS) <= set(store.artifact_names("rb-missing"))
    assert artifacts(store, "rb-changed")["rb-changed"] == scenario.artifacts_before["rb-changed"]
    may_write.set()
    assert repair.repair_in_worker(url, "rb-changed").get("written")
    assert artifacts(store, "rb-changed")["rb-changed"] != scenario.artifacts_before["rb-changed"]
    for vid in ("rb-db", "rb-missing", "rb-changed"):
        assert check.check_database(store.engine, vid).ok, vid


def test_a_rollback_with_repair_workers_keeps_the_database_as_it_was_in_its_backup(scenario, tmp_path):
    store = scenario.store
    content = ('INSERT INTO "plan_', 'INSERT INTO "runs"')
    before = [line for line in dump(scenario.path) if line.startswith(content)]

    wal = scenario.path.with_name(scenario.path.name + "-wal")
    wal_after_repair: list[int] = []

    def progress(stage: str, _percent: int) -> None:
        if stage == "pin" and not wal_after_repair:
            wal_after_repair.append(wal.stat().st_size)

    report = rollback(store.engine, jobs=2, progress=progress, **ops_paths(tmp_path))

    assert report.ok is False and sorted(report.repaired) == sorted(REPAIRED)
    assert wal_after_repair == [0], "the repairs are in the file and the WAL is empty again"
    assert [line for line in dump(Path(report.backup_path)) if line.startswith(content)] == before
    for vid in REPAIRED:
        assert check.check_database(store.engine, vid).ok, vid


def test_a_rollback_killed_after_an_early_add_ends_like_an_uninterrupted_one(scenario_template, tmp_path):
    """The state a run killed while its backup copied leaves behind: a version without artifacts got
    them from a repair worker, and no phase after the pause is recorded. Run again, the rollback finds
    that version whole and ends with the same artifacts as a run never interrupted."""
    from app.ops.rollback import repair

    killed = open_store(copy_database(scenario_template.path, tmp_path / "killed" / "scpln.db"))
    clean = open_store(copy_database(scenario_template.path, tmp_path / "clean" / "scpln.db"))
    verdict = repair.assess(killed, "rb-db")
    assert verdict["action"] == "repair" and verdict["adds_only"]
    repair.write_repair(killed, "rb-db", verdict)

    again = rollback(killed.engine, **ops_paths(tmp_path / "killed"))
    uninterrupted = rollback(clean.engine, **ops_paths(tmp_path / "clean"))

    assert "rb-db" not in again.repaired and "rb-db" in uninterrupted.repaired
    assert sorted([*again.repaired, "rb-db"]) == sorted(uninterrupted.repaired)
    verify = (again.verify_version, uninterrupted.verify_version)
    after = {v: a for v, a in artifacts(killed).items() if v not in verify}
    assert after == {v: a for v, a in artifacts(clean).items() if v not in verify}
    with sqlite3.connect(again.backup_path) as conn:  # the backup of the second run holds the early add
        assert conn.execute("SELECT COUNT(*) FROM plan_artifacts WHERE version_id='rb-db'").fetchone()[0] > 0
    for store in (killed, clean):
        db.dispose_engines(store.engine.url.render_as_string(hide_password=False))


# --- the ready copy --------------------------------------------------------------------------------


def traced(store: PlanStore) -> tuple[PlanStore, list[str]]:
    """A store on a fresh engine of the same file whose connections record every statement they run."""
    from sqlalchemy import event

    url = store.engine.url.render_as_string(hide_password=False)
    db.dispose_engines(url)
    engine = db.get_engine(url)
    statements: list[str] = []
    event.listen(engine, "connect", lambda dbapi, _record: dbapi.set_trace_callback(statements.append))
    return PlanStore(engine), statements


def test_a_db_mode_version_is_repaired_by_moving_its_ready_copy_without_reading_its_rows(healthy):
    from app.ops.rollback import repair

    store, statements = traced(healthy)

    verdict = repair.assess(store, "h-db")

    assert (verdict["action"], verdict["source"]) == ("repair", "ready copy")
    assert not [s for s in statements if "plan_series" in s or "plan_kpis" in s], statements
    repair.write_repair(store, "h-db", verdict)
    assert artifacts(store, "h-db")["h-db"] == codec_artifacts.encode(store.read_rows("h-db"))
    assert store.certification("h-db").pair_trusted
    assert check.check_database(store.engine, "h-db").ok


def test_a_stripped_both_mode_version_is_rebuilt_from_its_rows_and_then_keeps_a_copy(healthy):
    from app.ops.rollback import repair

    before = artifacts(healthy, "h-both")["h-both"]
    drop_artifacts(healthy, "h-both")
    verdict = repair.assess(healthy, "h-both")
    assert (verdict["action"], verdict["source"], verdict["keep_copy"]) == ("repair", "rows", True)
    repair.write_repair(healthy, "h-both", verdict)
    assert artifacts(healthy, "h-both")["h-both"] == before
    drop_artifacts(healthy, "h-both")
    assert repair.assess(healthy, "h-both")["source"] == "ready copy"


def test_without_a_ready_copy_the_repair_decodes_the_rows_and_keeps_a_copy(healthy):
    from app.ops.rollback import repair

    # a process killed between the version's write and its ready copy leaves no copy
    with healthy.engine.begin() as conn:
        conn.execute(text("DELETE FROM plan_ready_copies WHERE version_id = 'h-db'"))
    verdict = repair.assess(healthy, "h-db")
    assert (verdict["action"], verdict["source"], verdict["keep_copy"]) == ("repair", "rows", True)

    repair.write_repair(healthy, "h-db", verdict)

    texts = artifacts(healthy, "h-db")["h-db"]
    assert texts == codec_artifacts.encode(healthy.read_rows("h-db"))
    copy = healthy.ready_copy_texts("h-db")
    assert {n: t.decode() for n, t in copy.items()} == texts
    drop_artifacts(healthy, "h-db")
    assert repair.assess(healthy, "h-db")["source"] == "ready copy"


def test_a_ready_copy_not_matching_the_certified_digest_or_behind_the_rows_is_not_moved(healthy):
    from app.ops.rollback import repair

    body = ready_copy.compress('{"rows":[]}\n')
    with healthy.engine.begin() as conn:  # a copy damaged by hand
        conn.execute(
            text("UPDATE plan_ready_copies SET body = :b WHERE version_id = 'h-db' AND name = 'mrp.json'"),
            {"b": body},
        )
    assert repair.assess(healthy, "h-db")["source"] == "rows"
    # rows written since the copy was made: the copy is refused when stored, and not trusted when read
    rows_generation = healthy.certification("h-db").rows_generation
    corrupt_rows(healthy, "h-db")
    assert not healthy.write_ready_copy("h-db", {"report.csv": "x"}, rows_generation=rows_generation)
    verdict = repair.assess(healthy, "h-db")  # the rows now break an identity and nothing else is trusted
    assert verdict["action"] == "needs_restore" and "aggregate_identity" in verdict["why"]


def test_psi_decisions_made_while_pinned_to_files_roll_forward_into_the_rows(healthy, tmp_path):
    """The runbook's scenario: planners keep editing during the rollback window. Their edits, locks and
    approvals go to the artifacts alone; the roll-forward replays them into plan_overrides and
    plan_override_events, so both encodings agree, nothing is refused and the pin is cleared."""
    store = healthy
    cells = psi.psi_view("h-both", "det", {}, store=store)["rows"]
    psi.apply_edits("h-both", "det", [{"key": cells[0]["key"], "field": "demand", "value": 3}], store=store)
    assert rollback(store.engine, **ops_paths(tmp_path)).ok
    psi.apply_edits(
        "h-both", "det", [{"key": cells[1]["key"], "field": "demand", "value": 5}], lock=[cells[1]["key"]],
        note="during the window", actor="ann", store=store,
    )  # fmt: skip
    psi.submit("h-both", "ann", store=store)
    during = psi.events("h-both", store=store)["events"]
    assert [e["type"] for e in during] == ["edit", "edit", "lock", "submit"]

    report = rollforward(store.engine, state_file=tmp_path / "forward.json")

    assert report.ok, report.message
    assert st.storage_pin(store.engine) is None and check.check_database(store.engine).ok
    after = psi.state("h-both", store=store)  # read from rows now
    assert after["mode"] == "both" and after["approval"] == "pending" and after["locked_cells"] == 1
    assert psi.events("h-both", store=store)["events"] == during
    with store.engine.connect() as conn:
        kinds = (
            conn.execute(
                text("SELECT event_type FROM plan_override_events WHERE version_id = 'h-both' ORDER BY id")
            )
            .scalars()
            .all()
        )
    assert kinds == ["edit", "edit", "lock", "submit"]


def test_psi_rows_are_replayed_only_when_they_are_behind_the_artifacts(healthy, tmp_path):
    store = healthy
    cells = psi.psi_view("h-both", "det", {}, store=store)["rows"]
    psi.apply_edits("h-both", "det", [{"key": cells[0]["key"], "field": "demand", "value": 3}], store=store)
    before = store.certification("h-both").rows_generation
    assert not store.replay_psi("h-both")  # both encodings hold the same history: nothing to do
    assert store.certification("h-both").rows_generation == before
    assert rollback(store.engine, **ops_paths(tmp_path)).ok
    psi.apply_edits("h-both", "det", [{"key": cells[1]["key"], "field": "demand", "value": 4}], store=store)
    assert store.replay_psi("h-both", dry_run=True)  # behind by one edit; a dry run writes nothing
    assert len(psi.events("h-both", store=store)["events"]) == 2  # read from the artifacts (pinned)
    with store.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT COUNT(*) FROM plan_override_events WHERE version_id = 'h-both'")
        ).scalar()
    assert rows == 1
    # a history of the rows' own (an event the artifacts do not have) is never overwritten
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE plan_override_events SET notes = 'changed by hand' WHERE version_id = 'h-both'")
        )
    assert not store.replay_psi("h-both")


def test_a_ready_copy_made_with_the_codec_before_zstd_is_still_moved(healthy):
    """Copies written while the codec was zlib stay readable: the repair moves them like new ones."""
    import zlib

    from app.ops.rollback import repair

    with healthy.engine.connect() as conn:
        stored = conn.execute(
            text("SELECT name, codec, body FROM plan_ready_copies WHERE version_id = 'h-db'")
        ).all()
    assert {codec for _, codec, _ in stored} == {ready_copy.CODEC}
    with healthy.engine.begin() as conn:  # the same texts as a copy from before would hold them
        for name, codec, body in stored:
            old = zlib.compress(ready_copy.decompress(codec, body), 4)
            conn.execute(
                text(
                    "UPDATE plan_ready_copies SET codec = 'zlib', body = :b "
                    "WHERE version_id = 'h-db' AND name = :n"
                ),
                {"b": old, "n": name},
            )
    verdict = repair.assess(healthy, "h-db")
    assert (verdict["action"], verdict["source"]) == ("repair", "ready copy")
    repair.write_repair(healthy, "h-db", verdict)
    assert artifacts(healthy, "h-db")["h-db"] == codec_artifacts.encode(healthy.read_rows("h-db"))
