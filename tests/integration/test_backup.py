"""Backup and restore (SPEC 7): a copy taken while another process keeps writing plans is sound and
holds whole versions; restore brings a deleted version back; a damaged backup is refused."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from app import db
from app.ops import backup as backup_ops
from app.ops.backup import BackupError, backup_database, list_backups, restore_database
from app.ops.check import check_database
from app.service import PlanRequest, run_plan
from app.storage import ready_copy
from app.storage.plans import PlanStore
from tests.conftest import ROOT, SAMPLE

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


@pytest.mark.parametrize("method, verify", [("online", "full"), ("file", "copy")])
def test_a_backup_taken_while_another_process_writes_plans_is_whole(
    sqlite_url: str, tmp_path: Path, method: str, verify: str
) -> None:
    planned(sqlite_url, "base")
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, sqlite_url, str(SAMPLE), str(stop)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert writer.stdout.readline().strip() == "1", writer.stderr.read()  # the writer is under way
        copies = [
            backup_database(
                tmp_path / "backup", db.get_engine(sqlite_url), pages_per_step=4, method=method, verify=verify
            )
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

    def scpln(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    made = scpln("db", "backup", "--dest", str(tmp_path / "backup"))
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


# --- the file method --------------------------------------------------------------------------------


def live_file(sqlite_url: str) -> Path:
    path = db.sqlite_path(sqlite_url)
    assert path is not None
    return path


def with_ticks(sqlite_url: str) -> Path:
    """A planned database with a scratch table that tests commit small rows into."""
    planned(sqlite_url, "v1", "v2")
    live = live_file(sqlite_url)
    with sqlite3.connect(live) as conn:
        conn.execute("CREATE TABLE ticks (n INTEGER PRIMARY KEY)")
    return live


def commit_tick(live: Path) -> None:
    conn = sqlite3.connect(live, timeout=30, isolation_level=None)
    try:
        conn.execute("INSERT INTO ticks DEFAULT VALUES")
    finally:
        conn.close()


def write_lock_is_free(live: Path) -> bool:
    conn = sqlite3.connect(live, timeout=0.5, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def table_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}


def first_rows(path: Path, table: str, n: int = 5) -> list[tuple]:
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as conn:
        return conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid LIMIT {n}').fetchall()


def hidden_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".")] if folder.is_dir() else []


def test_a_file_backup_verified_by_copy_holds_the_same_content(sqlite_url: str, tmp_path: Path) -> None:
    engine = planned(sqlite_url, "v1", "v2")
    live = live_file(sqlite_url)
    calls: list[tuple[int, int]] = []
    copy = backup_database(
        tmp_path / "backup", engine, method="file", verify="copy", progress=lambda d, t: calls.append((d, t))
    )
    assert copy.parent == tmp_path / "backup"
    assert copy.name.startswith("plan_db_") and len(copy.stem) == len("plan_db_YYYYMMDDHHMM")
    assert not hidden_files(tmp_path / "backup"), "no partial file is left"
    size = copy.stat().st_size
    assert calls and calls[-1] == (size, size), "progress counts bytes up to the whole file"
    assert all(done <= total for done, total in calls)
    counts = table_counts(copy)
    assert counts == table_counts(live) and counts["plan_versions"] == 2
    for table in ("plan_versions", "plan_series", "plan_artifacts"):
        if table in counts:
            assert first_rows(copy, table) == first_rows(live, table)
    assert backup_ops.verify_sqlite_backup(copy) is None
    url = f"sqlite:///{copy}"
    assert version_ids(db.get_engine(url)) == ["v1", "v2"]
    assert check_database(db.get_engine(url)).ok
    db.dispose_engines(url)


def test_a_copy_verification_needs_the_file_method(sqlite_url: str, tmp_path: Path) -> None:
    engine = planned(sqlite_url)
    for method, verify in (("online", "copy"), ("rsync", "full"), ("file", "none")):
        with pytest.raises(BackupError):
            backup_database(tmp_path / "backup", engine, method=method, verify=verify)
    assert not (tmp_path / "backup").exists()


def test_a_commit_between_checkpoint_and_lock_is_retried(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = with_ticks(sqlite_url)
    checkpoint, online_copy = backup_ops._checkpoint, backup_ops._online_copy
    checkpoints = []
    online = []

    def checkpoint_then_a_writer_slips_in(conn: sqlite3.Connection) -> None:
        checkpoint(conn)
        checkpoints.append(1)
        if len(checkpoints) == 1:  # only the first time
            commit_tick(live)

    monkeypatch.setattr(backup_ops, "_checkpoint", checkpoint_then_a_writer_slips_in)
    monkeypatch.setattr(backup_ops, "_online_copy", lambda *a: online.append(1) or online_copy(*a))
    copy = backup_database(tmp_path, db.get_engine(sqlite_url), method="file", verify="copy")
    assert len(checkpoints) == 2 and not online, "the second attempt found the WAL empty and copied"
    assert table_counts(copy)["ticks"] == 1, "the row committed before the lock is in the copy"
    assert write_lock_is_free(live)


def test_writers_that_never_pause_make_the_file_method_fall_back_to_online(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = with_ticks(sqlite_url)
    checkpoint, online_copy = backup_ops._checkpoint, backup_ops._online_copy
    online = []

    def checkpoint_then_a_writer_slips_in(conn: sqlite3.Connection) -> None:
        checkpoint(conn)
        commit_tick(live)

    monkeypatch.setattr(backup_ops, "_checkpoint", checkpoint_then_a_writer_slips_in)
    monkeypatch.setattr(backup_ops, "_online_copy", lambda *a: online.append(1) or online_copy(*a))
    copy = backup_database(tmp_path, db.get_engine(sqlite_url), method="file", verify="copy")
    assert online == [1], "copied by the online method (and verified in full)"
    assert table_counts(copy)["ticks"] == backup_ops.FILE_LOCK_ATTEMPTS
    assert backup_ops.verify_sqlite_backup(copy) is None
    assert not hidden_files(tmp_path)
    assert write_lock_is_free(live)


def test_a_file_backup_while_a_thread_keeps_committing_is_consistent(sqlite_url: str, tmp_path: Path) -> None:
    live = with_ticks(sqlite_url)
    stop = threading.Event()
    first = threading.Event()
    errors: list[BaseException] = []
    committed = [0]

    def writer() -> None:
        conn = sqlite3.connect(live, timeout=30, isolation_level=None)
        try:
            while not stop.is_set():
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO ticks (n) VALUES (?)", (committed[0] + 1,))
                conn.execute("COMMIT")
                committed[0] += 1
                first.set()
                time.sleep(0.001)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
            first.set()
        finally:
            conn.close()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        assert first.wait(10)
        copies = [
            backup_database(tmp_path, db.get_engine(sqlite_url), method="file", verify="copy")
            for _ in range(3)
        ]
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors
    seen = []
    for copy in copies:
        with sqlite3.connect(copy) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            count, low, high = raw.execute("SELECT count(*), min(n), max(n) FROM ticks").fetchone()
        assert count >= 1 and (low, high) == (1, count), "the committed rows 1..n, no gaps"
        url = f"sqlite:///{copy}"
        assert version_ids(db.get_engine(url)) == ["v1", "v2"]
        assert check_database(db.get_engine(url)).ok
        db.dispose_engines(url)
        seen.append(count)
    assert seen == sorted(seen) and seen[-1] <= committed[0]
    assert not hidden_files(tmp_path)


def test_the_write_lock_is_released_after_a_file_backup_and_after_a_failed_copy(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = planned(sqlite_url, "v1")
    live = live_file(sqlite_url)
    backup_database(tmp_path / "ok", engine, method="file", verify="copy")
    assert write_lock_is_free(live)

    def broken_copy(source: Path, target: Path, progress: object) -> tuple[int, int]:
        target.write_bytes(b"half a copy")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(backup_ops, "_copy_chunks", broken_copy)
    with pytest.raises(BackupError, match="No space left"):
        backup_database(tmp_path / "failed", engine, method="file", verify="copy")
    assert not list((tmp_path / "failed").iterdir()), "no partial file is left"
    assert write_lock_is_free(live)
    assert version_ids(engine) == ["v1"]


def test_a_failing_copy_process_is_reported(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = planned(sqlite_url)
    monkeypatch.setattr(backup_ops, "_CHUNK_COPIER", "import sys; sys.exit('cannot write the copy')")
    with pytest.raises(BackupError, match="cannot write the copy"):
        backup_database(tmp_path / "backup", engine, method="file", verify="copy")
    assert not list((tmp_path / "backup").iterdir())
    assert write_lock_is_free(live_file(sqlite_url))


@pytest.mark.parametrize("damage", ["flip", "append"])
def test_a_copy_changed_after_copying_is_refused(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    engine = planned(sqlite_url, "v1")
    copy_chunks = backup_ops._copy_chunks

    def copy_then_damage(source: Path, target: Path, progress: object) -> tuple[int, int]:
        result = copy_chunks(source, target, progress)
        with open(target, "r+b") as handle:
            if damage == "flip":
                handle.seek(result[0] // 2)
                byte = handle.read(1)
                handle.seek(result[0] // 2)
                handle.write(bytes([byte[0] ^ 0xFF]))
            else:
                handle.seek(0, os.SEEK_END)
                handle.write(b"\0" * 4096)
        return result

    monkeypatch.setattr(backup_ops, "_copy_chunks", copy_then_damage)
    with pytest.raises(BackupError, match="failed verification"):
        backup_database(tmp_path / "backup", engine, method="file", verify="copy")
    assert not list((tmp_path / "backup").iterdir()), "nothing is left behind"
    assert write_lock_is_free(live_file(sqlite_url))


def test_db_backup_cli_with_the_file_method(tmp_path: Path) -> None:
    database = tmp_path / "hub.db"
    planned(f"sqlite:///{database}", "cli-1")
    db.dispose_engines(f"sqlite:///{database}")
    env = {**os.environ, "SCPLN_DB": str(database), "COLUMNS": "200"}
    made = subprocess.run(
        [sys.executable, "-m", "app.cli", "db", "backup", "--dest", str(tmp_path / "backup"),
         "--method", "file", "--verify", "copy"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    (copy,) = (tmp_path / "backup").glob("plan_db_*.db")
    assert copy.name in made.stdout.replace("\n", "")
    assert backup_ops.verify_sqlite_backup(copy) is None


def test_a_file_whose_size_is_not_a_whole_number_of_blocks_is_copied_and_verified(tmp_path: Path) -> None:
    """512-byte pages and an odd page count: the copier writes the last part without O_DIRECT and the
    read-back checks every byte."""
    live = tmp_path / "small-pages.db"
    with sqlite3.connect(live) as conn:
        conn.execute("PRAGMA page_size = 512")
        conn.execute("CREATE TABLE plan_versions (version_id TEXT PRIMARY KEY, note TEXT)")
        rows = 0
        while rows < 10 or live.stat().st_size % 4096 == 0:  # until the file ends inside a 4 KiB block
            conn.execute("INSERT INTO plan_versions VALUES (?, ?)", (f"v{rows}", "x" * 300))
            conn.commit()
            rows += 1
    assert live.stat().st_size % 512 == 0 and live.stat().st_size % 4096
    url = f"sqlite:///{live}"
    copy = backup_database(tmp_path / "backup", db.get_engine(url), method="file", verify="copy")
    assert copy.read_bytes() == live.read_bytes()
    db.dispose_engines(url)


def test_the_read_back_without_o_direct_gives_the_same_checksum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(3 * 4096 + 123))
    direct = backup_ops._file_checksum(data)
    monkeypatch.delattr(os, "O_DIRECT")  # a platform without it: a normal read after dropping the cache
    assert backup_ops._file_checksum(data) == direct == (data.stat().st_size, zlib.crc32(data.read_bytes()))
