"""Every route of the OpenAPI document, attacked the same ways, in no-token and token modes: a foreign
Host, a cross-site state change, an oversized body, an unauthenticated body, wrong types and extreme
numbers. No answer may be a 500, a stack trace or a change made by a refused request."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from app import db
from app.services.plans import PlanRequest, run_plan
from app.web import create_app
from tests.conftest import SAMPLE
from tests.integration.test_api_auth import ENV_CLEARED, TOKENS

UNSAFE = ("post", "put", "patch", "delete")
HOSTILE_BODIES = [
    b'{"value": 1e308, "limit": -1, "version_id": 12, "edits": [{"value": 1e400}]}',
    b'{"prebuild_months": 1e19, "tol_abs": "nan", "input_dir": {"$ne": null}}',
    b"[]",
    b'"text"',
    b"null",
    b'{"level": "det", "edits": [{"key": {"sku": "A"}, "field": "demand", "value": 100000000000000000000}]}',
]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    for name in (*ENV_CLEARED, "SCPLN_ALLOWED_HOSTS", "SCPLN_MAX_BODY_BYTES"):
        mp.delenv(name, raising=False)
    url = f"sqlite:///{tmp_path_factory.mktemp('hardening') / 'hub.db'}"
    mp.setenv("SCPLN_DB", url)
    mp.setenv("SCPLN_INPROCESS_WORKER", "0")
    db.init_db(url)
    run_plan(PlanRequest(input_dir=str(SAMPLE), version_id="v1"), storage="both")
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client, mp
    mp.undo()
    db.dispose_engines(url)


def routes(client: TestClient) -> list[tuple[str, str]]:
    """(method, concrete path) of every operation; path parameters take a known version's id or a
    harmless name."""
    out = []
    for template, operations in client.get("/openapi.json").json()["paths"].items():
        path = re.sub(r"\{name\}", "aggregate.json", template)
        path = re.sub(r"\{[a-z_]+\}", "v1", path)
        out += [(method, path) for method in operations]
    return sorted(out, key=lambda mp: mp[0] == "delete")  # destructive ones last


def sane(response, where: str) -> None:
    assert response.status_code < 500 or response.status_code in (503, 507), (where, response.text[:300])
    assert "Traceback" not in response.text and 'File "' not in response.text, where


def test_every_route_refuses_a_foreign_host_and_cross_site_or_oversized_changes(hub):
    client, mp = hub
    mp.setenv("SCPLN_MAX_BODY_BYTES", "2048")
    listed = routes(client)
    assert len(listed) > 30
    for method, path in listed:
        where = f"{method.upper()} {path}"
        foreign = client.request(method, path, headers={"Host": "rebound.example"})
        assert foreign.status_code == 400 and foreign.json()["error"] == "host not allowed", where
        if method in UNSAFE:
            cross = client.request(method, path, headers={"Origin": "http://evil.example"}, content=b"{}")
            assert cross.status_code == 403, where
            big = client.request(
                method, path, content=b"{" + b" " * 5000 + b"}", headers={"Content-Type": "application/json"}
            )
            assert big.status_code == 413, where
    # nothing the refused requests asked for happened
    assert client.get("/plans/v1").json()["status"] == "ready"
    assert client.get("/healthz").json()["jobs_enabled"] is True
    mp.delenv("SCPLN_MAX_BODY_BYTES")


def test_every_route_answers_hostile_bodies_and_parameters_without_a_500(hub):
    client, _ = hub
    for method, path in routes(client):
        where = f"{method.upper()} {path}"
        for query in ("limit=-1&offset=1e400", "limit=99999999999999999999", "level=%00&family=" + "x" * 300):
            sane(client.request(method, f"{path}?{query}"), f"{where}?{query}")
        if method in UNSAFE:
            for body in HOSTILE_BODIES:
                sane(
                    client.request(method, path, content=body, headers={"Content-Type": "application/json"}),
                    where,
                )


def test_with_tokens_every_body_needs_a_valid_token_first(hub):
    client, mp = hub
    mp.setenv("SCPLN_API_TOKENS", ",".join(f"{t}:{r}" for r, t in TOKENS.items()))
    try:
        for method, path in routes(client):
            if method not in UNSAFE or path.startswith("/ui"):
                continue
            where = f"{method.upper()} {path}"
            anonymous = client.request(method, path, content=b'{"x": 1}', headers={"Host": "hub.example.com"})
            assert anonymous.status_code == 401, where
            forged = client.request(
                method, path, content=b'{"x": 1}', headers={"Authorization": "Bearer x" * 3}
            )
            assert forged.status_code == 401, where
    finally:
        mp.delenv("SCPLN_API_TOKENS")
