"""SIGKILL at random moments, over fixed seeds: a ``scpln plan run`` in both encodings, a server in the
middle of synchronous runs, and a worker in the middle of a queued job. After each kill: every version
is complete or absent (``scpln db check`` green), and the work can be done again."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.planning.samplegen import generate_sample
from tests.conftest import ROOT, run_scpln
from tests.e2e.conftest import SERVER_ENV_CLEARED, free_port, wait_healthy

SEEDS = range(6)


@pytest.fixture(scope="module")
def input_set(tmp_path_factory) -> Path:
    """A 500-SKU set: long enough to be killed in any stage, short enough to run many times."""
    return generate_sample(
        tmp_path_factory.mktemp("kill") / "in", families=5, skus_per_family=100, components=150
    )


def environment(folder: Path, inputs: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV_CLEARED}
    env.update(
        SCPLN_DB=str(folder / "hub.db"), SCPLN_INPROCESS_WORKER="0", PYTHONUNBUFFERED="1",
        SCPLN_INPUT_ROOTS=str(inputs.parent), SCPLN_JOB_STALE_SECONDS="3",
    )  # fmt: skip
    return env


def assert_whole(env: dict[str, str]) -> None:
    check = run_scpln(env, "db", "check")
    assert check.returncode == 0, check.stdout + check.stderr


def start(env: dict[str, str], folder: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=env,
        stdout=(folder / f"{args[0]}.log").open("a"), stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.mark.parametrize("seed", SEEDS)
def test_a_plan_run_killed_at_a_random_moment_leaves_its_version_whole_or_absent(tmp_path, input_set, seed):
    env = environment(tmp_path, input_set)
    assert run_scpln(env, "db", "upgrade").returncode == 0
    process = start(
        env, tmp_path, "plan", "run", "--input", str(input_set), "--storage", "both", "--version-id", "k"
    )
    time.sleep(random.Random(seed).uniform(0.5, 4.0))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert_whole(env)
    again = run_scpln(
        env, "plan", "run", "--input", str(input_set), "--storage", "both", "--version-id", "k2"
    )
    assert again.returncode == 0, again.stderr
    assert_whole(env)


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_a_server_killed_during_runs_and_a_worker_killed_during_a_job_lose_nothing(tmp_path, input_set, seed):
    rng = random.Random(seed)
    env = environment(tmp_path, input_set)
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def serve() -> subprocess.Popen:
        server = start(env, tmp_path, "serve", "--port", str(port), "--no-workers-inprocess")
        wait_healthy(base, server, tmp_path / "serve.log")
        return server

    server = serve()
    worker = start(env, tmp_path, "worker", "--workers", "1")
    try:
        queued = httpx.post(f"{base}/plans/integrated/run?async=true", json={"input_dir": str(input_set), "version_id": "q"}, timeout=60)  # fmt: skip
        assert queued.status_code == 202
        try:  # a synchronous run the server is killed in the middle of
            httpx.post(f"{base}/plans/integrated/run", json={"input_dir": str(input_set), "version_id": "s"},
                       timeout=rng.uniform(0.3, 3.0))  # fmt: skip
        except httpx.TimeoutException:
            pass
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        time.sleep(rng.uniform(0.0, 2.0))
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        assert_whole(env)
        # back up: the queued job is taken again (the reaper requeues it) and ends; nothing is half there
        server = serve()
        worker = start(env, tmp_path, "worker", "--workers", "1")
        deadline = time.monotonic() + 240
        while True:
            job = httpx.get(f"{base}/jobs?limit=50", timeout=30).json()["items"]
            mine = [j for j in job if j.get("version_id") == "q"]
            if mine and all(j["status"] in ("succeeded", "failed", "canceled") for j in mine):
                break
            assert time.monotonic() < deadline, mine
            time.sleep(1)
        status = httpx.get(f"{base}/plans/q", timeout=30).json().get("status")
        assert status in ("ready", "failed")
        again = httpx.post(f"{base}/plans/integrated/run", json={"input_dir": str(input_set), "version_id": "after"}, timeout=300)  # fmt: skip
        assert again.status_code == 201
    finally:
        for process in (server, worker):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
    assert_whole(env)
