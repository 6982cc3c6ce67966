"""Rollback to ``plan_artifacts`` and roll-forward to the PlanRepository, each as one resumable command.

Owns the runbook's procedure (seed runbook §4, SPEC 7) as phases that are each idempotent and recorded
in a state file after they complete, so a run killed at any point is simply run again:

rollback:    pause → backup → snapshot → repair → pin → runs → verify → resume
rollforward: pause → backfill → check → unpin → resume

``repair`` exports a version's artifacts from its PlanRepository rows where they are missing or differ —
only from rows that decode and keep the plan identities; a version whose rows fail keeps its artifacts,
and one with neither encoding healthy is reported as needing a restore from the backup.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update

from app.config import resolve_path
from app.db import get_engine, now_ms
from app.errors import ScplnError
from app.ops import backfill, backup, check, intake
from app.planning.model import CORE_ARTIFACTS, PlanParams
from app.storage import codec_artifacts
from app.storage import settings as st
from app.storage.plans import PlanStore
from app.storage.schema import plan_artifacts, plan_series, plan_versions, runs

ROLLBACK_PHASES = ("pause", "backup", "snapshot", "repair", "pin", "runs", "verify", "resume")
ROLLFORWARD_PHASES = ("pause", "backfill", "check", "unpin", "resume")
DEFAULT_STATE = "tmp/rollback_state.json"
DEFAULT_FORWARD_STATE = "tmp/rollforward_state.json"
#: Test hook: ``SCPLN_CRASH_AT=<phase>`` (or ``repair:<n>`` after n versions) kills the process there.
CRASH_ENV = "SCPLN_CRASH_AT"

Progress = Callable[[str, int], None]


class RollbackFailed(ScplnError):
    status = 500
    title = "rollback failed"


@dataclass
class OpsReport:
    """What a rollback or roll-forward did (or, with ``dry_run``, would do)."""

    kind: str
    dry_run: bool = False
    phases_done: list[str] = field(default_factory=list)
    phases_skipped: list[str] = field(default_factory=list)
    versions_checked: int = 0
    repaired: list[str] = field(default_factory=list)
    kept_artifacts: list[str] = field(default_factory=list)
    needs_restore: list[str] = field(default_factory=list)
    backup_path: str | None = None
    snapshots: list[str] = field(default_factory=list)
    verify_version: str | None = None
    runs_cleared: int = 0
    cutover_ts: int | None = None
    backfilled: int = 0
    check_problems: int = 0
    plan: list[str] = field(default_factory=list)
    ok: bool = True
    message: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def as_text(self) -> str:
        if self.dry_run:
            return "\n".join([f"{self.kind} (dry run): would do", *(f"  - {p}" for p in self.plan)])
        lines = [
            f"{self.kind} {'completed' if self.ok else 'FAILED'} in {self.seconds:.1f} s",
            f"  phases: {', '.join(self.phases_done) or 'none'}"
            + (f" (already done: {', '.join(self.phases_skipped)})" if self.phases_skipped else ""),
        ]
        if self.kind == "rollback":
            lines += [
                f"  versions checked: {self.versions_checked}, artifacts repaired from rows: {len(self.repaired)}"
                f", kept (rows unhealthy): {len(self.kept_artifacts)}, need restore from backup: "
                f"{len(self.needs_restore)}",
                f"  backup: {self.backup_path}",
                f"  snapshots: {', '.join(self.snapshots)}",
                f"  runs.plan_job_id cleared: {self.runs_cleared} (cut-over {self.cutover_ts})",
                f"  verified with version: {self.verify_version}",
            ]
            if self.needs_restore:
                lines.append(f"  RESTORE NEEDED for: {', '.join(self.needs_restore)}")
        else:
            lines.append(f"  versions backfilled: {self.backfilled}, check problems: {self.check_problems}")
        if self.message:
            lines.append(f"  {self.message}")
        return "\n".join(lines)


class _State:
    """The state file: completed phases and per-phase results, written atomically."""

    def __init__(self, path: Path, kind: str, dry_run: bool):
        self.path = path
        self.dry_run = dry_run
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
        if data.get("kind") != kind or data.get("finished"):
            data = {"kind": kind, "started_at": now_ms(), "phases": {}, "finished": False}
        self.data = data

    def done(self, phase: str) -> bool:
        return phase in self.data["phases"]

    def result(self, phase: str) -> Any:
        return self.data["phases"].get(phase)

    def complete(self, phase: str, result: Any = True) -> None:
        self.data["phases"][phase] = result
        self.save()

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()

    def save(self) -> None:
        if self.dry_run:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)


def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def content_checksums(engine: Engine | None = None) -> dict[str, str]:
    """SHA-256 of every ready version's content (canonical core artifacts, from rows or artifacts)."""
    store = PlanStore(engine or get_engine())
    out = {}
    versions, _ = store.list_versions(limit=10**9, status="ready", order="asc")
    for v in versions:
        try:
            texts = codec_artifacts.encode(store.read_for_export(v.version_id))
        except Exception as exc:  # noqa: BLE001 - an unreadable version has its own checksum
            out[v.version_id] = f"unreadable: {type(exc).__name__}"
            continue
        digest = hashlib.sha256()
        for name in CORE_ARTIFACTS:
            digest.update(name.encode() + b"\0" + texts.get(name, "").encode() + b"\0")
        out[v.version_id] = digest.hexdigest()
    return out


