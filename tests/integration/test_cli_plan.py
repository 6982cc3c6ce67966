"""``scpln plan run`` and ``scpln sample generate`` as a user runs them: real processes, real files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from app.planning.model import PLAN_ARTIFACTS
from tests.conftest import ROOT, SAMPLE

SCPLN = [sys.executable, "-m", "app.cli"]


def scpln(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SCPLN, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def test_plan_run_writes_the_artifacts_and_a_summary(tmp_path):
    out = tmp_path / "out"
    res = scpln(
        "plan",
        "run",
        "--input",
        str(SAMPLE),
        "--out",
        str(out),
        "--version-id",
        "cli-1",
        "--storage",
        "files",
        env={"SCPLN_DB": str(tmp_path / "hub.db")},
    )
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(PLAN_ARTIFACTS)
    agg = json.loads((out / "aggregate.json").read_text())
    assert agg["version_id"] == "cli-1" and agg["rows"]
    assert "fill_rate" in res.stdout and "Plan cli-1" in res.stdout


def test_bad_input_exits_2_with_every_problem_listed(tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(SAMPLE, bad)
    (bad / "bom.csv").write_text((bad / "bom.csv").read_text() + "PCB-CTL,BASE-PRO,1,0\n", encoding="utf-8")
    demand = (bad / "demand_family.csv").read_text().splitlines()
    demand[2] = demand[2].rsplit(",", 1)[0] + ",lots"
    (bad / "demand_family.csv").write_text("\n".join(demand) + "\n", encoding="utf-8")
    res = scpln(
        "plan", "run", "--input", str(bad), "--storage", "files", env={"SCPLN_DB": str(tmp_path / "hub.db")}
    )
    assert res.returncode == 2
    assert "demand_family.csv:3 [demand]" in res.stderr
    assert "→" in res.stderr and "BOM cycle" in res.stderr
    assert "Traceback" not in res.stderr


def test_bad_parameter_exits_2(tmp_path):
    res = scpln(
        "plan",
        "run",
        "--input",
        str(SAMPLE),
        "--round-mode",
        "dec9",
        "--storage",
        "files",
        env={"SCPLN_DB": str(tmp_path / "hub.db")},
    )
    assert res.returncode == 2 and "round_mode" in res.stderr


def test_sample_generate_is_deterministic(tmp_path):
    for name in ("a", "b"):
        res = scpln(
            "sample",
            "generate",
            "-o",
            str(tmp_path / name),
            "--families",
            "2",
            "--skus-per-family",
            "3",
            "--components",
            "6",
            "--seed",
            "5",
        )
        assert res.returncode == 0, res.stderr
    for f in (tmp_path / "a").iterdir():
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes()
