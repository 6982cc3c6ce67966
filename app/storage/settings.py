"""Operator settings stored in the database: the storage-mode pin, the intake pause, maintenance.

Owns the ``app_settings`` keys. It stores the pin but does not decide what the pin means:
``app.storage.modes`` owns the storage-mode rule, and :func:`effective_mode` only hands it the stored pin.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, delete, select

from app.config import get_settings
from app.storage import modes
from app.storage.db import insert_for, now_ms
from app.storage.modes import default_mode
from app.storage.schema import app_settings

# ``default_mode`` is read here by the operations code next to the pin it stands in for.
__all__ = ["default_mode"]

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
    set_value(engine, PIN, None if mode is None else modes.check_mode(mode))


def effective_mode(engine: Engine, requested: str | None = None) -> str:
    """The storage mode a write uses under the stored pin (``app.storage.modes.effective_mode``)."""
    return modes.effective_mode(storage_pin(engine), requested)


def intake_paused_in_db(engine: Engine) -> bool:
    return get_value(engine, PAUSED) == "1"


def intake_open(engine: Engine) -> bool:
    """Intake is open when the process was not started with ``JOBS_ENABLED=0`` and no pause is stored."""
    return get_settings().jobs_enabled and not intake_paused_in_db(engine)


def maintenance_on(engine: Engine) -> bool:
    return get_value(engine, MAINTENANCE) == "1"
