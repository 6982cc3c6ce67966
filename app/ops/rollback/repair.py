"""The rollback's repair: make every ready version readable from ``plan_artifacts``.

Owns the verdict on one version and the writing of repaired artifacts:

- ``ok``: its artifacts are whole as certified (the artifacts generation has not changed since their
  digest was certified, or they still hash to it), or equal what its healthy rows hold, or it has no
  rows and its artifacts are sound;
- ``repair``: its artifacts are missing or differ, and the text to write comes from — in this order —
  the version's **ready copy**, when it hashes to the certified artifacts digest and the rows were not
  written since they were certified with it (the copy is then the very text of the rows' content: it is
  moved, nothing is decoded); else the rows, decoded, checked and encoded (the copy is kept as well, for
  a version that had none);
- ``keep``: its rows are unhealthy, its artifacts whole and sound;
- ``needs_restore``: neither encoding is healthy.

Versions are judged in worker processes (``app.ops.parallel``); a repair is written through the plan
store (:meth:`PlanStore.replace_artifacts`), in its own transaction, with the certified digest pair of
what was written. Nothing here writes SQL to plan content, deletes a version, its rows, overrides or events.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.ops import check
from app.ops.parallel import POOL_MIN_VERSIONS, default_jobs, store_for
from app.ops.rollback.runner import Progress, State, crash_point
from app.planning.model import CORE_ARTIFACTS, PLAN_ARTIFACTS
from app.storage import codec_artifacts, digests
from app.storage.plans import PlanStore
from app.storage.schema import plan_versions

#: How much a repair worker process lowers its CPU priority: while the backup is being copied and
#: verified, the copier and the command's own process (both on the rollback's critical path) come first,
#: and the workers take the rest of the cores.
REPAIR_WORKER_NICE = 5

ACTION_TEXT = {
    "ok": "artifacts already whole",
    "repair": "repair artifacts",
    "keep": "keep artifacts (rows unhealthy)",
    "needs_restore": "NEEDS RESTORE from backup",
}

#: In a repair worker process: set once the rollback may write anything (its backup is recorded).
_MAY_WRITE: Any = None
#: In a repair worker process: set once the rollback may add artifacts to a version that has none (the
#: backup's snapshot is open, so the backup holds the database as it was before any of them).
_MAY_ADD: Any = None


def ready_versions(store: PlanStore) -> list[str]:
    with store.engine.connect() as conn:
        return list(
            conn.execute(
                select(plan_versions.c.version_id)
                .where(plan_versions.c.status == "ready")
                .order_by(plan_versions.c.created_at, plan_versions.c.version_id)
            ).scalars()
        )


def assess(store: PlanStore, version_id: str) -> dict[str, Any]:
    """What the repair phase does with one version, and why (see the module docstring). A ``repair``
    verdict carries the ``texts`` to write, the ``rows_digest`` and ``artifacts_digest`` to certify
    them with, ``source`` (``ready copy`` or ``rows``), ``keep_copy`` and ``adds_only`` (the version has
    no artifacts yet, so writing them replaces nothing); ``rows_digest`` is also set
    on an ``ok`` verdict when healthy rows were read and found equal to the artifacts."""
    certified = store.certification(version_id)
    names = store.artifact_names(version_id)
    whole = all(n in names for n in CORE_ARTIFACTS)
    if whole and certified.artifacts_trusted:
        # nothing was written to the artifacts since their digest was certified: nothing to read
        return {"action": "ok", "why": "artifacts unchanged since certified"}
    with store.engine.connect() as conn:  # as UTF-8 bytes: hashed as they are, decoded only if needed
        blobs = digests.stored_artifact_bytes(conn, version_id) if names else {}
    if whole and certified.artifacts_digest and digests.artifacts_digest(blobs) == certified.artifacts_digest:
        return {"action": "ok", "why": "artifacts match their certified digest"}
    copied = _from_ready_copy(store, version_id, certified, blobs)
    if copied is not None:
        return copied
    stored = {name: body.decode("utf-8") for name, body in blobs.items()}
    rows_ok, rows_why, expected, rows_digest = _rows_health(store, version_id, certified)
    if rows_ok:
        # The rows' canonical texts against the stored texts: equal texts are equal documents, so a
        # whole version is judged without decoding its artifacts.
        differ = sorted(n for n, t in expected.items() if stored.get(n) != t)
        if differ:
            return {
                "action": "repair",
                "why": f"artifacts missing or different: {', '.join(differ)}",
                "source": "rows",
                "texts": expected,
                "rows_digest": rows_digest,
                # what the version's artifacts hash to once these texts are written
                "artifacts_digest": digests.artifacts_digest({**stored, **expected}),
                "keep_copy": not store.has_ready_copy(version_id),
                "adds_only": not stored,
            }
        return {"action": "ok", "why": "artifacts equal the rows", "rows_digest": rows_digest}
    artifacts_why = _artifacts_problem(version_id, stored)
    if artifacts_why is None:
        if rows_why is None:
            return {"action": "ok", "why": "artifacts only (files mode)"}
        return {"action": "keep", "why": rows_why}
    return {"action": "needs_restore", "why": f"{rows_why or 'no PlanRepository rows'}; {artifacts_why}"}


def _from_ready_copy(
    store: PlanStore, version_id: str, certified: digests.Certification, blobs: dict[str, bytes]
) -> dict[str, Any] | None:
    """The ``repair`` verdict moving the version's ready copy, or None when there is no copy to trust:
    none stored, rows written since they were certified or since the copy was made from them, texts
    that do not hash to the copy's digest or to the version's certified artifacts digest, or a core
    artifact missing."""
    if not certified.rows_trusted:
        return None
    try:
        copy = store.ready_copy(version_id)
    except ValueError:
        return None
    if copy is None or copy.rows_generation != certified.rows_generation:
        return None
    if certified.artifacts_digest is not None and copy.artifacts_digest != certified.artifacts_digest:
        return None
    texts = copy.texts
    if (
        not all(n in texts for n in CORE_ARTIFACTS)
        or digests.artifacts_digest(texts) != copy.artifacts_digest
    ):
        return None
    differ = sorted(n for n, t in texts.items() if blobs.get(n) != t)
    # what the artifacts hash to once written: the copy's digest, unless a stored artifact stays beside it
    beside = [n for n in blobs if n in PLAN_ARTIFACTS and n not in texts]
    return {
        "action": "repair",
        "why": f"artifacts missing or different: {', '.join(differ)}",
        "source": "ready copy",
        "texts": texts,
        "rows_digest": certified.rows_digest,
        "artifacts_digest": digests.artifacts_digest({**blobs, **texts}) if beside else copy.artifacts_digest,
        "keep_copy": False,
        "adds_only": not blobs,
    }


def _rows_health(
    store: PlanStore, version_id: str, certified: digests.Certification
) -> tuple[bool, str | None, dict[str, str] | None, str | None]:
    """(healthy, why not — None when there are no rows at all, the rows' artifact texts, the digest of
    the rows). Rows certified at an unchanged generation, or that still hash to their certified digest,
    are as the planner made them and are decoded straight to text; other rows are read again as dicts
    and checked against the plan identities."""
    if not store.has_rows(version_id):
        return False, None, None, None
    recorded = certified.rows_digest
    try:
        content, rows_digest = store.read_rows_and_digest(version_id, fragments=recorded is not None)
        if certified.rows_trusted:
            rows_digest = recorded  # nothing was written to them since: the digest read is the same
        if content is not None and recorded is not None and rows_digest != recorded:
            content, rows_digest = store.read_rows_and_digest(version_id)
        if content is None:
            return False, None, None, None
    except Exception as exc:  # noqa: BLE001 - undecodable rows are unhealthy, not fatal
        return False, f"rows do not decode: {short(exc)}", None, None
    missing = [n for n in CORE_ARTIFACTS if n not in content.documents]
    if missing:
        return False, f"rows lack {', '.join(missing)}", None, None
    problems = check.identity_problems(content) if rows_digest != recorded else []
    if problems:
        return False, f"rows break {problems[0][0]}: {short(problems[0][1])}", None, None
    try:  # decoded rows have the declared shapes already; only the text is made here
        return True, None, codec_artifacts.encode(content, validated=True), rows_digest
    except (ValueError, TypeError) as exc:
        return False, f"rows do not encode: {short(exc)}", None, None


def _artifacts_problem(version_id: str, stored: dict[str, str]) -> str | None:
    """Why the stored artifacts cannot stand on their own, or None when they are whole and sound."""
    missing = [n for n in CORE_ARTIFACTS if n not in stored]
    if missing:
        return f"artifacts lack {', '.join(missing)}"
    try:
        content = codec_artifacts.decode(version_id, stored)
    except Exception as exc:  # noqa: BLE001
        return f"artifacts do not parse: {short(exc)}"
    problems = check.identity_problems(content)
    if problems:
        return f"artifacts break {problems[0][0]}: {short(problems[0][1])}"
    return None


def short(exc: Any, limit: int = 160) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: How often a repair whose write found the database locked is tried again (each try waits out the
#: 30 s busy timeout first): SQLite's lock is not taken in turn, and the repair workers writing one
#: large version after another can keep one writer waiting beyond the timeout on a busy machine.
LOCKED_TRIES = 5


def write_repair(store: PlanStore, version_id: str, verdict: dict[str, Any]) -> None:
    """The repaired artifacts, with the certified digest pair of what was written (one transaction,
    so a try that failed left nothing and is simply made again)."""
    for attempt in range(LOCKED_TRIES):
        try:
            store.replace_artifacts(
                version_id,
                verdict["texts"],
                rows_digest=verdict["rows_digest"],
                artifacts_digest=verdict["artifacts_digest"],
                keep_ready_copy=verdict.get("keep_copy", False),
            )
            return
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == LOCKED_TRIES - 1:
                raise


def assess_in_worker(url: str, version_id: str) -> dict[str, Any]:
    """:func:`assess` in a worker process of :func:`app.ops.parallel.map_versions`."""
    verdict = assess(store_for(url), version_id)
    verdict["version_id"] = version_id
    return verdict


def repair_jobs(jobs: int | None, versions: int) -> int | None:
    """The repair's worker processes: ``jobs`` when given, else one more than the default (one per
    core, at most four): a worker that commits a repair waits on the disk (its WAL write and checkpoint)
    and the extra one keeps the cores busy meanwhile. None (the map decides) for a few versions."""
    if jobs is not None or versions < POOL_MIN_VERSIONS:
        return jobs
    return default_jobs() + 1


def repair_worker_start(may_write: Any, may_add: Any) -> None:
    global _MAY_WRITE, _MAY_ADD
    _MAY_WRITE, _MAY_ADD = may_write, may_add
    with contextlib.suppress(OSError, AttributeError):
        os.nice(REPAIR_WORKER_NICE)


def may_write_now(verdict: dict[str, Any]) -> bool:
    """Whether a repair worker may write this ``repair`` verdict now: anything once the backup is
    recorded; artifacts of a version that has none from the moment the backup's snapshot is open (the
    backup cannot see them, and they replace nothing, so a failed backup loses nothing either)."""
    if _MAY_WRITE is not None and _MAY_WRITE.is_set():
        return True
    return bool(verdict.get("adds_only")) and _MAY_ADD is not None and _MAY_ADD.is_set()


def repair_in_worker(url: str, version_id: str) -> dict[str, Any]:
    """Assess a version in a repair worker and, when it may (:func:`may_write_now`), write its repaired
    artifacts right here (the texts then need not travel to the parent). Otherwise the verdict carries
    the texts and the parent writes them after the backup."""
    store = store_for(url)
    verdict = assess(store, version_id)
    verdict["version_id"] = version_id
    if verdict["action"] == "repair" and may_write_now(verdict):
        write_repair(store, version_id, verdict)
        del verdict["texts"]
        verdict["written"] = True
    return verdict


def verdict_size(verdict: dict[str, Any]) -> int:
    return sum(len(text) for text in verdict.get("texts", {}).values())


def repair_state(state: State) -> dict[str, Any]:
    return state.data.setdefault(
        "repair",
        {"done": [], "proven": [], "repaired": [], "from_copy": [], "kept": {}, "needs_restore": {}},
    )


def repair_todo(store: PlanStore, state: State) -> list[str]:
    """The ready versions the repair phase has not been through yet (all of them on a first run)."""
    done = set(repair_state(state)["done"])
    return [vid for vid in ready_versions(store) if vid not in done]


def repair(
    store: PlanStore,
    state: State,
    step: Progress,
    assessments: Iterable[dict[str, Any]],
    share: tuple[int, int],
) -> dict[str, Any]:
    """Make every version readable from artifacts. ``assessments`` are the verdicts of
    :func:`repair_todo`'s versions in order (made in worker processes). A repair is written in its own
    transaction — by the worker that made it once the backup is recorded, else here — and every version
    is recorded in the state file in order, so a resumed run continues after the last one recorded (a
    version written but not yet recorded is then found whole and left alone). ``share``: (index, count)
    of this phase among the command's, for the progress percentage."""
    progress = repair_state(state)
    progress.setdefault("from_copy", [])
    versions = ready_versions(store)
    already = len(progress["done"])
    written = 0

    def late() -> Iterator[dict[str, Any]]:
        # a job still running when intake was paused may have finished a version meanwhile
        for vid in repair_todo(store, state):
            yield {**assess(store, vid), "version_id": vid}

    for i, verdict in enumerate(itertools.chain(assessments, late())):
        vid = verdict["version_id"]
        step(f"repair {vid}", int(100 * (share[0] + (already + i) / max(len(versions), 1)) / share[1]))
        if verdict["action"] == "repair":
            if not verdict.get("written"):  # assessed before the backup was recorded
                write_repair(store, vid, verdict)
            progress["repaired"].append(vid)
            if verdict.get("source") == "ready copy":
                progress["from_copy"].append(vid)
            written += 1
            crash_point(f"repair:{written}")
        elif verdict["action"] == "ok" and verdict.get("rows_digest"):
            with store.engine.begin() as conn:  # rows and artifacts were found equal: remember it
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
        "from_copy": progress["from_copy"],
        "kept": progress["kept"],
        "needs_restore": progress["needs_restore"],
        "proven": progress["proven"],
    }
