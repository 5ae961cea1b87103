"""The aggregator's own health metrics (``supportpulse_aggregator_*``).

Label children are created once here, never per event: ``.labels()`` costs a dict
lookup and a lock, several times the increment itself (see the reference notes).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.aggregator.decode import TYPE_ORDER

QUARANTINE_REASONS = ("undecodable", "beyond_retention", "future")


class AggregatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        kw = {"registry": registry} if registry is not None else {}
        events = Counter("supportpulse_aggregator_events_total", "Events applied, by type.", ["type"], **kw)
        self._events = {t: events.labels(t) for t in TYPE_ORDER}
        self.ignored = Counter(
            "supportpulse_aggregator_events_ignored_total", "Events of types this version does not aggregate.", **kw
        )
        self.duplicates = Counter(
            "supportpulse_aggregator_duplicates_total", "Events whose id was already applied.", **kw
        )
        self.retractions = Counter(
            "supportpulse_aggregator_retracted_facts_total",
            "Facts withdrawn because a late or out-of-order event changed a conversation's history.", **kw,
        )
        quarantine = Counter(
            "supportpulse_aggregator_quarantined_total", "Events kept aside instead of counted.", ["reason"], **kw
        )
        self._quarantine = {r: quarantine.labels(r) for r in QUARANTINE_REASONS}
        self.flush_seconds = Histogram(
            "supportpulse_aggregator_flush_duration_seconds", "Duration of one flush transaction.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), **kw,
        )
        self.flushed_rows = Counter(
            "supportpulse_aggregator_flushed_rows_total", "Bucket rows upserted.", **kw
        )
        self.lag_seconds = Histogram(
            "supportpulse_aggregator_processing_lag_seconds",
            "Now minus event time of the newest event of each partition in a batch.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600), **kw,
        )
        self.consumer_lag = Gauge(
            "supportpulse_aggregator_consumer_lag_records", "High watermark minus position.", ["partition"], **kw
        )
        self.rebalances = Counter(
            "supportpulse_aggregator_rebalances_total", "Partition assignments and revocations.", ["kind"], **kw
        )
        self.fenced = Counter(
            "supportpulse_aggregator_fenced_total", "Flushes refused because another consumer owns the offsets.", **kw
        )
        self.flush_failures = Counter(
            "supportpulse_aggregator_flush_failures_total", "Flushes that failed and were rolled back.", **kw
        )
        self.cached_conversations = Gauge(
            "supportpulse_aggregator_cached_conversations", "Conversations held in memory.", **kw
        )
        self.last_flush = Gauge(
            "supportpulse_aggregator_last_flush_timestamp_seconds", "When the last flush committed.", **kw
        )

    def count_event(self, event_type: str) -> None:
        self._events[event_type].inc()

    def quarantined(self, reason: str) -> None:
        self._quarantine[reason].inc()
