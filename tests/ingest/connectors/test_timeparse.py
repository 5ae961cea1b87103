from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.connectors.base import InvalidPayload
from services.ingest.connectors.timeparse import EARLIEST, _parse, check_range, parse_time

from .support import NOW

BERLIN = ZoneInfo("Europe/Berlin")


def parse(value: object, **kw: object) -> datetime:
    return parse_time(value, now=NOW, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-07-23T18:02:48.000Z", datetime(2021, 7, 23, 18, 2, 48, tzinfo=UTC)),
        ("2021-07-23T18:02:48.250Z", datetime(2021, 7, 23, 18, 2, 48, 250000, tzinfo=UTC)),
        ("2021-07-23T20:02:48+02:00", datetime(2021, 7, 23, 18, 2, 48, tzinfo=UTC)),
        ("2021-07-23T13:32:48.5-04:30", datetime(2021, 7, 23, 18, 2, 48, 500000, tzinfo=UTC)),
        ("2021-07-23T18:02:48.123456789Z", datetime(2021, 7, 23, 18, 2, 48, 123456, tzinfo=UTC)),
        ("2020-03-03 13:05:57 UTC", datetime(2020, 3, 3, 13, 5, 57, tzinfo=UTC)),
        ("2020-03-03 13:05:57.125 UTC", datetime(2020, 3, 3, 13, 5, 57, 125000, tzinfo=UTC)),
        (1627063369, datetime(2021, 7, 23, 18, 2, 49, tzinfo=UTC)),
        (1627063369.5, datetime(2021, 7, 23, 18, 2, 49, 500000, tzinfo=UTC)),
        ("1627063369", datetime(2021, 7, 23, 18, 2, 49, tzinfo=UTC)),
        ("1627063369.25", datetime(2021, 7, 23, 18, 2, 49, 250000, tzinfo=UTC)),
        (1627063369123, datetime(2021, 7, 23, 18, 2, 49, 123000, tzinfo=UTC)),
        ("1627063369123", datetime(2021, 7, 23, 18, 2, 49, 123000, tzinfo=UTC)),
        ("Mon, 16 Aug 2010 03:45:01 +0000", datetime(2010, 8, 16, 3, 45, 1, tzinfo=UTC)),
        ("Mon, 16 Aug 2010 05:45:01 +0200", datetime(2010, 8, 16, 3, 45, 1, tzinfo=UTC)),
        ("Mon, 16 Aug 2010 03:45:01 -0000", datetime(2010, 8, 16, 3, 45, 1, tzinfo=UTC)),
        ("Mon, 16 Aug 2010 03:45:01 GMT", datetime(2010, 8, 16, 3, 45, 1, tzinfo=UTC)),
        ("  2021-07-23T18:02:48Z  ", datetime(2021, 7, 23, 18, 2, 48, tzinfo=UTC)),
    ],
)
def test_accepted_formats(value: object, expected: datetime) -> None:
    parsed = parse(value)
    assert parsed == expected
    assert parsed.tzinfo is UTC


def test_aware_datetime_is_converted_to_utc() -> None:
    parsed = parse(datetime(2021, 7, 23, 20, 0, tzinfo=timezone(timedelta(hours=2))))
    assert parsed == datetime(2021, 7, 23, 18, 0, tzinfo=UTC)
    assert parsed.tzinfo is UTC


def test_naive_time_uses_the_given_zone_with_dst() -> None:
    summer = parse("2012-07-03 15:27:23.896208", tz=BERLIN)
    winter = parse("2012-01-03 15:27:23", tz=BERLIN)
    assert summer == datetime(2012, 7, 3, 13, 27, 23, 896208, tzinfo=UTC)
    assert winter == datetime(2012, 1, 3, 14, 27, 23, tzinfo=UTC)


def test_naive_time_without_zone_is_rejected_naming_the_field() -> None:
    with pytest.raises(InvalidPayload, match=r"^created_at: .*no timezone"):
        parse("2012-07-03 15:27:23", field="created_at")


def test_naive_datetime_object_without_zone_is_rejected() -> None:
    with pytest.raises(InvalidPayload, match="no timezone"):
        parse(datetime(2021, 7, 23, 18, 0))


def test_explicit_offset_wins_over_configured_zone() -> None:
    assert parse("2021-07-23T18:02:48Z", tz=BERLIN) == datetime(2021, 7, 23, 18, 2, 48, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "1999-12-31T23:59:59Z",
        946684799,  # one second before 2000-01-01
        (NOW + timedelta(days=1, seconds=1)).isoformat(),
        "2124-01-01T00:00:00Z",
        -5,
        0,
    ],
)
def test_out_of_range_is_rejected(value: object) -> None:
    with pytest.raises(InvalidPayload, match=r"^occurred_at: .*outside accepted range") as info:
        parse(value)
    assert info.value.status_code == 422


