"""API authentication and roles (SPEC 5.3): tokens, 401/403, hashed storage and the bind refusal."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import warnings

import pytest
from sqlalchemy import text

from app import db
from app.services.plans import PlanRequest, run_plan
from app.storage import tokens
from app.storage.plans import PlanStore
from tests.conftest import ROOT

warnings.filterwarnings("ignore", message=".*httpx2.*")
from fastapi.testclient import TestClient  # noqa: E402

from app.api.app import create_app  # noqa: E402

TOKENS = {
    "viewer": "tok-view-123-aaaaaa",
    "planner": "tok-plan-456-bbbbbb",
    "approver": "tok-appr-789-cccccc",
    "admin": "tok-admin-0-dddddd",
}
ENV_CLEARED = ("PLAN_STORAGE_MODE", "SCPLN_API_TOKENS", "JOBS_ENABLED", "SCPLN_INPUT_DIR", "REGISTRY_BACKEND")


@pytest.fixture(scope="module")
def planned_db(tmp_path_factory):
    """A database holding version ``v1`` (files mode), copied for each test."""
    path = tmp_path_factory.mktemp("template") / "hub.db"
    url = f"sqlite:///{path}"
    db.init_db(url)
    run_plan(PlanRequest(version_id="v1"), storage="files", store=PlanStore(db.get_engine(url)))
    db.dispose_engines(url)
    return path


@pytest.fixture
def hub(tmp_path, monkeypatch, planned_db):
    shutil.copy(planned_db, tmp_path / "hub.db")
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    monkeypatch.setenv("SCPLN_DB", url)
    for name in ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    with TestClient(create_app()) as client:
        yield client
    db.dispose_engines(url)


@pytest.fixture
def env_tokens(monkeypatch):
    monkeypatch.setenv("SCPLN_API_TOKENS", ",".join(f"{t}:{r}" for r, t in TOKENS.items()))


def as_role(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def test_without_tokens_everyone_is_admin(hub):
    assert hub.get("/plans/v1").status_code == 200
    assert hub.put("/ops/storage-mode", json={"mode": None}).status_code == 200
    assert hub.delete("/plans/v1").status_code == 200


@pytest.mark.parametrize(("address", "status"), [("127.0.0.1", 200), ("::1", 200), ("10.20.30.40", 401)])
def test_without_tokens_only_requests_on_a_loopback_address_are_served(hub, address, status):
    # a server that was bound elsewhere while tokens existed, whose last token was then deleted
    host = f"[{address}]" if ":" in address else address
    with TestClient(hub.app, base_url=f"http://{host}:8000") as client:
        response = client.get("/plans/v1")
    assert response.status_code == status, response.text
    if status == 401:
        assert "non-loopback" in response.json()["error"] + response.json().get("detail", "")
        assert client.get("/healthz").status_code == 200


def test_with_tokens_a_request_without_a_valid_token_is_401(hub, env_tokens):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dXNlcjpwdw=="},
                    {"Authorization": f"Bearer {TOKENS['viewer']}x"}):  # fmt: skip
        response = hub.get("/plans", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"] == "unauthorized" and "Traceback" not in response.text
    assert hub.post("/plans/integrated/run").status_code == 401


def test_healthz_and_metrics_stay_open(hub, env_tokens):
    assert hub.get("/healthz").status_code == 200
    assert hub.get("/metrics").status_code == 200


ROUTES = [  # (method, url, role needed)
    ("get", "/plans", "viewer"),
    ("get", "/plans/v1/detail", "viewer"),
    ("get", "/plans/v1/compare.csv", "viewer"),
    ("get", "/runs", "viewer"),
    ("get", "/jobs", "viewer"),
    ("post", "/plans/integrated/run?storage=files", "planner"),
    ("post", "/jobs/j-none/cancel", "planner"),
    ("get", "/ops/storage-mode", "admin"),
    ("put", "/ops/maintenance", "admin"),
    ("post", "/ops/jobs/resume", "admin"),
    ("delete", "/plans/v1", "admin"),
]


@pytest.mark.parametrize("method, url, needed", ROUTES)
def test_each_role_may_do_what_its_rank_allows_and_gets_403_otherwise(hub, env_tokens, method, url, needed):
    rank = tokens.ROLES.index(needed)
    for role in tokens.ROLES[:rank]:
        response = hub.request(method, url, headers=as_role(role), json={"enabled": False})
        assert response.status_code == 403, (role, url)
        assert response.json()["detail"]["needed"] == needed
    response = hub.request(method, url, headers=as_role(needed), json={"enabled": False})
    assert response.status_code not in (401, 403), (needed, url, response.text)


def test_stored_tokens_are_kept_as_sha256_only_and_work(hub):
    engine = PlanStore().engine
    token = tokens.create_token(engine, "planner", "ci")
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT token_hash, role, label FROM api_tokens")).all()
    assert stored == [(hashlib.sha256(token.encode()).hexdigest(), "planner", "ci")]
    assert token not in repr(stored)
    assert hub.get("/plans").status_code == 401  # a stored token turns auth on
    bearer = {"Authorization": f"Bearer {token}"}
    assert hub.get("/plans", headers=bearer).status_code == 200
    assert hub.post("/plans/integrated/run?storage=files", headers=bearer).status_code == 201
    assert hub.delete("/plans/v1", headers=bearer).status_code == 403


def test_unknown_roles_and_malformed_token_lists_are_refused(hub, monkeypatch):
    with pytest.raises(ValueError, match="role must be one of"):
        tokens.create_token(PlanStore().engine, "owner")
    with pytest.raises(ValueError, match="entry 2"):
        tokens.parse_env_tokens("abcdefghijklmnopq:viewer,justatoken")
    with pytest.raises(ValueError, match="entry 1: the token is shorter than 16"):
        tokens.parse_env_tokens("a:admin")
    with pytest.raises(ValueError, match="entry 3 repeats the token of entry 1"):
        tokens.parse_env_tokens("abcdefghijklmnopq:viewer,qrstuvwxyz0123456:planner,abcdefghijklmnopq:admin")
    monkeypatch.setenv("SCPLN_API_TOKENS", "abcdefghijklmnopq:superuser")
    response = hub.get("/plans", headers={"Authorization": "Bearer abcdefghijklmnopq"})
    assert response.status_code == 500 and response.json()["error"] == "auth misconfigured"
    assert "abcdefghijklmnopq" not in response.text


def _scpln(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**{k: v for k, v in os.environ.items() if k not in ENV_CLEARED}, "COLUMNS": "200", **env},
    )  # fmt: skip


def test_token_create_prints_the_token_once_and_stores_its_hash(tmp_path):
    env = {"SCPLN_DB": str(tmp_path / "hub.db")}
    result = _scpln("token", "create", "--role", "approver", "--label", "ops desk", env=env)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("scpln_") and len(token) > 30
    engine = db.get_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT token_hash, role, label FROM api_tokens")).all() == [
            (tokens.hash_token(token), "approver", "ops desk")
        ]
    db.dispose_engines(f"sqlite:///{tmp_path / 'hub.db'}")
    bad = _scpln("token", "create", "--role", "root", env=env)
    assert bad.returncode == 2 and "role must be one of" in bad.stderr


def test_tokens_are_listed_by_hash_prefix_and_revoked_by_prefix_or_token(tmp_path):
    env = {"SCPLN_DB": str(tmp_path / "hub.db")}
    first = _scpln("token", "create", "--role", "viewer", "--label", "kiosk", env=env).stdout.strip()
    second = _scpln("token", "create", "--role", "admin", env=env).stdout.strip()
    listed = _scpln("token", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert [line.split()[1] for line in lines] == ["viewer", "admin"] and lines[0].endswith("kiosk")
    assert tokens.hash_token(first)[:12] in listed.stdout and first not in listed.stdout
    assert _scpln("token", "revoke", "abc", env=env).returncode == 2  # too short to be a hash prefix
    revoked = _scpln("token", "revoke", tokens.hash_token(first)[:10], env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert _scpln("token", "revoke", second, env=env).returncode == 0
    engine = db.get_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    assert not tokens.stored_tokens_exist(engine)
    db.dispose_engines(f"sqlite:///{tmp_path / 'hub.db'}")


def test_serve_refuses_a_non_loopback_host_without_tokens(tmp_path):
    result = _scpln("serve", "--host", "0.0.0.0", "--port", "1", env={"SCPLN_DB": str(tmp_path / "hub.db")})
    assert result.returncode == 2
    assert "refusing to bind 0.0.0.0" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "host, loopback", [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("localhost", True),
                       ("0.0.0.0", False), ("10.1.2.3", False), ("::", False), ("example.org", False)],
)  # fmt: skip
def test_only_loopback_hosts_may_be_bound_without_tokens(hub, monkeypatch, host, loopback):
    from app.api.auth import bind_refusal

    assert (bind_refusal(host) is None) is loopback
    monkeypatch.setenv("SCPLN_API_TOKENS", "a-long-enough-admin-token:admin")
    assert bind_refusal(host) is None
    monkeypatch.setenv("SCPLN_API_TOKENS", "a:admin")  # a weak token is no token: refused, with why
    with pytest.raises(ValueError, match="shorter than 16"):
        bind_refusal(host)
