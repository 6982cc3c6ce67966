"""PSI editing (SPEC 6): overrides and locks on the cells of one plan version, their event history, the
approval ``draft -> pending -> approved``, and reconcile as a child version.

Owns the editing rules. Cells live on two levels: ``aggregate`` (key ``{family, period}``) and ``det``
(key ``{sku, week, period}``); ``demand`` and ``supply`` are editable. An aggregate edit re-apportions
the new family total over the unlocked detail cells of that (family, period) by largest remainder,
their current values as weights, while locked cells keep theirs; a detail edit rolls up, so the
family-period total becomes the sum of its cells. Both levels' changed cells are recorded as overrides
(the current value and lock of each cell); every change is an event with actor, time, before/after and
note. The base plan rows are never rewritten.

Storage follows the version's mode — the operator pin, else the mode the version was written in:
``db`` uses ``plan_overrides``/``plan_override_events``, ``files`` the ``psi_overrides.json``/
``psi_state.json`` artifacts, ``both`` both in one transaction. ``plan_versions.approval`` (the
catalogue, written in every mode) always carries the approval. Document and row shapes are
``app.storage.codec_series``'; this module decides what goes in them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, insert, select, update

from app.config import get_settings, resolve_path
from app.db import _insert_for, now_ms
from app.errors import EncodingMissing, IntakePaused, PlanNotFound, PsiConflict, PsiInputError
from app.planning import documents as docs
from app.planning.apportion import apportion_one
from app.planning.inputs import load_input_set
from app.planning.model import PlanContent, PlanInputs, PlanParams
from app.planning.pipeline import new_version_id, run_pipeline
from app.storage import codec_series, modes
from app.storage.codec_series import PSI_OVERRIDES, PSI_STATE
from app.storage.plans import PlanStore, WriteResult, link_override_events, read_psi_rows, set_approval
from app.storage.schema import (
    plan_artifacts,
    plan_override_events,
    plan_overrides,
    plan_series,
    plan_versions,
)
from app.storage.settings import intake_open, storage_pin

LEVELS = ("aggregate", "det")
FIELDS = ("demand", "supply")
KEY_FIELDS = {"aggregate": ("family", "period"), "det": ("sku", "week", "period")}
FILTERS = ("family", "sku", "period", "week", "locked", "overridden")
DEFAULT_ACTOR = "local"

Key = tuple[str, ...]


def key_hash(key: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the key's canonical JSON."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def key_dict(level: str, key: Key) -> dict[str, str]:
    return dict(zip(KEY_FIELDS[level], key, strict=True))


# --- the version, its base plan and its PSI state -------------------------------------------------


@dataclass
class Version:
    version_id: str
    status: str
    approval: str
    storage_mode: str | None
    params: dict[str, Any]
    input_label: str | None
    input_dir: str | None = None
    mode: str = "both"  # the mode PSI state is read and written in

    @property
    def decimals(self) -> int | None:
        return PlanParams.from_dict(self.params).decimals


@dataclass
class Grid:
    """The base values of both levels: aggregate.json and sku_week.json rows by cell key."""

    agg: dict[Key, dict[str, Any]]
    det: dict[Key, dict[str, Any]]
    members: dict[Key, list[Key]]  # (family, period) -> its detail cells, by SKU then week

    @classmethod
    def from_rows(cls, agg_rows: Iterable[dict[str, Any]], det_rows: Iterable[dict[str, Any]]) -> Grid:
        agg = {(r["family"], r["period"]): r for r in agg_rows}
        det = {(r["sku"], r["week"], r["period"]): r for r in det_rows}
        members: dict[Key, list[Key]] = {}
        for key, row in det.items():
            members.setdefault((row["family"], row["period"]), []).append(key)
        for cells in members.values():
            cells.sort(key=lambda k: (k[0], k[1]))
        return cls(agg, det, members)

    def rows(self, level: str) -> dict[Key, dict[str, Any]]:
        return self.agg if level == "aggregate" else self.det

    def family_period(self, det_key: Key) -> Key:
        row = self.det[det_key]
        return (row["family"], row["period"])


@dataclass
class State:
    """Overrides by (level, key) in document order, the events, the approval, and where they came from."""

    overrides: dict[tuple[str, Key], dict[str, Any]]
    events: list[dict[str, Any]]
    approval: str
    source: str  # db | files | none
    changed: set[tuple[str, Key]] = field(default_factory=set)
    new_events: list[dict[str, Any]] = field(default_factory=list)

    def entry(self, level: str, key: Key) -> dict[str, Any] | None:
        return self.overrides.get((level, key))

    def locked(self, level: str, key: Key) -> bool:
        entry = self.entry(level, key)
        return bool(entry and entry.get("locked"))

    def value(self, grid: Grid, level: str, key: Key, name: str) -> Any:
        entry = self.entry(level, key)
        if entry is not None and name in entry.get("values", {}):
            return entry["values"][name]
        return grid.rows(level)[key][name]

    def overridden(self, level: str, key: Key) -> list[str]:
        entry = self.entry(level, key)
        return [f for f in FIELDS if entry is not None and f in entry.get("values", {})]


def _read_version(conn: Connection, version_id: str, for_update: bool) -> Version:
    if for_update:  # takes the version's write lock first, so PSI changes of one version serialize
        done = conn.execute(
            update(plan_versions).where(plan_versions.c.version_id == version_id).values(updated_at=now_ms())
        )
        if done.rowcount == 0:
            raise PlanNotFound(f"plan version {version_id!r} does not exist")
    v = plan_versions.c
    row = conn.execute(
        select(v.status, v.approval, v.storage_mode, v.params_json, v.input_label, v.input_dir).where(
            v.version_id == version_id
        )
    ).first()
    if row is None:
        raise PlanNotFound(f"plan version {version_id!r} does not exist")
    params = json.loads(row.params_json) if row.params_json else {}
    return Version(
        version_id,
        row.status,
        row.approval or "draft",
        row.storage_mode,
        params,
        row.input_label,
        row.input_dir,
    )


def _mode_of(version: Version, pin: str | None) -> str:
    """The operator pin wins; otherwise the encodings the version was written in."""
    return modes.psi_mode(pin, version.storage_mode)


def _require_ready(version: Version) -> None:
    if version.status != "ready":
        raise PsiConflict(
            f"plan version {version.version_id!r} is {version.status}; only a ready plan can be edited",
            {"status": version.status},
        )


def _series_level(conn: Connection, version_id: str, level: str) -> list[dict[str, Any]]:
    columns = [plan_series.c[c] for c in codec_series.LEVEL_COLUMNS[level]]
    rows = conn.execute(
        select(*columns)
        .where(plan_series.c.version_id == version_id, plan_series.c.level == level)
        .order_by(plan_series.c.seq)
    )
    return codec_series.decode_level_rows(level, [tuple(r) for r in rows])


def _artifact_texts(conn: Connection, version_id: str, names: Sequence[str]) -> dict[str, str]:
    rows = conn.execute(
        select(plan_artifacts.c.name, plan_artifacts.c.json_text).where(
            plan_artifacts.c.version_id == version_id, plan_artifacts.c.name.in_(list(names))
        )
    )
    return {r.name: r.json_text for r in rows}


def _load_grid(conn: Connection, version: Version) -> Grid:
    """Base rows as the mode reads them: rows (``db``), artifacts (``files``), rows else artifacts."""
    vid = version.version_id
    if version.mode in ("db", "both"):
        agg, det = _series_level(conn, vid, "aggregate"), _series_level(conn, vid, "det")
        if agg or det or version.mode == "db":
            return Grid.from_rows(agg, det)
    texts = _artifact_texts(conn, vid, ("aggregate.json", "sku_week.json"))
    if len(texts) < 2:
        raise EncodingMissing(
            f"plan version {vid!r} has no aggregate and detail plan readable in {version.mode!r} mode"
        )
    return Grid.from_rows(
        json.loads(texts["aggregate.json"])["rows"], json.loads(texts["sku_week.json"])["rows"]
    )


def _load_state(conn: Connection, version: Version) -> State:
    """PSI state as the mode reads it; ``both`` falls back to the artifacts when the tables hold none."""
    vid = version.version_id
    if version.mode in ("db", "both"):
        override_rows, event_rows = read_psi_rows(conn, vid)
        if override_rows or event_rows or version.mode == "db":
            entries = [codec_series.override_entry(r) for r in override_rows]
            events = [codec_series.event_entry(r) for r in event_rows]
            return State(_by_key(entries), events, version.approval, "db")
    texts = _artifact_texts(conn, vid, (PSI_OVERRIDES, PSI_STATE))
    if not texts:
        return State({}, [], version.approval, "none")
    overrides = json.loads(texts[PSI_OVERRIDES])["overrides"] if PSI_OVERRIDES in texts else []
    state_doc = json.loads(texts[PSI_STATE]) if PSI_STATE in texts else {}
    approval = state_doc.get("approval", version.approval)
    return State(_by_key(overrides), list(state_doc.get("events", [])), approval, "files")


def _by_key(entries: Iterable[dict[str, Any]]) -> dict[tuple[str, Key], dict[str, Any]]:
    return {(entry["level"], _entry_key(entry)): entry for entry in entries}


def _save_state(conn: Connection, version: Version, state: State) -> None:
    """Write what changed in the version's mode, in the caller's transaction."""
    vid = version.version_id
    dialect_insert = _insert_for(conn.engine)
    if version.mode in ("db", "both"):
        whole = state.source != "db"  # first write into the tables: bring them the whole state
        keys = list(state.overrides) if whole else [k for k in state.overrides if k in state.changed]
        for key in keys:
            values = dict(
                zip(
                    codec_series.OVERRIDE_COLUMNS,
                    codec_series.override_row(state.overrides[key]),
                    strict=True,
                )
            )
            stmt = dialect_insert(plan_overrides).values(version_id=vid, **values)
            update_cols = {c: stmt.excluded[c] for c in codec_series.OVERRIDE_COLUMNS if c != "created_at"}
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["version_id", "level", "key_hash"], set_=update_cols
                )
            )
        events = state.events if whole else state.new_events
        if events:
            conn.execute(
                insert(plan_override_events),
                [
                    {
                        "version_id": vid,
                        **dict(zip(codec_series.EVENT_COLUMNS, codec_series.event_row(e), strict=True)),
                    }
                    for e in events
                ],
            )
            link_override_events(conn, vid)
    if version.mode in ("files", "both"):
        documents = {PSI_STATE: codec_series.psi_state_document(vid, state.approval, state.events)}
        if state.overrides:
            documents[PSI_OVERRIDES] = codec_series.psi_overrides_document(
                vid, list(state.overrides.values())
            )
        ts = now_ms()
        for name, document in documents.items():
            codec_series.validate_document(name, document)
            stmt = dialect_insert(plan_artifacts).values(
                version_id=vid, name=name, json_text=docs.artifact_text(name, document), created_at=ts
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["version_id", "name"],
                    set_={"json_text": stmt.excluded.json_text, "created_at": stmt.excluded.created_at},
                )
            )
    set_approval(conn, vid, state.approval)


def _open(store: PlanStore, conn: Connection, version_id: str, for_update: bool) -> Version:
    pin = storage_pin(store.engine)
    version = _read_version(conn, version_id, for_update)
    version.mode = _mode_of(version, pin)
    return version


# --- editing --------------------------------------------------------------------------------------


class Editor:
    """Applies one request's unlocks, edits and locks to the state, recording overrides and events."""

    def __init__(self, grid: Grid, state: State, decimals: int | None, actor: str, note: str | None):
        self.grid, self.state, self.decimals = grid, state, decimals
        self.actor, self.note, self.ts = actor, note, now_ms()
        self.changes: list[dict[str, Any]] = []

    def _entry(self, level: str, key: Key) -> dict[str, Any]:
        entry = self.state.entry(level, key)
        if entry is None:
            kd = key_dict(level, key)
            entry = {
                "level": level, "key_hash": key_hash(kd), "key": kd, "values": {}, "locked": False,
                "weight": None, "author": self.actor, "source": None, "created_at": self.ts,
                "updated_at": self.ts,
            }  # fmt: skip
            self.state.overrides[(level, key)] = entry
        return entry

    def _touch(self, entry: dict[str, Any], source: str) -> None:
        entry.update(author=self.actor, source=source, updated_at=self.ts)
        self.state.changed.add((entry["level"], _entry_key(entry)))

    def _set(self, level: str, key: Key, name: str, value: Any, source: str) -> dict[str, Any]:
        before = self.state.value(self.grid, level, key, name)
        entry = self._entry(level, key)
        entry["values"] = {**entry["values"], name: value}
        self._touch(entry, source)
        change = {"level": level, "key": entry["key"], "key_hash": entry["key_hash"], "field": name,
                  "before": before, "after": value, "source": source}  # fmt: skip
        self.changes.append(change)
        return change

    def record(self, kind: str, level: str | None, key: Key | None, **payload: Any) -> None:
        kd = key_dict(level, key) if level and key is not None else None
        event = {
            "type": kind, "ts": self.ts, "level": level, "key_hash": key_hash(kd) if kd else None,
            "actor": self.actor, "note": self.note, **({"key": kd} if kd else {}), **payload,
        }  # fmt: skip
        self.state.events.append(event)
        self.state.new_events.append(event)

    def _grid_value(self, value: float) -> int | float:
        if self.decimals is None:
            return docs.num(value)
        return docs.num(round(value, self.decimals))

    def set_lock(self, level: str, key: Key, flag: bool) -> None:
        if self.state.locked(level, key) == flag:
            return
        entry = self._entry(level, key)
        entry["locked"] = flag
        self._touch(entry, "lock" if flag else "unlock")
        self.record("lock" if flag else "unlock", level, key, before=not flag, after=flag)

    def edit(self, level: str, key: Key, name: str, value: int | float) -> None:
        if self.state.locked(level, key):
            raise PsiConflict(
                f"{level} cell {key_dict(level, key)} is locked; unlock it to edit it",
                {"level": level, "key": key_dict(level, key)},
            )
        if level == "aggregate":
            self._edit_aggregate(key, name, value)
        else:
            self._edit_detail(key, name, value)

    def _edit_aggregate(self, key: Key, name: str, target: int | float) -> None:
        cells = self.grid.members.get(key, [])
        if not cells:
            raise PsiInputError(
                f"aggregate cell {key_dict('aggregate', key)} has no detail cells to apportion to"
            )
        free = [c for c in cells if not self.state.locked("det", c)]
        fixed = self._grid_value(
            sum(self.state.value(self.grid, "det", c, name) for c in cells if c not in free)
        )
        rest = self._grid_value(target - fixed)
        if rest < 0 or (not free and rest != 0):
            raise PsiInputError(
                f"{name} target {target} for {key_dict('aggregate', key)} cannot be met: the locked detail "
                f"cells hold {fixed}" + ("" if free else " and every detail cell is locked"),
                {"target": target, "locked_total": fixed},
            )
        apportioned = []
        if free:
            weights = [float(self.state.value(self.grid, "det", c, name)) for c in free]
            parts = apportion_one(rest, weights, self.decimals)
            for cell, part in zip(free, parts.tolist(), strict=True):
                after = self._grid_value(part)
                if after != self.state.value(self.grid, "det", cell, name):
                    change = self._set("det", cell, name, after, "apportion")
                    apportioned.append({k: change[k] for k in ("key", "key_hash", "before", "after")})
        change = self._set("aggregate", key, name, target, "edit")
        self.record(
            "edit", "aggregate", key, field=name, before=change["before"], after=target, cells=apportioned
        )

    def _edit_detail(self, key: Key, name: str, value: int | float) -> None:
        family_period = self.grid.family_period(key)
        if self.state.locked("aggregate", family_period):
            raise PsiConflict(
                f"the family total {key_dict('aggregate', family_period)} is locked; a detail edit would change it",
                {"level": "aggregate", "key": key_dict("aggregate", family_period)},
            )
        change = self._set("det", key, name, value, "edit")
        rollup = None
        if family_period in self.grid.agg:
            cells = self.grid.members[family_period]
            total = self._grid_value(sum(self.state.value(self.grid, "det", c, name) for c in cells))
            up = self._set("aggregate", family_period, name, total, "rollup")
            rollup = {k: up[k] for k in ("key", "key_hash", "before", "after")}
        self.record("edit", "det", key, field=name, before=change["before"], after=value, rollup=rollup)


