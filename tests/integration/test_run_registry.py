"""The RunRegistry: the same contract on the memory and db backends, trimming, and the runbook's dump."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from app import db
from app.run_registry import REGISTRY
from tests.conftest import ROOT


@pytest.fixture(params=["memory", "db"])
def registry(request, tmp_path, monkeypatch):
    """REGISTRY on each backend, over a fresh SQLite database."""
    monkeypatch.setenv("SCPLN_DB", str(tmp_path / "scpln.db"))
    monkeypatch.setenv("REGISTRY_BACKEND", request.param)
    monkeypatch.delenv("RUNS_DB_MAX_ROWS", raising=False)
    REGISTRY.clear()
    yield REGISTRY
    monkeypatch.setenv("REGISTRY_BACKEND", "memory")
    REGISTRY.clear()
    db.dispose_engines()


def test_put_get_and_list_newest_first(registry):
    for i, created in enumerate((1000, 3000, 2000)):
        registry.put(
            {"run_id": f"r-{i}", "plan_version_id": f"v-{i}", "plan_job_id": f"j-{i}", "status": "succeeded",
             "created_at": created, "summary": {"kpis": {"fill_rate": 0.9 + i / 100}}}
        )  # fmt: skip
    assert [r["run_id"] for r in registry.list()] == ["r-1", "r-2", "r-0"]
    assert [r["run_id"] for r in registry.list(limit=2)] == ["r-1", "r-2"]
    assert [r["run_id"] for r in registry.list(limit=2, offset=2)] == ["r-0"]
    run = registry.get("r-2")
    assert run["summary"] == {"kpis": {"fill_rate": 0.92}}
    assert (run["plan_version_id"], run["plan_job_id"], run["created_at"]) == ("v-2", "j-2", 2000)
    assert registry.get("r-missing") is None
    assert json.loads(json.dumps(registry.list())) == registry.list()  # plain JSON-friendly dicts


def test_put_upserts_and_keeps_fields_it_is_not_given(registry):
    registry.put({"run_id": "r-x", "plan_version_id": "v-x", "plan_job_id": "j-x", "started_at": 5})
    first = registry.get("r-x")
    assert first["status"] == "running" and first["created_at"] is not None
    registry.put({"run_id": "r-x", "status": "succeeded", "finished_at": 9, "summary": {"seconds": 1.5}})
    run = registry.get("r-x")
    assert (run["status"], run["started_at"], run["finished_at"]) == ("succeeded", 5, 9)
    assert (run["plan_version_id"], run["plan_job_id"], run["created_at"]) == (
        "v-x",
        "j-x",
        first["created_at"],
    )
    assert run["summary"] == {"seconds": 1.5}
    assert registry.count() == 1


def test_a_record_with_unknown_fields_is_refused_and_nothing_is_stored(registry):
    with pytest.raises(ValueError, match="plan_versoin_id"):
        registry.put({"run_id": "r-typo", "plan_versoin_id": "v-1"})
    assert registry.get("r-typo") is None


def test_a_run_without_an_id_gets_one(registry):
    stored = registry.put({"plan_version_id": "v-1", "status": "succeeded"})
    assert stored["run_id"].startswith("r-")
    assert registry.get(stored["run_id"])["plan_version_id"] == "v-1"


def test_runs_db_max_rows_trims_the_oldest_after_each_put(registry, monkeypatch):
    monkeypatch.setenv("RUNS_DB_MAX_ROWS", "3")
    for i in range(5):
        registry.put({"run_id": f"r-{i}", "status": "succeeded", "created_at": 1000 + i})
        assert registry.count() == min(i + 1, 3)
    assert [r["run_id"] for r in registry.list()] == ["r-4", "r-3", "r-2"]


@pytest.mark.parametrize("value", ["0", "-3"])
def test_runs_db_max_rows_below_one_is_refused_with_its_name(registry, monkeypatch, value):
    with monkeypatch.context() as bad:
        bad.setenv("RUNS_DB_MAX_ROWS", value)  # 0 would delete every record, the new one too
        with pytest.raises(ValueError, match="runs_db_max_rows"):
            registry.put({"run_id": "r-x", "status": "succeeded"})
    assert registry.get("r-x") is None


def test_the_backend_follows_the_current_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("SCPLN_DB", str(tmp_path / "scpln.db"))
    monkeypatch.setenv("REGISTRY_BACKEND", "memory")
    REGISTRY.clear()
    REGISTRY.put({"run_id": "r-mem", "status": "succeeded"})
    monkeypatch.setenv("REGISTRY_BACKEND", "db")
    assert REGISTRY.get("r-mem") is None
    REGISTRY.put({"run_id": "r-db", "status": "succeeded"})
    monkeypatch.setenv("REGISTRY_BACKEND", "memory")
    assert [r["run_id"] for r in REGISTRY.list()] == ["r-mem"]
    REGISTRY.clear()
    db.dispose_engines()


def test_the_db_backend_works_on_both_databases(db_url, monkeypatch):
    monkeypatch.setenv("SCPLN_DB", db_url)
    monkeypatch.setenv("REGISTRY_BACKEND", "db")
    monkeypatch.setenv("RUNS_DB_MAX_ROWS", "2")
    for i in range(3):
        REGISTRY.put({"run_id": f"r-{i}", "plan_version_id": "v", "status": "succeeded", "created_at": i + 1})
    REGISTRY.put({"run_id": "r-2", "summary": {"kpis": {"fill_rate": 1}}})
    assert [r["run_id"] for r in REGISTRY.list()] == ["r-2", "r-1"]
    assert REGISTRY.get("r-2")["summary"] == {"kpis": {"fill_rate": 1}}


RUNBOOK_DUMP = """\
import json
from app.run_registry import REGISTRY
print(json.dumps(REGISTRY.list(), ensure_ascii=False))
"""


def runbook_python(tmp_path, **env: str) -> subprocess.CompletedProcess:
    """The runbook's ``PYTHONPATH=. SCPLN_SKIP_SIMULATION_API=1 python - <<'PY'`` from the repo root."""
    clean = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_BACKEND", "RUNS_DB_MAX_ROWS")}
    return subprocess.run(
        [sys.executable, "-"], input=RUNBOOK_DUMP, cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**clean, "PYTHONPATH": ".", "SCPLN_SKIP_SIMULATION_API": "1", **env},
    )  # fmt: skip


def test_the_runbook_dump_snippet_prints_every_run_as_json(tmp_path, monkeypatch):
    database = tmp_path / "scpln.db"
    monkeypatch.setenv("SCPLN_DB", str(database))
    monkeypatch.setenv("REGISTRY_BACKEND", "db")
    for i in range(3):
        REGISTRY.put({"run_id": f"r-{i}", "plan_version_id": f"v-{i}", "plan_job_id": f"j-{i}",
                      "status": "succeeded", "created_at": 100 + i, "summary": {"kpis": {"fill_rate": 1}}})  # fmt: skip
    db.dispose_engines()

    done = runbook_python(tmp_path, SCPLN_DB=str(database))
    assert done.returncode == 0, done.stderr
    dumped = json.loads(done.stdout)
    assert [r["run_id"] for r in dumped] == ["r-2", "r-1", "r-0"]
    assert dumped == REGISTRY.list()

    memory = runbook_python(tmp_path, SCPLN_DB=str(database), REGISTRY_BACKEND="memory")
    assert memory.returncode == 0, memory.stderr
    assert json.loads(memory.stdout) == []  # a fresh process: the memory backend starts empty
