"""Ingest health metrics (``supportpulse_ingest_*``); label children made once, not per request."""

from __future__ import annotations

import collections
import os
from collections.abc import Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess

from shared.events import Event, EventType

# prometheus_client's switch to values shared by worker processes (read when it is imported): set
# by service.main for more than one worker.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

OUTCOMES = (
    "accepted",
    "ignored",
    "invalid",
    "bad_signature",
    "stale_timestamp",
    "unauthorized",
    "unsupported_media_type",
    "too_large",
    "unknown_tenant",
    "unavailable",
)


class IngestMetrics:
    def __init__(self, connectors: tuple[str, ...], registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else REGISTRY
        requests = Counter(
            "supportpulse_ingest_requests_total",
            "Webhook requests by connector and outcome.",
            ["connector", "outcome"],
            registry=reg,
        )
        self._requests = {(c, o): requests.labels(c, o) for c in connectors for o in OUTCOMES}
        latency = Histogram(
            "supportpulse_ingest_request_duration_seconds",
            "Time to answer a webhook, by connector.",
            ["connector"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=reg,
        )
        self._latency = {c: latency.labels(c) for c in connectors}
        self.produce_seconds = Histogram(
            "supportpulse_ingest_produce_duration_seconds",
            "Time until Kafka acknowledged a request's events.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=reg,
        )
        events = Counter(
            "supportpulse_ingest_events_total", "Events published, by type.", ["type"], registry=reg
        )
        self._events = {t.value: events.labels(t.value) for t in EventType}
        self._other_events = events.labels("other")
        ignored = Counter(
            "supportpulse_ingest_vendor_events_ignored_total",
            "Vendor events accepted but not mapped (unknown or irrelevant types), by connector.",
            ["connector"],
            registry=reg,
        )
        self._ignored = {c: ignored.labels(c) for c in connectors}
        self.deadletter_failures = Counter(
            "supportpulse_ingest_deadletter_failures_total",
            "Rejected payloads that could not be dead-lettered.",
            registry=reg,
        )

    def request(self, connector: str, outcome: str, seconds: float) -> None:
        self._requests[(connector, outcome)].inc()
        self._latency[connector].observe(seconds)

    def events(self, events: Sequence[Event]) -> None:
        if len(events) == 1:  # the usual webhook: no tally to build
            self._events.get(events[0].type, self._other_events).inc()
            return
        # One inc() per type present, not per event: a 1000-event batch is one or a few calls.
        for t, count in collections.Counter(e.type for e in events).items():
            self._events.get(t, self._other_events).inc(count)

    def ignored(self, connector: str, count: int) -> None:
        if count:
            self._ignored[connector].inc(count)


def exposed(registry: CollectorRegistry) -> CollectorRegistry:
    """What /metrics shows: with several workers, the metrics of all of them summed (whichever
    worker answers the scrape); otherwise this process's ``registry``."""
    if MULTIPROC_ENV not in os.environ:
        return registry
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    return merged
