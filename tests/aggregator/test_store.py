"""Fencing on the real database: a zombie owner's flush writes nothing at all."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.aggregator.conversation import Conversation
from services.aggregator.store import Fenced, Store
from shared.db import driver_dsn

pytestmark = [pytest.mark.integration]

ROW = (("t1", 2, 1_795_132_800, "conversations_created", "chat", "", "", ""), 1, 1.0)


@pytest.fixture
async def store(migrated_database: str, db: asyncpg.Connection) -> AsyncIterator[Store]:  # db empties tables
    pool = await asyncpg.create_pool(driver_dsn(migrated_database), min_size=1, max_size=2)
    yield Store(pool, "g1", "events")
    await pool.close()


async def test_flush_moves_offsets_and_writes_everything_in_one_transaction(
    store: Store, db: asyncpg.Connection
) -> None:
    assert await store.claim_offsets([0, 1]) == {0: (-1, 0), 1: (-1, 0)}
    conv = Conversation(tenant="t1", conversation_id="c1", partition=0)
    await store.flush([ROW], [], [conv], [], {0: (-1, 10, 0)})
    assert await store.claim_offsets([0, 1]) == {0: (10, 0), 1: (-1, 0)}
    assert await db.fetchval("SELECT count FROM kpi_counts") == 1
    assert [c.conversation_id for c in await store.load_conversations([("t1", "c1")])] == ["c1"]


async def test_a_zombie_whose_offsets_moved_is_fenced_and_writes_nothing(
    store: Store, db: asyncpg.Connection
) -> None:
    await store.claim_offsets([0])
    await store.flush([ROW], [], [], [], {0: (-1, 10, 0)})
    # The new owner moved on to 25 while we still believe 10 is stored.
    await db.execute("UPDATE consumer_offsets SET next_offset = 25 WHERE partition = 0")
    conv = Conversation(tenant="t1", conversation_id="zombie", partition=0)
    with pytest.raises(Fenced):
        await store.flush([ROW], [], [conv], [], {0: (10, 40, 0)})
    assert await db.fetchval("SELECT sum(count) FROM kpi_counts") == 1
    assert await db.fetchval("SELECT count(*) FROM conversations") == 0
    assert await db.fetchval("SELECT next_offset FROM consumer_offsets WHERE partition = 0") == 25


async def test_an_epoch_bump_fences_even_when_offsets_match(store: Store, db: asyncpg.Connection) -> None:
    await store.claim_offsets([0])
    await store.flush([], [], [], [], {0: (-1, 10, 0)})
    await db.execute("UPDATE consumer_offsets SET epoch = 1 WHERE partition = 0")
    with pytest.raises(Fenced):
        await store.flush([ROW], [], [], [], {0: (10, 20, 0)})
    assert await db.fetchval("SELECT count(*) FROM kpi_counts") == 0
    assert await store.claim_offsets([0]) == {0: (10, 1)}


async def test_purge_removes_only_minute_buckets_older_than_retention(
    store: Store, db: asyncpg.Connection
) -> None:
    old, recent = 1_795_132_800, 1_795_132_800 + 7200
    rows = [
        (("t1", 0, old, "calls_offered", "phone", "q", "", ""), 1, 1.0),
        (("t1", 0, recent, "calls_offered", "phone", "q", "", ""), 1, 1.0),
        (("t1", 1, old, "calls_offered", "phone", "q", "", ""), 1, 1.0),
    ]
    hist = [(("t1", 0, old, "asa_seconds", "phone", "q", "", ""), 150, 1)]
    await store.claim_offsets([0])
    await store.flush(rows, hist, [], [], {0: (-1, 1, 0)})
    # One old minute of counts at each of the three levels, one of histograms at both of theirs.
    assert await store.purge_minutes(before=old + 60) == 5
    for table in ("kpi_counts", "kpi_counts_by_team", "kpi_counts_by_channel"):
        left = await db.fetch(
            f"SELECT grain, extract(epoch FROM bucket)::bigint AS b FROM {table} ORDER BY grain, b"  # noqa: S608
        )
        assert [(r["grain"], r["b"]) for r in left] == [(0, recent), (1, old)], table
    for table in ("kpi_hist", "kpi_hist_by_channel"):
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0, table  # noqa: S608
