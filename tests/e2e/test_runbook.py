"""The operators' rollback runbook (seed runbook §4.1–§4.7 and §5), its commands run as printed.

Every command goes through ``bash -c`` with the virtualenv's bin first on PATH (as after ``source
.venv/bin/activate``), in a stand-in repository root: ``app``, ``scripts``, ``tests``, ``samples``,
``.venv``, ``migrations``, ``alembic.ini`` and ``pyproject.toml`` link to this repository, while
``data/``, ``tmp/`` and ``backup/`` are its own — so ``data/scpln.db``, ``tmp/…`` and ``backup/…`` mean
a scratch database and scratch folders, exactly as the runbook writes them. ``SCPLN_DB`` is set to
that ``data/scpln.db``, which is what the default means from a real repository root.

A live hub (``python -m app.cli serve --port 8000``) answers the runbook's ``curl`` on localhost:8000.
The steps build on each other and run in file order; each command's output is checked, not only its
exit status.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from app import db
from app.db import now_ms
from app.planning.model import CORE_ARTIFACTS, PLAN_ARTIFACTS
from app.services import psi
from app.services.plans import PlanRequest, run_plan
from app.storage import codec_artifacts
from app.storage.plans import PlanStore
from app.storage.schema import plan_artifacts, runs
from tests.conftest import ROOT, SAMPLE
from tests.runbook_commands import REIMPORT

PORT = 8000
LINKED = ("app", "scripts", "tests", "samples", ".venv", "migrations", "alembic.ini", "pyproject.toml")
VENV_BIN = Path(sys.executable).parent

# --- the runbook's commands, as printed (§4.3's heredoc with the version id before it) -------------

CP_BACKUP = "cp data/scpln.db backup/plan_db_prerollback_$(date +%Y%m%d%H%M).db"
SERIES_SNAPSHOT = (
    'sqlite3 data/scpln.db ".output tmp/plan_series_latest.csv" "SELECT * FROM plan_series WHERE version_id IN '
    '(SELECT version_id FROM plan_versions ORDER BY created_at DESC LIMIT 5);"'
)
#: §4.2: the RunRegistry dump (the runbook names the heredoc; its body prints REGISTRY.list() as JSON).
REGISTRY_DUMP = """PYTHONPATH=. SCPLN_SKIP_SIMULATION_API=1 python - <<'PY' > tmp/run_registry.json
import json
from app.run_registry import REGISTRY
print(json.dumps(REGISTRY.list(), ensure_ascii=False, indent=1))
PY"""
HAS_ARTIFACTS = (
    "sqlite3 data/scpln.db \"SELECT version_id, SUM(name='aggregate.json')>=1 AS has_agg, "
    "SUM(name='sku_week.json')>=1 AS has_det, SUM(name='plan_final.json')>=1 AS has_final FROM plan_artifacts "
    'GROUP BY version_id ORDER BY MAX(created_at) DESC LIMIT 5;"'
)
EXPORT = "PYTHONPATH=. SCPLN_DB=$(pwd)/data/scpln.db python scripts/plan_export.py {vid} -o tmp/restore/{vid}"
CLEAR_RUN_JOBS = 'sqlite3 data/scpln.db "UPDATE runs SET plan_job_id=NULL WHERE created_at>={ts};"'
CURL_FILES = "curl -X POST http://localhost:8000/plans/integrated/run?storage=files"
LEGACY_API_TESTS = (
    "PYTHONPATH=. SCPLN_SKIP_SIMULATION_API=1 PLAN_STORAGE_MODE=files .venv/bin/pytest tests/test_plans_api_e2e.py "
    "-k legacy"
)
FILES_ONLY_CLI_TEST = (
    "PYTHONPATH=. .venv/bin/pytest tests/test_plan_storage_cli.py::test_plan_aggregate_storage_files_only"
)
BACKFILL = "scripts/plan_backfill_repository.py --force --state-file tmp/rollback_recover.json"
ROWS_BACK = 'sqlite3 data/scpln.db "SELECT version_id FROM plan_series WHERE version_id IN ({ids});"'
RECENT_PLANS = 'sqlite3 data/scpln.db "SELECT version_id,status,created_at FROM plan_versions ORDER BY created_at DESC LIMIT 10;"'
LEVEL_COUNTS = 'sqlite3 data/scpln.db "SELECT level, COUNT(*) FROM plan_series GROUP BY level;"'
#: §5 prints ``WHERE version_id=?``; the sqlite3 shell binds an unset ``?`` to NULL (an empty dump), so
#: operators put the quoted version id in its place, as here.
ARTIFACTS_DUMP = (
    'sqlite3 data/scpln.db ".output tmp/plan_artifacts_dump.json" '
    "\"SELECT version_id,name,json_text FROM plan_artifacts WHERE version_id='{vid}';\""
)
RELEASE_TAGS = "git tag --list 'release/*plan-artifacts*' --sort=-creatordate | head -5"

PSI_VERSION = "rb-2"


@dataclass
class Checkout:
    root: Path
    env: dict[str, str]
    store: PlanStore
    cutover_ts: int = 0
    server: subprocess.Popen | None = None
    logs: list[Path] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)

    @property
    def database(self) -> Path:
        return self.root / "data" / "scpln.db"

    def sh(self, command: str, ok: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
        result = subprocess.run(["bash", "-c", command], cwd=self.root, env=self.env, capture_output=True,
                                text=True, timeout=timeout)  # fmt: skip
        if ok:
            assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        return result

    def lines(self, command: str) -> list[str]:
        return self.sh(command).stdout.splitlines()

    def start_server(self, **env: str) -> None:
        self.stop_server()
        log = self.root / f"server-{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "w") as out:
            self.server = subprocess.Popen(
                ["python", "-m", "app.cli", "serve", "--port", str(PORT)],
                cwd=self.root, env={**self.env, **env}, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            assert self.server.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{PORT}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the hub did not come up:\n{log.read_text()}"
            time.sleep(0.2)

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(timeout=10)
        self.server = None

    def health(self) -> dict:
        return httpx.get(f"http://127.0.0.1:{PORT}/healthz", timeout=10).json()

    def query(self, sql: str, *params: object) -> list[tuple]:
        with sqlite3.connect(self.database) as conn:
            return conn.execute(sql, params).fetchall()


def _require_tools() -> None:
    for tool in ("sqlite3", "curl", "git"):
        if shutil.which(tool) is None:
            message = f"the runbook needs the {tool} command, which is not installed"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)


def _require_port() -> None:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", PORT))
        except OSError as exc:
            message = (
                f"port {PORT} on 127.0.0.1 is in use ({exc}); the runbook's curl calls localhost:{PORT}, so stop "
                "whatever listens there and run this test again"
            )
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)


def _populate(store: PlanStore) -> int:
    """Plans in both mode (one with PSI edits), one in db mode, one with artifacts deleted, and runs on
    both sides of the cut-over. Returns the cut-over timestamp (ms)."""
    for vid in ("rb-1", PSI_VERSION, "rb-3"):
        run_plan(PlanRequest(input_dir=str(SAMPLE), version_id=vid), storage="both", store=store)
    cells = psi.psi_view(PSI_VERSION, "det", {"family": "BLEND", "period": "2026-01"}, store=store)["rows"]
    psi.apply_edits(PSI_VERSION, "det", [{"key": cells[0]["key"], "field": "demand", "value": 3}],
                          lock=[cells[1]["key"]], note="before the incident", store=store)  # fmt: skip
    run_plan(PlanRequest(input_dir=str(SAMPLE), version_id="rb-db"), storage="db", store=store)
    run_plan(PlanRequest(input_dir=str(SAMPLE), version_id="rb-partial"), storage="both", store=store)
    with store.engine.begin() as conn:
        conn.execute(
            plan_artifacts.delete().where(
                plan_artifacts.c.version_id == "rb-partial",
                plan_artifacts.c.name.in_(["sku_week.json", "plan_final.json"]),
            )
        )
    cutover = now_ms() - 10_000
    with store.engine.begin() as conn:
        for run_id, vid, job, ts in (("run-before", "rb-1", "job-before", cutover - 50_000),
                                     ("run-after", "rb-3", "job-after", cutover + 5_000)):  # fmt: skip
            conn.execute(runs.insert().values(run_id=run_id, plan_version_id=vid, plan_job_id=job,
                                              status="succeeded", created_at=ts))  # fmt: skip
    return cutover


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checkout]:
    _require_tools()
    _require_port()
    root = tmp_path_factory.mktemp("runbook") / "scpln"
    root.mkdir()
    for name in LINKED:
        (root / name).symlink_to(ROOT / name)
    for folder in ("data", "tmp", "backup"):
        (root / folder).mkdir()
    env = {
        "PATH": f"{root / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(root / ".venv"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "SCPLN_DB": str(root / "data" / "scpln.db"),
    }
    url = f"sqlite:///{root / 'data' / 'scpln.db'}"
    saved = {
        k: os.environ.pop(k)
        for k in ("PLAN_STORAGE_MODE", "JOBS_ENABLED", "SCPLN_INPUT_DIR")
        if k in os.environ
    }
    try:
        db.init_db(url)
        store = PlanStore(db.get_engine(url))
        hub = Checkout(root, env, store)
        hub.cutover_ts = _populate(store)
    finally:
        os.environ.update(saved)
    hub.start_server()
    try:
        yield hub
    finally:
        hub.stop_server()
        db.dispose_engines(url)


def test_4_1_jobs_pause_stops_plan_intake(checkout: Checkout):
    paused = checkout.sh("scpln jobs pause --actor sre")

    assert "plan intake: paused" in paused.stdout and "by sre" in paused.stdout
    refused = checkout.sh("curl -s -X POST http://localhost:8000/plans/integrated/run?storage=files")
    assert json.loads(refused.stdout) == {"error": "plan intake paused"}
    assert checkout.health()["jobs_enabled"] is False


def test_4_2_the_copied_database_is_complete_after_the_pause(checkout: Checkout):
    checkout.sh(CP_BACKUP)

    copies = list((checkout.root / "backup").glob("plan_db_prerollback_*.db"))
    assert len(copies) == 1 and re.fullmatch(r"plan_db_prerollback_\d{12}\.db", copies[0].name)
    conn = sqlite3.connect(f"{copies[0].as_uri()}?mode=ro&immutable=1", uri=True)  # the file alone, no WAL
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        copied = conn.execute("SELECT version_id, status FROM plan_versions ORDER BY version_id").fetchall()
        copied_rows = conn.execute("SELECT COUNT(*) FROM plan_series").fetchone()
    finally:
        conn.close()
    assert copied == checkout.query("SELECT version_id, status FROM plan_versions ORDER BY version_id")
    assert {v for v, _ in copied} == {"rb-1", "rb-2", "rb-3", "rb-db", "rb-partial"}
    assert copied_rows == checkout.query("SELECT COUNT(*) FROM plan_series")[0]


def test_4_2_plan_series_snapshot_holds_the_rows_of_the_five_latest_versions(checkout: Checkout):
    checkout.sh(SERIES_SNAPSHOT)

    snapshot = (checkout.root / "tmp" / "plan_series_latest.csv").read_text(encoding="utf-8").splitlines()
    expected = checkout.query(
        "SELECT version_id FROM plan_series WHERE version_id IN "
        "(SELECT version_id FROM plan_versions ORDER BY created_at DESC LIMIT 5)"
    )
    columns = [name for (name,) in checkout.query("SELECT name FROM pragma_table_info('plan_series')")]
    at = columns.index("version_id")
    assert len(snapshot) == len(expected) > 0
    assert {line.split("|")[at] for line in snapshot} == {v for (v,) in expected}


def test_4_2_run_registry_dump_lists_every_run_with_its_job(checkout: Checkout):
    checkout.sh(REGISTRY_DUMP)

    dumped = json.loads((checkout.root / "tmp" / "run_registry.json").read_text(encoding="utf-8"))
    assert {r["run_id"]: r["plan_job_id"] for r in dumped} == {
        "run-before": "job-before",
        "run-after": "job-after",
    }


def test_4_3_artifact_query_shows_which_latest_versions_lack_documents(checkout: Checkout):
    shown = set(checkout.lines(HAS_ARTIFACTS))

    assert shown == {"rb-1|1|1|1", "rb-2|1|1|1", "rb-3|1|1|1", "rb-partial|1|0|0"}  # rb-db has none at all


@pytest.mark.parametrize("vid", ["rb-partial", "rb-db"])
def test_4_3_export_from_the_plan_repository_and_reimport_restores_the_artifacts(
    checkout: Checkout, vid: str
):
    exported = checkout.sh(EXPORT.format(vid=vid))

    folder = checkout.root / "tmp" / "restore" / vid
    assert f"exported 7 artifacts of {vid}" in exported.stdout
    assert {p.name for p in folder.iterdir()} == set(PLAN_ARTIFACTS)
    expected = codec_artifacts.encode(checkout.store.read_rows(vid))
    for name in CORE_ARTIFACTS:
        assert (folder / name).read_text(encoding="utf-8") == expected[name], name
    reimported = checkout.sh(REIMPORT.format(vid=vid))
    assert reimported.stdout == "" and reimported.stderr == ""
    for name in CORE_ARTIFACTS:
        assert checkout.store.artifact_text(vid, name) == (folder / name).read_text(encoding="utf-8"), name


def test_4_3_after_the_reimport_every_version_has_its_documents(checkout: Checkout):
    shown = set(checkout.lines(HAS_ARTIFACTS))

    assert shown == {f"{v}|1|1|1" for v in ("rb-1", "rb-2", "rb-3", "rb-partial", "rb-db")}


def test_4_4_the_hub_restarted_with_plan_storage_mode_files_plans_in_files_mode(checkout: Checkout):
    checkout.start_server(PLAN_STORAGE_MODE="files")

    health = checkout.health()
    assert health["storage_mode"] == "files" and health["storage_pin"] is None


def test_4_5_clearing_run_job_links_after_the_cut_over_keeps_the_older_ones(checkout: Checkout):
    checkout.sh(CLEAR_RUN_JOBS.format(ts=checkout.cutover_ts))

    assert dict(checkout.query("SELECT run_id, plan_job_id FROM runs")) == {
        "run-before": "job-before",
        "run-after": None,
    }
    resumed = checkout.sh("scpln jobs resume")
    assert "plan intake: open" in resumed.stdout


def test_4_6_curl_plans_a_version_into_plan_artifacts_only(checkout: Checkout):
    response = checkout.sh(CURL_FILES)

    created = json.loads(response.stdout)
    vid = created["version_id"]
    assert created["status"] == "ready" and created["storage"]["mode"] == "files"
    assert created["storage"]["series_rows"] == 0
    names = checkout.lines(
        f"sqlite3 data/scpln.db \"SELECT name FROM plan_artifacts WHERE version_id='{vid}' ORDER BY name;\""
    )
    assert names == sorted(PLAN_ARTIFACTS)
    assert checkout.lines(
        f"sqlite3 data/scpln.db \"SELECT COUNT(*) FROM plan_series WHERE version_id='{vid}';\""
    ) == ["0"]
    checkout.facts["rollback_period"] = [vid]


@pytest.mark.parametrize(
    "command", [LEGACY_API_TESTS, FILES_ONLY_CLI_TEST], ids=["api-legacy", "cli-files-only"]
)
def test_4_6_the_runbooks_verification_tests_pass_from_the_checkout(checkout: Checkout, command: str):
    result = checkout.sh(command)

    summary = result.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 1 and "failed" not in summary and "error" not in summary, (
        summary
    )
    assert "test_runbook" not in result.stdout


def test_4_7_forced_backfill_restores_the_plan_repository_and_keeps_psi_edits(checkout: Checkout):
    def psi_rows() -> list[tuple]:
        return checkout.query(
            "SELECT (SELECT COUNT(*) FROM plan_overrides WHERE version_id=?), "
            "(SELECT COUNT(*) FROM plan_override_events WHERE version_id=?)",
            PSI_VERSION,
            PSI_VERSION,
        )

    before = psi_rows()
    assert before[0][0] > 0 and before[0][1] > 0
    (vid,) = checkout.facts["rollback_period"]

    result = checkout.sh(BACKFILL)

    assert f"backfilled {vid}" in result.stdout and "checked 6, backfilled 6" in result.stdout
    assert json.loads((checkout.root / "tmp" / "rollback_recover.json").read_text())["complete"] is True
    assert psi_rows() == before
    store = checkout.store
    assert codec_artifacts.encode(store.read_rows(vid)) == codec_artifacts.encode(store.read_artifacts(vid))
    ids = ", ".join(f"'{v}'" for v in checkout.facts["rollback_period"])
    assert set(checkout.lines(ROWS_BACK.format(ids=ids))) == {vid}


def test_4_7_back_on_plan_storage_mode_both_a_new_plan_reaches_the_plan_repository(checkout: Checkout):
    checkout.start_server(PLAN_STORAGE_MODE="both")

    created = json.loads(checkout.sh("curl -s -X POST http://localhost:8000/plans/integrated/run").stdout)

    assert created["storage"]["mode"] == "both" and created["storage"]["series_rows"] > 0
    assert checkout.health()["storage_mode"] == "both"


def test_5_command_reference_queries(checkout: Checkout):
    recent = [line.split("|") for line in checkout.lines(RECENT_PLANS)]
    assert recent == [list(map(str, r)) for r in checkout.query(
        "SELECT version_id, status, created_at FROM plan_versions ORDER BY created_at DESC LIMIT 10")]  # fmt: skip
    assert len(recent) == 7 and {r[1] for r in recent} == {"ready"}

    levels = dict(line.split("|") for line in checkout.lines(LEVEL_COUNTS))
    assert {k: int(v) for k, v in levels.items()} == dict(
        checkout.query("SELECT level, COUNT(*) FROM plan_series GROUP BY level")
    )
    assert {"aggregate", "det", "mrp", "mrp_final", "weekly_summary"} <= set(levels)

    checkout.sh(ARTIFACTS_DUMP.format(vid="rb-1"))
    dumped = (checkout.root / "tmp" / "plan_artifacts_dump.json").read_text(encoding="utf-8")
    for name in PLAN_ARTIFACTS:
        assert f"rb-1|{name}|{checkout.store.artifact_text('rb-1', name)}" in dumped, name


def test_5_release_tag_search_lists_the_artifacts_release(tmp_path: Path, checkout: Checkout):
    # The tag lives in the deployment repository; a throwaway repository stands in for it here.
    git = "git -c user.name=sre -c user.email=sre@example.invalid -c init.defaultBranch=main"
    setup = (f"{git} init -q . && {git} commit -q --allow-empty -m base && "
             f"{git} tag -a release/plan-artifacts-stable -m stable && {git} tag -a release/other -m other")  # fmt: skip
    subprocess.run(["bash", "-c", setup], cwd=tmp_path, check=True, capture_output=True, env=checkout.env)

    result = subprocess.run(["bash", "-c", RELEASE_TAGS], cwd=tmp_path, capture_output=True, text=True,
                            env=checkout.env, timeout=30)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["release/plan-artifacts-stable"]
