"""A real ``scpln serve`` keeps a keep-alive connection usable after it answered an error, an
unexpected 500 included: the next request on the same connection is served (app.api.guard)."""

from __future__ import annotations

import sqlite3

import httpx

from tests.e2e.conftest import start_hub


def test_a_500_leaves_the_connection_usable(tmp_path):
    server = start_hub(tmp_path, {"SCPLN_INPROCESS_WORKER": "0"})
    try:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            assert client.get("/plans").status_code == 200
            with sqlite3.connect(server.db) as conn:  # an unexpected failure: the catalogue is gone
                conn.execute("DROP TABLE plan_versions")
            broken = client.get("/plans")
            assert broken.status_code == 500
            assert broken.json() == {"error": "internal error", "detail": "see server log"}
            assert broken.headers.get("connection") != "close"
            for _ in range(3):  # the same connection answers again, without a reset
                assert client.get("/healthz").status_code == 200
                assert client.get("/plans").status_code == 500
            assert client.get("/no-such-route").status_code == 404
        assert "Traceback" in server.log.read_text()  # logged on the server, not sent to the client
    finally:
        server.stop()
