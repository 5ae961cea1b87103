"""(b) Two aggregators share the partitions; one is SIGKILLed, the other takes everything over
after the session timeout; the killed one comes back and the partitions are shared again.

Whatever each one had processed but not flushed is lost with it and re-read from the
offsets stored in Postgres by the next owner; a zombie's late flush would be fenced. At the
end every KPI equals the reference of what ingest accepted.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from tests.chaos.harness import Pipeline, Sizes, owned_partitions, wait_for
from tests.chaos.private_stack import PrivateStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ALL = set(range(6))


async def test_kill_one_of_two_aggregators_then_add_it_back(
    private_stack: PrivateStack, chaos_database: str, chaos_db: asyncpg.Connection, tmp_path: Path
) -> None:
    sizes = Sizes().slower()  # two session timeouts and two rebalances fit in the stream
    async with Pipeline("rebalance", private_stack.bootstrap, chaos_database, tmp_path, sizes) as p:
        a = p.aggregator("a")
        b = p.aggregator("b", supervised=False)
        await p.start_ingest()
        p.start_stream()
        owners: dict[str, set[int]] = {}

        async def shared() -> bool:
            # Settled: each owns some, together all, none twice (a view taken mid-rebalance fails).
            owners["a"], owners["b"] = await owned_partitions(a), await owned_partitions(b)
            split = owners["a"] and owners["b"] and owners["a"].isdisjoint(owners["b"])
            return bool(split) and owners["a"] | owners["b"] == ALL

        await wait_for(shared, 120, p.tails)
        first_split = dict(owners)

        async def b_progressed() -> bool:
            stored = await p.stored(chaos_db)
            return any(stored.get(part, 0) > 0 for part in owners["b"])

        await wait_for(b_progressed, 60, p.tails)
        p.mark("B killed")
        b.kill()  # a crash: no final flush, no leave-group; A waits out B's session

        async def a_owns_all() -> bool:
            return await owned_partitions(a) == ALL

        await wait_for(a_owns_all, 90, p.tails)
        p.mark("A owns all")
        assert p.streaming, "the stream ended before the rebalance: make it longer"
        b.start()  # added back
        await wait_for(shared, 120, p.tails)
        p.mark("shared again")
        second_split = dict(owners)
        stats = await p.finish_stream()
        result = await p.settle(chaos_db)
        _, missing = await p.acknowledged_in_kafka()
    print(result.summary(), p.timeline(), f"split {first_split} -> A alone -> {second_split}", sep="\n")
    assert stats.errors == 0 and stats.accepted == stats.sent > 0, stats
    assert not missing, f"{len(missing)} acknowledged events are not in Kafka"
    assert result.ok, result.summary()
    assert a.crashes == [], a.tail()
