"""Settings read from the environment: one pydantic-settings object, re-read on every call.

Owns the names and defaults of the environment variables the service, the worker and the CLI obey
(SPEC 4, 5), and the one rule of where a database's own files live (:func:`data_paths`: backups,
rollback and roll-forward state, scratch files). It only reads the environment; the operator pin and
pause flags stored in the database live in ``app.storage.settings`` and win over these where the
specification says so.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

#: The repository root: the folder that holds ``app/``, ``migrations/`` and ``alembic.ini``.
REPO_ROOT = Path(__file__).resolve().parent.parent

StorageMode = Literal["db", "files", "both"]


class Settings(BaseSettings):
    """Environment of one process. Field names are the variable names (case-insensitive)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    scpln_db: str = "data/scpln.db"
    scpln_home: str | None = None
    plan_storage_mode: StorageMode | None = None
    scpln_input_dir: str = "samples/planning"
    jobs_enabled: bool = True
    registry_backend: Literal["memory", "db"] = "db"
    runs_db_max_rows: int | None = Field(None, ge=1)
    scpln_queue_url: str | None = None
    scpln_api_tokens: str | None = None
    scpln_inprocess_worker: bool = True
    scpln_worker_nice: int = Field(10, ge=0, le=19)
    #: Folders that input sets named over HTTP must lie in (comma-separated): input_folder_in_roots.
    scpln_input_roots: str | None = None
    #: Host names served besides loopback ones (comma-separated; ``*`` any): app.api.guard.
    scpln_allowed_hosts: str | None = None
    #: The largest request body accepted (413 beyond): app.api.guard.
    scpln_max_body_bytes: int = Field(10_000_000, ge=1024)

    @field_validator(
        "plan_storage_mode",
        "runs_db_max_rows",
        "scpln_queue_url",
        "scpln_api_tokens",
        "scpln_home",
        "scpln_allowed_hosts",
        "scpln_input_roots",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        """``VAR=`` (set but empty) means the same as not set."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("plan_storage_mode", "registry_backend", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def input_dir(self) -> Path:
        """The default input set, relative paths taken from the repository root."""
        return resolve_path(self.scpln_input_dir)


def input_roots(settings: Settings | None = None) -> list[Path]:
    """The folders input sets named over HTTP (API and UI) must lie in: ``SCPLN_INPUT_ROOTS``, else the
    folder holding the default input set (``samples/`` out of the box). Resolved, symlinks followed."""
    settings = settings or get_settings()
    named = [r.strip() for r in (settings.scpln_input_roots or "").split(",") if r.strip()]
    roots = [resolve_path(r) for r in named] if named else [settings.input_dir.parent]
    return [r.resolve() for r in roots]


def input_folder_in_roots(value: str) -> Path:
    """The input set folder ``value`` names, when it is a folder inside an input root (symlinks
    followed before the check); a ValueError otherwise, which names neither the server's paths nor
    whether a folder outside the roots exists. The CLI is not bound by the roots: its user runs it on
    the server already."""
    folder = resolve_path(value).resolve()
    if not any(folder == root or folder.is_relative_to(root) for root in input_roots()):
        raise ValueError(f"input_dir {value!r} is not inside an input root (SCPLN_INPUT_ROOTS)")
    if not folder.is_dir():
        raise ValueError(f"input_dir {value!r} is not a folder")
    return folder


def positive_number(name: str, default: float) -> float:
    """A positive number from the environment variable ``name`` (``default`` when unset or blank);
    anything else is a ValueError naming the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be > 0")
    return value


def resolve_path(value: str | Path) -> Path:
    """An absolute path: relative ones are taken from the repository root, not the current directory."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


@dataclass(frozen=True)
class DataPaths:
    """The folders and files that belong to one database: its backups and its scratch files."""

    #: The data directory: ``SCPLN_HOME``, or the one :func:`data_paths` derives from the database.
    home: Path

    @property
    def backup(self) -> Path:
        """``scpln db backup``, ``POST /ops/backup``, the ops page and the rollback's backup."""
        return self.home / "backup"

    @property
    def tmp(self) -> Path:
        """Scratch files: the rollback's snapshots and the state files below."""
        return self.home / "tmp"

    @property
    def rollback_state(self) -> Path:
        return self.tmp / "rollback_state.json"

    @property
    def rollforward_state(self) -> Path:
        return self.tmp / "rollforward_state.json"


def data_paths(database: str | None = None, settings: Settings | None = None) -> DataPaths:
    """Where the files of ``database`` (a SQLAlchemy URL or a ``SCPLN_DB`` value; default ``SCPLN_DB``)
    live, so that a hub serving one database never lists or overwrites another database's files.

    ``SCPLN_HOME``, when set, is the data directory. Otherwise a SQLite file's data directory is the
    folder that holds it, or the parent of that folder when the folder is named ``data``: the
    repository's ``data/scpln.db`` keeps ``backup/`` and ``tmp/`` at the repository root, where the
    runbook looks for them, and ``/srv/x/plan.db`` gets ``/srv/x/backup``. A database without a file
    (PostgreSQL, in-memory SQLite) gets ``data/<backend>-<host>-<port>-<name>`` in the repository."""
    settings = settings or get_settings()
    if settings.scpln_home:
        return DataPaths(resolve_path(settings.scpln_home))
    value = (database or settings.scpln_db).strip()
    if "://" not in value:
        folder = resolve_path(value).parent
        return DataPaths(folder.parent if folder.name == "data" else folder)
    url = make_url(value)
    name = url.database or ""
    if url.get_backend_name() == "sqlite" and name and name != ":memory:" and not name.startswith("file:"):
        return data_paths(name, settings)
    backend = "postgresql" if url.get_backend_name() == "postgres" else url.get_backend_name()  # one name
    parts = [backend, url.host or "local", str(url.port or ""), name or "memory"]
    return DataPaths(REPO_ROOT / "data" / re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(p for p in parts if p)))


def get_settings() -> Settings:
    """The settings of the current environment.

    Tests and operators change variables between calls, so the environment is looked at on every
    call; building the pydantic object costs milliseconds, so it is only rebuilt when one of the
    variables it reads has changed."""
    return _settings_for(tuple(os.environ.get(name) for name in _ENV_NAMES))


_ENV_NAMES = tuple(sorted({name.upper() for name in Settings.model_fields}))


@lru_cache(maxsize=32)
def _settings_for(_values: tuple[str | None, ...]) -> Settings:
    return Settings()
