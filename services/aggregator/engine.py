"""The aggregator's core: records in, conversation state and bucket deltas out, flushed atomically.

Kafka-agnostic on purpose: the consumer loop (``consumer.py``) hands it records per
partition and tells it which partitions it owns; everything here is about keeping the
invariant *what is in Postgres = the effect of every record below the stored offsets,
exactly once*.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from services.aggregator.conversation import Changes, Conversation, TimelineFull, apply, tick
from services.aggregator.decode import TYPE_ORDER, Step, kafka_decoder
from services.aggregator.deltas import Deltas
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.settings import AggregatorSettings
from services.aggregator.sla import Outbox, SlaBook
from services.aggregator.store import Batch, Quarantined, Store, prepare

log = logging.getLogger(__name__)

Key = tuple[str, str]


class Record(Protocol):
    """What the engine needs of a Kafka record (aiokafka's ConsumerRecord has it)."""

    @property
    def offset(self) -> int: ...

    @property
    def value(self) -> bytes | None: ...


@dataclass(slots=True)
class PartitionState:
    # The next offset as stored in Postgres: what a flush expects to find there.
    stored: int
    # The next offset to process; > stored once records are processed but not yet flushed.
    position: int
    # The epoch of the stored offsets we claimed; a replay's table swap bumps it and fences us.
    epoch: int = 0
    # The latest event time seen: the clock of a partition that is catching up.
    watermark: float = 0.0
    caught_up: bool = False


def _has_nul(step: Step) -> bool:
    for name in step.__struct_fields__:
        value = getattr(step, name)
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(text, str) and "\x00" in text for text in texts):
            return True
    return False


