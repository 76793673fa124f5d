"""The alerting rules in deploy/prometheus: valid for Prometheus (`promtool check rules`), right
on their unit tests (`promtool test rules`), and each one tells the on-call what to do."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.support.metric_names import exported_sample_names
from tests.support.prometheus import REPO, RULE_TESTS, RULES, require

PROMTOOL_TIMEOUT_S = 60
RUNBOOK = REPO / "deploy" / "README.md"
SEVERITIES = {"critical", "warning"}
METRIC_NAME = re.compile(r"\bygg_[a-z0-9_]+")


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("promtool"), *args],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        cwd=RULES.parent,
    )


@pytest.mark.prometheus
def test_promtool_accepts_the_rules() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout


@pytest.mark.prometheus
def test_the_rules_pass_their_promtool_unit_tests() -> None:
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_tells_the_on_call_what_to_do() -> None:
    headings = set(re.findall(r"^### (\w+)$", RUNBOOK.read_text(), flags=re.MULTILINE))
    rules = alert_rules()
    assert len(rules) >= 7
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        assert annotations["runbook"] == f"deploy/README.md, Alerts: {name}"
        assert name in headings, f"deploy/README.md has no '### {name}' runbook"


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    checks = [check for case in cases for check in case.get("alert_rule_test", [])]
    for rule in alert_rules():
        name = rule["alert"]
        mine = [check for check in checks if check["alertname"] == name]
        assert any(check.get("exp_alerts") for check in mine), f"{name} is never seen firing"
        assert any(not check.get("exp_alerts") for check in mine), f"{name} is never quiet"


def test_every_rule_reads_metrics_the_daemon_exports() -> None:
    """A renamed metric would leave its alert silent for ever: promtool cannot see that."""
    used = {name for rule in alert_rules() for name in METRIC_NAME.findall(rule["expr"])}
    assert "ygg_progress_age_seconds" in used
    assert used - exported_sample_names() == set()
