"""PSI editing rules (SPEC 6): the cells of a plan's two levels, overrides and locks on them, and what
one request does to them. Pure: no database, no files, no clock — callers pass the time.

Cells live on two levels: ``aggregate`` (key ``{family, period}``) and ``det`` (key ``{sku, week,
period}``); ``demand`` and ``supply`` are editable. An aggregate edit re-apportions the new family total
over the unlocked detail cells of that (family, period) by largest remainder, their current values as
weights, while locked cells keep theirs; a detail edit rolls up, so the family-period total becomes the
sum of its cells. Both levels' changed cells are recorded as overrides (the current value and lock of
each cell); every change is an event with actor, time, before/after and note. A change after submit
sends the plan back to draft; the approval runs ``draft -> pending -> approved``. The base plan rows
are never rewritten: the grid holds them, the state holds what the planners changed.

Where grids and states are stored is ``app.storage.plans``'; ``app.services.psi`` runs a request.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.errors import PsiConflict, PsiInputError
from app.planning import documents as docs
from app.planning.apportion import apportion_one
from app.planning.model import Decisions, PlanInputs, PlanParams

LEVELS = ("aggregate", "det")
FIELDS = ("demand", "supply")
#: The largest value a PSI cell takes: the input sets' bound on a family's demand in a month
#: (``app.planning.inputs.MAX_VALUES``), so no edit makes a plan the engine could not hold.
MAX_VALUE = 1e9
KEY_FIELDS = {"aggregate": ("family", "period"), "det": ("sku", "week", "period")}
FILTERS = ("family", "sku", "period", "week", "locked", "overridden")

Key = tuple[str, ...]


def key_hash(key: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the key's canonical JSON."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def key_dict(level: str, key: Key) -> dict[str, str]:
    return dict(zip(KEY_FIELDS[level], key, strict=True))


# --- the grid and the state ---------------------------------------------------------------------


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
        return self.values(grid, level, key)[name]

    def values(self, grid: Grid, level: str, key: Key) -> dict[str, Any]:
        """A cell's demand and supply with its edits applied (one look-up for both)."""
        entry = self.overrides.get((level, key)) if self.overrides else None
        edited = entry.get("values", {}) if entry is not None else {}
        base = grid.rows(level)[key]
        return {f: edited[f] if f in edited else base[f] for f in FIELDS}

    def overridden(self, level: str, key: Key) -> list[str]:
        entry = self.entry(level, key)
        return [f for f in FIELDS if entry is not None and f in entry.get("values", {})]


def by_key(entries: Iterable[dict[str, Any]]) -> dict[tuple[str, Key], dict[str, Any]]:
    """Override entries (``psi_overrides.json`` entries) by level and cell key, in the order given."""
    return {(entry["level"], entry_key(entry)): entry for entry in entries}


# --- editing --------------------------------------------------------------------------------------


class Editor:
    """Applies one request's unlocks, edits and locks to the state, recording overrides and events."""

    def __init__(
        self, grid: Grid, state: State, decimals: int | None, actor: str, note: str | None, *, ts: int
    ):
        self.grid, self.state, self.decimals = grid, state, decimals
        self.actor, self.note, self.ts = actor, note, ts
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
        self.state.changed.add((entry["level"], entry_key(entry)))

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


def entry_key(entry: Mapping[str, Any]) -> Key:
    key = entry.get("key") or {}
    return tuple(str(key.get(f)) for f in KEY_FIELDS.get(entry["level"], ()))


def check_level(level: Any) -> str:
    if level not in LEVELS:
        raise PsiInputError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    return level


def parse_key(level: str, key: Any, grid: Grid, where: str, problems: list[dict[str, Any]]) -> Key | None:
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


