"""``scpln rollback`` and ``scpln rollforward``: the runbook's procedure as phases (seed runbook §4, SPEC 7).

rollback:    pause → backup → snapshot → repair → pin → runs → verify → resume
rollforward: pause → backfill → check → unpin → resume

Owns what each phase does but the repair (``app.ops.rollback.repair``) and the order of the phases;
``app.ops.rollback.runner`` runs them, each idempotent and recorded in a state file after it completes,
so a command killed at any point is simply run again. A version with neither encoding healthy is
reported as needing a restore from the backup (the rollback then ends with ``ok`` False).

Roll-forward backfills rows for versions that have none (those written in files mode during the
rollback), runs the whole-database check, and clears the storage pin only when the check passes; when
anything fails it reopens intake on files mode and leaves the pin in place.

Plan content is written through the plan store only. This module never deletes a version, its rows,
overrides or events.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, update

from app.config import data_paths, get_settings, resolve_path
from app.errors import ScplnError
from app.ops import backfill, backup, check, intake
from app.ops.parallel import VersionMap, map_versions
from app.ops.rollback import repair
from app.ops.rollback.runner import CRASH_ENV, Progress, State, phase_runner
from app.planning.model import CORE_ARTIFACTS, PlanParams
from app.storage import codec_artifacts, modes
from app.storage import settings as st
from app.storage.db import get_engine
from app.storage.plans import PlanStore
from app.storage.schema import plan_versions, runs

ROLLBACK_PHASES = ("pause", "backup", "snapshot", "repair", "pin", "runs", "verify", "resume")
ROLLFORWARD_PHASES = ("pause", "backfill", "check", "unpin", "resume")
__all__ = ["CRASH_ENV", "ROLLBACK_PHASES", "ROLLFORWARD_PHASES", "OpsReport", "RollbackFailed"]
#: The note of the version the verify phase plans; it tells that version apart from the operators'.
VERIFY_NOTE = "rollback verification"
#: How many version ids a text report names per list before it only counts.
NAMED = 20


class RollbackFailed(ScplnError):
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
    repaired_from_copy: list[str] = field(default_factory=list)
    kept_artifacts: dict[str, str] = field(default_factory=dict)
    needs_restore: dict[str, str] = field(default_factory=dict)
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
            return "\n".join(
                [f"{self.kind} (dry run, nothing changed): would do", *(f"  - {p}" for p in self.plan)]
            )
        lines = [
            f"{self.kind} {'completed' if self.ok else 'FAILED'} in {self.seconds:.1f} s",
            f"  phases: {', '.join(self.phases_done) or 'none'}"
            + (
                f" (already done in an earlier run: {', '.join(self.phases_skipped)})"
                if self.phases_skipped
                else ""
            ),
        ]
        if self.kind == "rollback":
            lines += [
                f"  versions checked: {self.versions_checked}",
                f"  artifacts repaired: {len(self.repaired)}{_names(self.repaired)}, of which "
                f"{len(self.repaired_from_copy)} moved from their ready copy, the others made from rows",
                f"  artifacts kept (rows unhealthy): {len(self.kept_artifacts)}{_names(self.kept_artifacts)}",
                f"  need restore from backup: {len(self.needs_restore)}{_names(self.needs_restore)}",
                f"  backup: {self.backup_path}",
                f"  snapshots: {', '.join(self.snapshots)}",
                f"  runs.plan_job_id cleared: {self.runs_cleared} (cut-over {self.cutover_ts})",
                f"  verified with version: {self.verify_version}",
            ]
            lines += [f"  RESTORE NEEDED: {v}: {why}" for v, why in list(self.needs_restore.items())[:NAMED]]
        else:
            lines.append(
                f"  versions backfilled: {self.backfilled}, db check problems: {self.check_problems}"
            )
        if self.message:
            lines.append(f"  {self.message}")
        return "\n".join(lines)


def _names(ids: Any) -> str:
    ids = list(ids)
    if not ids:
        return ""
    more = f" … and {len(ids) - NAMED} more" if len(ids) > NAMED else ""
    return f" ({', '.join(ids[:NAMED])}{more})"


def _enter_maintenance(engine: Engine, actor: str) -> bool:
    """Maintenance on and plan intake paused (the pause checkpoints SQLite's WAL)."""
    st.set_value(engine, st.MAINTENANCE, "1")
    intake.pause_intake(engine, actor=actor)
    return True


def _leave_maintenance(engine: Engine) -> bool:
    intake.resume_intake(engine)
    st.set_value(engine, st.MAINTENANCE, None)
    return True


def content_checksums(engine: Engine | None = None) -> dict[str, str]:
    """SHA-256 of every ready version's content (canonical core artifacts, read by the exporter's rule:
    rows when they exist, artifacts otherwise). Rollback and roll-forward leave these unchanged."""
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
    state_file: str | Path | None = None,
    dry_run: bool = False,
    cutover_ts: int | None = None,
    backup_dir: str | Path | None = None,
    tmp_dir: str | Path | None = None,
    snapshot_versions: int = 5,
    actor: str = "scpln rollback",
    progress: Progress | None = None,
    jobs: int | None = None,
) -> OpsReport:
    """Fall back from the PlanRepository to ``plan_artifacts`` (the whole seed runbook §4). ``jobs``:
    processes assessing and repairing versions (default: one per core, at most four, plus one; see
    :func:`repair.repair_jobs`).

    The state file, the backup folder and the snapshot folder default to the database's own
    (:func:`app.config.data_paths`); relative paths are taken from the repository root, like
    ``SCPLN_DB``. Raises ``RollbackFailed`` when verification fails; intake then stays paused and the
    state file lets a later run resume.
    """
    engine = engine or get_engine()
    store = PlanStore(engine)
    started = time.perf_counter()
    report = OpsReport("rollback", dry_run=dry_run)
    paths = data_paths(engine.url.render_as_string(hide_password=False))
    state = State(resolve_path(state_file or paths.rollback_state), "rollback", dry_run)
    backup_dir = resolve_path(backup_dir or paths.backup)
    step = progress or (lambda _s, _p: None)
    if dry_run:
        report.plan = _rollback_plan(store, state, cutover_ts, snapshot_versions, jobs, backup_dir)
        report.seconds = time.perf_counter() - started
        return report
    phase = phase_runner(state, report.phases_done, report.phases_skipped, ROLLBACK_PHASES, step)

    def pause() -> bool:
        return _enter_maintenance(engine, actor)

    def resume() -> bool:
        return _leave_maintenance(engine)

    phase("pause", pause)
    snapshot = functools.partial(_snapshot, engine, resolve_path(tmp_dir or paths.tmp), snapshot_versions)
    with contextlib.ExitStack() as stack:
        # Versions are read and assessed in worker processes from here on, while the backup copies and
        # the snapshot is taken. Once the backup's snapshot is open (SQLite), the workers add artifacts
        # to versions that have none: the backup holds the database as it was before them, and they
        # replace nothing. Any other repair waits until the backup is recorded (until then its verdict
        # brings its texts here; afterwards the workers write them).
        assessments = None
        spawn = multiprocessing.get_context("spawn")
        may_write, may_add = spawn.Event(), spawn.Event()
        if not state.done("repair"):
            todo = repair.repair_todo(store, state)
            assessments = stack.enter_context(
                VersionMap(
                    repair.repair_in_worker, engine, todo, repair.repair_jobs(jobs, len(todo)),
                    size=repair.verdict_size, initializer=repair.repair_worker_start, initargs=(may_write, may_add),
                )
            )  # fmt: skip
        with ThreadPoolExecutor(1, thread_name_prefix="scpln-snapshot") as side:
            # The snapshot is recorded after the backup, as the runbook orders them.
            early = side.submit(snapshot) if not state.done("backup") and not state.done("snapshot") else None
            report.backup_path = phase("backup", lambda: _backup(engine, backup_dir, may_add.set))
            # The workers write what they repair from now on, while the snapshot may still be taken: the
            # repair writes artifacts, never the plan_series rows the snapshot holds.
            may_add.set()  # a resumed run's backup was recorded before
            may_write.set()
            report.snapshots = phase("snapshot", early.result if early else snapshot)
        share = (ROLLBACK_PHASES.index("repair"), len(ROLLBACK_PHASES))

        def repair_all() -> dict[str, Any]:
            done = repair.repair(store, state, step, assessments, share)
            # What was written while the backup copied waited in the WAL, which grew by all of it: into
            # the file with it, and the WAL back to empty (open connections would otherwise keep it).
            intake.checkpoint_wal(engine)
            return done

        outcome = phase("repair", repair_all)
    report.versions_checked = outcome["checked"]
    report.repaired = list(outcome["repaired"])
    report.repaired_from_copy = list(outcome.get("from_copy", []))
    report.kept_artifacts = dict(outcome["kept"])
    report.needs_restore = dict(outcome["needs_restore"])
    phase("pin", lambda: st.set_storage_pin(engine, "files") or "files")
    runs_result = phase("runs", lambda: _clear_run_jobs(engine, cutover_ts))
    report.runs_cleared, report.cutover_ts = runs_result["cleared"], runs_result["cutover_ts"]
    verify = phase("verify", lambda: _verify(store, state, set(report.needs_restore), set(outcome["proven"])))
    report.verify_version = verify["version_id"]
    phase("resume", resume)
    state.put("finished", True)
    step("done", 100)
    report.ok = not report.needs_restore
    if report.needs_restore:
        report.message = (
            f"{len(report.needs_restore)} version(s) have neither healthy PlanRepository rows nor healthy "
            f"artifacts and need a restore from the backup ({report.backup_path} holds them as they were; "
            "see `scpln db restore`)"
        )
    report.seconds = time.perf_counter() - started
    return report


