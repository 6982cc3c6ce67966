"""Recomputing the derived artifacts from the core five (SPEC 4.2), in memory and in the plan store."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app import db
from app.errors import EncodingMissing
from app.planning import documents as docs
from app.planning.calendar import derive_calendar
from app.planning.derive import DerivationError, complete_documents, derive_documents
from app.planning.inputs import load_input_set
from app.planning.model import CORE_ARTIFACTS, DERIVED_ARTIFACTS, PLAN_ARTIFACTS, PlanParams
from app.planning.pipeline import plan_input_set, run_pipeline
from app.planning.samplegen import calendar_document, generate_sample
from app.storage.plans import PlanStore
from app.storage.schema import plan_artifacts
from tests.conftest import SAMPLE


def core_five(content) -> dict:
    return {n: content.documents[n] for n in CORE_ARTIFACTS}


def assert_derived_like_pipeline(content) -> None:
    derived = derive_documents(core_five(content))
    assert sorted(derived) == sorted(DERIVED_ARTIFACTS)
    for name in DERIVED_ARTIFACTS:
        assert docs.dumps(derived[name]) == docs.dumps(content.documents[name]), name


def scale_capacity(folder: Path, factor: float) -> None:
    path = folder / "capacity.csv"
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    lines = ["workcenter,period,capacity"]
    lines += [f"{r['workcenter']},{r['period']},{round(float(r['capacity']) * factor)}" for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def sample_plan():
    return plan_input_set(SAMPLE, PlanParams(), version_id="derive-sample")


@pytest.fixture(scope="module")
def tight_plan(tmp_path_factory):
    """A generated plan whose capacity is far too small: overloads, spills and unplaced quantity."""
    folder = generate_sample(
        tmp_path_factory.mktemp("tight"), families=2, skus_per_family=3, components=4, months=3, seed=7
    )
    scale_capacity(folder, 0.3)
    return run_pipeline(load_input_set(folder), PlanParams(), version_id="derive-tight")


# --------------------------------------------------------------------------------------------------
# In memory


def test_sample_plan_derived_documents_equal_the_pipelines(sample_plan):
    assert_derived_like_pipeline(sample_plan)


@pytest.mark.parametrize("policy", ["DET_near", "AGG_far", "blend"])
def test_sample_plan_with_cutover_derives_the_same_documents(policy):
    params = PlanParams(
        cutover_date="2026-06-15", recon_window_days=14, anchor_policy=policy, carryover="next"
    )
    assert_derived_like_pipeline(plan_input_set(SAMPLE, params, version_id="derive-cut"))


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    families=st.integers(1, 3),
    skus=st.integers(1, 3),
    depth=st.integers(1, 2),
    months=st.integers(2, 5),
    round_mode=st.sampled_from(["int", "dec1", "dec2", "none"]),
    prebuild_months=st.integers(0, 2),
    prebuild_weeks=st.integers(0, 4),
    capacity_factor=st.sampled_from([1.0, 0.6, 0.3]),
    cutover_day=st.one_of(st.none(), st.integers(0, 120)),
    window=st.integers(0, 21),
    policy=st.sampled_from([None, "DET_near", "AGG_far", "blend"]),
    carryover=st.sampled_from(["none", "next", "both", "auto"]),
)
def test_generated_plans_derive_the_pipelines_documents(
    tmp_path_factory, seed, families, skus, depth, months, round_mode, prebuild_months, prebuild_weeks,
    capacity_factor, cutover_day, window, policy, carryover,
):  # fmt: skip
    folder = generate_sample(
        tmp_path_factory.mktemp("set"), families=families, skus_per_family=skus,
        components=2 * depth, bom_depth=depth, months=months, seed=seed,
    )  # fmt: skip
    scale_capacity(folder, capacity_factor)
    cutover = (
        None if cutover_day is None else (dt.date(2026, 1, 1) + dt.timedelta(days=cutover_day)).isoformat()
    )
    params = PlanParams(
        round_mode=round_mode, prebuild_months=prebuild_months, prebuild_weeks=prebuild_weeks,
        cutover_date=cutover, recon_window_days=window, anchor_policy=policy if cutover else None,
        carryover=carryover,
    )  # fmt: skip
    assert_derived_like_pipeline(run_pipeline(load_input_set(folder), params, version_id="derive-gen"))


def test_unplaced_quantity_travels_in_reconcile_params(tight_plan):
    unplaced = tight_plan.documents["plan_final.json"]["reconcile_params"]["unplaced"]
    by_item = [
        e for e in tight_plan.documents["exceptions.json"]["rows"]
        if e["type"] == "unplanned_after_horizon" and e["item"]
    ]  # fmt: skip
    assert unplaced and unplaced == {e["item"]: e["quantity"] for e in by_item}
    assert_derived_like_pipeline(tight_plan)


def test_derivation_uses_the_stored_weights_of_split_weeks(tmp_path):
    """An explicit calendar may weight a split week's buckets other than by days."""
    folder = generate_sample(tmp_path / "set", families=2, skus_per_family=2, components=2, months=4, seed=3)
    calendar = calendar_document(derive_calendar(["2026-01", "2026-02", "2026-03", "2026-04"]))
    for period in calendar["periods"]:
        for week in period["weeks"]:
            week["weight"] = 7 - week["weight"] if week["weight"] < 7 else 7  # split weeks swap their weights
    (folder / "planning_calendar.json").write_text(json.dumps(calendar), encoding="utf-8")
    content = run_pipeline(load_input_set(folder), PlanParams(), version_id="derive-cal")
    weights = content.documents["plan_final.json"]["reconcile_params"]["bucket_weights"]
    assert weights["2026-W05@2026-01"] == 1 and weights["2026-W05@2026-02"] == 6
    assert_derived_like_pipeline(content)


