"""``scpln db check`` (SPEC 7): every corruption an operator can meet, planted by hand in a real
database, is found and named by version and kind; a healthy database passes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

from app import db
from app.errors import PlanNotFound
from app.ops.check import check_database, last_check
from app.services.plans import PlanRequest, run_plan
from app.storage import digests, ready_copy
from app.storage.plans import PlanStore
from tests.conftest import ROOT, SAMPLE


def planned(url: str, **versions: str) -> Engine:
    """A database at ``url`` holding the sample plan once per ``version_id=mode``."""
    db.init_db(url)
    engine = db.get_engine(url)
    store = PlanStore(engine)
    for vid, mode in versions.items():
        run_plan(PlanRequest(input_dir=str(SAMPLE), version_id=vid), storage=mode, store=store)
    return engine


def sql(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def artifact(engine: Engine, vid: str, name: str) -> str:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT json_text FROM plan_artifacts WHERE version_id = :v AND name = :n"),
            {"v": vid, "n": name},
        ).scalar_one()


def set_artifact(engine: Engine, vid: str, name: str, body: str) -> None:
    sql(
        engine,
        "UPDATE plan_artifacts SET json_text = :t WHERE version_id = :v AND name = :n",
        t=body,
        v=vid,
        n=name,
    )


def edit_artifact(engine: Engine, vid: str, name: str, row: int, key: str, delta: int) -> None:
    document = json.loads(artifact(engine, vid, name))
    document["rows"][row][key] += delta
    set_artifact(engine, vid, name, json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n")


def found(report, vid: str | None) -> set[str]:
    return {p.kind for p in report.problems if p.version_id == vid}


def test_a_healthy_database_with_the_sample_in_every_mode_is_ok(db_url: str) -> None:
    engine = planned(db_url, **{"v-db": "db", "v-files": "files", "v-both": "both"})
    report = check_database(engine)
    assert report.ok, report.as_text()
    assert report.versions_checked == 3
    assert "OK" in report.as_text()
    recorded = last_check(engine)
    assert recorded["ok"] is True and recorded["versions"] == 3 and recorded["problems"] == 0


def test_healthy_plans_with_prebuild_cutover_and_float_rounding_pass(sqlite_url: str) -> None:
    from app.planning.model import PlanParams

    engine = planned(sqlite_url)
    store = PlanStore(engine)
    variants = [
        PlanParams(prebuild_months=2, cutover_date="2026-04-15", recon_window_days=14, anchor_policy="blend"),
        PlanParams(round_mode="none", cutover_date="2026-03-10", anchor_policy="DET_near", carryover="auto"),
        PlanParams(round_mode="dec1", cutover_date="2026-05-01", anchor_policy="AGG_far"),
    ]
    for i, params in enumerate(variants):
        run_plan(
            PlanRequest(input_dir=str(SAMPLE), version_id=f"p{i}", params=params), storage="both", store=store
        )
    report = check_database(engine)
    assert report.ok, report.as_text()


def test_a_level_without_rows_is_a_missing_level(db_url: str) -> None:
    engine = planned(db_url, **{"v-db": "db", "v-ok": "db"})
    sql(engine, "DELETE FROM plan_series WHERE version_id = 'v-db' AND level = 'det'")
    report = check_database(engine)
    assert "missing_level" in found(report, "v-db")
    assert any("level det" in p.detail for p in report.for_version("v-db"))
    assert found(report, "v-ok") == set()


def test_a_version_in_db_mode_without_any_rows_is_reported(sqlite_url: str) -> None:
    engine = planned(sqlite_url, **{"v-both": "both"})
    sql(engine, "DELETE FROM plan_series WHERE version_id = 'v-both'")
    sql(engine, "DELETE FROM plan_kpis WHERE version_id = 'v-both'")
    assert found(check_database(engine), "v-both") == {"missing_rows"}


def test_a_deleted_core_artifact_is_reported_but_a_missing_derived_one_is_not(db_url: str) -> None:
    engine = planned(db_url, **{"v-files": "files", "v-derived": "files"})
    sql(engine, "DELETE FROM plan_artifacts WHERE version_id = 'v-files' AND name = 'mrp.json'")
    sql(engine, "DELETE FROM plan_artifacts WHERE version_id = 'v-derived' AND name = 'exceptions.json'")
    report = check_database(engine)
    assert found(report, "v-files") == {"missing_artifact"}
    assert "mrp.json" in report.for_version("v-files")[0].detail
    assert found(report, "v-derived") == set()


def test_a_changed_number_in_plan_series_makes_the_encodings_disagree(db_url: str) -> None:
    engine = planned(db_url, **{"v-both": "both"})
    sql(
        engine,
        "UPDATE plan_series SET capacity_total = capacity_total + 1 "
        "WHERE version_id = 'v-both' AND level = 'aggregate' AND seq = 3",
    )
    report = check_database(engine)
    assert found(report, "v-both") == {"encoding_mismatch"}
    detail = report.for_version("v-both")[0].detail
    assert "aggregate.json" in detail and "rows[3]" in detail and "'capacity_total'" in detail


def test_the_decision_log_must_be_the_same_in_both_encodings(db_url: str) -> None:
    """A both-mode version's PSI events live as plan_override_events rows and in psi_state.json: an
    event in one and not the other is an encoding mismatch naming the PSI document."""
    from app.services import psi

    engine = planned(db_url, **{"v-both": "both"})
    store = PlanStore(engine)
    cell = psi.psi_view("v-both", "det", limit=1, store=store)["rows"][0]
    psi.apply_edits("v-both", "det", [{"key": cell["key"], "field": "demand", "value": cell["demand"] + 1}],
                    note="promo", actor="ann", store=store)  # fmt: skip
    psi.submit("v-both", "ann", store=store)
    assert check_database(engine).ok
    state = json.loads(artifact(engine, "v-both", "psi_state.json"))
    assert [e["type"] for e in state["events"]] == ["edit", "submit"]
    assert (state["events"][0]["actor"], state["events"][0]["note"]) == ("ann", "promo")
    sql(engine, "DELETE FROM plan_override_events WHERE version_id = 'v-both' AND event_type = 'submit'")
    report = check_database(engine)
    assert found(report, "v-both") == {"encoding_mismatch"}
    assert any("psi_state.json" in p.detail for p in report.for_version("v-both"))


def test_a_changed_number_in_an_artifact_makes_the_encodings_disagree(db_url: str) -> None:
    engine = planned(db_url, **{"v-both": "both"})
    edit_artifact(engine, "v-both", "mrp.json", 7, "moq", 5)
    report = check_database(engine)
    assert found(report, "v-both") == {"encoding_mismatch"}
    detail = report.for_version("v-both")[0].detail
    assert "mrp.json" in detail and "rows[7]" in detail and "'moq'" in detail


def test_corrupt_artifact_json_is_a_decode_error_not_a_crash(db_url: str) -> None:
    engine = planned(db_url, **{"v-both": "both", "v-files": "files"})
    for vid in ("v-both", "v-files"):
        set_artifact(engine, vid, "sku_week.json", artifact(engine, vid, "sku_week.json")[:500])
    report = check_database(engine)
    for vid in ("v-both", "v-files"):
        problems = [p for p in report.for_version(vid) if p.kind == "decode_error"]
        assert problems and problems[0].encoding == "artifacts" and "sku_week.json" in problems[0].detail


def test_an_aggregate_identity_broken_in_both_encodings_is_reported(db_url: str) -> None:
    engine = planned(db_url, **{"v-both": "both"})
    edit_artifact(engine, "v-both", "aggregate.json", 4, "inventory_close", 7)
    sql(
        engine,
        "UPDATE plan_series SET inventory_close = inventory_close + 7 "
        "WHERE version_id = 'v-both' AND level = 'aggregate' AND seq = 4",
    )
    report = check_database(engine)
    assert found(report, "v-both") == {"aggregate_identity"}
    assert "rows[4]" in report.for_version("v-both")[0].detail


@pytest.mark.parametrize(
    ("level", "column", "kind"),
    [("det", "demand", "conservation"), ("mrp", "on_hand_end", "mrp_identity"),
     ("mrp", "gross_req", "mrp_identity"), ("det", "backlog", "conservation")],
)  # fmt: skip
def test_a_broken_plan_identity_in_the_rows_is_reported(
    sqlite_url: str, level: str, column: str, kind: str
) -> None:
    engine = planned(sqlite_url, **{"v-db": "db"})
    sql(
        engine,
        f"UPDATE plan_series SET {column} = {column} + 3 WHERE version_id = 'v-db' AND level = :l AND seq = 11",
        l=level,
    )
    assert found(check_database(engine), "v-db") == {kind}


def test_a_plan_final_row_holding_part_of_its_planned_values_is_a_decode_error(sqlite_url: str) -> None:
    # a plan_final row holds only the adjusted values; its planned part is the mrp row's
    engine = planned(sqlite_url, **{"v-db": "db"})
    sql(
        engine,
        "UPDATE plan_series SET gross_req = 3 WHERE version_id = 'v-db' AND level = 'mrp_final' AND seq = 11",
    )
    problems = [p for p in check_database(engine).for_version("v-db") if p.kind == "decode_error"]
    assert problems and "row 11" in problems[0].detail


def test_a_plan_series_row_deleted_in_the_middle_is_a_seq_gap(db_url: str) -> None:
    engine = planned(db_url, **{"v-both": "both"})
    sql(engine, "DELETE FROM plan_series WHERE version_id = 'v-both' AND level = 'mrp' AND seq = 100")
    report = check_database(engine)
    problems = [p for p in report.for_version("v-both") if p.kind == "decode_error"]
    assert problems and problems[0].encoding == "rows" and "seq" in problems[0].detail


def test_an_orphan_plan_series_row_fails_the_foreign_key_check(sqlite_url: str) -> None:
    engine = planned(sqlite_url, **{"v-db": "db"})
    db.dispose_engines(sqlite_url)
    raw = sqlite3.connect(db.sqlite_path(sqlite_url))
    raw.execute("PRAGMA foreign_keys = OFF")
    raw.execute("INSERT INTO plan_series (version_id, level, seq, created_at) VALUES ('ghost', 'det', 0, 0)")
    raw.commit()
    raw.close()
    report = check_database(db.get_engine(sqlite_url))
    assert found(report, "ghost") == {"foreign_key"}
    assert found(report, "v-db") == set()
    assert engine is not None


def test_a_corrupt_index_page_fails_the_integrity_check(sqlite_url: str) -> None:
    planned(sqlite_url, **{"v-files": "files"})
    db.dispose_engines(sqlite_url)  # the last connection checkpoints the WAL into the file
    path = db.sqlite_path(sqlite_url)
    raw = sqlite3.connect(path)
    page_size = raw.execute("PRAGMA page_size").fetchone()[0]
    root = raw.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'ix_plan_versions_created_at'"
    ).fetchone()[0]
    raw.close()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    with open(path, "r+b") as handle:  # the index is a single leaf page; its cells sit at the page end
        handle.seek((root - 1) * page_size + page_size // 2)
        handle.write(b"\xff" * (page_size - page_size // 2))
    report = check_database(db.get_engine(sqlite_url))
    assert not report.ok
    assert "integrity_check" in found(report, None)


def test_checking_one_version_reports_only_that_version(sqlite_url: str) -> None:
    engine = planned(sqlite_url, **{"v-bad": "files", "v-good": "files"})
    sql(engine, "DELETE FROM plan_artifacts WHERE version_id = 'v-bad' AND name = 'report.csv'")
    assert check_database(engine, "v-good").ok
    single = check_database(engine, "v-bad")
    assert single.versions_checked == 1 and found(single, "v-bad") == {"missing_artifact"}
    assert last_check(engine) is None  # only whole-database checks are recorded
    with pytest.raises(PlanNotFound):
        check_database(engine, "nope")


def scpln(*args: str, database: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "SCPLN_DB": str(database), "COLUMNS": "200"},
    )  # fmt: skip


def test_db_check_cli_exits_0_when_healthy_and_1_with_a_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    engine = planned(url, **{"v-1": "both"})
    healthy = scpln("db", "check", database=tmp_path / "hub.db")
    assert healthy.returncode == 0, healthy.stderr
    assert "OK" in healthy.stdout
    sql(engine, "DELETE FROM plan_series WHERE version_id = 'v-1' AND level = 'weekly_summary'")
    broken = scpln("db", "check", "--json", database=tmp_path / "hub.db")
    assert broken.returncode == 1
    report = json.loads(broken.stdout)
    assert report["ok"] is False
    assert {"version_id": "v-1", "kind": "missing_level"}.items() <= report["problems"][0].items()
    db.dispose_engines(url)


# --- write generations (revision 0005) -----------------------------------------------------------


def by_hand(url: str, statement: str, *params: object) -> None:
    """One statement through the database's own driver, outside the application: what an operator
    typing into ``sqlite3`` or ``psql`` does (no engine event, no plan store)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with sqlite3.connect(parsed.database) as conn:
            conn.execute(statement, params)
        return
    dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        conn.execute(statement.replace("?", "%s"), params)


