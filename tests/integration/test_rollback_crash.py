"""Crash safety of ``scpln rollback`` and ``scpln rollforward``: killed with SIGKILL in every phase (and in
the middle of the repair), then run again, each ends exactly where an uninterrupted run ends.

Every case is a real ``scpln`` process on its own copy of one prepared SQLite file. ``SCPLN_CRASH_AT``
kills the process after a phase did its work and before the state file records it — the widest
window. The end states compared: the artifacts of every version, the set of versions, the storage pin,
the intake pause, the maintenance flag, ``runs.plan_job_id``, and for the roll-forward the
PlanRepository rows and storage mode of every version; the verification version is compared by
role, not by its time-stamped id. The cases run two at a time.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from app import db
from app.ops.rollback import (
    CRASH_ENV,
    ROLLBACK_PHASES,
    ROLLFORWARD_PHASES,
    VERIFY_NOTE,
    content_checksums,
    rollback,
)
from app.storage import digests
from app.storage import settings as st
from app.storage.schema import runs
from tests.conftest import ROOT
from tests.integration.test_rollback import (
    ENV_CLEARED,
    copy_database,
    corrupt_rows,
    drop_artifacts,
    open_store,
    plan,
)

#: Where rollback is killed: every phase, and inside the repair after its first repaired version.
ROLLBACK_CRASHES = ["pause", "backup", "snapshot", "repair:1", "repair", "pin", "runs", "verify", "resume"]
ROLLFORWARD_CRASHES = [f"forward:{p}" for p in ROLLFORWARD_PHASES]
#: Kills at a seeded random moment instead of after a named phase.
RANDOM_KILLS = [f"random:{seed}" for seed in range(6)]
KILLED = -9


def _prepare(path: Path, build: Callable[[Any], None]) -> Path:
    saved = {name: os.environ.pop(name) for name in ENV_CLEARED if name in os.environ}
    try:
        store = open_store(path)
        build(store)
    finally:
        os.environ.update(saved)
    db.dispose_engines(f"sqlite:///{path}")
    return path


def _before_rollback(store) -> None:
    """Small: a files version, two to repair (both with artifacts deleted, db), one to keep (bad rows)."""
    plan(store, "c-files", "files")
    for vid, mode in (("c-missing", "both"), ("c-db", "db"), ("c-bad", "both")):
        plan(store, vid, mode)
    drop_artifacts(store, "c-missing")
    corrupt_rows(store, "c-bad")
    with store.engine.begin() as conn:  # stored before content digests were recorded: rows are read
        digests.clear(conn, ["c-bad"])
    created = store.get_version("c-missing").created_at
    with store.engine.begin() as conn:
        for run_id, job, ts in (("r-old", "j-old", created - 1000), ("r-new", "j-new", created + 1)):
            conn.execute(
                runs.insert().values(run_id=run_id, plan_job_id=job, status="succeeded", created_at=ts)
            )


def _before_rollforward(store) -> None:
    """A healthy database after a rollback, with a version planned in files mode during it."""
    plan(store, "f-files", "files")
    plan(store, "f-both", "both")
    plan(store, "f-db", "db")
    scratch = Path(store.engine.url.database).parent / "rollback"
    assert rollback(store.engine, state_file=scratch / "s.json", backup_dir=scratch, tmp_dir=scratch).ok
    plan(store, "f-during", None)


def _run(command: str, database: Path, work: Path, crash: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ENV_CLEARED}
    env.update(SCPLN_DB=str(database), COLUMNS="200")
    if crash:
        env[CRASH_ENV] = crash
    args = [sys.executable, "-m", "app.cli", command, "--state-file", str(work / f"{command}.json")]
    if command == "rollback":
        args += ["--backup-dir", str(work / "backup"), "--tmp-dir", str(work / "tmp")]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def end_state(database: Path) -> dict[str, Any]:
    """What a rollback or roll-forward leaves behind, with the verification version by role."""
    with sqlite3.connect(database) as conn:
        verify = [
            v for (v,) in conn.execute("SELECT version_id FROM plan_versions WHERE note = ?", (VERIFY_NOTE,))
        ]
        rename = {v: "<verification>" for v in verify}
        versions = {
            rename.get(v, v): (status, mode)
            for v, status, mode in conn.execute("SELECT version_id, status, storage_mode FROM plan_versions")
        }
        texts: dict[str, dict[str, str]] = {}
        for v, name, body in conn.execute("SELECT version_id, name, json_text FROM plan_artifacts"):
            if v in rename:  # its documents carry its own id and time stamps; their names are compared
                body = "<verification document>"
            texts.setdefault(rename.get(v, v), {})[name] = body
        rows = {
            rename.get(v, v): n
            for v, n in conn.execute("SELECT version_id, COUNT(*) FROM plan_series GROUP BY 1")
        }
        settings = dict(conn.execute("SELECT key, value FROM app_settings WHERE key IN (?, ?, ?)",
                                     (st.PIN, st.PAUSED, st.MAINTENANCE)))  # fmt: skip
        jobs = dict(conn.execute("SELECT run_id, plan_job_id FROM runs"))
    return {"verification_versions": len(verify), "versions": versions, "artifacts": texts, "rows": rows,
            "settings": settings, "runs": jobs}  # fmt: skip


def kill_delay(seed: int) -> float:
    """Seconds from the start of the process to its kill: from start-up to past the end of a run."""
    return random.Random(seed).uniform(0.2, 0.7)


def _killed_at_random(command: str, database: Path, work: Path, seed: int) -> subprocess.CompletedProcess:
    """The command killed with SIGKILL after a seeded random delay: anywhere, a phase or a write."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_CLEARED}
    env.update(SCPLN_DB=str(database), COLUMNS="200")
    args = [sys.executable, "-m", "app.cli", command, "--state-file", str(work / f"{command}.json")]
    if command == "rollback":
        args += ["--backup-dir", str(work / "backup"), "--tmp-dir", str(work / "tmp")]
    process = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(kill_delay(seed))
    process.send_signal(signal.SIGKILL)
    out, err = process.communicate(timeout=60)
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def _case(command: str, template: Path, base: Path, crash: str | None) -> dict[str, Any]:
    work = base / (crash or "uninterrupted").replace(":", "-")
    database = copy_database(template, work / "scpln.db")
    outcome: dict[str, Any] = {}
    if crash and crash.startswith("random:"):
        seed = int(crash.split(":")[1])
        outcome["delay"] = kill_delay(seed)
        killed = _killed_at_random(command, database, work, seed)
        outcome["killed"] = killed.returncode
        state_file = work / f"{command}.json"
        outcome["finished_first"] = state_file.exists() and json.loads(state_file.read_text()).get("finished")
        outcome["killed_stderr"] = killed.stderr[-2000:]
    elif crash:
        killed = _run(command, database, work, crash)
        outcome["killed"] = killed.returncode
        state = (
            json.loads((work / f"{command}.json").read_text()) if (work / f"{command}.json").exists() else {}
        )
        outcome["recorded"] = set(state.get("phases", {}))
        outcome["killed_stderr"] = killed.stderr[-2000:]
    final = _run(command, database, work)
    outcome.update(returncode=final.returncode, stdout=final.stdout, stderr=final.stderr[-2000:])
    outcome["state"] = end_state(database)
    db.dispose_engines(f"sqlite:///{database}")
    outcome["checksums"] = content_checksums(open_store(database).engine)
    db.dispose_engines(f"sqlite:///{database}")
    return outcome


