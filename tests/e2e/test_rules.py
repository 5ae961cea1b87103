"""The alert rules: `promtool check rules` clean, `promtool test rules` green, every alert unit-tested.

promtool comes with the Prometheus package the stack installs, so these tests start (or reuse) the
stack rather than skip when it is missing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.stack import StackInfo
from services.stack.prometheus import promtool_binary
from tests.e2e.support import RULE_TESTS_DIR, RULES_DIR, alert_rules

pytestmark = pytest.mark.integration

SEVERITIES = {"critical", "warning", "info"}


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def unit_test_files() -> list[Path]:
    return sorted(RULE_TESTS_DIR.glob("*.yml"))


@pytest.fixture(scope="module")
def promtool(stack: StackInfo) -> str:
    binary = promtool_binary()
    assert binary is not None, (
        "promtool missing after `services.stack.up()` (it installs the prometheus package)"
    )
    return binary


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)


def test_the_expected_rule_files_exist() -> None:
    assert {p.name for p in rule_files()} >= {"pipeline.yml", "sla.yml", "phone.yml", "backlog.yml"}
    assert unit_test_files(), f"no promtool unit tests in {RULE_TESTS_DIR}"


def test_promtool_check_rules(promtool: str) -> None:
    files = rule_files()
    result = run([promtool, "check", "rules", *map(str, files)])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.count("SUCCESS") == len(files), output
    assert "FAILED" not in output and "WARNING" not in output.upper(), output


def test_promtool_test_rules(promtool: str) -> None:
    files = unit_test_files()
    result = run([promtool, "test", "rules", *map(str, files)])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "FAILED" not in output, output
    assert output.count("SUCCESS") == len(files), output


def test_every_alert_has_severity_summary_and_description() -> None:
    rules = alert_rules(rule_files())
    assert len(rules) >= 10
    for name, rule in rules.items():
        assert name.startswith("SupportPulse"), name
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = rule.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), name


def _unit_tests() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for path in unit_test_files():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for rule_file in data["rule_files"]:
            assert (path.parent / rule_file).resolve().parent == RULES_DIR, f"{path}: {rule_file}"
        for test in data["tests"]:
            cases.extend(test.get("alert_rule_test", []))
    return cases


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in _unit_tests():
        (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = set(alert_rules(rule_files()))
    assert names - firing == set(), "alerts with no unit test where they fire"
    assert names - quiet == set(), "alerts with no unit test where they stay quiet"
    assert (firing | quiet) - names == set(), "unit tests of alerts that do not exist"
