"""The PSI routes (SPEC 5.2, 6) through HTTP: view, edit, lock, CSV, history, submit/approve, reconcile,
the error bodies, and the roles and actors when API tokens are in force."""

from __future__ import annotations

import csv
import io
import warnings

import pytest

from app import db
from app.services.plans import PlanRequest, run_plan
from tests.conftest import SAMPLE

warnings.filterwarnings("ignore", message=".*httpx2.*")
from fastapi.testclient import TestClient  # noqa: E402

from app.api.app import create_app  # noqa: E402

ENV_CLEARED = ("PLAN_STORAGE_MODE", "SCPLN_API_TOKENS", "JOBS_ENABLED", "SCPLN_INPUT_DIR", "REGISTRY_BACKEND")
TOKENS = {
    "viewer": "psi-view-1-aaaaaaaa",
    "planner": "psi-plan-2-bbbbbbbb",
    "approver": "psi-appr-3-cccccccc",
}
FAMILY_KEY = {"family": "BLEND", "period": "2026-01"}


@pytest.fixture
def client(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    monkeypatch.setenv("SCPLN_DB", url)
    for name in ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    db.init_db(url)
    run_plan(PlanRequest(input_dir=str(SAMPLE), version_id="v1"), storage="both")
    with TestClient(create_app()) as test_client:
        yield test_client
    db.dispose_engines(url)


def cells(client: TestClient) -> list[dict]:
    response = client.get("/plans/v1/psi", params={"level": "det", **FAMILY_KEY, "limit": 100})
    assert response.status_code == 200
    return response.json()["rows"]


def test_patch_apportions_an_aggregate_edit_and_get_shows_both_levels(client: TestClient) -> None:
    detail = cells(client)
    locked = detail[0]
    body = {"level": "det", "lock": [locked["key"]], "note": "keep the launch week"}
    assert client.patch("/plans/v1/psi", json=body).status_code == 200
    edit = {"level": "aggregate", "edits": [{"key": FAMILY_KEY, "field": "demand", "value": 1000}]}
    response = client.patch("/plans/v1/psi", json=edit)
    assert response.status_code == 200
    result = response.json()
    assert result["approval"] == "draft" and result["events"] == 1
    assert {c["source"] for c in result["changes"]} == {"apportion", "edit"}
    page = client.get("/plans/v1/psi", params={**FAMILY_KEY}).json()
    assert (
        page["total"] == 1 and page["rows"][0]["demand"] == 1000 and page["rows"][0]["detail_demand"] == 1000
    )
    after = cells(client)
    assert after[0]["locked"] and after[0]["demand"] == locked["demand"]
    assert all(c["aggregate_demand"] == 1000 for c in after)
    assert client.get("/plans/v1/psi", params={"level": "det", "locked": True}).json()["total"] == 1


def test_psi_csv_lists_every_cell_with_plain_numbers_and_flags(client: TestClient) -> None:
    key = cells(client)[1]["key"]
    client.patch(
        "/plans/v1/psi", json={"level": "det", "edits": [{"key": key, "field": "supply", "value": 3}]}
    )
    response = client.get("/plans/v1/psi.csv", params={"level": "det"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == client.get("/plans/v1/psi", params={"level": "det", "limit": 1}).json()["total"]
    edited = next(
        r
        for r in rows
        if r["sku"] == key["sku"] and r["week"] == key["week"] and r["period"] == key["period"]
    )
    assert (edited["supply"], edited["overridden"], edited["locked"]) == ("3", "supply", "false")


def test_submit_approve_and_the_history_through_http(client: TestClient) -> None:
    assert client.post("/plans/v1/psi/approve").status_code == 409
    response = client.post("/plans/v1/psi/submit", json={"note": "please review"})
    assert response.status_code == 200 and response.json()["approval"] == "pending"
    assert client.post("/plans/v1/psi/submit").json()["error"] == "PSI conflict"
    assert client.post("/plans/v1/psi/approve").json()["approval"] == "approved"
    state = client.get("/plans/v1/psi/state").json()
    assert state["approval"] == "approved" and state["events"] == 2 and state["mode"] == "both"
    history = client.get("/plans/v1/psi/events").json()["events"]
    assert [(e["seq"], e["type"], e["actor"], e["note"]) for e in history] == [
        (0, "submit", "local", "please review"),
        (1, "approve", "local", None),
    ]
    assert client.get("/plans/v1").json()["approval"] == "approved"


def test_reconcile_answers_201_with_the_child_version(client: TestClient) -> None:
    key = cells(client)[0]["key"]
    client.patch(
        "/plans/v1/psi", json={"level": "det", "edits": [{"key": key, "field": "demand", "value": 99}]}
    )
    response = client.post("/plans/v1/psi/reconcile", json={"note": "replan"})
    assert response.status_code == 201
    child = response.json()["version_id"]
    assert client.get(f"/plans/{child}").json()["parent_version_id"] == "v1"
    run = client.get(f"/runs/{response.json()['run_id']}").json()  # a plan execution, in the RunRegistry
    assert (run["status"], run["plan_version_id"], run["summary"]["trigger"]) == (
        "succeeded",
        child,
        "psi-reconcile",
    )
    assert run["summary"]["parent_version_id"] == "v1" and "fill_rate" in run["summary"]["kpis"]
    assert run["summary"]["timings"]["total_seconds"] > 0
    detail = client.get(f"/plans/{child}/detail", params={"sku": key["sku"], "week": key["week"]}).json()[
        "rows"
    ]
    assert [r["demand"] for r in detail if r["period"] == key["period"]] == [99]


def test_errors_are_json_with_the_right_status(client: TestClient) -> None:
    key = cells(client)[0]["key"]
    unknown = {"level": "det", "edits": [{"key": {**key, "sku": "NOPE"}, "field": "demand", "value": 1}]}
    response = client.patch("/plans/v1/psi", json=unknown)
    assert response.status_code == 422
    assert response.json()["detail"][0]["reason"] == "no such det cell in the plan"
    negative = {"level": "det", "edits": [{"key": key, "field": "demand", "value": -5}]}
    assert client.patch("/plans/v1/psi", json=negative).status_code == 422
    for huge in (1e17, 1e20, 10**30):  # beyond what a plan holds: refused, nothing stored
        response = client.patch("/plans/v1/psi", json={"level": "det", "edits": [{"key": key, "field": "demand", "value": huge}]})  # fmt: skip
        assert (
            response.status_code == 422
            and response.json()["detail"][0]["reason"] == "value must be at most 1e+09"
        )
    assert client.get("/plans/v1/psi/state").json()["events"] == 0
    assert (
        client.patch(
            "/plans/v1/psi", json={"level": "det", "edits": [{"key": key, "field": "demand", "value": "5"}]}
        ).status_code
        == 422
    )
    assert client.patch("/plans/v1/psi", json={"level": "det"}).status_code == 422
    assert client.get("/plans/v1/psi", params={"level": "week"}).status_code == 422
    client.patch("/plans/v1/psi", json={"level": "det", "lock": [key]})
    locked = client.patch(
        "/plans/v1/psi", json={"level": "det", "edits": [{"key": key, "field": "demand", "value": 1}]}
    )
    assert locked.status_code == 409 and locked.json()["error"] == "PSI conflict"
    missing = client.get("/plans/nope/psi")
    assert missing.status_code == 404 and set(missing.json()) == {"error", "detail"}


def test_with_tokens_approve_needs_the_approver_and_events_name_the_caller(
    client: TestClient, monkeypatch
) -> None:
    monkeypatch.setenv("SCPLN_API_TOKENS", ",".join(f"{t}:{r}" for r, t in TOKENS.items()))

    def auth(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[role]}"}

    assert client.get("/plans/v1/psi").status_code == 401
    assert client.get("/plans/v1/psi", headers=auth("viewer")).status_code == 200
    assert client.post("/plans/v1/psi/submit", headers=auth("viewer")).status_code == 403
    assert client.post("/plans/v1/psi/submit", headers=auth("planner")).status_code == 200
    assert client.post("/plans/v1/psi/approve", headers=auth("planner")).status_code == 403
    assert client.post("/plans/v1/psi/approve", headers=auth("approver")).status_code == 200
    history = client.get("/plans/v1/psi/events", headers=auth("viewer")).json()["events"]
    assert [e["actor"] for e in history] == ["token:planner", "token:approver"]


def test_an_approved_plan_is_frozen_and_reopening_makes_a_draft_child_with_its_edits(
    client: TestClient,
) -> None:
    key = cells(client)[0]["key"]
    edit = {"level": "det", "edits": [{"key": key, "field": "demand", "value": 77}], "lock": [key]}
    assert client.patch("/plans/v1/psi", json=edit).status_code == 200
    client.post("/plans/v1/psi/submit")
    client.post("/plans/v1/psi/approve")
    before = client.get("/plans/v1/psi/events").json()["events"]

    refused = client.patch("/plans/v1/psi", json={"level": "det", "edits": [{"key": key, "field": "supply", "value": 1}]})  # fmt: skip
    assert refused.status_code == 409 and "approved" in refused.json()["detail"]["message"]
    assert "reopen" in refused.json()["detail"]["message"]
    assert client.post("/plans/v1/psi/submit").status_code == 409

    reopened = client.post("/plans/v1/psi/reopen", json={"note": "one more change"})
    assert reopened.status_code == 201, reopened.text
    child = reopened.json()["version_id"]
    assert reopened.json()["parent_version_id"] == "v1" and child != "v1"
    info = client.get(f"/plans/{child}").json()
    assert (info["approval"], info["parent_version_id"], info["status"]) == ("draft", "v1", "ready")
    state, parent = client.get(f"/plans/{child}/psi/state").json(), client.get("/plans/v1/psi/state").json()
    assert state["approval"] == "draft" and state["overrides"] == parent["overrides"]
    assert state["edited_cells"] >= 1 and state["locked_cells"] == 1
    history = client.get(f"/plans/{child}/psi/events").json()["events"]
    assert [(e["type"], e["note"], e["parent_version_id"]) for e in history] == [
        ("reopen", "one more change", "v1")
    ]
    # the child is editable; the approved version and its history are exactly as they were
    other = cells(client)[1]["key"]
    assert client.patch(f"/plans/{child}/psi", json={"level": "det", "edits": [{"key": other, "field": "supply", "value": 1}]}).status_code == 200  # fmt: skip
    assert client.get("/plans/v1/psi/events").json()["events"] == before
    assert client.get("/plans/v1").json()["approval"] == "approved"
    assert (
        client.get(f"/plans/{child}/aggregate").json()["rows"]
        == client.get("/plans/v1/aggregate").json()["rows"]
    )
    # only an approved version is reopened
    again = client.post(f"/plans/{child}/psi/reopen")
    assert again.status_code == 409 and "only an approved version" in again.json()["detail"]["message"]


def test_a_planner_prebuilds_edits_locks_reconciles_approves_and_then_the_plan_is_frozen(
    client: TestClient,
) -> None:
    """Issue's end-to-end check: every decision reaches the executable plan, and approval freezes it."""
    run = client.post(
        "/plans/integrated/run", json={"version_id": "pb", "input_dir": str(SAMPLE), "prebuild_months": 1}
    )
    assert run.status_code == 201, run.text
    aggregate = client.get("/plans/pb/aggregate", params={"limit": 1000}).json()["rows"]
    assert sum(r["prebuild"] for r in aggregate) > 0

    rows = client.get("/plans/pb/psi", params={"level": "det", **FAMILY_KEY, "limit": 100}).json()["rows"]
    cell = rows[0]
    firm = int(float(cell["supply"])) + 150
    edit = {
        "level": "det",
        "edits": [{"key": cell["key"], "field": "supply", "value": firm}],
        "lock": [cell["key"]],
    }
    assert client.patch("/plans/pb/psi", json=edit).status_code == 200

    reconciled = client.post("/plans/pb/psi/reconcile", json={"note": "firm the launch week"})
    assert reconciled.status_code == 201, reconciled.text
    child = reconciled.json()["version_id"]
    sku, week = cell["key"]["sku"], cell["key"]["week"]
    detail = client.get(f"/plans/{child}/detail", params={"sku": sku, "limit": 1000}).json()["rows"]
    assert sum(r["supply"] for r in detail if r["week"] == week) >= firm  # the locked cell is kept

    def receipts(version: str) -> list[float]:
        found = client.get(f"/plans/{version}/mrp", params={"item": sku, "limit": 1000}).json()["rows"]
        return [r["planned_order_receipt"] for r in found]

    # the edit reached MRP: the finished good's receipts follow the firmed schedule
    assert receipts(child) != receipts("pb")
    weeks = [
        r["week"]
        for r in client.get(f"/plans/{child}/mrp", params={"item": sku, "limit": 1000}).json()["rows"]
    ]
    scheduled = sum(r["supply"] for r in detail if weeks.index(r["week"]) <= weeks.index(week))
    assert sum(receipts(child)[: weeks.index(week) + 1]) >= scheduled

    assert client.post(f"/plans/{child}/psi/submit").status_code == 200
    assert client.post(f"/plans/{child}/psi/approve").status_code == 200
    refused = client.patch(f"/plans/{child}/psi", json={"level": "det", "edits": [{"key": rows[1]["key"], "field": "demand", "value": 1}]})  # fmt: skip
    assert refused.status_code == 409 and "approved" in refused.json()["detail"]["message"]
