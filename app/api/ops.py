"""Operations routes (SPEC 5.2, admin only): storage-mode pin, intake pause/resume, integrity check,
backups and the maintenance flag. Each is one call into ``app.storage.settings`` or ``app.ops``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from app.api.auth import ADMIN, Caller, Store
from app.api.schemas import (
    BackupList,
    BackupOut,
    CheckIn,
    ErrorBody,
    IntakeOut,
    MaintenanceIn,
    MaintenanceOut,
    StorageModeIn,
    StorageModeOut,
)
from app.ops.backup import backup_database, list_backups
from app.ops.check import check_database
from app.ops.intake import pause_intake, resume_intake
from app.storage import modes
from app.storage import settings as st
from app.storage.plans import PlanStore

router = APIRouter(prefix="/ops", tags=["operations"], dependencies=[ADMIN])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid token."},
    403: {"model": ErrorBody, "description": "Needs the admin role."},
    422: {"model": ErrorBody, "description": "Invalid body."},
}


def _mode(store: PlanStore) -> dict[str, Any]:
    return {
        "mode": st.effective_mode(store.engine),
        "pin": st.storage_pin(store.engine),
        "default": modes.default_mode(),
    }


@router.get(
    "/storage-mode",
    summary="Storage mode of new plans",
    description="The effective mode, the operator pin (null when none) and the default without a pin.",
    response_model=StorageModeOut,
    responses=ERRORS,
)
def get_storage_mode(store: Store) -> Any:
    return _mode(store)


@router.put(
    "/storage-mode",
    summary="Pin or clear the storage mode",
    description='`{"mode": "files"}` pins new plans to files (requests for another mode then get '
    '409); `{"mode": null}` clears the pin.',
    response_model=StorageModeOut,
    responses=ERRORS,
)
def put_storage_mode(body: StorageModeIn, store: Store) -> Any:
    st.set_storage_pin(store.engine, body.mode)
    return _mode(store)


def _intake(store: PlanStore) -> dict[str, Any]:
    return {"jobs_enabled": st.intake_open(store.engine), "paused": st.intake_paused_in_db(store.engine)}


@router.post(
    "/jobs/pause",
    summary="Pause plan intake",
    description="Every plan-creating request answers 503 until resumed; running jobs finish, queued jobs "
    "wait, nothing queued is lost. On SQLite the WAL is checkpointed into the main file.",
    response_model=IntakeOut,
    responses=ERRORS,
)
def pause_jobs(store: Store, caller: Caller = ADMIN) -> Any:
    pause_intake(store.engine, actor=caller.actor)
    return _intake(store)


@router.post(
    "/jobs/resume",
    summary="Resume plan intake",
    description="Clears the stored pause. Intake stays closed in a process started with JOBS_ENABLED=0.",
    response_model=IntakeOut,
    responses=ERRORS,
)
def resume_jobs(store: Store) -> Any:
    resume_intake(store.engine)
    return _intake(store)


@router.post(
    "/check",
    summary="Run the integrity check",
    description="Database integrity, every version complete in the encodings its mode requires, both "
    "encodings equal where both exist, plan identities. The report's `ok` is false on any problem.",
    responses=ERRORS,
)
def run_check(store: Store, body: Annotated[CheckIn | None, Body()] = None) -> dict[str, Any]:
    return check_database(store.engine, version_id=body.version_id if body else None).as_dict()


@router.post(
    "/backup",
    summary="Back up the database",
    description="SQLite: an online backup to plan_db_<YYYYMMDDHHMM>.db in the database's backup folder "
    "(backup/ in SCPLN_HOME, else beside the database), verified by integrity_check; PostgreSQL: pg_dump -Fc.",
    response_model=BackupOut,
    responses=ERRORS,
)
def run_backup(store: Store) -> Any:
    path = backup_database(engine=store.engine)
    return {"path": str(path), "bytes": path.stat().st_size}


@router.get(
    "/backups",
    summary="List backups",
    description="Backup files in the database's backup folder, newest first: name, path, size, created_at.",
    response_model=BackupList,
    responses=ERRORS,
)
def get_backups(store: Store) -> Any:
    return {"items": list_backups(engine=store.engine)}


@router.put(
    "/maintenance",
    summary="Set or clear maintenance",
    description="`scpln_maintenance` is 1 while set (and while rollback/rollforward run).",
    response_model=MaintenanceOut,
    responses=ERRORS,
)
def put_maintenance(body: MaintenanceIn, store: Store) -> Any:
    st.set_value(store.engine, st.MAINTENANCE, "1" if body.enabled else None)
    return {"maintenance": st.maintenance_on(store.engine)}
