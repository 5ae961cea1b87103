"""Publishing to Kafka with the promise: a 2xx means Kafka has the events.

The producer uses acks=all with idempotence, so a retried send cannot duplicate or
reorder within a partition; a request waits for the acknowledgements of all its events
(and of its raw payload) before it is answered.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
)

from services.ingest.partitioner import KeyPartitioner
from services.ingest.settings import IngestSettings
from shared.events import Event, encoder
from shared.kafka import MAX_RAW_MESSAGE_BYTES, ensure_topics

log = logging.getLogger(__name__)

# Headers kept with a raw payload: enough to re-verify and re-map it, nothing secret.
RAW_HEADERS = (
    "content-type",
    "user-agent",
    "x-chatwoot-delivery",
    "x-chatwoot-timestamp",
    "x-chatwoot-signature",
    "x-twilio-signature",
    "i-twilio-idempotency-token",
)

# Events of one request for one partition from which they get a record batch of their own
# (bench/README.md: the per-record cost of aiokafka's send() dominated batch ingestion).
OWN_BATCH_MIN = 16


class Unavailable(Exception):
    """Kafka did not acknowledge in time: the caller must answer 503 and the vendor retry."""


class RawRecord(msgspec.Struct, omit_defaults=True):
    tenant: str
    connector: str
    received_at: datetime
    url: str
    headers: dict[str, str]
    body_b64: str
    reason: str | None = None


# Errors after which an idempotent producer never succeeds again: it must be replaced.
_FATAL = (OutOfOrderSequenceNumber, InvalidProducerEpoch, InvalidProducerIdMapping, ProducerFenced)


class Publisher:
    """Owns the Kafka producer; connects in the background so the service starts without Kafka.

    Until the first connection succeeds (and whenever Kafka stops acknowledging), requests
    get 503 with Retry-After: vendors retry, and nothing is acknowledged that Kafka lacks.
    """

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.producer: AIOKafkaProducer | None = None
        self._partitioner = KeyPartitioner()
        self.produce_timeout = settings.ingest_produce_timeout_seconds
        self._connector: asyncio.Task[None] | None = None
        # Producers replaced after a fatal error (see _replace).
        self.replaced = 0

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            client_id="supportpulse-ingest",
            acks="all",
            enable_idempotence=True,
            linger_ms=self.settings.ingest_linger_ms,
            max_batch_size=256 * 1024,
            max_request_size=MAX_RAW_MESSAGE_BYTES,
            request_timeout_ms=int(self.settings.ingest_produce_timeout_seconds * 1000),
        )

    async def start(self) -> None:
        self._connector = asyncio.create_task(self._connect(), name="kafka-connect")

    async def _connect(self) -> None:
        delay = 0.5
        while True:
            producer = self._new_producer()
            try:
                await ensure_topics(self.settings)
                await producer.start()
            except BaseException as exc:
                await producer.stop()
                if not isinstance(exc, KafkaError | OSError):
                    raise  # cancelled (shutdown) or a bug: the producer is closed either way
                log.warning(
                    "kafka not reachable at %s (%s); retrying in %.1fs",
                    self.settings.kafka_bootstrap,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self.producer = producer
            log.info("connected to kafka at %s", self.settings.kafka_bootstrap)
            return

    async def stop(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
            self._connector = None
        if self.producer is not None:
            # Flushes what is in flight: those requests are still waiting for their answer.
            await self.producer.stop()
            self.producer = None

    async def ready(self) -> bool:
        if self.producer is None:
            return False
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), timeout=2.0)
        except (KafkaError, TimeoutError, OSError):
            return False
        return True

    async def publish(
        self, events: Sequence[Event], raw: RawRecord | None, *, partition_key: bytes | None = None
    ) -> float:
        """Send events and the raw payload; return once all are acknowledged (seconds taken).

        A request's events are grouped by partition (the default partitioner's choice for their
        key, so a conversation keeps its partition and its order). A group of at least
        ``OWN_BATCH_MIN`` events goes out as record batches of its own: one future per batch
        instead of one per event, and no per-record partitioning in aiokafka. Smaller groups
        join the producer's shared batches, which is what lets concurrent single-event requests
        share a produce request (aiokafka queues one batch per partition: a batch of its own per
        request would wait for the previous one on its partition to be sent). Either way the
        producer stays idempotent with acks=all, and the answer waits for every acknowledgement.
        """
        producer = self.producer
        if producer is None:
            raise Unavailable("not connected to Kafka yet")
        started = time.perf_counter()
        futures: list[asyncio.Future[object]] = []
        try:
            if events:
                await self._send_events(producer, events, futures)
            if raw is not None:
                topic = self.settings.raw_topic
                partition = None
                if partition_key is not None:
                    partitions = sorted(await producer.partitions_for(topic))
                    partition = self._partitioner.partition(partition_key, partitions)
                futures.append(
                    await producer.send(topic, encoder.encode(raw), key=partition_key, partition=partition)
                )
            # One timer for the request, and each future awaited in turn: cheaper than
            # wait_for(gather(...)), which a single event pays for per request.
            async with asyncio.timeout(self.produce_timeout):
                for future in futures:
                    await future
        except (KafkaError, TimeoutError) as exc:
            fatal = isinstance(exc, _FATAL)
            for future in futures:
                if not future.done():
                    future.cancel()
                elif not future.cancelled():
                    # Retrieved, or asyncio would log it; a fatal one may be any of them.
                    fatal = fatal or isinstance(future.exception(), _FATAL)
            if fatal:
                self._replace(producer, exc)
            raise Unavailable(str(exc) or type(exc).__name__) from exc
        return time.perf_counter() - started

    def _replace(self, broken: AIOKafkaProducer, exc: BaseException) -> None:
        """Swap a producer whose idempotence state is broken for a new one, in the background.

        After a broker restart aiokafka's idempotent producer can be left with sequence numbers
        the broker refuses (OutOfOrderSequenceNumber) on every send, for good. Requests get 503
        (not ready) until the new producer is connected; nothing unacknowledged was answered 202.
        """
        current = self.producer
        if current is None or current is not broken:
            return  # another request already replaced it
        log.warning("kafka producer unusable (%s: %s); starting a new one", type(exc).__name__, exc)
        self.producer = None
        self.replaced += 1

        async def swap() -> None:
            with contextlib.suppress(KafkaError, OSError):
                await current.stop()
            await self._connect()

        self._connector = asyncio.create_task(swap(), name="kafka-reconnect")

    async def _send_events(
        self, producer: AIOKafkaProducer, events: Sequence[Event], futures: list[asyncio.Future[object]]
    ) -> None:
        topic = self.settings.events_topic
        groups = self._group(events, sorted(await producer.partitions_for(topic)))
        for partition, records in groups.items():
            if len(records) >= OWN_BATCH_MIN:
                await self._send_batches(producer, topic, partition, records, futures)
                continue
            for key, value in records:
                futures.append(await producer.send(topic, value, key=key, partition=partition))

    def _group(self, events: Sequence[Event], partitions: list[int]) -> dict[int, list[tuple[bytes, bytes]]]:
        """(key, encoded event) per partition, in the request's order."""
        groups: dict[int, list[tuple[bytes, bytes]]] = {}
        partition_of = self._partitioner.partition
        encode = encoder.encode
        for event in events:
            key = event.key
            record = (key, encode(event))
            partition = partition_of(key, partitions)
            group = groups.get(partition)
            if group is None:
                groups[partition] = [record]
            else:
                group.append(record)
        return groups

    async def _send_batches(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        partition: int,
        records: list[tuple[bytes, bytes]],
        futures: list[asyncio.Future[object]],
    ) -> None:
        """``records`` as record batches of their own (several if they exceed the batch size)."""
        batch = producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                # Full (a batch always takes its first record, so the retry below fits).
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        # Closed: nothing else joins it, and the sender need not wait out linger_ms for it.
        batch.close()
        futures.append(await producer.send_batch(batch, topic, partition=partition))

    async def deadletter(self, raw: RawRecord) -> None:
        if self.producer is None:
            raise Unavailable("not connected to Kafka yet")
        await asyncio.wait_for(
            self.producer.send_and_wait(self.settings.deadletter_topic, encoder.encode(raw)),
            timeout=self.settings.ingest_produce_timeout_seconds,
        )


def raw_record(
    tenant: str,
    connector: str,
    received_at: datetime,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    reason: str | None = None,
) -> RawRecord:
    kept = {name: headers[name] for name in RAW_HEADERS if name in headers}
    return RawRecord(tenant, connector, received_at, url, kept, base64.b64encode(body).decode(), reason)
