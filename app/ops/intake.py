"""Plan intake pause and resume (SPEC 4.3, 5.1; ``scpln jobs pause|resume``).

Owns the stored pause: ``jobs_paused`` in ``app_settings`` (who paused and when beside it). Pausing
also checkpoints SQLite's WAL into the main file (``wal_checkpoint(TRUNCATE)``), so the runbook's
plain ``cp data/scpln.db …`` copies a complete database. Whether intake is open is decided in
``app.storage.settings.intake_open``: the process was not started with ``JOBS_ENABLED=0`` and no
pause is stored. Running jobs are not interrupted; the job layer reads the same flag.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Engine

from app.config import get_settings
from app.storage.db import get_engine, now_ms
from app.storage.settings import PAUSED, get_value, intake_paused_in_db, set_value

PAUSED_BY = "jobs_paused_by"
#: Attempts at a full checkpoint while readers still hold older snapshots.
CHECKPOINT_TRIES = 20


def pause_intake(engine: Engine | None = None, actor: str | None = None) -> dict[str, Any]:
    """Store the pause and checkpoint the WAL. Returns :func:`intake_state` plus ``checkpoint`` (SQLite:
    ``{busy, wal_frames, checkpointed}`` of the last attempt; ``complete`` when nothing was left)."""
    engine = engine or get_engine()
    with engine.begin() as conn:
        set_value(engine, PAUSED, "1", conn)
        set_value(engine, PAUSED_BY, json.dumps({"actor": actor, "at": now_ms()}, sort_keys=True), conn)
    state = intake_state(engine)
    state["checkpoint"] = checkpoint_wal(engine)
    return state


def resume_intake(engine: Engine | None = None) -> dict[str, Any]:
    """Clear the stored pause. Intake stays closed if the process was started with ``JOBS_ENABLED=0``."""
    engine = engine or get_engine()
    with engine.begin() as conn:
        set_value(engine, PAUSED, None, conn)
        set_value(engine, PAUSED_BY, None, conn)
    return intake_state(engine)


def intake_state(engine: Engine | None = None) -> dict[str, Any]:
    """``{open, paused_in_db, jobs_enabled_env, paused_by, paused_at}``."""
    engine = engine or get_engine()
    paused = intake_paused_in_db(engine)
    env = get_settings().jobs_enabled
    by = get_value(engine, PAUSED_BY) if paused else None
    meta = json.loads(by) if by else {}
    return {
        "open": env and not paused,
        "paused_in_db": paused,
        "jobs_enabled_env": env,
        "paused_by": meta.get("actor"),
        "paused_at": meta.get("at"),
    }


def checkpoint_wal(engine: Engine) -> dict[str, Any] | None:
    """``PRAGMA wal_checkpoint(TRUNCATE)`` on SQLite, retried briefly while readers block it; None on
    other databases. ``complete`` is True when the WAL was emptied into the main file."""
    if engine.dialect.name != "sqlite":
        return None
    result: dict[str, Any] = {}
    for attempt in range(CHECKPOINT_TRIES):
        with engine.connect() as conn:
            busy, frames, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        result = {"busy": bool(busy), "wal_frames": frames, "checkpointed": done}
        if not busy:
            break
        time.sleep(0.05 * (attempt + 1))
    result["complete"] = not result["busy"]
    return result
