"""(c) The Kafka broker restarts while the simulator streams through ingest to the aggregator.

A private broker (never the shared one) is stopped and started again mid-stream. Ingest
answers 503 while it cannot get acknowledgements and the simulator retries, as a vendor
would; the aggregator's consumer reconnects and resumes from the offsets in Postgres. At
the end every KPI equals the reference of what ingest accepted.

Ingest's idempotent aiokafka producer can come out of the restart with
``OutOfOrderSequenceNumber`` on every send (aiokafka issue #1017); ingest then replaces it
(``Publisher._replace``) and accepts again. Should ingest stay stuck, the test restarts it,
as an operator would, proves the rest (nothing acknowledged lost, KPIs exact) and then
fails with :class:`IngestStuck`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.chaos.harness import Pipeline, Sizes, env_number, ingest_outcomes, wait_for
from tests.chaos.private_stack import PrivateStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Ingest normally accepts again within seconds of the broker being back.
RECOVERY_SECONDS = env_number("SUPPORTPULSE_CHAOS_INGEST_RECOVERY_SECONDS", 15.0)


class IngestStuck(AssertionError):
    """Ingest kept answering 503 after the broker was back."""


async def test_broker_restart_mid_stream_loses_and_doubles_nothing(
    private_stack: PrivateStack, chaos_database: str, chaos_db: asyncpg.Connection, tmp_path: Path
) -> None:
    sizes = Sizes()
    async with Pipeline("broker", private_stack.bootstrap, chaos_database, tmp_path, sizes) as p:
        aggregator = p.aggregator("c")
        await p.start_ingest()
        p.start_stream()

        async def progressed() -> bool:
            return sum((await p.stored(chaos_db)).values()) > 0

        await wait_for(progressed, 90, p.tails)
        down_at = time.monotonic()
        stopped_in = await asyncio.to_thread(private_stack.stop_kafka)
        p.mark("broker stopped")
        await asyncio.sleep(sizes.kafka_down)
        started_in = await asyncio.to_thread(private_stack.start_kafka)
        p.mark("broker up")
        outage = time.monotonic() - down_at
        assert p.streaming, "the stream ended before the broker came back: make it longer"
        before = p.accepted()

        async def accepting() -> bool:
            return p.accepted() > before or not p.streaming

        stuck = ""
        try:
            await wait_for(accepting, RECOVERY_SECONDS)
        except AssertionError:
            outcomes = await ingest_outcomes(p)
            async with httpx.AsyncClient(timeout=10) as client:
                ready = (await client.get(f"{p.ingest_url}/readyz")).status_code
            errors = p.ingest.tail(3) if p.ingest else ""
            stuck = (
                f"ingest answered {outcomes} and nothing more was accepted; /readyz said {ready}; "
                f"its log ends:\n{errors}"
            )
            p.mark("ingest stuck")
            await p.start_ingest()  # what an operator (or a liveness probe) would do
        stats = await p.finish_stream()
        result = await p.settle(chaos_db)
        in_kafka, missing = await p.acknowledged_in_kafka()
    retries = sum(c.retries for c in stats.connectors.values())
    print(
        result.summary(),
        p.timeline(),
        f"broker down {outage:.1f} s (stop {stopped_in:.1f} s, start {started_in:.1f} s); "
        f"simulator retries {retries}; aggregator restarts {len(aggregator.crashes)}; "
        f"events in Kafka {in_kafka}; ingest restarted by the test: {stuck or False}",
        sep="\n",
    )
    assert stats.errors == 0 and stats.accepted == stats.sent > 0, stats
    assert retries > 0, "no caller had to retry: the outage did not hit the stream"
    assert not missing, f"{len(missing)} acknowledged events are not in Kafka"
    assert result.ok, result.summary()
    if stuck:
        raise IngestStuck(stuck)
