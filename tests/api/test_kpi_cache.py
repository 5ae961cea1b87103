"""KPI answers are reused until the aggregator writes a bucket of the window, and only until then.

Buckets are written through the aggregator's own flush (``Store.flush``), so the version the
cache reads changes exactly when the real write path changes something the answer depends on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aggregator.deltas import RowKey
from services.aggregator.store import Store
from services.api.kpis.cache import Answers, version
from shared.db import driver_dsn, make_engine
from shared.windows import GRAIN_DAY, GRAIN_HOUR, GRAIN_MINUTE, Range

pytestmark = [pytest.mark.integration]

DAY0 = datetime(2026, 11, 20, tzinfo=UTC)
# A 24 h window over two UTC days: minutes, hours, minutes (as shared.windows plans it).
WINDOW = (
    Range(GRAIN_MINUTE, DAY0 - timedelta(hours=13, minutes=30), DAY0 - timedelta(hours=13)),
    Range(GRAIN_HOUR, DAY0 - timedelta(hours=13), DAY0 + timedelta(hours=10)),
    Range(GRAIN_MINUTE, DAY0 + timedelta(hours=10), DAY0 + timedelta(hours=10, minutes=30)),
)


def fact(tenant: str, at: datetime, channel: str = "chat", labels: tuple[str, ...] = ()) -> list[RowKey]:
    """The bucket keys of one fact, as services/aggregator/deltas.py expands it."""
    epoch = int(at.timestamp())
    starts = (
        (GRAIN_MINUTE, epoch - epoch % 60),
        (GRAIN_HOUR, epoch - epoch % 3600),
        (GRAIN_DAY, epoch - epoch % 86400),
    )
    return [
        (tenant, grain, start, "conversations_created", channel, "t", "a", label)
        for grain, start in starts
        for label in ("", *labels)
    ]


@pytest.fixture
async def store(migrated_database: str, db: asyncpg.Connection) -> AsyncIterator[Store]:  # db empties tables
    pool = await asyncpg.create_pool(driver_dsn(migrated_database), min_size=1, max_size=2)
    yield Store(pool, "g-cache", "events")
    await pool.close()


@pytest.fixture
async def engine(migrated_database: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(migrated_database, pool_size=2)
    yield eng
    await eng.dispose()


async def write(store: Store, keys: list[RowKey]) -> None:
    await store.flush([(k, 1, 1.0) for k in sorted(keys)], [], [], [], {})


class Counting:
    """A compute function that counts its calls and answers the call number."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.calls = 0
        self.delay = delay
        self.fail = fail

    async def __call__(self) -> int:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("computing failed")
        return self.calls


async def ask(engine: AsyncEngine, answers: Answers, compute: Counting, tenant: str = "t1") -> int:
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        return await answers.get(conn, tenant, WINDOW, "question", compute)


async def test_an_answer_is_reused_until_a_bucket_of_its_window_changes(
    store: Store, engine: AsyncEngine
) -> None:
    answers, compute = Answers(), Counting()
    # Nothing stored for those days yet: no version, nothing kept.
    assert await ask(engine, answers, compute) == 1
    assert await ask(engine, answers, compute) == 2
    await write(store, fact("t1", DAY0 + timedelta(hours=9)))
    assert await ask(engine, answers, compute) == 3
    assert await ask(engine, answers, compute) == 3
    # Another tenant, and this tenant outside the window's days, leave the answer valid.
    await write(store, fact("t2", DAY0 + timedelta(hours=9)))
    await write(store, fact("t1", DAY0 + timedelta(days=3)))
    assert await ask(engine, answers, compute) == 3
    # A late fact in the window's first day (an old minute, another channel, a label) changes it.
    await write(store, fact("t1", DAY0 - timedelta(hours=13, minutes=10), channel="email", labels=("vip",)))
    assert await ask(engine, answers, compute) == 4
    assert await ask(engine, answers, compute) == 4
    # And so does a fact in the current minute.
    await write(store, fact("t1", DAY0 + timedelta(hours=10, minutes=29)))
    assert await ask(engine, answers, compute) == 5
    assert (answers.hits, answers.misses) == (3, 3)


async def test_the_version_changes_with_every_flush_touching_the_window(
    store: Store, engine: AsyncEngine
) -> None:
    seen = set()
    for n in range(5):
        await write(store, fact("t1", DAY0 + timedelta(hours=n)))
        async with engine.connect() as conn:
            seen.add(await version(conn, "t1", WINDOW))
    assert len(seen) == 5 and None not in seen


async def test_concurrent_requests_compute_once_and_a_failure_is_not_kept(
    store: Store, engine: AsyncEngine
) -> None:
    await write(store, fact("t1", DAY0 + timedelta(hours=9)))
    answers, slow = Answers(), Counting(delay=0.3)
    results = await asyncio.gather(*(ask(engine, answers, slow) for _ in range(5)))
    assert results == [1] * 5
    assert slow.calls == 1
    # A failed computation fails its own request; the others compute again rather than wait forever.
    await write(store, fact("t1", DAY0 + timedelta(hours=8)))
    failing = Counting(delay=0.2, fail=True)
    outcomes = await asyncio.gather(
        *(ask(engine, answers, failing) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert failing.calls == 3
    assert await ask(engine, answers, Counting()) == 1


async def test_entries_are_bounded(store: Store, engine: AsyncEngine) -> None:
    await write(store, fact("t1", DAY0 + timedelta(hours=9)))
    answers = Answers(max_entries=2)
    async with engine.connect() as conn:
        for question in ("a", "b", "c"):
            await answers.get(conn, "t1", WINDOW, question, Counting())
    assert len(answers._entries) == 2
