"""The SLA outbox relay: committed transitions from Postgres to the breach topic.

The aggregator writes each breach and at-risk transition into ``sla_outbox`` in the same
transaction as the buckets that count it, so a crash can neither lose one nor invent one.
This relay then publishes them in id order and deletes them only once Kafka acknowledged
the batch: at least once, with a deterministic message id (``sla.py``) for consumers to
drop the rare redelivery (a crash between the acknowledgement and the delete). Rows are
locked with SKIP LOCKED, so several aggregators relay without sending a row twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.aggregator.metrics import AggregatorMetrics

log = logging.getLogger(__name__)

BATCH: Final = 500
IDLE_SECONDS: Final = 0.5
MAX_BACKOFF_SECONDS: Final = 10.0


class OutboxRelay:
    def __init__(self, pool: asyncpg.Pool, bootstrap: str, topic: str, metrics: AggregatorMetrics) -> None:
        self.pool = pool
        self.bootstrap = bootstrap
        self.topic = topic
        self.metrics = metrics
        self._producer: AIOKafkaProducer | None = None

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks="all",
                enable_idempotence=True,
                client_id="supportpulse-aggregator-sla",
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def relay_once(self) -> int:
        """Publish up to one batch; returns how many were published (and deleted)."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, key, payload FROM sla_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", BATCH
            )
            if not rows:
                self.metrics.sla_outbox_backlog.set(0)
                return 0
            producer = await self._ensure_producer()
            sent = [await producer.send(self.topic, value=r["payload"], key=r["key"]) for r in rows]
            # All acknowledged (acks=all) before the rows go: a failure rolls the delete back.
            await asyncio.gather(*sent)
            await conn.execute("DELETE FROM sla_outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
        self.metrics.sla_published.inc(len(rows))
        if len(rows) < BATCH:
            self.metrics.sla_outbox_backlog.set(0)
        return len(rows)

    async def run(self) -> None:
        """Relay until cancelled; Kafka or Postgres being away only delays messages."""
        delay = IDLE_SECONDS
        try:
            while True:
                try:
                    published = await self.relay_once()
                    delay = IDLE_SECONDS
                except (
                    KafkaError,
                    OSError,
                    TimeoutError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                    asyncpg.InternalClientError,
                ) as exc:
                    self.metrics.sla_relay_failed.inc()
                    log.warning("SLA outbox relay failed (%s); retrying in %.1fs", exc, delay)
                    published = 0
                    await self._reset_producer()
                    delay = min(delay * 2, MAX_BACKOFF_SECONDS)
                if published < BATCH:
                    await asyncio.sleep(delay)
        finally:
            await self._reset_producer()

    async def _reset_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
