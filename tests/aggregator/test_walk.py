"""KPIs of hand-worked timelines: each number below is worked out by hand from the timeline."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.aggregator.helpers import RULES, by_agent, facts, totals
from tests.factories import Timeline


def test_bot_handoff_private_note_and_automation_do_not_count_as_first_response() -> None:
    t = (
        Timeline("c1")
        .created(0, status="pending")  # a bot holds it
        .customer(10)
        .bot(12)
        .status(100, "open")  # handoff: the human clock starts here
        .agent(130, private=True)  # a private note is not a reply
        .agent(140, automated="rule")  # nor is an automation rule's message
        .agent(190, agent="alice")  # first human reply: 90 s after handoff
        .status(300, "resolved")
    )
    got = totals(facts(t.events))
    assert got["first_response_seconds"] == (1, 90.0)
    assert got["messages_bot"] == (1, 1.0)
    assert got["messages_outbound"] == (1, 1.0)
    assert got["messages_inbound"] == (1, 1.0)
    assert got["first_resolution_seconds"] == (1, 300.0)
    assert got["one_touch_resolutions"] == (1, 1.0)
    assert "conversations_abandoned" not in got


def test_reopen_before_any_human_reply_restarts_the_first_response_clock() -> None:
    t = (
        Timeline("c2")
        .created(0)
        .customer(5)
        .status(60, "resolved")  # closed with no reply: an abandoned chat
        .status(1000, "open")  # reopen
        .agent(1030)
        .status(1200, "resolved")
    )
    got = totals(facts(t.events))
    assert got["first_response_seconds"] == (1, 30.0)
    assert got["conversations_reopened"] == (1, 1.0)
    assert got["conversations_resolved"] == (2, 2.0)
    assert got["resolution_seconds"] == (2, 60.0 + 1200.0)
    assert got["first_resolutions"] == (1, 1.0)
    assert got["first_resolution_seconds"] == (1, 60.0)
    assert got["conversations_abandoned"] == (1, 1.0)


def test_next_reply_is_measured_from_the_oldest_unanswered_customer_message() -> None:
    t = (
        Timeline("c3")
        .created(0)
        .customer(0)
        .agent(20)
        .customer(100)
        .customer(150)  # still waiting since 100
        .agent(400)
        .agent(410)  # no customer waiting: no next-reply sample
        .status(500, "resolved")
    )
    got = totals(facts(t.events))
    assert got["first_response_seconds"] == (1, 20.0)
    assert got["next_reply_seconds"] == (1, 300.0)
    assert got["messages_outbound"] == (3, 3.0)
    assert "one_touch_resolutions" not in got  # three human messages


def test_first_response_sla_met_breached_and_breached_without_reply() -> None:
    met = Timeline("s-met").created(0).customer(0).agent(299)
    late = Timeline("s-late").created(0).customer(0).agent(301)
    never = Timeline("s-never").created(0).customer(0)
    closed_early = Timeline("s-closed").created(0).customer(0).status(100, "resolved")
    got = facts(met.events + late.events + never.events + closed_early.events)
    assert totals(got)["sla_first_response_met"] == (1, 1.0)
    assert totals(got)["sla_first_response_breaches"] == (2, 2.0)
    # Breaches land in the deadline's minute (created 10:00:00 + 300 s = 10:05).
    minutes = {f.minute for f in got if f.measure == "sla_first_response_breaches"}
    assert minutes == {int(Timeline("x").start.timestamp()) + 300}


def test_breach_is_not_recorded_before_the_deadline_and_is_withdrawn_if_a_timely_reply_arrives_late() -> None:
    t = Timeline("s1").created(0).customer(0)
    start = t.start.timestamp()
    assert "sla_first_response_breaches" not in totals(facts(t.events, now=start + 299))
    # The reply (at 200 s) is delivered after the deadline was judged: the breach is retracted.
    t.agent(200)
    got = totals(facts(t.events, now=start + 10_000))
    assert "sla_first_response_breaches" not in got
    assert got["sla_first_response_met"] == (1, 1.0)


def test_phone_answered_abandoned_short_abandon_transfer_and_aht() -> None:
    answered = (
        Timeline("call-1", channel="phone")
        .queued(0)
        .answered(15, wait=15)
        .ended(315, talk=280, hold=20, wrap=30)
    )
    slow = Timeline("call-2", channel="phone").queued(0).answered(45, wait=45)
    abandoned = Timeline("call-3", channel="phone").queued(0).abandoned(40, wait=40)
    short = Timeline("call-4", channel="phone").queued(0).abandoned(3, wait=3)
    # Transferred back into a queue and answered again: offered and answered once.
    transfer = (
        Timeline("call-5", channel="phone")
        .queued(0)
        .answered(10, wait=10)
        .add("call.transferred", 60)
        .queued(61, queue="billing")
        .answered(70, wait=9, agent="carol")
        .ended(200, talk=120)
    )
    got = totals(facts(answered.events + slow.events + abandoned.events + short.events + transfer.events))
    assert got["calls_offered"] == (5, 5.0)
    assert got["calls_answered"] == (3, 3.0)
    assert got["calls_answered_in_target"] == (2, 2.0)
    assert got["calls_abandoned"] == (2, 2.0)
    assert got["calls_short_abandoned"] == (1, 1.0)
    assert got["asa_seconds"] == (3, 15.0 + 45.0 + 10.0)
    assert got["abandon_wait_seconds"] == (2, 43.0)
    assert got["aht_seconds"] == (2, 330.0 + 120.0)
    # abandonment = (2 - 1) / (5 - 1); service level = 2 / (3 + 2 - 1)


def test_survey_rated_twice_counts_once_with_the_latest_answer() -> None:
    t = Timeline("c4").created(0).agent(10, agent="alice").status(20, "resolved")
    t.survey(30, "csat", 2, agent="alice")
    t.survey(40, "csat", 5, agent="alice")  # same survey: comment added, rating changed
    t.survey(50, "nps", 10, survey_id="n1")
    t.survey(55, "nps", 3, survey_id="n2")
    t.survey(60, "ces", 6, survey_id="c1")
    for order in (t.events, list(reversed(t.events))):
        got = facts(order)
        tot = totals(got)
        assert tot["csat_score"] == (1, 5.0)
        assert tot["csat_satisfied"] == (1, 1.0)
        assert tot["nps_responses"] == (2, 2.0)
        assert tot["nps_promoters"] == (1, 1.0)
        assert tot["nps_detractors"] == (1, 1.0)
        assert tot["ces_score"] == (1, 6.0)
        assert by_agent(got, "csat_score") == {"alice": 1}


def test_duplicates_change_nothing() -> None:
    t = Timeline("c5").created(0).customer(1).agent(30).status(60, "resolved")
    once = facts(t.events)
    assert facts(t.events + t.events + t.events[:2]) == once


def _mixed_timelines() -> list[Timeline]:
    return [
        Timeline("p1")
        .created(0, status="pending", team="sales")
        .customer(3)
        .bot(4)
        .status(50, "open")
        .add("conversation.assigned", 55, agent="alice", team="sales")
        .agent(80)
        .customer(90)
        .agent(200)
        .status(300, "resolved")
        .survey(320, "csat", 4)
        .status(400, "open")
        .agent(410)
        .status(420, "resolved"),
        Timeline("p2", channel="email")
        .created(0)
        .customer(0)
        .agent(100, private=True)
        .status(4000, "resolved"),
        Timeline("p3", channel="phone").queued(0).answered(12, wait=12).ended(100, talk=80, wrap=8),
        Timeline("p4", channel="phone").queued(0).abandoned(4, wait=4),
    ]


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(min_value=0, max_value=10))
def test_any_delivery_order_with_duplicates_gives_the_in_order_kpis(rnd: random.Random, dups: int) -> None:
    events = [e for t in _mixed_timelines() for e in t.events]
    expected = facts(events)
    shuffled = events + [rnd.choice(events) for _ in range(dups)]
    rnd.shuffle(shuffled)
    assert facts(shuffled) == expected


def test_rules_thresholds_are_configurable() -> None:
    from dataclasses import replace

    call = Timeline("call-x", channel="phone").queued(0).answered(25, wait=25).ended(60, talk=30)
    default = totals(facts(call.events))
    assert "calls_answered_in_target" not in default
    relaxed = totals(facts(call.events, rules=replace(RULES, service_level_seconds=30)))
    assert relaxed["calls_answered_in_target"] == (1, 1.0)


def test_a_full_timeline_refuses_more_events_instead_of_forgetting_old_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.aggregator import conversation as conv_mod
    from services.aggregator.conversation import Changes, Conversation, TimelineFull, apply
    from tests.aggregator.helpers import to_step

    t = Timeline("long").created(0)
    for i in range(1, 5):
        t.customer(i)
    conv = Conversation(tenant="t1", conversation_id="long", partition=0)
    monkeypatch.setattr(conv_mod, "MAX_TIMELINE", 3)
    changes = Changes()
    for event in t.events[:3]:
        assert apply(conv, to_step(event), RULES, changes)
    with pytest.raises(TimelineFull):
        apply(conv, to_step(t.events[3]), RULES, changes)
    assert len(conv.timeline) == 3
    assert not apply(conv, to_step(t.events[0]), RULES, changes)  # a duplicate is still just a duplicate


def test_a_call_transferred_after_its_answer_is_closed_without_an_end() -> None:
    from services.aggregator.walk import Walk, replay
    from tests.aggregator.helpers import to_step

    # Asterisk writes no end after a TRANSFER: the call must still be able to leave memory.
    t = Timeline("tr", channel="phone").queued(0).answered(10, wait=10)
    t.add("call.transferred", 60)
    steps = [to_step(e) for e in t.events]
    walk, _ = replay([((s.t, i, s.id), s) for i, s in enumerate(steps)], RULES)
    assert walk.closed
    # Answered and not yet ended or transferred: still open.
    open_call, _ = replay([((s.t, i, s.id), s) for i, s in enumerate(steps[:2])], RULES)
    assert isinstance(open_call, Walk) and not open_call.closed


def test_reopen_to_snoozed_counts_and_bot_messages_count_in_either_direction() -> None:
    t = Timeline("rs").created(0).customer(0).agent(10).status(20, "resolved").status(30, "snoozed")
    t.add("message.created", 40, direction="inbound", author="bot")
    t.bot(50)
    got = totals(facts(t.events))
    assert got["conversations_reopened"] == (1, 1.0)
    assert got["messages_bot"] == (2, 2.0)
