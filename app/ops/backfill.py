"""Backfill: artifacts -> PlanRepository rows for versions that lack them (SPEC 7, runbook 4.7).

Owns choosing the versions (ready, with artifacts, without rows — or every one with artifacts when
forced), in version order ``(created_at, version_id)``, and the JSON state file that lets a killed run
resume where it stopped. It writes nothing itself: ``PlanStore.backfill_rows`` writes each version's
rows, its recomputed derived artifacts and its certified digests in one transaction. Rows are built
only by the codecs; ``plan_overrides`` and ``plan_override_events`` are never touched. A version whose
artifacts cannot be decoded is reported and skipped. A version without its derived artifacts gets them
recomputed by ``app.planning.derive`` and stored with its rows; when they cannot be recomputed it is
reported as needing derivation (rows without them would miss levels, which ``db check`` calls
corruption).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, exists, select

from app.errors import PlanNotFound
from app.planning import derive
from app.planning.model import CORE_ARTIFACTS, PlanContent
from app.storage.db import get_engine, now_ms
from app.storage.plans import PlanStore
from app.storage.schema import plan_artifacts, plan_series, plan_versions

#: Called after each version: (version_id, percent of the run done).
Progress = Callable[[str, int], None]

STATE_FORMAT = 1
#: Test hook: sleep after this many versions were backfilled (and the state file written), so a test
#: can kill the process at a known point.
PAUSE_AFTER_ENV = "SCPLN_BACKFILL_PAUSE_AFTER"
PAUSE_SECONDS_ENV = "SCPLN_BACKFILL_PAUSE_SECONDS"


class NeedsDerivation(Exception):
    """The version lacks derived artifacts that its core artifacts do not give back."""


@dataclass
class BackfillReport:
    """What a run did (or, dry, would do). Lists hold version ids in version order."""

    dry_run: bool
    force: bool
    checked: int = 0
    backfilled: list[str] = field(default_factory=list)
    would_backfill: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    needs_derivation: dict[str, str] = field(default_factory=dict)
    #: Versions whose rows were behind the PSI decisions their artifacts record (made while pinned
    #: to files) and got them (or, dry, would).
    psi_replayed: list[str] = field(default_factory=list)
    series_rows: int = 0
    seconds: float = 0.0
    state_file: str | None = None

    @property
    def ok(self) -> bool:
        """True when nothing failed and nothing is left waiting for derivation."""
        return not self.failed and not self.needs_derivation

    def summary(self) -> str:
        done = (
            f"would backfill {len(self.would_backfill)}"
            if self.dry_run
            else f"backfilled {len(self.backfilled)} ({self.series_rows:,} series rows)"
        )
        replayed = (
            f"PSI decisions {'to replay' if self.dry_run else 'replayed'} {len(self.psi_replayed)}, "
            if self.psi_replayed
            else ""
        )
        text = (
            f"checked {self.checked}, {done}, {replayed}skipped {len(self.skipped)}, failed {len(self.failed)}, "
            f"needing derivation {len(self.needs_derivation)}, {self.seconds:.2f} s"
        )
        return ("dry run: " if self.dry_run else "") + text

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Candidate:
    version_id: str
    created_at: int
    has_rows: bool
    has_artifacts: bool

    @property
    def key(self) -> tuple[int, str]:
        return (self.created_at, self.version_id)


class _State:
    """The resumable record of one run: done versions, failures, the cursor. Written atomically."""

    def __init__(self, path: Path | None, options: dict[str, Any]):
        self.path = path
        self.data: dict[str, Any] = {
            "format": STATE_FORMAT,
            "options": options,
            "started_at": now_ms(),
            "updated_at": None,
            "complete": False,
            "cursor": None,
            "done": [],
            "failed": {},
            "needs_derivation": {},
        }
        self.resumed = False
        if path is not None and path.exists():
            previous = _read_state(path)
            if not previous.get("complete"):
                self.data.update({k: previous[k] for k in self.data if k in previous and k != "options"})
                self.resumed = True

    @property
    def done(self) -> set[str]:
        return set(self.data["done"])

    @property
    def cursor(self) -> tuple[int, str] | None:
        cursor = self.data.get("cursor")
        return (int(cursor["created_at"]), str(cursor["version_id"])) if cursor else None

    def record(self, candidate: _Candidate, outcome: str, message: str | None = None) -> None:
        vid = candidate.version_id
        self.data["failed"].pop(vid, None)
        self.data["needs_derivation"].pop(vid, None)
        if outcome == "done":
            if vid not in self.data["done"]:
                self.data["done"].append(vid)
        else:
            self.data[outcome][vid] = message
        self.data["cursor"] = {"created_at": candidate.created_at, "version_id": vid}

    def save(self, complete: bool = False) -> None:
        if self.path is None:
            return
        self.data["complete"] = complete
        self.data["updated_at"] = now_ms()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)  # a reader (or a resumed run) never sees half a state file


def _read_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"state file {path} is not readable JSON ({exc}); remove it to start afresh"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise ValueError(f"state file {path} is not a backfill state file (format {STATE_FORMAT})")
    return data


def backfill_repository(
    engine: Engine | None = None,
    dry_run: bool = False,
    state_file: str | Path | None = None,
    force: bool = False,
    limit: int | None = None,
    resume_from: str | None = None,
    progress: Progress | None = None,
) -> BackfillReport:
    """Write PlanRepository rows from artifacts for every ready version that has artifacts but no rows
    (every version with artifacts when ``force``), oldest first, one transaction per version.

    ``state_file`` makes the run resumable: an unfinished state file from a killed run is continued
    after its cursor, skipping versions it records as done; a finished one starts a new run.
    ``resume_from`` starts at that version (inclusive) instead. ``limit`` caps the versions attempted.
    ``dry_run`` writes nothing at all, not even the state file, and lists what it would backfill.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be zero or more, not {limit}")
    started = time.perf_counter()
    store = PlanStore(engine or get_engine())
    path = Path(state_file) if state_file is not None else None
    options = {"force": force, "limit": limit, "resume_from": resume_from}
    state = _State(path, options)
    report = BackfillReport(dry_run=dry_run, force=force, state_file=str(path) if path else None)
    candidates = _candidates(store.engine)
    todo = _from_start(candidates, resume_from, state)
    pause_after = _pause_after()
    attempted = 0
    for index, cand in enumerate(todo, start=1):
        if limit is not None and attempted >= limit:
            break
        report.checked += 1
        if cand.version_id in state.done or not cand.has_artifacts or (cand.has_rows and not force):
            report.skipped.append(cand.version_id)
        else:
            attempted += 1
            outcome = _one(store, cand, report, dry_run)
            if not dry_run and outcome != "skipped":
                state.record(cand, outcome, _message(report, cand.version_id))
                state.save()
            if pause_after and outcome == "done" and len(report.backfilled) == pause_after:
                _pause()
        if cand.has_artifacts and (cand.has_rows or cand.version_id in report.backfilled):
            _replay_psi(store, cand.version_id, report, dry_run)
        if progress:
            progress(cand.version_id, int(100 * index / len(todo)))
    if not dry_run:
        state.save(complete=report.checked == len(todo))
    report.seconds = time.perf_counter() - started
    return report