def _entry_key(entry: Mapping[str, Any]) -> Key:
    key = entry.get("key") or {}
    return tuple(str(key.get(f)) for f in KEY_FIELDS.get(entry["level"], ()))


def _check_level(level: Any) -> str:
    if level not in LEVELS:
        raise PsiInputError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    return level


def _parse_key(level: str, key: Any, grid: Grid, where: str, problems: list[dict[str, Any]]) -> Key | None:
    fields = KEY_FIELDS[level]
    if (
        not isinstance(key, Mapping)
        or set(key) != set(fields)
        or not all(isinstance(key[f], str) for f in fields)
    ):
        problems.append(
            {"at": where, "reason": f"a {level} key is an object with the text fields {', '.join(fields)}"}
        )
        return None
    parsed = tuple(key[f] for f in fields)
    if parsed not in grid.rows(level):
        problems.append({"at": where, "key": dict(key), "reason": f"no such {level} cell in the plan"})
        return None
    return parsed


def _parse_value(value: Any, decimals: int | None, where: str, problems: list[dict[str, Any]]) -> Any:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        problems.append({"at": where, "value": repr(value), "reason": "value must be a non-negative number"})
        return None
    if decimals is not None and abs(value - round(value, decimals)) > 1e-9:
        unit = "an integer" if decimals == 0 else f"a multiple of {10**-decimals:g}"
        problems.append({"at": where, "value": value, "reason": f"the plan's rounding mode needs {unit}"})
        return None
    return docs.num(round(value, decimals) if decimals is not None else value)


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
    _check_level(level)
    if not edits and not lock and not unlock:
        raise PsiInputError("nothing to change: give edits, lock or unlock")
    store = store or PlanStore()
    with store.engine.begin() as conn:
        version = _open(store, conn, version_id, for_update=True)
        _require_ready(version)
        grid, state = _load_grid(conn, version), _load_state(conn, version)
        problems: list[dict[str, Any]] = []
        unlock_keys = [_parse_key(level, k, grid, f"unlock[{i}]", problems) for i, k in enumerate(unlock)]
        lock_keys = [_parse_key(level, k, grid, f"lock[{i}]", problems) for i, k in enumerate(lock)]
        parsed_edits = []
        for i, edit in enumerate(edits):
            where = f"edits[{i}]"
            if not isinstance(edit, Mapping):
                problems.append({"at": where, "reason": "an edit is an object {key, field, value}"})
                continue
            key = _parse_key(level, edit.get("key"), grid, where, problems)
            if edit.get("field") not in FIELDS:
                problems.append({"at": where, "reason": f"field must be one of {', '.join(FIELDS)}"})
            value = _parse_value(edit.get("value"), version.decimals, where, problems)
            parsed_edits.append((key, edit.get("field"), value))
        if problems:
            raise PsiInputError(f"{len(problems)} problem(s) in the PSI request", problems)
        editor = Editor(grid, state, version.decimals, actor, note)
        approval_before = state.approval
        for key in unlock_keys:
            editor.set_lock(level, key, False)
        for key, name, value in parsed_edits:
            editor.edit(level, key, name, value)
        for key in lock_keys:
            editor.set_lock(level, key, True)
        if state.new_events and state.approval != "draft":
            # A change after submit (or approval) sends the plan back to draft.
            state.approval = "draft"
            state.new_events[0]["approval"] = {"before": approval_before, "after": "draft"}
        if state.new_events:
            _save_state(conn, version, state)
    return {
        "version_id": version_id,
        "level": level,
        "mode": version.mode,
        "approval": state.approval,
        "changes": editor.changes,
        "locked": [key_dict(level, k) for k in lock_keys],
        "unlocked": [key_dict(level, k) for k in unlock_keys],
        "events": len(state.new_events),
    }


