"""shared.sla.deadlines: hand-worked conversations under calendar- and business-time policies."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.sla.calendar import Calendar
from shared.sla.deadlines import ClockResult, History, Outcome, Turn, evaluate
from shared.sla.policy import Policy
from tests.shared.sla.support import ALL_DAYS, LUNCH, PARIS, calendar, local, utc

OFFICE = calendar(PARIS, periods=LUNCH, holidays=["2026-04-06"], name="office")
DAILY = calendar(PARIS, ALL_DAYS, name="daily")
CALENDARS: dict[str, Calendar] = {"office": OFFICE, "daily": DAILY}


def policy(**fields: Any) -> Policy:
    base = {"tenant": "acme", "name": "p", "version": 3, "effective_from": "2026-01-01T00:00:00Z"}
    return Policy.model_validate(base | fields)


CHAT = policy(first_response={"seconds": 300}, next_reply={"seconds": 900}, resolution={"seconds": 8 * 3600})


def business(seconds: float, name: str = "office") -> dict[str, Any]:
    return {"seconds": seconds, "clock": "business", "calendar": name}


def at(minute: float) -> datetime:
    """Monday 2026-01-12 10:00Z plus ``minute`` minutes."""
    return utc(2026, 1, 12, 10) + timedelta(minutes=minute)


def first(history: History, now: datetime, p: Policy = CHAT) -> ClockResult:
    result = evaluate(history, p, CALENDARS, now).first_response
    assert result is not None
    return result


def test_first_response_met_in_calendar_time() -> None:
    r = first(History(created_at=at(0), first_reply_at=at(4)), now=at(60))
    assert (r.outcome, r.deadline, r.at_risk_at, r.stopped_at) == (Outcome.MET, at(5), at(4), at(4))
    assert r.elapsed_seconds == 240
    assert r.breached_at is None
    # A reply exactly at the deadline is in time.
    assert first(History(created_at=at(0), first_reply_at=at(5)), now=at(60)).outcome is Outcome.MET


def test_breach_with_no_reply_at_all() -> None:
    history = History(created_at=at(0))
    running = first(history, now=at(3))
    assert (running.outcome, running.deadline, running.stopped_at) == (Outcome.RUNNING, at(5), None)
    assert not running.at_risk(at(3)) and running.at_risk(at(4))
    assert evaluate(history, CHAT, CALENDARS, at(3)).next_due(at(3)) == at(4)
    assert evaluate(history, CHAT, CALENDARS, at(4.5)).next_due(at(4.5)) == at(5)
    assert first(history, now=at(5)).outcome is Outcome.RUNNING  # a reply could still come at 10:05
    late = first(history, now=at(30))
    assert (late.outcome, late.breached_at, late.elapsed_seconds) == (Outcome.BREACHED, at(5), 1800)
    # Noticed later, still the same breach at the same instant.
    assert first(history, now=at(600)).breached_at == at(5)


def test_late_reply_breaches_at_the_deadline() -> None:
    r = first(History(created_at=at(0), first_reply_at=at(12)), now=at(12))
    assert (r.outcome, r.breached_at, r.stopped_at) == (Outcome.BREACHED, at(5), at(12))


def test_resolved_without_a_reply() -> None:
    before = first(History(created_at=at(0), resolved_at=at(2)), now=at(60))
    assert (before.outcome, before.stopped_at) == (Outcome.CANCELLED, at(2))
    after = first(History(created_at=at(0), statuses=((at(9), "resolved"),)), now=at(60))
    assert (after.outcome, after.breached_at) == (Outcome.BREACHED, at(5))


def test_bot_handoff_starts_the_first_response_clock() -> None:
    r = first(History(created_at=at(0), first_response_from=at(30), first_reply_at=at(33)), now=at(40))
    assert (r.outcome, r.started_at, r.deadline) == (Outcome.MET, at(30), at(35))


def test_business_time_rolls_from_friday_to_monday() -> None:
    email = policy(first_response=business(4 * 3600))
    friday_16 = local(PARIS, 2026, 1, 16, 16)
    r = first(History(created_at=friday_16), now=local(PARIS, 2026, 1, 17, 12), p=email)
    # Friday 16:00-18:00, Monday 09:00-11:00; at risk after 3.2 h: Monday 10:12.
    assert (r.outcome, r.deadline) == (Outcome.RUNNING, local(PARIS, 2026, 1, 19, 11))
    assert r.at_risk_at == local(PARIS, 2026, 1, 19, 10, 12)
    assert r.elapsed_seconds == 2 * 3600  # Saturday noon: only Friday's two hours have run


def test_business_time_skips_lunch_and_a_monday_holiday() -> None:
    p = policy(first_response=business(2 * 3600))
    lunch = first(History(created_at=local(PARIS, 2026, 1, 12, 11)), now=local(PARIS, 2026, 1, 12, 11), p=p)
    assert lunch.deadline == local(PARIS, 2026, 1, 12, 14)
    easter = first(History(created_at=local(PARIS, 2026, 4, 3, 17)), now=local(PARIS, 2026, 4, 3, 17), p=p)
    assert easter.deadline == local(PARIS, 2026, 4, 7, 10)


def test_dst_business_versus_calendar_time() -> None:
    saturday_17 = local(PARIS, 2026, 3, 28, 17)
    # Business: Saturday 17-18, Sunday (23-hour day) from 09:00 CEST: 10:00 CEST = 08:00Z.
    biz = first(
        History(created_at=saturday_17), now=saturday_17, p=policy(first_response=business(7200, "daily"))
    )
    assert biz.deadline == utc(2026, 3, 29, 8) == local(PARIS, 2026, 3, 29, 10)
    # Calendar: 24 real hours, although the wall clock shows 25 hours later.
    cal = first(
        History(created_at=saturday_17), now=saturday_17, p=policy(first_response={"seconds": 86_400})
    )
    assert cal.deadline == local(PARIS, 2026, 3, 29, 18)


def test_pauses_push_the_deadline_and_while_paused_it_is_undefined() -> None:
    statuses = ((at(0), "open"), (at(2), "pending"), (at(30), "open"))
    r = first(History(created_at=at(0), first_reply_at=at(32), statuses=statuses), now=at(40))
    # 2 minutes ran, paused 28, resumed at 10:30: 3 minutes left -> 10:33.
    assert (r.outcome, r.deadline, r.elapsed_seconds) == (Outcome.MET, at(33), 240)
    paused = evaluate(History(created_at=at(0), statuses=statuses[:2]), CHAT, CALENDARS, at(10))
    assert paused.first_response is not None
    assert (paused.first_response.outcome, paused.first_response.deadline) == (Outcome.PAUSED, None)
    assert paused.first_response.at_risk_at is None  # 4 minutes at risk: not reached before the pause
    assert paused.next_due(at(10)) is None
    # Replying while paused stops the clock: the pause ends with it.
    replied = first(History(created_at=at(0), first_reply_at=at(10), statuses=statuses[:2]), now=at(20))
    assert (replied.outcome, replied.deadline, replied.elapsed_seconds) == (Outcome.MET, at(13), 120)


def test_a_policy_chooses_its_pausing_statuses() -> None:
    statuses = ((at(1), "snoozed"), (at(20), "open"))
    only_pending = policy(first_response={"seconds": 300}, pausing_statuses=["pending"])
    assert first(History(created_at=at(0), statuses=statuses), at(30), only_pending).breached_at == at(5)
    assert first(History(created_at=at(0), statuses=statuses), at(30)).deadline == at(24)


def test_next_reply_breaches_once_per_turn() -> None:
    # Three turns: answered in time, answered late (10:47 for a 10:45 deadline), never answered.
    history = History(
        created_at=at(0),
        first_reply_at=at(2),
        turns=(Turn(at(10), at(20)), Turn(at(30), at(47)), Turn(at(50), None)),
    )
    replies_only = policy(next_reply={"seconds": 900})
    for now in (at(120), at(600), at(6000)):
        result = evaluate(history, replies_only, CALENDARS, now)
        turns = result.next_replies
        assert [t.outcome for t in turns] == [Outcome.MET, Outcome.BREACHED, Outcome.BREACHED]
        assert [t.turn for t in turns] == [0, 1, 2]
        assert [t.breached_at for t in turns] == [None, at(45), at(65)]
        assert [(b.kind, b.turn) for b in result.breaches()] == [("next_reply", 1), ("next_reply", 2)]
    assert evaluate(history, replies_only, CALENDARS, at(60)).next_replies[2].outcome is Outcome.RUNNING


def test_next_reply_turn_cancelled_by_resolution() -> None:
    history = History(created_at=at(0), first_reply_at=at(2), turns=(Turn(at(10)),), resolved_at=at(12))
    result = evaluate(history, CHAT, CALENDARS, at(100))
    assert [t.outcome for t in result.next_replies] == [Outcome.CANCELLED]
    assert result.resolution is not None
    assert (result.resolution.outcome, result.resolution.stopped_at) == (Outcome.MET, at(12))


def test_resolution_in_business_time_pauses_while_pending() -> None:
    p = policy(resolution=business(8 * 3600))
    created = local(PARIS, 2026, 1, 12, 9)
    statuses = ((local(PARIS, 2026, 1, 12, 10), "pending"), (local(PARIS, 2026, 1, 13, 9), "open"))
    history = History(created_at=created, statuses=statuses, resolved_at=local(PARIS, 2026, 1, 13, 17))
    result = evaluate(history, p, CALENDARS, local(PARIS, 2026, 1, 14))
    assert result.first_response is None and result.next_replies == ()
    r = result.resolution
    assert r is not None
    # Monday 09-10 (1 h), paused until Tuesday 09:00, then 7 h with lunch: Tuesday 17:00.
    assert (r.outcome, r.deadline, r.elapsed_seconds) == (
        Outcome.MET,
        local(PARIS, 2026, 1, 13, 17),
        8 * 3600,
    )


def test_evaluation_names_the_policy_version_and_refuses_unknown_calendars() -> None:
    result = evaluate(History(created_at=at(0)), CHAT, CALENDARS, at(1))
    assert (result.policy, result.version) == ("p", 3)
    assert [c.kind for c in result.clocks()] == ["first_response", "resolution"]
    with pytest.raises(ValueError, match="acme/p v3 names unknown calendar 'night'"):
        evaluate(History(created_at=at(0)), policy(first_response=business(60, "night")), CALENDARS, at(1))


statuses_strategy = st.lists(
    st.tuples(st.integers(0, 600), st.sampled_from(["open", "pending", "snoozed", "resolved"])), max_size=6
)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 600),
    st.none() | st.integers(0, 900),
    statuses_strategy,
    st.lists(st.tuples(st.integers(0, 900), st.none() | st.integers(0, 300)), max_size=3),
    st.integers(0, 3000),
    st.integers(0, 3000),
    st.sampled_from([CHAT, policy(first_response=business(1800), next_reply=business(600, "daily"))]),
)
def test_outcomes_only_move_forward_and_breach_instants_never_move(
    created: int,
    reply: int | None,
    statuses: list[tuple[int, str]],
    turns: list[tuple[int, int | None]],
    later: int,
    much_later: int,
    p: Policy,
) -> None:
    history = History(
        created_at=at(created),
        first_reply_at=None if reply is None else at(created + reply),
        turns=tuple(Turn(at(a), None if b is None else at(a + b)) for a, b in turns),
        statuses=tuple((at(m), s) for m, s in statuses),
    )
    last_event = max([created + (reply or 0), *(m for m, _ in statuses), *(a + (b or 0) for a, b in turns)])
    first_now, second_now = at(last_event + later), at(last_event + later + much_later)
    before = evaluate(history, p, CALENDARS, first_now).clocks()
    after = evaluate(history, p, CALENDARS, second_now).clocks()
    assert len(before) == len(after)
    for b, a in zip(before, after, strict=True):
        if b.outcome is Outcome.RUNNING:
            assert a.outcome in (Outcome.RUNNING, Outcome.BREACHED)
            assert a.deadline == b.deadline
        elif b.stopped_at is None:
            # Still waiting (breached or paused): only the elapsed clock time may grow.
            assert replace(a, elapsed_seconds=b.elapsed_seconds) == b
            assert a.elapsed_seconds >= b.elapsed_seconds
        else:
            assert a == b
        if b.breached_at is not None:
            assert a.breached_at == b.breached_at
        if a.outcome is Outcome.MET:
            assert a.stopped_at is not None and a.deadline is not None and a.stopped_at <= a.deadline
        if a.outcome is Outcome.BREACHED:
            assert a.deadline is not None and a.deadline < (a.stopped_at or second_now)
