"""Reading summed KPI buckets: one query for counts, one for histograms.

Each query reads the coarsest level that keeps every dimension it filters or groups on
(:func:`source_for`): the rollups by channel (no team, no agent), by team (no agent; counts
only, quantiles from the detail histograms: see shared/db/schema.py), or the detail rows. The
rollups hold the very sums of the detail rows (the aggregator writes all of them in one
transaction), so the answer is the same whichever is read; only the number of rows summed
differs — for a day grouped by channel at 10 teams × 50 agents, a few thousand count rows
instead of hundreds of thousands.

Every query has the shape ``tenant = :t AND label = :l AND (<plan ranges OR'ed>)``; the
primary keys start (tenant, grain, bucket, ...) — (tenant, label, grain, bucket, ...) by
channel — so each range of the plan is an index range scan (Postgres turns the OR into a
BitmapOr), whatever the window length. Statements are SQLAlchemy Core with bound parameters
only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Interval,
    Select,
    Table,
    and_,
    bindparam,
    cast,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import (
    kpi_counts,
    kpi_counts_by_channel,
    kpi_counts_by_team,
    kpi_hist,
    kpi_hist_by_channel,
)
from shared.windows import Range

# The queue of a call is stored in the team column; queues only exist on the phone channel.
PHONE: Final = "phone"
DIMENSIONS: Final = ("channel", "team", "agent", "label", "queue")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

# A group key: the values of the grouping dimensions, then the time bin when binned.
Group = tuple[Any, ...]
CountRows = dict[Group, dict[str, tuple[int, float]]]
HistRows = dict[Group, dict[str, dict[int, int]]]


@dataclass(frozen=True, slots=True)
class Filters:
    """Dimension filters; several values of one dimension are OR'ed."""

    channel: tuple[str, ...] = ()
    team: tuple[str, ...] = ()
    queue: tuple[str, ...] = ()
    agent: tuple[str, ...] = ()
    # One label at most: conversations carry several labels, so summing label rows of
    # two labels would count a conversation with both twice.
    label: str | None = None
    # Leaderboards leave out the unassigned ('' agent) rows.
    assigned_only: bool = False


@dataclass(frozen=True, slots=True)
class Source:
    """The tables a level reads: counts and histograms with the same sums, at that level or finer."""

    name: str
    counts: Table
    hist: Table
    # Which of team and agent the tables keep (every level keeps tenant, channel and label).
    team: bool
    agent: bool
    # Whether grouping by label may read it: the by-channel key puts the label before the
    # bucket, so "every label" is not one index range per bucket range there.
    label_groups: bool


DETAIL: Final = Source("detail", kpi_counts, kpi_hist, team=True, agent=True, label_groups=True)
# Counts by team, histograms from the detail rows (there is no histogram rollup by team).
BY_TEAM: Final = Source("team", kpi_counts_by_team, kpi_hist, team=True, agent=False, label_groups=True)
BY_CHANNEL: Final = Source(
    "channel", kpi_counts_by_channel, kpi_hist_by_channel, team=False, agent=False, label_groups=False
)
# Coarsest first: the first that can answer is the one read.
SOURCES: Final = {s.name: s for s in (BY_CHANNEL, BY_TEAM, DETAIL)}


@dataclass(frozen=True, slots=True)
class BucketQuery:
    tenants: tuple[str, ...]
    ranges: tuple[Range, ...]
    filters: Filters = Filters()
    # Names from DIMENSIONS, plus "tenant" for the Prometheus export.
    group_by: tuple[str, ...] = ()
    # None: every measure.
    metrics: tuple[str, ...] | None = None
    # Bin buckets into steps of this length (time series); the bin start ends each group key.
    step: timedelta | None = None
    # A name from SOURCES to read that level whatever the query (tests, benchmarks); None: the
    # coarsest level that can answer.
    source: str | None = None


def can_answer(source: Source, q: BucketQuery) -> bool:
    """Whether ``source`` keeps every column ``q`` filters or groups on."""
    f, dims = q.filters, set(q.group_by)
    if (f.agent or f.assigned_only or "agent" in dims) and not source.agent:
        return False
    if (f.team or f.queue or dims & {"team", "queue"}) and not source.team:
        return False
    return not ("label" in dims and f.label is None and not source.label_groups)