def test_documents_without_the_derivation_keys_fall_back_to_day_weights(tmp_path):
    """Plans stored before reconcile_params carried the keys: a dated calendar gives the same result."""
    folder = generate_sample(tmp_path / "set", families=2, skus_per_family=2, components=2, months=3, seed=5)
    scale_capacity(folder, 0.3)
    content = run_pipeline(load_input_set(folder), PlanParams(), version_id="derive-old")
    core = json.loads(docs.dumps(core_five(content)))
    reconcile_params = core["plan_final.json"]["reconcile_params"]
    assert reconcile_params.pop("unplaced") and reconcile_params.pop("bucket_weights")
    derived = derive_documents(core)
    for name in DERIVED_ARTIFACTS:
        assert docs.dumps(derived[name]) == docs.dumps(content.documents[name]), name


def test_only_missing_derived_documents_are_returned(sample_plan):
    assert derive_documents(sample_plan.documents) == {}
    without_exceptions = {n: d for n, d in sample_plan.documents.items() if n != "exceptions.json"}
    assert list(derive_documents(without_exceptions)) == ["exceptions.json"]
    completed = complete_documents(core_five(sample_plan))
    assert set(completed) == set(PLAN_ARTIFACTS)
    assert {n: docs.artifact_text(n, d) for n, d in completed.items()} == {
        n: docs.artifact_text(n, d) for n, d in sample_plan.documents.items()
    }


def test_derivation_keeps_the_documents_header(sample_plan):
    core = json.loads(docs.dumps(core_five(sample_plan)))
    core["aggregate.json"]["schema_version"] = 7
    derived = derive_documents(core)
    for doc in derived.values():
        assert doc["schema_version"] == 7
        assert doc["version_id"] == "derive-sample" and doc["params"] == PlanParams().to_dict()


def test_a_missing_core_document_is_named(sample_plan):
    core = core_five(sample_plan)
    del core["mrp.json"]
    with pytest.raises(DerivationError, match=r"missing mrp\.json"):
        derive_documents(core)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda c: c["plan_final.json"]["rows"].pop(), "plan_final.json"),
        (lambda c: c["sku_week.json"]["rows"].reverse(), "sku_week.json"),
        (lambda c: c["plan_final.json"]["weekly_summary"].pop(), "weekly_summary"),
        (lambda c: c["aggregate.json"]["rows"][0].update(demand="12"), "expected numbers"),
        (lambda c: c["mrp.json"]["rows"][0].pop("planned_order_receipt"), "planned_order_receipt"),
    ],
    ids=["truncated-final", "reordered-detail", "short-summary", "text-quantity", "missing-field"],
)
def test_inconsistent_core_documents_are_a_clear_error(sample_plan, damage, message):
    core = json.loads(docs.dumps(core_five(sample_plan)))
    damage(core)
    with pytest.raises(DerivationError, match=message):
        derive_documents(core)


