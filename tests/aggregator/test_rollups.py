"""The rollup tables hold exactly the sums of the detail rows, after a real aggregator run.

Two aggregators share the topic (their flushes upsert the same rollup rows concurrently),
the events are duplicated and shuffled (so facts are retracted and re-emitted across
flushes), and part of them is recent enough to have minute buckets. Then every rollup row is
compared with the detail rows summed over the dimensions it drops, and the API's repository
gives the same answer for a range of queries from each level that can answer them.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from services.aggregator.service import aggregator
from services.api.kpis.repository import (
    SOURCES,
    BucketQuery,
    CountRows,
    Filters,
    can_answer,
    fetch_counts,
    fetch_hist,
    source_for,
)
from shared.db import make_engine
from shared.settings import CommonSettings
from shared.windows import resolve
from tests.aggregator.kafka_helpers import aggregator_settings, produce, registry, stored_offsets, wait_for
from tests.aggregator.test_consumer import RULE_OVERRIDES, expected_totals
from tests.factories import random_timelines

pytestmark = [pytest.mark.integration]

_TEAM = "tenant, grain, bucket, metric, channel, team, label"
_CHANNEL = "tenant, grain, bucket, metric, channel, label"
# (detail table, rollup, the rollup's key, histograms?)
_ROLLUPS = (
    ("kpi_counts", "kpi_counts_by_team", _TEAM, False),
    ("kpi_counts", "kpi_counts_by_channel", _CHANNEL, False),
    ("kpi_hist", "kpi_hist_by_channel", _CHANNEL, True),
)


async def _sums(db: asyncpg.Connection, table: str, keys: str, hist: bool) -> dict[tuple[Any, ...], Any]:
    """``table``'s rows summed per ``keys`` (+ idx for histograms): key → (count, sum) or count."""
    if hist:
        rows = await db.fetch(
            f"SELECT {keys}, idx, sum(count)::bigint AS c FROM {table} GROUP BY {keys}, idx"  # noqa: S608
        )
        return {tuple(r)[:-1]: r["c"] for r in rows}
    rows = await db.fetch(
        f"SELECT {keys}, sum(count)::bigint AS c, sum(sum) AS s FROM {table} GROUP BY {keys}"  # noqa: S608
    )
    return {tuple(r)[:-2]: (r["c"], r["s"]) for r in rows}


def _equal(got: Mapping[tuple[Any, ...], Any], want: Mapping[tuple[Any, ...], Any]) -> list[str]:
    problems = []
    for key in sorted(set(got) | set(want), key=repr):
        a, b = got.get(key), want.get(key)
        if isinstance(a, tuple) and isinstance(b, tuple):
            if a[0] == b[0] and math.isclose(a[1], b[1], rel_tol=1e-9, abs_tol=1e-6):
                continue
        elif a == b:
            continue
        problems.append(f"{key}: rollup {a}, detail {b}")
    return problems[:20]


async def assert_rollups_are_sums_of_details(db: asyncpg.Connection) -> None:
    for detail, rollup, keys, hist in _ROLLUPS:
        want = await _sums(db, detail, keys, hist)
        got = await _sums(db, rollup, keys, hist)
        assert want, f"no {detail} rows at all"
        assert _equal(got, want) == [], f"{rollup} differs from {detail} summed over {keys}"
        # And the rollup has one row per key, as its primary key says (nothing to sum twice).
        assert await db.fetchval(f"SELECT count(*) FROM {rollup}") == len(got)  # noqa: S608


def _same_counts(got: CountRows, want: CountRows) -> bool:
    """Counts exactly; sums of floats up to their rounding (they are added in another order)."""
    if got.keys() != want.keys():
        return False
    for group, measures in want.items():
        if got[group].keys() != measures.keys():
            return False
        for name, (count, total) in measures.items():
            other = got[group][name]
            if other[0] != count or not math.isclose(other[1], total, rel_tol=1e-12, abs_tol=1e-9):
                return False
    return True


