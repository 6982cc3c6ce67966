"""Property-based fuzzing of every operation of the OpenAPI document (schemathesis, ASGI in-process).

Whatever a client sends, the hub answers with a designed status: never a 500, never a stack trace, and
every error is JSON ``{error, detail}``. The only 5xx allowed is the documented 503 of a paused intake
(the fuzzer may pause it through ``/ops/jobs/pause``). Bounded to a handful of examples per operation.
"""

from __future__ import annotations

import warnings

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from app import db
from app.services.plans import PlanRequest, run_plan

warnings.filterwarnings("ignore", message=".*httpx2.*")

from fastapi.testclient import TestClient  # noqa: E402

from app.api.app import create_app  # noqa: E402

ENV_CLEARED = ("PLAN_STORAGE_MODE", "SCPLN_API_TOKENS", "JOBS_ENABLED", "SCPLN_INPUT_DIR", "REGISTRY_BACKEND",
               "SCPLN_QUEUE_URL")  # fmt: skip
MAX_EXAMPLES = 8


@pytest.fixture(scope="module")
def hub_client(tmp_path_factory):
    """The database the fuzzed application reads and writes: two versions to find, in two modes."""
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'hub.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCPLN_DB", url)
        for name in ENV_CLEARED:
            mp.delenv(name, raising=False)
        db.init_db(url)
        run_plan(PlanRequest(version_id="v1"), storage="both")
        run_plan(PlanRequest(version_id="v2"), storage="files")
        with TestClient(create_app(), raise_server_exceptions=False) as client:
            yield client
    db.dispose_engines(url)


# Loading the OpenAPI document touches no database, so the schema is built at collection time.
# Every operation, backups included: they go beside the test database.
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())
# Random generation only: the coverage phase enumerates every boundary of every parameter, which is
# far beyond this suite's time budget (``make soak`` is the place for it).
schema.config.phases.update(phases=["examples", "fuzzing"])


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_operation_answers_a_server_error_or_leaks_a_trace(case, hub_client):
    response = hub_client.request(**case.as_transport_kwargs(base_url="http://testserver"))
    status = response.status_code
    paused = status == 503 and response.json() == {"error": "plan intake paused"}
    assert status < 500 or paused, f"{case.method} {case.formatted_path} -> {status}: {response.text[:500]}"
    assert "Traceback" not in response.text
    if status >= 400 and not paused:
        body = response.json()
        assert set(body) == {"error", "detail"}, body
