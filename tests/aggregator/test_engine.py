"""Engine rules that keep memory and Postgres consistent while a flush is in flight."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from services.aggregator.engine import Engine
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.store import Store
from shared.db import driver_dsn
from shared.events import encode
from tests.aggregator.kafka_helpers import aggregator_settings
from tests.factories import Timeline

pytestmark = [pytest.mark.integration]


class _Record:
    def __init__(self, offset: int, value: bytes) -> None:
        self.offset = offset
        self.value = value


@pytest.fixture
async def engine(migrated_database: str, db: asyncpg.Connection) -> AsyncIterator[Engine]:
    pool = await asyncpg.create_pool(driver_dsn(migrated_database), min_size=1, max_size=2)
    settings = aggregator_settings(migrated_database, "events")
    store = Store(pool, settings.aggregator_group, settings.events_topic)
    engine = Engine(settings, store, AggregatorMetrics(CollectorRegistry()))
    engine.assign(await store.claim_offsets([0]))
    yield engine
    await pool.close()


async def test_a_commit_never_evicts_eviction_waits_for_the_loop(engine: Engine) -> None:
    t = Timeline("c1").created(0).customer(1).agent(5).status(10, "resolved")
    records = [_Record(i, encode(e)) for i, e in enumerate(t.events)]
    await engine.process({0: records})
    batch = engine.snapshot()
    assert batch is not None
    # The commit runs as a task while process() may be awaiting a load that it started after
    # seeing c1 in memory: evicting c1 then would replace its state with an empty one.
    await engine.commit(batch)
    assert ("t1", "c1") in engine.conversations  # commit() left memory alone
    reopen = Timeline("c1").status(20, "open")
    await engine.process({0: [_Record(len(records), encode(reopen.events[0]))]})
    engine.evict()
    assert ("t1", "c1") in engine.conversations  # changed since the snapshot: not evictable yet
    await engine.flush()
    assert engine.conversations[("t1", "c1")].walk.status == "open"
    assert len(engine.conversations[("t1", "c1")].timeline) == 5  # nothing lost


async def test_closed_and_flushed_conversations_leave_memory(engine: Engine) -> None:
    t = Timeline("c2").created(0).customer(1).agent(5).status(10, "resolved")
    await engine.process({0: [_Record(i, encode(e)) for i, e in enumerate(t.events)]})
    await engine.flush()
    assert ("t1", "c2") not in engine.conversations
    (state,) = await engine.store.load_conversations([("t1", "c2")])
    assert len(state.timeline) == 4
