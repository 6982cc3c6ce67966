"""PSI editing as every edge calls it (SPEC 6): view, edit and lock cells, follow the history, submit and
approve, and reconcile the edits into a child version.

Owns running one PSI request: open the version's PSI state through the plan store (one transaction,
the version's write lock when it changes anything), apply the pure rules of ``app.planning.psi`` and
save what changed, or for reconcile load the version's input set, plan it with the PSI state as decisions and
store the child version. It holds no SQL and no editing rule; the API, the UI and the job service call
it and format what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.config import get_settings, resolve_path
from app.errors import PsiConflict, PsiInputError
from app.planning import psi
from app.planning.inputs import load_input_set
from app.planning.model import PSI_ARTIFACTS, PlanContent, PlanParams
from app.planning.pipeline import new_version_id, run_pipeline
from app.services.plans import check_intake
from app.storage import codec_series
from app.storage.db import now_ms
from app.storage.plans import PlanStore, PsiSession, VersionInfo, WriteResult

if TYPE_CHECKING:
    from sqlalchemy import Connection

DEFAULT_ACTOR = "local"

__all__ = [
    "DEFAULT_ACTOR",
    "PsiConflict",
    "PsiInputError",
    "apply_edits",
    "approve",
    "events",
    "input_folder",
    "psi_csv",
    "psi_view",
    "reconcile",
    "state",
    "submit",
]


def _decimals(version: VersionInfo) -> int | None:
    return PlanParams.from_dict(version.params).decimals


def _require_ready(version: VersionInfo) -> None:
    if version.status != "ready":
        raise PsiConflict(
            f"plan version {version.version_id!r} is {version.status}; only a ready plan can be edited",
            {"status": version.status},
        )


# --- changing -------------------------------------------------------------------------------------


def apply_edits(
    version_id: str,
    level: str,
    edits: Sequence[Mapping[str, Any]] = (),
    lock: Sequence[Mapping[str, Any]] = (),
    unlock: Sequence[Mapping[str, Any]] = (),
    note: str | None = None,
    actor: str = DEFAULT_ACTOR,
    *,
    store: PlanStore | None = None,
) -> dict[str, Any]:
    """Apply one PSI request — unlocks first, then the edits ``[{key, field, value}]`` in order, then the
    locks — all or nothing. Returns the cell changes (apportioned and rolled-up ones included), the
    locks set and cleared, the new approval and how many events were recorded.

    Raises ``PsiInputError`` (422: unknown level, key or field, bad value, unreachable target),
    ``PsiConflict`` (409: locked cell, plan not ready) or ``PlanNotFound``.
    """
    psi.check_request(level, edits, lock, unlock)
    store = store or PlanStore()
    with store.psi_session(version_id, for_update=True) as session:
        _require_ready(session.version)
        grid, state = session.grid(), session.state()
        done = psi.apply_request(
            grid, state, level, edits, lock, unlock,
            decimals=_decimals(session.version), actor=actor, note=note, ts=now_ms(),
        )  # fmt: skip
        if state.new_events:
            session.save(state)
    return {"version_id": version_id, "mode": session.mode, **done}


def _transition(
    version_id: str, kind: str, actor: str, note: str | None, store: PlanStore | None
) -> dict[str, Any]:
    store = store or PlanStore()
    with store.psi_session(version_id, for_update=True) as session:
        _require_ready(session.version)
        state = session.state()
        event = psi.transition(state, kind, version_id=version_id, actor=actor, note=note, ts=now_ms())
        session.save(state)
    return {"version_id": version_id, "approval": state.approval, "mode": session.mode, "event": event}


def submit(
    version_id: str, actor: str = DEFAULT_ACTOR, note: str | None = None, *, store: PlanStore | None = None
) -> dict[str, Any]:
    """draft -> pending (409 from any other state)."""
    return _transition(version_id, "submit", actor, note, store)


def approve(
    version_id: str, actor: str = DEFAULT_ACTOR, note: str | None = None, *, store: PlanStore | None = None
) -> dict[str, Any]:
    """pending -> approved (409 unless pending)."""
    return _transition(version_id, "approve", actor, note, store)


def reopen(
    version_id: str,
    actor: str = DEFAULT_ACTOR,
    note: str | None = None,
    *,
    storage: str | None = None,
    store: PlanStore | None = None,
) -> str:
    """Reopen an approved version as a new draft child version (``parent_version_id``) holding the same
    plan and the same overrides and locks, whose history starts with a ``reopen`` event; the approved
    version, its content and its history stay exactly as they are. Returns the child's version id.
    409 unless the version is approved (a draft or pending one is edited as it is), 503 while plan
    intake is paused."""
    store = store or PlanStore()
    check_intake(store)
    session, _, st = _read(version_id, store, with_grid=False)
    version = session.version
    _require_ready(version)
    child = new_version_id()
    draft = psi.reopened(st, version_id, actor=actor, note=note, ts=now_ms())
    content = store.read_version(version_id)
    documents: dict[str, Any] = {
        name: {**doc, "version_id": child} if isinstance(doc, dict) and "version_id" in doc else doc
        for name, doc in content.documents.items()
        if name not in PSI_ARTIFACTS
    }
    overrides_doc, state_doc = PSI_ARTIFACTS
    documents[overrides_doc] = codec_series.psi_overrides_document(child, list(draft.overrides.values()))
    documents[state_doc] = codec_series.psi_state_document(child, draft.approval, draft.events)
    store.write_version(
        PlanContent(version_id=child, params=content.params, documents=documents),
        mode=store.effective_mode(storage),
        input_label=version.input_label,
        input_dir=version.input_dir,
        note=note or f"reopened from approved {version_id}",
        parent_version_id=version_id,
    )
    return child


# --- reading --------------------------------------------------------------------------------------


def _read(
    version_id: str, store: PlanStore | None, with_grid: bool
) -> tuple[PsiSession, psi.Grid | None, psi.State]:
    store = store or PlanStore()
    with store.psi_session(version_id, for_update=False) as session:
        grid = session.grid() if with_grid else None
        return session, grid, session.state()


def events(version_id: str, *, store: PlanStore | None = None) -> dict[str, Any]:
    """The version's PSI events, oldest first, each with its position ``seq``."""
    _, _, st = _read(version_id, store, with_grid=False)
    return {
        "version_id": version_id,
        "approval": st.approval,
        "events": [{"seq": i, **e} for i, e in enumerate(st.events)],
    }


