"""The C writer of level texts (app.storage.rowtext): byte for byte the codec's text where it makes a
level, and the level left to row-by-row decoding wherever a value falls outside its simple cases."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from plan_strategies import plan_contents
from sqlalchemy import text

from app import db
from app.planning.model import PlanContent
from app.services.plans import PlanRequest, run_plan
from app.storage import codec_artifacts, codec_series, digests, rowtext
from app.storage.plans import TEXT_LEVELS, PlanStore

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "planning"
LEVELS = {level.name: level for level in codec_series.LEVELS}
LARGE = {"aggregate", "det", "mrp", "mrp_final"}


def open_store(path: Path) -> PlanStore:
    url = f"sqlite:///{path}"
    db.init_db(url)
    return PlanStore(db.get_engine(url))


def row_by_row(path: Path, version_id: str, name: str) -> bytes:
    """The codec's canonical text of one level, from rows read with the sqlite3 module."""
    query = (
        f"SELECT {', '.join(codec_series.LEVEL_COLUMNS[name])} FROM plan_series "
        "WHERE version_id = ? AND level = ? ORDER BY seq"
    )
    with sqlite3.connect(path) as conn:
        rows = conn.execute(query, (version_id, name)).fetchall()
    return orjson.dumps(codec_series._level_fragment(LEVELS[name], rows))


def texts_of(content: PlanContent) -> dict[str, str]:
    return codec_artifacts.encode(content, validated=True)


def planned(path: Path, version_id: str) -> PlanStore:
    store = open_store(path)
    run_plan(PlanRequest(input_dir=str(SAMPLE), version_id=version_id), storage="db", store=store)
    return store


def test_the_c_writer_is_built() -> None:
    assert rowtext.built(), "app/storage/_rowtext.c was not compiled (gcc and SQLite's headers are needed)"


def test_every_json_level_of_a_real_plan_is_made_and_equals_the_row_by_row_text(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    store = planned(path, "c1")
    made = rowtext.level_texts(path, "c1", TEXT_LEVELS)
    assert LARGE <= set(made), "the large tables take the fast path"
    for name, (fragment, count) in made.items():
        assert orjson.dumps(fragment) == row_by_row(path, "c1", name), name
        with sqlite3.connect(path) as conn:
            (expected,) = conn.execute(
                "SELECT COUNT(*) FROM plan_series WHERE version_id = 'c1' AND level = ?", (name,)
            ).fetchone()
        assert count == expected
    assert texts_of(store.read_rows_as_text("c1")) == texts_of(store.read_rows("c1"))


@pytest.mark.parametrize(
    ("change", "level"),
    [
        ("UPDATE plan_series SET demand = demand + 0.25 WHERE level = 'det' AND seq = 1", "det"),
        ("UPDATE plan_series SET item_key = 'say \"hi\"' WHERE level = 'mrp' AND seq = 0", "mrp"),
        ("UPDATE plan_series SET item_key = 'back\\slash' WHERE level = 'mrp' AND seq = 0", "mrp"),
        ("UPDATE plan_series SET item_key = 'tab' || char(9) || 'here' WHERE level = 'mrp' AND seq = 0", "mrp"),
        ("UPDATE plan_series SET extra_json = '{\"note\": 1}' WHERE level = 'mrp_final' AND seq = 2", "mrp_final"),
        ("UPDATE plan_series SET gross_req = NULL WHERE level = 'mrp' AND seq = 3", "mrp"),
        ("UPDATE plan_series SET gross_req = 9007199254740994.0 WHERE level = 'mrp' AND seq = 3", "mrp"),
    ],
)  # fmt: skip
def test_values_outside_the_simple_cases_leave_the_level_to_row_by_row_decoding(
    tmp_path: Path, change: str, level: str
) -> None:
    path = tmp_path / "hub.db"
    store = planned(path, "c2")
    with store.engine.begin() as conn:
        conn.execute(text(change + " AND version_id = 'c2'"))
    made = rowtext.level_texts(path, "c2", TEXT_LEVELS)
    assert level not in made
    assert LARGE - {level} <= set(made)
    assert texts_of(store.read_rows_as_text("c2")) == texts_of(store.read_rows("c2"))


def test_a_gap_in_seq_is_not_made_and_the_rows_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    store = planned(path, "c3")
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM plan_series WHERE version_id = 'c3' AND level = 'det' AND seq = 4"))
    assert "det" not in rowtext.level_texts(path, "c3", ["det"])
    with pytest.raises(ValueError, match="seq"):
        store.read_rows_as_text("c3")


def test_without_a_database_file_nothing_is_made(tmp_path: Path) -> None:
    assert rowtext.level_texts(tmp_path / "missing" / "hub.db", "v", TEXT_LEVELS) == {}
    assert not (tmp_path / "missing").exists(), "nothing is created"


_ids = itertools.count()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=plan_contents())
def test_random_plans_read_as_text_give_the_codec_s_artifacts(tmp_path: Path, content: PlanContent) -> None:
    """Whatever the values (unicode, escapes, fractions, nulls, empty tables), the texts made with the C
    writer's levels equal the codec's: each level is either made exactly or left to the codec."""
    store = open_store(tmp_path / "random.db")
    version_id = f"r{next(_ids)}"
    store.write_version(PlanContent(version_id, content.params, content.documents), mode="db")
    assert texts_of(store.read_rows_as_text(version_id)) == texts_of(store.read_rows(version_id))


