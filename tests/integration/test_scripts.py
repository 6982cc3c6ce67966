"""The runbook's entry points ``scripts/plan_export.py`` and ``scripts/plan_backfill_repository.py``, run
as operators run them: real processes with a clean environment whose PATH starts with the virtualenv
(like ``source .venv/bin/activate``), without PYTHONPATH, and in the runbook's exact command forms.

The runbook's forms use paths relative to the repository root (``data/scpln.db``, ``tmp/restore``);
to keep the real checkout's data untouched they run in a stand-in root whose ``app`` and ``scripts``
are symlinks to this repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import db
from app.planning.model import CORE_ARTIFACTS, PLAN_ARTIFACTS, PlanContent
from app.planning.pipeline import plan_input_set
from app.storage import codec_artifacts
from app.storage.plans import PlanStore
from tests.conftest import ROOT, SAMPLE
from tests.runbook_commands import REIMPORT

VENV_BIN = Path(sys.executable).parent

#: Runbook 4.3: which of the latest versions have their core artifacts.
CHECK_ARTIFACTS = (
    "SELECT version_id, SUM(name='aggregate.json')>=1 AS has_agg, SUM(name='sku_week.json')>=1 AS has_det, "
    "SUM(name='plan_final.json')>=1 AS has_final FROM plan_artifacts GROUP BY version_id "
    "ORDER BY MAX(created_at) DESC LIMIT 5;"
)


def clean_env(**extra: str) -> dict[str, str]:
    """An activated virtualenv and nothing else: no PYTHONPATH, no settings from this process."""
    return {
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(VENV_BIN.parent),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        **extra,
    }


def run(command: list[str] | str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, shell=isinstance(command, str)
    )


def store_at(path: Path) -> PlanStore:
    url = f"sqlite:///{path}"
    db.init_db(url)
    return PlanStore(db.get_engine(url))


def plan_version(store: PlanStore, version_id: str, mode: str) -> PlanContent:
    content = plan_input_set(SAMPLE, version_id=version_id)
    store.write_version(content, mode=mode)
    return content


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A stand-in repository root: ``app`` and ``scripts`` link to this repository, ``data`` is its own."""
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("app", "scripts"):
        (root / name).symlink_to(ROOT / name)
    (root / "data").mkdir()
    yield root
    db.dispose_engines(f"sqlite:///{root / 'data' / 'scpln.db'}")


def test_export_script_runs_from_the_repository_root_without_pythonpath(tmp_path: Path) -> None:
    store = store_at(tmp_path / "hub.db")
    content = plan_version(store, "exp-1", "db")  # rows only: the PlanRepository is the source
    out = tmp_path / "restore" / "exp-1"

    res = run(
        ["python", "scripts/plan_export.py", "exp-1", "-o", str(out)],
        ROOT,
        clean_env(SCPLN_DB=str(tmp_path / "hub.db")),
    )

    assert res.returncode == 0, res.stderr
    expected = codec_artifacts.encode(content)
    assert sorted(p.name for p in out.iterdir()) == sorted(PLAN_ARTIFACTS)
    for name, text in expected.items():
        assert (out / name).read_bytes() == text.encode("utf-8"), name
    assert "exported 7 artifacts of exp-1" in res.stdout


def test_export_script_refuses_an_unknown_version_with_a_message(tmp_path: Path) -> None:
    store_at(tmp_path / "hub.db")

    res = run(
        ["python", "scripts/plan_export.py", "no-such-version", "-o", str(tmp_path / "out")],
        ROOT,
        clean_env(SCPLN_DB=str(tmp_path / "hub.db")),
    )

    assert res.returncode == 1
    assert "no-such-version" in res.stderr and "does not exist" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "out").exists()


def test_runbook_export_and_reimport_in_their_exact_form(checkout: Path) -> None:
    store = store_at(checkout / "data" / "scpln.db")
    content = plan_version(store, "rb-1", "db")
    env = clean_env()
    check = ["sqlite3", "data/scpln.db", CHECK_ARTIFACTS]
    assert run(check, checkout, env).stdout == ""  # written in db mode: no artifacts yet

    export = run(
        "PYTHONPATH=. SCPLN_DB=$(pwd)/data/scpln.db python scripts/plan_export.py rb-1 -o tmp/restore/rb-1",
        checkout,
        env,
    )
    assert export.returncode == 0, export.stderr
    restored = checkout / "tmp" / "restore" / "rb-1"
    assert set(CORE_ARTIFACTS) <= {p.name for p in restored.iterdir()}
    assert {p.name for p in restored.iterdir()} == set(PLAN_ARTIFACTS)

    reimport = run(REIMPORT.format(vid="rb-1"), checkout, env)
    assert reimport.returncode == 0, reimport.stderr

    assert run(check, checkout, env).stdout.strip() == "rb-1|1|1|1"
    expected = codec_artifacts.encode(content)
    for name in CORE_ARTIFACTS:
        assert store.artifact_text("rb-1", name) == expected[name]


def test_backfill_script_runs_as_an_executable_with_the_runbook_options(checkout: Path) -> None:
    database = checkout / "data" / "scpln.db"
    store = store_at(database)
    plans = {v: plan_version(store, v, "files") for v in ("bf-1", "bf-2")}
    env = clean_env(SCPLN_DB=str(database))

    dry = run(["scripts/plan_backfill_repository.py", "--dry-run"], checkout, env)
    assert dry.returncode == 0, dry.stderr
    assert "would backfill bf-1" in dry.stdout and "would backfill bf-2" in dry.stdout
    assert not store.has_rows("bf-1") and not (checkout / "tmp").exists()

    res = run(
        "scripts/plan_backfill_repository.py --force --state-file tmp/rollback_recover.json", checkout, env
    )

    assert res.returncode == 0, res.stderr
    assert "checked 2, backfilled 2" in res.stdout
    assert (checkout / "tmp" / "rollback_recover.json").is_file()
    for vid, content in plans.items():
        from_rows = store.read_rows(vid)
        assert from_rows is not None and from_rows.documents == content.documents


def test_backfill_script_rejects_a_bad_option_without_a_traceback(tmp_path: Path) -> None:
    store_at(tmp_path / "hub.db")

    res = run(
        ["python", "scripts/plan_backfill_repository.py", "--limit", "many"],
        ROOT,
        clean_env(SCPLN_DB=str(tmp_path / "hub.db")),
    )

    assert res.returncode == 2 and "--limit" in res.stderr and "Traceback" not in res.stderr