def _replay_psi(store: PlanStore, version_id: str, report: BackfillReport, dry_run: bool) -> None:
    """PSI edits made while the hub was pinned to files reach the version's rows (``replay_psi``)."""
    try:
        if store.replay_psi(version_id, dry_run=dry_run):
            report.psi_replayed.append(version_id)
    except Exception as exc:  # noqa: BLE001 - reported like any other version that cannot be backfilled
        report.failed[version_id] = f"PSI decisions not replayed: {exc}"


def _one(store: PlanStore, cand: _Candidate, report: BackfillReport, dry_run: bool) -> str:
    """Backfill one version (or, dry, check that it could be). Returns the outcome: ``done``,
    ``skipped``, ``failed`` or ``needs_derivation``, also entered in ``report``."""
    vid = cand.version_id
    try:
        content, derived = _content_from_artifacts(store, vid)
        if dry_run:
            report.would_backfill.append(vid)
            return "done"
        written = store.backfill_rows(content, derived, force=report.force)
        if written is None:  # another run backfilled it meanwhile, or it is no longer ready
            report.skipped.append(vid)
            return "skipped"
        report.series_rows += written
    except NeedsDerivation as exc:
        report.needs_derivation[vid] = str(exc)
        return "needs_derivation"
    except Exception as exc:  # one bad version must not stop the others; it is reported
        report.failed[vid] = f"{type(exc).__name__}: {exc}"
        return "failed"
    report.backfilled.append(vid)
    return "done"


