"""The aggregator's probes: alive while the loop polls, ready once assigned and flushing."""

from __future__ import annotations

import socket
import time

import httpx
from prometheus_client import CollectorRegistry, Counter

from services.aggregator.health import Heartbeat, serve


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_probes_follow_the_heartbeat_and_metrics_are_served() -> None:
    registry = CollectorRegistry()
    Counter("supportpulse_probe_test_total", "test", registry=registry).inc()
    beat = Heartbeat(stall_seconds=5)
    port = _port()
    stop = serve("127.0.0.1", port, beat, registry)
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 503  # not assigned yet
        beat.assigned = True
        beat.last_flush_ok = time.monotonic()
        assert httpx.get(f"{base}/readyz").status_code == 200
        beat.last_flush_ok = None  # a failed flush
        assert httpx.get(f"{base}/readyz").status_code == 503
        beat.last_poll = time.monotonic() - 10  # the loop is stuck
        assert httpx.get(f"{base}/healthz").status_code == 503
        assert "supportpulse_probe_test_total 1.0" in httpx.get(f"{base}/metrics").text
    finally:
        stop()