# --------------------------------------------------------------------------------------------------
# rollback


def rollback(
    engine: Engine | None = None,
    *,
    state_file: str | Path = DEFAULT_STATE,
    dry_run: bool = False,
    cutover_ts: int | None = None,
    backup_dir: str | Path = "backup",
    tmp_dir: str | Path = "tmp",
    snapshot_versions: int = 5,
    actor: str = "scpln rollback",
    progress: Progress | None = None,
) -> OpsReport:
    """Fall back from the PlanRepository to ``plan_artifacts`` (the whole seed runbook §4)."""
    engine = engine or get_engine()
    store = PlanStore(engine)
    started = time.perf_counter()
    report = OpsReport("rollback", dry_run=dry_run)
    state = _State(resolve_path(state_file), "rollback", dry_run)
    step = progress or (lambda _s, _p: None)
    if dry_run:
        report.plan = _rollback_plan(store, state, cutover_ts)
        report.seconds = time.perf_counter() - started
        return report

    def phase(name: str, fn: Callable[[], Any]) -> Any:
        step(name, int(100 * ROLLBACK_PHASES.index(name) / len(ROLLBACK_PHASES)))
        if state.done(name):
            report.phases_skipped.append(name)
            return state.result(name)
        _crash_point(name)
        result = fn()
        state.complete(name, result)
        report.phases_done.append(name)
        _crash_point(f"{name}:done")
        return result

    def pause() -> bool:
        st.set_value(engine, st.MAINTENANCE, "1")
        intake.pause_intake(engine, actor=actor)
        return True

    phase("pause", pause)
    report.backup_path = phase("backup", lambda: _backup(engine, backup_dir))
    report.snapshots = phase("snapshot", lambda: _snapshot(engine, resolve_path(tmp_dir), snapshot_versions))
    outcome = phase("repair", lambda: _repair(store, state, step))
    report.versions_checked = outcome["checked"]
    report.repaired = outcome["repaired"]
    report.kept_artifacts = outcome["kept"]
    report.needs_restore = outcome["needs_restore"]
    phase("pin", lambda: st.set_storage_pin(engine, "files") or "files")
    runs_result = phase("runs", lambda: _clear_run_jobs(engine, cutover_ts))
    report.runs_cleared, report.cutover_ts = runs_result["cleared"], runs_result["cutover_ts"]
    verify = phase("verify", lambda: _verify(store, state, set(outcome["needs_restore"])))
    report.verify_version = verify["version_id"]

    def resume() -> bool:
        intake.resume_intake(engine)
        st.set_value(engine, st.MAINTENANCE, None)
        return True

    phase("resume", resume)
    state.put("finished", True)
    step("done", 100)
    report.ok = not report.needs_restore
    if report.needs_restore:
        report.message = (
            "some versions have neither healthy rows nor healthy artifacts: restore them from the backup"
        )
    report.seconds = time.perf_counter() - started
    return report


def _rollback_plan(store: PlanStore, state: _State, cutover_ts: int | None) -> list[str]:
    lines = []
    for name in ROLLBACK_PHASES:
        if state.done(name):
            lines.append(f"{name}: already done in an earlier run")
    lines.append("pause plan intake and set maintenance (WAL checkpointed)")
    lines.append("online backup to backup/plan_db_prerollback_<YYYYMMDDHHMM>.db, verified")
    lines.append("snapshot recent plan_series rows (CSV) and the RunRegistry (JSON) into tmp/")
    versions, _ = store.list_versions(limit=10**9, status="ready", order="asc")
    for v in versions:
        verdict = _assess(store, v.version_id)
        if verdict["action"] != "ok":
            lines.append(f"version {v.version_id}: {verdict['action']} ({verdict['why']})")
    lines.append(f"{len(versions)} ready versions checked")
    lines.append("pin the storage mode to files")
    ts = cutover_ts if cutover_ts is not None else _default_cutover(store.engine)
    lines.append(f"clear runs.plan_job_id for runs created at or after {ts}")
    lines.append("verify: plan a version in files mode and read every version back from artifacts")
    lines.append("resume plan intake, maintenance off")
    return lines


def _backup(engine: Engine, backup_dir: str | Path) -> str:
    return str(backup.backup_database(dest_dir=backup_dir, engine=engine, prefix="plan_db_prerollback"))


