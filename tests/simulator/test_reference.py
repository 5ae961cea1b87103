"""The reference computation: hand-worked cases from docs/kpis.md, then agreement with the
aggregator's core on simulator and factory traffic (shuffled, with redeliveries)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest

from services.aggregator.walk import Rules
from services.simulator.canonical import events_of
from services.simulator.model import Scenario
from services.simulator.reference import Thresholds, compute
from shared.events import Event
from tests.aggregator.helpers import facts
from tests.factories import Timeline, random_timelines

TARGETS = {"chat": 300.0, "email": 3600.0}
THRESHOLDS = Thresholds(first_response_targets=TARGETS)
RULES = Rules(first_response_targets=tuple(sorted(TARGETS.items())))
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
LATER = START + timedelta(days=1)


def measures(events: list[Event], now: datetime = LATER) -> dict[str, tuple[int, float]]:
    return compute(events, now=now, thresholds=THRESHOLDS).totals()


def test_a_conversation_by_hand() -> None:
    t = Timeline("c1", start=START).created(0).customer(10).agent(70)  # first response 70 s, met
    t.customer(100).customer(110).agent(200)  # next reply from the oldest unanswered: 100 s
    t.status(300, "resolved").status(400, "open").agent(450).status(500, "resolved")
    t.survey(520, "csat", 4, survey_id="s").survey(560, "csat", 2, survey_id="s")  # latest counts
    got = measures(t.events)
    assert got["conversations_created"] == (1, 1.0)
    assert got["first_response_seconds"] == (1, 70.0)
    assert got["next_reply_seconds"] == (1, 100.0)
    assert got["messages_inbound"] == (3, 3.0) and got["messages_outbound"] == (3, 3.0)
    assert got["conversations_resolved"] == (2, 2.0)
    assert got["resolution_seconds"] == (2, 800.0)  # 300 + 500: from creation to each resolve
    assert got["first_resolutions"] == (1, 1.0) and got["first_resolution_seconds"] == (1, 300.0)
    assert got["conversations_reopened"] == (1, 1.0)
    assert "one_touch_resolutions" not in got  # two human messages before the first resolve
    assert "conversations_abandoned" not in got
    assert got["csat_score"] == (1, 2.0) and "csat_satisfied" not in got
    assert got["sla_first_response_met"] == (1, 1.0)
    assert "sla_first_response_breaches" not in got and "sla_at_risk" not in got


def test_bot_handoff_reopen_and_abandoned_by_hand() -> None:
    # A bot holds it (created pending): the human clock starts at the handoff (open at 100).
    bot = Timeline("b", start=START).created(0, status="pending").customer(1).bot(2)
    bot.status(100, "open").agent(160)
    # Resolved with no reply after the customer wrote: abandoned, one-touch (no human message).
    gone = Timeline("g", start=START).created(0).customer(5).status(60, "resolved")
    # Reopened before any human reply: the first response counts from the reopen.
    again = Timeline("r", start=START).created(0).status(50, "resolved").status(80, "open").agent(95)
    got = measures([*bot.events, *gone.events, *again.events])
    assert got["first_response_seconds"] == (2, 60.0 + 15.0)
    assert got["messages_bot"] == (1, 1.0)
    assert got["conversations_abandoned"] == (1, 1.0)
    assert got["one_touch_resolutions"] == (2, 2.0)  # "g" and "r": at most one human message
    assert got["conversations_reopened"] == (1, 1.0)
    # "b" replied in time; "g" and "r" were resolved before any reply: their clocks stopped there.
    assert got["sla_first_response_met"] == (1, 1.0) and "sla_first_response_breaches" not in got


def test_sla_breach_and_at_risk_by_hand() -> None:
    late = Timeline("late", start=START).created(0).customer(1).agent(400)  # replied after 300 s
    silent = Timeline("silent", start=START).created(0).customer(1)  # never replied
    near = Timeline("near", start=START).created(0).customer(1).agent(260)  # past 80 %, in time
    events = [*late.events, *silent.events, *near.events]
    got = measures(events)
    assert got["sla_first_response_breaches"] == (2, 2.0)
    assert got["sla_first_response_met"] == (1, 1.0)
    assert got["sla_at_risk"] == (3, 3.0)  # every clock ran past 240 s
    # Before the deadline passed, "silent" is still running: no breach yet, one pending.
    early = compute(events, now=START + timedelta(seconds=250), thresholds=THRESHOLDS)
    assert early.totals()["sla_first_response_breaches"] == (1, 1.0)  # "late" ended past it
    assert len(early.pending_deadlines) == 1
    breach = next(o for o in compute(events, now=LATER).observations if o.measure.endswith("breaches"))
    assert breach.at == START + timedelta(seconds=300)  # the deadline's instant


def test_calls_by_hand() -> None:
    answered = Timeline("a", channel="phone", start=START).queued(0).answered(25, wait=25.0)
    answered.ended(200, talk=100, hold=10, wrap=5)
    fast = Timeline("f", channel="phone", start=START).queued(0).answered(20, wait=20.0)
    at_five = Timeline("x", channel="phone", start=START).queued(0).abandoned(5, wait=5.0)
    short = Timeline("s", channel="phone", start=START).queued(0).abandoned(4.9, wait=4.9)
    out = Timeline("o", channel="phone", start=START).queued(0).add("call.timed_out", 60, wait_seconds=60.0)
    got = measures([*answered.events, *fast.events, *at_five.events, *short.events, *out.events])
    assert got["calls_offered"] == (5, 5.0)
    assert got["calls_answered"] == (2, 2.0) and got["asa_seconds"] == (2, 45.0)
    assert got["calls_answered_in_target"] == (1, 1.0)  # 20 s is within the 20 s target
    assert got["aht_seconds"] == (1, 115.0)
    assert got["calls_abandoned"] == (2, 2.0) and got["abandon_wait_seconds"] == (2, 9.9)
    assert got["calls_short_abandoned"] == (1, 1.0)  # 4.9 s; 5 s is not under the threshold
    assert got["calls_timed_out"] == (1, 1.0)


def test_duplicates_unknown_types_and_out_of_range_events() -> None:
    t = Timeline("d", start=START).created(0).customer(3)
    old = Timeline("old", start=START - timedelta(days=200)).created(0)
    presence = Timeline("agent", start=START).add("agent.status_changed", 0, agent="u", agent_status="away")
    ref = compute([*t.events, t.events[1], *old.events, *presence.events], now=LATER, thresholds=THRESHOLDS)
    assert (ref.events, ref.duplicates, ref.skipped, ref.quarantined) == (5, 1, 1, 1)
    assert ref.totals()["messages_inbound"] == (1, 1.0)
    assert ref.totals()["conversations_created"] == (1, 1.0)


def test_day_and_channel_split() -> None:
    midnight = datetime.combine(LATER.date(), datetime.min.time(), UTC)
    chat = Timeline("x", start=midnight - timedelta(seconds=30)).created(0).customer(10).customer(40)
    mail = Timeline("y", channel="email", start=midnight).created(0)
    days = compute([*chat.events, *mail.events], now=LATER + timedelta(days=1)).day_totals()
    assert days[("messages_inbound", midnight.date() - timedelta(days=1), "chat")] == (1, 1.0)
    assert days[("messages_inbound", midnight.date(), "chat")] == (1, 1.0)
    assert days[("conversations_created", midnight.date(), "email")] == (1, 1.0)


def aggregator_day_totals(
    events: list[Event], now: datetime
) -> dict[tuple[str, date, str], tuple[int, float]]:
    out: dict[tuple[str, date, str], list[float]] = defaultdict(lambda: [0, 0.0])
    for fact, n in facts(events, now=now.timestamp(), rules=RULES).items():
        slot = out[(fact.measure, datetime.fromtimestamp(fact.minute, UTC).date(), fact.channel)]
        slot[0] += n
        slot[1] += n * fact.value
    return {k: (int(c), s) for k, (c, s) in out.items() if c or s}


def same(
    want: dict[tuple[str, date, str], tuple[int, float]], got: dict[tuple[str, date, str], tuple[int, float]]
) -> bool:
    return want.keys() == got.keys() and all(
        want[k][0] == got[k][0] and abs(want[k][1] - got[k][1]) <= 1e-6 * max(want[k][0], 1) for k in want
    )


def simulator_events(seed: int, stories: int) -> list[Event]:
    scenario = Scenario(seed, run_id=1_700_000_000)
    origin = START.timestamp()
    out = []
    for n, story in enumerate(scenario.stories(stories)):
        for index in range(len(story.deliveries)):
            out += events_of(story, index, origin + n * 3.0, "demo", scenario.run_id)
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_agrees_with_the_aggregator_core_on_simulator_traffic(seed: int) -> None:
    rnd = random.Random(seed)
    events = simulator_events(seed, 600)
    sent = events + rnd.sample(events, 300)  # redeliveries
    rnd.shuffle(sent)  # nothing in order
    want = compute(sent, now=LATER, thresholds=THRESHOLDS)
    assert want.duplicates >= 300
    assert same(want.day_totals(), aggregator_day_totals(sent, LATER))
    assert set(want.totals()) >= {
        "first_response_seconds",
        "aht_seconds",
        "csat_score",
        "sla_first_response_met",
    }


@pytest.mark.parametrize("minutes", [5, 45, 24 * 60])
def test_agrees_with_the_aggregator_core_on_factory_timelines(minutes: int) -> None:
    rnd = random.Random(minutes)
    events = [e for t in random_timelines(rnd, 500, start=START) for e in t.events]
    sent = events + rnd.sample(events, 200)
    rnd.shuffle(sent)
    now = START + timedelta(minutes=minutes)  # early values leave SLA clocks running
    assert same(compute(sent, now=now, thresholds=THRESHOLDS).day_totals(), aggregator_day_totals(sent, now))