# Queries the API makes (filters × group-by), each answered from every level that can.
_QUERIES: list[tuple[Filters, tuple[str, ...]]] = [
    (Filters(), ()),
    (Filters(), ("channel",)),
    (Filters(), ("label",)),
    (Filters(), ("channel", "label")),
    (Filters(label="vip"), ("channel",)),
    (Filters(label="billing"), ()),
    (Filters(channel=("chat", "email")), ("channel",)),
    (Filters(), ("team",)),
    (Filters(), ("queue",)),
    (Filters(queue=("a",)), ()),
    (Filters(team=("sales",)), ("channel", "label")),
    (Filters(), ("agent",)),
    (Filters(assigned_only=True), ("agent",)),
]


async def _assert_every_level_answers_alike(database_url: str, now: datetime) -> None:
    engine = make_engine(database_url, pool_size=1)
    compared = 0
    try:
        async with engine.connect() as conn:
            for window in ("2h", "24h", "7d"):
                plan = resolve(zone=ZoneInfo("UTC"), now=now, window=window).plan
                for filters, group_by in _QUERIES:
                    for step in (None, timedelta(hours=1)):
                        base = BucketQuery(("t1",), plan, filters, group_by, step=step)
                        auto = source_for(base)
                        want = (await fetch_counts(conn, base), await fetch_hist(conn, base))
                        assert want[0], (window, filters, group_by)
                        for name, source in SOURCES.items():
                            if not can_answer(source, base):
                                continue
                            forced = BucketQuery(("t1",), plan, filters, group_by, step=step, source=name)
                            got = (await fetch_counts(conn, forced), await fetch_hist(conn, forced))
                            assert got[1] == want[1], (window, filters, group_by, step, name, auto.name)
                            assert _same_counts(got[0], want[0]), (window, filters, group_by, step, name)
                            compared += 1
    finally:
        await engine.dispose()
    assert compared > len(_QUERIES) * 6


async def test_rollups_equal_the_detail_sums_and_every_level_answers_alike(
    db: asyncpg.Connection, topic: str, migrated_database: str, base_settings: CommonSettings
) -> None:
    rnd = random.Random(17)
    now = datetime.now(UTC)
    recent = random_timelines(rnd, 150, start=now - timedelta(hours=3, minutes=30))
    older = random_timelines(rnd, 150, start=now - timedelta(days=2, hours=5))
    events = [e for t in recent + older for e in t.events if e.occurred_at < now]
    sent = events + rnd.sample(events, 300)
    rnd.shuffle(sent)
    await produce(base_settings.kafka_bootstrap, topic, sent)
    want = expected_totals(events)
    group = f"rollups-{rnd.randrange(10**9)}"
    settings = [
        aggregator_settings(migrated_database, topic, group=group, instance=name, **RULE_OVERRIDES)
        for name in ("a", "b")
    ]
    async with aggregator(settings[0], registry()) as loop_a, aggregator(settings[1], registry()) as loop_b:
        tasks = [asyncio.create_task(loop.run()) for loop in (loop_a, loop_b)]

        async def all_stored() -> bool:
            for task in tasks:
                if task.done():
                    task.result()
            return await stored_offsets(db, group) >= len(sent)

        try:
            await wait_for(all_stored, within=120)
        finally:
            # A clean stop flushes what the timers added meanwhile.
            for loop in (loop_a, loop_b):
                loop.stop()
            await asyncio.gather(*tasks)
        # Concurrent flushes of the same rollup rows neither deadlocked nor failed.
        for loop in (loop_a, loop_b):
            assert loop.engine.metrics.flush_failures._value.get() == 0
    # Counted once despite the duplicates (SLA verdicts hang on the wall clock: test_consumer.py).
    counted = await db.fetchval(
        "SELECT sum(count) FROM kpi_counts WHERE grain = 2 AND label = '' AND metric = $1",
        "conversations_created",
    )
    assert counted == want["conversations_created"][0]
    assert await db.fetchval("SELECT count(*) FROM kpi_counts WHERE grain = 0") > 0
    await assert_rollups_are_sums_of_details(db)
    await _assert_every_level_answers_alike(migrated_database, now)