def parse_value(value: Any, decimals: int | None, where: str, problems: list[dict[str, Any]]) -> Any:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        problems.append({"at": where, "value": repr(value), "reason": "value must be a non-negative number"})
        return None
    if value > MAX_VALUE:
        problems.append({"at": where, "value": value, "reason": f"value must be at most {MAX_VALUE:g}"})
        return None
    if decimals is not None and abs(value - round(value, decimals)) > 1e-9:
        unit = "an integer" if decimals == 0 else f"a multiple of {10**-decimals:g}"
        problems.append({"at": where, "value": value, "reason": f"the plan's rounding mode needs {unit}"})
        return None
    return docs.num(round(value, decimals) if decimals is not None else value)


def check_request(level: Any, edits: Sequence[Any], lock: Sequence[Any], unlock: Sequence[Any]) -> None:
    """What can be refused before the plan is read: an unknown level, a request that changes nothing."""
    check_level(level)
    if not edits and not lock and not unlock:
        raise PsiInputError("nothing to change: give edits, lock or unlock")


def apply_request(
    grid: Grid,
    state: State,
    level: str,
    edits: Sequence[Mapping[str, Any]],
    lock: Sequence[Mapping[str, Any]],
    unlock: Sequence[Mapping[str, Any]],
    *,
    decimals: int | None,
    actor: str,
    note: str | None,
    ts: int,
) -> dict[str, Any]:
    """Apply one request to ``state`` — unlocks first, then the edits ``[{key, field, value}]`` in order,
    then the locks — or refuse all of it: ``PsiInputError`` lists every malformed part before anything
    changes; ``PsiConflict`` (a locked cell) leaves a half-changed state the caller must drop; an
    approved plan refuses every change (:func:`refuse_if_approved`). A change after submit sends the
    plan back to draft. Returns the cell changes (apportioned and rolled-up ones
    included), the locks set and cleared, the approval and how many events were recorded."""
    check_request(level, edits, lock, unlock)
    refuse_if_approved(state)
    problems: list[dict[str, Any]] = []
    unlock_keys = [parse_key(level, k, grid, f"unlock[{i}]", problems) for i, k in enumerate(unlock)]
    lock_keys = [parse_key(level, k, grid, f"lock[{i}]", problems) for i, k in enumerate(lock)]
    parsed_edits = []
    for i, edit in enumerate(edits):
        where = f"edits[{i}]"
        if not isinstance(edit, Mapping):
            problems.append({"at": where, "reason": "an edit is an object {key, field, value}"})
            continue
        key = parse_key(level, edit.get("key"), grid, where, problems)
        if edit.get("field") not in FIELDS:
            problems.append({"at": where, "reason": f"field must be one of {', '.join(FIELDS)}"})
        value = parse_value(edit.get("value"), decimals, where, problems)
        parsed_edits.append((key, edit.get("field"), value))
    if problems:
        raise PsiInputError(f"{len(problems)} problem(s) in the PSI request", problems)
    editor = Editor(grid, state, decimals, actor, note, ts=ts)
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
    return {
        "level": level,
        "approval": state.approval,
        "changes": editor.changes,
        "locked": [key_dict(level, k) for k in lock_keys],
        "unlocked": [key_dict(level, k) for k in unlock_keys],
        "events": len(state.new_events),
    }


def refuse_if_approved(state: State) -> None:
    """An approved plan is frozen: ``PsiConflict`` (409) for any change to it. It is changed by
    reopening it, which makes a new draft child version and leaves the approved one as it is."""
    if state.approval == "approved":
        raise PsiConflict(
            "this plan version is approved and cannot be changed; reopen it as a draft "
            "(POST /plans/{version_id}/psi/reopen) to get a new version to edit",
            {"approval": "approved"},
        )


#: The approval steps: request -> (the approval it needs, the approval it gives).
TRANSITIONS = {"submit": ("draft", "pending"), "approve": ("pending", "approved")}


def transition(
    state: State, kind: str, *, version_id: str, actor: str, note: str | None, ts: int
) -> dict[str, Any]:
    """Move the approval one step (``submit``: draft -> pending, ``approve``: pending -> approved) and
    record the event, which is returned; ``PsiConflict`` from any other approval."""
    allowed_from, to = TRANSITIONS[kind]
    if state.approval != allowed_from:
        raise PsiConflict(
            f"plan version {version_id!r} is {state.approval}; {kind} needs it {allowed_from}",
            {"approval": state.approval, "needed": allowed_from},
        )
    editor = Editor(Grid({}, {}, {}), state, None, actor, note, ts=ts)
    editor.record(kind, None, None, before=state.approval, after=to)
    state.approval = to
    return state.new_events[-1]


