"""Operator settings stored in the database: the storage-mode pin, the intake pause, maintenance.

Owns the ``app_settings`` keys and the resolution of the effective storage mode (SPEC 4.3): the
operator pin wins over everything; without it the request, then ``PLAN_STORAGE_MODE``, then ``both``.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, delete, select

from app.config import get_settings
from app.errors import StorageModeConflict
from app.storage.db import insert_for, now_ms
from app.storage.schema import app_settings

MODES = ("db", "files", "both")
PIN = "storage_mode_pin"
PAUSED = "jobs_paused"
MAINTENANCE = "maintenance"


def get_value(engine: Engine, key: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            select(app_settings.c.value).where(app_settings.c.key == key)
        ).scalar_one_or_none()


def set_value(engine: Engine, key: str, value: str | None, conn: Connection | None = None) -> None:
    """Set (or with None clear) one setting."""

    def run(c: Connection) -> None:
        if value is None:
            c.execute(delete(app_settings).where(app_settings.c.key == key))
            return
        stmt = insert_for(engine)(app_settings).values(key=key, value=value, updated_at=now_ms())
        c.execute(
            stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value, "updated_at": now_ms()})
        )

    if conn is not None:
        run(conn)
    else:
        with engine.begin() as c:
            run(c)


def storage_pin(engine: Engine) -> str | None:
    return get_value(engine, PIN)


def set_storage_pin(engine: Engine, mode: str | None) -> None:
    if mode is not None and mode not in MODES:
        raise ValueError(f"storage mode must be one of {', '.join(MODES)}, not {mode!r}")
    set_value(engine, PIN, mode)


def default_mode() -> str:
    """The mode without a pin or request: ``PLAN_STORAGE_MODE``, else ``both``."""
    return get_settings().plan_storage_mode or "both"


def effective_mode(engine: Engine, requested: str | None = None) -> str:
    """The storage mode a write uses. A pin refuses a request for another mode (409)."""
    if requested is not None and requested not in MODES:
        raise ValueError(f"storage mode must be one of {', '.join(MODES)}, not {requested!r}")
    pin = storage_pin(engine)
    if pin:
        if requested and requested != pin:
            raise StorageModeConflict(
                f"storage mode is pinned to {pin!r} by the operator; a request for {requested!r} is refused",
                {"pinned": pin, "requested": requested},
            )
        return pin
    return requested or default_mode()


def intake_paused_in_db(engine: Engine) -> bool:
    return get_value(engine, PAUSED) == "1"


def intake_open(engine: Engine) -> bool:
    """Intake is open when the process was not started with ``JOBS_ENABLED=0`` and no pause is stored."""
    return get_settings().jobs_enabled and not intake_paused_in_db(engine)


def maintenance_on(engine: Engine) -> bool:
    return get_value(engine, MAINTENANCE) == "1"
