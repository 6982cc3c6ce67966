"""Lock contention on one SQLite file: a server without an in-process worker, three ``scpln worker``
processes of two threads each, and 30 clients each asking for one asynchronous and one synchronous run
at the same moment. No response may be an error, and none may contradict what ends up stored: every
201 is a ready version, every 202 a job that finishes with its version ready, and ``scpln db check``
finds the database whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import ROOT
from tests.e2e.conftest import SERVER_ENV_CLEARED, free_port, wait_healthy

CLIENTS = 30


def test_concurrent_runs_across_worker_processes_never_fail_or_contradict_the_store(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV_CLEARED}
    env.update(SCPLN_DB=str(tmp_path / "hub.db"), SCPLN_INPROCESS_WORKER="0", PYTHONUNBUFFERED="1")
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def start(*args: str, log: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=env,
            stdout=(tmp_path / log).open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip

    server = start("serve", "--port", str(port), "--no-workers-inprocess", log="server.log")
    workers = [start("worker", "--workers", "2", log=f"worker{i}.log") for i in range(3)]
    try:
        wait_healthy(base, server, tmp_path / "server.log")

        def client(i: int) -> tuple[int, int, str]:
            with httpx.Client(base_url=base, timeout=300) as c:
                queued = c.post("/plans/integrated/run?async=true", json={"version_id": f"a{i}"})
                ran = c.post("/plans/integrated/run", json={"version_id": f"s{i}"})
                return queued.status_code, ran.status_code, ran.text[:300]

        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(pool.map(client, range(CLIENTS)))
        assert all(a == 202 and s == 201 for a, s, _ in answers), [x for x in answers if x[:2] != (202, 201)]
        deadline = time.monotonic() + 300
        while True:
            jobs = httpx.get(f"{base}/jobs?limit=200", timeout=30).json()["items"]
            if all(j["status"] in ("succeeded", "failed", "canceled") for j in jobs):
                break
            assert time.monotonic() < deadline, [j["status"] for j in jobs]
            time.sleep(0.5)
        assert {j["status"] for j in jobs} == {"succeeded"}
        for i in range(CLIENTS):
            for vid in (f"a{i}", f"s{i}"):
                assert httpx.get(f"{base}/plans/{vid}", timeout=30).json()["status"] == "ready", vid
    finally:
        for process in (server, *workers):
            process.send_signal(signal.SIGTERM)
        for process in (server, *workers):
            process.wait(timeout=60)
    logs = "".join(
        (tmp_path / name).read_text() for name in ("server.log", "worker0.log", "worker1.log", "worker2.log")
    )
    assert "database is locked" not in logs and "Traceback" not in logs
    check = subprocess.run(
        [sys.executable, "-m", "app.cli", "db", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
