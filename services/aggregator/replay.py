"""``supportpulse replay``: rebuild every aggregate from the events topic and swap it in.

Used when a KPI definition or a threshold changes. The rebuild runs the same engine as
the live aggregator, from the beginning of the topic up to the end offsets seen at start,
into tables of a scratch schema. The swap then moves those tables into place in one
transaction and bumps the offsets' epoch: a live aggregator's next flush is fenced, it
reloads state and offsets from the new tables and carries on from where the replay ended.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry

from services.aggregator.engine import Engine
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.policies import load_book
from services.aggregator.settings import AggregatorSettings
from services.aggregator.sla import SlaBook
from services.aggregator.store import Store
from shared.db import driver_dsn, make_engine
from shared.db.schema import metadata
from shared.kafka import partitions_of

log = logging.getLogger(__name__)

# The rollups are rebuilt by the same flushes as the detail rows and must swap in with them.
SWAPPED = (
    "kpi_counts",
    "kpi_hist",
    "kpi_counts_by_team",
    "kpi_counts_by_channel",
    "kpi_hist_by_channel",
    "conversations",
    "consumer_offsets",
)
_SCHEMA_NAME = re.compile(r"replay_[0-9a-f]{8}")


@dataclass(frozen=True, slots=True)
class ReplayResult:
    records: int
    applied: int
    seconds: float
    end_offsets: dict[int, int]


Progress = Callable[[int, int], None]


async def _scratch(conn: asyncpg.Connection, schema: str) -> None:
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    for table in metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=dialect))
        await conn.execute(
            ddl.replace(f"CREATE TABLE {table.name}", f'CREATE TABLE "{schema}".{table.name}', 1)
        )
        for index in table.indexes:
            sql = str(CreateIndex(index).compile(dialect=dialect))
            await conn.execute(sql.replace(f" ON {table.name} ", f' ON "{schema}".{table.name} ', 1))


async def replay(
    settings: AggregatorSettings, progress: Progress | None = None, flush_every: int = 50_000
) -> ReplayResult:
    started = time.monotonic()
    schema = f"replay_{uuid.uuid4().hex[:8]}"
    dsn = driver_dsn(settings.database_dsn)
    admin = await asyncpg.connect(dsn)
    pool: asyncpg.Pool | None = None
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await _scratch(admin, schema)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, server_settings={"search_path": schema})
        partitions = await partitions_of(settings.kafka_bootstrap, settings.events_topic)
        tps = [TopicPartition(settings.events_topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        total = sum(end[tp] - begin[tp] for tp in tps)
        store = Store(pool, settings.aggregator_group, settings.events_topic)
        # The policies as stored now: each conversation is judged by the version effective at
        # its creation, so history follows back-dated versions and nothing else. The scratch
        # schema's outbox is dropped with it: a replay re-pages nobody.
        engine = Engine(
            settings, store, AggregatorMetrics(CollectorRegistry()), await _stored_book(settings)
        )
        engine.assign(await store.claim_offsets(partitions))
        done = applied = since_flush = 0
        remaining = {tp for tp in tps if end[tp] > begin[tp]}
        while remaining:
            batch = await consumer.getmany(
                *remaining, timeout_ms=1000, max_records=settings.aggregator_max_batch
            )
            records = {}
            for tp, recs in batch.items():
                recs = [r for r in recs if r.offset < end[tp]]
                records[tp.partition] = recs
                done += len(recs)
                since_flush += len(recs)
                if (recs and recs[-1].offset >= end[tp] - 1) or await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
            applied += await engine.process(records)
            if since_flush >= flush_every:
                await engine.flush()
                since_flush = 0
            if progress is not None:
                progress(done, total)
        # Deadlines that passed with no reply are judged on the wall clock, as the live loop
        # does; the timers read due conversations from the tables, so flush before and after.
        await engine.flush()
        for state in engine.partitions.values():
            state.caught_up = True
        while await engine.run_timers():
            await engine.flush()
        await _swap(admin, schema, settings.aggregator_group)
        return ReplayResult(done, applied, time.monotonic() - started, {tp.partition: end[tp] for tp in tps})
    finally:
        await consumer.stop()
        if pool is not None:
            await pool.close()
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


async def _stored_book(settings: AggregatorSettings) -> SlaBook:
    db = make_engine(settings.database_dsn, pool_size=1, application_name="supportpulse-replay")
    try:
        return await load_book(db, SlaBook(default_targets=settings.rules.first_response_targets))
    finally:
        await db.dispose()


async def _swap(conn: asyncpg.Connection, schema: str, group: str) -> None:
    # Identifiers cannot be bound parameters; ours are generated here and checked, never user input.
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"unexpected scratch schema name {schema!r}")
    retired = f"{schema}_old"
    async with conn.transaction():
        await conn.execute("SET LOCAL lock_timeout = '30s'")
        await conn.execute(
            "LOCK TABLE " + ", ".join(f"public.{t}" for t in SWAPPED) + " IN ACCESS EXCLUSIVE MODE"
        )
        # Fence every live owner: their next flush expects the old epoch.
        await conn.execute(
            f'UPDATE "{schema}".consumer_offsets SET epoch = '  # noqa: S608 - checked identifier
            "(SELECT coalesce(max(epoch), 0) + 1 FROM public.consumer_offsets)"
        )
        # Other consumer groups (other deployments on this database) keep their offsets.
        await conn.execute(
            f'INSERT INTO "{schema}".consumer_offsets '  # noqa: S608 - checked identifier
            "SELECT * FROM public.consumer_offsets WHERE consumer_group <> $1",
            group,
        )
        await conn.execute(f'CREATE SCHEMA "{retired}"')
        for table in SWAPPED:
            await conn.execute(f'ALTER TABLE public.{table} SET SCHEMA "{retired}"')
            await conn.execute(f'ALTER TABLE "{schema}".{table} SET SCHEMA public')
        await conn.execute("DELETE FROM public.quarantined_events")
        columns = 'received_at, reason, topic, partition, "offset", payload'
        await conn.execute(
            f"INSERT INTO public.quarantined_events ({columns}) "  # noqa: S608 - checked identifier
            f'SELECT {columns} FROM "{schema}".quarantined_events'
        )
    await conn.execute(f'DROP SCHEMA "{retired}" CASCADE')
    log.info("replay swapped in: tables %s rebuilt", ", ".join(SWAPPED))
