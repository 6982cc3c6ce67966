"""monitoring/alerts.yml: the rollback runbook's triggers as Prometheus rules on the hub's own metrics.

The rules are parsed here (every expression names only metrics ``app.metrics`` exposes, every rule links
the runbook) and, where ``promtool`` is installed (Debian package ``prometheus``; ``.ci/run`` installs
it), checked by it and unit-tested with synthetic series: when each alert fires, and that it stays quiet
before its ``for`` and during maintenance.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics_core import Metric

from app import metrics
from tests.conftest import ROOT

ALERTS = ROOT / "monitoring" / "alerts.yml"
RUNBOOK = "docs/runbooks/plan_db_rollback.md"
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}
PROMQL_WORDS = {
    "by",
    "on",
    "without",
    "ignoring",
    "unless",
    "and",
    "or",
    "bool",
    "offset",
    "group_left",
    "group_right",
}


def rules() -> list[dict]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def exposed_series() -> set[str]:
    """Every series name the hub's registry can expose (counters carry ``_total``)."""
    names = set()
    for family in metrics.REGISTRY.collect():
        family: Metric
        names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not functions, keywords, label
    names (in matchers, ``by``/``on`` lists) or durations."""
    stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\b(?:by|on|without|ignoring)\s*\([^)]*\)", " ", expr)
    stripped = re.sub(r'"[^"]*"', " ", stripped)
    found = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", stripped):
        following = stripped[match.end() :].lstrip()
        if following.startswith("(") or match.group() in PROMQL_WORDS:
            continue
        found.add(match.group())
    return found


def slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is not installed (apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_every_expression_names_only_metrics_the_hub_exposes():
    exposed = exposed_series()
    for rule in rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= exposed, f"{rule['alert']}: unknown {sorted(names - exposed)}"


def test_the_runbook_triggers_are_covered_with_their_thresholds():
    by_name = {r["alert"]: r for r in rules()}
    assert set(by_name) == {"PlanDbWriteErrorsSustained", "PlanIntegrityFailures", "PlansApiSlow",
                            "ScplnMaintenanceTooLong", "ScplnPlanIntakePausedTooLong"}  # fmt: skip
    errors = by_name["PlanDbWriteErrorsSustained"]
    assert "rate(plan_db_write_errors_total[15m])) > 0" in errors["expr"] and errors["for"] == "30m"
    assert "plan_integrity_failures) > 0" in by_name["PlanIntegrityFailures"]["expr"]
    slow = by_name["PlansApiSlow"]
    assert "histogram_quantile(0.95" in slow["expr"] and 'route="/plans"' in slow["expr"]
    assert slow["expr"].rstrip().endswith("> 2") and slow["for"] == "10m"


def test_every_rule_has_a_summary_a_description_and_a_runbook_link_that_resolves():
    document = (ROOT / RUNBOOK).read_text(encoding="utf-8")
    anchors = {slug(line.lstrip("#")) for line in document.splitlines() if line.startswith("#")}
    for rule in rules():
        notes = rule["annotations"]
        assert notes["summary"].strip() and notes["description"].strip(), rule["alert"]
        path, _, anchor = notes["runbook_url"].partition("#")
        assert path == RUNBOOK and anchor in anchors, f"{rule['alert']}: {notes['runbook_url']}"
        assert rule["labels"]["severity"] in ("page", "warning")


def test_promtool_accepts_the_rules():
    result = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


#: Synthetic series (one sample a minute) and when each alert must or must not fire.
RULE_TESTS = """
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'plan_db_write_errors_total{mode="both",error="OperationalError"}'
        values: '0+1x120'
      - series: 'scpln_maintenance'
        values: '0x60 1x60'
      - series: 'plan_integrity_failures'
        values: '0x10 3x20'
      - series: 'http_request_duration_seconds_bucket{route="/plans",method="GET",status="200",le="1"}'
        values: '0+10x30'
      - series: 'http_request_duration_seconds_bucket{route="/plans",method="GET",status="200",le="2.5"}'
        values: '0+10x30'
      - series: 'http_request_duration_seconds_bucket{route="/plans",method="GET",status="200",le="5"}'
        values: '0+100x30'
      - series: 'http_request_duration_seconds_bucket{route="/plans",method="GET",status="200",le="+Inf"}'
        values: '0+100x30'
      - series: 'scpln_jobs_enabled'
        values: '1x10 0x80'
    alert_rule_test:
      - {eval_time: 25m, alertname: PlanDbWriteErrorsSustained, exp_alerts: []}
      - eval_time: 50m
        alertname: PlanDbWriteErrorsSustained
        exp_alerts: [{exp_labels: {severity: page, team: sre, mode: both}}]
      - {eval_time: 100m, alertname: PlanDbWriteErrorsSustained, exp_alerts: []}
      - {eval_time: 12m, alertname: PlanIntegrityFailures, exp_alerts: []}
      - eval_time: 20m
        alertname: PlanIntegrityFailures
        exp_alerts: [{exp_labels: {severity: page, team: sre}}]
      - {eval_time: 8m, alertname: PlansApiSlow, exp_alerts: []}
      - eval_time: 20m
        alertname: PlansApiSlow
        exp_alerts: [{exp_labels: {severity: warning, team: sre}}]
      - {eval_time: 62m, alertname: ScplnMaintenanceTooLong, exp_alerts: []}
      - {eval_time: 50m, alertname: ScplnPlanIntakePausedTooLong, exp_alerts: []}
      - eval_time: 80m
        alertname: ScplnPlanIntakePausedTooLong
        exp_alerts: [{exp_labels: {severity: warning, team: sre}}]
"""


def test_alerts_fire_after_their_delay_and_stay_quiet_during_maintenance(tmp_path: Path):
    binary = promtool()
    # promtool compares annotations too; they are checked above, so the copy under test drops them.
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations")
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(document), encoding="utf-8")
    (tmp_path / "tests.yml").write_text("rule_files: [rules.yml]\n" + RULE_TESTS, encoding="utf-8")

    result = subprocess.run([binary, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
