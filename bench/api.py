"""Benchmark the HTTP API as it runs: a server process and a worker process on one SQLite file.

Plans a generated 10k-SKU set (20 families x 500 SKUs, 3-level BOM, 12 months) in ``both`` mode, starts
``scpln serve`` (no in-process worker) and ``scpln worker``, keeps the worker writing sample plans
(asynchronous runs submitted every half second) and measures, with 1, 10 and 50 concurrent clients
(threads, one httpx client each), the latency of ``GET /plans``, ``GET /plans/{id}/detail?limit=500``
(random offsets over the 10k-SKU plan) and the full ``GET /plans/{id}/detail.csv`` download.
Figures go to ``docs/benchmarks.md`` between this benchmark's own markers.

    python bench/api.py --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.planning.samplegen import generate_sample  # noqa: E402
from bench.pages import write_section  # noqa: E402

MARK_BEGIN = "<!-- bench:api:begin -->"
MARK_END = "<!-- bench:api:end -->"
BIG = dict(families=20, skus_per_family=500, components=3000, bom_depth=3)
BIG_ID = "bench-10k"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=env,
        stdout=open(log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )  # fmt: skip


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_healthy(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the server exited during start-up; see its log")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not come up")


class Writer(threading.Thread):
    """Submits an asynchronous sample plan every ``every`` seconds so the worker keeps writing."""

    def __init__(self, base: str, every: float = 0.5):
        super().__init__(daemon=True)
        self.base, self.every = base, every
        self.halt = threading.Event()
        self.submitted = 0

    def run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.halt.is_set():
                if (
                    client.post(f"{self.base}/plans/integrated/run?async=true&storage=both").status_code
                    == 202
                ):
                    self.submitted += 1
                self.halt.wait(self.every)


def measure(base: str, path: str, clients: int, requests: int, offsets: int | None = None) -> dict:
    """Latencies of ``requests`` GETs of ``path`` spread over ``clients`` threads."""
    per_client = max(1, requests // clients)
    rng = random.Random(clients)

    def one_client(_: int) -> tuple[list[float], int]:
        times, size = [], 0
        with httpx.Client(base_url=base, timeout=600) as client:
            for _ in range(per_client):
                url = path if offsets is None else f"{path}&offset={rng.randrange(0, offsets)}"
                started = time.perf_counter()
                response = client.get(url)
                body = response.content
                times.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise SystemExit(f"{url}: {response.status_code} {body[:200]!r}")
                size = len(body)
        return times, size

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one_client, range(clients)))
    wall = time.perf_counter() - started
    times = sorted(t for r, _ in results for t in r)
    return {
        "clients": clients,
        "requests": len(times),
        "p50_ms": statistics.median(times) * 1000,
        "p95_ms": times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))] * 1000,
        "rps": len(times) / wall,
        "bytes": results[0][1],
    }


def run(workdir: Path, levels: list[int], page_requests: int) -> dict:
    api_dir = workdir / "api"
    shutil.rmtree(api_dir, ignore_errors=True)
    api_dir.mkdir(parents=True)
    db = api_dir / "hub.db"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PLAN_STORAGE_MODE", "SCPLN_API_TOKENS", "JOBS_ENABLED")
    }
    env.update(SCPLN_DB=str(db), SCPLN_INPROCESS_WORKER="0", PYTHONUNBUFFERED="1")
    inputs = generate_sample(workdir / "10k", months=12, seed=7, **BIG)
    print(f"planning the 10k-SKU set into {db} ...", flush=True)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "app.cli", "plan", "run", "--input", str(inputs), "--storage", "both",
         "--version-id", BIG_ID], cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip
    plan_s = time.perf_counter() - started
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start(["serve", "--port", str(port)], env, api_dir / "server.log")
    worker = start(["worker"], env, api_dir / "worker.log")
    writer = Writer(base)
    results: dict = {"plan_s": plan_s, "levels": {}}
    try:
        wait_healthy(base, server)
        rows = httpx.get(f"{base}/plans/{BIG_ID}/detail?limit=1", timeout=60).json()["total"]
        results["detail_rows"] = rows
        writer.start()
        for clients in levels:
            print(f"{clients} client(s) ...", flush=True)
            results["levels"][clients] = {
                "GET /plans": measure(base, "/plans?limit=50", clients, max(page_requests, clients)),
                "GET detail?limit=500": measure(
                    base,
                    f"/plans/{BIG_ID}/detail?limit=500",
                    clients,
                    max(page_requests, clients),
                    rows - 500,
                ),
                "GET detail.csv (whole plan)": measure(
                    base, f"/plans/{BIG_ID}/detail.csv", clients, max(3, clients)
                ),
            }
    finally:
        writer.halt.set()
        stop(server)
        stop(worker)
        for leftover in api_dir.glob("hub.db*"):  # ~2 GB for the 10k-SKU plan in both encodings
            leftover.unlink()
    results["plans_written"] = writer.submitted
    results["load"] = os.getloadavg()[1]  # 5-minute load average: other work on the machine shows here
    return results


def render(results: dict) -> str:
    lines = [
        MARK_BEGIN,
        "## HTTP API",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}. SQLite (WAL), one `scpln serve` process (uvicorn, one event loop) "
        "and one `scpln worker` process writing sample plans in `both` mode "
        f"throughout (an asynchronous run submitted every 0.5 s; {results['plans_written']} submitted). "
        f"The 10k-SKU plan ({results['detail_rows']:,} detail rows, planned and stored in "
        f"{results['plan_s']:.0f} s) is read from PlanRepository rows. Clients are threads with one httpx "
        "client each, on the same machine; latency is from request to last byte. 5-minute load average at "
        f"the end of the run: {results['load']:.1f}.",
        "",
        "| clients | request | requests | p50 (ms) | p95 (ms) | requests/s | response bytes |",
        "|---|---|---|---|---|---|---|",
    ]
    for clients, measured in results["levels"].items():
        for name, m in measured.items():
            lines.append(
                f"| {clients} | {name} | {m['requests']} | {m['p50_ms']:.1f} | {m['p95_ms']:.1f} "
                f"| {m['rps']:.1f} | {m['bytes']:,} |"
            )
    ten = results["levels"].get(10, {}).get("GET detail?limit=500")
    if ten:
        verdict = "met" if ten["p95_ms"] <= 50 else "not met"
        lines += [
            "",
            f"Target p95 of a paged detail read <= 50 ms at 10 clients: {ten['p95_ms']:.1f} ms ({verdict}).",
        ]
    lines += [
        "",
        "Reading the table: with N clients a request waits for the ones ahead of it, so requests/s is the "
        "figure that stays flat and latency grows with N. A paged read is three short indexed queries on "
        "one connection (status and storage pin, table extent, the page by `seq` range) fetched through "
        "the DBAPI cursor and serialized once with orjson; it runs on the event loop with its "
        "dependencies, so it takes no thread-pool hop and does not contend for the GIL with other request "
        "threads. Its cost does not grow with the plan. The worker plans at nice 10 "
        "(`SCPLN_WORKER_NICE`), so on shared cores requests are scheduled ahead of planning. The CSV "
        "download streams in 5,000-row chunks, each its own short query in the thread pool, so slow "
        "downloads hold no database connection.",
    ]
    lines.append(MARK_END)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--clients", default="1,10,50", help="comma-separated concurrency levels")
    ap.add_argument("--requests", type=int, default=200, help="paged requests per level")
    ap.add_argument("--write", type=Path, help="benchmarks page to update")
    args = ap.parse_args()
    results = run(args.workdir, [int(c) for c in args.clients.split(",")], args.requests)
    section = render(results)
    print(section)
    if args.write:
        write_section(args.write, MARK_BEGIN, MARK_END, section)


if __name__ == "__main__":
    main()
