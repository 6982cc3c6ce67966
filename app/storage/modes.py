"""The storage-mode rule (SPEC 4.3): where a version is written and where it is read.

This module is the rule's only owner. It decides from values its callers hand in (the operator pin
stored in ``app_settings``, the request's ``storage``, ``PLAN_STORAGE_MODE``, the version's own stored
mode and whether it has PlanRepository rows); it reads no table itself, so a hot read can fetch the pin
together with other values in one query and still let this module decide.

The rule:

1. **Effective mode.** An operator pin wins over everything; while a pin is set, a request for another
   mode is refused (``StorageModeConflict``, 409). Without a pin: the request, else
   ``PLAN_STORAGE_MODE``, else ``both``. Writes use it; reads use it without a request.
2. **Encodings per mode.** ``db`` writes and reads PlanRepository rows only, ``files`` artifacts only
   (nothing is written to or read from the PlanRepository tables), ``both`` writes both in one
   transaction.
3. **Where one version is read from.** Rows in ``db``/``both`` mode when the version has them;
   artifacts in ``files`` mode, and in ``both`` mode for a version without rows; in ``db`` mode a
   version without rows has nothing readable. A version that is not ready has no tables yet.
4. **PSI state** (overrides, events, approval documents) is kept in the pin, else in the mode the
   version itself was written in, else the default. This differs from rule 1 on purpose: PSI edits
   belong beside the encodings the version actually has, so a version planned in ``files`` mode keeps
   its edits in artifacts even when the default is ``both`` (which would otherwise write override rows
   for a version that has no base rows). A pin still wins, so a rollback to ``files`` sends every edit
   to the artifacts.

The exporter's rule (rows whenever they exist, in any mode) is not a storage mode and lives with
the plan store.
"""

from __future__ import annotations

from app.config import get_settings
from app.errors import EncodingMissing, StorageModeConflict

MODES = ("db", "files", "both")
#: Where a version's tables are read from (rule 3).
ROWS, ARTIFACTS = "rows", "artifacts"


def check_mode(mode: str) -> str:
    """``mode`` itself when it names a storage mode; a ValueError (422) otherwise."""
    if mode not in MODES:
        raise ValueError(f"storage mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def default_mode() -> str:
    """The mode without a pin or request: ``PLAN_STORAGE_MODE``, else ``both``."""
    return get_settings().plan_storage_mode or "both"


def effective_mode(pin: str | None, requested: str | None = None) -> str:
    """Rule 1: the mode a write uses (and, without a request, the mode reads use)."""
    if requested is not None:
        check_mode(requested)
    if pin:
        if requested and requested != pin:
            raise StorageModeConflict(
                f"storage mode is pinned to {pin!r} by the operator; a request for {requested!r} is refused",
                {"pinned": pin, "requested": requested},
            )
        return pin
    return requested or default_mode()


def uses_rows(mode: str) -> bool:
    """Rule 2: whether ``mode`` writes and reads PlanRepository rows."""
    return mode in ("db", "both")


def uses_artifacts(mode: str) -> bool:
    """Rule 2: whether ``mode`` writes and reads artifacts."""
    return mode in ("files", "both")


def read_source(version_id: str, status: str, mode: str, has_rows: bool) -> str:
    """Rule 3: ``ROWS`` or ``ARTIFACTS`` for one version; ``EncodingMissing`` when nothing is readable."""
    if status != "ready":
        raise EncodingMissing(
            f"plan version {version_id!r} is {status}; its tables exist once it is ready", {"status": status}
        )
    if uses_rows(mode) and has_rows:
        return ROWS
    if uses_artifacts(mode):
        return ARTIFACTS
    raise EncodingMissing(
        f"plan version {version_id!r} has no PlanRepository rows and the storage mode is 'db'",
        {"mode": mode},
    )


def psi_mode(pin: str | None, version_mode: str | None) -> str:
    """Rule 4: the mode a version's PSI state is read and written in."""
    return pin or version_mode or default_mode()
