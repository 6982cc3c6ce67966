"""Hostile requests against the whole application (API and UI): foreign Host headers, cross-site state
changes, oversized bodies, bodies from unauthenticated callers, security headers (app.api.guard)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app import db
from app.web import create_app
from tests.integration.test_api_auth import ENV_CLEARED, TOKENS


@pytest.fixture
def hub(tmp_path, monkeypatch):
    for name in (*ENV_CLEARED, "SCPLN_ALLOWED_HOSTS", "SCPLN_MAX_BODY_BYTES"):
        monkeypatch.delenv(name, raising=False)
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    monkeypatch.setenv("SCPLN_DB", url)
    db.init_db(url)
    with TestClient(create_app()) as client:
        yield client
    db.dispose_engines(url)


def intake_open(hub: TestClient) -> bool:
    return hub.get("/healthz").json()["jobs_enabled"]


# --- cross-site requests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example", "Content-Type": "text/plain"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://127.0.0.1:9999"},  # another port is another origin
    ],
)
def test_a_cross_site_state_change_is_refused_without_tokens(hub, headers):
    response = hub.post("/ops/jobs/pause", headers=headers, content=b"{}")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert intake_open(hub)
    form = hub.post("/plans/integrated/run", headers=headers, data={"version_id": "x"})
    assert form.status_code == 403
    assert hub.get("/plans/x").status_code == 404


def test_same_origin_and_plain_clients_still_change_state(hub):
    assert hub.post("/ops/jobs/pause", headers={"Origin": "http://testserver"}).status_code == 200
    assert not intake_open(hub)
    assert hub.post("/ops/jobs/resume").status_code == 200  # curl and scripts send no Origin
    assert intake_open(hub)
    # reads are not state changes: a cross-site GET is answered (the browser keeps it from the page)
    assert hub.get("/plans", headers={"Origin": "http://evil.example"}).status_code == 200


# --- Host header (DNS rebinding) -----------------------------------------------------------------------


def test_a_foreign_host_is_refused_without_tokens_and_allowed_when_configured(hub, monkeypatch):
    response = hub.get("/plans", headers={"Host": "evil.example"})
    assert response.status_code == 400 and response.json()["error"] == "host not allowed"
    assert hub.get("/ui/plans", headers={"Host": "evil.example:8000"}).status_code == 400
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000"):
        assert hub.get("/healthz", headers={"Host": host}).status_code == 200, host
    monkeypatch.setenv("SCPLN_ALLOWED_HOSTS", "planner.example.com, evil.example")
    assert hub.get("/plans", headers={"Host": "evil.example"}).status_code == 200


def test_with_tokens_any_host_may_ask_but_needs_a_token(hub, monkeypatch):
    monkeypatch.setenv("SCPLN_API_TOKENS", ",".join(f"{t}:{r}" for r, t in TOKENS.items()))
    assert hub.get("/plans", headers={"Host": "hub.example.com"}).status_code == 401
    ok = hub.get("/plans", headers={"Host": "hub.example.com", "Authorization": f"Bearer {TOKENS['viewer']}"})
    assert ok.status_code == 200
    # a valid token does not make a cross-site change acceptable
    admin = {"Authorization": f"Bearer {TOKENS['admin']}", "Origin": "http://evil.example"}
    assert hub.post("/ops/jobs/pause", headers=admin).status_code == 403
    assert hub.get("/healthz").json()["jobs_enabled"] is True


# --- bodies ------------------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_before_it_is_read(hub, monkeypatch):
    monkeypatch.setenv("SCPLN_MAX_BODY_BYTES", "4096")
    big = b'{"note": "' + b"x" * 10_000 + b'"}'
    response = hub.post("/plans/integrated/run", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"] == "payload too large"
    assert "4,096 bytes" in response.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b"x" * 1000

    chunked = hub.post(
        "/plans/integrated/run", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert chunked.status_code == 413
    assert hub.get("/healthz").status_code == 200


def test_with_tokens_a_body_from_an_unauthenticated_caller_is_401_not_parsed(hub, monkeypatch):
    monkeypatch.setenv("SCPLN_API_TOKENS", ",".join(f"{t}:{r}" for r, t in TOKENS.items()))
    broken = b'{"edits": [' * 1000  # would be a 422 if it were parsed
    response = hub.patch("/plans/v1/psi", content=broken, headers={"Content-Type": "application/json"})
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    wrong = hub.post(
        "/plans/integrated/run", content=b"{}", headers={"Authorization": "Bearer not-a-token-at-all"}
    )
    assert wrong.status_code == 401
    # with a token the same broken body is read and refused as what it is
    planner = {"Authorization": f"Bearer {TOKENS['planner']}", "Content-Type": "application/json"}
    assert hub.patch("/plans/v1/psi", content=broken, headers=planner).status_code in (400, 422)


# --- headers ---------------------------------------------------------------------------------------------


def test_pages_cannot_be_framed_and_no_response_is_sniffed(hub):
    page = hub.get("/ui/plans")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    api = hub.get("/plans")
    assert api.headers["x-content-type-options"] == "nosniff"
    refused = hub.get("/plans", headers={"Host": "evil.example"})
    assert refused.headers["x-frame-options"] == "DENY"
