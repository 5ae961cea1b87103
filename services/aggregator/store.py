"""Postgres I/O of the aggregator: one transaction per flush, offsets fenced.

The hot path talks to asyncpg directly rather than through SQLAlchemy: array
parameters with ``unnest`` upsert tens of thousands of rows per round trip, which is
what keeps a flush within its one-second budget (see bench/README.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from services.aggregator.conversation import Conversation, dump, load
from services.aggregator.deltas import RowKey
from services.aggregator.sla import Outbox

# The detail rows, then the rollups (shared/db/schema.py) summed from the same parameters in
# SQL: the arrays are encoded and sent once (encoding is a large part of a flush's client
# time, see bench/README.md), and the rollups need no Python work. Each rollup INSERT waits
# for the one before it (the scalar subqueries over their RETURNING rows are evaluated first),
# and each inserts in key order, so concurrent flushes lock rows table by table in one order
# and cannot deadlock; without the waits the order in which the parts of a WITH run is
# unspecified.
_UPSERT_COUNTS = """
WITH d AS MATERIALIZED (
    SELECT * FROM unnest($1::text[], $2::smallint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::text[], $9::bigint[], $10::float8[])
        AS u(tenant, grain, bucket, metric, channel, team, agent, label, count, sum)
), detail AS (
    INSERT INTO kpi_counts AS k (tenant, grain, bucket, metric, channel, team, agent, label, count, sum)
    SELECT * FROM d
    ON CONFLICT (tenant, grain, bucket, metric, channel, team, agent, label)
    DO UPDATE SET count = k.count + EXCLUDED.count, sum = k.sum + EXCLUDED.sum
    RETURNING 1
), by_team AS (
    INSERT INTO kpi_counts_by_team AS k (tenant, grain, bucket, metric, channel, team, label, count, sum)
    SELECT tenant, grain, bucket, metric, channel, team, label, sum(count), sum(sum) FROM d
    WHERE (SELECT count(*) FROM detail) >= 0
    GROUP BY tenant, grain, bucket, metric, channel, team, label
    ORDER BY tenant, grain, bucket, metric, channel, team, label
    ON CONFLICT (tenant, grain, bucket, metric, channel, team, label)
    DO UPDATE SET count = k.count + EXCLUDED.count, sum = k.sum + EXCLUDED.sum
    RETURNING 1
)
INSERT INTO kpi_counts_by_channel AS k (tenant, label, grain, bucket, metric, channel, count, sum)
SELECT tenant, label, grain, bucket, metric, channel, sum(count), sum(sum) FROM d
WHERE (SELECT count(*) FROM by_team) >= 0
GROUP BY tenant, label, grain, bucket, metric, channel
ORDER BY tenant, label, grain, bucket, metric, channel
ON CONFLICT (tenant, label, grain, bucket, metric, channel)
DO UPDATE SET count = k.count + EXCLUDED.count, sum = k.sum + EXCLUDED.sum
"""

_UPSERT_HIST = """
WITH d AS MATERIALIZED (
    SELECT * FROM unnest($1::text[], $2::smallint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::text[], $9::int[], $10::bigint[])
        AS u(tenant, grain, bucket, metric, channel, team, agent, label, idx, count)
), detail AS (
    INSERT INTO kpi_hist AS h (tenant, grain, bucket, metric, channel, team, agent, label, idx, count)
    SELECT * FROM d
    ON CONFLICT (tenant, grain, bucket, metric, channel, team, agent, label, idx)
    DO UPDATE SET count = h.count + EXCLUDED.count
    RETURNING 1
)
INSERT INTO kpi_hist_by_channel AS h (tenant, label, grain, bucket, metric, channel, idx, count)
SELECT tenant, label, grain, bucket, metric, channel, idx, sum(count) FROM d
WHERE (SELECT count(*) FROM detail) >= 0
GROUP BY tenant, label, grain, bucket, metric, channel, idx
ORDER BY tenant, label, grain, bucket, metric, channel, idx
ON CONFLICT (tenant, label, grain, bucket, metric, channel, idx)
DO UPDATE SET count = h.count + EXCLUDED.count
"""

_UPSERT_CONVERSATIONS = """
INSERT INTO conversations AS c (tenant, conversation_id, partition, is_call, channel, team, agent, status,
                                created_at, queued_at, sla_due_at, sla_breached_at, sla_at_risk_at, closed,
                                state, updated_at)
