"""Alerting end to end: simulated traffic -> SLA breach -> Prometheus alert -> Alertmanager -> webhook.

The `pipeline` fixture gives the run's tenant SLA policies with 20 s chat/WhatsApp first-response and
30 s next-reply targets, so conversations breach within the first minute or two; the breach counter
the API exports (supportpulse_sla_breaches_total{target=...}) rises, the rules
SupportPulseSLAFirstResponseBreaches and SupportPulseSLANextReplyBreaches (deploy/prometheus/rules/sla.yml,
`for: 1m`) fire, and Alertmanager (deploy/alertmanager/alertmanager.yml) posts them to the receiver on
127.0.0.1:19095. Each alert carries the run's own tenant, so neither a stale series nor an earlier
notification (Alertmanager repeats a notification only after repeat_interval) can pass for this run's.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

import httpx
import pytest

from tests.e2e.support import RULES_DIR, AlertSink, Pipeline, alert_rules

FIRST_RESPONSE: Final = "SupportPulseSLAFirstResponseBreaches"
NEXT_REPLY: Final = "SupportPulseSLANextReplyBreaches"
# From the start of the simulated traffic to the notification at the webhook. A next-reply breach
# needs a first response, a follow-up and 30 s more: it comes about a minute after the first ones.
DEADLINE_SECONDS: Final = {FIRST_RESPONSE: 180.0, NEXT_REPLY: 240.0}
TARGETS: Final = {FIRST_RESPONSE: "first_response", NEXT_REPLY: "next_reply"}

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(duration[:-1]) * units[duration[-1]] if duration not in ("0", "") else 0.0


@pytest.mark.parametrize("alert", [FIRST_RESPONSE, NEXT_REPLY])
def test_the_breach_alert_can_fire_within_the_test_budget(alert: str) -> None:
    rule = alert_rules(sorted(RULES_DIR.glob("*.yml")))[alert]
    # Breaches show within ~45 s (first response) or ~100 s (next reply) of traffic; a longer `for`
    # would not fit in the deadline.
    assert _seconds(str(rule.get("for", "0s"))) <= 60
    assert f'target="{TARGETS[alert]}"' in rule["expr"]


def _diagnostics(pipeline: Pipeline, sink: AlertSink, alert: str) -> str:
    counter = pipeline.prometheus.query(
        f'sum by (channel, target) (supportpulse_sla_breaches_total{{tenant="{pipeline.tenant}"}})'
    )
    ours = [a for a in pipeline.prometheus.alerts() if a["labels"].get("alertname") == alert]
    try:
        with httpx.Client(timeout=5, trust_env=False) as client:
            am = client.get(f"{pipeline.alertmanager_url}/api/v2/alerts").json()
    except (httpx.HTTPError, ValueError) as exc:
        am = f"unreachable: {exc}"
    posts = [f"{d.path}: {d.body[:300]}" for d in sink.snapshot()]
    return (
        f"tenant {pipeline.tenant}\nbreach counter: {json.dumps(counter.get('data'))}\n"
        f"Prometheus alerts {alert}: {json.dumps(ours)[:2000]}\n"
        f"Alertmanager alerts: {json.dumps(am)[:2000]}\nwebhook posts ({len(posts)}): {posts[-5:]}\n"
        + pipeline.describe()
    )


def _fires_and_reaches_the_webhook(alert_sink: AlertSink, pipeline: Pipeline, alert: str) -> dict[str, Any]:
    """Waits for `alert` of the run's tenant firing in Prometheus, then at the webhook; its payload."""
    budget = DEADLINE_SECONDS[alert]
    deadline = pipeline.feed_started + budget
    labels = {"tenant": pipeline.tenant}

    fired_at: float | None = None
    while fired_at is None:
        for found in pipeline.prometheus.alerts():
            got = found["labels"]
            ours = got.get("alertname") == alert and got.get("tenant") == pipeline.tenant
            if ours and found["state"] == "firing":
                fired_at = time.monotonic()
        if fired_at is None:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{alert} did not fire within {budget:.0f} s of traffic\n"
                    + _diagnostics(pipeline, alert_sink, alert)
                )
            time.sleep(1)

    delivery = alert_sink.find(alert, labels)
    while delivery is None:
        if time.monotonic() > deadline:
            pytest.fail(
                f"{alert} fired {fired_at - pipeline.feed_started:.0f} s into the traffic but "
                f"Alertmanager did not deliver it to the webhook within {budget:.0f} s\n"
                + _diagnostics(pipeline, alert_sink, alert)
            )
        time.sleep(0.5)
        delivery = alert_sink.find(alert, labels)

    assert delivery.path == "/alerts"
    payload = delivery.payload()
    assert payload["receiver"] == "supportpulse-webhook"
    assert payload["status"] == "firing"
    notified: dict[str, Any] = next(
        a
        for a in payload["alerts"]
        if a["labels"]["alertname"] == alert and a["labels"].get("tenant") == pipeline.tenant
    )
    assert notified["labels"]["severity"] == "warning"
    assert notified["labels"]["channel"] in {"chat", "whatsapp", "email"}
    print(
        f"{alert} firing after {fired_at - pipeline.feed_started:.0f} s of traffic, "
        f"delivered after {delivery.received_at - pipeline.feed_started:.0f} s"
    )
    return notified


def test_sla_breach_alert_fires_and_reaches_the_webhook(alert_sink: AlertSink, pipeline: Pipeline) -> None:
    notified = _fires_and_reaches_the_webhook(alert_sink, pipeline, FIRST_RESPONSE)
    assert "first-response SLA" in notified["annotations"]["summary"]


def test_next_reply_breach_alert_fires_and_reaches_the_webhook(
    alert_sink: AlertSink, pipeline: Pipeline
) -> None:
    notified = _fires_and_reaches_the_webhook(alert_sink, pipeline, NEXT_REPLY)
    assert "next-reply SLA" in notified["annotations"]["summary"]
