"""Backup and restore (SPEC 7): a copy taken while another process keeps writing plans is sound and
holds whole versions; restore brings a deleted version back; a damaged backup is refused."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from app import db
from app.ops import backup as backup_ops
from app.ops.backup import BackupError, backup_database, list_backups, restore_database
from app.ops.check import check_database
from app.services.plans import PlanRequest, run_plan
from app.storage import ready_copy
from app.storage.plans import PlanStore
from tests.conftest import ROOT, SAMPLE, run_scpln

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from app import db
    from app.planning.model import PlanParams
    from app.planning.pipeline import plan_input_set
    from app.storage.plans import PlanStore

    url, sample, stop = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    store = PlanStore(db.get_engine(url))
    n = 0
    while not stop.exists():
        content = plan_input_set(sample, PlanParams(), version_id=f"w{n:04d}", label="writer")
        store.write_version(content, mode="both")
        n += 1
        print(n, flush=True)
    """
)


def planned(url: str, *versions: str) -> Engine:
    db.init_db(url)
    engine = db.get_engine(url)
    store = PlanStore(engine)
    for vid in versions:
        run_plan(PlanRequest(input_dir=str(SAMPLE), version_id=vid), storage="both", store=store)
    ready_copy.wait()  # the ready copies are written after the plans, in the background
    return engine


def version_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(text("SELECT version_id FROM plan_versions")).scalars())


def test_a_backup_taken_while_another_process_writes_plans_is_whole(sqlite_url: str, tmp_path: Path) -> None:
    planned(sqlite_url, "base")
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, sqlite_url, str(SAMPLE), str(stop)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert writer.stdout.readline().strip() == "1", writer.stderr.read()  # the writer is under way
        copies = [
            backup_database(tmp_path / "backup", db.get_engine(sqlite_url), pages_per_step=4)
            for _ in range(3)
        ]
        assert writer.poll() is None, "the writer kept going during the backups"
    finally:
        stop.touch()
        _, errors = writer.communicate(timeout=60)
    assert writer.returncode == 0, errors
    written = []
    for copy in copies:
        assert copy.parent == tmp_path / "backup" and copy.name.startswith("plan_db_")
        with sqlite3.connect(copy) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        url = f"sqlite:///{copy}"
        report = check_database(db.get_engine(url))  # every ready version in the copy decodes and agrees
        assert report.ok, report.as_text()
        written.append(version_ids(db.get_engine(url)))
        db.dispose_engines(url)
    assert all("base" in ids for ids in written)
    assert len(written[-1]) >= len(written[0])
    assert len({c.name for c in copies}) == 3, "a taken name is never overwritten"
    listed = [b["name"] for b in list_backups(tmp_path / "backup")]
    assert sorted(listed) == sorted(c.name for c in copies)
    mtimes = [(tmp_path / "backup" / n).stat().st_mtime_ns for n in listed]  # newest first (ties by name)
    assert mtimes == sorted(mtimes, reverse=True)


def test_restore_brings_back_a_deleted_version_and_open_connections_see_it(
    db_url: str, tmp_path: Path
) -> None:
    engine = planned(db_url, "keep", "lost")
    backup = backup_database(tmp_path / "backup", engine)
    assert backup.suffix == (".db" if engine.dialect.name == "sqlite" else ".dump")
    PlanStore(engine).delete_version("lost")
    assert version_ids(engine) == ["keep"]
    result = restore_database(backup, engine)
    assert version_ids(engine) == ["keep", "lost"]
    content = PlanStore(engine).read_version("lost", "both")
    assert content.documents["aggregate.json"]["version_id"] == "lost"
    assert check_database(engine).ok
    if engine.dialect.name == "sqlite":  # the replaced database was kept beside the backup
        assert result.previous_copy is not None and result.previous_copy.exists()
        kept = f"sqlite:///{result.previous_copy}"
        assert version_ids(db.get_engine(kept)) == ["keep"]
        db.dispose_engines(kept)