class Engine:
    def __init__(
        self,
        settings: AggregatorSettings,
        store: Store,
        metrics: AggregatorMetrics,
        book: SlaBook | None = None,
    ) -> None:
        self.settings = settings
        self.rules = settings.rules
        # Until the SLA configuration is loaded from Postgres: the defaults of the settings.
        self.book = book if book is not None else SlaBook(default_targets=self.rules.first_response_targets)
        self.store = store
        self.metrics = metrics
        self.partitions: dict[int, PartitionState] = {}
        self.conversations: dict[Key, Conversation] = {}
        self.dirty: dict[Key, Conversation] = {}
        self.deltas = Deltas()
        self.quarantined: list[Quarantined] = []
        # Breach-topic messages of the SLA verdicts recorded since the last snapshot.
        self.outbox: list[Outbox] = []
        self._changes = Changes()

    # ownership -------------------------------------------------------------------------

    def assign(self, offsets: Mapping[int, tuple[int, int]]) -> None:
        for partition, (stored, epoch) in offsets.items():
            self.partitions[partition] = PartitionState(stored=stored, position=stored, epoch=epoch)

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget partitions (after a flush): their state is in Postgres for the next owner."""
        gone = set(partitions)
        for partition in gone:
            self.partitions.pop(partition, None)
        self.conversations = {k: c for k, c in self.conversations.items() if c.partition not in gone}

    def reset(self) -> None:
        """Drop everything not flushed: after a failed or fenced flush, Postgres is the truth."""
        self.partitions.clear()
        self.conversations.clear()
        self.dirty.clear()
        self.deltas = Deltas()
        self.quarantined.clear()
        self.outbox.clear()

    def clock(self, partition: int, now: float) -> float:
        state = self.partitions.get(partition)
        if state is None or state.caught_up:
            return now
        # While replaying a backlog, deadlines are judged at the events' time, not the wall's,
        # or replies still in the backlog would be counted as breaches first.
        return min(now, state.watermark)

    # processing ------------------------------------------------------------------------

    async def process(self, batch: Mapping[int, Sequence[Record]], now: float | None = None) -> int:
        """Apply a batch; returns the number of events applied (duplicates excluded)."""
        now = time.time() if now is None else now
        late_cutoff = now - self.settings.aggregator_late_limit_days * 86400
        future_cutoff = now + 86400
        steps: list[tuple[int, Step, Record]] = []
        for partition, records in batch.items():
            state = self.partitions.get(partition)
            if state is None:
                continue  # fetched before our assignment callback ran (aiokafka #738): not ours yet
            for record in records:
                if record.offset < state.position:
                    continue  # already reflected in Postgres
                state.position = record.offset + 1
                step = self._decode(partition, record, late_cutoff, future_cutoff)
                if step is not None:
                    steps.append((partition, step, record))
                    if step.t > state.watermark:
                        state.watermark = step.t
        await self._load_missing({(s.tenant, s.conversation_id) for _, s, _ in steps})
        applied = 0
        changes = self._changes
        touched: dict[Key, Conversation] = {}
        for partition, step, record in steps:
            key = (step.tenant, step.conversation_id)
            conv = self.conversations.get(key)
            if conv is None:
                conv = Conversation(
                    tenant=step.tenant, conversation_id=step.conversation_id, partition=partition
                )
                self.conversations[key] = conv
            conv.partition = partition
            try:
                if not apply(conv, step, self.rules, changes):
                    self.metrics.duplicates.inc()
                    continue
            except TimelineFull as exc:
                self._quarantine("timeline_too_long", partition, record.offset, record.value or b"", str(exc))
                continue
            self._fold(conv.tenant, changes)
            touched[key] = conv
            self.metrics.count_event(step.type)
            applied += 1
        # SLA verdicts once per conversation and batch, after all of its events in the batch.
        for key, conv in touched.items():
            tick(conv, self.clock(conv.partition, now), self.book, changes, self.outbox)
            self._fold(conv.tenant, changes)
            self.dirty[key] = conv
        return applied

    def _decode(
        self, partition: int, record: Record, late_cutoff: float, future_cutoff: float
    ) -> Step | None:
        payload = record.value or b""
        try:
            step = kafka_decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._quarantine("undecodable", partition, record.offset, payload, str(exc))
            return None
        if b"\\u0000" in payload and _has_nul(step):
            # Ingest refuses these; a producer that bypassed it must not poison every flush.
            self._quarantine(
                "invalid_text", partition, record.offset, payload, "NUL character in a text field"
            )
            return None
        if step.type not in TYPE_ORDER:
            self.metrics.ignored.inc()  # a type this version does not aggregate (e.g. agent status)
            return None
        if step.t < late_cutoff:
            self._quarantine(
                "beyond_retention", partition, record.offset, payload, step.occurred_at.isoformat()
            )
            return None
        if step.t > future_cutoff:
            self._quarantine("future", partition, record.offset, payload, step.occurred_at.isoformat())
            return None
        return step

    def _quarantine(self, reason: str, partition: int, offset: int, payload: bytes, detail: str) -> None:
        log.warning("quarantined %s/%d: %s (%s)", partition, offset, reason, detail[:200])
        self.metrics.quarantined(reason)
        self.quarantined.append(Quarantined(reason, partition, offset, payload))

    async def _load_missing(self, keys: Iterable[Key]) -> None:
        missing = [k for k in set(keys) if k not in self.conversations]
        for conv in await self.store.load_conversations(missing):
            self.conversations[(conv.tenant, conv.conversation_id)] = conv

    def _fold(self, tenant: str, changes: Changes) -> None:
        add = self.deltas.add
        for fact in changes.added:
            add(tenant, fact, 1)
        for fact in changes.retracted:
            add(tenant, fact, -1)
        if changes.retracted:
            self.metrics.retractions.inc(len(changes.retracted))
        changes.added.clear()
        changes.retracted.clear()

    async def run_timers(self, now: float | None = None) -> int:
        """Record verdicts that changed with no event (at risk, breached); returns how many changed."""
        now = time.time() if now is None else now
        if not self.partitions:
            return 0
        keys = await self.store.due_conversations(sorted(self.partitions), now)
        await self._load_missing(keys)
        changed = 0
        for key in keys:
            conv = self.conversations.get(key)
            if conv is None or conv.partition not in self.partitions:
                continue
            due = conv.sla.due
            tick(conv, self.clock(conv.partition, now), self.book, self._changes, self.outbox)
            if self._changes.added or self._changes.retracted or conv.sla.due != due:
                # A new due time alone must reach the row too, or the timer query keeps
                # returning this conversation.
                self._fold(conv.tenant, self._changes)
                self.dirty[key] = conv
                changed += 1
        return changed

    # flushing --------------------------------------------------------------------------

    def snapshot(self, now: float | None = None) -> Batch | None:
        """Take everything processed so far out as one batch to write; None when there is nothing.

        From here the engine assumes the batch will commit (its offsets become the expected
        stored ones) and keeps processing; if the write fails, the caller must :meth:`reset`
        and re-seek, which also drops whatever was processed after the snapshot.
        """
        now = time.time() if now is None else now
        touched = {c.partition for c in self.dirty.values()} | {
            p for p, s in self.partitions.items() if s.position != s.stored or s.position < 0
        }
        offsets = {p: (s.stored, s.position, s.epoch) for p, s in self.partitions.items() if p in touched}
        if not (offsets or self.dirty or self.deltas or self.quarantined or self.outbox):
            return None
        horizon = int(now - self.settings.minute_retention_hours * 3600)
        count_rows, hist_rows = self.deltas.rows(horizon)
        batch = prepare(
            count_rows, hist_rows, list(self.dirty.values()), self.quarantined, offsets, self.outbox
        )
        for partition, (_, new, _epoch) in offsets.items():
            self.partitions[partition].stored = new
        self.dirty.clear()
        self.deltas = Deltas()
        self.quarantined = []
        self.outbox = []
        return batch

    async def commit(self, batch: Batch) -> dict[int, int]:
        """Write a snapshot; returns the offsets that moved (for the best-effort Kafka commit).

        Raises ``Fenced`` when another consumer owns a partition now, or the database's error;
        in both cases nothing was written.
        """
        started = time.perf_counter()
        await self.store.write(batch)
        self.metrics.flush_seconds.observe(time.perf_counter() - started)
        self.metrics.flushed_rows.inc(batch.rows)
        # No eviction here: this may run while process() awaits a load, and evicting a
        # conversation that batch is about to use would replace its state with an empty one.
        return {p: new for p, (old, new, _epoch) in batch.offsets.items() if new != old and new >= 0}

    async def flush(self, now: float | None = None) -> dict[int, int]:
        """Snapshot and write in one go (the caller does nothing in between)."""
        batch = self.snapshot(now)
        if batch is None:
            return {}
        committed = await self.commit(batch)
        self.evict()
        return committed

    def evict(self) -> None:
        """Let closed conversations leave memory; call only after a commit, never during process().

        Conversations changed since the last snapshot are not in Postgres yet: they stay.
        """
        dirty = self.dirty
        closed = [k for k, c in self.conversations.items() if c.walk.closed and k not in dirty]
        for key in closed:
            del self.conversations[key]
        excess = len(self.conversations) - self.settings.aggregator_max_cached_conversations
        if excess > 0:
            # Dicts keep insertion order: the first are the least recently created here.
            oldest = [k for k in list(self.conversations)[: excess + len(dirty)] if k not in dirty]
            for key in oldest[:excess]:
                del self.conversations[key]
        self.metrics.cached_conversations.set(len(self.conversations))