def state(version_id: str, *, store: PlanStore | None = None) -> dict[str, Any]:
    """Approval, the current overrides (values and locks) and a summary of the history."""
    session, _, st = _read(version_id, store, with_grid=False)
    entries = list(st.overrides.values())
    return {
        "version_id": version_id,
        "status": session.version.status,
        "approval": st.approval,
        "mode": session.mode,
        "overrides": entries,
        "edited_cells": sum(1 for e in entries if e.get("values")),
        "locked_cells": sum(1 for e in entries if e.get("locked")),
        "events": len(st.events),
        "last_event": st.events[-1] if st.events else None,
    }


class PsiReader:
    """One read of a version's PSI grid and state, for as many views of it as a page shows (the UI's
    PSI tab shows both levels, the family's grid and the history: read once, not once per view).
    :meth:`of_family` reads one family's cells only, as a page about one family needs."""

    families: list[str]
    family: str | None = None

    def __init__(self, version_id: str, store: PlanStore | None = None) -> None:
        with (store or PlanStore()).psi_session(version_id, for_update=False) as session:
            self._load(session, session.grid())
        self.families = sorted({key[0] for key in self.grid.agg})

    @classmethod
    def of_family(cls, version_id: str, family: str | None, store: PlanStore | None = None) -> PsiReader:
        """The cells of ``family`` only, selected by the database (a PSI edit never reaches past its
        family); an unknown or missing family means the first. ``families`` still lists them all."""
        reader = cls.__new__(cls)
        with (store or PlanStore()).psi_session(version_id, for_update=False) as session:
            reader.families = session.families()
            chosen = (
                family if family in reader.families else (reader.families[0] if reader.families else None)
            )
            reader.family = chosen
            reader._load(session, session.grid(chosen if chosen is not None else ""))
        return reader

    def _load(self, session: PsiSession, grid: psi.Grid) -> None:
        self.version_id, self.grid, self.state = session.version.version_id, grid, session.state()
        self.mode, self.decimals = session.mode, _decimals(session.version)

    def view(
        self,
        level: str = "aggregate",
        filters: Mapping[str, Any] | None = None,
        limit: int = 500,
        offset: int = 0,
    ) -> dict[str, Any]:
        """A page of one level's cells: base values with the overrides applied, lock flags, the fields
        overridden, and the other level (aggregate rows carry the roll-up of their detail cells, detail
        rows their family-period total). Filters: family, sku, period, week, locked, overridden."""
        wanted = psi.check_view(level, filters, limit, offset)
        total, page = psi.view_page(self.grid, self.state, level, wanted, limit, offset, self.decimals)
        return {
            "version_id": self.version_id, "level": level, "approval": self.state.approval, "mode": self.mode,
            "total": total, "limit": limit, "offset": offset, "rows": page,
        }  # fmt: skip

    def family_sheet(self, family: str) -> psi.Sheet:
        """``family``'s cells across time (:func:`app.planning.psi.family_sheet`)."""
        return psi.family_sheet(self.grid, self.state, family)

    def events(self) -> list[dict[str, Any]]:
        """The PSI events, oldest first, each with its position ``seq``."""
        return [{"seq": i, **e} for i, e in enumerate(self.state.events)]


