"""Rollback to ``plan_artifacts`` and roll-forward to the PlanRepository, each as one resumable command.

Owns the runbook's procedure (seed runbook §4, SPEC 7) as phases that are each idempotent and recorded
in a state file after they complete, so a run killed at any point is simply run again:

rollback:    pause → backup → snapshot → repair → pin → runs → verify → resume
rollforward: pause → backfill → check → unpin → resume

``repair`` writes a version's artifacts from its PlanRepository rows where they are missing or differ —
only from rows that decode, hold every core document and keep the plan identities; a version whose rows
fail keeps its artifacts when those are whole and sound, and one with neither encoding healthy is
reported as needing a restore from the backup (the rollback then ends with ``ok`` False).

Roll-forward backfills rows for versions that have none (those written in files mode during the
rollback), runs the whole-database check, and clears the storage pin only when the check passes; when
anything fails it reopens intake on files mode and leaves the pin in place.

Plan content goes through the plan store and the two codecs only. This module never deletes a version,
its rows, overrides or events.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import hashlib
import itertools
import json
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update

from app.config import data_paths, get_settings, resolve_path
from app.db import get_engine, now_ms
from app.errors import ScplnError
from app.ops import backfill, backup, check, intake
from app.ops.parallel import POOL_MIN_VERSIONS, VersionMap, default_jobs, map_versions, store_for
from app.planning.model import CORE_ARTIFACTS, PlanParams
from app.storage import codec_artifacts, digests
from app.storage import settings as st
from app.storage.plans import PlanStore
from app.storage.schema import plan_artifacts, plan_versions, runs

ROLLBACK_PHASES = ("pause", "backup", "snapshot", "repair", "pin", "runs", "verify", "resume")
ROLLFORWARD_PHASES = ("pause", "backfill", "check", "unpin", "resume")
#: Test hook. ``SCPLN_CRASH_AT=<phase>`` kills the rollback with SIGKILL after that phase did its work
#: and before the state file records it (the widest window); ``repair:<n>`` after the n-th version of
#: this run's repair was written; ``forward:<phase>`` the same for the roll-forward.
CRASH_ENV = "SCPLN_CRASH_AT"
#: The note of the version the verify phase plans; it tells that version apart from the operators'.
VERIFY_NOTE = "rollback verification"
#: How many version ids a text report names per list before it only counts.
NAMED = 20

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
                f"  artifacts repaired from PlanRepository rows: {len(self.repaired)}{_names(self.repaired)}",
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


class _State:
    """The state file: completed phases and per-phase results, written atomically. A finished (or
    missing, or unreadable) state file starts a new run."""

    def __init__(self, path: Path, kind: str, dry_run: bool):
        self.path = path
        self.dry_run = dry_run
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
        if not isinstance(data, dict) or data.get("kind") != kind or data.get("finished"):
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
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)  # a resumed run never reads half a state file


def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _runner(state: _State, report: OpsReport, phases: tuple[str, ...], step: Progress, prefix: str = ""):
    """Run a phase unless the state file says it is done; record it after it completes."""

    def phase(name: str, fn: Callable[[], Any]) -> Any:
        step(name, int(100 * phases.index(name) / len(phases)))
        if state.done(name):
            report.phases_skipped.append(name)
            return state.result(name)
        result = fn()
        _crash_point(f"{prefix}{name}")
        state.complete(name, result)
        report.phases_done.append(name)
        return result

    return phase


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
    :func:`repair_jobs`).

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
    state = _State(resolve_path(state_file or paths.rollback_state), "rollback", dry_run)
    backup_dir = resolve_path(backup_dir or paths.backup)
    step = progress or (lambda _s, _p: None)
    if dry_run:
        report.plan = _rollback_plan(store, state, cutover_ts, snapshot_versions, jobs, backup_dir)
        report.seconds = time.perf_counter() - started
        return report
    phase = _runner(state, report, ROLLBACK_PHASES, step)

    def pause() -> bool:
        return _enter_maintenance(engine, actor)

    def resume() -> bool:
        return _leave_maintenance(engine)

    phase("pause", pause)
    snapshot = functools.partial(_snapshot, engine, resolve_path(tmp_dir or paths.tmp), snapshot_versions)
    with contextlib.ExitStack() as stack:
        # Versions are read and assessed in worker processes from here on, while the backup copies and
        # the snapshot is taken: both only read, and nothing is written before the backup is recorded
        # (until then the verdicts bring their texts here; afterwards the workers write them).
        assessments = None
        may_write = multiprocessing.get_context("spawn").Event()
        if not state.done("repair"):
            todo = _repair_todo(store, state)
            assessments = stack.enter_context(
                VersionMap(
                    _repair_in_worker, engine, todo, repair_jobs(jobs, len(todo)), size=_verdict_size,
                    initializer=_repair_worker_start, initargs=(may_write,),
                )
            )  # fmt: skip
        with ThreadPoolExecutor(1, thread_name_prefix="scpln-snapshot") as side:
            # The snapshot is recorded after the backup, as the runbook orders them.
            early = side.submit(snapshot) if not state.done("backup") and not state.done("snapshot") else None
            report.backup_path = phase("backup", lambda: _backup(engine, backup_dir))
            report.snapshots = phase("snapshot", early.result if early else snapshot)
        may_write.set()  # the workers write what they repair from now on
        outcome = phase("repair", lambda: _repair(store, state, step, assessments))
    report.versions_checked = outcome["checked"]
    report.repaired = list(outcome["repaired"])
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
    state: _State,
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
        "database as it is; pg_dump on PostgreSQL), with the snapshot taken meanwhile",
        f"snapshot the plan_series rows of the {n_snapshot} latest versions (CSV) and the RunRegistry (JSON)",
    ]
    versions = _ready_versions(store)
    counts: dict[str, int] = {}
    for verdict in map_versions(_assess_in_worker, store.engine, versions, jobs):
        vid = verdict["version_id"]
        counts[verdict["action"]] = counts.get(verdict["action"], 0) + 1
        if verdict["action"] != "ok":
            lines.append(f"version {vid}: {_ACTION_TEXT[verdict['action']]} ({verdict['why']})")
    summary = ", ".join(f"{_ACTION_TEXT[a]}: {n}" for a, n in sorted(counts.items()))
    lines.append(f"{len(versions)} ready versions checked" + (f" — {summary}" if summary else ""))
    ts = cutover_ts if cutover_ts is not None else _default_cutover(store.engine)
    lines += [
        "pin the storage mode to files",
        f"clear runs.plan_job_id of runs created at or after {ts} ({_count_run_jobs(store.engine, ts)} runs)",
        "verify: plan a version in files mode (no PlanRepository rows) and read every version from artifacts",
        "resume plan intake, maintenance off",
    ]
    return lines


_ACTION_TEXT = {
    "ok": "artifacts already whole",
    "repair": "repair artifacts from rows",
    "keep": "keep artifacts (rows unhealthy)",
    "needs_restore": "NEEDS RESTORE from backup",
}


def _ready_versions(store: PlanStore) -> list[str]:
    with store.engine.connect() as conn:
        return list(
            conn.execute(
                select(plan_versions.c.version_id)
                .where(plan_versions.c.status == "ready")
                .order_by(plan_versions.c.created_at, plan_versions.c.version_id)
            ).scalars()
        )


def _backup(engine: Engine, backup_dir: Path) -> str:
    """The pre-rollback backup: the runbook's ``cp``, made safe by taking it with SQLite's online backup
    API. It is not held to ``integrity_check``: a damaged database is what a rollback is for, and it must
    be kept as it is (a restore verifies the copy in full before using it)."""
    return str(
        backup.backup_database(dest_dir=backup_dir, engine=engine, prefix="plan_db_prerollback", verify=False)
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


def _assess(store: PlanStore, version_id: str) -> dict[str, Any]:
    """What the repair phase does with one version, and why: ``ok`` (artifacts still hash to the
    version's certified digest, or hold what its healthy rows hold, or there are no rows and the
    artifacts are sound), ``repair`` (with the texts to write), ``keep`` (rows unhealthy, artifacts
    sound) or ``needs_restore``. ``rows_digest`` is set when healthy rows were read."""
    with store.engine.connect() as conn:  # as UTF-8 bytes: hashed as they are, decoded only if needed
        blobs = digests.stored_artifact_bytes(conn, version_id)
    rows_recorded, artifacts_recorded = store.stored_digests(version_id)
    if (
        rows_recorded
        and artifacts_recorded
        and all(n in blobs for n in CORE_ARTIFACTS)
        and digests.artifacts_digest(blobs) == artifacts_recorded
    ):
        # made from the same content as the rows and unchanged since: nothing to read or decode
        return {"action": "ok", "why": "artifacts match their certified digest"}
    stored = {name: body.decode("utf-8") for name, body in blobs.items()}
    rows_ok, rows_why, expected, rows_digest = _rows_health(
        store, version_id, rows_recorded, artifacts_recorded, stored
    )
    if rows_ok:
        # The rows' canonical texts against the stored texts: equal texts are equal documents, so a
        # whole version is judged without decoding its artifacts.
        differ = sorted(n for n, t in expected.items() if stored.get(n) != t)
        if differ:
            return {
                "action": "repair",
                "why": f"artifacts missing or different: {', '.join(differ)}",
                "texts": expected,
                "rows_digest": rows_digest,
                # what the version's artifacts hash to once these texts are written
                "artifacts_digest": digests.artifacts_digest({**stored, **expected}),
            }
        return {"action": "ok", "why": "artifacts equal the rows", "rows_digest": rows_digest}
    artifacts_why = _artifacts_problem(version_id, stored)
    if artifacts_why is None:
        if rows_why is None:
            return {"action": "ok", "why": "artifacts only (files mode)"}
        return {"action": "keep", "why": rows_why}
    return {"action": "needs_restore", "why": f"{rows_why or 'no PlanRepository rows'}; {artifacts_why}"}


def _assess_in_worker(url: str, version_id: str) -> dict[str, Any]:
    """:func:`_assess` in a worker process of :func:`app.ops.parallel.map_versions`."""
    verdict = _assess(store_for(url), version_id)
    verdict["version_id"] = version_id
    return verdict


#: In a repair worker process: set once the rollback may write (its backup is recorded).
_MAY_WRITE: Any = None


def repair_jobs(jobs: int | None, versions: int) -> int | None:
    """The repair's worker processes: ``jobs`` when given, else one more than the default (one per
    core, at most four): a worker that commits a repair waits on the disk (its WAL write and checkpoint)
    and the extra one keeps the cores busy meanwhile. None (the map decides) for a few versions."""
    if jobs is not None or versions < POOL_MIN_VERSIONS:
        return jobs
    return default_jobs() + 1


#: How much a repair worker process lowers its CPU priority: while the backup is being copied and
#: verified, the copier and this process (both on the rollback's critical path) come first, and the
#: workers take the rest of the cores.
REPAIR_WORKER_NICE = 5


def _repair_worker_start(may_write: Any) -> None:
    global _MAY_WRITE
    _MAY_WRITE = may_write
    with contextlib.suppress(OSError, AttributeError):
        os.nice(REPAIR_WORKER_NICE)


def _repair_in_worker(url: str, version_id: str) -> dict[str, Any]:
    """Assess a version in a repair worker and, once the rollback may write, write its repaired
    artifacts right here (the texts then need not travel to the parent). Before that, the verdict
    carries the texts and the parent writes them after the backup."""
    store = store_for(url)
    verdict = _assess(store, version_id)
    verdict["version_id"] = version_id
    if verdict["action"] == "repair" and _MAY_WRITE is not None and _MAY_WRITE.is_set():
        with store.engine.begin() as conn:
            _write_repair(conn, version_id, verdict)
        del verdict["texts"]
        verdict["written"] = True
    return verdict


def _write_repair(conn: Connection, version_id: str, verdict: dict[str, Any]) -> None:
    """The repaired artifacts and, since they were made from these rows, the certified digest pair."""
    _replace_artifacts(conn, version_id, verdict["texts"])
    digests.record(conn, version_id, rows=verdict["rows_digest"], artifacts=verdict["artifacts_digest"])


def _rows_health(
    store: PlanStore,
    version_id: str,
    recorded: str | None = None,
    artifacts_recorded: str | None = None,
    stored: dict[str, str] | None = None,
) -> tuple[bool, str | None, dict[str, str] | None, str | None]:
    """(healthy, why not — None when there are no rows at all, the rows' artifact texts, the digest of
    the rows read). Rows with a recorded digest are decoded straight to text. When those texts, over the ``stored`` ones, hash to the version's certified
    ``artifacts_recorded`` digest, they are the very artifacts certified equal to the rows, so the rows
    still hold that content: their own digest is not needed. Otherwise the rows are read again: rows
    that still hash to ``recorded`` are as the planner made them; only rows without a digest, or that
    changed, are checked against the plan identities (as dicts)."""
    if not store.has_rows(version_id):
        return False, None, None, None
    try:
        if recorded is not None and artifacts_recorded is not None:
            quick = store.read_rows_as_text(version_id)
            texts = _texts_if_whole(quick) if quick is not None else None
            if (
                texts is not None
                and digests.artifacts_digest({**(stored or {}), **texts}) == artifacts_recorded
            ):
                return True, None, texts, recorded
        content, rows_digest = store.read_rows_and_digest(version_id, fragments=recorded is not None)
        if content is not None and rows_digest != recorded and recorded is not None:
            content, rows_digest = store.read_rows_and_digest(version_id)
        if content is None:
            return False, None, None, None
    except Exception as exc:  # noqa: BLE001 - undecodable rows are unhealthy, not fatal
        return False, f"rows do not decode: {_short(exc)}", None, None
    missing = [n for n in CORE_ARTIFACTS if n not in content.documents]
    if missing:
        return False, f"rows lack {', '.join(missing)}", None, None
    problems = check.identity_problems(content) if rows_digest != recorded else []
    if problems:
        return False, f"rows break {problems[0][0]}: {_short(problems[0][1])}", None, None
    try:  # decoded rows have the declared shapes already; only the text is made here
        return True, None, codec_artifacts.encode(content, validated=True), rows_digest
    except (ValueError, TypeError) as exc:
        return False, f"rows do not encode: {_short(exc)}", None, None


def _texts_if_whole(content: Any) -> dict[str, str] | None:
    """The artifact texts of decoded rows holding every core document, else None."""
    if any(n not in content.documents for n in CORE_ARTIFACTS):
        return None
    try:
        return codec_artifacts.encode(content, validated=True)
    except (ValueError, TypeError):
        return None


def _artifacts_problem(version_id: str, stored: dict[str, str]) -> str | None:
    """Why the stored artifacts cannot stand on their own, or None when they are whole and sound."""
    missing = [n for n in CORE_ARTIFACTS if n not in stored]
    if missing:
        return f"artifacts lack {', '.join(missing)}"
    try:
        content = codec_artifacts.decode(version_id, stored)
    except Exception as exc:  # noqa: BLE001
        return f"artifacts do not parse: {_short(exc)}"
    problems = check.identity_problems(content)
    if problems:
        return f"artifacts break {problems[0][0]}: {_short(problems[0][1])}"
    return None


def _short(exc: Any, limit: int = 160) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _repair_state(state: _State) -> dict[str, Any]:
    return state.data.setdefault(
        "repair", {"done": [], "proven": [], "repaired": [], "kept": {}, "needs_restore": {}}
    )


def _repair_todo(store: PlanStore, state: _State) -> list[str]:
    """The ready versions the repair phase has not been through yet (all of them on a first run)."""
    done = set(_repair_state(state)["done"])
    return [vid for vid in _ready_versions(store) if vid not in done]


def _verdict_size(verdict: dict[str, Any]) -> int:
    return sum(len(text) for text in verdict.get("texts", {}).values())


def _repair(store: PlanStore, state: _State, step: Progress, assessments: Iterable[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """Make every version readable from artifacts. ``assessments`` are the verdicts of
    :func:`_repair_todo`'s versions in order (made in worker processes: reading and decoding rows is
    the expensive part). A repair is written in its own transaction — by the worker that made it once
    the backup is recorded, else here — and every version is recorded in the state file in order, so a
    resumed run continues after the last one recorded (a version written but not yet recorded is then
    found whole and left alone)."""
    progress = _repair_state(state)
    versions = _ready_versions(store)
    already = len(progress["done"])
    written = 0

    def late() -> Iterator[dict[str, Any]]:
        # a job still running when intake was paused may have finished a version meanwhile
        for vid in _repair_todo(store, state):
            yield {**_assess(store, vid), "version_id": vid}

    with store.engine.connect() as conn:
        for i, verdict in enumerate(itertools.chain(assessments, late())):
            vid = verdict["version_id"]
            step(
                f"repair {vid}", int(100 * (3 + (already + i) / max(len(versions), 1)) / len(ROLLBACK_PHASES))
            )
            if verdict["action"] == "repair":
                if not verdict.get("written"):  # assessed before the backup was recorded
                    with conn.begin():
                        _write_repair(conn, vid, verdict)
                progress["repaired"].append(vid)
                written += 1
                _crash_point(f"repair:{written}")
            elif verdict["action"] == "ok" and verdict.get("rows_digest"):
                with conn.begin():  # rows and artifacts were found equal: remember it
                    store.certify(conn, vid, verdict["rows_digest"])
            elif verdict["action"] == "keep":
                progress["kept"][vid] = verdict["why"]
            elif verdict["action"] == "needs_restore":
                progress["needs_restore"][vid] = verdict["why"]
            if verdict["action"] != "needs_restore":
                progress["proven"].append(vid)  # its artifacts were just read and found sound
            progress["done"].append(vid)
            state.save()
    return {
        "checked": len(progress["done"]),
        "repaired": progress["repaired"],
        "kept": progress["kept"],
        "needs_restore": progress["needs_restore"],
        "proven": progress["proven"],
    }


def _replace_artifacts(conn: Connection, version_id: str, texts: dict[str, str]) -> None:
    conn.execute(
        plan_artifacts.delete().where(
            plan_artifacts.c.version_id == version_id, plan_artifacts.c.name.in_(list(texts))
        )
    )
    ts = now_ms()
    conn.execute(
        plan_artifacts.insert(),
        [{"version_id": version_id, "name": n, "json_text": t, "created_at": ts} for n, t in texts.items()],
    )


def _default_cutover(engine: Engine) -> int | None:
    """The cut-over: when the first version was written to the PlanRepository (db or both mode)."""
    with engine.connect() as conn:
        return conn.execute(
            select(func.min(plan_versions.c.created_at)).where(
                plan_versions.c.storage_mode.in_(["db", "both"])
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


def _verify(store: PlanStore, state: _State, restore_needed: set[str], proven: set[str]) -> dict[str, Any]:
    """Plan one version in files mode and read every version back from artifacts (runbook 4.6).

    Versions the repair phase proved (their artifacts equal their healthy rows' canonical texts, or were
    decoded and checked) are checked for their core artifacts only; every other version is decoded."""
    from app.service import PlanRequest, run_plan

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
    versions = _ready_versions(store)
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
            failures.append(f"{version_id}: {_short(exc)}")
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
    state = _State(path, "rollforward", dry_run)
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
    phase = _runner(state, report, ROLLFORWARD_PHASES, step, prefix="forward:")

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
    result = check.check_database(engine, jobs=jobs)
    step("check", int(100 * 3 / len(ROLLFORWARD_PHASES)))
    return {"ok": result.ok, "problems": len(result.problems), "text": result.as_text()}
