"""SLA policies from Postgres judged by the real aggregator on the real broker and database:
per-agent daily breach counts, the breach topic, a deadline passing while the aggregator is
down, and a policy added while it runs."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.aggregator.consumer import AggregatorLoop
from services.aggregator.service import aggregator
from services.aggregator.settings import AggregatorSettings
from shared.db import make_engine
from shared.settings import CommonSettings
from shared.sla.store import create_policy
from tests.aggregator.kafka_helpers import aggregator_settings, produce, registry, wait_for
from tests.factories import Timeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture
async def sla_topic(base_settings: CommonSettings) -> AsyncIterator[str]:
    name = f"test.sla.{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=base_settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 2, 1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


@pytest.fixture
async def clean_sla(db: asyncpg.Connection) -> None:
    await db.execute("TRUNCATE sla_policies, sla_calendars, sla_outbox")


async def add_policy(url: str, name: str, fields: dict[str, Any], effective_from: datetime = EPOCH) -> None:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await create_policy(conn, "t1", name, fields, effective_from=effective_from)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def running(settings: AggregatorSettings) -> AsyncIterator[AggregatorLoop]:
    async with aggregator(settings, registry()) as loop:
        task = asyncio.create_task(loop.run())
        try:
            yield loop
        finally:
            loop.stop()
            await task


async def topic_messages(bootstrap: str, topic: str, want: int, within: float = 30.0) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(out) < want and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            out.extend(msgspec.json.decode(r.value) for recs in batch.values() for r in recs)
    finally:
        await consumer.stop()
    return out


async def breaches_by_agent(db: asyncpg.Connection, measure: str) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT agent, sum(count)::bigint AS n FROM kpi_counts "
        "WHERE grain = 2 AND label = '' AND metric = $1 GROUP BY agent",
        measure,
    )
    return {r["agent"]: int(r["n"]) for r in rows if r["n"]}


async def test_breaches_are_counted_per_agent_per_day_published_and_shown_live(
    db: asyncpg.Connection,
    clean_sla: None,
    topic: str,
    sla_topic: str,
    migrated_database: str,
    base_settings: CommonSettings,
) -> None:
    await add_policy(
        migrated_database,
        "chat",
        {"channels": ["chat"], "first_response": {"seconds": 60}, "next_reply": {"seconds": 120}},
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    # alice: never answers a1 (breach at +60 s), answers a3 late (+90 s: breach); bob answers in time.
    a1 = Timeline("a1", start=start).created(0, agent="alice").customer(0)
    a2 = Timeline("a2", start=start).created(0, agent="bob").customer(0).agent(30, agent="bob")
    a3 = Timeline("a3", start=start).created(0, agent="alice").customer(0).agent(90, agent="alice")
    # A customer turn left unanswered for 5 minutes after bob's first reply: a next-reply breach.
    a4 = Timeline("a4", start=start).created(0, agent="bob").customer(0).agent(20, agent="bob").customer(100)
    await produce(base_settings.kafka_bootstrap, topic, a1.events + a2.events + a3.events + a4.events)
    settings = aggregator_settings(migrated_database, topic, sla_topic=sla_topic)

    async with running(settings):

        async def counted() -> bool:
            return await breaches_by_agent(db, "sla_first_response_breaches") == {"alice": 2} and (
                await breaches_by_agent(db, "sla_next_reply_breaches") == {"bob": 1}
            )

        await wait_for(counted, within=30)
        messages = await topic_messages(base_settings.kafka_bootstrap, sla_topic, want=6)

    assert await breaches_by_agent(db, "sla_first_response_met") == {"bob": 2}
    breached = sorted((m["conversation_id"], m["clock"]) for m in messages if m["type"] == "sla.breached")
    assert breached == [("a1", "first_response"), ("a3", "first_response"), ("a4", "next_reply")]
    a1_breach = next(m for m in messages if m["type"] == "sla.breached" and m["conversation_id"] == "a1")
    assert a1_breach["at"] == (start + timedelta(seconds=60)).isoformat().replace("+00:00", "Z")
    assert (a1_breach["policy"], a1_breach["policy_version"], a1_breach["agent"]) == ("chat", 1, "alice")
    # Ids are unique: a consumer can dedupe redeliveries on them.
    assert len({m["id"] for m in messages}) == len(messages)
    # Every transition was relayed: the outbox is empty.
    assert await db.fetchval("SELECT count(*) FROM sla_outbox") == 0
    rows = {
        r["conversation_id"]: r
        for r in await db.fetch("SELECT conversation_id, sla_breached_at, sla_due_at FROM conversations")
    }
    # a1 still waits for its first reply and a4 for its next one: both breaching now.
    assert rows["a1"]["sla_breached_at"] == start + timedelta(seconds=60)
    assert rows["a4"]["sla_breached_at"] == start + timedelta(seconds=220)
    assert rows["a3"]["sla_breached_at"] is None and rows["a2"]["sla_breached_at"] is None


async def test_a_deadline_that_passes_while_the_aggregator_is_down_is_recorded_on_restart(
    db: asyncpg.Connection,
    clean_sla: None,
    topic: str,
    sla_topic: str,
    migrated_database: str,
    base_settings: CommonSettings,
) -> None:
    await add_policy(migrated_database, "chat", {"channels": ["chat"], "first_response": {"seconds": 4}})
    settings = aggregator_settings(migrated_database, topic, sla_topic=sla_topic)
    t = Timeline("down", start=datetime.now(UTC)).created(0, agent="carol").customer(0)
    async with running(settings):
        await produce(base_settings.kafka_bootstrap, topic, t.events)

        async def waiting() -> bool:
            due = await db.fetchval("SELECT sla_due_at FROM conversations WHERE conversation_id = 'down'")
            return due is not None

        await wait_for(waiting, within=20)
    # Stopped cleanly before the deadline: nothing breached yet.
    assert await breaches_by_agent(db, "sla_first_response_breaches") == {}
    deadline = t.start + timedelta(seconds=4)
    await asyncio.sleep(max((deadline - datetime.now(UTC)).total_seconds(), 0) + 0.5)
    # No event arrives any more: only the restarted aggregator's timer can notice the breach.
    async with running(settings):

        async def recorded() -> bool:
            return await breaches_by_agent(db, "sla_first_response_breaches") == {"carol": 1}

        await wait_for(recorded, within=20)
        messages = await topic_messages(base_settings.kafka_bootstrap, sla_topic, want=2)
    assert [m["type"] for m in messages] == ["sla.at_risk", "sla.breached"]
    breach_at = datetime.fromisoformat(messages[1]["at"])
    # The breach instant is the deadline (to float precision), however late it was noticed.
    assert abs((breach_at - deadline).total_seconds()) < 0.001
    assert datetime.fromisoformat(messages[1]["detected_at"]) > deadline


async def test_a_policy_added_while_running_judges_conversations_created_after_it(
    db: asyncpg.Connection,
    clean_sla: None,
    topic: str,
    sla_topic: str,
    migrated_database: str,
    base_settings: CommonSettings,
) -> None:
    settings = aggregator_settings(migrated_database, topic, sla_topic=sla_topic)
    async with running(settings) as loop:
        before = Timeline("before", start=datetime.now(UTC) - timedelta(seconds=30)).created(0).customer(0)
        await produce(base_settings.kafka_bootstrap, topic, before.events)

        async def flushed() -> bool:
            return bool(
                await db.fetchval("SELECT count(*) FROM conversations WHERE conversation_id = 'before'")
            )

        await wait_for(flushed, within=20)
        # Only the default chat target (300 s) applies so far: no breach after 30 s.
        assert await breaches_by_agent(db, "sla_first_response_breaches") == {}
        generation = loop.engine.book.generation
        await add_policy(
            migrated_database,
            "strict",
            {"channels": ["chat"], "first_response": {"seconds": 2}},
            effective_from=datetime.now(UTC),
        )

        async def reloaded() -> bool:
            return loop.engine.book.generation > generation and "t1" in loop.engine.book.configs

        await wait_for(reloaded, within=10)
        after = Timeline("after", start=datetime.now(UTC)).created(0, agent="dave").customer(0)
        await produce(base_settings.kafka_bootstrap, topic, after.events)

        async def breached() -> bool:
            return await breaches_by_agent(db, "sla_first_response_breaches") == {"dave": 1}

        await wait_for(breached, within=20)
    # "before" was created before the tenant's first policy took effect: the default chat
    # policy still judges it, as it did before.
    state = await db.fetchval("SELECT state FROM conversations WHERE conversation_id = 'before'")
    assert msgspec.msgpack.decode(state)["sla"]["policy"] == "default-chat"
    state = await db.fetchval("SELECT state FROM conversations WHERE conversation_id = 'after'")
    assert msgspec.msgpack.decode(state)["sla"]["policy"] == "strict"


async def test_replay_rejudges_history_under_a_back_dated_policy_and_repages_nobody(
    db: asyncpg.Connection,
    clean_sla: None,
    topic: str,
    sla_topic: str,
    migrated_database: str,
    base_settings: CommonSettings,
) -> None:
    from services.aggregator.replay import replay

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    # Replies after 120 s: in time for the default chat target (300 s), late for a 60 s one.
    events = [
        e
        for i in range(5)
        for e in Timeline(f"r{i}", start=start)
        .created(0, agent="erin")
        .customer(0)
        .agent(120, agent="erin")
        .events
    ]
    await produce(base_settings.kafka_bootstrap, topic, events)
    settings = aggregator_settings(migrated_database, topic, sla_topic=sla_topic)
    async with running(settings):

        async def judged() -> bool:
            return await breaches_by_agent(db, "sla_first_response_met") == {"erin": 5}

        await wait_for(judged, within=30)
    assert await breaches_by_agent(db, "sla_first_response_breaches") == {}
    # A stricter policy, back-dated to before those conversations: history changes only on replay.
    await add_policy(
        migrated_database,
        "strict",
        {"channels": ["chat"], "first_response": {"seconds": 60}},
        effective_from=start - timedelta(days=1),
    )
    await replay(settings)
    assert await breaches_by_agent(db, "sla_first_response_breaches") == {"erin": 5}
    assert await breaches_by_agent(db, "sla_first_response_met") == {}
    # The replay's transitions stayed in its scratch schema: nothing new on the breach topic.
    assert await db.fetchval("SELECT count(*) FROM sla_outbox") == 0
    published = await topic_messages(base_settings.kafka_bootstrap, sla_topic, want=1, within=3)
    assert [m for m in published if m["type"] == "sla.breached"] == []


async def test_business_hours_dst_holiday_lunch_and_pauses_on_the_real_pipeline(
    db: asyncpg.Connection,
    clean_sla: None,
    topic: str,
    sla_topic: str,
    migrated_database: str,
    base_settings: CommonSettings,
) -> None:
    from shared.sla.calendar import Calendar
    from shared.sla.store import put_calendar

    office = Calendar.model_validate(
        {
            "name": "paris-office",
            "timezone": "Europe/Paris",
            "week": {d: ["09:00-12:30", "13:30-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
            "holidays": ["2026-11-11"],
        }
    )
    night = Calendar.model_validate(
        {"name": "night", "timezone": "Europe/Paris", "week": {"sun": ["00:00-06:00"]}}
    )
    engine = make_engine(migrated_database, pool_size=1)
    try:
        async with engine.begin() as conn:
            await put_calendar(conn, "t1", office)
            await put_calendar(conn, "t1", night)
    finally:
        await engine.dispose()
    business = {"seconds": 7200, "clock": "business", "calendar": "paris-office"}
    await add_policy(migrated_database, "night", {"labels": ["night"], "first_response": {
        "seconds": 4 * 3600, "clock": "business", "calendar": "night"}})  # fmt: skip
    await add_policy(
        migrated_database,
        "paused",
        {"labels": ["paused"], "first_response": {"seconds": 300}, "pausing_statuses": ["pending"]},
    )
    await add_policy(migrated_database, "office", {"labels": ["office"], "first_response": business})

    def utc(*args: int) -> datetime:
        return datetime(*args, tzinfo=UTC)

    dst = Timeline("dst", start=utc(2026, 10, 24, 22)).created(0, labels=["night"])
    holiday = Timeline("holiday", start=utc(2026, 11, 10, 16)).created(0, labels=["office"])
    lunch = Timeline("lunch", start=utc(2026, 11, 16, 10, 30)).created(0, labels=["office"])
    paused = Timeline("paused", start=utc(2026, 11, 20, 10)).created(0, labels=["paused"])
    paused.status(60, "pending").status(600, "open")
    cases = {
        # Paris falls back on Sunday 2026-10-25 (03:00 CEST → 02:00 CET). The night shift is open
        # 00:00–06:00 wall time: 22:00Z to 05:00Z, 7 real hours. Created at 00:00 CEST + 4 h
        # → 02:00Z (03:00 CET), the repeated hour counted as the real time it is.
        "dst": (dst, utc(2026, 10, 25, 2)),
        # Tuesday 2026-11-10 17:00 Paris + 2 h: 1 h Tuesday, Wednesday the 11th a holiday,
        # 1 h from Thursday 09:00 → Thursday 10:00 Paris = 09:00Z.
        "holiday": (holiday, utc(2026, 11, 12, 9)),
        # Monday 2026-11-16 11:30 Paris + 2 h: until 12:30, lunch, 13:30–14:30 → 13:30Z.
        "lunch": (lunch, utc(2026, 11, 16, 13, 30)),
        # 300 s, pending from 60 s to 600 s: 60 s ran, 240 s remain from 600 s → 840 s.
        "paused": (paused, utc(2026, 11, 20, 10, 14)),
    }
    events = []
    for timeline, _ in cases.values():
        events += timeline.customer(1).events
    await produce(base_settings.kafka_bootstrap, topic, events)
    settings = aggregator_settings(migrated_database, topic, sla_topic=sla_topic)
    async with running(settings):

        async def all_breached() -> bool:
            n = await db.fetchval(
                "SELECT coalesce(sum(count), 0) FROM kpi_counts "
                "WHERE grain = 2 AND label = '' AND metric = 'sla_first_response_breaches'"
            )
            return int(n) == len(cases)

        await wait_for(all_breached, within=30)
    for cid, (_, deadline) in cases.items():
        state = msgspec.msgpack.decode(
            await db.fetchval("SELECT state FROM conversations WHERE conversation_id = $1", cid)
        )
        (clock,) = state["sla"]["clocks"]
        assert (clock["outcome"], clock["deadline"]) == ("breached", deadline.timestamp()), cid
        # Hour buckets (minute rows of these old days are past retention) hold the breach.
        hour = deadline.replace(minute=0, second=0)
        found = await db.fetchval(
            "SELECT count FROM kpi_counts WHERE grain = 1 AND bucket = $1 AND label = $2 "
            "AND metric = 'sla_first_response_breaches'",
            hour,
            state["walk"]["labels"][0],
        )
        assert found == 1, cid