def source_for(q: BucketQuery) -> Source:
    """The level ``q`` reads: the one it names, else the coarsest that can answer it."""
    if q.source is not None:
        source = SOURCES[q.source]
        if not can_answer(source, q):
            raise ValueError(f"the {source.name} tables cannot answer {q}")
        return source
    return next(s for s in SOURCES.values() if can_answer(s, q))


def _dimension(table: Table, name: str) -> ColumnElement[Any]:
    return table.c.team if name == "queue" else table.c[name]


def _conditions(table: Table, q: BucketQuery) -> list[ColumnElement[bool]]:
    c = table.c
    conds: list[ColumnElement[bool]] = [
        c.tenant == q.tenants[0] if len(q.tenants) == 1 else c.tenant.in_(q.tenants),
    ]
    f = q.filters
    if f.label is not None:
        conds.append(c.label == f.label)
    elif "label" in q.group_by:
        conds.append(c.label != "")
    else:
        conds.append(c.label == "")
    conds.append(or_(*(and_(c.grain == r.grain, c.bucket >= r.start, c.bucket < r.end) for r in q.ranges)))
    if f.queue or "queue" in q.group_by:
        conds.append(c.channel == PHONE)
    for values, name in ((f.channel, "channel"), (f.team, "team"), (f.queue, "team"), (f.agent, "agent")):
        if values:
            column = c[name]
            conds.append(column == values[0] if len(values) == 1 else column.in_(values))
    if f.assigned_only:
        conds.append(c.agent != "")
    if q.metrics is not None:
        conds.append(c.metric.in_(q.metrics))
    return conds


def _statement(table: Table, q: BucketQuery, values: Sequence[str]) -> Select[Any]:
    """SELECT <group keys>, metric[, idx], sum(...) over a flattened subquery.

    The subquery lets the grouping use labelled expressions (date_bin with bound
    parameters) without repeating them, and Postgres pulls it up into one scan.
    """
    if not q.ranges:
        raise ValueError("a bucket query needs at least one range")
    c = table.c
    keys: list[ColumnElement[Any]] = [_dimension(table, d).label(d) for d in q.group_by]
    if q.step is not None:
        step = bindparam("step", q.step, type_=Interval())
        origin = bindparam("origin", _EPOCH, type_=DateTime(timezone=True))
        keys.append(func.date_bin(step, c.bucket, origin).label("t"))
    keys.append(c.metric.label("metric"))
    if "idx" in c:
        keys.append(c.idx.label("idx"))
    inner = select(*keys, *(c[v].label(f"v_{v}") for v in values)).where(*_conditions(table, q)).subquery("b")
    group = [inner.c[k.name] for k in keys]
    # sum(bigint) is numeric in Postgres; back to bigint so rows carry ints, not Decimals.
    sums = [
        cast(func.sum(inner.c[f"v_{v}"]), BigInteger) if v == "count" else func.sum(inner.c[f"v_{v}"])
        for v in values
    ]
    return select(*group, *sums).group_by(*group)


def _width(q: BucketQuery) -> int:
    return len(q.group_by) + (1 if q.step is not None else 0)


async def _without_jit(conn: AsyncConnection) -> None:
    # Summing a day of histograms is costed high enough to be JIT-compiled, which takes longer
    # (80 ms to over a second, bench/README.md) than the statement itself; for this transaction only.
    await conn.execute(text("SET LOCAL jit = off"))


async def fetch_counts(conn: AsyncConnection, q: BucketQuery) -> CountRows:
    """group → measure → (summed count, summed sum)."""
    out: CountRows = {}
    width = _width(q)
    await _without_jit(conn)
    result = await conn.execute(_statement(source_for(q).counts, q, ("count", "sum")))
    for row in result:
        group = tuple(row[:width])
        out.setdefault(group, {})[row[width]] = (int(row[width + 1]), float(row[width + 2]))
    return out


async def fetch_hist(conn: AsyncConnection, q: BucketQuery) -> HistRows:
    """group → duration measure → histogram (bucket index → count)."""
    out: HistRows = {}
    width = _width(q)
    await _without_jit(conn)
    result = await conn.execute(_statement(source_for(q).hist, q, ("count",)))
    for row in result:
        group = tuple(row[:width])
        out.setdefault(group, {}).setdefault(row[width], {})[int(row[width + 1])] = int(row[width + 2])
    return out


def statements(q: BucketQuery) -> tuple[Select[Any], Select[Any]]:
    """Both statements, for EXPLAIN in tests and benchmarks."""
    source = source_for(q)
    return _statement(source.counts, q, ("count", "sum")), _statement(source.hist, q, ("count",))
