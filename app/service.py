"""Planning service: plan an input set and store the version — the one function every edge calls.

Owns the sequence request -> effective storage mode -> intake check -> pipeline -> plan store ->
run record, so the API, the job worker, the CLI and the rollback verification behave alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.config import get_settings, resolve_path
from app.errors import IntakePaused
from app.planning.model import PlanContent, PlanParams
from app.planning.pipeline import Progress, check_version_id, new_version_id, plan_input_set
from app.storage.plans import PlanStore, WriteResult
from app.storage.settings import intake_open


@dataclass
class PlanRequest:
    """What to plan: an input set folder (default ``SCPLN_INPUT_DIR``) and the parameters."""

    input_dir: str | None = None
    input_label: str | None = None
    version_id: str | None = None
    params: PlanParams = field(default_factory=PlanParams)
    note: str | None = None
    parent_version_id: str | None = None

    def folder(self) -> Path:
        return resolve_path(self.input_dir) if self.input_dir else get_settings().input_dir

    def label(self) -> str:
        return self.input_label or self.folder().name


@dataclass
class PlanOutcome:
    content: PlanContent
    write: WriteResult
    seconds: float
    run_id: str | None = None

    def kpis(self) -> dict[str, Any]:
        final = self.content.documents["plan_final.json"]
        return {k["metric"]: k["value"] for k in final["kpis"] if k["bucket_type"] == "total"}


def check_intake(store: PlanStore) -> None:
    if not intake_open(store.engine):
        raise IntakePaused("plan intake paused")


def run_plan(
    request: PlanRequest,
    *,
    storage: str | None = None,
    store: PlanStore | None = None,
    progress: Progress | None = None,
    enforce_intake: bool = True,
    version_registered: bool = False,
) -> PlanOutcome:
    """Plan ``request`` and write it in the effective storage mode.

    Raises ``InputError`` (bad input), ``StorageModeConflict`` (pinned mode), ``IntakePaused``,
    ``VersionConflict`` or ``StorageError``. ``version_registered`` says a job already created the
    ``running`` catalogue row, which a failure then marks ``failed``.
    """
    store = store or PlanStore()
    mode = store.effective_mode(storage)
    if enforce_intake:
        check_intake(store)
    version_id = check_version_id(request.version_id) if request.version_id else new_version_id()
    started = time.perf_counter()
    try:
        content = plan_input_set(
            request.folder(), request.params, version_id=version_id, label=request.label(), progress=progress
        )
    except Exception as exc:
        if version_registered:
            store.mark_failed(version_id, f"{type(exc).__name__}: {exc}")
        raise
    write = store.write_version(
        content,
        mode=mode,
        input_label=request.label(),
        note=request.note,
        parent_version_id=request.parent_version_id,
        input_dir=str(request.folder()),
    )
    return PlanOutcome(content, write, time.perf_counter() - started)
