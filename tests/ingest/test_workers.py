"""``supportpulse ingest`` with several worker processes: one port, one producer per worker, and
/metrics showing the whole service whichever worker answers the scrape."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.security.services import RunningService

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "workers-token"
TENANTS = {"tenants": {"t1": {"ingest_token": TOKEN, "connectors": {"generic": {}}}}}
EVENT = (
    '{{"id":"w-{i}","source":"test","type":"message.created","occurred_at":"2026-01-01T00:00:00Z",'
    '"conversation_id":"c-{i}","direction":"inbound","author":"customer"}}'
)
ACCEPTED = re.compile(r'supportpulse_ingest_requests_total\{connector="generic",outcome="accepted"\} (\S+)')


def test_two_workers_answer_on_one_port_and_metrics_sum_them(tmp_path: Path) -> None:
    env = {"SUPPORTPULSE_INGEST_WORKERS": "2"}
    with RunningService.ingest(tmp_path, tenants=TENANTS, env=env) as service:
        for i in range(30):
            # A new connection each time, so that both workers take some of them.
            r = httpx.post(
                f"{service.url}/v1/events",
                content=EVENT.format(i=i),
                headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
            )
            assert r.status_code == 202, r.text
        for _ in range(6):
            found = ACCEPTED.search(httpx.get(f"{service.url}/metrics").text)
            assert found is not None and float(found.group(1)) == 30
    assert len(re.findall(r"Started server process", service.output())) == 2, service.output()[-2000:]
