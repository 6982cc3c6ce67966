"""Browser test fixtures: a real ``scpln serve`` process and Debian's Chromium driven by Playwright.

The server runs on a free loopback port with a temporary SQLite database and its in-process worker.
Chromium comes from the system (``/usr/bin/chromium``), never from ``playwright install``; when it or
Playwright is missing the browser tests skip, except under ``CI=true``, where they fail (SPEC 9).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT

CHROMIUM = os.environ.get("SCPLN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
SERVER_ENV_CLEARED = (
    "PLAN_STORAGE_MODE", "SCPLN_API_TOKENS", "JOBS_ENABLED", "SCPLN_INPUT_DIR", "REGISTRY_BACKEND",
    "SCPLN_QUEUE_URL", "SCPLN_INPROCESS_WORKER", "SCPLN_SECRET_KEY",
)  # fmt: skip


def _missing(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class HubServer:
    """A running ``scpln serve``: its base URL, database file and log."""

    base: str
    db: Path
    log: Path
    process: subprocess.Popen

    def url(self, path: str) -> str:
        return self.base + path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def wait_healthy(base: str, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    """Wait until ``base``/healthz answers 200; fail with the server's log if it exits or never does."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the server did not come up:\n{log.read_text()}")
        time.sleep(0.2)


def start_hub(folder: Path, extra_env: dict[str, str] | None = None) -> HubServer:
    """Start ``scpln serve`` (with its in-process worker) on a fresh SQLite file in ``folder`` and wait
    until ``/healthz`` answers."""
    db = folder / "scpln.db"
    env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV_CLEARED}
    env.update(SCPLN_DB=str(db), PYTHONUNBUFFERED="1", **(extra_env or {}))
    port = free_port()
    log = folder / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = HubServer(f"http://127.0.0.1:{port}", db, log, process)
    try:
        wait_healthy(server.base, process, log)
    except AssertionError:
        server.stop()
        raise
    return server


@pytest.fixture
def hub(tmp_path) -> Iterator[HubServer]:
    """A hub server of this test's own (no tokens), stopped after it."""
    server = start_hub(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def plan_sample(hub: HubServer, version_id: str) -> None:
    """Plan the sample input set under ``version_id`` through the API (201, or the test fails)."""
    import httpx

    response = httpx.post(hub.url("/plans/integrated/run"), json={"version_id": version_id}, timeout=120)
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def ui_hub(tmp_path_factory) -> Iterator[HubServer]:
    """A hub server without API tokens (local use: everyone is admin)."""
    server = start_hub(tmp_path_factory.mktemp("ui-hub"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """Debian's Chromium under Playwright, one per test module."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright Python package is not installed (pip install -e '.[dev]')")
    if not Path(CHROMIUM).exists():
        _missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium) -> Iterator[object]:
    """A fresh browser context (own cookies) and page, 1280 px wide."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(30_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def save_screenshot() -> Callable[[object, str], None]:
    """Save a page to ``docs/screenshots/<name>.png`` when ``SCPLN_SCREENSHOTS=1`` (else nothing), so
    ordinary runs do not rewrite the committed pictures."""
    enabled = os.environ.get("SCPLN_SCREENSHOTS") == "1"
    folder = ROOT / "docs" / "screenshots"

    def take(page, name: str, full_page: bool = True) -> None:
        if not enabled:
            return
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=full_page)

    return take
