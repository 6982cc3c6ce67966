"""Soak the hub: mixed reads and plan writes from 20 clients for 10 minutes (``make soak``).

Starts ``scpln serve`` (with its in-process worker) on a fresh SQLite file, plans the sample once, then
runs 20 client threads. Each loops over a mix of requests: the plan list, detail pages at random
offsets, KPIs, exceptions, the diff against the previous version, an asynchronous plan run (1 in 20) and a
synchronous one (1 in 50). Every 10 s the server's resident memory and open file descriptors are
sampled from ``/proc``. Passes when no request failed (any status >= 500, or a transport error), and
after the first minute (warm-up) memory grew by less than ``--rss-growth`` (default 50 %) and file
descriptors by fewer than ``--fd-growth`` (default 20). Prints the samples and the verdict; exit 1 on a
failure.

    python bench/soak.py --minutes 10
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api import free_port, start, stop, wait_healthy  # noqa: E402

CLIENTS = 20


def sample(pid: int) -> tuple[int, int]:
    """(resident bytes, open file descriptors) of a process."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def client(
    base: str, until: float, seed: int, failures: list[str], counts: Counter, lock: threading.Lock
) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=base, timeout=300) as c:
        while time.monotonic() < until:
            versions = [v["version_id"] for v in c.get("/plans?limit=20&status=ready").json()["items"]]
            vid = rng.choice(versions)
            roll = rng.random()
            if roll < 0.02:
                path, response = "sync run", c.post("/plans/integrated/run", json={"note": "soak"})
            elif roll < 0.07:
                path, response = (
                    "async run",
                    c.post("/plans/integrated/run?async=true", json={"note": "soak"}),
                )
            else:
                path = rng.choice(
                    [
                        "/plans?limit=50",
                        f"/plans/{vid}/detail?limit=200&offset={rng.randrange(0, 3000)}",
                        f"/plans/{vid}/kpis",
                        f"/plans/{vid}/exceptions?limit=100",
                        f"/plans/{vid}/diff?against={versions[-1]}&across_inputs=true&limit=100",
                        "/healthz",
                    ]
                )
                try:
                    response = c.get(path)
                except httpx.TransportError as exc:
                    with lock:
                        failures.append(f"{path}: {exc!r}")
                    continue
            with lock:
                counts[response.status_code] += 1
                if response.status_code >= 500:
                    failures.append(f"{path}: {response.status_code} {response.text[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--rss-growth", type=float, default=0.5, help="allowed growth of memory after warm-up"
    )
    parser.add_argument("--fd-growth", type=int, default=20, help="allowed growth of open file descriptors")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="scpln-soak-"))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PLAN_STORAGE_MODE", "SCPLN_API_TOKENS", "JOBS_ENABLED")
    }
    env.update(SCPLN_DB=str(workdir / "hub.db"), PYTHONUNBUFFERED="1")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start(["serve", "--port", str(port), "--plan-sample-if-empty"], env, workdir / "server.log")
    failures: list[str] = []
    counts: Counter = Counter()
    samples: list[tuple[float, int, int]] = []
    try:
        wait_healthy(base, server)
        httpx.post(f"{base}/plans/integrated/run", json={"note": "second"}, timeout=300)
        started = time.monotonic()
        until = started + args.minutes * 60
        lock = threading.Lock()
        threads = [
            threading.Thread(target=client, args=(base, until, seed, failures, counts, lock))
            for seed in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            rss, fds = sample(server.pid)
            samples.append((time.monotonic() - started, rss, fds))
            print(
                f"{samples[-1][0]:6.0f} s  rss {rss / 2**20:7.1f} MB  fds {fds:4d}  requests {sum(counts.values())}",
                flush=True,
            )
            time.sleep(10)
        for t in threads:
            t.join()
    finally:
        stop(server)
        shutil.rmtree(workdir, ignore_errors=True)
    warm = [s for s in samples if s[0] >= 60] or samples
    rss_growth = (warm[-1][1] - warm[0][1]) / max(1, warm[0][1])
    fd_growth = warm[-1][2] - warm[0][2]
    print(f"requests by status: {dict(sorted(counts.items()))}")
    print(f"after warm-up: memory {rss_growth:+.1%}, file descriptors {fd_growth:+d}")
    ok = not failures and rss_growth < args.rss_growth and fd_growth < args.fd_growth
    for failure in failures[:20]:
        print("FAILED", failure)
    print("soak passed" if ok else "soak FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