# --- approval -------------------------------------------------------------------------------------


def _transition(
    version_id: str,
    kind: str,
    allowed_from: str,
    to: str,
    actor: str,
    note: str | None,
    store: PlanStore | None,
) -> dict[str, Any]:
    store = store or PlanStore()
    with store.engine.begin() as conn:
        version = _open(store, conn, version_id, for_update=True)
        _require_ready(version)
        state = _load_state(conn, version)
        if state.approval != allowed_from:
            raise PsiConflict(
                f"plan version {version_id!r} is {state.approval}; {kind} needs it {allowed_from}",
                {"approval": state.approval, "needed": allowed_from},
            )
        editor = Editor(Grid({}, {}, {}), state, version.decimals, actor, note)
        editor.record(kind, None, None, before=state.approval, after=to)
        state.approval = to
        _save_state(conn, version, state)
    return {"version_id": version_id, "approval": to, "mode": version.mode, "event": state.new_events[0]}


def submit(
    version_id: str, actor: str = DEFAULT_ACTOR, note: str | None = None, *, store: PlanStore | None = None
) -> dict[str, Any]:
    """draft -> pending (409 from any other state)."""
    return _transition(version_id, "submit", "draft", "pending", actor, note, store)


def approve(
    version_id: str, actor: str = DEFAULT_ACTOR, note: str | None = None, *, store: PlanStore | None = None
) -> dict[str, Any]:
    """pending -> approved (409 unless pending)."""
    return _transition(version_id, "approve", "pending", "approved", actor, note, store)


