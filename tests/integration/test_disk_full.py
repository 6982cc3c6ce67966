"""A full disk under the database, on a real (tmpfs) filesystem: every request says so clearly (507
``storage full``), nothing half-written is left, ``/healthz`` reports it, and ``scpln serve`` stops with
a message instead of a traceback. Frees the space and the hub works again."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import db
from app.storage import settings as st
from app.web import create_app
from tests.conftest import ROOT, run_scpln
from tests.integration.test_api_auth import ENV_CLEARED

SIZE = "24m"


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A tmpfs of 24 MB mounted for the test (root only: the CI machine runs the suite as root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs for the disk-full test: {done.stderr.decode()}")
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(folder: Path, leave: int) -> Path:
    """Fill the filesystem of ``folder`` until ``leave`` bytes are free."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    filler = folder / "filler"
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, free - leave))
    return filler


def test_a_full_disk_answers_storage_full_everywhere_and_recovers(small_disk, monkeypatch):
    for name in ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    url = f"sqlite:///{small_disk / 'hub.db'}"
    monkeypatch.setenv("SCPLN_DB", url)
    monkeypatch.setenv("SCPLN_INPROCESS_WORKER", "0")
    db.init_db(url)
    with TestClient(create_app()) as hub:
        assert hub.post("/plans/integrated/run", json={"version_id": "before"}).status_code == 201
        filler = fill(small_disk, leave=16 * 1024)
        run = hub.post("/plans/integrated/run", json={"version_id": "full"})
        assert run.status_code == 507, run.text
        assert run.json()["error"] == "storage full" and "free space" in run.json()["detail"]["message"]
        assert hub.get("/plans/full").json().get("status") in (None, "failed")  # no half version
        pause = hub.post("/ops/jobs/pause")
        assert pause.status_code == 507 and pause.json()["error"] == "storage full"
        health = hub.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "disk full"
        assert hub.get("/plans/before").json()["status"] == "ready"  # reads still work
        filler.unlink()
        assert hub.get("/healthz").json()["status"] == "ok"
        assert hub.post("/plans/integrated/run", json={"version_id": "after"}).status_code == 201
    db.dispose_engines(url)


def test_serve_on_a_full_disk_stops_with_a_message_not_a_traceback(small_disk):
    fill(small_disk, leave=0)
    env = {k: v for k, v in os.environ.items() if k not in ENV_CLEARED}
    env.update(SCPLN_DB=str(small_disk / "hub.db"), SCPLN_INPROCESS_WORKER="0")
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", "0"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "disk is full" in done.stderr and "Traceback" not in done.stderr


def test_a_backup_or_a_rollback_into_a_full_disk_stops_cleanly_and_the_rollback_resumes(small_disk, tmp_path):
    """The database on a roomy disk, its data folder (backups, rollback state) on the full one."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    env = {k: v for k, v in os.environ.items() if k not in ENV_CLEARED}
    env.update(SCPLN_DB=url, SCPLN_HOME=str(small_disk), SCPLN_INPROCESS_WORKER="0")

    def scpln(*args: str) -> subprocess.CompletedProcess:
        return run_scpln(env, *args)

    assert scpln("plan", "run", "--version-id", "v1", "--storage", "both").returncode == 0
    filler = fill(small_disk, leave=16 * 1024)
    backup = scpln("db", "backup")
    assert backup.returncode == 1 and "disk is full" in backup.stderr and "Traceback" not in backup.stderr
    assert not list((small_disk / "backup").glob("*.db"))  # no half backup under a backup's name
    stopped = scpln("rollback")
    said = " ".join(stopped.stderr.split())  # the terminal wraps long lines
    assert stopped.returncode == 1 and "Traceback" not in said
    assert "stopped in phase 'backup'" in said and "run the same command again" in said
    filler.unlink()
    resumed = scpln("rollback")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert scpln("db", "check").returncode == 0
    engine = db.get_engine(url)
    assert (st.storage_pin(engine), st.maintenance_on(engine), st.intake_open(engine)) == (
        "files",
        False,
        True,
    )
    db.dispose_engines(url)
