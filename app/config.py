"""Settings read from the environment: one pydantic-settings object, re-read on every call.

Owns the names and defaults of the environment variables the service, the worker and the CLI obey
(SPEC 4, 5). It only reads them; the operator pin and pause flags stored in the database live in
``app.storage.settings`` and win over these where the specification says so.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The repository root: the folder that holds ``app/``, ``migrations/`` and ``alembic.ini``.
REPO_ROOT = Path(__file__).resolve().parent.parent

StorageMode = Literal["db", "files", "both"]


class Settings(BaseSettings):
    """Environment of one process. Field names are the variable names (case-insensitive)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    scpln_db: str = "data/scpln.db"
    plan_storage_mode: StorageMode | None = None
    scpln_input_dir: str = "samples/planning"
    jobs_enabled: bool = True
    registry_backend: Literal["memory", "db"] = "db"
    runs_db_max_rows: int | None = Field(None, ge=1)
    scpln_queue_url: str | None = None
    scpln_api_tokens: str | None = None
    scpln_inprocess_worker: bool = True
    scpln_worker_nice: int = Field(10, ge=0, le=19)

    @field_validator(
        "plan_storage_mode", "runs_db_max_rows", "scpln_queue_url", "scpln_api_tokens", mode="before"
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


def resolve_path(value: str | Path) -> Path:
    """An absolute path: relative ones are taken from the repository root, not the current directory."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


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