# --------------------------------------------------------------------------------------------------
# In the plan store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'scpln.db'}"
    db.init_db(url)
    yield PlanStore(db.get_engine(url)), url
    db.dispose_engines(url)


def import_core_five(url: str, content, version_id: str) -> None:
    """What the runbook's section 4.3 does: upsert the core five artifacts one by one."""
    for name in CORE_ARTIFACTS:
        db.upsert_plan_artifact(version_id, name, docs.artifact_text(name, content.documents[name]), url=url)


def stored_texts(store: PlanStore, version_id: str) -> dict[str, str]:
    query = select(plan_artifacts.c.name, plan_artifacts.c.json_text).where(
        plan_artifacts.c.version_id == version_id
    )
    with store.engine.connect() as conn:
        return {r.name: r.json_text for r in conn.execute(query)}


def test_read_artifacts_of_a_reimported_version_returns_all_seven(store, sample_plan):
    plan_store, url = store
    import_core_five(url, sample_plan, "reimported")
    content = plan_store.read_artifacts("reimported")
    assert sorted(content.documents) == sorted(PLAN_ARTIFACTS)
    for name, doc in sample_plan.documents.items():
        assert docs.artifact_text(name, content.documents[name]) == docs.artifact_text(name, doc), name
    assert plan_store.artifact_names("reimported") == sorted(CORE_ARTIFACTS)  # reading stores nothing


def test_read_artifacts_by_name_derives_only_what_was_asked(store, sample_plan):
    plan_store, url = store
    import_core_five(url, sample_plan, "by-name")
    content = plan_store.read_artifacts("by-name", ["exceptions.json"])
    assert list(content.documents) == ["exceptions.json"]
    assert docs.dumps(content.documents["exceptions.json"]) == docs.dumps(
        sample_plan.documents["exceptions.json"]
    )
    assert list(plan_store.read_artifacts("by-name", ["mrp.json"]).documents) == ["mrp.json"]


def test_complete_artifacts_stores_the_derived_documents_once(store, sample_plan):
    plan_store, url = store
    import_core_five(url, sample_plan, "completed")
    assert plan_store.complete_artifacts("completed") == sorted(DERIVED_ARTIFACTS)
    expected = {n: docs.artifact_text(n, d) for n, d in sample_plan.documents.items()}
    assert stored_texts(plan_store, "completed") == expected
    assert plan_store.complete_artifacts("completed") == []
    assert stored_texts(plan_store, "completed") == expected


def test_complete_artifacts_adds_only_the_missing_one(store, sample_plan):
    plan_store, url = store
    import_core_five(url, sample_plan, "half")
    recon = "reconciliation_log.json"
    db.upsert_plan_artifact("half", recon, docs.artifact_text(recon, sample_plan.documents[recon]), url=url)
    assert plan_store.complete_artifacts("half") == ["exceptions.json"]
    assert len(stored_texts(plan_store, "half")) == len(PLAN_ARTIFACTS)


def test_complete_artifacts_without_a_core_artifact_names_it_and_writes_nothing(store, sample_plan):
    plan_store, url = store
    for name in ("aggregate.json", "sku_week.json", "plan_final.json", "report.csv"):
        db.upsert_plan_artifact(
            "no-mrp", name, docs.artifact_text(name, sample_plan.documents[name]), url=url
        )
    with pytest.raises(EncodingMissing, match=r"mrp\.json"):
        plan_store.complete_artifacts("no-mrp")
    assert len(stored_texts(plan_store, "no-mrp")) == 4
    assert sorted(plan_store.read_artifacts("no-mrp").documents) == sorted(
        ("aggregate.json", "sku_week.json", "plan_final.json", "report.csv")
    )
