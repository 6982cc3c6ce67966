"""The hub as operators run it: ``scpln serve`` and ``scpln worker`` as real processes on a SQLite file,
called over HTTP, checked with the ``sqlite3`` command-line client (runbook 4.6)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT

ENV_CLEARED = ("PLAN_STORAGE_MODE", "SCPLN_API_TOKENS", "JOBS_ENABLED", "SCPLN_INPUT_DIR", "REGISTRY_BACKEND",
               "SCPLN_QUEUE_URL")  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sqlite3(db: Path, query: str) -> str:
    binary = shutil.which("sqlite3")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the sqlite3 command-line client is not installed")
        pytest.skip("the sqlite3 command-line client is not installed")
    result = subprocess.run([binary, str(db), query], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """A server process (no in-process worker) on a fresh SQLite file; yields (base url, db, env)."""
    tmp_path = tmp_path_factory.mktemp("server")
    db = tmp_path / "scpln.db"
    env = {k: v for k, v in os.environ.items() if k not in ENV_CLEARED}
    env.update(SCPLN_DB=str(db), SCPLN_INPROCESS_WORKER="0", PYTHONUNBUFFERED="1")
    port = _free_port()
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--plan-sample-if-empty"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        yield base, db, env
    finally:
        _stop(server)
        log.close()


def test_first_start_plans_the_sample_input_set(hub):
    base, _, _ = hub
    first = httpx.get(f"{base}/plans?order=asc&limit=1", timeout=30).json()["items"][0]
    assert first["status"] == "ready" and first["input_label"] == "planning"
    assert first["note"] == "sample planned on first start"


def test_files_mode_run_over_http_stores_artifacts_and_no_plan_series(hub):
    base, db, _ = hub
    response = httpx.post(f"{base}/plans/integrated/run?storage=files", timeout=120)  # no body at all
    assert response.status_code == 201, response.text
    vid = response.json()["version_id"]
    artifacts = _sqlite3(db, f"SELECT COUNT(*) FROM plan_artifacts WHERE version_id = '{vid}';")
    assert int(artifacts) == 7
    assert _sqlite3(db, f"SELECT COUNT(*) FROM plan_series WHERE version_id = '{vid}';") == "0"
    assert (
        _sqlite3(db, f"SELECT status, storage_mode FROM plan_versions WHERE version_id = '{vid}';")
        == "ready|files"
    )
    detail = httpx.get(f"{base}/plans/{vid}/detail?limit=2", timeout=30).json()
    assert detail["source"] == "artifacts" and len(detail["rows"]) == 2
    metrics = httpx.get(f"{base}/metrics", timeout=30).text
    assert 'plans_created_total{mode="files"} 1.0' in metrics


def test_async_run_is_planned_by_a_separate_worker_process(hub, tmp_path):
    base, db, env = hub
    accepted = httpx.post(f"{base}/plans/integrated/run?async=true&storage=both", json={"version_id": "async-1"},
                          timeout=30)  # fmt: skip
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert httpx.get(f"{base}/plans/async-1", timeout=30).json()["status"] == "running"
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115
    metrics_port = _free_port()
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--metrics-port", str(metrics_port)],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while httpx.get(f"{base}/plans/async-1", timeout=30).json()["status"] == "running":
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "the worker did not finish the job"
            time.sleep(0.3)
        # planning runs at a lower CPU priority (SCPLN_WORKER_NICE, 10) than the process's main thread
        nice = _thread_nice_values(worker.pid)
        assert nice[worker.pid] == 0 and 10 in nice.values(), nice
        # the worker's own metrics: the write it made and its job's stages. The version is ready once its
        # transaction commits; the worker counts the write just after, so the counter may lag a moment.
        counted = 'plans_created_total{mode="both"} 1.0'
        deadline = time.monotonic() + 15
        exposed = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text
        while counted not in exposed and time.monotonic() < deadline:
            time.sleep(0.2)
            exposed = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text
        assert counted in exposed, exposed
        assert "job_duration_seconds_count{stage=" in exposed
        assert "plan_series_rows" not in exposed  # database gauges come from the server
    finally:
        _stop(worker)
        log.close()
    shown = httpx.get(f"{base}/plans/async-1", timeout=30).json()
    assert shown["status"] == "ready" and shown["has_rows"] is True
    assert httpx.get(f"{base}{body['status_url']}", timeout=30).json()["status"] == "succeeded"
    assert int(_sqlite3(db, "SELECT COUNT(*) FROM plan_series WHERE version_id = 'async-1';")) > 0
    assert int(_sqlite3(db, "SELECT COUNT(*) FROM plan_artifacts WHERE version_id = 'async-1';")) == 7


def _thread_nice_values(pid: int) -> dict[int, int]:
    """The nice value of each thread of a process, from /proc (field 19 of each task's stat)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        out[int(task.name)] = int(fields[16])
    return out