def generations(engine: Engine, vid: str) -> tuple[int, ...]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                text(
                    "SELECT rows_generation, artifacts_generation, copy_generation FROM plan_write_generations "
                    "WHERE version_id = :v"
                ),
                {"v": vid},
            ).one()
        )


@pytest.mark.parametrize(
    ("statement", "encoding"),
    [
        ("UPDATE plan_series SET demand = demand + 1 WHERE version_id = ? AND level = 'det' AND seq = 3", 0),
        ("DELETE FROM plan_kpis WHERE version_id = ? AND seq = 0", 0),
        (
            "INSERT INTO plan_override_events (version_id, event_type, event_ts, actor) VALUES (?, 'edit', 1, 'x')",
            0,
        ),
        (
            "UPDATE plan_artifacts SET created_at = created_at + 1 WHERE version_id = ? AND name = 'report.csv'",
            1,
        ),
        ("DELETE FROM plan_ready_copies WHERE version_id = ?", 2),
    ],
)
def test_every_hand_made_write_to_a_content_table_changes_the_generation(
    db_url: str, statement: str, encoding: int
) -> None:
    # the ready copy is a db-mode version's (a both-mode version's artifacts are its copy)
    engine = planned(db_url, v="db" if encoding == 2 else "both")
    ready_copy.wait()
    before = generations(engine, "v")
    by_hand(db_url, statement, "v")
    after = generations(engine, "v")
    assert after[encoding] > before[encoding]
    assert [a for i, a in enumerate(after) if i != encoding] == [
        b for i, b in enumerate(before) if i != encoding
    ]


