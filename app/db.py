"""The operators' database module: the names the runbook and scripts import from ``app.db`` (SPEC 4.4).

Owns the contract of the legacy artifact helpers — ``init_db``, ``upsert_plan_artifact``,
``get_plan_artifact``, ``list_plan_artifacts`` — and checking what operators hand them (the version id,
the artifact name, JSON payloads). It writes nothing itself: the helpers delegate to the plan store,
the only writer of plan content, and the engine, URL and schema functions are ``app.storage.db``'s,
re-exported here so that ``from app.db import get_engine`` keeps working.
"""

from __future__ import annotations

import json
from typing import Any

from app.planning.model import VERSION_ID_RE
from app.storage.db import (
    alembic_config,
    database_url,
    dispose_engines,
    downgrade_schema,
    get_engine,
    head_revision,
    init_db,
    insert_for,
    normalize_url,
    now_ms,
    ping,
    schema_revision,
    sqlite_path,
    upgrade_schema,
)
from app.storage.plans import PlanStore

__all__ = [
    "alembic_config",
    "database_url",
    "dispose_engines",
    "downgrade_schema",
    "get_engine",
    "get_plan_artifact",
    "head_revision",
    "init_db",
    "insert_for",
    "list_plan_artifacts",
    "normalize_url",
    "now_ms",
    "ping",
    "schema_revision",
    "sqlite_path",
    "upgrade_schema",
    "upsert_plan_artifact",
]


def upsert_plan_artifact(version_id: str, name: str, payload: str, *, url: str | None = None) -> None:
    """Store artifact ``name`` of ``version_id`` (replacing it). ``*.json`` must be valid JSON and
    ``*.csv`` is kept verbatim. A version without a ``plan_versions`` row gets one: ready, files, draft."""
    _check_artifact_key(version_id, name)
    document = _checked_payload(name, payload)
    PlanStore(get_engine(url)).upsert_artifact(version_id, name, payload, document)


def get_plan_artifact(version_id: str, name: str, *, url: str | None = None) -> str | None:
    """The stored text of one artifact, or None."""
    return PlanStore(get_engine(url)).artifact_text(version_id, name)


def list_plan_artifacts(version_id: str, *, url: str | None = None) -> list[str]:
    """The artifact names stored for a version, sorted."""
    return PlanStore(get_engine(url)).artifact_names(version_id)


def _check_artifact_key(version_id: str, name: str) -> None:
    if not isinstance(version_id, str) or not VERSION_ID_RE.match(version_id):
        raise ValueError(f"invalid version id {version_id!r}: expected {VERSION_ID_RE.pattern}")
    if not isinstance(name, str) or "/" in name or not name.endswith((".json", ".csv")) or name[0] == ".":
        raise ValueError(f"invalid artifact name {name!r}: expected a file name ending .json or .csv")


def _checked_payload(name: str, payload: str) -> Any:
    """The parsed document of a ``*.json`` payload (None for CSV); refuse what is not text or JSON."""
    if not isinstance(payload, str):
        raise ValueError(f"{name}: payload must be text, got {type(payload).__name__}")
    if not name.endswith(".json"):
        return None
    try:
        return json.loads(payload)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name}: payload is not valid JSON ({exc})") from exc
