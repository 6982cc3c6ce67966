"""A failed or killed plan write leaves no trace of the version's content (SPEC 4.3, 5.1).

Failures are injected where they happen in production: just before the commit (the store's
``before_commit`` hook), inside the bulk insert (the database refuses a row; the disk fills up after
the first batch), and by SIGKILL of a real process in the middle of a large write — on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import errno
import os
import select as select_fd
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from app import db
from app.errors import StorageError
from app.planning.model import PlanContent
from app.planning.pipeline import plan_input_set
from app.planning.samplegen import generate_sample
from app.storage import plans
from app.storage.plans import PlanStore
from app.storage.schema import plan_artifacts, plan_kpis, plan_series, plan_versions
from tests.conftest import ROOT, SAMPLE

MODES = ("db", "files", "both")
MARKER = "INSIDE-TRANSACTION"

#: A child process that plans a large input set and holds its write open just before the commit.
WRITER = f"""
import sys, time
from app import db
from app.planning.pipeline import plan_input_set
from app.storage.plans import PlanStore

url, input_dir, version_id = sys.argv[1:4]
db.init_db(url)
content = plan_input_set(input_dir, version_id=version_id)

def hold(conn):
    print("{MARKER}", flush=True)
    time.sleep(600)

PlanStore(db.get_engine(url)).write_version(content, mode="both", before_commit=hold)
"""


def sample_plan(version_id: str) -> PlanContent:
    return plan_input_set(SAMPLE, version_id=version_id)


def content_rows(store: PlanStore, version_id: str) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            table.name: conn.execute(
                select(func.count()).select_from(table).where(table.c.version_id == version_id)
            ).scalar_one()
            for table in (plan_artifacts, plan_series, plan_kpis)
        }


def assert_no_content(store: PlanStore, version_id: str) -> None:
    assert content_rows(store, version_id) == {"plan_artifacts": 0, "plan_series": 0, "plan_kpis": 0}


def assert_failed_then_retry_succeeds(store: PlanStore, content: PlanContent, mode: str, cause: str) -> None:
    info = store.get_version(content.version_id)
    assert info.status == "failed" and cause in (info.error or "")
    store.write_version(content, mode=mode)
    assert store.get_version(content.version_id).status == "ready"
    assert store.read_version(content.version_id, mode=mode).documents == content.documents


@pytest.mark.parametrize("mode", MODES)
def test_failure_before_commit_leaves_no_trace_and_marks_the_version_failed(
    store: PlanStore, mode: str
) -> None:
    content = sample_plan(f"bc-{mode}")

    def fail(conn) -> None:
        raise RuntimeError("injected just before the commit")

    with pytest.raises(StorageError, match="injected just before the commit"):
        store.write_version(content, mode=mode, before_commit=fail)

    assert_no_content(store, content.version_id)
    assert_failed_then_retry_succeeds(store, content, mode, "injected just before the commit")


@pytest.mark.parametrize("mode", ("db", "both"))
def test_disk_full_after_the_first_bulk_batch_leaves_no_trace(
    store: PlanStore, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = sample_plan(f"enospc-{mode}")
    real_bulk_insert = plans.bulk_insert
    batches: list[str] = []

    def fill_disk_after_first_batch(cursor, dialect, table, columns, rows, shared=None) -> None:
        if batches:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_bulk_insert(cursor, dialect, table, columns, rows, shared)
        batches.append(table)

    monkeypatch.setattr(plans, "bulk_insert", fill_disk_after_first_batch)
    with pytest.raises(StorageError, match="No space left on device"):
        store.write_version(content, mode=mode)
    monkeypatch.undo()

    assert batches == ["plan_series"]  # one batch really was inserted before the failure
    assert_no_content(store, content.version_id)
    assert_failed_then_retry_succeeds(store, content, mode, "No space left on device")


def _refuse_kpis(store: PlanStore) -> None:
    """A trigger that makes the database itself refuse plan_kpis rows (inserted after plan_series)."""
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_kpis BEFORE INSERT ON plan_kpis "
                    "BEGIN SELECT RAISE(ABORT, 'kpi row refused'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_kpis() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'kpi row refused'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_kpis BEFORE INSERT ON plan_kpis "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_kpis()"
                )
            )


def test_a_row_the_database_refuses_rolls_back_the_whole_version(store: PlanStore) -> None:
    content = sample_plan("refused-row")
    _refuse_kpis(store)

    with pytest.raises(StorageError, match="kpi row refused"):
        store.write_version(content, mode="both")

    assert_no_content(store, content.version_id)
    with store.engine.begin() as conn:
        conn.execute(
            text("DROP TRIGGER refuse_kpis" + ("" if store.dialect == "sqlite" else " ON plan_kpis"))
        )
    assert_failed_then_retry_succeeds(store, content, "both", "kpi row refused")


def test_postgresql_refusing_a_nul_character_mid_copy_leaves_no_trace(pg_url: str) -> None:
    db.init_db(pg_url)
    store = PlanStore(db.get_engine(pg_url))
    content = sample_plan("nul-char")
    rows = content.documents["mrp.json"]["rows"]
    rows[len(rows) // 2]["item"] = "CMP\x00BAD"  # valid for the codec, refused by PostgreSQL text

    with pytest.raises(StorageError):
        store.write_version(content, mode="both")

    assert_no_content(store, content.version_id)
    assert store.get_version(content.version_id).status == "failed"


# --- SIGKILL in the middle of a large write --------------------------------------------------------


@pytest.fixture(scope="module")
def large_input_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000 finished goods and 100 components over a quarter: about 50k rows to write."""
    return generate_sample(
        tmp_path_factory.mktemp("large") / "input",
        families=5,
        skus_per_family=200,
        components=100,
        bom_depth=2,
        months=3,
        seed=3,
    )


def _wait_for_marker(proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select_fd.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            if MARKER in line:
                return
            if not line and proc.poll() is not None:
                break
    proc.kill()
    raise AssertionError(f"the writer never reached its transaction: {proc.stderr.read()}")


def _holds_write_transaction(store: PlanStore, url: str) -> bool:
    """True when another process holds an open write transaction on the database."""
    if store.dialect == "sqlite":
        conn = sqlite3.connect(db.sqlite_path(url), timeout=0.1)
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            return "locked" in str(exc)
        finally:
            conn.close()
        return False
    with store.engine.connect() as conn:
        states = conn.execute(
            text(
                "SELECT state FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalars()
        return "idle in transaction" in list(states)


def test_sigkill_in_the_middle_of_a_large_write_leaves_no_trace(db_url: str, large_input_set: Path) -> None:
    db.init_db(db_url)
    store = PlanStore(db.get_engine(db_url))
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, db_url, str(large_input_set), "killed-1k"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_marker(proc)
        assert _holds_write_transaction(store, db_url)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    db.dispose_engines(db_url)  # nothing cached from before the kill
    store = PlanStore(db.get_engine(db_url))
    assert_no_content(store, "killed-1k")
    with store.engine.connect() as conn:
        trace = conn.execute(select(plan_versions).where(plan_versions.c.version_id == "killed-1k")).first()
        assert trace is None
        if store.dialect == "sqlite":
            assert conn.execute(text("PRAGMA integrity_check")).scalars().all() == ["ok"]
    after = sample_plan("after-kill")
    store.write_version(after, mode="both")
    assert store.read_version("after-kill", mode="both").documents == after.documents
