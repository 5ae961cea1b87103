"""What a simulation run counts, and how it retries a delivery (the runner's records)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from services.simulator.story import CONNECTORS


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    base_seconds: float = 0.5
    cap_seconds: float = 10.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap_seconds)
        # Full-ish jitter so a recovering ingest is not hit by every retry at once.
        return min(self.cap_seconds, self.base_seconds * 2.0 ** (attempt - 1)) * rng.uniform(0.5, 1.0)


@dataclass(slots=True)
class ConnectorStats:
    sent: int = 0  # deliveries started
    accepted: int = 0  # answered 2xx
    rejected: int = 0  # answered 4xx: the payload or its signature was refused
    failed: int = 0  # 5xx or connection errors after the last attempt, or stopped while retrying
    retries: int = 0
    events: int = 0  # canonical events ingest reported accepting
    ignored: int = 0  # vendor events ingest reported skipping
    last_error: str | None = None


@dataclass(slots=True)
class SimulationStats:
    seed: int
    run_id: int
    connectors: dict[str, ConnectorStats] = field(
        default_factory=lambda: {name: ConnectorStats() for name in CONNECTORS}
    )
    stories: int = 0
    breaks: int = 0
    elapsed: float = 0.0
    pending: int = 0  # deliveries scheduled, not yet sent
    in_flight: int = 0

    @property
    def sent(self) -> int:
        return sum(c.sent for c in self.connectors.values())

    @property
    def accepted(self) -> int:
        return sum(c.accepted for c in self.connectors.values())

    @property
    def errors(self) -> int:
        return sum(c.rejected + c.failed for c in self.connectors.values())