def _rollback_plan(
    store: PlanStore,
    state: State,
    cutover_ts: int | None,
    n_snapshot: int,
    jobs: int | None,
    backup_dir: Path,
) -> list[str]:
    """What a rollback would do, version by version; reads only."""
    lines = [
        f"{name}: already done in an earlier, unfinished run" for name in ROLLBACK_PHASES if state.done(name)
    ]
    lines += [
        "pause plan intake, maintenance on (SQLite WAL checkpointed into the main file)",
        f"backup to {backup_dir}/plan_db_prerollback_<YYYYMMDDHHMM>.db (SQLite's online backup, the "
        "database as it is; pg_dump on PostgreSQL), with the snapshot taken meanwhile and, on SQLite, the "
        "artifacts of versions that have none written meanwhile (the backup cannot see them)",
        f"snapshot the plan_series rows of the {n_snapshot} latest versions (CSV) and the RunRegistry (JSON)",
    ]
    versions = repair.ready_versions(store)
    counts: dict[str, int] = {}
    for verdict in map_versions(repair.assess_in_worker, store.engine, versions, jobs):
        vid = verdict["version_id"]
        counts[verdict["action"]] = counts.get(verdict["action"], 0) + 1
        if verdict["action"] != "ok":
            source = f" from {verdict['source']}" if verdict.get("source") else ""
            lines.append(f"version {vid}: {repair.ACTION_TEXT[verdict['action']]}{source} ({verdict['why']})")
    summary = ", ".join(f"{repair.ACTION_TEXT[a]}: {n}" for a, n in sorted(counts.items()))
    lines.append(f"{len(versions)} ready versions checked" + (f" — {summary}" if summary else ""))
    ts = cutover_ts if cutover_ts is not None else _default_cutover(store.engine)
    lines += [
        "pin the storage mode to files",
        f"clear runs.plan_job_id of runs created at or after {ts} ({_count_run_jobs(store.engine, ts)} runs)",
        "verify: plan a version in files mode (no PlanRepository rows) and read every version from artifacts",
        "resume plan intake, maintenance off",
    ]
    return lines