# --- reading --------------------------------------------------------------------------------------


def _read(version_id: str, store: PlanStore | None, with_grid: bool) -> tuple[Version, Grid | None, State]:
    store = store or PlanStore()
    with store.engine.connect() as conn:
        version = _open(store, conn, version_id, for_update=False)
        grid = _load_grid(conn, version) if with_grid else None
        return version, grid, _load_state(conn, version)


def events(version_id: str, *, store: PlanStore | None = None) -> dict[str, Any]:
    """The version's PSI events, oldest first, each with its position ``seq``."""
    version, _, state = _read(version_id, store, with_grid=False)
    return {
        "version_id": version_id,
        "approval": state.approval,
        "events": [{"seq": i, **e} for i, e in enumerate(state.events)],
    }


def state(version_id: str, *, store: PlanStore | None = None) -> dict[str, Any]:
    """Approval, the current overrides (values and locks) and a summary of the history."""
    version, _, st = _read(version_id, store, with_grid=False)
    entries = list(st.overrides.values())
    return {
        "version_id": version_id,
        "status": version.status,
        "approval": st.approval,
        "mode": version.mode,
        "overrides": entries,
        "edited_cells": sum(1 for e in entries if e.get("values")),
        "locked_cells": sum(1 for e in entries if e.get("locked")),
        "events": len(st.events),
        "last_event": st.events[-1] if st.events else None,
    }


