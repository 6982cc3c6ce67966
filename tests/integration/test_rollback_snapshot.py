"""The rollback's snapshot (seed runbook §4.2): the ``plan_series`` rows of the latest versions as CSV with
a header, written by the application itself — no ``sqlite3`` command needed — in the format
``docs/storage.md`` documents ("Rollback snapshot")."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest

from app import db
from app.ops.rollback import commands as rb
from app.services.plans import PlanRequest, run_plan
from app.storage.plans import PlanStore
from tests.conftest import SAMPLE

AWKWARD = 'late, "short" by 3\nsee PO 7'  # a comma, quotes and a line break: quoted, quotes doubled


def test_the_snapshot_holds_the_latest_versions_rows_as_csv_without_the_sqlite3_command(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.init_db(sqlite_url)
    store = PlanStore(db.get_engine(sqlite_url))
    for vid in ("old", "mid", "new"):
        run_plan(PlanRequest(input_dir=str(SAMPLE), version_id=vid), storage="db", store=store)
    live = db.sqlite_path(sqlite_url)
    with sqlite3.connect(live) as conn:
        conn.execute(
            "UPDATE plan_series SET message = ? WHERE version_id = 'new' AND level = 'det' AND seq = 0",
            (AWKWARD,),
        )
        columns = [r[1] for r in conn.execute("PRAGMA table_info(plan_series)")]
        expected = conn.execute(
            "SELECT * FROM plan_series WHERE version_id IN ('mid', 'new') ORDER BY version_id, level, seq"
        ).fetchall()
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no sqlite3 (nor anything else) to call

    series, registry = (Path(p) for p in rb._snapshot(store.engine, tmp_path / "tmp", 2))

    assert series.parent == tmp_path / "tmp" and series.name.startswith("plan_series_latest_")
    with series.open(newline="", encoding="utf-8") as fh:
        header, *rows = list(csv.reader(fh))
    assert header == columns
    assert rows == [["" if v is None else str(v) for v in row] for row in expected]
    assert AWKWARD in {value for row in rows for value in row}
    raw = series.read_bytes()
    assert raw.endswith(b"\r\n") and b'"late, ""short"" by 3\nsee PO 7"' in raw
    assert json.loads(registry.read_text(encoding="utf-8")) == []
    assert not [p for p in series.parent.iterdir() if p.name.startswith(".")], "no partial file is left"