def _snapshot(engine: Engine, tmp_dir: Path, n_versions: int) -> list[str]:
    """Recent plan_series rows as CSV and the RunRegistry as JSON (runbook 4.2)."""
    from app.run_registry import REGISTRY

    tmp_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    series_path = tmp_dir / f"plan_series_latest_{stamp}.csv"
    recent = select(plan_versions.c.version_id).order_by(plan_versions.c.created_at.desc()).limit(n_versions)
    with engine.connect() as conn, series_path.open("w", newline="", encoding="utf-8") as fh:
        result = conn.execute(
            select(plan_series)
            .where(plan_series.c.version_id.in_(recent.scalar_subquery()))
            .order_by(plan_series.c.version_id, plan_series.c.level, plan_series.c.seq)
        )
        writer = csv.writer(fh)
        writer.writerow(result.keys())
        for row in result:
            writer.writerow(row)
    registry_path = tmp_dir / f"run_registry_{stamp}.json"
    registry_path.write_text(json.dumps(REGISTRY.list(), indent=1, default=str), encoding="utf-8")
    return [str(series_path), str(registry_path)]


def _assess(store: PlanStore, version_id: str) -> dict[str, Any]:
    """What the repair phase does with one version, and why."""
    rows_ok, rows_why, expected = False, "no PlanRepository rows", None
    if store.has_rows(version_id):
        try:
            content = store.read_rows(version_id)
            problems = check.identity_problems(content) if content else [("missing", "no rows")]
            if problems:
                rows_why = f"rows break {problems[0][0]}: {problems[0][1]}"
            else:
                rows_ok, expected = True, codec_artifacts.encode(content)
        except Exception as exc:  # noqa: BLE001 - undecodable rows are unhealthy, not fatal
            rows_why = f"rows unreadable: {exc}"
    stored = {n: store.artifact_text(version_id, n) for n in (expected or dict.fromkeys(CORE_ARTIFACTS))}
    if rows_ok:
        differ = sorted(n for n, t in expected.items() if stored.get(n) != t)
        if differ:
            return {
                "action": "repair",
                "why": f"artifacts missing or different: {', '.join(differ)}",
                "texts": expected,
            }
        return {"action": "ok", "why": "artifacts equal the rows"}
    if all(stored.get(n) for n in CORE_ARTIFACTS):
        try:
            content = store.read_artifacts(version_id)
            if content is not None and not check.identity_problems(content):
                return {"action": "keep", "why": rows_why}
        except Exception:  # noqa: BLE001
            pass
    return {"action": "needs_restore", "why": f"{rows_why}; artifacts missing or unhealthy"}


def _repair(store: PlanStore, state: _State, step: Progress) -> dict[str, Any]:
    """Make every version readable from artifacts, version by version (resumable)."""
    progress = state.data.setdefault("repair", {"done": [], "repaired": [], "kept": [], "needs_restore": []})
    done = set(progress["done"])
    versions, _ = store.list_versions(limit=10**9, status="ready", order="asc")
    for i, v in enumerate(versions):
        if v.version_id in done:
            continue
        step(f"repair {v.version_id}", 30 + int(30 * i / max(len(versions), 1)))
        verdict = _assess(store, v.version_id)
        if verdict["action"] == "repair":
            texts = verdict["texts"]
            with store.engine.begin() as conn:
                for name, payload in texts.items():
                    _replace_artifact(conn, v.version_id, name, payload)
            progress["repaired"].append(v.version_id)
        elif verdict["action"] == "keep":
            progress["kept"].append(v.version_id)
        elif verdict["action"] == "needs_restore":
            progress["needs_restore"].append(v.version_id)
        progress["done"].append(v.version_id)
        state.save()
        _crash_point(f"repair:{len(progress['done'])}")
    return {
        "checked": len(progress["done"]),
        "repaired": progress["repaired"],
        "kept": progress["kept"],
        "needs_restore": progress["needs_restore"],
    }


def _replace_artifact(conn: Connection, version_id: str, name: str, payload: str) -> None:
    conn.execute(
        plan_artifacts.delete().where(
            plan_artifacts.c.version_id == version_id, plan_artifacts.c.name == name
        )
    )
    conn.execute(
        plan_artifacts.insert().values(
            version_id=version_id, name=name, json_text=payload, created_at=now_ms()
        )
    )


def _default_cutover(engine: Engine) -> int | None:
    """The cut-over: when the first version was written to the PlanRepository (db or both mode)."""
    with engine.connect() as conn:
        return conn.execute(
            select(func.min(plan_versions.c.created_at)).where(
                plan_versions.c.storage_mode.in_(["db", "both"])
            )
        ).scalar_one_or_none()