def _view_rows(
    grid: Grid, st: State, level: str, decimals: int | None, keys: Iterable[Key] | None = None
) -> list[dict[str, Any]]:
    """View rows of ``keys`` (default: every cell of the level), in the level's order."""

    def total(values: Iterable[Any]) -> int | float:
        s = sum(values)
        return docs.num(round(s, decimals) if decimals is not None else s)

    rows = []
    if level == "aggregate":
        for key in grid.agg if keys is None else keys:
            base = grid.agg[key]
            cells = grid.members.get(key, [])
            detail = {f: [st.value(grid, "det", cell, f) for cell in cells] for f in FIELDS}
            rows.append({
                "family": key[0], "period": key[1],
                **{f: st.value(grid, "aggregate", key, f) for f in FIELDS}, "backlog": base["backlog"],
                **{f"base_{f}": base[f] for f in FIELDS}, **{f"detail_{f}": total(detail[f]) for f in FIELDS},
                "locked": st.locked("aggregate", key), "overridden": st.overridden("aggregate", key),
                "key": key_dict("aggregate", key),
            })  # fmt: skip
    else:
        for key in grid.det if keys is None else keys:
            base = grid.det[key]
            fp = (base["family"], base["period"])
            agg_values = {
                f"aggregate_{f}": st.value(grid, "aggregate", fp, f) if fp in grid.agg else None
                for f in FIELDS
            }
            rows.append({
                "family": base["family"], "period": key[2], "sku": key[0], "week": key[1],
                **{f: st.value(grid, "det", key, f) for f in FIELDS}, "backlog": base["backlog"],
                **{f"base_{f}": base[f] for f in FIELDS}, **agg_values,
                "locked": st.locked("det", key), "family_locked": st.locked("aggregate", fp),
                "overridden": st.overridden("det", key), "key": key_dict("det", key),
            })  # fmt: skip
    return rows


