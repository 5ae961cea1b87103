"""shared.sla.calendar: hand-worked examples (DST, lunch, holidays, midnight, year end) and validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pydantic
import pytest

from shared.sla.calendar import (
    ALWAYS,
    BeyondHorizon,
    Calendar,
    Weekday,
    add_business_seconds,
    business_seconds_between,
    is_open,
    next_opening,
)
from tests.shared.sla.support import ALL_DAYS, LUNCH, NEW_YORK, PARIS, calendar, hours, local, utc

H = 3600.0


# Paris, spring forward: Sunday 2026-03-29, 02:00 CET (01:00 UTC) jumps to 03:00 CEST.


def test_paris_spring_forward_nine_to_six_is_still_nine_hours() -> None:
    c = calendar(PARIS, ALL_DAYS)
    sunday = (local(PARIS, 2026, 3, 29), local(PARIS, 2026, 3, 30))
    assert sunday == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))  # a 23-hour day
    assert hours(business_seconds_between(c, *sunday)) == 9
    # Saturday 17:00 CET + 2 h: Saturday 17-18, then Sunday 09:00 CEST + 1 h.
    assert add_business_seconds(c, utc(2026, 3, 28, 16), 2 * H) == utc(2026, 3, 29, 8)


def test_paris_spring_forward_period_over_the_gap_loses_the_missing_hour() -> None:
    c = calendar(PARIS, ["sun"], ["01:00-04:00"])
    # 01:00 CET = 00:00Z … 04:00 CEST = 02:00Z: three wall hours, two real ones.
    assert hours(business_seconds_between(c, utc(2026, 3, 28), utc(2026, 3, 30))) == 2
    assert is_open(c, utc(2026, 3, 29, 1, 30))  # 03:30 CEST
    assert add_business_seconds(c, utc(2026, 3, 29, 0, 30), H) == utc(2026, 3, 29, 1, 30)
    assert add_business_seconds(c, utc(2026, 3, 29, 0, 30), 1.5 * H) == utc(2026, 3, 29, 2)


def test_paris_spring_forward_period_starting_in_the_gap_opens_when_the_clock_passes_it() -> None:
    c = calendar(PARIS, ["sun"], ["02:30-05:00"])
    # 02:30 never shows; the first instant whose wall time is past it is 03:00 CEST = 01:00Z.
    assert next_opening(c, utc(2026, 3, 29)) == utc(2026, 3, 29, 1)
    assert hours(business_seconds_between(c, utc(2026, 3, 28), utc(2026, 3, 30))) == 2


# Paris, fall back: Sunday 2026-10-25, 03:00 CEST (01:00 UTC) goes back to 02:00 CET.


def test_paris_fall_back_repeated_hour_counts_twice() -> None:
    c = calendar(PARIS, ["sun"], ["01:00-04:00"])
    # 01:00 CEST = 23:00Z Saturday … 04:00 CET = 03:00Z: three wall hours, four real ones.
    assert hours(business_seconds_between(c, utc(2026, 10, 24), utc(2026, 10, 26))) == 4
    assert add_business_seconds(c, utc(2026, 10, 24, 23), 3.5 * H) == utc(2026, 10, 25, 2, 30)
    assert (
        hours(business_seconds_between(c, *(local(PARIS, 2026, 10, 25, 2, 30, fold=f) for f in (0, 1)))) == 1
    )


def test_paris_fall_back_period_starting_inside_the_repeated_hour() -> None:
    c = calendar(PARIS, ["sun"], ["02:30-05:00"])
    # Open while the wall clock reads 02:30-05:00: 02:30-03:00 CEST (00:30-01:00Z), then
    # 02:00-02:30 CET (01:00-01:30Z) is before 02:30 again, then 02:30-05:00 CET (01:30-04:00Z).
    assert hours(business_seconds_between(c, utc(2026, 10, 24), utc(2026, 10, 26))) == 3
    assert is_open(c, utc(2026, 10, 25, 0, 45))
    assert not is_open(c, utc(2026, 10, 25, 1, 15))
    assert is_open(c, utc(2026, 10, 25, 1, 45))
    assert next_opening(c, utc(2026, 10, 25, 1, 15)) == utc(2026, 10, 25, 1, 30)
    assert add_business_seconds(c, utc(2026, 10, 25), H) == utc(2026, 10, 25, 2)


def test_paris_fall_back_nine_to_six_is_nine_hours() -> None:
    c = calendar(PARIS, ALL_DAYS)
    sunday = (local(PARIS, 2026, 10, 25), local(PARIS, 2026, 10, 26))
    assert sunday[1] - sunday[0] == timedelta(hours=25)
    assert hours(business_seconds_between(c, *sunday)) == 9


# New York: Sunday 2026-03-08 02:00 EST (07:00Z) -> 03:00 EDT;
# Sunday 2026-11-01 02:00 EDT (06:00Z) -> 01:00 EST.


def test_new_york_overnight_period_on_both_transitions() -> None:
    c = calendar(NEW_YORK, ALL_DAYS, ["00:00-06:00"])
    assert hours(business_seconds_between(c, utc(2026, 3, 8, 5), utc(2026, 3, 8, 12))) == 5
    assert hours(business_seconds_between(c, utc(2026, 11, 1, 4), utc(2026, 11, 1, 12))) == 7
    assert add_business_seconds(c, local(NEW_YORK, 2026, 11, 1), 6 * H) == local(NEW_YORK, 2026, 11, 1, 5)


def test_new_york_night_shift_flows_across_midnight_and_the_gap() -> None:
    c = calendar(NEW_YORK, week={"sat": ["22:00-24:00"], "sun": ["00:00-06:00"]})
    start = local(NEW_YORK, 2026, 3, 7, 23)  # Saturday 23:00 EST = 04:00Z Sunday
    # 1 h on Saturday, then 3 real hours from 00:00 EST (05:00Z): 08:00Z = 04:00 EDT.
    assert add_business_seconds(c, start, 4 * H) == utc(2026, 3, 8, 8)
    assert local(NEW_YORK, 2026, 3, 8, 4) == utc(2026, 3, 8, 8)
    assert is_open(c, utc(2026, 3, 8, 7))  # the instant of the jump, 03:00 EDT
    assert hours(business_seconds_between(c, start, utc(2026, 3, 9))) == 6  # 23:00-02:00 EST, 03:00-06:00 EDT


# Lunch breaks, weekends, holidays, exceptions, year end.


def test_lunch_break_is_skipped() -> None:
    c = calendar(PARIS, periods=LUNCH)
    monday_11 = local(PARIS, 2026, 1, 12, 11)
    assert add_business_seconds(c, monday_11, 3 * H) == local(PARIS, 2026, 1, 12, 15)
    assert (
        hours(business_seconds_between(c, local(PARIS, 2026, 1, 12, 12), local(PARIS, 2026, 1, 12, 14))) == 1
    )
    assert not is_open(c, local(PARIS, 2026, 1, 12, 13))
    assert next_opening(c, local(PARIS, 2026, 1, 12, 12, 45)) == local(PARIS, 2026, 1, 12, 13, 30)
    # A deadline falling at a closing is the closing, not the reopening.
    assert add_business_seconds(c, monday_11, 1.5 * H) == local(PARIS, 2026, 1, 12, 12, 30)


def test_friday_evening_start_rolls_to_monday() -> None:
    c = calendar(PARIS)
    assert add_business_seconds(c, local(PARIS, 2026, 1, 16, 20), H) == local(PARIS, 2026, 1, 19, 10)
    assert add_business_seconds(c, local(PARIS, 2026, 1, 16, 17), H) == local(PARIS, 2026, 1, 16, 18)
    assert add_business_seconds(c, local(PARIS, 2026, 1, 16, 17), 2 * H) == local(PARIS, 2026, 1, 19, 10)
    assert next_opening(c, local(PARIS, 2026, 1, 17, 12)) == local(PARIS, 2026, 1, 19, 9)


def test_holiday_on_a_monday() -> None:
    easter_monday = calendar(PARIS, holidays=["2026-04-06"])
    plain = calendar(PARIS)
    friday_17 = local(PARIS, 2026, 4, 3, 17)
    assert add_business_seconds(plain, friday_17, 2 * H) == local(PARIS, 2026, 4, 6, 10)
    assert add_business_seconds(easter_monday, friday_17, 2 * H) == local(PARIS, 2026, 4, 7, 10)
    assert not is_open(easter_monday, local(PARIS, 2026, 4, 6, 11))
    week = (local(PARIS, 2026, 4, 6), local(PARIS, 2026, 4, 13))
    assert hours(business_seconds_between(easter_monday, *week)) == 36


def test_exception_half_day_then_holiday_then_weekend() -> None:
    c = calendar(PARIS, holidays=["2026-12-25"], exceptions={"2026-12-24": ["09:00-12:00"]})
    # Thursday 24th 11:00 + 2 h: 1 h before noon, Friday closed, weekend, Monday 09:00 + 1 h.
    assert add_business_seconds(c, local(PARIS, 2026, 12, 24, 11), 2 * H) == local(PARIS, 2026, 12, 28, 10)
    assert not is_open(c, local(PARIS, 2026, 12, 24, 14))


def test_year_end_with_new_years_day_closed() -> None:
    c = calendar(PARIS, ALL_DAYS, ["08:00-20:00"], holidays=["2027-01-01"])
    assert add_business_seconds(c, local(PARIS, 2026, 12, 31, 19), 2 * H) == local(PARIS, 2027, 1, 2, 9)
    span = (local(PARIS, 2026, 12, 31), local(PARIS, 2027, 1, 3))
    assert hours(business_seconds_between(c, *span)) == 24


def test_durations_flow_across_midnight_and_year_end() -> None:
    c = calendar("UTC", ALL_DAYS, ["00:00-06:00", "22:00-24:00"])
    assert add_business_seconds(c, utc(2026, 12, 31, 23, 30), H) == utc(2027, 1, 1, 0, 30)
    assert hours(business_seconds_between(c, utc(2026, 12, 31, 21), utc(2027, 1, 1, 7))) == 8


def test_long_spans_use_whole_weeks_and_match_day_by_day() -> None:
    c = calendar(PARIS, periods=LUNCH, holidays=["2026-04-06", "2026-05-01"])
    a, b = local(PARIS, 2026, 1, 5), local(PARIS, 2026, 6, 29)  # 25 weeks, across spring forward
    assert hours(business_seconds_between(c, a, b)) == 25 * 5 * 8 - 2 * 8
    by_day = sum(
        business_seconds_between(c, a + timedelta(days=i), a + timedelta(days=i + 1)) for i in range(175)
    )
    assert business_seconds_between(c, a, b) == by_day
    deadline = add_business_seconds(c, a, (25 * 5 * 8 - 2 * 8) * H)
    assert deadline == local(PARIS, 2026, 6, 26, 18)  # the last closing before b


def test_fast_path_builds_few_chunks() -> None:
    c = calendar(PARIS, periods=LUNCH)
    add_business_seconds(c, local(PARIS, 2026, 1, 5, 10), 5 * 52 * 40 * H)
    business_seconds_between(c, local(PARIS, 2026, 1, 5, 10), local(PARIS, 2031, 1, 5))
    # Five years, only the edges and the weeks holding an offset change are walked day by day.
    assert c.hours.cached_chunks < 5 * 2 * 8 + 20


def test_always_is_plain_elapsed_time() -> None:
    t = datetime(2026, 3, 29, 0, 30, 0, 123456, tzinfo=UTC)
    assert add_business_seconds(ALWAYS, t, 30 * 86_400.5) == t + timedelta(days=30, seconds=15)
    assert business_seconds_between(ALWAYS, t, utc(2026, 11, 1)) == (utc(2026, 11, 1) - t).total_seconds()
    assert is_open(ALWAYS, t)
    assert next_opening(ALWAYS, t) == t
    # 24/7 in a zone with DST is the same: every instant shows a wall time inside 00:00-24:00.
    paris_always = calendar(PARIS, ALL_DAYS, ["00:00-24:00"])
    assert paris_always.hours.always
    assert business_seconds_between(paris_always, utc(2026, 10, 24), utc(2026, 10, 26)) == 48 * H


def test_zero_and_instants_in_other_zones() -> None:
    c = calendar(PARIS)
    saturday = local(PARIS, 2026, 1, 17, 12)
    assert add_business_seconds(c, saturday, 0) == saturday
    paris_time = datetime(2026, 1, 12, 10, tzinfo=c.zone)
    assert add_business_seconds(c, paris_time, H) == utc(2026, 1, 12, 10)
    assert add_business_seconds(c, paris_time, H).tzinfo is UTC
    assert business_seconds_between(c, utc(2026, 1, 12, 12), utc(2026, 1, 12, 11)) == 0


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_bad_amounts_are_refused(seconds: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        add_business_seconds(calendar(), utc(2026, 1, 12), seconds)


def test_a_deadline_beyond_the_horizon_is_an_error() -> None:
    minute_a_week = calendar(days=["mon"], periods=["09:00-09:01"])
    with pytest.raises(BeyondHorizon, match="more than 7320 days ahead"):
        add_business_seconds(minute_a_week, utc(2026, 1, 12), 366 * 86_400)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        is_open(calendar(), datetime(2026, 1, 12, 10))  # naive on purpose


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"week": {"mon": ["09:00-12:30", "12:00-18:00"]}},
            "week.mon: periods 09:00-12:30 and 12:00-18:00 overlap",
        ),
        ({"week": {"mon": ["18:00-09:00"]}}, "ends before it starts"),
        ({"week": {"mon": ["09:00-09:00"]}}, "ends before it starts"),
        ({"week": {"mon": ["09:00-24:30"]}}, "after 24:00"),
        ({"week": {"mon": ["9-17"]}}, "not a time of day"),
        ({"week": {"mon": ["09:00"]}}, "not a period"),
        ({"week": {"mon": ["24:00-24:00"]}}, "starts at 24:00"),
        ({"week": {"funday": ["09:00-17:00"]}}, "funday"),
        ({"timezone": "Europe/Pariss"}, "unknown time zone 'Europe/Pariss'"),
        ({"holidays": ["2026-12-25", "2026-12-25"]}, "holiday 2026-12-25 is listed twice"),
        ({"holidays": ["2026-12-24"], "exceptions": {"2026-12-24": ["09:00-12:00"]}}, "both a holiday"),
        ({"exceptions": {"2026-12-24": ["09:00-12:00", "11:00-13:00"]}}, "exceptions.2026-12-24: periods"),
        ({"week": {"sat": []}}, "no open period"),
        ({"name": "has space"}, "name"),
        ({"color": "blue"}, "color"),
    ],
)
def test_validation_names_the_problem(data: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"name": "office", "timezone": PARIS, "week": {"mon": ["09:00-17:00"]}}
    with pytest.raises(pydantic.ValidationError, match=message):
        Calendar.model_validate(base | data)


def test_periods_are_sorted_and_json_round_trips() -> None:
    c = calendar(PARIS, week={"mon": ["13:30-18:00", "09:00-12:30"]}, exceptions={"2026-12-24": []})
    assert [str(p) for p in c.week[Weekday.MON]] == ["09:00-12:30", "13:30-18:00"]
    again = Calendar.model_validate_json(c.model_dump_json())
    assert again == c
    assert business_seconds_between(again, utc(2026, 1, 12), utc(2026, 1, 13)) == 8 * H
    assert not is_open(again, local(PARIS, 2026, 12, 24, 10))  # an exception with no period is closed
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        c.name = "other"  # type: ignore[misc]


def test_a_copy_with_other_fields_is_compiled_afresh() -> None:
    paris = calendar(PARIS)
    assert is_open(paris, utc(2026, 1, 12, 8, 30))  # 09:30 in Paris
    new_york = paris.model_copy(update={"timezone": NEW_YORK})
    assert not is_open(new_york, utc(2026, 1, 12, 8, 30))  # 03:30 in New York
