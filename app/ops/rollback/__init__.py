"""Rollback to ``plan_artifacts`` and roll-forward to the PlanRepository, each as one resumable command.

``commands`` holds the two commands and their phases, ``runner`` the phase runner and its state file,
``repair`` the making of every version readable from artifacts (from its ready copy, else its rows).
"""

from app.ops.rollback.commands import (
    ROLLBACK_PHASES,
    ROLLFORWARD_PHASES,
    VERIFY_NOTE,
    OpsReport,
    RollbackFailed,
    content_checksums,
    rollback,
    rollforward,
)
from app.ops.rollback.runner import CRASH_ENV

__all__ = [
    "CRASH_ENV",
    "ROLLBACK_PHASES",
    "ROLLFORWARD_PHASES",
    "VERIFY_NOTE",
    "OpsReport",
    "RollbackFailed",
    "content_checksums",
    "rollback",
    "rollforward",
]
