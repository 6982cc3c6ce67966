"""``scpln worker`` as a real process for end-to-end tests, its output in files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from tests.conftest import ROOT


class WorkerProcess:
    """``scpln worker --workers N`` started with ``env`` on top of this process's environment minus the
    variables in ``unset``; standard output and error go to ``<folder>/<label>.out|.err``."""

    def __init__(
        self, env: dict[str, str], folder: Path, label: str, *, unset: Iterable[str] = (), workers: int = 2
    ):
        self.out, self.err = folder / f"{label}.out", folder / f"{label}.err"
        dropped = set(unset)
        clean = {k: v for k, v in os.environ.items() if k not in dropped}
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker", "--workers", str(workers)],
                cwd=ROOT, env={**clean, **env}, stdout=out, stderr=err,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_for(self, text: str, stream: str = "err", timeout: float = 60) -> None:
        """Wait until ``text`` appears on the worker's stderr (or stdout); fail if it exits first."""
        path = self.err if stream == "err" else self.out
        deadline = time.monotonic() + timeout
        while text not in path.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker never said {text!r}:\n{self.err.read_text()}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 60) -> None:
        self.wait_for("worker ready", "out", timeout)

    def stop(self) -> int:
        """SIGTERM (running jobs finish), SIGKILL after 30 s; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