def record_reconcile(
    state: State, child_version_id: str, locked_cells: int, *, actor: str, note: str | None, ts: int
) -> None:
    """Record on the parent's state that a child version was planned from its edits."""
    editor = Editor(Grid({}, {}, {}), state, None, actor, note, ts=ts)
    editor.record("reconcile", None, None, child_version_id=child_version_id, locked_cells=locked_cells)


def reopened(state: State, parent_version_id: str, *, actor: str, note: str | None, ts: int) -> State:
    """The state of a draft version reopened from an approved one: the same overrides and locks, and a
    history that starts with a ``reopen`` event naming the approved version (whose state is unchanged)."""
    if state.approval != "approved":
        raise PsiConflict(
            f"plan version {parent_version_id!r} is {state.approval}; only an approved version is reopened "
            "(a draft or pending one is edited as it is)",
            {"approval": state.approval},
        )
    child = State({k: dict(v) for k, v in state.overrides.items()}, [], "draft", state.source)
    Editor(Grid({}, {}, {}), child, None, actor, note, ts=ts).record("reopen", None, None, parent_version_id=parent_version_id)  # fmt: skip
    return child


# --- views ----------------------------------------------------------------------------------------


def view_rows(
    grid: Grid, st: State, level: str, decimals: int | None, keys: Iterable[Key] | None = None
) -> list[dict[str, Any]]:
    """View rows of ``keys`` (default: every cell of the level), in the level's order."""

    def total(values: Iterable[Any]) -> int | float:
        s = sum(values)
        return docs.num(round(s, decimals) if decimals is not None else s)

    def detail_of(cells: list[Key]) -> dict[str, list[Any]]:
        edited = [st.values(grid, "det", cell) for cell in cells]
        return {f: [v[f] for v in edited] for f in FIELDS}

    rows = []
    if level == "aggregate":
        for key in grid.agg if keys is None else keys:
            base = grid.agg[key]
            detail = detail_of(grid.members.get(key, []))
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


@dataclass
class Sheet:
    """One family's detail cells laid out across time, as the PSI grid shows them.

    ``buckets``: the (week, period) columns in time order (a week split across two months is two);
    ``skus``: every SKU of the family in the level's order; ``totals``: per field, the family's sum per
    column; ``values``: per SKU and field, one value per column (0 where the SKU has no cell). Values
    have the edits applied."""

    grid: Grid
    state: State
    family: str
    buckets: list[tuple[str, str]]
    skus: list[str]
    totals: dict[str, list[Any]]
    values: dict[str, dict[str, list[Any]]]
    keys: dict[str, list[Key | None]]

    def cells(self, sku: str) -> list[dict[str, Any] | None]:
        """One SKU's cells, one entry per column (None where it has no cell): demand and supply as
        edited, the backlog, the cell's and its family-month's lock and the fields edited."""
        out: list[dict[str, Any] | None] = []
        for key in self.keys[sku]:
            if key is None:
                out.append(None)
                continue
            out.append({
                "week": key[1], "period": key[2],
                **self.state.values(self.grid, "det", key), "backlog": self.grid.det[key]["backlog"],
                "locked": self.state.locked("det", key), "family_locked": self.state.locked("aggregate", (self.family, key[2])),
                "overridden": self.state.overridden("det", key),
            })  # fmt: skip
        return out


