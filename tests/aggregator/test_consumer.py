"""The aggregator on the real broker and the real database: exactly-once under duplicates,
reordering, restarts without a final flush, stale Kafka commits and a two-consumer rebalance."""

from __future__ import annotations

import asyncio
import math
import random
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.aggregator.service import aggregator
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
from tests.factories import random_timelines

pytestmark = [pytest.mark.integration]


def same(got: dict[str, tuple[int, float]], want: dict[str, tuple[int, float]]) -> bool:
    if got.keys() != want.keys():
        return False
    return all(
        got[k][0] == want[k][0] and math.isclose(got[k][1], want[k][1], rel_tol=1e-9, abs_tol=1e-6)
        for k in want
    )


def expected_totals(events: list) -> dict[str, tuple[int, float]]:  # type: ignore[type-arg]
    from tests.aggregator.helpers import RULES as _  # noqa: F401  (same rules as the settings below)

    return totals(facts(events, now=time.time()))


RULE_OVERRIDES = {
    "aggregator_first_response_targets": {"chat": 300.0, "email": 3600.0},
}


async def run_until(settings, db: asyncpg.Connection, want: dict[str, tuple[int, float]], total: int) -> None:  # type: ignore[no-untyped-def]
    async with aggregator(settings, registry()) as loop:
        task = asyncio.create_task(loop.run())

        async def done() -> bool:
            if task.done():
                task.result()  # surface a crash
            return await stored_offsets(db, settings.aggregator_group) >= total and same(
                await day_totals(db), want
            )

        try:
            await wait_for(done, within=90)
        except AssertionError:
            print("stored", await stored_offsets(db, settings.aggregator_group), "of", total)
            print("got ", await day_totals(db))
            print("want", want)
            raise
        finally:
            loop.stop()
            await task


async def test_counts_equal_the_reference_despite_duplicates_and_shuffling(
    db: asyncpg.Connection, topic: str, migrated_database: str, base_settings: CommonSettings
) -> None:
    rnd = random.Random(7)
    events = [e for t in random_timelines(rnd, 300) for e in t.events]
    want = expected_totals(events)
    # Redeliveries, and a shuffle that keeps nothing in order (one conversation still lands on one partition).
    sent = events + rnd.sample(events, 200)
    rnd.shuffle(sent)
    await produce(base_settings.kafka_bootstrap, topic, sent)
    settings = aggregator_settings(migrated_database, topic, **RULE_OVERRIDES)
    await run_until(settings, db, want, len(sent))
    assert same(await day_totals(db), want)
    # The three grains agree with each other.
    hours = await day_totals(db, grain=1)
    assert same(hours, want)
    # Every conversation's state is stored, and the stored offsets are exactly the log ends.
    assert await db.fetchval("SELECT count(*) FROM conversations") == len({e.conversation_id for e in events})
    assert await stored_offsets(db, settings.aggregator_group) == len(sent)


async def test_recent_events_fill_minute_buckets_consistently(
    db: asyncpg.Connection, topic: str, migrated_database: str, base_settings: CommonSettings
) -> None:
    rnd = random.Random(11)
    start = datetime.now(UTC) - timedelta(hours=3, minutes=30)
    events = [e for t in random_timelines(rnd, 80, start=start) for e in t.events]
    events = [e for e in events if e.occurred_at < datetime.now(UTC)]
    want = expected_totals(events)
    await produce(base_settings.kafka_bootstrap, topic, events)
    settings = aggregator_settings(migrated_database, topic, **RULE_OVERRIDES)
    await run_until(settings, db, want, len(events))
    assert same(await day_totals(db, grain=0), want)
    hist_total = await db.fetchval(
        "SELECT sum(count) FROM kpi_hist WHERE grain = 0 AND label = '' AND metric = 'first_response_seconds'"
    )
    assert hist_total == want["first_response_seconds"][0]


