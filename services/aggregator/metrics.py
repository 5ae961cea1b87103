"""The aggregator's own health metrics (``supportpulse_aggregator_*``).

Label children are created once here, never per event: ``.labels()`` costs a dict
lookup and a lock, several times the increment itself (see the reference notes).
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from services.aggregator.decode import TYPE_ORDER

QUARANTINE_REASONS = ("undecodable", "invalid_text", "beyond_retention", "future", "timeline_too_long")


class AggregatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else REGISTRY
        events = Counter(
            "supportpulse_aggregator_events_total", "Events applied, by type.", ["type"], registry=reg
        )
        self._events = {t: events.labels(t) for t in TYPE_ORDER}
        self.ignored = Counter(
            "supportpulse_aggregator_events_ignored_total",
            "Events of types this version does not aggregate.",
            registry=reg,
        )
        self.duplicates = Counter(
            "supportpulse_aggregator_duplicates_total", "Events whose id was already applied.", registry=reg
        )
        self.retractions = Counter(
            "supportpulse_aggregator_retracted_facts_total",
            "Facts withdrawn because a late or out-of-order event changed a conversation's history.",
            registry=reg,
        )
        quarantine = Counter(
            "supportpulse_aggregator_quarantined_total",
            "Events kept aside instead of counted.",
            ["reason"],
            registry=reg,
        )
        self._quarantine = {r: quarantine.labels(r) for r in QUARANTINE_REASONS}
        self.flush_seconds = Histogram(
            "supportpulse_aggregator_flush_duration_seconds",
            "Duration of one flush transaction.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=reg,
        )
        self.flushed_rows = Counter(
            "supportpulse_aggregator_flushed_rows_total", "Bucket rows upserted.", registry=reg
        )
        self.lag_seconds = Histogram(
            "supportpulse_aggregator_processing_lag_seconds",
            "Now minus event time of the newest event of each partition in a batch.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
            registry=reg,
        )
        self.consumer_lag = Gauge(
            "supportpulse_aggregator_consumer_lag_records",
            "High watermark minus position.",
            ["partition"],
            registry=reg,
        )
        self.rebalances = Counter(
            "supportpulse_aggregator_rebalances_total",
            "Partition assignments and revocations.",
            ["kind"],
            registry=reg,
        )
        self.fenced = Counter(
            "supportpulse_aggregator_fenced_total",
            "Flushes refused because another consumer owns the offsets.",
            registry=reg,
        )
        self.flush_failures = Counter(
            "supportpulse_aggregator_flush_failures_total",
            "Flushes that failed and were rolled back.",
            registry=reg,
        )
        self.cached_conversations = Gauge(
            "supportpulse_aggregator_cached_conversations", "Conversations held in memory.", registry=reg
        )
        self.last_poll = Gauge(
            "supportpulse_aggregator_last_poll_timestamp_seconds",
            "When the consumer loop last polled Kafka (moves even when idle: a stuck loop stops it).",
            registry=reg,
        )
        self.last_flush = Gauge(
            "supportpulse_aggregator_last_flush_timestamp_seconds",
            "When the last flush committed.",
            registry=reg,
        )

        sla = Counter(
            "supportpulse_aggregator_sla_messages_total",
            "SLA transitions published to the breach topic, by outcome of the relay.",
            ["outcome"],
            registry=reg,
        )
        self.sla_published = sla.labels("published")
        self.sla_relay_failed = sla.labels("failed")
        self.sla_outbox_backlog = Gauge(
            "supportpulse_aggregator_sla_outbox_backlog",
            "SLA transitions committed but not yet published (last seen by the relay).",
            registry=reg,
        )
        self.sla_reloads = Counter(
            "supportpulse_aggregator_sla_config_reloads_total",
            "Times the SLA policies and calendars were (re)loaded from Postgres.",
            registry=reg,
        )

    def count_event(self, event_type: str) -> None:
        self._events[event_type].inc()

    def quarantined(self, reason: str) -> None:
        self._quarantine[reason].inc()
