"""Aggregator configuration (``SUPPORTPULSE_AGGREGATOR_*``), read once at start-up."""

from __future__ import annotations

import socket

from pydantic import Field

from services.aggregator.walk import Rules
from shared.settings import CommonSettings

DEFAULT_FIRST_RESPONSE_TARGETS = {
    "chat": 300.0,
    "whatsapp": 900.0,
    "sms": 900.0,
    "social": 3600.0,
    "email": 4 * 3600.0,
    "other": 3600.0,
}


class AggregatorSettings(CommonSettings):
    aggregator_group: str = "supportpulse-aggregator"
    # Static membership: a restart with the same id keeps its partitions without a rebalance.
    aggregator_instance_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-0")
    aggregator_metrics_host: str = "127.0.0.1"
    aggregator_metrics_port: int = 8082
    aggregator_flush_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    aggregator_max_batch: int = Field(default=5000, ge=1)
    aggregator_timer_interval_seconds: float = Field(default=5.0, gt=0)
    aggregator_short_abandon_seconds: float = Field(default=5.0, ge=0)
    aggregator_service_level_seconds: float = Field(default=20.0, gt=0)
    aggregator_first_response_targets: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_FIRST_RESPONSE_TARGETS)
    )
    # Events older than this, or more than a day ahead, are quarantined rather than counted.
    aggregator_late_limit_days: float = Field(default=90.0, gt=0)
    aggregator_max_cached_conversations: int = Field(default=200_000, ge=100)
    aggregator_session_timeout_ms: int = Field(default=10_000, ge=1000)

    @property
    def rules(self) -> Rules:
        return Rules(
            short_abandon_seconds=self.aggregator_short_abandon_seconds,
            service_level_seconds=self.aggregator_service_level_seconds,
            first_response_targets=tuple(sorted(self.aggregator_first_response_targets.items())),
        )
