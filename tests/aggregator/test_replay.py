"""Replay rebuilds the aggregates from the topic, swaps them in, and fences the live aggregator."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import pytest

from services.aggregator.replay import replay
from services.aggregator.service import aggregator
from services.aggregator.walk import Rules
from shared.settings import CommonSettings
from tests.aggregator.helpers import facts, totals
from tests.aggregator.kafka_helpers import (
    aggregator_settings,
    day_totals,
    produce,
    registry,
    stored_offsets,
    wait_for,
)
from tests.aggregator.test_consumer import RULE_OVERRIDES, expected_totals, same
from tests.aggregator.test_rollups import assert_rollups_are_sums_of_details
from tests.factories import random_timelines

pytestmark = [pytest.mark.integration]


async def test_replay_under_a_live_aggregator_then_with_a_new_threshold(
    db: asyncpg.Connection, topic: str, migrated_database: str, base_settings: CommonSettings
) -> None:
    rnd = random.Random(9)
    events = [e for t in random_timelines(rnd, 300) for e in t.events]
    first, second = events[:1500], events[1500:]
    settings = aggregator_settings(migrated_database, topic, **RULE_OVERRIDES)
    await produce(base_settings.kafka_bootstrap, topic, first)
    async with aggregator(settings, registry()) as live:
        task = asyncio.create_task(live.run())

        async def caught_up(n: int) -> bool:
            if task.done():
                task.result()
            return await stored_offsets(db, settings.aggregator_group) >= n

        await wait_for(lambda: caught_up(len(first)))
        result = await replay(settings)
        assert result.records == len(first)
        got, want1 = await day_totals(db), expected_totals(first)
        assert same(got, want1), {
            k: (got.get(k), want1.get(k)) for k in set(got) | set(want1) if got.get(k) != want1.get(k)
        }
        # The live aggregator is fenced on its next flush, reloads, and continues after the replay's end.
        await produce(base_settings.kafka_bootstrap, topic, second)
        want = expected_totals(events)

        async def all_counted() -> bool:
            return await caught_up(len(events)) and same(await day_totals(db), want)

        try:
            await wait_for(all_counted, within=90)
        finally:
            live.stop()
            await task
        assert live.engine.metrics.fenced._value.get() >= 1
    # The rollups were rebuilt and swapped in with the detail rows, and kept up after the swap.
    await assert_rollups_are_sums_of_details(db)

    # A new service-level threshold rewrites history when replayed.
    relaxed = aggregator_settings(
        migrated_database,
        topic,
        group=settings.aggregator_group,
        aggregator_service_level_seconds=60.0,
        **RULE_OVERRIDES,
    )
    lines = []
    await replay(relaxed, progress=lambda done, total: lines.append((done, total)))
    assert lines and lines[-1] == (len(events), len(events))
    import time

    rules = Rules(service_level_seconds=60.0, first_response_targets=(("chat", 300.0), ("email", 3600.0)))
    assert same(await day_totals(db), totals(facts(events, now=time.time(), rules=rules)))
    assert await db.fetchval("SELECT count(DISTINCT epoch) FROM consumer_offsets") == 1
    await assert_rollups_are_sums_of_details(db)
    assert await db.fetchval("SELECT count(*) FROM kpi_counts_by_channel") > 0
