"""SLA verdicts of the aggregator on hand-worked timelines (pure: no Kafka, no Postgres).

Times are worked out by hand in the comments; T0 is Friday 2026-11-20 10:00 UTC (11:00 in
Paris, UTC+1 in November).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from services.aggregator.conversation import Changes, Conversation, apply, tick
from services.aggregator.sla import SlaBook
from services.aggregator.walk import Fact
from shared.sla.calendar import Calendar
from shared.sla.policy import Policy, SlaConfig, Target
from tests.aggregator.helpers import RULES, facts, to_step, totals
from tests.factories import T0, Timeline

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OFFICE = Calendar.model_validate(
    {
        "name": "paris-office",
        "timezone": "Europe/Paris",
        "week": {d: ["09:00-12:30", "13:30-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
        "holidays": ["2026-12-25"],
    }
)
NIGHT = Calendar.model_validate(
    {"name": "night-shift", "timezone": "Europe/Paris", "week": {"sun": ["00:00-06:00"]}}
)


def policy(name: str = "p", version: int = 1, **kw: Any) -> Policy:
    kw.setdefault("effective_from", EPOCH)
    kw.setdefault("pausing_statuses", ())
    return Policy(tenant="t1", name=name, version=version, **kw)


def book(*policies: Policy) -> SlaBook:
    return SlaBook({"t1": SlaConfig(calendars=(OFFICE, NIGHT), policies=policies)})


def business(seconds: float, calendar: str = "paris-office") -> Target:
    return Target(seconds=seconds, clock="business", calendar=calendar)


def minutes_of(got: Counter[Fact], measure: str) -> list[datetime]:
    return sorted(
        datetime.fromtimestamp(f.minute, UTC)
        for f, n in got.items()
        if f.measure == measure
        for _ in range(n)
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def at(when: datetime, conversation: str, channel: str = "email") -> Timeline:
    return Timeline(conversation, channel=channel, start=when)


# business time ----------------------------------------------------------------------------


def test_business_time_deadline_over_the_weekend() -> None:
    # Friday 17:00 Paris (16:00Z) + 2 business hours: 1 h on Friday, 1 h from Monday 09:00
    # → Monday 2026-11-23 10:00 Paris = 09:00Z. In calendar time it would be Friday 18:00Z.
    sla = book(policy(first_response=business(7200)))
    t = at(utc(2026, 11, 20, 16), "weekend").created(0).customer(0)
    got = facts(t.events, now=utc(2026, 11, 30).timestamp(), book=sla)
    assert minutes_of(got, "sla_first_response_breaches") == [utc(2026, 11, 23, 9)]
    calendar = book(policy(first_response=Target(seconds=7200)))
    got = facts(t.events, now=utc(2026, 11, 30).timestamp(), book=calendar)
    assert minutes_of(got, "sla_first_response_breaches") == [utc(2026, 11, 20, 18)]


def test_business_time_skips_the_lunch_break() -> None:
    # Monday 11:30 Paris + 2 h: 1 h until 12:30, lunch, 1 h from 13:30 → 14:30 Paris = 13:30Z.
    # A reply at 14:29 Paris is in time; one at 14:31 is late.
    sla = book(policy(first_response=business(7200)))
    start = utc(2026, 11, 23, 10, 30)
    on_time = at(start, "lunch-ok").created(0).customer(0).agent(3 * 3600 - 60)
    late = at(start, "lunch-late").created(0).customer(0).agent(3 * 3600 + 60)
    got = facts(on_time.events + late.events, now=utc(2026, 12, 1).timestamp(), book=sla)
    assert totals(got)["sla_first_response_met"] == (1, 1.0)
    assert minutes_of(got, "sla_first_response_breaches") == [utc(2026, 11, 23, 13, 30)]


def test_business_time_skips_a_holiday() -> None:
    # Thursday 2026-12-24 17:00 Paris + 2 h: 1 h Thursday, Friday the 25th a holiday, the
    # weekend, 1 h Monday → Monday 2026-12-28 10:00 Paris = 09:00Z.
    sla = book(policy(first_response=business(7200)))
    t = at(utc(2026, 12, 24, 16), "xmas").created(0).customer(0)
    got = facts(t.events, now=utc(2027, 1, 5).timestamp(), book=sla)
    assert minutes_of(got, "sla_first_response_breaches") == [utc(2026, 12, 28, 9)]


def test_business_time_across_the_spring_forward_night() -> None:
    # Sunday 2026-03-29, Paris springs forward at 02:00 CET → 03:00 CEST. The night shift is
    # open 00:00–06:00 wall time: 23:00Z to 04:00Z, 5 real hours. Created at 00:00 CET
    # (23:00Z) with 4 business hours → 03:00Z (05:00 CEST), not 04:00Z.
    sla = book(policy(first_response=business(4 * 3600, "night-shift")))
    t = at(utc(2026, 3, 28, 23), "dst", channel="chat").created(0).customer(0)
    got = facts(t.events, now=utc(2026, 4, 10).timestamp(), book=sla)
    assert minutes_of(got, "sla_first_response_breaches") == [utc(2026, 3, 29, 3)]


# pauses, turns, resolution, at risk ----------------------------------------------------


def test_pending_pauses_the_clock_when_the_policy_says_so() -> None:
    # 300 s target; pending from 60 s to 600 s: 60 s ran, 540 s paused, 240 s remain → 840 s.
    t = Timeline("paused").created(0).customer(0).status(60, "pending").status(600, "open")
    pausing = book(policy(first_response=Target(seconds=300), pausing_statuses=("pending",)))
    got = facts(t.events, book=pausing)
    assert minutes_of(got, "sla_first_response_breaches") == [T0 + timedelta(seconds=840 - 840 % 60)]
    # Without pausing statuses the deadline is 300 s after creation.
    plain = book(policy(first_response=Target(seconds=300)))
    assert minutes_of(facts(t.events, book=plain), "sla_first_response_breaches") == [
        T0 + timedelta(seconds=300)
    ]


def test_a_paused_clock_has_no_timer_and_breaches_only_after_it_runs_again() -> None:
    sla = book(policy(first_response=Target(seconds=300), pausing_statuses=("pending",)))
    conv = Conversation(tenant="t1", conversation_id="p2", partition=0)
    changes = Changes()
    for event in Timeline("p2").created(0).customer(0).status(100, "pending").events:
        apply(conv, to_step(event), RULES, changes)
    tick(conv, (T0 + timedelta(days=3)).timestamp(), sla, changes, None)
    assert conv.sla.clocks[0].outcome == "paused"
    assert conv.sla.due is None  # only a status change can start it again
    assert not [f for f in changes.added if f.measure == "sla_first_response_breaches"]


def test_next_reply_breaches_once_per_customer_turn() -> None:
    # 900 s next-reply target. Turn 1 asked at 600 (more messages at 700 and 1000 are the same
    # turn), answered at 1600: breached at 1500. Turn 2 asked 1700, answered 1800: met.
    # Turn 3 asked 2000, never answered: breached at 2900.
    t = (
        Timeline("turns")
        .created(0)
        .customer(0)
        .agent(60)
        .customer(600)
        .customer(700)
        .customer(1000)
        .agent(1600, agent="bob")
        .customer(1700)
        .agent(1800, agent="carol")
        .customer(2000)
    )
    sla = book(policy(next_reply=Target(seconds=900)))
    got = facts(t.events, book=sla)
    assert minutes_of(got, "sla_next_reply_breaches") == [
        T0 + timedelta(seconds=1500),
        T0 + timedelta(seconds=2880),  # 2900 s is in the minute starting at 2880 s
    ]
    assert totals(got)["sla_next_reply_met"] == (1, 1.0)
    # The met turn is credited to the agent who replied.
    assert [f.agent for f in got if f.measure == "sla_next_reply_met"] == ["carol"]
    assert "sla_first_response_breaches" not in totals(got)  # no first-response target


def test_resolution_target_met_and_breached() -> None:
    sla = book(policy(resolution=Target(seconds=3600)))
    fast = Timeline("fast").created(0).customer(0).agent(60).status(1800, "resolved")
    slow = Timeline("slow").created(0).customer(0).agent(60).status(4000, "resolved")
    never = Timeline("never").created(0).customer(0)
    got = facts(fast.events + slow.events + never.events, book=sla)
    assert totals(got)["sla_resolution_met"] == (1, 1.0)
    assert minutes_of(got, "sla_resolution_breaches") == [T0 + timedelta(seconds=3600)] * 2


def test_at_risk_is_recorded_when_the_share_passes_while_the_clock_runs() -> None:
    # 600 s target, at risk after half of it (300 s).
    sla = book(policy(first_response=Target(seconds=600), at_risk_share=0.5))
    early = Timeline("early").created(0).customer(0).agent(200)
    risky = Timeline("risky").created(0).customer(0).agent(400)
    exact = Timeline("exact").created(0).customer(0).agent(300)  # a reply at the instant is in time
    got = facts(early.events + risky.events + exact.events, book=sla)
    assert totals(got)["sla_first_response_met"] == (3, 3.0)
    assert minutes_of(got, "sla_at_risk") == [T0 + timedelta(seconds=300)]
    # Before the at-risk instant nothing is at risk yet; the timer is due at 300 s.
    waiting = Timeline("waiting").created(0).customer(0)
    assert "sla_at_risk" not in totals(
        facts(waiting.events, now=(T0 + timedelta(seconds=299)).timestamp(), book=sla)
    )


# policies ---------------------------------------------------------------------------


def test_first_matching_policy_wins_and_versions_apply_from_their_effective_time() -> None:
    vip = policy("vip", labels=("vip",), first_response=Target(seconds=60))
    vip_v2 = policy(
        "vip", 2, labels=("vip",), first_response=Target(seconds=300), effective_from=T0 + timedelta(hours=1)
    )
    urgent = policy("urgent", priorities=("urgent",), first_response=Target(seconds=30))
    fallback = policy("default", first_response=Target(seconds=600))
    sla = book(vip, vip_v2, urgent, fallback)
    # Created before v2: judged by v1 (60 s) → a reply at 120 s breaches.
    old_vip = Timeline("old-vip").created(0, labels=["vip"]).customer(0).agent(120)
    # Created after v2 took effect: 300 s → met.
    new_vip = (
        Timeline("new-vip", start=T0 + timedelta(hours=2)).created(0, labels=["vip"]).customer(0).agent(120)
    )
    # Urgent priority: 30 s.
    urgent_conv = Timeline("urgent").created(0, priority="urgent").customer(0).agent(45)
    # Nothing special: the default, 600 s.
    plain = Timeline("plain").created(0).customer(0).agent(500)
    got = facts(old_vip.events + new_vip.events + urgent_conv.events + plain.events, book=sla)
    assert totals(got)["sla_first_response_breaches"] == (2, 2.0)
    assert totals(got)["sla_first_response_met"] == (2, 2.0)
    breached = {f.labels for f in got if f.measure == "sla_first_response_breaches"}
    assert breached == {("vip",), ()}


def test_a_label_added_later_rejudges_the_conversation() -> None:
    sla = book(
        policy("vip", labels=("vip",), first_response=Target(seconds=60)),
        policy("default", first_response=Target(seconds=600)),
    )
    t = Timeline("relabel").created(0).customer(0).agent(120)
    assert totals(facts(t.events, book=sla))["sla_first_response_met"] == (1, 1.0)
    t.add("conversation.labels_changed", 130, labels=["vip"])
    got = totals(facts(t.events, book=sla))
    assert "sla_first_response_met" not in got
    assert got["sla_first_response_breaches"] == (1, 1.0)


def test_a_tenant_without_policies_keeps_the_default_first_response_targets() -> None:
    other = SlaBook({"someone-else": SlaConfig(policies=(policy(first_response=Target(seconds=1)),))},
                    default_targets=RULES.first_response_targets)  # fmt: skip
    t = Timeline("defaults").created(0).customer(0).agent(301)  # chat: 300 s
    assert totals(facts(t.events, book=other))["sla_first_response_breaches"] == (1, 1.0)
    phone_less = Timeline("sms", channel="sms").created(0).customer(0)  # no default for sms
    assert "sla_first_response_breaches" not in totals(facts(phone_less.events, book=other))


def test_a_breach_stays_with_the_agent_who_held_the_conversation() -> None:
    sla = book(policy(first_response=Target(seconds=300)))
    t = Timeline("reassigned").created(0, agent="alice").customer(0)
    conv = Conversation(tenant="t1", conversation_id="reassigned", partition=0)
    changes = Changes()
    for event in t.events:
        apply(conv, to_step(event), RULES, changes)
    tick(conv, (T0 + timedelta(seconds=400)).timestamp(), sla, changes, [])
    (breach,) = [f for f in changes.added if f.measure == "sla_first_response_breaches"]
    assert breach.agent == "alice"
    changes = Changes()
    t.add("conversation.assigned", 500, agent="bob")
    apply(conv, to_step(t.events[-1]), RULES, changes)
    tick(conv, (T0 + timedelta(seconds=600)).timestamp(), sla, changes, [])
    assert not changes.retracted and not changes.added


def test_a_bot_held_conversation_has_no_first_response_clock_until_handoff() -> None:
    sla = book(policy(first_response=Target(seconds=300)))
    bot_only = Timeline("bot").created(0, status="pending").customer(0).bot(5).status(900, "resolved")
    handed = (
        Timeline("handoff").created(0, status="pending").customer(0).bot(5).status(900, "open").agent(1300)
    )
    got = facts(bot_only.events + handed.events, book=sla)
    # Handoff at 900 s: the 300 s clock runs from there, so the reply at 1300 s is 100 s late.
    assert minutes_of(got, "sla_first_response_breaches") == [T0 + timedelta(seconds=1200)]


def test_transitions_for_the_breach_topic_have_stable_ids() -> None:
    sla = book(policy(first_response=Target(seconds=300)))
    t = Timeline("topic").created(0, team="support").customer(0)
    conv = Conversation(tenant="t1", conversation_id="topic", partition=0)
    changes = Changes()
    outbox: list[Any] = []
    for event in t.events:
        apply(conv, to_step(event), RULES, changes)
    tick(conv, (T0 + timedelta(seconds=250)).timestamp(), sla, changes, outbox)
    tick(conv, (T0 + timedelta(seconds=400)).timestamp(), sla, changes, outbox)
    tick(conv, (T0 + timedelta(seconds=500)).timestamp(), sla, changes, outbox)  # nothing new
    messages = [msgspec.json.decode(m.payload) for m in outbox]
    assert [m["type"] for m in messages] == ["sla.at_risk", "sla.breached"]
    assert {m["conversation_id"] for m in messages} == {"topic"}
    assert messages[1]["at"] == "2026-11-20T10:05:00Z"
    assert messages[1]["team"] == "support"
    assert outbox[0].key == b"t1\x1ftopic"
    # Judging the same history again from scratch gives the same ids (consumers dedupe on them).
    again: list[Any] = []
    fresh = Conversation(tenant="t1", conversation_id="topic", partition=0)
    for event in t.events:
        apply(fresh, to_step(event), RULES, Changes())
    tick(fresh, (T0 + timedelta(seconds=400)).timestamp(), sla, Changes(), again)
    assert [msgspec.json.decode(m.payload)["id"] for m in again] == [m["id"] for m in messages]


def test_conversations_created_before_the_first_policy_keep_the_defaults() -> None:
    first = T0 + timedelta(hours=1)
    sla = SlaBook(
        {
            "t1": SlaConfig(
                policies=(policy("strict", first_response=Target(seconds=10), effective_from=first),)
            )
        },
        default_targets=RULES.first_response_targets,
    )
    before = Timeline("before").created(0).customer(0).agent(200)  # chat default 300 s: met
    after = Timeline("after", start=first).created(0).customer(0).agent(200)  # strict 10 s: breached
    got = facts(before.events + after.events, book=sla)
    assert totals(got)["sla_first_response_met"] == (1, 1.0)
    assert totals(got)["sla_first_response_breaches"] == (1, 1.0)


def test_the_breach_topic_example_in_the_docs_is_a_real_message() -> None:
    import re
    from pathlib import Path

    from services.aggregator.sla import _Transition

    text = (Path(__file__).resolve().parents[2] / "docs" / "sla.md").read_text(encoding="utf-8")
    example = re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)[2]
    message = msgspec.json.decode(example.encode(), type=_Transition)
    assert message.type == "sla.breached"
    # Every field a message carries is shown.
    assert set(msgspec.json.decode(example.encode())) == set(_Transition.__struct_fields__)