SELECT t, cid, p, ic, ch, tm, ag, st, ca, qa, due, br, ar, cl, s, now()
FROM unnest($1::text[], $2::text[], $3::int[], $4::bool[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[],
            $13::timestamptz[], $14::bool[], $15::bytea[])
     AS u(t, cid, p, ic, ch, tm, ag, st, ca, qa, due, br, ar, cl, s)
ON CONFLICT (tenant, conversation_id) DO UPDATE SET
    partition = EXCLUDED.partition, is_call = EXCLUDED.is_call, channel = EXCLUDED.channel,
    team = EXCLUDED.team, agent = EXCLUDED.agent, status = EXCLUDED.status, created_at = EXCLUDED.created_at,
    queued_at = EXCLUDED.queued_at, sla_due_at = EXCLUDED.sla_due_at,
    sla_breached_at = EXCLUDED.sla_breached_at, sla_at_risk_at = EXCLUDED.sla_at_risk_at,
    closed = EXCLUDED.closed, state = EXCLUDED.state,
    updated_at = now()
"""

_FENCED_OFFSETS = """
UPDATE consumer_offsets AS o SET next_offset = u.new, updated_at = now()
FROM unnest($3::int[], $4::bigint[], $5::bigint[], $6::bigint[]) AS u(p, expected, new, epoch)
WHERE o.consumer_group = $1 AND o.topic = $2 AND o.partition = u.p AND o.next_offset = u.expected
  AND o.epoch = u.epoch
"""

# Retention applies to every bucket table alike (the rollups' minutes are sums of the detail's).
_PURGE_MINUTES = (
    "DELETE FROM kpi_counts WHERE grain = 0 AND bucket < $1",
    "DELETE FROM kpi_hist WHERE grain = 0 AND bucket < $1",
    "DELETE FROM kpi_counts_by_team WHERE grain = 0 AND bucket < $1",
    "DELETE FROM kpi_counts_by_channel WHERE grain = 0 AND bucket < $1",
    "DELETE FROM kpi_hist_by_channel WHERE grain = 0 AND bucket < $1",
)


class Fenced(Exception):
    """Another consumer moved our partitions' offsets: we are a zombie and must not write."""


@dataclass(frozen=True, slots=True)
class Quarantined:
    reason: str
    partition: int
    offset: int
    payload: bytes


def _ts(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _columns(rows: Sequence[tuple[RowKey, int, float | int]]) -> list[list[object]]:
    cols: list[list[object]] = [[] for _ in range(10)]
    for key, a, b in rows:
        tenant, grain, bucket, metric, channel, team, agent, label = key
        for i, value in enumerate(
            (tenant, grain, datetime.fromtimestamp(bucket, UTC), metric, channel, team, agent, label, a, b)
        ):
            cols[i].append(value)
    return cols


class Store:
    def __init__(self, pool: asyncpg.Pool, group: str, topic: str) -> None:
        self.pool = pool
        self.group = group
        self.topic = topic

    async def claim_offsets(self, partitions: Iterable[int]) -> dict[int, tuple[int, int]]:
        """(next offset, epoch) of each partition; offset -1: never committed, start at the beginning."""
        parts = sorted(partitions)
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) "
                "SELECT $1, $2, p, -1 FROM unnest($3::int[]) AS p ON CONFLICT DO NOTHING",
                self.group,
                self.topic,
                parts,
            )
            rows = await conn.fetch(
                "SELECT partition, next_offset, epoch FROM consumer_offsets "
                "WHERE consumer_group = $1 AND topic = $2 AND partition = ANY($3::int[])",
                self.group,
                self.topic,
                parts,
            )
        return {r["partition"]: (r["next_offset"], r["epoch"]) for r in rows}

    async def load_conversations(self, keys: Sequence[tuple[str, str]]) -> list[Conversation]:
        if not keys:
            return []
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT c.state FROM conversations c JOIN unnest($1::text[], $2::text[]) AS k(t, cid) "
                "ON c.tenant = k.t AND c.conversation_id = k.cid",
                [k[0] for k in keys],
                [k[1] for k in keys],
            )
        return [load(r["state"]) for r in rows]

    async def due_conversations(self, partitions: Sequence[int], now: float) -> list[tuple[str, str]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT tenant, conversation_id FROM conversations "
                "WHERE partition = ANY($1::int[]) AND sla_due_at IS NOT NULL AND sla_due_at <= $2 "
                "LIMIT 10000",
                list(partitions),
                _ts(now),
            )
        return [(r["tenant"], r["conversation_id"]) for r in rows]

    async def purge_minutes(self, before: float) -> int:
        """Delete minute buckets older than ``before`` (epoch seconds); hour and day buckets stay."""
        cutoff = _ts(before)
        removed = 0
        async with self.pool.acquire() as conn:
            for statement in _PURGE_MINUTES:
                status = await conn.execute(statement, cutoff)
                removed += int(status.rsplit(" ", 1)[1])
        return removed

    async def flush(
        self,
        count_rows: Sequence[tuple[RowKey, int, float]],
        hist_rows: Sequence[tuple[RowKey, int, int]],
        conversations: Sequence[Conversation],
        quarantined: Sequence[Quarantined],
        offsets: dict[int, tuple[int, int, int]],
    ) -> None:
        """Write one batch atomically; ``offsets`` maps partition → (expected stored, new, epoch)."""
        await self.write(prepare(count_rows, hist_rows, conversations, quarantined, offsets))

    async def write(self, batch: Batch) -> None:
        """Write a prepared batch in one transaction, fenced on the offsets (see :class:`Fenced`)."""
        offsets, quarantined = batch.offsets, batch.quarantined
        async with self.pool.acquire() as conn, conn.transaction():
            if offsets:
                parts = sorted(offsets)
                status = await conn.execute(
                    _FENCED_OFFSETS,
                    self.group,
                    self.topic,
                    parts,
                    [offsets[p][0] for p in parts],
                    [offsets[p][1] for p in parts],
                    [offsets[p][2] for p in parts],
                )
                updated = int(status.rsplit(" ", 1)[1])
                if updated != len(parts):
                    # Raising rolls the whole transaction back: nothing of the batch lands.
                    raise Fenced(
                        f"offsets of partitions {parts} moved under us ({updated} of {len(parts)} matched)"
                    )
            if batch.counts[0]:
                await conn.execute(_UPSERT_COUNTS, *batch.counts)
            if batch.hist[0]:
                await conn.execute(_UPSERT_HIST, *batch.hist)
            if batch.conversations[0]:
                await conn.execute(_UPSERT_CONVERSATIONS, *batch.conversations)
            if batch.outbox:
                await conn.execute(
                    "INSERT INTO sla_outbox (key, payload) SELECT * FROM unnest($1::bytea[], $2::bytea[])",
                    [m.key for m in batch.outbox],
                    [m.payload for m in batch.outbox],
                )
            if quarantined:
                await conn.executemany(
                    'INSERT INTO quarantined_events (reason, topic, partition, "offset", payload) '
                    "VALUES ($1, $2, $3, $4, $5)",
                    [(q.reason, self.topic, q.partition, q.offset, q.payload) for q in quarantined],
                )