def psi_view(
    version_id: str,
    level: str = "aggregate",
    filters: Mapping[str, Any] | None = None,
    limit: int = 500,
    offset: int = 0,
    *,
    store: PlanStore | None = None,
) -> dict[str, Any]:
    """A page of one level's cells (:meth:`PsiReader.view`)."""
    psi.check_view(level, filters, limit, offset)  # a bad request is refused before the plan is read
    return PsiReader(version_id, store).view(level, filters, limit, offset)


def psi_csv(version_id: str, level: str = "aggregate", *, store: PlanStore | None = None) -> str:
    """The whole level as CSV: numbers plain, flags true/false, overridden fields joined by ';'."""
    psi.check_level(level)
    session, grid, st = _read(version_id, store, with_grid=True)
    assert grid is not None
    return psi.csv_text(grid, st, level, _decimals(session.version))


# --- reconcile ------------------------------------------------------------------------------------


def input_folder(version: VersionInfo, input_dir: str | None = None) -> Path:
    """The input set a version was planned from: ``input_dir`` when given, else its ``input_label``
    as a folder (the default input set when the label is its name, a path from the repository root, or
    a sibling of the default input set). 409 when none exists."""
    if input_dir:
        folder = resolve_path(input_dir)
        if not folder.is_dir():
            raise PsiInputError(f"input_dir {input_dir!r} is not a folder")
        return folder
    if version.input_dir and Path(version.input_dir).is_dir():
        return Path(version.input_dir)
    label = version.input_label
    if label:
        default = get_settings().input_dir
        candidates = [default] if default.name == label else []
        candidates += [resolve_path(label), default.parent / label]
        for folder in candidates:
            if folder.is_dir():
                return folder
    raise PsiConflict(
        f"the input set of plan version {version.version_id!r} is not known (input label {label!r}); "
        "give input_dir",
        {"input_label": label},
    )


def reconcile(
    version_id: str,
    actor: str = DEFAULT_ACTOR,
    note: str | None = None,
    *,
    input_dir: str | None = None,
    storage: str | None = None,
    store: PlanStore | None = None,
    on_written: Callable[[PlanContent, WriteResult], None] | None = None,
) -> str:
    """Re-plan the version's input set with its PSI state as decisions (held cells, edited detail, firm
    orders: ``app.planning.psi.pipeline_decisions``) and store the result as a new
    child version (``parent_version_id``); the parent records a ``reconcile`` event in the same
    transaction. Returns the child's version id. 409 when the input set is not known, 503 when plan
    intake is paused; ``InputError`` when the input set no longer validates. ``on_written`` is called
    with the child's content and write result once it is stored (the RunRegistry record)."""
    store = store or PlanStore()
    check_intake(store)
    child_mode = store.effective_mode(storage)
    session, grid, st = _read(version_id, store, with_grid=True)
    assert grid is not None
    version = session.version
    _require_ready(version)
    folder = input_folder(version, input_dir)
    params = PlanParams.from_dict(version.params)
    inputs = load_input_set(folder, label=version.input_label)
    decisions, touched_cells = psi.pipeline_decisions(grid, st, inputs, params)
    child_id = new_version_id()
    content = run_pipeline(inputs, params, child_id, decisions=decisions)

    def record_on_parent(conn: Connection) -> None:
        with store.psi_session(version_id, for_update=True, conn=conn) as parent:
            parent_state = parent.state()
            psi.record_reconcile(parent_state, child_id, touched_cells, actor=actor, note=note, ts=now_ms())
            parent.save(parent_state)

    written = store.write_version(
        content,
        mode=child_mode,
        input_label=version.input_label,
        note=note or f"PSI reconcile of {version_id}",
        parent_version_id=version_id,
        before_commit=record_on_parent,
    )
    if on_written is not None:
        on_written(content, written)
    return child_id
