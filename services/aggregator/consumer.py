"""The Kafka side of the aggregator: assignment, the poll loop, flush cadence, shutdown.

Offsets live in Postgres with the aggregates (see ``engine.py``); Kafka's committed
offsets are written after each flush only so that lag tools show something. On a clean
stop the last batch is flushed; on a failure nothing more is written, and the next owner
resumes from what Postgres holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from services.aggregator.engine import Engine
from services.aggregator.health import Heartbeat
from services.aggregator.outbox import OutboxRelay
from services.aggregator.policies import PolicyWatcher
from services.aggregator.settings import AggregatorSettings
from services.aggregator.store import Fenced

log = logging.getLogger(__name__)

# What a database outage looks like to asyncpg: refused or dropped connections, server errors.
DATABASE_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # e.g. "cannot switch to state 12; another operation is in progress" on a dying connection
    asyncpg.InternalClientError,
)

# Minute buckets past retention are deleted this often (the delete is idempotent, so several
# aggregators doing it is harmless).
PURGE_INTERVAL_SECONDS = 600.0


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Flush before partitions go, claim stored offsets when they come.

    aiokafka logs and swallows exceptions raised here, so a failure is stored and the
    poll loop re-raises it.
    """

    def __init__(self, loop: AggregatorLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self.loop.on_revoked({tp.partition for tp in revoked})
        except BaseException as exc:
            self.loop.failure = exc
            raise

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self.loop.on_assigned({tp.partition for tp in assigned})
        except BaseException as exc:
            self.loop.failure = exc
            raise


class AggregatorLoop:
    def __init__(
        self,
        settings: AggregatorSettings,
        engine: Engine,
        *,
        relay: OutboxRelay | None = None,
        watcher: PolicyWatcher | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.relay = relay
        self.watcher = watcher
        self.topic = settings.events_topic
        self.failure: BaseException | None = None
        self.heartbeat = Heartbeat()
        self._inflight: asyncio.Task[dict[int, int]] | None = None
        # Taken around processing and flushing, never around getmany (which runs the listener).
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        # The SLA watcher and relay: they only end with an error, which stops the loop too.
        self._background: list[asyncio.Task[None]] = []
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=settings.aggregator_group,
            group_instance_id=settings.aggregator_instance_id,
            client_id=f"supportpulse-aggregator-{settings.aggregator_instance_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.aggregator_session_timeout_ms,
            heartbeat_interval_ms=max(settings.aggregator_session_timeout_ms // 5, 500),
            max_poll_interval_ms=300_000,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )

    def stop(self) -> None:
        """Ask for a clean stop: the loop finishes its batch, flushes and leaves."""
        self._stopping.set()

    async def on_revoked(self, partitions: set[int]) -> None:
        self.engine.metrics.rebalances.labels("revoked").inc()
        async with self._lock:
            await self._flush()
            self.engine.revoke(partitions)
        for partition in partitions:
            # A partition we no longer own must not keep reporting our last lag for it.
            with contextlib.suppress(KeyError):
                self.engine.metrics.consumer_lag.remove(str(partition))

    async def on_assigned(self, partitions: set[int]) -> None:
        self.engine.metrics.rebalances.labels("assigned").inc()
        async with self._lock:
            await self._claim(partitions)

    async def _claim(self, partitions: set[int]) -> None:
        offsets = await self.engine.store.claim_offsets(partitions)
        self.heartbeat.assigned = True
        self.engine.assign(offsets)
        for partition, (offset, _epoch) in offsets.items():
            tp = TopicPartition(self.topic, partition)
            if offset >= 0:
                self.consumer.seek(tp, offset)
            else:
                await self.consumer.seek_to_beginning(tp)
        log.info("assigned partitions %s at stored offsets %s", sorted(partitions), offsets)

    async def run(self) -> None:
        if self.watcher is not None:
            # Judge the first records under the stored policies, not the defaults.
            await self.watcher.load()
        self._background = [
            asyncio.create_task(job.run(), name=f"aggregator-{name}")
            for name, job in (("sla-watcher", self.watcher), ("sla-relay", self.relay))
            if job is not None
        ]
        try:
            await self._consume()
        finally:
            for task in self._background:
                task.cancel()
            for task in self._background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._background = []

    async def _consume(self) -> None:
        await self.consumer.start()
        clean = False
        try:
            self.consumer.subscribe([self.topic], listener=_Listener(self))
            await self._poll()
            clean = True
        finally:
            try:
                if clean:
                    async with self._lock:
                        await self._flush()
                    log.info("stopped cleanly after a final flush")
            finally:
                if self._inflight is not None:
                    # Failing: a batch may still be writing; abandon it (its transaction rolls back).
                    self._inflight.cancel()
                    with contextlib.suppress(BaseException):
                        await self._inflight
                    self._inflight = None
                await self.consumer.stop()

    async def _poll(self) -> None:
        interval = self.settings.aggregator_flush_interval_seconds
        last_flush = last_timers = time.monotonic()
        last_purge = 0.0
        while not self._stopping.is_set():
            self.heartbeat.last_poll = time.monotonic()
            self.engine.metrics.last_poll.set(time.time())
            if self.failure is not None:
                raise RuntimeError("rebalance listener failed") from self.failure
            for task in self._background:
                if task.done():
                    raise RuntimeError(f"{task.get_name()} stopped") from task.exception()
            batch = await self.consumer.getmany(
                timeout_ms=int(interval * 200), max_records=self.settings.aggregator_max_batch
            )
            async with self._lock:
                records = {tp.partition: recs for tp, recs in batch.items() if tp.topic == self.topic}
                self._note_positions(records)
                now = time.monotonic()
                try:
                    if records:
                        await self.engine.process(records)
                    if now - last_timers >= self.settings.aggregator_timer_interval_seconds:
                        last_timers = now
                        await self.engine.run_timers()
                    if now - last_purge >= PURGE_INTERVAL_SECONDS:
                        last_purge = now
                        await self._purge()
                except DATABASE_ERRORS as exc:
                    # Postgres went away mid-batch (loading state, the timer query): what was
                    # processed since the last commit is redone from the stored offsets once it
                    # is back, exactly as after a failed flush.
                    self.heartbeat.last_flush_ok = None
                    self.engine.metrics.flush_failures.inc()
                    log.warning("database unavailable while processing (%s); resuming from Postgres", exc)
                    if await self._settle():
                        await self._resync()
                    continue
                if now - last_flush >= interval or len(self.engine.deltas.counts) > 50_000:
                    last_flush = now
                    await self._flush(background=True)

    async def _purge(self) -> None:
        horizon = time.time() - self.settings.minute_retention_hours * 3600
        removed = await self.engine.store.purge_minutes(horizon)
        if removed:
            log.info(
                "retention: removed %d minute-bucket rows older than %s",
                removed,
                time.strftime("%Y-%m-%d %H:%M", time.gmtime(horizon)),
            )

    def _note_positions(self, records: dict[int, list[object]]) -> None:
        now = time.time()
        for partition, state in self.engine.partitions.items():
            tp = TopicPartition(self.topic, partition)
            high = self.consumer.highwater(tp)
            if high is None:
                continue
            lag = max(high - state.position, 0) if state.position >= 0 else high
            state.caught_up = lag <= len(records.get(partition, ()))
            self.engine.metrics.consumer_lag.labels(str(partition)).set(lag)
            if records.get(partition) and state.watermark:
                self.engine.metrics.lag_seconds.observe(max(now - state.watermark, 0.0))

    async def _flush(self, *, background: bool = False) -> None:
        """Write what was processed. In the background, the next batch is processed meanwhile.

        At most one flush is in flight: the next one first waits for it, so offsets are
        written in order, and a failure drops everything processed after it too.
        """
        if not await self._settle():
            return
        batch = self.engine.snapshot()
        if batch is None:
            self.heartbeat.last_flush_ok = time.monotonic()
            return
        self._inflight = asyncio.create_task(self.engine.commit(batch), name="aggregator-flush")
        if not background:
            await self._settle()

    async def _settle(self) -> bool:
        """Wait for the flush in flight, if any; False when it failed (state was reloaded)."""
        task, self._inflight = self._inflight, None
        if task is None:
            return True
        try:
            committed = await task
        except Fenced as exc:
            self.heartbeat.last_flush_ok = None
            self.engine.metrics.fenced.inc()
            log.warning("fenced: %s; reloading state from Postgres", exc)
            await self._resync()
            return False
        except Exception:
            self.heartbeat.last_flush_ok = None
            self.engine.metrics.flush_failures.inc()
            log.exception("flush failed; dropping unflushed state and resuming from Postgres")
            await self._resync()
            return False
        # Here, between batches (under the lock), evicting cannot race process().
        self.engine.evict()
        self.engine.metrics.last_flush.set(time.time())
        self.heartbeat.last_flush_ok = time.monotonic()
        if committed:
            try:
                await self.consumer.commit({TopicPartition(self.topic, p): o for p, o in committed.items()})
            except (CommitFailedError, KafkaError) as exc:
                # Postgres holds the truth; the Kafka commit only feeds lag tools.
                log.debug("best-effort Kafka commit failed: %s", exc)
        return True

    async def _resync(self) -> None:
        owned = set(self.engine.partitions)
        self.engine.reset()
        delay = 0.5
        while True:
            try:
                await self._claim(owned & {tp.partition for tp in self.consumer.assignment()})
                return
            except Exception as exc:  # the database may be down for a while: keep trying
                log.warning("cannot reload offsets yet (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