def family_sheet(grid: Grid, st: State, family: str) -> Sheet:
    """The :class:`Sheet` of ``family``. Unlike :func:`view_rows` no key hash or other-level value is
    made, and a cell's whole entry only when :meth:`Sheet.cells` asks for its SKU: a family has
    thousands of cells, a page of the grid a few hundred."""
    mine = [(key, base) for key, base in grid.det.items() if base["family"] == family]
    buckets = sorted({(key[1], key[2]) for key, _ in mine})
    column = {b: i for i, b in enumerate(buckets)}
    skus = list(dict.fromkeys(key[0] for key, _ in mine))
    n = len(buckets)
    totals: dict[str, list[Any]] = {f: [0] * n for f in FIELDS}
    values = {s: {f: [0] * n for f in (*FIELDS, "backlog")} for s in skus}
    keys: dict[str, list[Key | None]] = {s: [None] * n for s in skus}
    for key, base in mine:
        i = column[(key[1], key[2])]
        edited = st.values(grid, "det", key)
        mine_values = values[key[0]]
        for f in FIELDS:
            totals[f][i] += edited[f]
            mine_values[f][i] = edited[f]
        mine_values["backlog"][i] = base["backlog"]
        keys[key[0]][i] = key
    return Sheet(grid, st, family, buckets, skus, totals, values, keys)


def projected_inventory(opening: float, receipts: Sequence[float], demand: Sequence[float], supply: Sequence[float]) -> list[float]:  # fmt: skip
    """Inventory at the end of each bucket: the opening stock plus open orders and supply, less
    demand, carried from bucket to bucket (the grid's Inventory row)."""
    out, stock = [], opening
    for r, d, s in zip(receipts, demand, supply, strict=True):
        stock += r + s - d
        out.append(stock)
    return out


def below_safety(inventory: Sequence[float], safety: float) -> bool:
    """Whether the projected inventory falls below the safety stock (or short, below zero) in any
    bucket."""
    return any(v < safety or v < 0 for v in inventory)


def selected_keys(grid: Grid, st: State, level: str, filters: Mapping[str, Any]) -> list[Key]:
    """The cells of a level that pass the filters, in the level's order, judged from the keys and
    flags alone so that view rows are built only for the page shown."""
    # where each field is in a key; a detail cell's family is in its row. A filter on a field the
    # level has not (a SKU on the aggregate level) passes every cell.
    if level == "aggregate":
        at, family = {"family": 0, "period": 1}, None
        table: Mapping[Key, Mapping[str, Any]] = grid.agg
    else:
        at, family = {"sku": 0, "week": 1, "period": 2}, filters.get("family")
        table = grid.det
    tests = [(at[name], wanted) for name, wanted in filters.items() if name in at]
    out = []
    for key, base in table.items():
        if family is not None and base["family"] != family:
            continue
        if tests and any(key[i] != wanted for i, wanted in tests):
            continue
        if "locked" in filters and st.locked(level, key) != bool(filters["locked"]):
            continue
        if "overridden" in filters and bool(st.overridden(level, key)) != bool(filters["overridden"]):
            continue
        out.append(key)
    return out


def checked_filters(filters: Mapping[str, Any] | None) -> dict[str, Any]:
    given = {k: v for k, v in (filters or {}).items() if v is not None}
    unknown = sorted(set(given) - set(FILTERS))
    if unknown:
        raise PsiInputError(f"unknown PSI filter(s) {', '.join(unknown)}; known: {', '.join(FILTERS)}")
    return given


def check_view(level: Any, filters: Mapping[str, Any] | None, limit: int, offset: int) -> dict[str, Any]:
    """What a view request can be refused for before the plan is read; returns the filters given."""
    check_level(level)
    wanted = checked_filters(filters)
    if limit < 1 or offset < 0:
        raise PsiInputError("limit must be at least 1 and offset at least 0")
    return wanted


def view_page(
    grid: Grid,
    st: State,
    level: str,
    wanted: Mapping[str, Any],
    limit: int,
    offset: int,
    decimals: int | None,
) -> tuple[int, list[dict[str, Any]]]:
    """The number of cells of a level that pass the (checked) filters, and the view rows of one page
    of them, each with its ``key_hash``."""
    keys = selected_keys(grid, st, level, wanted)
    page = view_rows(grid, st, level, decimals, keys[offset : offset + limit])
    for row in page:
        row["key_hash"] = key_hash(row["key"])
    return len(keys), page


