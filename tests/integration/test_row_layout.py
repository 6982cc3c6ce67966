"""The PlanRepository stores each fact once, and versions written before it did still read, verify and
export exactly: an MRP row holds its item's constants only on the item's first week, a plan_final row
only what capacity reconciliation adds; a version whose rows hold every value on every row (the
earlier layout, planted here from the rows themselves) passes ``db check`` and exports the same
artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from app import db
from app.ops.check import check_database
from app.ops.export import export_version
from app.planning.pipeline import plan_input_set
from app.services.plans import PlanRequest, run_plan
from app.storage import codec_series, digests
from app.storage.plans import PlanStore, bulk_insert
from tests.conftest import SAMPLE


def planned(url: str, vid: str, mode: str = "both") -> Engine:
    db.init_db(url)
    engine = db.get_engine(url)
    run_plan(PlanRequest(input_dir=str(SAMPLE), version_id=vid), storage=mode, store=PlanStore(engine))
    return engine


def count(engine: Engine, statement: str, **params: object) -> int:
    with engine.connect() as conn:
        return conn.execute(text(statement), params).scalar_one()


def test_mrp_rows_hold_item_constants_once_and_plan_final_rows_only_the_adjusted_values(db_url: str) -> None:  # fmt: skip
    engine = planned(db_url, "v-once")
    items = count(engine, "SELECT COUNT(DISTINCT item_key) FROM plan_series WHERE version_id='v-once' AND level='mrp'")  # fmt: skip
    with_constants = count(
        engine, "SELECT COUNT(*) FROM plan_series WHERE version_id='v-once' AND level='mrp' AND lt_weeks IS NOT NULL"
    )  # fmt: skip
    assert with_constants == items
    assert count(
        engine, "SELECT COUNT(*) FROM plan_series WHERE version_id='v-once' AND level='mrp_final' AND gross_req IS NOT NULL"
    ) == 0  # fmt: skip
    mrp = count(engine, "SELECT COUNT(*) FROM plan_series WHERE version_id='v-once' AND level='mrp'")
    assert count(engine, "SELECT COUNT(*) FROM plan_series WHERE version_id='v-once' AND level='mrp_final'") == mrp  # fmt: skip
    assert check_database(engine, "v-once").ok


def test_api_tables_of_mrp_and_plan_final_read_whole_rows_from_the_layout(sqlite_url: str) -> None:
    from app.storage import views as tables

    engine = planned(sqlite_url, "v-pages")
    store = PlanStore(engine)
    content = store.read_artifacts("v-pages")
    assert content is not None
    for table, name in (("mrp", "mrp.json"), ("final", "plan_final.json")):
        expected = content.documents[name]["rows"]
        page = tables.read_rows_page(store, "v-pages", table, {}, 40, 30)
        assert page is not None and page.source == tables.ROWS
        assert page.rows == expected[30:70]
        item = expected[45]["item"]
        filtered = tables.read_rows_page(store, "v-pages", table, {"item": item}, 500, 0)
        assert filtered is not None
        assert filtered.rows == [r for r in expected if r["item"] == item]


def old_layout(engine: Engine, vid: str) -> None:
    """Rewrite a version's mrp and mrp_final rows as the earlier layout stored them (every value on
    every row) and record the rows digest of what is now stored, as a write of that layout did."""
    store = PlanStore(engine)
    content = store.read_rows(vid)
    assert content is not None
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM plan_series WHERE version_id = :v AND level IN ('mrp', 'mrp_final')"), {"v": vid})  # fmt: skip
        raw = conn.connection.dbapi_connection.cursor()
        for level in codec_series.LEVELS:
            if level.name not in ("mrp", "mrp_final"):
                continue
            table = content.documents[level.document][level.table]
            columns = ("version_id", "level", "time_bucket_type", "created_at", *codec_series.LEVEL_COLUMNS[level.name])  # fmt: skip
            rows = [(vid, level.name, "week", 1, i, *(r[k] for k in level.keys), None) for i, r in enumerate(table)]  # fmt: skip
            bulk_insert(raw, engine.dialect.name, "plan_series", columns, rows)
    now = store.rows_digest_now(vid)
    with engine.begin() as conn:
        digests.record(conn, vid, rows=now, artifacts=store.stored_digests(vid)[1])


@pytest.mark.parametrize("mode", ["both", "db"])
def test_a_version_in_the_earlier_row_layout_verifies_and_exports_what_the_pipeline_wrote(
    db_url: str, tmp_path: Path, mode: str
) -> None:
    engine = planned(db_url, "v-old", mode)
    old_layout(engine, "v-old")
    assert count(
        engine, "SELECT COUNT(*) FROM plan_series WHERE version_id='v-old' AND level='mrp_final' AND gross_req IS NULL"
    ) == 0  # fmt: skip
    report = check_database(engine, "v-old")
    assert report.ok, report.problems
    assert check_database(engine, "v-old", deep=True).ok
    written = export_version("v-old", tmp_path / "out", PlanStore(engine))
    pipeline = plan_input_set(SAMPLE, version_id="v-old")
    from app.storage import codec_artifacts

    expected = codec_artifacts.encode(pipeline)
    assert {p.name: p.read_text(encoding="utf-8") for p in written} == expected


@pytest.mark.parametrize("mode", ["both", "db"])
def test_plan_run_out_and_plan_export_write_the_same_bytes(tmp_path: Path, mode: str) -> None:
    """SPEC 7: the exporter writes what the pipeline wrote; in db mode it rebuilds them from the
    stored-once rows, while plan run --out writes the texts the run made."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "SCPLN_DB": str(tmp_path / "hub.db"), "COLUMNS": "200"}

    def scpln(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr

    scpln("plan", "run", "--input", str(SAMPLE), "--storage", mode, "--version-id", "v-out", "--out", str(tmp_path / "run"))  # fmt: skip
    scpln("plan", "export", "v-out", "-o", str(tmp_path / "export"))
    run = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    exported = {p.name: p.read_bytes() for p in (tmp_path / "export").iterdir()}
    assert run == exported and len(run) == 7


def test_rows_stored_in_null_runs_are_the_codecs_rows_value_for_value(db_url: str) -> None:
    """On SQLite a level is inserted as runs that leave their NULL columns and the shared values out
    of each row's parameters; what is stored must be exactly the codec's row tuples, NULLs included."""
    content = plan_input_set(SAMPLE, version_id="v-runs")
    expected = codec_series.encode(content)
    db.init_db(db_url)
    engine = db.get_engine(db_url)
    PlanStore(engine).write_version(content, mode="db")
    with engine.connect() as conn:
        for level, rows in expected.levels.items():
            columns = codec_series.LEVEL_COLUMNS[level]
            stored = conn.execute(
                text(
                    f"SELECT {', '.join(columns)}, time_bucket_type FROM plan_series "
                    "WHERE version_id = 'v-runs' AND level = :level ORDER BY seq"
                ),
                {"level": level},
            ).all()
            assert [tuple(r[:-1]) for r in stored] == [tuple(r) for r in rows], level
            assert {r[-1] for r in stored} <= {codec_series.LEVEL_BUCKET_TYPE[level]}
    assert expected.nulls["mrp"][1] and expected.nulls["mrp_final"][1]  # the sample has both kinds of NULL


@pytest.mark.parametrize("layout", ["once", "earlier"])
def test_whole_mrp_and_plan_final_levels_read_in_small_chunks_are_the_artifacts_rows(
    db_url: str, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    """A whole level that stores facts once is read as stored and filled in chunk by chunk: chunks of 7
    rows end inside items (the constants come from the chunk before) and plan_final borrows from the
    mrp rows of the same range. The CSV download and the SQL-paged filtered read agree with it."""
    from app.storage import views

    engine = planned(db_url, "v-whole")
    if layout == "earlier":
        old_layout(engine, "v-whole")
    store = PlanStore(engine)
    content = store.read_artifacts("v-whole")
    assert content is not None
    monkeypatch.setattr(views, "CSV_CHUNK_ROWS", 7)
    info = store.get_version("v-whole")
    for table, name in (("mrp", "mrp.json"), ("final", "plan_final.json")):
        expected = content.documents[name]["rows"]
        assert len(expected) % 7 and len(expected) > 70
        assert views.read_all(store, info, views.TABLES[table], views.ROWS) == expected, table
        source, chunks = views.csv_stream(store, "v-whole", table, {})
        whole_csv = "".join(chunks)
        assert source == views.ROWS and len(whole_csv.splitlines()) == len(expected) + 1
        item = expected[20]["item"]
        _, filtered = views.csv_stream(store, "v-whole", table, {"item": item})  # SQL expressions per field
        lines = "".join(filtered).splitlines()
        assert lines[1:] == [line for line in whole_csv.splitlines()[1:] if line.startswith(f"{item},")]


@pytest.mark.parametrize("kept", [10, 0])
def test_a_final_level_whose_mrp_rows_are_missing_is_refused_by_name_when_read_whole(
    sqlite_url: str, kept: int
) -> None:
    from app.storage import views

    engine = planned(sqlite_url, "v-gap", "db")
    with engine.begin() as conn:  # a hand-made fault: the mrp rows after the first ``kept`` are gone
        conn.execute(
            text("DELETE FROM plan_series WHERE version_id = 'v-gap' AND level = 'mrp' AND seq >= :k"),
            {"k": kept},
        )
    store = PlanStore(engine)
    with pytest.raises(
        ValueError, match="'mrp_final' of 'v-gap': rows 0 to .* do not line up with level 'mrp'"
    ):
        views.read_all(store, store.get_version("v-gap"), views.TABLES["final"], views.ROWS)


@pytest.fixture(scope="module")
def stored_once(tmp_path_factory: pytest.TempPathFactory) -> PlanStore:
    url = f"sqlite:///{tmp_path_factory.mktemp('chunks') / 'scpln.db'}"
    store = PlanStore(planned(url, "v-chunks", "db"))
    yield store
    db.dispose_engines(url)


@settings(max_examples=20, deadline=None)
@given(chunk=st.integers(min_value=2, max_value=90))
def test_whole_levels_read_in_chunks_of_any_size_are_what_the_codec_decodes(stored_once: PlanStore, chunk: int) -> None:  # fmt: skip
    from app.storage import views

    decoded = stored_once.read_rows("v-chunks")
    assert decoded is not None
    info = stored_once.get_version("v-chunks")
    kept = views.CSV_CHUNK_ROWS
    views.CSV_CHUNK_ROWS = chunk
    try:
        for table, name in (("mrp", "mrp.json"), ("final", "plan_final.json")):
            read = views.read_all(stored_once, info, views.TABLES[table], views.ROWS)
            assert read == decoded.documents[name]["rows"], (table, chunk)
    finally:
        views.CSV_CHUNK_ROWS = kept
