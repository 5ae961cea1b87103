"""(e) Ingest faces an unreachable Kafka: callers get 503 and retry; nothing acknowledged is lost.

Ingest starts while the (private) broker is down, as after a data-centre power cut where the
web tier comes back first: it serves, answers every delivery 503 with Retry-After, and
connects in the background. The simulator retries each delivery, as vendors do. Then the
broker comes back mid-stream: the retries land, every event ingest acknowledged is in
Kafka, and the KPIs equal the reference of exactly those events.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from tests.chaos.harness import Pipeline, Sizes, ingest_outcomes, wait_for
from tests.chaos.private_stack import PrivateStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_ingest_answers_503_while_kafka_is_unreachable_and_loses_nothing_acknowledged(
    private_stack: PrivateStack, chaos_database: str, chaos_db: asyncpg.Connection, tmp_path: Path
) -> None:
    sizes = Sizes()
    async with Pipeline("unreachable", private_stack.bootstrap, chaos_database, tmp_path, sizes) as p:
        await asyncio.to_thread(private_stack.stop_kafka)
        try:
            await p.start_ingest()
            p.start_stream()

            async def refused() -> bool:
                return (await ingest_outcomes(p)).get("unavailable", 0) >= 20

            await wait_for(refused, 60, p.tails)
            p.mark("20 deliveries refused")
            await asyncio.sleep(sizes.kafka_down)
            during = await ingest_outcomes(p)
        finally:
            await asyncio.to_thread(private_stack.start_kafka)
            p.mark("broker up")
        assert p.streaming, "the stream ended while Kafka was down: make it longer"
        aggregator = p.aggregator("e")
        stats = await p.finish_stream()
        after = await ingest_outcomes(p)
        result = await p.settle(chaos_db)
        in_kafka, missing = await p.acknowledged_in_kafka()
    retries = sum(c.retries for c in stats.connectors.values())
    print(
        result.summary(),
        p.timeline(),
        f"while Kafka was down ingest answered {during}; in the end {after}; simulator retries "
        f"{retries}; events in Kafka {in_kafka}; aggregator restarts {len(aggregator.crashes)}",
        sep="\n",
    )
    # Nothing was acknowledged while Kafka was unreachable, and every delivery got through later.
    assert during.get("accepted", 0) == 0, during
    assert during["unavailable"] >= 20 and retries >= during["unavailable"]
    assert stats.errors == 0 and stats.accepted == stats.sent > 0, stats
    assert not missing, f"{len(missing)} acknowledged events are not in Kafka"
    assert result.ok, result.summary()
