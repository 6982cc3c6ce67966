"""Shared test settings: hypothesis profiles, the repository root and running ``scpln`` as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "planning"

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "soak", deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def run_scpln(env: Mapping[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``scpln ARGS`` as an operator runs it: its own process, from the repository root, in ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=dict(env), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
