"""Hand-worked KPI buckets and conversation rows for the API tests.

:class:`Buckets` writes each fact the way the aggregator does (services/aggregator/deltas.py):
to its minute, hour and UTC-day bucket, once under label '' and once per label, with a
histogram row for durations; minute rows can be left out for facts older than retention.
The data below is small enough to work out every expected number by hand (see DATA).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from services.aggregator.conversation import Changes, Conversation, apply, dump, tick
from services.aggregator.decode import Step, kafka_decoder
from services.aggregator.sla import SlaBook
from services.aggregator.walk import Rules
from shared.events import Event, encode
from shared.histogram import bucket_index
from shared.kpis import DURATION_MEASURES
from tests.factories import Timeline

# The aggregator's rules for the conversation stories: a 5-minute first-response SLA on chat.
RULES = Rules(first_response_targets=(("chat", 300.0),))
BOOK = SlaBook(default_targets=RULES.first_response_targets)


def to_step(event: Event) -> Step:
    # Through the wire format, as the aggregator reads it.
    return kafka_decoder.decode(encode(event))


NOW = datetime(2026, 11, 20, 10, 29, 30, tzinfo=UTC)
HOUR_AGO = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)

Key = tuple[str, int, datetime, str, str, str, str, str]


def _floor(t: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return t - (t - epoch) % step


class Buckets:
    def __init__(self) -> None:
        self.counts: dict[Key, list[float]] = {}
        self.hist: Counter[tuple[Key, int]] = Counter()

    def add(
        self,
        tenant: str,
        at: datetime,
        measure: str,
        value: float = 1.0,
        *,
        n: int = 1,
        channel: str = "chat",
        team: str = "",
        agent: str = "",
        labels: tuple[str, ...] = (),
        minutes: bool = True,
    ) -> None:
        grains = [(1, timedelta(hours=1)), (2, timedelta(days=1))]
        if minutes:
            grains.append((0, timedelta(minutes=1)))
        for grain, step in grains:
            for label in ("", *labels):
                key = (tenant, grain, _floor(at, step), measure, channel, team, agent, label)
                slot = self.counts.setdefault(key, [0, 0.0])
                slot[0] += n
                slot[1] += n * value
                if measure in DURATION_MEASURES:
                    self.hist[(key, bucket_index(value))] += n

    async def write(self, conn: asyncpg.Connection) -> None:
        await conn.executemany(
            "INSERT INTO kpi_counts (tenant, grain, bucket, metric, channel, team, agent, label, count, sum) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            [(*key, int(c), s) for key, (c, s) in self.counts.items()],
        )
        await conn.executemany(
            "INSERT INTO kpi_hist (tenant, grain, bucket, metric, channel, team, agent, label, idx, count) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            [(*key, idx, c) for (key, idx), c in self.hist.items()],
        )
        # The rollups hold the detail rows' sums, as the aggregator's flush writes them.
        for statement in ROLLUPS:
            await conn.execute(statement)


ROLLUPS = (
    "INSERT INTO kpi_counts_by_team (tenant, grain, bucket, metric, channel, team, label, count, sum) "
    "SELECT tenant, grain, bucket, metric, channel, team, label, sum(count), sum(sum) FROM kpi_counts "
    "GROUP BY tenant, grain, bucket, metric, channel, team, label",
    "INSERT INTO kpi_counts_by_channel (tenant, label, grain, bucket, metric, channel, count, sum) "
    "SELECT tenant, label, grain, bucket, metric, channel, sum(count), sum(sum) FROM kpi_counts "
    "GROUP BY tenant, label, grain, bucket, metric, channel",
    "INSERT INTO kpi_hist_by_channel (tenant, label, grain, bucket, metric, channel, idx, count) "
    "SELECT tenant, label, grain, bucket, metric, channel, idx, sum(count) FROM kpi_hist "
    "GROUP BY tenant, label, grain, bucket, metric, channel, idx",
)


def seed_buckets() -> Buckets:
    """The KPI facts; every expected number of the tests derives from this function."""
    b = Buckets()
    t = HOUR_AGO  # 10:00 UTC; the 1h window is [09:30, 10:30)
    m = timedelta(minutes=1)
    # --- acme conversations, last hour ---------------------------------------------------
    b.add("acme", t, "conversations_created", channel="chat", team="support", agent="alice", labels=("vip",))
    b.add(
        "acme",
        t,
        "conversations_created",
        channel="chat",
        team="support",
        agent="bob",
        labels=("billing", "vip"),
    )
    b.add("acme", t, "conversations_created", channel="chat", team="support")
    b.add("acme", t + 2 * m, "conversations_created", channel="email", team="billing", agent="bob")
    # First responses of 10, 20 and 600 seconds.
    b.add(
        "acme",
        t + m,
        "first_response_seconds",
        10.0,
        channel="chat",
        team="support",
        agent="alice",
        labels=("vip",),
    )
    b.add(
        "acme",
        t + 3 * m,
        "first_response_seconds",
        20.0,
        channel="chat",
        team="support",
        agent="bob",
        labels=("billing", "vip"),
    )
    b.add("acme", t + 12 * m, "first_response_seconds", 600.0, channel="email", team="billing", agent="alice")
    b.add(
        "acme",
        t + m,
        "sla_first_response_met",
        channel="chat",
        team="support",
        agent="alice",
        labels=("vip",),
    )
    b.add(
        "acme",
        t + 3 * m,
        "sla_first_response_met",
        channel="chat",
        team="support",
        agent="bob",
        labels=("billing", "vip"),
    )
    b.add("acme", t + 5 * m, "sla_first_response_breaches", channel="chat", team="support")
    # Resolutions: alice's chat after 1200 s (one touch), bob's email after 1080 s.
    b.add(
        "acme",
        t + 20 * m,
        "conversations_resolved",
        channel="chat",
        team="support",
        agent="alice",
        labels=("vip",),
    )
    b.add(
        "acme",
        t + 20 * m,
        "resolution_seconds",
        1200.0,
        channel="chat",
        team="support",
        agent="alice",
        labels=("vip",),
    )
    b.add(
        "acme",
        t + 20 * m,
        "first_resolutions",
        channel="chat",
        team="support",
        agent="alice",
        labels=("vip",),
    )
    b.add(
        "acme",
        t + 20 * m,
        "one_touch_resolutions",
        channel="chat",
        team="support",
        agent="alice",
        labels=("vip",),
    )
    b.add("acme", t + 20 * m, "conversations_resolved", channel="email", team="billing", agent="bob")
    b.add("acme", t + 20 * m, "resolution_seconds", 1080.0, channel="email", team="billing", agent="bob")
    b.add("acme", t + 20 * m, "first_resolutions", channel="email", team="billing", agent="bob")
    # CSAT 3, 5 (alice, chat) and 4 (bob, email); NPS 10, 9, 3 (alice, chat).
    b.add("acme", t + 22 * m, "csat_score", 3.0, channel="chat", team="support", agent="alice")
    b.add("acme", t + 23 * m, "csat_score", 5.0, channel="chat", team="support", agent="alice")
    b.add("acme", t + 23 * m, "csat_satisfied", channel="chat", team="support", agent="alice")
    b.add("acme", t + 24 * m, "csat_score", 4.0, channel="email", team="billing", agent="bob")
    b.add("acme", t + 24 * m, "csat_satisfied", channel="email", team="billing", agent="bob")
    b.add("acme", t + 25 * m, "nps_responses", n=3, channel="chat", team="support", agent="alice")
    b.add("acme", t + 25 * m, "nps_promoters", n=2, channel="chat", team="support", agent="alice")
    b.add("acme", t + 25 * m, "nps_detractors", channel="chat", team="support", agent="alice")
    # --- acme calls: queues sales and support-line -------------------------------------
    b.add("acme", t + 10 * m, "calls_offered", n=3, channel="phone", team="sales")
    b.add("acme", t + 10 * m, "calls_offered", n=2, channel="phone", team="support-line")
    b.add("acme", t + 11 * m, "calls_answered", n=2, channel="phone", team="sales", agent="carol")
    b.add("acme", t + 11 * m, "calls_answered_in_target", n=2, channel="phone", team="sales", agent="carol")
    b.add("acme", t + 11 * m, "asa_seconds", 15.0, channel="phone", team="sales", agent="carol")
    b.add("acme", t + 11 * m, "asa_seconds", 18.0, channel="phone", team="sales", agent="carol")
    b.add("acme", t + 11 * m, "calls_answered", channel="phone", team="support-line", agent="dave")
    b.add("acme", t + 11 * m, "asa_seconds", 40.0, channel="phone", team="support-line", agent="dave")
    b.add("acme", t + 12 * m, "calls_abandoned", channel="phone", team="sales")
    b.add("acme", t + 12 * m, "calls_short_abandoned", channel="phone", team="sales")
    b.add("acme", t + 12 * m, "abandon_wait_seconds", 3.0, channel="phone", team="sales")
    b.add("acme", t + 12 * m, "calls_abandoned", channel="phone", team="support-line")
    b.add("acme", t + 12 * m, "abandon_wait_seconds", 60.0, channel="phone", team="support-line")
    # --- acme, earlier: 5 created yesterday evening (in 24h), 7 + 100 beyond retention --
    b.add(
        "acme",
        datetime(2026, 11, 19, 20, 0, tzinfo=UTC),
        "conversations_created",
        n=5,
        channel="chat",
        team="support",
        agent="alice",
    )
    old = datetime(2026, 11, 15, 12, 34, tzinfo=UTC)
    b.add("acme", old, "conversations_created", n=7, channel="chat", team="support", minutes=False)
    b.add("acme", old, "sla_first_response_breaches", n=2, channel="chat", team="support", minutes=False)
    # 11-13 10:15 is before a 7d window's start (10:30) but inside it once widened to the hour.
    b.add(
        "acme",
        datetime(2026, 11, 13, 10, 15, tzinfo=UTC),
        "conversations_created",
        n=100,
        channel="chat",
        team="support",
        minutes=False,
    )
    # --- globex: same agent and label names, other tenant ------------------------------
    b.add(
        "globex",
        t + 10 * m,
        "conversations_created",
        n=50,
        channel="chat",
        team="support",
        agent="alice",
        labels=("vip",),
    )
    b.add(
        "globex",
        t + 11 * m,
        "first_response_seconds",
        30.0,
        channel="chat",
        team="support",
        agent="alice",
        labels=("vip",),
    )
    b.add("globex", t + 11 * m, "sla_first_response_breaches", n=4, channel="chat", team="support")
    return b


def _state(timeline: Timeline, now: datetime) -> tuple[Conversation, bytes]:
    conv = Conversation(tenant=timeline.tenant, conversation_id=timeline.conversation_id, partition=0)
    changes = Changes()
    for event in timeline.events:
        apply(conv, to_step(event), RULES, changes)
    tick(conv, now.timestamp(), BOOK, changes, None)
    return conv, dump(conv)


def story_answered() -> Timeline:
    """Chat created 10:00, customer at 10:00:30, alice replies at 10:01 (SLA 300 s met), resolved 10:20."""
    return (
        Timeline("c-story", tenant="acme", channel="chat", start=HOUR_AGO)
        .created(0, team="support", labels=["vip"])
        .customer(30)
        .agent(60, agent="alice")
        .status(1200, "resolved")
    )


def story_breached() -> Timeline:
    """Chat created 10:00, nobody answers: the 300 s deadline passes at 10:05, the breach is counted."""
    return (
        Timeline("c-breach", tenant="acme", channel="chat", start=HOUR_AGO)
        .created(0, team="support")
        .customer(5)
    )


async def seed_conversations(conn: asyncpg.Connection) -> None:
    empty = msgspec.msgpack.encode({})
    rows: list[tuple[object, ...]] = []

    def row(
        tenant: str,
        cid: str,
        *,
        is_call: bool = False,
        channel: str = "chat",
        team: str = "support",
        agent: str = "",
        status: str | None = "open",
        created: datetime | None = None,
        queued: datetime | None = None,
        due: datetime | None = None,
        breached: datetime | None = None,
        at_risk: datetime | None = None,
        closed: bool = False,
        state: bytes = empty,
    ) -> None:
        rows.append(
            (
                tenant,
                cid,
                0,
                is_call,
                channel,
                team,
                agent,
                status,
                created,
                queued,
                due,
                breached,
                at_risk,
                closed,
                state,
            )
        )

    s = timedelta(seconds=1)
    # At risk since a minute ago (its policy's share of the target has run), deadline in 2 minutes.
    row("acme", "c-open-1", created=NOW - 180 * s, due=NOW + 120 * s, at_risk=NOW - 60 * s)
    # Breached 30 s ago, still waiting for its reply.
    row("acme", "c-open-2", status="pending", created=NOW - 400 * s, breached=NOW - 30 * s)
    # Turns at risk in 100 minutes: only within a longer risk_minutes horizon.
    row(
        "acme",
        "c-open-3",
        channel="email",
        team="billing",
        created=NOW - 60 * s,
        due=NOW + 100 * 60 * s,
        at_risk=NOW + 100 * 60 * s,
    )
    row("acme", "c-snoozed", status="snoozed", created=NOW - 3600 * s)
    row(
        "acme",
        "c-closed",
        status="resolved",
        closed=True,
        breached=NOW - 60 * s,
        at_risk=NOW - 120 * s,
        created=NOW - 7200 * s,
    )
    row("acme", "call-1", is_call=True, channel="phone", team="sales", status="in_queue", queued=NOW - 95 * s)
    row("acme", "call-2", is_call=True, channel="phone", team="sales", status="in_queue", queued=NOW - 30 * s)
    row(
        "acme",
        "call-3",
        is_call=True,
        channel="phone",
        team="support-line",
        status="in_queue",
        queued=NOW - 10 * s,
    )
    row("acme", "call-4", is_call=True, channel="phone", team="sales", agent="carol", status="done")
    row("globex", "g-open-1", breached=NOW - 10 * s)
    for story in (story_answered(), story_breached()):
        conv, state = _state(story, NOW)
        walk = conv.walk
        due = conv.sla_due_at
        breached = None if conv.sla.breached_at is None else datetime.fromtimestamp(conv.sla.breached_at, UTC)
        at_risk = None if conv.sla.at_risk_at is None else datetime.fromtimestamp(conv.sla.at_risk_at, UTC)
        row(
            "acme",
            conv.conversation_id,
            channel=walk.channel,
            team=walk.team,
            agent=walk.agent,
            status=walk.status,
            created=datetime.fromtimestamp(walk.created_at or 0, UTC),
            due=None if due is None else datetime.fromtimestamp(due, UTC),
            breached=breached,
            at_risk=at_risk,
            closed=walk.closed,
            state=state,
        )
    await conn.executemany(
        "INSERT INTO conversations (tenant, conversation_id, partition, is_call, channel, team, agent, "
        "status, created_at, queued_at, sla_due_at, sla_breached_at, sla_at_risk_at, closed, state) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        rows,
    )
