"""The storage mode matrix (SPEC 4.3) on SQLite and PostgreSQL: every mode x write, read, export, backfill,
plus the rules that make the modes safe to switch between — files never touches the PlanRepository
tables, db never falls back, both falls back per version, the exporter prefers rows, and the pin."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event, func, select, text

from app import db
from app.errors import EncodingMissing, StorageModeConflict
from app.ops.backfill import backfill_repository
from app.ops.export import export_version
from app.planning.model import PLAN_ARTIFACTS, PlanContent
from app.planning.pipeline import plan_input_set
from app.services.plans import PlanRequest, run_plan
from app.storage import codec_artifacts
from app.storage.plans import PlanStore
from app.storage.schema import (
    plan_artifacts,
    plan_kpis,
    plan_override_events,
    plan_overrides,
    plan_series,
    plan_versions,
)
from app.storage.settings import set_storage_pin
from tests.conftest import SAMPLE

MODES = ("db", "files", "both")
REPOSITORY_TABLES = ("plan_series", "plan_kpis", "plan_overrides", "plan_override_events")
COUNTED = {
    "plan_artifacts": plan_artifacts,
    "plan_series": plan_series,
    "plan_kpis": plan_kpis,
    "plan_overrides": plan_overrides,
    "plan_override_events": plan_override_events,
}


@pytest.fixture(autouse=True)
def _no_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLAN_STORAGE_MODE", raising=False)


def sample_plan(version_id: str) -> PlanContent:
    return plan_input_set(SAMPLE, version_id=version_id)


def canonical(content: PlanContent) -> dict[str, str]:
    """Every document in canonical text: equal texts mean identical content."""
    return codec_artifacts.encode(content)


def counts(store: PlanStore, version_id: str) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            name: conn.execute(
                select(func.count()).select_from(table).where(table.c.version_id == version_id)
            ).scalar_one()
            for name, table in COUNTED.items()
        }


@pytest.mark.parametrize("mode", MODES)
def test_write_leaves_exactly_the_encodings_of_its_mode(store: PlanStore, mode: str) -> None:
    content = sample_plan(f"w-{mode}")
    result = store.write_version(content, mode=mode)

    n = counts(store, content.version_id)
    assert n["plan_overrides"] == n["plan_override_events"] == 0
    if mode == "files":
        assert n["plan_series"] == n["plan_kpis"] == 0
    else:
        assert n["plan_series"] == result.series_rows > 0 and n["plan_kpis"] == result.kpi_rows > 0
    if mode == "db":
        assert n["plan_artifacts"] == 0 and result.artifacts == []
    else:
        assert sorted(store.artifact_names(content.version_id)) == sorted(PLAN_ARTIFACTS)
    info = store.get_version(content.version_id)
    assert (info.status, info.storage_mode) == ("ready", mode)


@pytest.mark.parametrize("mode", MODES)
def test_read_in_each_mode_returns_the_pipeline_content(store: PlanStore, mode: str) -> None:
    content = sample_plan(f"r-{mode}")
    store.write_version(content, mode=mode)

    assert canonical(store.read_version(content.version_id, mode=mode)) == canonical(content)


def test_both_mode_encodings_decode_to_identical_content(store: PlanStore) -> None:
    content = sample_plan("both-equal")
    store.write_version(content, mode="both")

    from_rows = store.read_rows(content.version_id)
    from_artifacts = store.read_artifacts(content.version_id)
    assert from_rows is not None and from_artifacts is not None
    assert canonical(from_rows) == canonical(from_artifacts) == canonical(content)
    assert from_rows.params == from_artifacts.params == content.params


@pytest.mark.parametrize("mode", MODES)
def test_export_reproduces_the_pipeline_artifacts_byte_for_byte(
    store: PlanStore, mode: str, tmp_path
) -> None:
    content = sample_plan(f"x-{mode}")
    store.write_version(content, mode=mode)
    expected = codec_artifacts.encode(content)

    files = export_version(content.version_id, tmp_path / "out", store)

    assert sorted(p.name for p in files) == sorted(expected) == sorted(PLAN_ARTIFACTS)
    for path in files:
        assert path.read_bytes() == expected[path.name].encode("utf-8"), path.name


def test_export_reads_rows_whenever_they_exist(store: PlanStore, tmp_path) -> None:
    content = sample_plan("x-rows-first")
    store.write_version(content, mode="both")
    tampered = dict(content.documents["aggregate.json"], note="edited artifact")
    db.upsert_plan_artifact(
        content.version_id, "aggregate.json", json.dumps(tampered), url=str(store.engine.url)
    )

    export_version(content.version_id, tmp_path, store)

    assert (tmp_path / "aggregate.json").read_text() == canonical(content)["aggregate.json"]


@pytest.mark.parametrize("mode", MODES)
def test_backfill_in_each_mode(store: PlanStore, mode: str) -> None:
    content = sample_plan(f"b-{mode}")
    store.write_version(content, mode=mode)

    report = backfill_repository(store.engine)

    if mode == "files":
        assert report.backfilled == [content.version_id]
        assert store.get_version(content.version_id).storage_mode == "both"
    else:  # db: nothing to backfill from; both: rows exist already
        assert report.backfilled == [] and report.skipped == [content.version_id]
        assert store.get_version(content.version_id).storage_mode == mode
    assert report.failed == {} and report.needs_derivation == {}
    from_rows = store.read_rows(content.version_id)
    assert from_rows is not None and canonical(from_rows) == canonical(content)
    if mode == "db":
        assert counts(store, content.version_id)["plan_artifacts"] == 0


def test_files_mode_writes_and_reads_without_the_repository_tables(store: PlanStore) -> None:
    """Proof that files mode neither writes nor reads them: they are renamed away first."""
    with store.engine.begin() as conn:
        for table in REPOSITORY_TABLES:
            conn.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731  (conn, cursor, statement, ...)
    event.listen(store.engine, "before_cursor_execute", listener)
    try:
        content = sample_plan("files-only")
        store.write_version(content, mode="files")
        read = store.read_version(content.version_id, mode="files")
    finally:
        event.remove(store.engine, "before_cursor_execute", listener)

    assert canonical(read) == canonical(content)
    assert statements and not [s for s in statements if any(t in s for t in REPOSITORY_TABLES)]
    with pytest.raises(Exception, match="plan_series"):  # the tables really are gone
        store.read_version(content.version_id, mode="db")


def test_db_mode_read_never_falls_back_to_artifacts(store: PlanStore) -> None:
    content = sample_plan("artifacts-only")
    store.write_version(content, mode="files")

    with pytest.raises(EncodingMissing):
        store.read_version(content.version_id, mode="db")
    assert canonical(store.read_version(content.version_id, mode="both")) == canonical(content)


def test_both_mode_prefers_rows_and_falls_back_per_version(store: PlanStore) -> None:
    plans = {mode: sample_plan(f"fb-{mode}") for mode in MODES}
    for mode, content in plans.items():
        store.write_version(content, mode=mode)
    both = plans["both"]
    tampered = dict(both.documents["aggregate.json"], note="edited artifact")
    db.upsert_plan_artifact(
        both.version_id, "aggregate.json", json.dumps(tampered), url=str(store.engine.url)
    )

    for content in plans.values():
        assert canonical(store.read_version(content.version_id, mode="both")) == canonical(content)
    from_files = store.read_version(both.version_id, mode="files")
    assert from_files.documents["aggregate.json"]["note"] == "edited artifact"


def test_pin_refuses_another_mode_and_the_env_mode_applies_without_a_request(
    store: PlanStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAN_STORAGE_MODE", "files")
    assert store.effective_mode() == "files"
    assert store.effective_mode("db") == "db"  # a request wins over the environment
    outcome = run_plan(
        PlanRequest(input_dir=str(SAMPLE), version_id="env-files"), store=store, enforce_intake=False
    )
    assert outcome.write.mode == "files"
    n = counts(store, "env-files")
    assert n["plan_artifacts"] == len(PLAN_ARTIFACTS) and n["plan_series"] == n["plan_kpis"] == 0

    set_storage_pin(store.engine, "db")
    assert store.effective_mode() == "db" and store.effective_mode("db") == "db"
    with pytest.raises(StorageModeConflict):
        store.effective_mode("files")
    with pytest.raises(StorageModeConflict):
        run_plan(
            PlanRequest(input_dir=str(SAMPLE), version_id="refused"),
            storage="both",
            store=store,
            enforce_intake=False,
        )
    with store.engine.connect() as conn:
        refused = conn.execute(select(plan_versions).where(plan_versions.c.version_id == "refused")).first()
    assert refused is None
    outcome = run_plan(
        PlanRequest(input_dir=str(SAMPLE), version_id="pinned"), store=store, enforce_intake=False
    )
    assert outcome.write.mode == "db" and counts(store, "pinned")["plan_artifacts"] == 0

    set_storage_pin(store.engine, None)
    assert store.effective_mode() == "files"


def test_psi_edits_stay_in_a_versions_own_mode_while_its_plan_reads_follow_the_default(
    store: PlanStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one intended difference of the PSI rule (``app.storage.modes``, rule 4): without a pin, plan
    reads follow the default mode, PSI edits the mode the version was written in."""
    from app.services import psi as overrides

    content = sample_plan("planned-in-files")
    store.write_version(content, mode="files")
    vid = content.version_id
    monkeypatch.setenv("PLAN_STORAGE_MODE", "db")

    with pytest.raises(EncodingMissing):  # db mode reads rows only, and this version has none
        store.read_version(vid)
    cell = overrides.psi_view(vid, "det", {}, limit=1, store=store)["rows"][0]
    overrides.apply_edits(vid, "det", lock=[cell["key"]], actor="ann", store=store)
    assert overrides.state(vid, store=store)["mode"] == "files"
    n = counts(store, vid)
    assert n["plan_overrides"] == n["plan_override_events"] == n["plan_series"] == 0
    assert {"psi_overrides.json", "psi_state.json"} <= set(store.artifact_names(vid))

    set_storage_pin(store.engine, "files")  # a pin decides for PSI as for everything else
    assert store.read_version(vid).version_id == vid
    assert overrides.state(vid, store=store)["mode"] == "files"