def test_range_bounds_are_inclusive() -> None:
    assert parse(EARLIEST.isoformat()) == EARLIEST
    assert parse((NOW + timedelta(days=1)).isoformat()) == NOW + timedelta(days=1)


def test_check_range_defaults_to_the_wall_clock() -> None:
    recent = datetime.now(UTC) - timedelta(minutes=1)
    assert check_range(recent) == recent
    with pytest.raises(InvalidPayload, match="outside accepted range"):
        check_range(datetime.now(UTC) + timedelta(days=2))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "got NoneType"),
        (True, "got bool"),
        ([1], "got list"),
        ("", "empty time"),
        ("   ", "empty time"),
        ("yesterday", "unrecognised time format 'yesterday'"),
        ("2021-13-45T00:00:00Z", "unrecognised time format"),
        (float("nan"), "epoch must be finite"),
        (float("inf"), "epoch must be finite"),
        ("1e400", "epoch must be finite"),
        (10**30, "outside accepted range"),
    ],
)
def test_garbage_is_rejected_with_a_reason(value: object, message: str) -> None:
    with pytest.raises(InvalidPayload, match=r"^when: ") as info:
        parse(value, field="when")
    assert message in info.value.detail


def test_long_garbage_is_clipped_in_the_message() -> None:
    with pytest.raises(InvalidPayload) as info:
        parse("x" * 500)
    assert len(info.value.detail) < 120


# Property tests: what we render in the formats we accept parses back to the same instant.
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2025, 1, 15), timezones=st.just(UTC)
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@given(instants, offsets)
def test_iso_round_trip(instant: datetime, offset: timezone) -> None:
    assert parse(instant.astimezone(offset).isoformat()) == instant


@given(instants)
def test_iso_z_with_milliseconds_round_trip(instant: datetime) -> None:
    instant = instant.replace(microsecond=instant.microsecond // 1000 * 1000)
    text = instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"
    assert parse(text) == instant


@given(instants)
def test_epoch_seconds_round_trip(instant: datetime) -> None:
    seconds = int(instant.timestamp())
    expected = datetime.fromtimestamp(seconds, UTC)
    assert parse(seconds) == expected
    assert parse(str(seconds)) == expected


@given(instants)
def test_epoch_milliseconds_round_trip(instant: datetime) -> None:
    millis = int(instant.timestamp() * 1000)
    assert abs(parse(millis) - instant) < timedelta(milliseconds=2)


@given(instants, offsets)
def test_rfc2822_round_trip(instant: datetime, offset: timezone) -> None:
    instant = instant.replace(microsecond=0)
    assert parse(format_datetime(instant.astimezone(offset))) == instant


@given(instants)
def test_chatwoot_utc_suffix_round_trip(instant: datetime) -> None:
    instant = instant.replace(microsecond=0)
    assert parse(instant.strftime("%Y-%m-%d %H:%M:%S UTC")) == instant


@given(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2024, 12, 31)))
def test_naive_local_round_trip(local: datetime) -> None:
    instant = parse(local.isoformat(sep=" "), tz=BERLIN)
    # Converting back gives the same wall time, except for the hour skipped at spring-forward.
    back = instant.astimezone(BERLIN).replace(tzinfo=None)
    assert back == local or abs(back - local) == timedelta(hours=1)


def _the_long_way(value: object, now: datetime) -> datetime | str:
    """parse_time without its shortcut for RFC 3339 UTC text: the result, or the error."""
    try:
        return check_range(_parse(value, field="occurred_at", tz=None), now=now)
    except InvalidPayload as exc:
        return exc.detail


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1)),
    st.sampled_from(["seconds", "milliseconds", "microseconds", "minutes"]),
    st.text(alphabet="0123456789TZz:.+- ", max_size=30),
)
def test_the_rfc3339_shortcut_answers_as_the_long_way(moment: datetime, spec: str, noise: str) -> None:
    now = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
    for value in (moment.isoformat(timespec=spec) + "Z", noise, noise + "Z", f"{noise[:1]}{moment}Z"):
        try:
            got: datetime | str = parse_time(value, now=now)
        except InvalidPayload as exc:
            got = exc.detail
        assert got == _the_long_way(value, now), value
        if isinstance(got, datetime):
            assert got.tzinfo is UTC