@dataclass(frozen=True, slots=True)
class Batch:
    """A flush's rows as query parameters, built before any I/O.

    Building it serialises the conversations' state, so the engine may go on changing
    them while the batch is written.
    """

    counts: list[list[object]]
    hist: list[list[object]]
    conversations: list[list[object]]
    quarantined: Sequence[Quarantined]
    offsets: dict[int, tuple[int, int, int]]
    rows: int
    outbox: Sequence[Outbox] = ()


def prepare(
    count_rows: Sequence[tuple[RowKey, int, float]],
    hist_rows: Sequence[tuple[RowKey, int, int]],
    conversations: Sequence[Conversation],
    quarantined: Sequence[Quarantined],
    offsets: dict[int, tuple[int, int, int]],
    outbox: Sequence[Outbox] = (),
) -> Batch:
    return Batch(
        _columns(count_rows),
        _columns(hist_rows),
        _conversation_columns(conversations),
        list(quarantined),
        dict(offsets),
        len(count_rows) + len(hist_rows),
        list(outbox),
    )


def _conversation_columns(conversations: Sequence[Conversation]) -> list[list[object]]:
    cols: list[list[object]] = [[] for _ in range(15)]
    for conv in sorted(conversations, key=lambda c: (c.tenant, c.conversation_id)):
        walk = conv.walk
        status = ("in_queue" if walk.in_queue else "done") if walk.is_call else walk.status
        values = (
            conv.tenant,
            conv.conversation_id,
            conv.partition,
            walk.is_call,
            walk.channel,
            walk.team,
            walk.agent,
            status,
            _ts(walk.created_at if not walk.is_call else walk.queued_at),
            _ts(walk.queued_at if walk.in_queue else None),
            _ts(conv.sla.due),
            _ts(conv.sla.breached_at),
            _ts(conv.sla.at_risk_at),
            walk.closed,
            dump(conv),
        )
        for i, value in enumerate(values):
            cols[i].append(value)
    return cols
