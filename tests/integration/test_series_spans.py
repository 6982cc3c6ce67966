"""A version's spans are written with its rows, replaced when the rows are written again and deleted
with the version; pages about one family or a few items read through them exactly what a scan of the
level reads, and versions without spans (stored before they existed) still read by scanning."""

from __future__ import annotations

from sqlalchemy import Engine, text

from app import db
from app.services import psi
from app.services.plans import PlanRequest, run_plan
from app.storage import spans, views
from app.storage.plans import PlanStore
from tests.conftest import SAMPLE


def planned(url: str, vid: str, mode: str = "db") -> PlanStore:
    db.init_db(url)
    store = PlanStore(db.get_engine(url))
    run_plan(PlanRequest(input_dir=str(SAMPLE), version_id=vid), storage=mode, store=store)
    return store


def span_rows(engine: Engine, vid: str) -> list[tuple]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT level, key_kind, key, first_seq, last_seq FROM plan_series_spans "
                    "WHERE version_id = :v ORDER BY level, key_kind, key, first_seq"
                ),
                {"v": vid},
            )
        ]


def scanned(engine: Engine, vid: str, level: str, column: str) -> dict[str, list[int]]:
    """Each key's seqs, read by scanning the level."""
    out: dict[str, list[int]] = {}
    with engine.connect() as conn:
        for key, seq in conn.execute(
            text(f"SELECT {column}, seq FROM plan_series WHERE version_id = :v AND level = :l ORDER BY seq"),
            {"v": vid, "l": level},
        ):
            if key is not None:
                out.setdefault(key, []).append(seq)
    return out


def test_spans_cover_exactly_each_familys_and_items_rows(db_url: str) -> None:
    store = planned(db_url, "v-spans")
    found = span_rows(store.engine, "v-spans")
    assert {(level, kind) for level, kind, *_ in found} == {
        (level, kind) for level, kinds in spans.SPANNED.items() for kind in kinds
    }
    for level, kinds in spans.SPANNED.items():
        for kind in kinds:
            seqs = scanned(store.engine, "v-spans", level, spans.KEY_COLUMN[kind])
            covered: dict[str, list[int]] = {}
            for lv, kd, key, first, last in found:
                if (lv, kd) == (level, kind):
                    covered.setdefault(key, []).extend(range(first, last + 1))
            assert covered == seqs, (level, kind)


def test_a_family_and_items_read_the_same_through_spans_and_by_scanning(db_url: str) -> None:
    store = planned(db_url, "v-read")
    reader = psi.PsiReader.of_family("v-read", None, store=store)
    family = reader.family
    items = [c["sku"] for c in reader.view("det", {}, 3, 0)["rows"]] + ["no-such-item"]
    with_spans = (reader.view("det", {}, 10_000, 0), reader.view("aggregate", {}, 10_000, 0))
    records = views.item_records(store, "v-read", items)
    assert with_spans[0]["total"] > 0 and records[items[0]] and records["no-such-item"] == []

    with store.engine.begin() as conn:  # as a version stored before spans existed
        conn.execute(text("DELETE FROM plan_series_spans WHERE version_id = 'v-read'"))
    with store.engine.connect() as conn:
        assert spans.seq_ranges(conn, "v-read", "det", "group", [family]) is None
    again = psi.PsiReader.of_family("v-read", family, store=store)
    assert (again.view("det", {}, 10_000, 0), again.view("aggregate", {}, 10_000, 0)) == with_spans
    assert views.item_records(store, "v-read", items) == records


def test_rewritten_rows_replace_the_spans_and_a_purge_deletes_them(db_url: str) -> None:
    store = planned(db_url, "v-again", mode="both")
    before = span_rows(store.engine, "v-again")
    content = store.read_artifacts("v-again")
    assert content is not None and before
    store.write_rows(content)  # the roll-forward's backfill writes rows again
    assert span_rows(store.engine, "v-again") == before
    store.purge_versions(["v-again"])
    assert span_rows(store.engine, "v-again") == []


def test_a_kept_family_grid_is_not_read_again_until_the_rows_change(db_url: str) -> None:
    """A family's base grid is kept under the version's rows generation: the next page reads none of
    the family's rows, and a write to the rows, even one made by hand in SQL, is seen at once."""
    store = planned(db_url, "v-kept")
    first = psi.PsiReader.of_family("v-kept", None, store=store)
    family = first.family
    cell = first.view("det", {}, 1, 0)["rows"][0]
    again = psi.PsiReader.of_family("v-kept", family, store=store)
    assert again.grid is first.grid  # kept: not read or decoded again
    with store.engine.begin() as conn:  # an operator's hand-made UPDATE raises the rows generation
        conn.execute(
            text(
                "UPDATE plan_series SET demand = demand + 7 WHERE version_id = 'v-kept' AND level = 'det' "
                "AND item_key = :sku AND group_key = :family AND seq = ("
                "SELECT MIN(seq) FROM plan_series WHERE version_id = 'v-kept' AND level = 'det' AND item_key = :sku)"
            ),
            {"sku": cell["sku"], "family": family},
        )
    changed = psi.PsiReader.of_family("v-kept", family, store=store)
    assert changed.grid is not first.grid
    assert changed.view("det", {}, 1, 0)["rows"][0]["base_demand"] == cell["base_demand"] + 7
