"""(d) Postgres stops mid-stream (SUPPORTPULSE_CHAOS_POSTGRES_DOWN_SECONDS, 30 in the long form)
and comes back.

Ingest does not need Postgres and keeps accepting; the aggregator's flushes fail, it drops
what it had not flushed and reloads from Postgres when it can, or exits and is restarted
by its supervisor (this harness, as Kubernetes would). Nothing is written half: offsets and
rows commit together. At the end every KPI equals the reference of what ingest accepted.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest

from tests.chaos.harness import Pipeline, Sizes, connect, wait_for
from tests.chaos.private_stack import PrivateStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_postgres_outage_mid_stream_loses_and_doubles_nothing(
    private_stack: PrivateStack, chaos_database: str, chaos_db: asyncpg.Connection, tmp_path: Path
) -> None:
    sizes = Sizes()
    async with Pipeline("postgres", private_stack.bootstrap, chaos_database, tmp_path, sizes) as p:
        aggregator = p.aggregator("d")
        await p.start_ingest()
        p.start_stream()

        async def progressed() -> bool:
            return sum((await p.stored(chaos_db)).values()) > 0

        await wait_for(progressed, 90, p.tails)
        await chaos_db.close()  # the server is going away
        down_at = time.monotonic()
        await asyncio.to_thread(private_stack.stop_postgres)
        p.mark("postgres stopped")
        await asyncio.sleep(max(sizes.postgres_down - (time.monotonic() - down_at), 0.0))
        outage = time.monotonic() - down_at
        await asyncio.to_thread(private_stack.start_postgres)
        p.mark("postgres up")
        assert p.streaming, "the stream ended before Postgres came back: make it longer"
        stats = await p.finish_stream()
        conn = await connect(chaos_database)
        try:
            result = await p.settle(conn)
        finally:
            await conn.close()
        _, missing = await p.acknowledged_in_kafka()
    failures = aggregator.log_path.read_text(errors="replace").count("flush failed")
    print(
        result.summary(),
        p.timeline(),
        f"postgres down {outage:.1f} s; aggregator flush failures logged {failures}, "
        f"exits restarted by the supervisor {len(aggregator.crashes)} {aggregator.crashes}",
        sep="\n",
    )
    assert failures + len(aggregator.crashes) > 0, "the outage went unnoticed: it hit no work"
    assert stats.errors == 0 and stats.accepted == stats.sent > 0, stats
    assert not missing, f"{len(missing)} acknowledged events are not in Kafka"
    assert result.ok, result.summary()
