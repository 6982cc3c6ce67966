"""The plan routes of the HTTP API (SPEC 5.2) on a real SQLite file, a few on PostgreSQL too."""

from __future__ import annotations

import csv
import io
import json
import shutil
import warnings

import pytest
from sqlalchemy import text

from app import db
from app.planning.model import PLAN_ARTIFACTS, PlanParams
from app.planning.report import KPI_UNITS
from app.services.plans import PlanRequest, run_plan
from app.storage import settings as st
from app.storage.plans import PlanStore
from tests.conftest import ROOT, SAMPLE

warnings.filterwarnings("ignore", message=".*httpx2.*")
from fastapi.testclient import TestClient  # noqa: E402

from app.api.app import create_app  # noqa: E402

ENV_CLEARED = ("PLAN_STORAGE_MODE", "SCPLN_API_TOKENS", "JOBS_ENABLED", "SCPLN_INPUT_DIR", "REGISTRY_BACKEND")


def _point_at(mp: pytest.MonkeyPatch, url: str) -> None:
    mp.setenv("SCPLN_DB", url)
    for name in ENV_CLEARED:
        mp.delenv(name, raising=False)
    db.init_db(url)


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """A hub with three versions of the sample plan, for read-only tests: ``v-both`` (both encodings),
    ``v-files`` (artifacts only) and ``v-db`` (rows only, planned with one prebuild month)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('api-plans') / 'hub.db'}"
    with pytest.MonkeyPatch.context() as mp:
        _point_at(mp, url)
        run_plan(PlanRequest(version_id="v-both", note="both"), storage="both")
        run_plan(PlanRequest(version_id="v-files"), storage="files")
        run_plan(PlanRequest(version_id="v-db", params=PlanParams(prebuild_months=1)), storage="db")
        with TestClient(create_app()) as client:
            yield client
    db.dispose_engines(url)


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory):
    """An empty database at the schema head, copied for each test (a migration per test is slow)."""
    path = tmp_path_factory.mktemp("template") / "hub.db"
    db.init_db(f"sqlite:///{path}")
    db.dispose_engines(f"sqlite:///{path}")
    return path


@pytest.fixture
def hub(tmp_path, monkeypatch, empty_db):
    """A fresh empty hub on its own SQLite file."""
    shutil.copy(empty_db, tmp_path / "hub.db")
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    _point_at(monkeypatch, url)
    with TestClient(create_app()) as client:
        yield client
    db.dispose_engines(url)


def _count(sql: str, **params) -> int:
    with PlanStore().engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def _csv(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.text)))


# --- POST /plans/integrated/run -------------------------------------------------------------------


def test_run_without_body_or_content_type_plans_the_default_input_set(hub):
    response = hub.post("/plans/integrated/run")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"version_id", "status", "storage", "kpis", "job_id", "run_id"}
    assert body["status"] == "ready" and body["storage"]["mode"] == "both"
    assert sorted(body["storage"]["artifacts"]) == sorted(PLAN_ARTIFACTS)
    assert body["storage"]["series_rows"] > 0 and body["storage"]["kpi_rows"] > 0
    assert 0 <= body["kpis"]["fill_rate"] <= 1 and body["job_id"] and body["run_id"]
    shown = hub.get(f"/plans/{body['version_id']}").json()
    assert shown["status"] == "ready" and shown["input_label"] == "planning" and shown["has_rows"] is True


def test_run_in_files_mode_leaves_no_plan_series_rows(hub):
    response = hub.post("/plans/integrated/run?storage=files", json={"version_id": "only-files"})
    assert response.status_code == 201, response.text
    assert response.json()["storage"] == {
        "mode": "files", "artifacts": sorted(PLAN_ARTIFACTS), "series_rows": 0, "kpi_rows": 0,
    }  # fmt: skip
    assert _count("SELECT COUNT(*) FROM plan_series WHERE version_id = 'only-files'") == 0
    assert _count("SELECT COUNT(*) FROM plan_kpis WHERE version_id = 'only-files'") == 0
    assert _count("SELECT COUNT(*) FROM plan_artifacts WHERE version_id = 'only-files'") == len(
        PLAN_ARTIFACTS
    )


def test_run_with_parameters_stores_them_and_the_note(hub):
    body = {
        "version_id": "p-1",
        "round_mode": "dec1",
        "prebuild_months": 1,
        "note": "what-if",
        "input_label": "S1",
    }
    response = hub.post("/plans/integrated/run?storage=db", json=body)
    assert response.status_code == 201, response.text
    shown = hub.get("/plans/p-1").json()
    assert shown["params"]["round_mode"] == "dec1" and shown["params"]["prebuild_months"] == 1
    assert shown["note"] == "what-if" and shown["input_label"] == "S1" and shown["storage_mode"] == "db"
    assert shown["artifacts"] == []


def test_bad_input_set_answers_422_with_every_problem(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("SCPLN_INPUT_ROOTS", str(tmp_path))
    bad = tmp_path / "bad"
    shutil.copytree(SAMPLE, bad)
    (bad / "bom.csv").write_text((bad / "bom.csv").read_text() + "PCB-CTL,BASE-PRO,1,0\n", encoding="utf-8")
    lines = (bad / "demand_family.csv").read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ",lots"
    (bad / "demand_family.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    response = hub.post("/plans/integrated/run", json={"input_dir": str(bad), "version_id": "bad-1"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid input"
    assert all(set(p) == {"file", "row", "column", "reason"} for p in body["detail"])
    assert {"file": "demand_family.csv", "row": 3, "column": "demand"}.items() <= next(
        p for p in body["detail"] if p["file"] == "demand_family.csv"
    ).items()
    assert any("cycle" in p["reason"].lower() for p in body["detail"])
    assert "Traceback" not in response.text
    assert hub.get("/plans/bad-1").json()["status"] == "failed"


@pytest.mark.parametrize(
    "content, headers",
    [
        ("{not json", {"content-type": "application/json"}),
        (json.dumps({"round_mode": "dec9"}), {"content-type": "application/json"}),
        (json.dumps({"version_id": "../etc"}), {"content-type": "application/json"}),
        (json.dumps({"version_id": "x" * 65}), {"content-type": "application/json"}),
        (json.dumps({"prebuild_months": -1}), {"content-type": "application/json"}),
        (json.dumps({"unknown_key": 1}), {"content-type": "application/json"}),
        (json.dumps([1, 2]), {"content-type": "application/json"}),
    ],
)
def test_malformed_run_body_is_422_and_plans_nothing(hub, content, headers):
    response = hub.post("/plans/integrated/run", content=content, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid request" and isinstance(response.json()["detail"], list)
    assert hub.get("/plans").json()["total"] == 0


def test_bad_storage_query_is_422(hub):
    response = hub.post("/plans/integrated/run?storage=disk")
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "storage"


def test_existing_version_id_is_409(hub):
    assert hub.post("/plans/integrated/run", json={"version_id": "dup"}).status_code == 201
    response = hub.post("/plans/integrated/run", json={"version_id": "dup"})
    assert response.status_code == 409 and response.json()["error"] == "version conflict"


def test_intake_paused_answers_503_with_the_exact_body(hub, monkeypatch):
    st.set_value(PlanStore().engine, st.PAUSED, "1")
    for url in ("/plans/integrated/run", "/plans/integrated/run?async=true&storage=files"):
        response = hub.post(url)
        assert response.status_code == 503
        assert response.json() == {"error": "plan intake paused"}
    st.set_value(PlanStore().engine, st.PAUSED, None)
    monkeypatch.setenv("JOBS_ENABLED", "0")
    assert hub.post("/plans/integrated/run").json() == {"error": "plan intake paused"}
    assert hub.get("/plans").json()["total"] == 0


def test_pinned_storage_mode_refuses_another_mode_with_409(hub):
    st.set_storage_pin(PlanStore().engine, "files")
    response = hub.post("/plans/integrated/run?storage=db")
    assert response.status_code == 409
    assert response.json()["error"] == "storage mode pinned"
    assert response.json()["detail"]["pinned"] == "files"
    created = hub.post("/plans/integrated/run")
    assert created.status_code == 201 and created.json()["storage"]["mode"] == "files"


def test_async_run_answers_202_and_the_version_is_running_until_a_worker_plans_it(hub):
    from app.services.jobs import start_inprocess_worker

    response = hub.post("/plans/integrated/run?async=true&storage=files", json={"version_id": "later"})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert set(accepted) == {"job_id", "version_id", "status_url"} and accepted["version_id"] == "later"
    assert hub.get("/plans/later").json()["status"] == "running"
    assert hub.get("/plans/later/detail").status_code == 404
    worker = start_inprocess_worker()
    try:
        import time

        deadline = time.monotonic() + 60
        while hub.get("/plans/later").json()["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
    assert hub.get("/plans/later").json()["status"] == "ready"
    assert hub.get(accepted["status_url"]).json()["status"] == "succeeded"
    assert hub.get("/plans/later/detail?limit=1").json()["source"] == "artifacts"


# --- catalogue ------------------------------------------------------------------------------------


def test_list_plans_pages_newest_first_with_total_and_cheap_kpis(planned):
    body = planned.get("/plans").json()
    assert body["total"] == 3 and [i["version_id"] for i in body["items"]] == ["v-db", "v-files", "v-both"]
    by_id = {i["version_id"]: i for i in body["items"]}
    assert by_id["v-files"]["kpis"] is None  # artifacts only: not decoded for a list
    assert by_id["v-both"]["kpis"]["fill_rate"] == by_id["v-db"]["kpis"]["fill_rate"]
    assert by_id["v-both"]["note"] == "both" and by_id["v-both"]["storage_mode"] == "both"
    page = planned.get("/plans?limit=1&offset=1&order=asc").json()
    assert [i["version_id"] for i in page["items"]] == ["v-files"] and page["total"] == 3
    assert planned.get("/plans?status=failed").json() == {"items": [], "total": 0, "limit": 50, "offset": 0}


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=501", "offset=-1", "order=sideways", "status=done", "limit=ten"]
)
def test_list_plans_rejects_bad_paging_with_422(planned, query):
    response = planned.get(f"/plans?{query}")
    assert response.status_code == 422 and response.json()["error"] == "invalid request"


def test_show_plan_404_for_unknown_and_422_for_invalid_version_ids(planned):
    assert planned.get("/plans/v-both").json()["read_from"] == "rows"
    assert planned.get("/plans/v-files").json()["read_from"] == "artifacts"
    unknown = planned.get("/plans/nope")
    assert unknown.status_code == 404 and unknown.json() == {
        "error": "plan not found", "detail": "plan version 'nope' does not exist",
    }  # fmt: skip
    for bad in ("-starts-with-dash", "x" * 65, "a%20b"):
        assert planned.get(f"/plans/{bad}").status_code == 422
    assert planned.get("/plans/nope/detail").status_code == 404


def test_unknown_route_is_json_404(planned):
    response = planned.get("/no/such/route")
    assert response.status_code == 404 and response.json()["error"] == "not found"
    assert planned.delete("/plans").status_code == 405


# --- tables ---------------------------------------------------------------------------------------

TABLES = ("aggregate", "detail", "mrp", "final", "weekly", "kpis", "exceptions")


@pytest.mark.parametrize("table", TABLES)
def test_table_pages_from_rows_equal_the_artifact_rows(planned, table):
    from_rows = planned.get(f"/plans/v-both/{table}?limit=5000").json()
    from_artifacts = planned.get(f"/plans/v-files/{table}?limit=5000").json()
    assert from_rows["source"] == "rows" and from_artifacts["source"] == "artifacts"
    assert from_rows["total"] == from_artifacts["total"] == len(from_rows["rows"]) > 0
    assert from_rows["rows"] == from_artifacts["rows"]
    assert [list(r) for r in from_rows["rows"][:3]] == [list(r) for r in from_artifacts["rows"][:3]]


def test_unfiltered_pages_at_any_offset_are_slices_of_the_whole_table(planned):
    whole = planned.get("/plans/v-both/detail?limit=5000").json()["rows"]
    for offset in (0, 7, 400, 440, 441, 10_000):
        page = planned.get(f"/plans/v-both/detail?limit=25&offset={offset}").json()
        assert page["rows"] == whole[offset : offset + 25] and page["total"] == len(whole)


@pytest.mark.parametrize("version", ["v-both", "v-files"])
def test_detail_filters_select_the_same_rows_in_either_encoding(planned, version):
    whole = planned.get("/plans/v-files/detail?limit=5000").json()["rows"]
    split = next(
        r for r in whole if sum(1 for o in whole if o["sku"] == r["sku"] and o["week"] == r["week"]) == 2
    )
    for key in ("family", "sku", "period", "week"):
        page = planned.get(f"/plans/{version}/detail?{key}={split[key]}&limit=5000").json()
        expected = [r for r in whole if r[key] == split[key]]
        assert page["rows"] == expected and page["total"] == len(expected)
    both = planned.get(f"/plans/{version}/detail?sku={split['sku']}&week={split['week']}").json()
    assert len(both["rows"]) == 2 and {r["period"] for r in both["rows"]} == {
        r["period"] for r in whole if r["sku"] == split["sku"] and r["week"] == split["week"]
    }
    page = planned.get(f"/plans/{version}/detail?sku={split['sku']}&limit=3&offset=2").json()
    assert page["rows"] == [r for r in whole if r["sku"] == split["sku"]][2:5]


def test_a_filter_the_table_lacks_is_422_and_bad_paging_is_422(planned):
    response = planned.get("/plans/v-both/aggregate?sku=X")
    assert response.status_code == 422 and "cannot be filtered by sku" in response.json()["detail"]
    for query in ("limit=0", "limit=5001", "offset=-3", "family="):
        assert planned.get(f"/plans/v-both/detail?{query}").status_code == 422
    assert planned.get("/plans/v-both/detail?week=2099-W01").json() == {
        "table": "detail", "version_id": "v-both", "source": "rows", "total": 0, "limit": 500, "offset": 0,
        "rows": [],
    }  # fmt: skip


def test_week_filter_is_literal_not_a_pattern(planned):
    assert planned.get("/plans/v-both/detail?week=%25").json()["total"] == 0
    assert planned.get("/plans/v-both/detail?week=2026-W0_").json()["total"] == 0


@pytest.mark.parametrize("table", TABLES)
def test_table_csv_has_the_rows_of_the_json_with_plain_numbers(planned, table):
    page = planned.get(f"/plans/v-both/{table}?limit=5000").json()
    for version in ("v-both", "v-files"):
        response = planned.get(f"/plans/{version}/{table}.csv")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
        rows = _csv(response)
        assert len(rows) == page["total"]
        assert list(rows[0]) == list(page["rows"][0])
        assert not any(v.endswith(".0") for r in rows for v in r.values())
        first = page["rows"][0]
        for key, value in first.items():
            if isinstance(value, bool):
                assert rows[0][key] == ("true" if value else "false")
            elif isinstance(value, (int, float)):
                assert rows[0][key] == (str(value) if isinstance(value, int) else repr(value))
            else:
                assert rows[0][key] == ("" if value is None else value)


def test_filtered_csv_matches_the_filtered_page(planned):
    page = planned.get("/plans/v-both/mrp?item=BL-500&limit=5000").json()
    rows = _csv(planned.get("/plans/v-both/mrp.csv?item=BL-500"))
    assert [r["week"] for r in rows] == [r["week"] for r in page["rows"]] and len(rows) == page["total"] > 0


def test_tables_of_a_running_version_are_404_with_its_status(hub):
    PlanStore().begin_version("in-flight", params={}, mode="both")
    response = hub.get("/plans/in-flight/detail")
    assert response.status_code == 404 and response.json()["detail"]["status"] == "running"
    assert hub.get("/plans/in-flight/detail.csv").status_code == 404


def test_files_mode_reads_never_touch_the_plan_repository(hub, monkeypatch):
    hub.post("/plans/integrated/run?storage=both", json={"version_id": "b1"})
    with PlanStore().engine.begin() as conn:  # a PlanRepository broken beyond reading
        conn.execute(text("DROP TABLE plan_kpis"))
        conn.execute(text("DROP TABLE plan_series"))
    monkeypatch.setenv("PLAN_STORAGE_MODE", "files")
    for url in ("/plans", "/plans/b1", "/plans/b1/detail", "/plans/b1/kpis.csv", "/plans/b1/compare.csv",
                "/plans/b1/diff?against=b1", "/plans/b1/artifacts", "/plans/b1/artifacts/mrp.json"):  # fmt: skip
        response = hub.get(url)
        assert response.status_code == 200, (url, response.text)
    assert hub.get("/plans/b1/detail").json()["source"] == "artifacts"
    assert hub.get("/plans/b1").json()["has_rows"] is None
    created = hub.post("/plans/integrated/run", json={"version_id": "f2"})
    assert created.status_code == 201 and created.json()["storage"]["mode"] == "files"


def test_db_mode_reads_never_fall_back_to_artifacts(planned, monkeypatch):
    monkeypatch.setenv("PLAN_STORAGE_MODE", "db")
    response = planned.get("/plans/v-files/detail")
    assert response.status_code == 404 and response.json()["error"] == "plan content missing"
    assert planned.get("/plans/v-both/detail?limit=1").json()["source"] == "rows"


# --- artifacts ------------------------------------------------------------------------------------


def test_artifacts_list_names_and_sizes(planned):
    items = planned.get("/plans/v-files/artifacts").json()["items"]
    assert [i["name"] for i in items] == sorted(PLAN_ARTIFACTS)
    sizes = {i["name"]: i["bytes"] for i in items}
    text_ = planned.get("/plans/v-files/artifacts/aggregate.json").text
    assert sizes["aggregate.json"] == len(text_.encode("utf-8"))
    from_rows = planned.get("/plans/v-db/artifacts").json()["items"]
    assert {i["source"] for i in from_rows} == {"rows"} and len(from_rows) == len(PLAN_ARTIFACTS)


def test_artifact_get_serves_the_stored_text_and_rebuilds_from_rows(planned):
    stored = planned.get("/plans/v-both/artifacts/aggregate.json")
    assert stored.headers["content-type"] == "application/json"
    assert stored.text == PlanStore().artifact_text("v-both", "aggregate.json")
    report = planned.get("/plans/v-both/artifacts/report.csv")
    assert report.headers["content-type"].startswith("text/csv") and report.text.startswith("type,week,")
    rebuilt = planned.get("/plans/v-db/artifacts/sku_week.json")
    assert rebuilt.status_code == 200 and json.loads(rebuilt.text)["version_id"] == "v-db"
    assert planned.get("/plans/v-both/artifacts/psi_state.json").status_code == 404


@pytest.mark.parametrize(
    "name, status",
    [("..%2F..%2Fetc%2Fpasswd", 404), ("a/b", 404), ("%2E%2E", 422), ("x.json", 422), (".env", 422),
     ("aggregate.json%00", 422), ("AGGREGATE.JSON", 422)],
)  # fmt: skip
def test_path_like_or_unknown_artifact_names_are_refused(planned, name, status):
    response = planned.get(f"/plans/v-both/artifacts/{name}")
    assert response.status_code == status and set(response.json()) == {"error", "detail"}


# --- comparisons ----------------------------------------------------------------------------------


def test_compare_csv_has_the_spec_columns_and_filters_violations(planned):
    response = planned.get("/plans/v-both/compare.csv")
    assert response.status_code == 200
    rows = _csv(response)
    assert response.text.splitlines()[0] == "family,period,measure,agg,det,delta,rel,ok"
    assert {r["measure"] for r in rows} == {"demand", "supply", "backlog"}
    violations = _csv(planned.get("/plans/v-both/compare.csv?violations_only=true"))
    outside = [r for r in rows if r["ok"] == "false"]
    # the sample's supply departures within one lot per SKU are info, not violations
    recon = planned.get("/plans/v-both/artifacts/reconciliation_log.json").json()
    real = {(r["family"], r["period"]) for r in recon["rows"] if r["severity"] == "violation"}
    assert violations == [r for r in outside if (r["family"], r["period"]) in real]
    assert violations and len(violations) < len(outside)
    assert planned.get("/plans/v-files/compare.csv").text == response.text
    assert planned.get("/plans/v-both/compare.csv?violations_only=maybe").status_code == 422


def test_pegging_lists_the_finished_goods_each_late_component_endangers(planned):
    body = planned.get("/plans/v-both/pegging").json()
    rows = body["rows"]
    assert body["version_id"] == "v-both" and rows
    # the sample's pump (8-week lead time) is released late; through the pump assembly it endangers
    # the espresso machine's first receipts
    pump = [r for r in rows if r["component"] == "PUMP-15B"]
    assert [(r["item"], r["start"], r["end"]) for r in pump] == [("CM-ESP", "2026-W06", "2026-W11")]
    exceptions = planned.get("/plans/v-both/exceptions?item=PUMP-15B").json()["rows"]
    assert exceptions[0]["pegging"] == [{k: pump[0][k] for k in ("item", "start", "end", "quantity")}]
    assert exceptions[0]["impact"] == pump[0]["impact"] == 400 * 11
    only = planned.get("/plans/v-both/pegging?item=CM-DRIP").json()["rows"]
    assert only and all("CM-DRIP" in (r["item"], r["component"]) for r in only)
    assert planned.get("/plans/v-files/pegging").json()["rows"] == rows
    assert planned.get("/plans/missing/pegging").status_code == 404


def test_input_dir_must_lie_in_an_input_root_and_says_nothing_of_other_folders(hub, tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    shutil.copytree(SAMPLE, outside)
    (tmp_path / "samples-link").symlink_to(outside)  # a link inside a root leading out is outside too
    for given in (str(outside), "/etc", "/no/such/folder", "../../etc", str(tmp_path / "samples-link")):
        response = hub.post("/plans/integrated/run", json={"input_dir": given})
        assert response.status_code == 422, given
        text = response.text
        assert "not inside an input root" in text and str(ROOT) not in text and "exist" not in text
    monkeypatch.setenv("SCPLN_INPUT_ROOTS", str(tmp_path))
    assert (
        hub.post(
            "/plans/integrated/run", json={"input_dir": str(outside), "version_id": "inside"}
        ).status_code
        == 201
    )
    missing = hub.post("/plans/integrated/run", json={"input_dir": str(tmp_path / "nope")})
    assert missing.status_code == 422 and "is not a folder" in missing.text and str(ROOT) not in missing.text
    # the default input set (samples/planning) is inside the default root
    monkeypatch.delenv("SCPLN_INPUT_ROOTS")
    assert (
        hub.post(
            "/plans/integrated/run", json={"input_dir": "samples/planning", "version_id": "s"}
        ).status_code
        == 201
    )


def test_diff_against_itself_or_an_identical_plan_is_empty(planned):
    body = planned.get("/plans/v-both/diff?against=v-files").json()
    assert (
        body["total"] == 0
        and body["rows"] == []
        and body["summary"]
        == {
            "kpis": 0,
            "aggregate": 0,
            "sku_week": 0,
            "plan_final": 0,
        }
    )
    assert (body["against"], body["base_reason"], body["source"]) == ("v-files", "given", "artifacts")


def test_diff_is_this_version_minus_its_base_in_units_kpis_first(planned):
    # v-db (one pre-build month) against v-both: what pre-building changes
    body = planned.get("/plans/v-db/diff?against=v-both&limit=5000").json()
    assert (body["against"], body["source"]) == ("v-both", "rows")  # both held as rows: found in SQL
    assert body["summary"]["aggregate"] > 0 and body["summary"]["kpis"] > 0
    levels = [r["level"] for r in body["rows"]]
    assert levels == sorted(levels, key=["kpis", "aggregate", "sku_week", "plan_final"].index)
    base = {
        (r["family"], r["period"]): r
        for r in planned.get("/plans/v-both/aggregate?limit=5000").json()["rows"]
    }
    this = {
        (r["family"], r["period"]): r for r in planned.get("/plans/v-db/aggregate?limit=5000").json()["rows"]
    }
    for row in body["rows"]:
        assert row["delta"] == pytest.approx(row["other"] - row["base"]) and row["delta"] != 0
        if row["level"] == "aggregate":
            key = tuple(row["key"].split("|"))
            assert (base[key][row["measure"]], this[key][row["measure"]]) == (row["base"], row["other"])
            assert row["unit"] == "units"
    prebuilt = [r for r in body["rows"] if r["level"] == "aggregate" and r["measure"] == "prebuild"]
    assert prebuilt and all(r["delta"] > 0 for r in prebuilt)  # this plan pre-builds, its base does not
    kpis = [r for r in body["rows"] if r["level"] == "kpis"]
    assert all(r["unit"] == KPI_UNITS[r["key"].split("|")[0]] for r in kpis)
    # the rows of v-files (artifacts) against v-db give the same answer, compared in Python
    files = planned.get("/plans/v-db/diff?against=v-files&limit=5000").json()
    assert (
        files["source"] == "artifacts"
        and files["rows"] == body["rows"]
        and files["summary"] == body["summary"]
    )
    page = planned.get("/plans/v-db/diff?against=v-both&limit=2&offset=1").json()
    assert page["rows"] == body["rows"][1:3] and page["total"] == body["total"]


def test_cursor_pages_of_a_diff_put_together_are_the_whole_diff_without_counts(planned):
    whole = planned.get("/plans/v-db/diff?against=v-both&limit=5000").json()
    assert whole["next"] is None and whole["total"] > 60
    rows, after, pages = [], None, 0
    while True:
        query = f"&after={after}" if after else "&counts=false"
        page = planned.get(f"/plans/v-db/diff?against=v-both&limit=20{query}")
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["summary"] is None and body["total"] is None and body["source"] == "rows"
        rows += body["rows"]
        pages += 1
        if body["next"] is None:
            break
        assert body["next"] != after
        after = body["next"]
    assert rows == whole["rows"] and pages > 2
    first = planned.get("/plans/v-db/diff?against=v-both&limit=20&counts=false").json()["rows"]
    assert [r["level"] for r in first[: whole["summary"]["kpis"]]] == ["kpis"] * whole["summary"]["kpis"]
    for bad in ("after=aggregate:9:1", "after=x", "counts=false&offset=3"):
        refused = planned.get(f"/plans/v-db/diff?against=v-both&{bad}")
        assert refused.status_code == 422 and refused.json()["error"] == "invalid request", bad
        assert "cursor" in refused.json()["detail"], bad


def test_diff_defaults_to_the_previous_version_of_the_input_set(planned):
    body = planned.get("/plans/v-db/diff?limit=1").json()
    assert (body["against"], body["base_reason"]) == ("v-files", "previous")
    first = planned.get("/plans/v-both/diff")
    assert first.status_code == 409
    assert "give the version to compare with" in first.json()["detail"]["message"]


def test_diff_csv_has_the_spec_columns_and_plain_numbers(planned):
    response = planned.get("/plans/v-db/diff.csv?against=v-both")
    lines = response.text.splitlines()
    assert lines[0] == "level,key,measure,base,other,delta"
    rows = _csv(response)
    assert len(rows) == planned.get("/plans/v-db/diff?against=v-both").json()["total"]
    assert not any(r[c].endswith(".0") for r in rows for c in ("base", "other", "delta"))


def test_diff_needs_a_valid_existing_other_version(planned):
    assert planned.get("/plans/v-both/diff?against=..%2Fx").status_code == 422
    missing = planned.get("/plans/v-both/diff.csv?against=ghost")
    assert missing.status_code == 404 and missing.json()["error"] == "plan not found"


# --- delete and failures --------------------------------------------------------------------------


def test_delete_removes_the_version_from_every_encoding(hub):
    hub.post("/plans/integrated/run", json={"version_id": "gone"})
    response = hub.delete("/plans/gone")
    assert response.status_code == 200 and response.json() == {"version_id": "gone", "deleted": True}
    assert hub.get("/plans/gone").status_code == 404
    assert _count("SELECT COUNT(*) FROM plan_series WHERE version_id = 'gone'") == 0
    assert _count("SELECT COUNT(*) FROM plan_artifacts WHERE version_id = 'gone'") == 0
    assert hub.delete("/plans/gone").status_code == 404


def test_an_unexpected_failure_is_a_500_without_a_stack_trace(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    _point_at(monkeypatch, url)
    with PlanStore().engine.begin() as conn:
        conn.execute(text("DROP TABLE plan_versions"))
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        response = client.get("/plans")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error", "detail": "see server log"}
    db.dispose_engines(url)


# --- PostgreSQL -----------------------------------------------------------------------------------


def test_run_page_csv_and_diff_on_either_database(db_url, monkeypatch):
    _point_at(monkeypatch, db_url)
    with TestClient(create_app()) as client:
        assert client.post("/plans/integrated/run", json={"version_id": "a"}).status_code == 201
        assert client.post("/plans/integrated/run?storage=files", json={"version_id": "b"}).status_code == 201
        rows_page = client.get("/plans/a/detail?sku=BL-500&limit=5").json()
        files_page = client.get("/plans/b/detail?sku=BL-500&limit=5").json()
        assert rows_page["source"] == "rows" and files_page["source"] == "artifacts"
        assert rows_page["rows"] == files_page["rows"] and rows_page["total"] == files_page["total"]
        assert len(_csv(client.get("/plans/a/final.csv"))) == client.get("/plans/a/final").json()["total"]
        assert client.get("/plans/a/diff?against=b").json()["total"] == 0
        sizes = {i["name"]: i["bytes"] for i in client.get("/plans/a/artifacts").json()["items"]}
        assert sizes["mrp.json"] == len(client.get("/plans/a/artifacts/mrp.json").content)
        assert client.get("/plans?limit=1&order=asc").json()["items"][0]["kpis"]["demand_total"] > 0