def _all_cases(
    command: str, template: Path, base: Path, crashes: list[str]
) -> dict[str | None, dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {c: pool.submit(_case, command, template, base, c) for c in [None, *crashes]}
        return {c: f.result() for c, f in futures.items()}


@pytest.fixture(scope="module")
def rollback_outcomes(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    base = tmp_path_factory.mktemp("rollback-crash")
    template = _prepare(base / "template.db", _before_rollback)
    before = content_checksums(open_store(template).engine)
    db.dispose_engines(f"sqlite:///{template}")
    return before, _all_cases("rollback", template, base, ROLLBACK_CRASHES + RANDOM_KILLS)


@pytest.fixture(scope="module")
def rollforward_outcomes(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    base = tmp_path_factory.mktemp("rollforward-crash")
    template = _prepare(base / "template.db", _before_rollforward)
    before = content_checksums(open_store(template).engine)
    db.dispose_engines(f"sqlite:///{template}")
    return before, _all_cases("rollforward", template, base, ROLLFORWARD_CRASHES + RANDOM_KILLS)


def _phases_before(crash: str, phases: tuple[str, ...]) -> set[str]:
    name = crash.removeprefix("forward:").split(":")[0]
    return set(phases[: phases.index(name)])


def test_an_uninterrupted_rollback_repairs_keeps_and_pins(rollback_outcomes):
    _, outcomes = rollback_outcomes
    baseline = outcomes[None]
    assert baseline["returncode"] == 0, baseline["stdout"] + baseline["stderr"]
    assert (
        "artifacts repaired: 2 (c-missing, c-db), of which 1 moved from their ready copy"
        in baseline["stdout"]
    )
    assert "artifacts kept (rows unhealthy): 1 (c-bad)" in baseline["stdout"]
    state = baseline["state"]
    assert state["settings"] == {st.PIN: "files"} and state["verification_versions"] == 1
    assert state["runs"] == {"r-old": "j-old", "r-new": None}


@pytest.mark.parametrize("crash", ROLLBACK_CRASHES)
def test_rollback_killed_then_run_again_ends_like_an_uninterrupted_rollback(rollback_outcomes, crash):
    before, outcomes = rollback_outcomes
    outcome = outcomes[crash]

    assert outcome["killed"] == KILLED, outcome["killed_stderr"]
    assert outcome["recorded"] == _phases_before(crash, ROLLBACK_PHASES)
    assert outcome["returncode"] == 0, outcome["stdout"] + outcome["stderr"]
    assert "already done in an earlier run: " in outcome["stdout"] or crash == "pause"
    assert outcome["state"] == outcomes[None]["state"]
    assert {v: outcome["checksums"][v] for v in before} == before


@pytest.mark.parametrize("command", ["rollback", "rollforward"])
@pytest.mark.parametrize("crash", RANDOM_KILLS)
def test_killed_at_a_random_moment_then_run_again_ends_like_an_uninterrupted_run(
    rollback_outcomes, rollforward_outcomes, command, crash
):
    before, outcomes = rollback_outcomes if command == "rollback" else rollforward_outcomes
    outcome = outcomes[crash]
    assert outcome["returncode"] == 0, outcome["stdout"] + outcome["stderr"]
    expected = dict(outcomes[None]["state"])
    if outcome["finished_first"] or outcome["killed"] == 0:
        # the first run had finished when the kill came: the second is a new run of its own, which
        # plans its own verification version (or finds the first one's, started the same second)
        skip = ("versions", "artifacts", "rows", "verification_versions")
        if command == "rollback":
            assert outcome["state"]["verification_versions"] in (1, 2)
        state = {k: v for k, v in outcome["state"].items() if k not in skip}
        expected = {k: v for k, v in expected.items() if k not in skip}
        assert state == expected, f"killed after {outcome['delay']:.2f} s, once finished"
    else:
        assert outcome["killed"] == KILLED
        assert outcome["state"] == expected, f"killed after {outcome['delay']:.2f} s"
    assert {v: outcome["checksums"][v] for v in before} == before


def test_an_uninterrupted_rollforward_backfills_and_unpins(rollforward_outcomes):
    _, outcomes = rollforward_outcomes
    baseline = outcomes[None]
    assert baseline["returncode"] == 0, baseline["stdout"] + baseline["stderr"]
    assert "versions backfilled: 3, db check problems: 0" in baseline["stdout"]
    state = baseline["state"]
    assert state["settings"] == {} and state["versions"]["f-during"] == ("ready", "both")
    assert set(state["rows"]) == {"f-files", "f-both", "f-db", "f-during", "<verification>"}


@pytest.mark.parametrize("crash", ROLLFORWARD_CRASHES)
def test_rollforward_killed_then_run_again_ends_like_an_uninterrupted_rollforward(
    rollforward_outcomes, crash
):
    before, outcomes = rollforward_outcomes
    outcome = outcomes[crash]

    assert outcome["killed"] == KILLED, outcome["killed_stderr"]
    assert outcome["recorded"] == _phases_before(crash, ROLLFORWARD_PHASES)
    assert outcome["returncode"] == 0, outcome["stdout"] + outcome["stderr"]
    assert outcome["state"] == outcomes[None]["state"]
    assert {v: outcome["checksums"][v] for v in before} == before


def test_some_random_kills_land_in_the_middle_of_a_run(rollback_outcomes, rollforward_outcomes):
    """Else the random cases would only ever test a second run after a finished one."""
    for _, outcomes in (rollback_outcomes, rollforward_outcomes):
        mid_run = [
            c for c in RANDOM_KILLS if outcomes[c]["killed"] == KILLED and not outcomes[c]["finished_first"]
        ]
        assert mid_run, {c: (outcomes[c]["killed"], outcomes[c]["finished_first"]) for c in RANDOM_KILLS}
