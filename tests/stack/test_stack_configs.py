"""deploy/prometheus and deploy/alertmanager configs: validated with the real promtool / amtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from services.stack.errors import CommandError
from services.stack.paths import DEPLOY_DIR
from services.stack.prometheus import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    check_alertmanager_config,
    check_prometheus_config,
    promtool_binary,
)

RULES = DEPLOY_DIR / "prometheus" / "rules" / "pipeline.yml"

needs_tools = pytest.mark.skipif(
    shutil.which("promtool") is None or shutil.which("amtool") is None,
    reason="promtool/amtool come with the prometheus packages that `python -m services.stack up` installs",
)


@pytest.mark.integration
@needs_tools
def test_prometheus_config_passes_promtool() -> None:
    output = check_prometheus_config()
    assert f"Checking {PROMETHEUS_CONFIG}" in output
    rule_files = sorted((PROMETHEUS_CONFIG.parent / "rules").glob("*.yml"))
    assert rule_files
    assert f"SUCCESS: {len(rule_files)} rule files found" in output
    assert "FAILED" not in output


@pytest.mark.integration
@needs_tools
def test_alertmanager_config_passes_amtool() -> None:
    output = check_alertmanager_config()
    assert "SUCCESS" in output
    assert "1 receivers" in output


@pytest.mark.integration
@needs_tools
def test_broken_config_error_shows_command_and_output(tmp_path: Path) -> None:
    broken = tmp_path / "prometheus.yml"
    broken.write_text("global:\n  scrape_interval: not-a-duration\n")

    with pytest.raises(CommandError) as excinfo:
        check_prometheus_config(broken)

    message = str(excinfo.value)
    assert f"check config {broken}" in message
    assert "not-a-duration" in message


@pytest.mark.integration
@needs_tools
def test_target_down_alert_fires_after_one_minute(tmp_path: Path) -> None:
    """promtool's rule unit tests evaluate the real rule file against synthetic series."""
    test_file = tmp_path / "pipeline_test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(RULES)],
                "evaluation_interval": "5s",
                "tests": [
                    {
                        "interval": "5s",
                        "input_series": [
                            {
                                "series": 'up{job="supportpulse-api", instance="127.0.0.1:8080"}',
                                "values": "0x30",
                            },
                            {
                                "series": 'up{job="supportpulse-ingest", instance="127.0.0.1:8081"}',
                                "values": "1x30",
                            },
                            {"series": 'up{job="node", instance="127.0.0.1:9100"}', "values": "0x30"},
                        ],
                        "alert_rule_test": [
                            {"eval_time": "30s", "alertname": "SupportPulseTargetDown", "exp_alerts": []},
                            {
                                "eval_time": "90s",
                                "alertname": "SupportPulseTargetDown",
                                "exp_alerts": [
                                    {
                                        "exp_labels": {
                                            "severity": "critical",
                                            "job": "supportpulse-api",
                                            "instance": "127.0.0.1:8080",
                                        },
                                        "exp_annotations": {
                                            "summary": "supportpulse-api on 127.0.0.1:8080 is down",
                                            "description": (
                                                "Prometheus has not been able to scrape supportpulse-api "
                                                "(127.0.0.1:8080) for at least 1 minute."
                                            ),
                                        },
                                    }
                                ],
                            },
                        ],
                    }
                ],
            }
        )
    )
    promtool = promtool_binary()
    assert promtool is not None
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_prometheus_config_scrapes_the_three_services_and_alerts_to_our_alertmanager() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())

    assert config["global"] == {"scrape_interval": "5s", "evaluation_interval": "5s"}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {name: job["static_configs"][0]["targets"] for name, job in jobs.items()} == {
        "supportpulse-ingest": ["127.0.0.1:8081"],
        "supportpulse-aggregator": ["127.0.0.1:8082"],
        "supportpulse-api": ["127.0.0.1:8080"],
    }
    assert all(job["metrics_path"] == "/metrics" for job in jobs.values())
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:19094"]
    assert config["rule_files"] == ["rules/*.yml"]


def test_alertmanager_routes_everything_to_the_webhook() -> None:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())

    route = config["route"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("1s", "5s", "1h")
    assert "routes" not in route
    (receiver,) = [r for r in config["receivers"] if r["name"] == route["receiver"]]
    assert receiver["webhook_configs"][0]["url"] == "http://127.0.0.1:19095/alerts"