def triggers(path: str) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
        ).fetchall()


def test_a_store_write_raises_generations_once_and_leaves_every_trigger_as_it_was(sqlite_url: str) -> None:
    path = make_url(sqlite_url).database
    db.init_db(sqlite_url)
    before = triggers(path)
    assert len(before) == 18  # insert, update and delete on each of the six content tables
    engine = planned(sqlite_url, v="both", f="files", d="db")
    ready_copy.wait()
    assert triggers(path) == before
    # a new version's counters start after its content: its own bulk insert raised nothing
    assert generations(engine, "v") == (1, 1, 1)
    # into a version that has counters, a bulk insert raises each generation it writes to once, not
    # once per row; outside it, every row counts
    insert = text(
        "INSERT INTO plan_kpis (version_id, seq, metric, bucket_type, bucket_key, value, unit, created_at) "
        "VALUES ('v', :seq, 'm', 'total', 'k' || :seq, 1, 'u', 0)"
    )
    with engine.begin() as conn, digests.bulk_insert_generations(conn, "v", ["plan_kpis"]):
        conn.execute(insert, [{"seq": 1000 + i} for i in range(5)])
    assert generations(engine, "v") == (2, 1, 1)
    assert triggers(path) == before
    with engine.begin() as conn:
        conn.execute(insert, [{"seq": 2000 + i} for i in range(5)])
    assert generations(engine, "v") == (7, 1, 1)
    by_hand(sqlite_url, "DELETE FROM plan_kpis WHERE version_id = ? AND seq = 0", "v")
    assert generations(engine, "v")[0] == 8


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE plan_series SET supply = supply + 1 WHERE version_id = ? AND level = 'aggregate' AND seq = 0",
        "DELETE FROM plan_artifacts WHERE version_id = ? AND name = 'mrp.json'",
    ],
)
def test_corruption_planted_by_hand_is_found_without_deep(db_url: str, statement: str) -> None:
    engine = planned(db_url, v="both", w="both")
    ready_copy.wait()
    assert check_database(engine).ok
    by_hand(db_url, statement, "v")
    report = check_database(engine)
    assert found(report, "v") and not found(report, "w"), report.as_text()


def test_a_version_not_written_since_certified_is_checked_without_reading_its_content(
    sqlite_url: str,
) -> None:
    engine = planned(sqlite_url, v="both", d="db", f="files")
    ready_copy.wait()
    statements: list[str] = []
    db.dispose_engines(sqlite_url)
    engine = db.get_engine(sqlite_url)
    event.listen(engine, "connect", lambda dbapi, _record: dbapi.set_trace_callback(statements.append))
    content = ("plan_series", "plan_kpis", "plan_artifacts", "plan_overrides", "plan_override_events")
    for version_id in ("v", "d", "f"):
        statements.clear()
        assert check_database(engine, version_id).ok
        assert statements, "the trace sees the check's statements"
        assert not [s for s in statements if any(t in s for t in content)], statements
    # a value changed by hand: that version is read again, and only it
    by_hand(sqlite_url, "UPDATE plan_series SET demand = demand WHERE version_id = 'v' AND seq = 0")
    statements.clear()
    assert check_database(engine, "v").ok
    assert [s for s in statements if "plan_series" in s]
    statements.clear()
    assert check_database(engine, "d").ok and not [s for s in statements if "plan_series" in s]
