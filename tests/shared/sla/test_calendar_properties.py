"""shared.sla.calendar: invariants on random calendars in zones with odd transitions.

The oracle is deliberately naive: it converts each minute to wall-clock time with
``astimezone`` and looks the period up, which is the DST rule stated in docs/sla.md.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.sla.calendar import (
    ALWAYS,
    WEEKDAYS,
    Calendar,
    add_business_seconds,
    business_seconds_between,
    is_open,
    next_opening,
)
from tests.shared.sla.support import ALL_DAYS

ONE_US = timedelta(microseconds=1)
# DST at 02:00 (Paris, New York), at midnight (Havana, Santiago), 30-minute DST (Lord Howe),
# Ramadan suspensions (Casablanca), +13:45/+12:45 (Chatham), none (Kolkata, UTC).
ZONES = (
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "America/Havana",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Africa/Casablanca",
    "Pacific/Chatham",
    "Asia/Kolkata",
)
ANY_ZONE = st.sampled_from(ZONES)
START = datetime(2025, 1, 1, tzinfo=UTC)
SPAN_MINUTES = 4 * 366 * 24 * 60


@st.composite
def day_periods(draw: st.DrawFn) -> list[str]:
    # Boundaries on quarter hours, so periods start and end inside 30-minute and 60-minute gaps.
    cuts = sorted(draw(st.sets(st.integers(0, 96), max_size=6)))
    if len(cuts) % 2:
        cuts = cuts[:-1]
    return [f"{_clock(a)}-{_clock(b)}" for a, b in zip(cuts[::2], cuts[1::2], strict=True)]


def _clock(quarter: int) -> str:
    return f"{quarter // 4:02d}:{quarter % 4 * 15:02d}"


@st.composite
def calendars(draw: st.DrawFn, zones: st.SearchStrategy[str] = ANY_ZONE) -> Calendar:
    week = {day: draw(day_periods()) for day in ALL_DAYS}
    if not any(week.values()):
        week["mon"] = ["09:00-17:00"]
    special = draw(st.lists(st.dates(date(2025, 1, 1), date(2028, 12, 31)), max_size=8, unique=True))
    cut = draw(st.integers(0, len(special)))
    return Calendar.model_validate(
        {
            "name": "random",
            "timezone": draw(zones),
            "week": week,
            "holidays": special[:cut],
            "exceptions": {day: draw(day_periods()) for day in special[cut:]},
        }
    )


instants = st.integers(0, SPAN_MINUTES * 60 * 1_000_000).map(lambda us: START + us * ONE_US)
minutes = st.integers(0, SPAN_MINUTES).map(lambda m: START + timedelta(minutes=m))
# Business seconds, absolute or in weeks of the calendar's own open time (so a calendar open
# 15 minutes a week is not asked for 100 days of business time, which would take centuries).
amounts = st.one_of(
    st.tuples(st.just(1.0), st.floats(0, 86_400, allow_nan=False)),
    st.tuples(st.just(1.0), st.integers(0, 40).map(lambda h: h * 3600.0)),
    st.tuples(st.just(0.0), st.floats(0, 60, allow_nan=False)),
)


def seconds_of(c: Calendar, amount: tuple[float, float]) -> float:
    absolute, value = amount
    return value if absolute else value * c.weekly_seconds


def oracle_open(c: Calendar, t: datetime) -> bool:
    wall = t.astimezone(ZoneInfo(c.timezone))
    day = wall.date()
    if day in c.holidays:
        return False
    periods = c.exceptions.get(day, c.week.get(WEEKDAYS[wall.weekday()], ()))
    second = wall.hour * 3600 + wall.minute * 60 + wall.second
    return any(p.start_seconds <= second < p.end_seconds for p in periods)


@settings(max_examples=150, deadline=None)
@given(calendars(), minutes, st.integers(1, 3 * 24 * 60))
def test_matches_the_minute_by_minute_oracle(c: Calendar, a: datetime, length: int) -> None:
    flags = [oracle_open(c, a + timedelta(minutes=i)) for i in range(length)]
    assert business_seconds_between(c, a, a + timedelta(minutes=length)) == 60 * sum(flags)
    for i in range(0, length, 7):
        assert is_open(c, a + timedelta(minutes=i)) == flags[i]


@settings(max_examples=100, deadline=None)
@given(calendars(zones=st.sampled_from(ZONES[1:-1])), st.integers(0, 3), st.integers(-36 * 60, 36 * 60))
def test_matches_the_oracle_around_transitions(c: Calendar, year: int, offset: int) -> None:
    for tr in _transitions(c.timezone, 2025 + year):
        a = tr + timedelta(minutes=offset)
        flags = [oracle_open(c, a + timedelta(minutes=i)) for i in range(24 * 60)]
        assert business_seconds_between(c, a, a + timedelta(days=1)) == 60 * sum(flags)


@functools.cache
def _transitions(zone: str, year: int) -> list[datetime]:
    tz, out = ZoneInfo(zone), []
    t = datetime(year, 1, 1, tzinfo=UTC)
    previous = t.astimezone(tz).utcoffset()
    while t.year == year:
        t += timedelta(hours=1)
        offset = t.astimezone(tz).utcoffset()
        if offset != previous:
            out.append(t)
            previous = offset
    return out


@settings(max_examples=300, deadline=None)
@given(calendars(), instants, amounts)
def test_adding_then_measuring_gives_back_the_amount(
    c: Calendar, a: datetime, amount: tuple[float, float]
) -> None:
    seconds = seconds_of(c, amount)
    deadline = add_business_seconds(c, a, seconds)
    assert deadline >= a
    assert abs(business_seconds_between(c, a, deadline) - seconds) <= 1e-6
    opening = next_opening(c, a)
    assert (
        abs(business_seconds_between(c, opening, add_business_seconds(c, opening, seconds)) - seconds) <= 1e-6
    )
    if seconds >= 1e-6:
        # The deadline is the earliest such instant, and the clock is open just before it.
        assert business_seconds_between(c, a, deadline - ONE_US) < seconds
        assert is_open(c, deadline - ONE_US)


@settings(max_examples=200, deadline=None)
@given(calendars(), instants, instants, instants)
def test_additivity(c: Calendar, a: datetime, b: datetime, d: datetime) -> None:
    a, b, d = sorted((a, b, d))
    whole = business_seconds_between(c, a, d)
    assert abs(business_seconds_between(c, a, b) + business_seconds_between(c, b, d) - whole) <= 1e-6
    assert 0 <= whole <= (d - a).total_seconds()


@settings(max_examples=200, deadline=None)
@given(calendars(), instants, instants, amounts, amounts)
def test_monotonicity(
    c: Calendar, a: datetime, b: datetime, first: tuple[float, float], second: tuple[float, float]
) -> None:
    a, b = sorted((a, b))
    s, u = sorted((seconds_of(c, first), seconds_of(c, second)))
    assert add_business_seconds(c, a, s) <= add_business_seconds(c, a, u)
    assert add_business_seconds(c, a, s) <= add_business_seconds(c, b, s)
    assert business_seconds_between(c, a, b) <= business_seconds_between(c, a, b + timedelta(hours=1))


@settings(max_examples=200, deadline=None)
@given(calendars(), instants)
def test_next_opening(c: Calendar, t: datetime) -> None:
    opening = next_opening(c, t)
    assert is_open(c, opening)
    assert business_seconds_between(c, t, opening) == 0
    assert (opening == t) == is_open(c, t)
    if opening > t:
        assert not is_open(c, opening - ONE_US)


@settings(max_examples=200, deadline=None)
@given(instants, instants, amounts)
def test_always_is_wall_clock_difference_in_utc(
    a: datetime, b: datetime, amount: tuple[float, float]
) -> None:
    seconds = seconds_of(ALWAYS, amount)
    assert business_seconds_between(ALWAYS, a, b) == max((b - a).total_seconds(), 0.0)
    assert add_business_seconds(ALWAYS, a, seconds) == a + timedelta(microseconds=round(seconds * 1e6))
    assert is_open(ALWAYS, a)


@st.composite
def spans_over_a_transition(draw: st.DrawFn) -> tuple[Calendar, datetime, int]:
    c = draw(calendars(zones=st.sampled_from(ZONES[1:-1])))
    transitions = _transitions(c.timezone, draw(st.integers(2025, 2028)))
    days = draw(st.integers(8, 60))
    if not transitions:
        return c, draw(instants), days
    before = draw(st.integers(0, days * 24 * 60))
    return c, draw(st.sampled_from(transitions)) - timedelta(minutes=before), days


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.tuples(calendars(), instants, st.integers(8, 60)), spans_over_a_transition()))
def test_whole_weeks_equal_day_by_day(case: tuple[Calendar, datetime, int]) -> None:
    # Day-long steps never take the weekly fast path, so this checks it against the slow one.
    c, a, days = case
    by_day = sum(
        business_seconds_between(c, a + timedelta(days=i), a + timedelta(days=i + 1)) for i in range(days)
    )
    assert abs(business_seconds_between(c, a, a + timedelta(days=days)) - by_day) <= 1e-6
    seconds = by_day * 0.999
    assert abs(business_seconds_between(c, a, add_business_seconds(c, a, seconds)) - seconds) <= 1e-6
