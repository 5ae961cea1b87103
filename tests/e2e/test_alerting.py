"""Alerting end to end: simulated traffic -> SLA breach -> Prometheus alert -> Alertmanager -> webhook.

The `pipeline` fixture runs the aggregator with 20 s chat/WhatsApp first-response targets, so
conversations breach within the first minute; the breach counter the API exports rises, the rule
SupportPulseSLAFirstResponseBreaches (deploy/prometheus/rules/sla.yml, `for: 1m`) fires, and
Alertmanager (deploy/alertmanager/alertmanager.yml) posts it to the receiver on 127.0.0.1:19095.
The alert carries the run's own tenant, so neither a stale series nor an earlier notification
(Alertmanager repeats a notification only after repeat_interval) can pass for this run's.
"""

from __future__ import annotations

import json
import time
from typing import Final

import httpx
import pytest

from tests.e2e.support import RULES_DIR, AlertSink, Pipeline, alert_rules

ALERT: Final = "SupportPulseSLAFirstResponseBreaches"
# From the start of the simulated traffic to the notification at the webhook.
DEADLINE_SECONDS: Final = 180.0

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(duration[:-1]) * units[duration[-1]] if duration not in ("0", "") else 0.0


def test_the_breach_alert_can_fire_within_the_test_budget() -> None:
    rule = alert_rules(sorted(RULES_DIR.glob("*.yml")))[ALERT]
    # Breaches show within ~45 s of traffic; a longer `for` would not fit in DEADLINE_SECONDS.
    assert _seconds(str(rule.get("for", "0s"))) <= 60


def _diagnostics(pipeline: Pipeline, sink: AlertSink) -> str:
    counter = pipeline.prometheus.query(
        f'sum by (channel) (supportpulse_sla_first_response_breaches_total{{tenant="{pipeline.tenant}"}})'
    )
    ours = [a for a in pipeline.prometheus.alerts() if a["labels"].get("alertname") == ALERT]
    try:
        with httpx.Client(timeout=5, trust_env=False) as client:
            am = client.get(f"{pipeline.alertmanager_url}/api/v2/alerts").json()
    except (httpx.HTTPError, ValueError) as exc:
        am = f"unreachable: {exc}"
    posts = [f"{d.path}: {d.body[:300]}" for d in sink.snapshot()]
    return (
        f"tenant {pipeline.tenant}\nbreach counter: {json.dumps(counter.get('data'))}\n"
        f"Prometheus alerts {ALERT}: {json.dumps(ours)[:2000]}\n"
        f"Alertmanager alerts: {json.dumps(am)[:2000]}\nwebhook posts ({len(posts)}): {posts[-5:]}\n"
        + pipeline.describe()
    )


def test_sla_breach_alert_fires_and_reaches_the_webhook(alert_sink: AlertSink, pipeline: Pipeline) -> None:
    deadline = pipeline.feed_started + DEADLINE_SECONDS
    labels = {"tenant": pipeline.tenant}

    fired_at: float | None = None
    while fired_at is None:
        for alert in pipeline.prometheus.alerts():
            got = alert["labels"]
            ours = got.get("alertname") == ALERT and got.get("tenant") == pipeline.tenant
            if ours and alert["state"] == "firing":
                fired_at = time.monotonic()
        if fired_at is None:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{ALERT} did not fire within {DEADLINE_SECONDS:.0f} s of traffic\n"
                    + _diagnostics(pipeline, alert_sink)
                )
            time.sleep(1)

    delivery = alert_sink.find(ALERT, labels)
    while delivery is None:
        if time.monotonic() > deadline:
            pytest.fail(
                f"{ALERT} fired {fired_at - pipeline.feed_started:.0f} s into the traffic but "
                f"Alertmanager did not deliver it to the webhook within {DEADLINE_SECONDS:.0f} s\n"
                + _diagnostics(pipeline, alert_sink)
            )
        time.sleep(0.5)
        delivery = alert_sink.find(ALERT, labels)

    assert delivery.path == "/alerts"
    payload = delivery.payload()
    assert payload["receiver"] == "supportpulse-webhook"
    assert payload["status"] == "firing"
    alert = next(
        a
        for a in payload["alerts"]
        if a["labels"]["alertname"] == ALERT and a["labels"].get("tenant") == pipeline.tenant
    )
    assert alert["labels"]["severity"] == "warning"
    assert alert["labels"]["channel"] in {"chat", "whatsapp", "email"}
    assert "first-response SLA" in alert["annotations"]["summary"]
    print(
        f"{ALERT} firing after {fired_at - pipeline.feed_started:.0f} s of traffic, "
        f"delivered after {delivery.received_at - pipeline.feed_started:.0f} s"
    )