def _backup(engine: Engine, backup_dir: Path, on_snapshot: Callable[[], Any] | None = None) -> str:
    """The pre-rollback backup: the runbook's ``cp``, made safe by taking it with SQLite's online backup
    API. It is not held to ``integrity_check``: a damaged database is what a rollback is for, and it must
    be kept as it is (a restore verifies the copy in full before using it). ``on_snapshot``: called once
    the copy holds the database as it is now (SQLite only)."""
    return str(
        backup.backup_database(
            dest_dir=backup_dir,
            engine=engine,
            prefix="plan_db_prerollback",
            verify=False,
            on_snapshot=on_snapshot,
        )
    )


def _snapshot(engine: Engine, tmp_dir: Path, n_versions: int) -> list[str]:
    """Recent plan_series rows as CSV and the RunRegistry as JSON (runbook 4.2)."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    series_path = tmp_dir / f"plan_series_latest_{stamp}.csv"
    partial = series_path.with_name(f".{series_path.name}.partial")
    query = (
        "SELECT * FROM plan_series WHERE version_id IN "
        f"(SELECT version_id FROM plan_versions ORDER BY created_at DESC LIMIT {int(n_versions)}) "
        "ORDER BY version_id, level, seq"
    )
    _write_csv(engine, query, partial)
    os.replace(partial, series_path)
    registry_path = tmp_dir / f"run_registry_{stamp}.json"
    registry_path.write_text(
        json.dumps(_registry_records(engine), indent=1, default=str, ensure_ascii=False), encoding="utf-8"
    )
    return [str(series_path), str(registry_path)]


def _write_csv(engine: Engine, query: str, path: Path) -> None:
    """The result of ``query`` as CSV with a header row of column names (``docs/storage.md``, "Rollback
    snapshot"): PostgreSQL writes it itself with ``COPY``; otherwise rows are streamed from the DBAPI
    cursor in batches through the ``csv`` module (NULL as an empty field)."""
    with engine.connect() as conn, path.open("w", newline="", encoding="utf-8") as fh:
        cursor = conn.connection.dbapi_connection.cursor()
        if engine.dialect.name == "postgresql":
            with cursor.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
                for chunk in copy:
                    fh.write(bytes(chunk).decode("utf-8"))
            return
        cursor.execute(query)
        writer = csv.writer(fh)
        writer.writerow([d[0] for d in cursor.description])
        for batch in iter(lambda: cursor.fetchmany(20_000), []):
            writer.writerows(batch)


def _registry_records(engine: Engine) -> list[dict[str, Any]]:
    """The RunRegistry's records: the ``runs`` table of this database, or this process's memory."""
    from app.run_registry import REGISTRY, DbRunBackend

    if get_settings().registry_backend == "memory":
        return REGISTRY.list()
    return DbRunBackend(engine).list(None, 0)


def _default_cutover(engine: Engine) -> int | None:
    """The cut-over: when the first version was written to the PlanRepository (db or both mode)."""
    with engine.connect() as conn:
        return conn.execute(
            select(func.min(plan_versions.c.created_at)).where(
                plan_versions.c.storage_mode.in_([m for m in modes.MODES if modes.uses_rows(m)])
            )
        ).scalar_one_or_none()


def _count_run_jobs(engine: Engine, ts: int | None) -> int:
    if ts is None:
        return 0
    with engine.connect() as conn:
        return conn.execute(
            select(func.count())
            .select_from(runs)
            .where(runs.c.created_at >= ts, runs.c.plan_job_id.is_not(None))
        ).scalar_one()


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


def _verify(store: PlanStore, state: State, restore_needed: set[str], proven: set[str]) -> dict[str, Any]:
    """Plan one version in files mode and read every version back from artifacts (runbook 4.6).

    Versions the repair phase proved (their artifacts equal their healthy rows' canonical texts, or were
    decoded and checked) are checked for their core artifacts only; every other version is decoded."""
    from app.services.plans import PlanRequest, run_plan

    vid = state.data.get("verify_version")
    if not vid:
        vid = f"rollback-verify-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
        state.put("verify_version", vid)  # before planning: a resumed run finds the version it made
    try:
        exists = store.get_version(vid).status == "ready"
    except ScplnError:
        exists = False
    if not exists:
        run_plan(
            PlanRequest(version_id=vid, params=PlanParams(), note=VERIFY_NOTE),
            storage="files",
            store=store,
            enforce_intake=False,
        )
    if store.has_rows(vid):
        raise RollbackFailed(f"verification plan {vid} was written to the PlanRepository in files mode")
    failures = []
    versions = repair.ready_versions(store)
    for version_id in versions:
        if version_id in restore_needed:
            continue
        try:
            missing = [n for n in CORE_ARTIFACTS if n not in store.artifact_names(version_id)]
            if missing:
                raise RollbackFailed(f"no {', '.join(missing)}")
            if version_id not in proven:
                store.read_version(version_id, mode="files")
        except Exception as exc:  # noqa: BLE001 - every failure is listed
            failures.append(f"{version_id}: {repair.short(exc)}")
    if failures:
        raise RollbackFailed(
            f"{len(failures)} version(s) not readable from artifacts; intake stays paused — fix them and run "
            f"the rollback again: {'; '.join(failures[:NAMED])}",
            failures[:NAMED],
        )
    return {"version_id": vid, "versions_read": len(versions) - len(restore_needed)}


# --------------------------------------------------------------------------------------------------
# roll-forward


def rollforward(
    engine: Engine | None = None,
    *,
    state_file: str | Path | None = None,
    dry_run: bool = False,
    actor: str = "scpln rollforward",
    progress: Progress | None = None,
    jobs: int | None = None,
) -> OpsReport:
    """Back to the PlanRepository: backfill rows, check both encodings agree, clear the pin. ``jobs``:
    processes checking versions (default: one per core, at most four).

    When the backfill or the check fails, intake is reopened (still on the pin, so in files mode), the
    pin stays, the report says why (``ok`` False) and the next run starts again from the beginning.
    """
    engine = engine or get_engine()
    started = time.perf_counter()
    report = OpsReport("rollforward", dry_run=dry_run)
    path = resolve_path(
        state_file or data_paths(engine.url.render_as_string(hide_password=False)).rollforward_state
    )
    state = State(path, "rollforward", dry_run)
    step = progress or (lambda _s, _p: None)
    if dry_run:
        preview = backfill.backfill_repository(engine, dry_run=True)
        report.plan = [
            "pause plan intake, maintenance on",
            f"backfill PlanRepository rows from artifacts: {preview.summary()}",
            *(f"version {v}: backfill rows" for v in preview.would_backfill[:NAMED]),
            "db check: every version complete, both encodings equal, identities hold",
            f"clear the storage pin (now {st.storage_pin(engine) or 'none'}; default mode {st.default_mode()}) "
            "— only when the check passes",
            "resume plan intake, maintenance off",
        ]
        report.seconds = time.perf_counter() - started
        return report
    phase = phase_runner(
        state, report.phases_done, report.phases_skipped, ROLLFORWARD_PHASES, step, prefix="forward:"
    )

    def pause() -> bool:
        return _enter_maintenance(engine, actor)

    def resume() -> bool:
        return _leave_maintenance(engine)

    def give_up(message: str) -> OpsReport:
        # Stay on artifacts: keep the pin, reopen intake, and say what is wrong.
        resume()
        state.put("failed", message)
        state.put("finished", True)
        report.ok = False
        report.message = message
        report.seconds = time.perf_counter() - started
        return report

    phase("pause", pause)
    backfilled = phase("backfill", lambda: _backfill(engine, path))
    report.backfilled = backfilled["backfilled"]
    if backfilled["problems"]:
        return give_up(
            "backfill failed; the storage pin stays on files:\n" + "\n".join(backfilled["problems"])
        )
    checked = phase("check", lambda: _check(engine, step, jobs))
    report.check_problems = checked["problems"]
    if not checked["ok"]:
        return give_up("db check failed; the storage pin stays on files:\n" + checked["text"])
    phase("unpin", lambda: st.set_storage_pin(engine, None) or "cleared")
    phase("resume", resume)
    state.put("finished", True)
    step("done", 100)
    report.seconds = time.perf_counter() - started
    return report


def _backfill(engine: Engine, state_path: Path) -> dict[str, Any]:
    inner = state_path.with_name(state_path.stem + ".backfill.json")
    result = backfill.backfill_repository(engine, state_file=inner)
    problems = [f"  - {v}: failed: {why}" for v, why in result.failed.items()]
    problems += [f"  - {v}: needs derivation: {why}" for v, why in result.needs_derivation.items()]
    return {"backfilled": len(result.backfilled), "problems": problems}


def _check(engine: Engine, step: Progress, jobs: int | None = None) -> dict[str, Any]:
    """Every version whole and both encodings equal (versions not written since certified are taken as
    certified). SQLite's integrity and foreign-key checks are left to ``scpln db check``: each reads the
    whole file (minutes on a database of many GB) and tells nothing of the encodings."""
    result = check.check_database(engine, jobs=jobs, database_level=False)
    step("check", int(100 * 3 / len(ROLLFORWARD_PHASES)))
    return {"ok": result.ok, "problems": len(result.problems), "text": result.as_text()}
