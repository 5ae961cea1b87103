"""Driving a real aggregator against a real topic and database in tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from services.aggregator.settings import AggregatorSettings
from shared.events import Event, encode


def aggregator_settings(
    database_url: str, topic: str, group: str | None = None, instance: str = "i0", **overrides: object
) -> AggregatorSettings:
    return AggregatorSettings(
        database_url=database_url,
        events_topic=topic,
        aggregator_group=group or f"test-{uuid.uuid4().hex[:8]}",
        aggregator_instance_id=instance,
        aggregator_flush_interval_seconds=0.2,
        aggregator_timer_interval_seconds=0.3,
        aggregator_session_timeout_ms=6000,
        **overrides,  # type: ignore[arg-type]
    )


async def produce(bootstrap: str, topic: str, events: Sequence[Event | bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = []
        for event in events:
            if isinstance(event, bytes):
                futures.append(await producer.send(topic, event, key=b"raw"))
            else:
                futures.append(await producer.send(topic, encode(event), key=event.key))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def day_totals(db: asyncpg.Connection, grain: int = 2) -> dict[str, tuple[int, float]]:
    rows = await db.fetch(
        "SELECT metric, sum(count)::bigint AS c, sum(sum) AS s FROM kpi_counts "
        "WHERE grain = $1 AND label = '' GROUP BY metric",
        grain,
    )
    return {r["metric"]: (int(r["c"]), round(float(r["s"]), 6)) for r in rows if r["c"] or r["s"]}


def rounded(totals: dict[str, tuple[int, float]]) -> dict[str, tuple[int, float]]:
    return {k: (c, round(s, 6)) for k, (c, s) in totals.items() if c or s}


async def stored_offsets(db: asyncpg.Connection, group: str) -> int:
    value = await db.fetchval(
        "SELECT coalesce(sum(greatest(next_offset, 0)), 0) FROM consumer_offsets WHERE consumer_group=$1",
        group,
    )
    return int(value)


async def wait_for(predicate_coro: object, within: float = 60.0, interval: float = 0.2) -> None:
    deadline = time.monotonic() + within
    while True:
        if await predicate_coro():  # type: ignore[operator]
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


def registry() -> CollectorRegistry:
    return CollectorRegistry()