def _selected_keys(grid: Grid, st: State, level: str, filters: Mapping[str, Any]) -> list[Key]:
    """The cells of a level that pass the filters, in the level's order, judged from the keys and
    flags alone so that view rows are built only for the page shown."""
    if level == "aggregate":
        named = lambda key, _base: {"family": key[0], "period": key[1]}  # noqa: E731
        table: Mapping[Key, Mapping[str, Any]] = grid.agg
    else:
        named = lambda key, base: {"family": base["family"], "sku": key[0], "week": key[1], "period": key[2]}  # noqa: E731
        table = grid.det
    out = []
    for key, base in table.items():
        fields = named(key, base)
        if any(name in fields and fields[name] != wanted for name, wanted in filters.items()):
            continue
        if "locked" in filters and st.locked(level, key) != bool(filters["locked"]):
            continue
        if "overridden" in filters and bool(st.overridden(level, key)) != bool(filters["overridden"]):
            continue
        out.append(key)
    return out


def _checked_filters(filters: Mapping[str, Any] | None) -> dict[str, Any]:
    given = {k: v for k, v in (filters or {}).items() if v is not None}
    unknown = sorted(set(given) - set(FILTERS))
    if unknown:
        raise PsiInputError(f"unknown PSI filter(s) {', '.join(unknown)}; known: {', '.join(FILTERS)}")
    return given