def _clear_run_jobs(engine: Engine, cutover_ts: int | None) -> dict[str, Any]:
    """``UPDATE runs SET plan_job_id=NULL WHERE created_at>=<cutover_ts>`` (runbook 4.5)."""
    ts = cutover_ts if cutover_ts is not None else _default_cutover(engine)
    if ts is None:
        return {"cleared": 0, "cutover_ts": None}
    with engine.begin() as conn:
        result = conn.execute(
            update(runs)
            .where(runs.c.created_at >= ts, runs.c.plan_job_id.is_not(None))
            .values(plan_job_id=None)
        )
    return {"cleared": result.rowcount or 0, "cutover_ts": ts}


def _verify(store: PlanStore, state: _State, restore_needed: set[str]) -> dict[str, Any]:
    """Plan one version in files mode and read every version back from artifacts (runbook 4.6)."""
    from app.service import PlanRequest, run_plan

    vid = state.data.get("verify_version")
    if not vid:
        vid = f"rollback-verify-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
        state.put("verify_version", vid)
    try:
        info = store.get_version(vid)
        exists = info.status == "ready"
    except ScplnError:
        exists = False
    if not exists:
        run_plan(
            PlanRequest(version_id=vid, params=PlanParams(), note="rollback verification"),
            storage="files",
            store=store,
            enforce_intake=False,
        )
    if store.has_rows(vid):
        raise RollbackFailed(f"verification plan {vid} was written to the PlanRepository in files mode")
    failures = []
    versions, _ = store.list_versions(limit=10**9, status="ready", order="asc")
    for v in versions:
        if v.version_id in restore_needed:
            continue
        try:
            store.read_version(v.version_id, mode="files")
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{v.version_id}: {exc}")
    if failures:
        raise RollbackFailed(f"{len(failures)} version(s) not readable from artifacts", failures[:20])
    return {"version_id": vid, "versions_read": len(versions)}


# --------------------------------------------------------------------------------------------------
# roll-forward


def rollforward(
    engine: Engine | None = None,
    *,
    state_file: str | Path = DEFAULT_FORWARD_STATE,
    dry_run: bool = False,
    actor: str = "scpln rollforward",
    progress: Progress | None = None,
) -> OpsReport:
    """Back to the PlanRepository: backfill rows, check both encodings agree, clear the pin."""
    engine = engine or get_engine()
    started = time.perf_counter()
    report = OpsReport("rollforward", dry_run=dry_run)
    path = resolve_path(state_file)
    state = _State(path, "rollforward", dry_run)
    step = progress or (lambda _s, _p: None)
    if dry_run:
        preview = backfill.backfill_repository(engine, dry_run=True)
        report.plan = [
            "pause plan intake and set maintenance",
            f"backfill PlanRepository rows: {preview.summary()}",
            "db check: every version complete, both encodings equal",
            f"clear the storage pin (now {st.storage_pin(engine) or 'none'}; default mode {st.default_mode()})",
            "resume plan intake, maintenance off",
        ]
        report.seconds = time.perf_counter() - started
        return report

    def phase(name: str, fn: Callable[[], Any]) -> Any:
        step(name, int(100 * ROLLFORWARD_PHASES.index(name) / len(ROLLFORWARD_PHASES)))
        if state.done(name):
            report.phases_skipped.append(name)
            return state.result(name)
        _crash_point(f"forward:{name}")
        result = fn()
        state.complete(name, result)
        report.phases_done.append(name)
        return result

    def pause() -> bool:
        st.set_value(engine, st.MAINTENANCE, "1")
        intake.pause_intake(engine, actor=actor)
        return True

    def resume() -> bool:
        intake.resume_intake(engine)
        st.set_value(engine, st.MAINTENANCE, None)
        return True

    phase("pause", pause)
    backfilled = phase("backfill", lambda: _backfill(engine, path))
    report.backfilled = backfilled["backfilled"]
    result = check.check_database(engine)
    report.check_problems = len(result.problems)
    if not result.ok:
        # Stay on artifacts: keep the pin, reopen intake, and say what is wrong.
        resume()
        report.ok = False
        report.message = "db check failed; the storage pin stays on files:\n" + result.as_text()
        report.seconds = time.perf_counter() - started
        return report
    state.complete("check", {"problems": 0})
    report.phases_done.append("check")
    phase("unpin", lambda: st.set_storage_pin(engine, None) or "cleared")
    phase("resume", resume)
    state.put("finished", True)
    step("done", 100)
    report.seconds = time.perf_counter() - started
    return report


def _backfill(engine: Engine, state_path: Path) -> dict[str, Any]:
    inner = state_path.with_name(state_path.stem + ".backfill.json")
    result = backfill.backfill_repository(engine, state_file=inner)
    if not result.ok:
        raise RollbackFailed(f"backfill failed: {result.summary()}")
    return {"backfilled": len(result.backfilled)}
