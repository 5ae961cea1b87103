"""shared.sla.clock: pauses from status changes, clock time and deadlines that skip pauses."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.sla.calendar import ALWAYS, Calendar
from shared.sla.clock import Pause, clock_seconds, deadline_with_pauses, paused_intervals
from tests.shared.sla.support import LUNCH, PARIS, calendar, local, utc

MIN = 60.0


def at(minute: int) -> datetime:
    """Monday 2026-01-12 10:00Z plus ``minute`` minutes."""
    return utc(2026, 1, 12, 10) + timedelta(minutes=minute)


def test_paused_intervals_from_status_changes() -> None:
    changes = [
        (at(0), "open"),
        (at(5), "pending"),
        (at(8), "snoozed"),  # still paused: one span
        (at(20), "open"),
        (at(25), "open"),
        (at(30), "pending"),
    ]
    assert paused_intervals(changes) == [(at(5), at(20)), (at(30), None)]
    assert paused_intervals(changes, {"snoozed"}) == [(at(8), at(20))]
    assert paused_intervals(sorted(changes, key=lambda c: c[1])) == [(at(5), at(20)), (at(30), None)]
    assert paused_intervals([(at(30), "open"), (at(5), "pending")]) == [(at(5), at(30))]
    assert paused_intervals(changes, ()) == []


def test_clock_seconds_excludes_pauses_in_calendar_time() -> None:
    assert clock_seconds(ALWAYS, at(0), at(60), [(at(10), at(40))]) == 30 * MIN
    # A pause still going on counts until now; pauses overlapping or before the start are clipped.
    assert clock_seconds(ALWAYS, at(0), at(60), [(at(10), at(40)), (at(50), None)]) == 20 * MIN
    assert (
        clock_seconds(ALWAYS, at(0), at(60), [(at(-30), at(5)), (at(10), at(30)), (at(20), at(40))])
        == 25 * MIN
    )
    assert clock_seconds(ALWAYS, at(0), at(60), []) == 60 * MIN
    assert clock_seconds(ALWAYS, at(0), at(60), [(at(70), None)]) == 60 * MIN


def test_deadline_skips_closed_pauses() -> None:
    assert deadline_with_pauses(ALWAYS, at(0), 30 * MIN, [(at(10), at(40))]) == at(60)
    assert deadline_with_pauses(ALWAYS, at(0), 30 * MIN, [(at(40), at(50))]) == at(30)
    assert deadline_with_pauses(ALWAYS, at(0), 30 * MIN, [(at(-10), at(10))]) == at(40)
    assert deadline_with_pauses(ALWAYS, at(0), 30 * MIN, []) == at(30)


def test_deadline_is_undefined_while_paused() -> None:
    assert deadline_with_pauses(ALWAYS, at(0), 30 * MIN, [(at(20), None)]) is None
    assert deadline_with_pauses(ALWAYS, at(0), 30 * MIN, [(at(5), at(10)), (at(30), None)]) is None
    # The budget ran out before the pause began: the deadline stands (and has passed).
    assert deadline_with_pauses(ALWAYS, at(0), 30 * MIN, [(at(40), None)]) == at(30)
    assert deadline_with_pauses(ALWAYS, at(0), 30 * MIN, [(at(30), None)]) == at(30)


def test_pauses_in_business_time_with_a_lunch_break() -> None:
    c = calendar(PARIS, periods=LUNCH)
    start = local(PARIS, 2026, 1, 12, 11)
    pause: list[Pause] = [(local(PARIS, 2026, 1, 12, 11, 30), local(PARIS, 2026, 1, 12, 14))]
    # 11:00-11:30 runs (0.5 h), paused until 14:00, then 1.5 h more: 15:30.
    assert deadline_with_pauses(c, start, 2 * 3600, pause) == local(PARIS, 2026, 1, 12, 15, 30)
    assert clock_seconds(c, start, local(PARIS, 2026, 1, 12, 16), pause) == 2.5 * 3600
    # Paused over a weekend changes nothing a weekend did not already stop.
    friday = local(PARIS, 2026, 1, 16, 17)
    weekend: list[Pause] = [(local(PARIS, 2026, 1, 16, 19), local(PARIS, 2026, 1, 19, 8))]
    assert deadline_with_pauses(c, friday, 2 * 3600, weekend) == local(PARIS, 2026, 1, 19, 10)


def test_negative_target_is_refused() -> None:
    with pytest.raises(ValueError, match="≥ 0"):
        deadline_with_pauses(ALWAYS, at(0), -1, [])


pause_lists = st.lists(
    st.tuples(st.integers(-60, 3000), st.integers(1, 600)).map(lambda p: (at(p[0]), at(p[0] + p[1]))),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([ALWAYS, calendar(PARIS, periods=LUNCH)]), pause_lists, st.integers(1, 4000))
def test_clock_reaches_the_target_at_its_deadline(c: Calendar, pauses: list[Pause], minutes: int) -> None:
    target = minutes * MIN
    deadline = deadline_with_pauses(c, at(0), target, pauses)
    assert deadline is not None
    assert clock_seconds(c, at(0), deadline, pauses) == pytest.approx(target, abs=1e-6)
    assert clock_seconds(c, at(0), deadline - timedelta(microseconds=1), pauses) < target
    # Open-ended from some point: the deadline is unchanged if it came first, else undefined.
    cut = at(minutes // 2)
    clipped = [(a, b) for a, b in pauses if a < cut]
    still = deadline_with_pauses(c, at(0), target, [*clipped, (cut, None)])
    assert still == (deadline if deadline <= cut else None)