async def test_restart_without_final_flush_and_with_stale_kafka_commits_counts_once(
    db: asyncpg.Connection, topic: str, migrated_database: str, base_settings: CommonSettings
) -> None:
    rnd = random.Random(3)
    timelines = random_timelines(rnd, 400)
    events = [e for t in timelines for e in t.events]
    want = expected_totals(events)
    half = len(events) // 2
    await produce(base_settings.kafka_bootstrap, topic, events[:half])
    settings = aggregator_settings(migrated_database, topic, **RULE_OVERRIDES)

    # First life: stops abruptly (a crash: the task is cancelled, no final flush) mid-way.
    async with aggregator(settings, registry()) as loop:
        task = asyncio.create_task(loop.run())

        async def some_progress() -> bool:
            return await stored_offsets(db, settings.aggregator_group) > 0

        await wait_for(some_progress)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    stored_after_crash = await stored_offsets(db, settings.aggregator_group)
    assert 0 < stored_after_crash <= half

    # The Kafka commits are best effort: rewind them to 0, as if the process died between the
    # database commit and the Kafka commit. Postgres alone must decide where to resume.
    rewind = AIOKafkaConsumer(
        bootstrap_servers=base_settings.kafka_bootstrap,
        group_id=settings.aggregator_group,
        enable_auto_commit=False,
    )
    await rewind.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(6)]
        rewind.assign(partitions)
        # The crashed static member holds the group until its session times out.
        deadline = time.monotonic() + 30
        while True:
            try:
                await rewind.commit(dict.fromkeys(partitions, 0))
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        assert all([await rewind.committed(tp) == 0 for tp in partitions])
    finally:
        await rewind.stop()

    await produce(base_settings.kafka_bootstrap, topic, events[half:])
    await run_until(settings, db, want, len(events))
    assert same(await day_totals(db), want)


async def test_two_consumers_share_partitions_and_one_leaving_hands_over_exactly(
    db: asyncpg.Connection, topic: str, migrated_database: str, base_settings: CommonSettings
) -> None:
    rnd = random.Random(5)
    events = [e for t in random_timelines(rnd, 400) for e in t.events]
    want = expected_totals(events)
    first, second = events[: len(events) // 2], events[len(events) // 2 :]
    group = f"rebalance-{rnd.randrange(10**9)}"
    settings_a = aggregator_settings(migrated_database, topic, group=group, instance="a", **RULE_OVERRIDES)
    settings_b = aggregator_settings(migrated_database, topic, group=group, instance="b", **RULE_OVERRIDES)
    async with aggregator(settings_a, registry()) as loop_a, aggregator(settings_b, registry()) as loop_b:
        task_a = asyncio.create_task(loop_a.run())
        task_b = asyncio.create_task(loop_b.run())

        async def both_own_partitions() -> bool:
            return bool(loop_a.engine.partitions) and bool(loop_b.engine.partitions)

        await wait_for(both_own_partitions, within=60)
        assert set(loop_a.engine.partitions).isdisjoint(loop_b.engine.partitions)
        await produce(base_settings.kafka_bootstrap, topic, first)

        async def first_half_stored() -> bool:
            return await stored_offsets(db, group) >= len(first)

        await wait_for(first_half_stored)
        # B leaves cleanly (final flush); its partitions move to A after the session times out.
        loop_b.stop()
        await task_b
        await produce(base_settings.kafka_bootstrap, topic, second)

        async def all_counted() -> bool:
            if task_a.done():
                task_a.result()
            return await stored_offsets(db, group) >= len(events) and same(await day_totals(db), want)

        try:
            await wait_for(all_counted, within=90)
        finally:
            loop_a.stop()
            await task_a
    assert len(loop_a.engine.partitions) == 6
    assert same(await day_totals(db), want)


async def test_undecodable_and_out_of_range_events_are_quarantined_not_counted(
    db: asyncpg.Connection, topic: str, migrated_database: str, base_settings: CommonSettings
) -> None:
    from tests.factories import Timeline

    good = Timeline("q-ok").created(0).customer(1).agent(10)
    future = Timeline("q-future", start=datetime.now(UTC) + timedelta(days=3)).created(0)
    ancient = Timeline("q-old", start=datetime(2001, 1, 1, tzinfo=UTC)).created(0)
    nul = Timeline("q-nul").created(0, team="sup\x00port")  # would poison every flush if stored
    sent: list = [b"{not json", *good.events, *future.events, *ancient.events, *nul.events]  # type: ignore[type-arg]
    await produce(base_settings.kafka_bootstrap, topic, sent)
    want = expected_totals(good.events)
    settings = aggregator_settings(migrated_database, topic, **RULE_OVERRIDES)
    await run_until(settings, db, want, len(sent))
    reasons = sorted(r["reason"] for r in await db.fetch("SELECT reason FROM quarantined_events"))
    assert reasons == ["beyond_retention", "future", "invalid_text", "undecodable"]
    assert same(await day_totals(db), want)
