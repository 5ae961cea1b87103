"""Start-up and shutdown of the aggregator process (``supportpulse aggregator``)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from prometheus_client import REGISTRY, CollectorRegistry

from services.aggregator import health
from services.aggregator.consumer import AggregatorLoop
from services.aggregator.engine import Engine
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.outbox import OutboxRelay
from services.aggregator.policies import PolicyWatcher
from services.aggregator.settings import AggregatorSettings
from services.aggregator.sla import SlaBook
from services.aggregator.store import Store
from shared.db import driver_dsn
from shared.kafka import ensure_topics
from shared.observability import configure_logging

log = logging.getLogger(__name__)


@asynccontextmanager
async def aggregator(
    settings: AggregatorSettings, registry: CollectorRegistry | None = None
) -> AsyncIterator[AggregatorLoop]:
    """An aggregator loop with its database pool; the pool is closed on exit."""
    pool = await asyncpg.create_pool(driver_dsn(settings.database_dsn), min_size=1, max_size=4)
    try:
        store = Store(pool, settings.aggregator_group, settings.events_topic)
        metrics = AggregatorMetrics(registry)
        engine = Engine(settings, store, metrics)

        def install(book: SlaBook) -> None:
            engine.book = book

        watcher = PolicyWatcher(settings.database_dsn, lambda: engine.book, install, metrics)
        relay = OutboxRelay(pool, settings.kafka_bootstrap, settings.sla_topic, metrics)
        yield AggregatorLoop(settings, engine, relay=relay, watcher=watcher)
    finally:
        await pool.close()


async def serve(settings: AggregatorSettings) -> None:
    await ensure_topics(settings)
    async with aggregator(settings) as loop:
        stop_http = health.serve(
            settings.aggregator_metrics_host, settings.aggregator_metrics_port, loop.heartbeat, REGISTRY
        )
        running = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            running.add_signal_handler(sig, loop.stop)
        log.info(
            "aggregator %s consuming %s from %s as group %s",
            settings.aggregator_instance_id,
            settings.events_topic,
            settings.kafka_bootstrap,
            settings.aggregator_group,
        )
        try:
            await loop.run()
        finally:
            stop_http()


def main() -> None:
    settings = AggregatorSettings()
    configure_logging(settings.log_level, json=settings.log_json)
    asyncio.run(serve(settings))