def _content_from_artifacts(store: PlanStore, version_id: str) -> tuple[PlanContent, list[str]]:
    """The version's content decoded from its stored artifacts, completed with the derived documents
    it lacks; also the names of the documents derived here (they are stored as artifacts too)."""
    names = store.artifact_names(version_id)
    if not names:
        raise PlanNotFound(f"plan version {version_id!r} has no artifacts")
    missing_core = [n for n in CORE_ARTIFACTS if n not in names]
    if missing_core:
        raise ValueError(f"missing core artifact(s) {', '.join(missing_core)}; restore them first")
    content = store.read_artifacts(version_id, names)  # only what is stored: derivation happens here
    if content is None:
        raise PlanNotFound(f"plan version {version_id!r} has no artifacts")
    missing = derive.missing_derived(content.documents)
    if not missing:
        return content, []
    try:
        documents = derive.complete_documents(content.documents)
    except derive.DerivationError as exc:
        raise NeedsDerivation(str(exc)) from exc
    return PlanContent(content.version_id, content.params, documents), missing


def _candidates(engine: Engine) -> list[_Candidate]:
    """Every ready version in version order, with whether it has rows and artifacts."""
    v = plan_versions.c
    has_rows = exists().where(plan_series.c.version_id == v.version_id)
    has_artifacts = exists().where(plan_artifacts.c.version_id == v.version_id)
    query = (
        select(v.version_id, v.created_at, has_rows.label("has_rows"), has_artifacts.label("has_artifacts"))
        .where(v.status == "ready")
        .order_by(v.created_at, v.version_id)
    )
    with engine.connect() as conn:
        return [
            _Candidate(r.version_id, int(r.created_at), bool(r.has_rows), bool(r.has_artifacts))
            for r in conn.execute(query)
        ]


def _from_start(candidates: list[_Candidate], resume_from: str | None, state: _State) -> list[_Candidate]:
    """The candidates this run visits: from ``resume_from`` (inclusive), else after a resumed state
    file's cursor, else all."""
    if resume_from is not None:
        keys = [c.key for c in candidates if c.version_id == resume_from]
        if not keys:
            raise PlanNotFound(f"resume from: no ready plan version {resume_from!r}")
        return [c for c in candidates if c.key >= keys[0]]
    cursor = state.cursor if state.resumed else None
    return [c for c in candidates if cursor is None or c.key > cursor]


def _message(report: BackfillReport, version_id: str) -> str | None:
    return report.failed.get(version_id) or report.needs_derivation.get(version_id)


def _pause_after() -> int:
    value = os.environ.get(PAUSE_AFTER_ENV, "").strip()
    return int(value) if value.isdigit() else 0


def _pause() -> None:
    print(f"backfill paused by {PAUSE_AFTER_ENV}", file=sys.stderr, flush=True)
    time.sleep(float(os.environ.get(PAUSE_SECONDS_ENV, "60")))