def python_rows_digest(store: PlanStore, version_id: str) -> str:
    """The rows digest from rows read with the sqlite3 module (no C writer)."""
    _head, levels, kpis, _overrides, _events = store._fetch_rows(version_id, psi=False)
    return store._digest_of_read(levels, kpis)


def test_rows_texts_are_what_orjson_writes_for_the_row_tuples_and_give_the_same_digest(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hub.db"
    store = planned(path, "d1")
    made = rowtext.rows_texts(path, "d1", digests.DIGEST_LEVELS)
    assert LARGE <= set(made)
    _head, levels, _kpis, _o, _e = store._fetch_rows("d1", psi=False)
    for name, (body, count) in made.items():
        assert body == orjson.dumps(levels.get(name, [])) and count == len(levels.get(name, [])), name
    assert store.rows_digest_now("d1") == python_rows_digest(store, "d1") == store.stored_digests("d1")[0]


@pytest.mark.parametrize(
    ("change", "level"),
    [
        ("UPDATE plan_series SET demand = 0.1 WHERE level = 'det' AND seq = 1", "det"),
        ("UPDATE plan_series SET gross_req = 1e17 WHERE level = 'mrp' AND seq = 3", "mrp"),
        ("UPDATE plan_series SET item_key = 'say \"hi\"' WHERE level = 'mrp' AND seq = 0", "mrp"),
        ("UPDATE plan_series SET item_key = X'00ff' WHERE level = 'mrp_final' AND seq = 0", "mrp_final"),
    ],
)
def test_rows_outside_the_simple_cases_are_hashed_row_by_row(tmp_path: Path, change: str, level: str) -> None:
    path = tmp_path / "hub.db"
    store = planned(path, "d2")
    with store.engine.begin() as conn:
        conn.execute(text(change + " AND version_id = 'd2'"))
    assert level not in rowtext.rows_texts(path, "d2", digests.DIGEST_LEVELS)
    if "X'00ff'" in change:  # a blob is no plan value: hashing it fails as it always did
        with pytest.raises(TypeError):
            store.rows_digest_now("d2")
        return
    assert store.rows_digest_now("d2") == python_rows_digest(store, "d2") != store.stored_digests("d2")[0]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=plan_contents())
def test_random_plans_have_the_same_rows_digest_either_way(tmp_path: Path, content: PlanContent) -> None:
    store = open_store(tmp_path / "random-digest.db")
    version_id = f"d{next(_ids)}"
    store.write_version(PlanContent(version_id, content.params, content.documents), mode="db")
    assert store.rows_digest_now(version_id) == python_rows_digest(store, version_id)
    assert store.rows_digest_now(version_id) == store.stored_digests(version_id)[0]


def test_a_dry_run_rollback_says_when_the_c_writer_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.ops.rollback import rollback

    store = planned(tmp_path / "hub.db", "n1")

    def plan_text() -> str:
        report = rollback(
            store.engine, dry_run=True, state_file=tmp_path / "s.json", backup_dir=tmp_path / "b",
            tmp_dir=tmp_path / "t",
        )  # fmt: skip
        return "\n".join(report.plan)

    assert "not built" not in plan_text()
    monkeypatch.setattr(rowtext, "_rowtext", None)
    assert "C text writer (app/storage/_rowtext.c) is not built" in plan_text()
    assert rowtext.level_texts(tmp_path / "hub.db", "n1", TEXT_LEVELS) == {}
    assert texts_of(store.read_rows_as_text("n1")) == texts_of(store.read_rows("n1"))


def test_row_tables_without_meta_rows_are_refused_either_way(tmp_path: Path) -> None:
    store = planned(tmp_path / "hub.db", "m1")
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "DELETE FROM plan_series WHERE version_id = 'm1' AND level NOT IN ('det', 'mrp', 'mrp_final')"
            )
        )
        conn.execute(text("DELETE FROM plan_kpis WHERE version_id = 'm1'"))
    with pytest.raises(ValueError, match="meta"):
        store.read_rows_as_text("m1")
    with pytest.raises(ValueError, match="has rows but no"):
        store.read_rows("m1")