def psi_view(
    version_id: str,
    level: str = "aggregate",
    filters: Mapping[str, Any] | None = None,
    limit: int = 500,
    offset: int = 0,
    *,
    store: PlanStore | None = None,
) -> dict[str, Any]:
    """A page of one level's cells: base values with the overrides applied, lock flags, the fields
    overridden, and the other level (aggregate rows carry the roll-up of their detail cells, detail
    rows their family-period total). Filters: family, sku, period, week, locked, overridden."""
    _check_level(level)
    wanted = _checked_filters(filters)
    if limit < 1 or offset < 0:
        raise PsiInputError("limit must be at least 1 and offset at least 0")
    version, grid, st = _read(version_id, store, with_grid=True)
    assert grid is not None
    keys = _selected_keys(grid, st, level, wanted)
    page = _view_rows(grid, st, level, version.decimals, keys[offset : offset + limit])
    for row in page:
        row["key_hash"] = key_hash(row["key"])
    return {
        "version_id": version_id, "level": level, "approval": st.approval, "mode": version.mode,
        "total": len(keys), "limit": limit, "offset": offset, "rows": page,
    }  # fmt: skip


CSV_COLUMNS = {
    "aggregate": ("family", "period", "demand", "supply", "backlog", "base_demand", "base_supply",
                  "detail_demand", "detail_supply", "locked", "overridden", "key_hash"),
    "det": ("family", "period", "sku", "week", "demand", "supply", "backlog", "base_demand", "base_supply",
            "aggregate_demand", "aggregate_supply", "locked", "family_locked", "overridden", "key_hash"),
}  # fmt: skip