CSV_COLUMNS = {
    "aggregate": ("family", "period", "demand", "supply", "backlog", "base_demand", "base_supply",
                  "detail_demand", "detail_supply", "locked", "overridden", "key_hash"),
    "det": ("family", "period", "sku", "week", "demand", "supply", "backlog", "base_demand", "base_supply",
            "aggregate_demand", "aggregate_supply", "locked", "family_locked", "overridden", "key_hash"),
}  # fmt: skip


def csv_text(grid: Grid, st: State, level: str, decimals: int | None) -> str:
    """The whole level as CSV: numbers plain, flags true/false, overridden fields joined by ';'."""
    rows = []
    for row in view_rows(grid, st, level, decimals):
        row = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in row.items()}
        row["overridden"] = ";".join(row["overridden"])
        row["key_hash"] = key_hash(row["key"])
        rows.append(row)
    return docs.csv_text(CSV_COLUMNS[level], rows)


# --- reconcile ------------------------------------------------------------------------------------


def pipeline_decisions(
    grid: Grid, st: State, inputs: PlanInputs, params: PlanParams
) -> tuple[Decisions, int]:
    """The PSI state as the pipeline's decisions and the number of detail cells they touch.

    - held: every cell of a detail entry that is locked, and every detail cell of a family-period whose
      total the planner set (an aggregate edit, or an apportioned edit) or locked, at its current value;
    - edited: every other detail cell with a value of its own (the planner's detail edits);
    - firm: the locked detail cells (their supply is a firm planned order).

    An aggregate value that is only the roll-up of detail edits is not a decision of its own: the
    detail edits are, and the anchor policy decides how they meet the aggregate."""
    held: dict[str, set[Key]] = {f: set() for f in FIELDS}
    edited: dict[str, set[Key]] = {f: set() for f in FIELDS}
    firm: set[Key] = set()
    for (level, key), entry in st.overrides.items():
        values, locked = entry.get("values", {}), bool(entry.get("locked"))
        if level == "det":
            if locked:
                firm.add(key)
            for f in FIELDS:
                if locked:
                    held[f].add(key)
                elif f in values:
                    edited[f].add(key)
        elif locked or (values and entry.get("source") != "rollup"):
            for f in FIELDS:
                if locked or f in values:
                    held[f].update(grid.members.get(key, []))
    for f in FIELDS:
        edited[f] -= held[f]
    index = _cell_index(grid, inputs)
    shape = (len(inputs.skus), inputs.calendar.n_buckets)

    def cells_of(keys: dict[str, set[Key]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        out = {}
        for f, chosen in keys.items():
            if not chosen:
                continue
            mask, values = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=params.qty_dtype)
            for key in chosen:
                s, b = index(key)
                mask[s, b] = True
                values[s, b] = st.value(grid, "det", key, f)
            out[f] = (mask, values)
        return out

    firm_mask = None
    if firm:
        firm_mask = np.zeros(shape, dtype=bool)
        for key in firm:
            firm_mask[index(key)] = True
    touched = set().union(*held.values(), *edited.values())
    return Decisions(held=cells_of(held), edited=cells_of(edited), firm=firm_mask), len(touched)


def _cell_index(grid: Grid, inputs: PlanInputs) -> Callable[[Key], tuple[int, int]]:
    """(SKU, bucket) index of a detail key in the input set; 409 for a cell the input set lost."""
    sku_index = {s: i for i, s in enumerate(inputs.skus)}
    bucket_index = {(b.period, b.week): j for j, b in enumerate(inputs.calendar.buckets)}

    def index(key: Key) -> tuple[int, int]:
        sku, week, period = key
        if key not in grid.det or sku not in sku_index or (period, week) not in bucket_index:
            raise PsiConflict(
                f"detail cell {key_dict('det', key)} is not in the input set any more; reconcile "
                "cannot honour it",
                {"key": key_dict("det", key)},
            )
        return sku_index[sku], bucket_index[(period, week)]

    return index
