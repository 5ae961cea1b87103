"""shared.windows: parsing of windows, periods and steps, and the bucket plan."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.windows import (
    DAY,
    GRAIN_DAY,
    GRAIN_DELTA,
    GRAIN_HOUR,
    GRAIN_MINUTE,
    HOUR,
    MINUTE,
    Range,
    WindowError,
    ceil_to,
    floor_to,
    format_duration,
    oldest_retained_minute,
    parse_duration,
    parse_instant,
    parse_period,
    parse_step,
    plan,
    resolve,
)

UTC_ZONE = ZoneInfo("UTC")
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
NOW = datetime(2026, 11, 20, 10, 29, 30, tzinfo=UTC)
BASE = datetime(2026, 1, 1, tzinfo=UTC)

minutes_since_base = st.integers(min_value=0, max_value=60 * 24 * 80)


def at(minutes: int) -> datetime:
    return BASE + minutes * MINUTE


@st.composite
def intervals(draw: st.DrawFn) -> tuple[datetime, datetime]:
    start = draw(minutes_since_base)
    length = draw(st.integers(min_value=1, max_value=60 * 24 * 40))
    return at(start), at(start + length)


def aligned(t: datetime, grain: int) -> bool:
    return floor_to(t, GRAIN_DELTA[grain]) == t


# --- plan -------------------------------------------------------------------------------


def check_cover(ranges: list[Range], start: datetime, end: datetime) -> None:
    assert ranges[0].start == start
    assert ranges[-1].end == end
    for a, b in itertools.pairwise(ranges):
        assert a.end == b.start
        assert a.grain != b.grain  # adjacent ranges of one grain would be one range
    for r in ranges:
        assert r.start < r.end
        assert aligned(r.start, r.grain)
        assert aligned(r.end, r.grain)


@given(intervals())
def test_plan_covers_exactly_and_minimally(interval: tuple[datetime, datetime]) -> None:
    start, end = interval
    ranges, widened = plan(start, end)
    assert not widened
    check_cover(ranges, start, end)
    assert len(ranges) <= 5
    for r in ranges:
        # Minimal: no range of a fine grain could have used a whole coarser bucket.
        if r.grain == GRAIN_MINUTE:
            assert not (ceil_to(r.start, HOUR) < floor_to(r.end, HOUR))
        if r.grain == GRAIN_HOUR:
            assert not (ceil_to(r.start, DAY) < floor_to(r.end, DAY))


@given(intervals(), st.lists(st.tuples(minutes_since_base, st.integers(1, 5)), max_size=40))
def test_plan_sums_like_the_minutes(
    interval: tuple[datetime, datetime], facts: list[tuple[int, int]]
) -> None:
    """Summing the planned rollup buckets equals summing the facts in the interval."""
    start, end = interval
    buckets: Counter[tuple[int, datetime]] = Counter()
    for minute, value in facts:
        t = at(minute)
        for grain, delta in GRAIN_DELTA.items():
            buckets[(grain, floor_to(t, delta))] += value
    ranges, _ = plan(start, end)
    planned = sum(v for (g, b), v in buckets.items() for r in ranges if r.grain == g and r.start <= b < r.end)
    direct = sum(value for minute, value in facts if start <= at(minute) < end)
    assert planned == direct


@given(intervals(), minutes_since_base)
def test_plan_respects_minute_retention(interval: tuple[datetime, datetime], floor_minute: int) -> None:
    start, end = interval
    floor = at(floor_minute)
    ranges, widened = plan(start, end, floor)
    got_start, got_end = ranges[0].start, ranges[-1].end
    check_cover(ranges, got_start, got_end)
    assert got_start <= start
    assert got_end >= end
    assert widened == ((got_start, got_end) != (start, end))
    assert got_start > start - HOUR
    assert got_end < end + HOUR
    for r in ranges:
        if r.grain == GRAIN_MINUTE:
            assert r.start >= floor


def test_plan_of_a_day_window() -> None:
    end = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
    ranges, widened = plan(end - DAY, end)
    assert not widened
    assert ranges == [
        Range(
            GRAIN_MINUTE, datetime(2026, 11, 19, 10, 30, tzinfo=UTC), datetime(2026, 11, 19, 11, tzinfo=UTC)
        ),
        Range(GRAIN_HOUR, datetime(2026, 11, 19, 11, tzinfo=UTC), datetime(2026, 11, 20, 10, tzinfo=UTC)),
        Range(GRAIN_MINUTE, datetime(2026, 11, 20, 10, tzinfo=UTC), end),
    ]


def test_plan_of_a_week_uses_days_and_widens_beyond_retention() -> None:
    end = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
    floor = end - 48 * HOUR
    ranges, widened = plan(end - 7 * DAY, end, floor)
    assert widened
    assert ranges == [
        Range(GRAIN_HOUR, datetime(2026, 11, 13, 10, tzinfo=UTC), datetime(2026, 11, 14, tzinfo=UTC)),
        Range(GRAIN_DAY, datetime(2026, 11, 14, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)),
        Range(GRAIN_HOUR, datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 20, 10, tzinfo=UTC)),
        Range(GRAIN_MINUTE, datetime(2026, 11, 20, 10, tzinfo=UTC), end),
    ]


def test_plan_rejects_unaligned_or_empty() -> None:
    with pytest.raises(ValueError, match="minute-aligned"):
        plan(BASE + timedelta(seconds=1), BASE + HOUR)
    with pytest.raises(ValueError, match="start < end"):
        plan(BASE, BASE)


def test_oldest_retained_minute_rounds_up() -> None:
    assert oldest_retained_minute(NOW, 48 * HOUR) == datetime(2026, 11, 18, 10, 30, tzinfo=UTC)


# --- durations and steps ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("5m", 5 * MINUTE),
        ("15m", 15 * MINUTE),
        ("1h", HOUR),
        ("24h", DAY),
        ("7d", 7 * DAY),
        ("30d", 30 * DAY),
    ],
)
def test_parse_duration(text: str, span: timedelta) -> None:
    assert parse_duration(text) == span


@pytest.mark.parametrize("text", ["", "5", "m", "1w", "0m", "-5m", "1.5h", "5 m", "401d", "1h30m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(WindowError) as info:
        parse_duration(text)
    assert info.value.param == "window"


@given(st.integers(min_value=1, max_value=400 * 24 * 60))
def test_format_duration_round_trips(minutes: int) -> None:
    span = minutes * MINUTE
    assert parse_duration(format_duration(span)) == span


@pytest.mark.parametrize(
    ("text", "grain"),
    [
        ("1m", GRAIN_MINUTE),
        ("5m", GRAIN_MINUTE),
        ("59m", GRAIN_MINUTE),
        ("60m", GRAIN_HOUR),
        ("2h", GRAIN_HOUR),
        ("1d", GRAIN_DAY),
        ("48h", GRAIN_DAY),
        ("7d", GRAIN_DAY),
    ],
)
def test_parse_step_picks_the_grain(text: str, grain: int) -> None:
    assert parse_step(text)[1] == grain


@pytest.mark.parametrize("text", ["90m", "36h", "0m", "x"])
def test_parse_step_rejects(text: str) -> None:
    with pytest.raises(WindowError) as info:
        parse_step(text)
    assert info.value.param == "step"


# --- periods ----------------------------------------------------------------------------


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "zone", "start", "end"),
    [
        ("today", PARIS, utc(2026, 11, 19, 23), utc(2026, 11, 20, 23)),
        ("yesterday", PARIS, utc(2026, 11, 18, 23), utc(2026, 11, 19, 23)),
        ("today", NEW_YORK, utc(2026, 11, 20, 5), utc(2026, 11, 21, 5)),
        ("day:2026-11-20", KOLKATA, utc(2026, 11, 19, 18, 30), utc(2026, 11, 20, 18, 30)),
        # Spring forward: a 23-hour day; fall back: a 25-hour day.
        ("day:2026-03-29", PARIS, utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)),
        ("day:2026-10-25", PARIS, utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)),
        ("day:2026-03-08", NEW_YORK, utc(2026, 3, 8, 5), utc(2026, 3, 9, 4)),
        ("week:2026-W47", PARIS, utc(2026, 11, 15, 23), utc(2026, 11, 22, 23)),
        ("week:2026-W01", UTC_ZONE, utc(2025, 12, 29), utc(2026, 1, 5)),
        ("month:2026-11", PARIS, utc(2026, 10, 31, 23), utc(2026, 11, 30, 23)),
        ("month:2026-12", UTC_ZONE, utc(2026, 12, 1), utc(2027, 1, 1)),
        ("month:2026-03", PARIS, utc(2026, 2, 28, 23), utc(2026, 3, 31, 22)),
    ],
)
def test_parse_period(spec: str, zone: ZoneInfo, start: datetime, end: datetime) -> None:
    assert parse_period(spec, zone, NOW) == (start, end)


@pytest.mark.parametrize(
    "spec",
    [
        "tomorrow",
        "day:2026-02-30",
        "day:20261120",
        "week:2026-W54",
        "week:2026-W00",
        "month:2026-13",
        "month:2026-00",
        "day:",
        "",
    ],
)
def test_parse_period_rejects(spec: str) -> None:
    with pytest.raises(WindowError) as info:
        parse_period(spec, PARIS, NOW)
    assert info.value.param == "period"


@settings(max_examples=200)
@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2035, 12, 31)),
    st.sampled_from(
        [
            "Europe/Paris",
            "America/New_York",
            "Australia/Lord_Howe",
            "Asia/Kolkata",
            "America/Santiago",
            "Pacific/Chatham",
            "UTC",
        ]
    ),
)
def test_periods_are_local_days(day: date, zone_name: str) -> None:
    zone = ZoneInfo(zone_name)
    start, end = parse_period(f"day:{day.isoformat()}", zone, NOW)
    assert timedelta(hours=22) <= end - start <= timedelta(hours=26)
    # The start is the first instant of the local day (00:00, or later when DST skips midnight).
    assert start.astimezone(zone).date() == day
    assert (start - MINUTE).astimezone(zone).date() < day
    assert end.astimezone(zone).date() > day
    week_start, week_end = parse_period(
        f"week:{day.isocalendar().year}-W{day.isocalendar().week:02d}", zone, NOW
    )
    assert week_start <= start < end <= week_end


# --- resolve ----------------------------------------------------------------------------


def test_resolve_relative_window_ends_with_the_current_minute() -> None:
    window = resolve(zone=PARIS, now=NOW, window="1h")
    assert (window.start, window.end, window.approximate) == (
        utc(2026, 11, 20, 9, 30),
        utc(2026, 11, 20, 10, 30),
        False,
    )
    assert window.plan == (Range(GRAIN_MINUTE, utc(2026, 11, 20, 9, 30), utc(2026, 11, 20, 10, 30)),)


def test_resolve_defaults_to_an_hour() -> None:
    assert resolve(zone=PARIS, now=NOW) == resolve(zone=PARIS, now=NOW, window="1h")


def test_resolve_from_to_reads_naive_times_in_the_tenant_zone() -> None:
    window = resolve(zone=PARIS, now=NOW, start="2026-11-20T08:00", end="2026-11-20T09:00:00+01:00")
    assert (window.start, window.end, window.approximate) == (
        utc(2026, 11, 20, 7),
        utc(2026, 11, 20, 8),
        False,
    )


def test_resolve_off_grid_from_to_is_approximate() -> None:
    window = resolve(zone=UTC_ZONE, now=NOW, start="2026-11-20T08:00:30Z", end="2026-11-20T08:10:01Z")
    assert (window.start, window.end, window.approximate) == (
        utc(2026, 11, 20, 8),
        utc(2026, 11, 20, 8, 11),
        True,
    )


def test_resolve_period_today_stops_now() -> None:
    window = resolve(zone=PARIS, now=NOW, period="today")
    assert (window.start, window.end) == (utc(2026, 11, 19, 23), utc(2026, 11, 20, 10, 30))


def test_resolve_beyond_retention_is_approximate() -> None:
    floor = oldest_retained_minute(NOW, 48 * HOUR)
    window = resolve(zone=KOLKATA, now=NOW, period="day:2026-11-10", minute_floor=floor)
    assert window.approximate
    assert (window.start, window.end) == (utc(2026, 11, 9, 18), utc(2026, 11, 10, 19))
    assert all(r.grain != GRAIN_MINUTE for r in window.plan)
    recent = resolve(zone=KOLKATA, now=NOW, period="yesterday", minute_floor=floor)
    assert not recent.approximate


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"window": "1h", "period": "today"}, "window"),
        ({"window": "1h", "start": "2026-11-20T08:00Z"}, "window"),
        ({"period": "today", "end": "2026-11-20T08:00Z"}, "to"),
        ({"start": "2026-11-20T08:00Z"}, "to"),
        ({"end": "2026-11-20T08:00Z"}, "from"),
        ({"start": "2026-11-20T09:00Z", "end": "2026-11-20T08:00Z"}, "to"),
        ({"start": "yesterday", "end": "2026-11-20T08:00Z"}, "from"),
        ({"start": "2020-01-01T00:00Z", "end": "2026-11-20T08:00Z"}, "from"),
        ({"window": "2w"}, "window"),
        ({"period": "day:2026-11-21"}, "period"),
        ({"period": "someday"}, "period"),
    ],
)
def test_resolve_errors_name_the_parameter(kwargs: dict[str, str], param: str) -> None:
    with pytest.raises(WindowError) as info:
        resolve(zone=PARIS, now=NOW, **kwargs)  # type: ignore[arg-type]
    assert info.value.param == param


def test_parse_instant_accepts_z_and_offsets() -> None:
    assert parse_instant("2026-11-20T08:00:00Z", PARIS, "from") == utc(2026, 11, 20, 8)
    assert parse_instant("2026-11-20T08:00:00-05:00", PARIS, "from") == utc(2026, 11, 20, 13)


def test_periods_in_local_mean_time_are_rounded_to_the_minute() -> None:
    # Paris kept local mean time (+00:09:21) until 1891: its midnights fall on odd seconds.
    window = resolve(zone=PARIS, now=NOW, period="day:1890-06-01")
    assert window.approximate
    assert window.start == datetime(1890, 5, 31, 23, 50, tzinfo=UTC)
    assert window.end == datetime(1890, 6, 1, 23, 51, tzinfo=UTC)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])
def test_instants_outside_the_supported_range(text: str) -> None:
    with pytest.raises(WindowError, match="outside"):
        parse_instant(text, PARIS, "from")