def psi_csv(version_id: str, level: str = "aggregate", *, store: PlanStore | None = None) -> str:
    """The whole level as CSV: numbers plain, flags true/false, overridden fields joined by ';'."""
    _check_level(level)
    version, grid, st = _read(version_id, store, with_grid=True)
    assert grid is not None
    rows = []
    for row in _view_rows(grid, st, level, version.decimals):
        row = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in row.items()}
        row["overridden"] = ";".join(row["overridden"])
        row["key_hash"] = key_hash(row["key"])
        rows.append(row)
    return docs.csv_text(CSV_COLUMNS[level], rows)


# --- reconcile ------------------------------------------------------------------------------------


def input_folder(version: Version, input_dir: str | None = None) -> Path:
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


def pipeline_locks(grid: Grid, st: State, inputs: PlanInputs, params: PlanParams) -> tuple[dict, int]:
    """The PSI state as pipeline locks ``{field: (mask[S, B], values[S, B])}`` and the number of locked
    cells: every detail cell with an override or a lock, and every detail cell of a family-period whose
    total was set (edited, rolled up) or locked, at its current value."""
    cells: dict[str, set[Key]] = {f: set() for f in FIELDS}
    for (level, key), entry in st.overrides.items():
        values = entry.get("values", {})
        for f in FIELDS:
            if not (f in values or entry.get("locked")):
                continue
            if level == "det":
                cells[f].add(key)
            else:
                cells[f].update(grid.members.get(key, []))
    sku_index = {s: i for i, s in enumerate(inputs.skus)}
    bucket_index = {(b.period, b.week): j for j, b in enumerate(inputs.calendar.buckets)}
    shape = (len(inputs.skus), inputs.calendar.n_buckets)
    locks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for f in FIELDS:
        if not cells[f]:
            continue
        mask, values = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=params.qty_dtype)
        for key in cells[f]:
            sku, week, period = key
            if key not in grid.det or sku not in sku_index or (period, week) not in bucket_index:
                raise PsiConflict(
                    f"detail cell {key_dict('det', key)} is not in the input set any more; reconcile "
                    "cannot honour it",
                    {"key": key_dict("det", key)},
                )
            s, b = sku_index[sku], bucket_index[(period, week)]
            mask[s, b] = True
            values[s, b] = st.value(grid, "det", key, f)
        locks[f] = (mask, values)
    return locks, len(set().union(*cells.values()))


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
    """Re-plan the version's input set with its PSI state as detail locks and store the result as a new
    child version (``parent_version_id``); the parent records a ``reconcile`` event in the same
    transaction. Returns the child's version id. 409 when the input set is not known, 503 when plan
    intake is paused; ``InputError`` when the input set no longer validates. ``on_written`` is called
    with the child's content and write result once it is stored (the RunRegistry record)."""
    store = store or PlanStore()
    if not intake_open(store.engine):
        raise IntakePaused("plan intake paused")
    child_mode = store.effective_mode(storage)
    version, grid, st = _read(version_id, store, with_grid=True)
    assert grid is not None
    _require_ready(version)
    folder = input_folder(version, input_dir)
    params = PlanParams.from_dict(version.params)
    inputs = load_input_set(folder, label=version.input_label)
    locks, locked_cells = pipeline_locks(grid, st, inputs, params)
    child_id = new_version_id()
    content = run_pipeline(inputs, params, child_id, locks=locks)

    def record_on_parent(conn: Connection) -> None:
        parent = _open(store, conn, version_id, for_update=True)
        parent_state = _load_state(conn, parent)
        editor = Editor(grid, parent_state, parent.decimals, actor, note)
        editor.record("reconcile", None, None, child_version_id=child_id, locked_cells=locked_cells)
        _save_state(conn, parent, parent_state)

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
