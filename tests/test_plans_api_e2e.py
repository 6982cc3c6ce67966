"""The legacy (files mode) route through the HTTP API, as the rollback runbook's verification runs it.

The runbook (4.6) runs ``PYTHONPATH=. SCPLN_SKIP_SIMULATION_API=1 PLAN_STORAGE_MODE=files
.venv/bin/pytest tests/test_plans_api_e2e.py -k legacy``: every test here whose name contains
``legacy`` plans or reads a version held only as ``plan_artifacts`` — on a real SQLite file, with the
real application — and shows that nothing reaches the PlanRepository tables. The tests pass with or
without that environment.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import warnings

import pytest

from app import db
from app.ops.export import export_version
from app.planning.model import CORE_ARTIFACTS, PLAN_ARTIFACTS
from app.storage.plans import PlanStore

warnings.filterwarnings("ignore", message=".*httpx2.*")
from fastapi.testclient import TestClient  # noqa: E402

from app.api.app import create_app  # noqa: E402

ENV_CLEARED = ("SCPLN_API_TOKENS", "JOBS_ENABLED", "SCPLN_INPUT_DIR", "REGISTRY_BACKEND")


@pytest.fixture
def legacy_hub(tmp_path, monkeypatch):
    """The hub on a fresh SQLite file; ``PLAN_STORAGE_MODE`` is left as the runbook sets it."""
    path = tmp_path / "scpln.db"
    monkeypatch.setenv("SCPLN_DB", str(path))
    for name in ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    db.init_db()
    with TestClient(create_app()) as client:
        yield client, path
    db.dispose_engines()


def _plan_files(client: TestClient, version_id: str | None = None) -> dict:
    response = client.post(
        "/plans/integrated/run?storage=files", json={"version_id": version_id} if version_id else None
    )
    assert response.status_code == 201, response.text
    return response.json()


def _sql(path, query: str, *params) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(query, params).fetchall()


def test_legacy_run_with_storage_files_writes_artifacts_and_no_plan_series(legacy_hub):
    client, path = legacy_hub
    response = client.post("/plans/integrated/run?storage=files")  # the runbook's curl: no body at all
    assert response.status_code == 201, response.text
    created = response.json()
    vid = created["version_id"]
    assert created["storage"]["mode"] == "files" and created["storage"]["series_rows"] == 0
    names = [
        n for (n,) in _sql(path, "SELECT name FROM plan_artifacts WHERE version_id = ? ORDER BY name", vid)
    ]
    assert names == sorted(PLAN_ARTIFACTS)
    assert _sql(path, "SELECT COUNT(*) FROM plan_series WHERE version_id = ?", vid) == [(0,)]
    assert _sql(path, "SELECT COUNT(*) FROM plan_kpis WHERE version_id = ?", vid) == [(0,)]
    assert _sql(path, "SELECT status, storage_mode FROM plan_versions WHERE version_id = ?", vid) == [
        ("ready", "files")
    ]


def test_legacy_aggregate_detail_and_kpis_are_read_from_artifacts(legacy_hub):
    client, _ = legacy_hub
    vid = _plan_files(client, "legacy-read")["version_id"]
    documents = PlanStore().read_artifacts(vid).documents
    for table, name, key in (("aggregate", "aggregate.json", "rows"), ("detail", "sku_week.json", "rows"),
                             ("kpis", "plan_final.json", "kpis")):  # fmt: skip
        page = client.get(f"/plans/{vid}/{table}?limit=5000").json()
        assert page["source"] == "artifacts"
        assert page["rows"] == documents[name][key] and page["total"] == len(documents[name][key])
    sku = documents["sku_week.json"]["rows"][0]["sku"]
    filtered = client.get(f"/plans/{vid}/detail?sku={sku}&limit=3").json()
    assert filtered["rows"] == [r for r in documents["sku_week.json"]["rows"] if r["sku"] == sku][:3]
    plans = client.get("/plans").json()
    assert plans["items"][0]["version_id"] == vid and plans["items"][0]["storage_mode"] == "files"


def test_legacy_compare_csv_downloads(legacy_hub):
    client, _ = legacy_hub
    vid = _plan_files(client, "legacy-compare")["version_id"]
    response = client.get(f"/plans/{vid}/compare.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    recon = PlanStore().read_artifacts(vid).documents["reconciliation_log.json"]
    assert len(rows) == 3 * len(recon["rows"]) and list(rows[0]) == [
        "family", "period", "measure", "agg", "det", "delta", "rel", "ok",
    ]  # fmt: skip


def test_legacy_diff_csv_downloads_between_two_file_versions(legacy_hub):
    client, _ = legacy_hub
    base = _plan_files(client, "legacy-a")["version_id"]
    response = client.post(
        "/plans/integrated/run?storage=files", json={"version_id": "legacy-b", "prebuild_months": 1}
    )
    assert response.status_code == 201
    diff = client.get(f"/plans/{base}/diff.csv?against=legacy-b")
    assert diff.status_code == 200 and diff.text.splitlines()[0] == "level,key,measure,base,other,delta"
    rows = list(csv.DictReader(io.StringIO(diff.text)))
    assert rows and all(r["level"] in ("aggregate", "sku_week", "plan_final", "kpis") for r in rows)
    same = client.get(f"/plans/{base}/diff.csv?against={base}")
    assert same.text == "level,key,measure,base,other,delta\n"


def test_legacy_artifacts_list_and_get_return_what_the_pipeline_wrote(legacy_hub, tmp_path):
    client, _ = legacy_hub
    vid = _plan_files(client, "legacy-art")["version_id"]
    items = client.get(f"/plans/{vid}/artifacts").json()["items"]
    assert [i["name"] for i in items] == sorted(PLAN_ARTIFACTS)
    exported = {p.name: p.read_text(encoding="utf-8") for p in export_version(vid, tmp_path / "out")}
    for item in items:
        body = client.get(f"/plans/{vid}/artifacts/{item['name']}")
        assert body.status_code == 200
        assert body.text == exported[item["name"]] and len(body.content) == item["bytes"]


def test_legacy_runbook_reimported_artifacts_are_served(legacy_hub, tmp_path):
    """Runbook 4.3: artifacts exported to a folder and re-imported with ``db.upsert_plan_artifact``."""
    client, path = legacy_hub
    source = _plan_files(client, "legacy-src")["version_id"]
    folder = tmp_path / "restore"
    export_version(source, folder)
    for name in CORE_ARTIFACTS:  # the heredoc's loop, for a new id
        text = (folder / name).read_text(encoding="utf-8")
        if name.endswith(".json"):
            doc = json.loads(text)
            doc["version_id"] = "legacy-restored"
            text = json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"
        db.upsert_plan_artifact("legacy-restored", name, text)
    shown = client.get("/plans/legacy-restored").json()
    assert shown["status"] == "ready" and shown["read_from"] == "artifacts"
    original = client.get(f"/plans/{source}/aggregate?limit=5000").json()["rows"]
    assert client.get("/plans/legacy-restored/aggregate?limit=5000").json()["rows"] == original
    assert _sql(path, "SELECT COUNT(*) FROM plan_series WHERE version_id = 'legacy-restored'") == [(0,)]
