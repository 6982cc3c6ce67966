#!/usr/bin/env python3
"""Write PlanRepository rows from artifacts (runbook 4.7; the same command as ``scpln repo backfill``).

    scripts/plan_backfill_repository.py [--dry-run] [--state-file F] [--force] [--limit N] [--resume-from V]

Versions missing rows are backfilled (every version with artifacts with ``--force``), oldest first,
one transaction each; overrides and PSI events are never touched. Exit 1 when a version failed.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runs without PYTHONPATH

from app.cli.main import run_alone  # noqa: E402
from app.cli.repo import repo_backfill  # noqa: E402

if __name__ == "__main__":
    run_alone(repo_backfill)