def test_a_corrupt_backup_is_refused_and_the_database_is_untouched(sqlite_url: str, tmp_path: Path) -> None:
    engine = planned(sqlite_url, "v1")
    good = backup_database(tmp_path / "backup", engine)
    bad = tmp_path / "bad.db"
    shutil.copy(good, bad)
    size = bad.stat().st_size
    with open(bad, "r+b") as handle:  # wipe the middle third of the file
        handle.seek(size // 3)
        handle.write(b"\xa5" * (size // 3))
    not_sqlite = tmp_path / "notes.db"
    not_sqlite.write_text("this is not a database\n" * 200)
    for candidate in (bad, not_sqlite, tmp_path / "missing.db"):
        with pytest.raises(BackupError):
            restore_database(candidate, engine)
    assert version_ids(engine) == ["v1"]
    assert check_database(engine).ok
    assert not list(tmp_path.glob("plan_db_prerestore_*")), "nothing was copied for a refused restore"


def test_a_backup_name_taken_in_the_same_minute_gets_seconds(sqlite_url: str, tmp_path: Path) -> None:
    engine = planned(sqlite_url)
    first = backup_database(tmp_path, engine)
    second = backup_database(tmp_path, engine)
    assert len(first.stem) == len("plan_db_YYYYMMDDHHMM")
    assert second != first and second.stem.startswith(first.stem)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no partial file is left"


def test_a_relative_backup_folder_is_taken_from_the_repository_root(sqlite_url: str) -> None:
    engine = planned(sqlite_url)
    folder = f"tmp/test_backup_{os.getpid()}_{time.monotonic_ns()}"
    try:
        path = backup_database(folder, engine)
        assert path.parent == ROOT / folder
    finally:
        shutil.rmtree(ROOT / folder, ignore_errors=True)


def test_db_backup_and_restore_cli(tmp_path: Path) -> None:
    database = tmp_path / "hub.db"
    url = f"sqlite:///{database}"
    planned(url, "cli-1")
    env = {**os.environ, "SCPLN_DB": str(database), "COLUMNS": "200"}
    env.pop("SCPLN_HOME", None)

    def scpln(*args: str) -> subprocess.CompletedProcess:
        return run_scpln(env, *args, timeout=120)

    made = scpln("db", "backup")  # no --dest: the backup folder beside the database
    assert made.returncode == 0, made.stderr
    (copy,) = (tmp_path / "backup").glob("plan_db_*.db")
    assert copy.name in made.stdout.replace("\n", "")
    PlanStore(db.get_engine(url)).delete_version("cli-1")
    refused = scpln("db", "restore", str(copy))  # no --yes and no terminal: nothing happens
    assert refused.returncode != 0 and version_ids(db.get_engine(url)) == []
    restored = scpln("db", "restore", str(copy), "--yes")
    assert restored.returncode == 0, restored.stderr
    assert version_ids(db.get_engine(url)) == ["cli-1"]
    db.dispose_engines(url)


def commit_tick(live: Path) -> None:
    """One small commit by another connection, failing fast if it has to wait for a lock."""
    conn = sqlite3.connect(live, timeout=0.5, isolation_level=None)
    try:
        conn.execute("INSERT INTO ticks DEFAULT VALUES")
    finally:
        conn.close()


def test_commits_during_a_backup_do_not_wait_restart_it_or_enter_the_copy(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = planned(sqlite_url, "v1", "v2")
    live = db.sqlite_path(sqlite_url)
    with sqlite3.connect(live) as conn:
        conn.execute("CREATE TABLE ticks (n INTEGER PRIMARY KEY)")
    steps: list[tuple[int, int]] = []

    def commit_between_steps(done: int, total: int) -> None:
        steps.append((done, total))
        commit_tick(live)

    copy = backup_database(tmp_path / "backup", engine, pages_per_step=2, progress=commit_between_steps)
    assert len(steps) > 10 and steps[-1][0] == steps[-1][1]
    assert [d for d, _ in steps] == sorted(d for d, _ in steps), "the copy never started over"
    with sqlite3.connect(copy) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert raw.execute("SELECT count(*) FROM ticks").fetchone() == (0,), "the database as the copy began"
    with sqlite3.connect(live) as raw:
        assert raw.execute("SELECT count(*) FROM ticks").fetchone() == (len(steps),)
    url = f"sqlite:///{copy}"
    assert version_ids(db.get_engine(url)) == ["v1", "v2"]
    db.dispose_engines(url)


def test_a_copy_that_fails_its_integrity_check_is_deleted(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = planned(sqlite_url, "v1")
    online_copy = backup_ops._online_copy

    def copy_then_damage(source: Path, target: Path, *args: object) -> None:
        online_copy(source, target, *args)
        size = target.stat().st_size
        with open(target, "r+b") as handle:  # wipe the middle third: b-tree pages no longer parse
            handle.seek(size // 3)
            handle.write(b"\xa5" * (size // 3))

    monkeypatch.setattr(backup_ops, "_online_copy", copy_then_damage)
    with pytest.raises(BackupError, match="failed verification: (integrity_check failed|not a readable)"):
        backup_database(tmp_path / "backup", engine)
    assert not list((tmp_path / "backup").iterdir()), "nothing is left behind"
    assert version_ids(engine) == ["v1"]


def test_without_a_folder_backups_go_to_the_database_s_own_folder_and_list_only_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SCPLN_HOME", raising=False)
    beside = tmp_path / "site" / "plan.db"  # any folder: backup/ beside the file
    in_data = tmp_path / "hub" / "data" / "scpln.db"  # a folder named data: backup/ beside that folder
    beside.parent.mkdir(parents=True)
    in_data.parent.mkdir(parents=True)
    one, two = planned(f"sqlite:///{beside}", "one"), planned(f"sqlite:///{in_data}", "two")
    first, second = backup_database(engine=one), backup_database(engine=two)
    assert first.parent == tmp_path / "site" / "backup"
    assert second.parent == tmp_path / "hub" / "backup"
    assert [b["path"] for b in list_backups(engine=one)] == [str(first)]
    assert [b["path"] for b in list_backups(engine=two)] == [str(second)]
    monkeypatch.setenv("SCPLN_DB", str(beside))  # without an engine: the database of SCPLN_DB
    assert [b["path"] for b in list_backups()] == [str(first)]
    monkeypatch.setenv("SCPLN_HOME", str(tmp_path / "home"))  # a configured data directory wins
    third = backup_database(engine=two)
    assert third.parent == tmp_path / "home" / "backup"
    assert [b["path"] for b in list_backups(engine=one)] == [str(third)]
    for url in (f"sqlite:///{beside}", f"sqlite:///{in_data}"):
        db.dispose_engines(url)
