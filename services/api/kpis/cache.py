"""KPI answers kept until a bucket they were computed from changes.

Summing a day of histograms takes ~150 ms of Postgres even from the rollups (a 24 h window by
channel reads ~180,000 histogram rows at 1 M conversations a day: bench/README.md), while a
dashboard asks the same question many times between two aggregator flushes. Each request
therefore reads a *version* first — a digest of the ``xmin`` (the writing transaction) of the
tenant's channel-level day rows with label '' for every UTC day its window touches — and
reuses the answer computed under the same version.

Why that version covers every row a KPI query can read: the aggregator writes each fact to
its minute, hour *and day* bucket, under label '' besides its labels, at every level, in one
statement (services/aggregator/store.py). So any transaction that changes a bucket of the
window also rewrites (a new row version, a new ``xmin``) or inserts a by-channel '' day row
of a day the window touches; a replay swaps in new tables, whose rows all have new ``xmin``.
Only the retention purge deletes rows without touching day rows, and it deletes minutes older
than any window the API plans. Requests run in one REPEATABLE READ snapshot (services/api/
deps.py), so the version and the sums they read agree.

Concurrent requests for the same question under the same version wait for the one computing
it rather than all running the same ~150 ms of SQL.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from sqlalchemy import Text, cast, func, literal, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import GRAIN_DAY, kpi_counts_by_channel
from shared.windows import DAY, Range, ceil_to, floor_to

T = TypeVar("T")

# Answers are small (a few KB of KPIs per group); a dashboard wall asks a few dozen questions.
MAX_ENTRIES: Final = 256


async def version(conn: AsyncConnection, tenant: str, ranges: Sequence[Range]) -> str | None:
    """The version of ``tenant``'s buckets over the UTC days ``ranges`` touch; None when empty."""
    c = kpi_counts_by_channel.c
    first = floor_to(min(r.start for r in ranges), DAY)
    last = ceil_to(max(r.end for r in ranges), DAY)
    xmin = cast(literal_column("xmin"), Text)
    statement = select(
        func.md5(func.string_agg(xmin, aggregate_order_by(literal(",", Text), c.bucket, c.metric, c.channel)))
    ).where(c.tenant == tenant, c.label == "", c.grain == GRAIN_DAY, c.bucket >= first, c.bucket < last)
    digest: str | None = (await conn.execute(statement)).scalar()
    return digest


@dataclass(slots=True)
class _Entry(Generic[T]):
    version: str
    answer: asyncio.Future[T]


class Answers:
    """Answers by question, each valid while its version holds; at most ``max_entries``, LRU."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, _Entry[Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        self._entries.clear()

    async def get(
        self,
        conn: AsyncConnection,
        tenant: str,
        ranges: Sequence[Range],
        question: Hashable,
        compute: Callable[[], Awaitable[T]],
    ) -> T:
        """The answer to ``question`` about ``tenant``'s buckets in ``ranges``, computed at most once
        per version. ``compute`` must read through ``conn`` (the same snapshot as the version)."""
        current = await version(conn, tenant, ranges)
        if current is None:
            return await compute()  # nothing stored for those days: nothing worth keeping
        # Questions about different databases (tests, benchmarks) must not share answers.
        key = (conn.engine.url.render_as_string(hide_password=True), tenant, question)
        entry = self._entries.get(key)
        if entry is not None and entry.version == current:
            self._entries.move_to_end(key)
            try:
                answer: T = await asyncio.shield(entry.answer)
            except asyncio.CancelledError:
                if not entry.answer.cancelled():
                    raise  # this request was cancelled, not the one computing
                # The request computing it failed or went away: compute it here instead.
            else:
                self.hits += 1
                return answer
        self.misses += 1
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        mine = _Entry(current, future)
        self._entries[key] = mine
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        try:
            answer = await compute()
        except BaseException:
            if self._entries.get(key) is mine:
                del self._entries[key]
            future.cancel()  # waiters compute it themselves
            raise
        future.set_result(answer)
        return answer


# One per process: the API's requests, whichever app instance serves them.
ANSWERS: Final = Answers()
