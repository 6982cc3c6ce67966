"""PostgreSQL restarted in the middle of queued plan jobs: the hub (a real ``scpln serve`` with its
in-process worker) loses no version half-written, every job ends or can be retried to success, and the
database checks whole afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from app.planning.samplegen import generate_sample
from tests.conftest import ROOT
from tests.e2e.conftest import SERVER_ENV_CLEARED, free_port, wait_healthy

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def restart_postgresql() -> None:
    cluster = sorted(os.listdir("/etc/postgresql"))[-1] if Path("/etc/postgresql").is_dir() else None
    tool = shutil.which("pg_ctlcluster")
    if cluster is None or tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("pg_ctlcluster is not available to restart PostgreSQL")
        pytest.skip("pg_ctlcluster is not available to restart PostgreSQL")
    done = subprocess.run(
        [tool, "--skip-systemctl-redirect", cluster, "main", "restart", "-m", "fast"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    for _ in range(60):
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]).returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError("PostgreSQL did not come back")


def test_queued_jobs_survive_a_postgresql_restart(tmp_path):
    name = f"scpln_restart_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL not reachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    inputs = generate_sample(tmp_path / "in", families=5, skus_per_family=100, components=150)
    env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV_CLEARED}
    env.update(
        SCPLN_DB=f"postgresql://postgres@127.0.0.1:5432/{name}", SCPLN_INPUT_ROOTS=str(tmp_path),
        SCPLN_QUEUE_URL="", SCPLN_HOME=str(tmp_path / "home"), SCPLN_JOB_STALE_SECONDS="3", PYTHONUNBUFFERED="1",
    )  # fmt: skip
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
        stdout=(tmp_path / "server.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_healthy(base, server, tmp_path / "server.log")
        jobs = []
        for i in range(3):
            response = httpx.post(f"{base}/plans/integrated/run?async=true", json={"input_dir": str(inputs), "version_id": f"r{i}"}, timeout=60)  # fmt: skip
            assert response.status_code == 202
            jobs.append(response.json()["job_id"])
        time.sleep(1.0)  # the first job is planning or writing now
        restart_postgresql()
        deadline = time.monotonic() + 300
        while True:
            try:
                states = {j: httpx.get(f"{base}/jobs/{j}", timeout=30).json()["status"] for j in jobs}
            except httpx.TransportError:
                states = {}
            if states and all(s in ("succeeded", "failed", "canceled") for s in states.values()):
                break
            assert time.monotonic() < deadline, states
            time.sleep(1)
        final, versions = [], []
        for i, (job, status) in enumerate(states.items()):
            # a job the restart broke ended failed, its version failed (never half-written) ...
            version = httpx.get(f"{base}/plans/r{i}", timeout=30).json()["status"]
            if status == "succeeded":
                assert version == "ready"
                final.append(job)
                continue
            assert version == "failed", version
            # ... and its request retried as a new job succeeds
            retried = httpx.post(f"{base}/jobs/{job}/retry", timeout=60)
            assert retried.status_code in (200, 202), retried.text
            final.append(retried.json()["job_id"])
            versions.append(retried.json()["version_id"])
        deadline = time.monotonic() + 300
        while not all(
            httpx.get(f"{base}/jobs/{j}", timeout=30).json()["status"] == "succeeded" for j in final
        ):
            assert time.monotonic() < deadline, [
                httpx.get(f"{base}/jobs/{j}").json()["status"] for j in final
            ]
            time.sleep(1)
        for vid in versions:
            assert httpx.get(f"{base}/plans/{vid}", timeout=30).json()["status"] == "ready"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    check = subprocess.run(
        [sys.executable, "-m", "app.cli", "db", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    with psycopg.connect(ADMIN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
