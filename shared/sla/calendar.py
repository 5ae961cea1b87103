"""Business-hours calendars and business-time arithmetic.

A :class:`Calendar` is a frozen, JSON-serialisable model: an IANA zone, weekly periods
(several a day for a lunch break; none may cross midnight, but 22:00–24:00 followed by
00:00–06:00 on the next day is one continuous stretch), holidays (closed all day) and
exceptions (a date with its own periods, e.g. a half day). Written as JSON::

    {"name": "paris-office", "timezone": "Europe/Paris",
     "week": {"mon": ["09:00-12:30", "13:30-18:00"], "tue": [{"start": "09:00", "end": "18:00"}]},
     "holidays": ["2026-12-25"], "exceptions": {"2026-12-24": ["09:00-12:00"]}}

**DST rule.** An instant is open when its wall-clock time in the calendar's zone lies in a
period of its wall-clock date; business time is the real time that elapses while open. A
09:00–18:00 day is 9 h whatever the offset; a period spanning a skipped hour loses it; a
period spanning a repeated hour counts it twice (the clock really is open for both).

The functions take and return aware datetimes (any zone in, UTC out) and work on integer
microseconds (see :mod:`shared.sla.hours`). :data:`ALWAYS` is the 24/7 calendar: business
time on it is plain elapsed time, which is what a "calendar time" SLA target uses.
"""

from __future__ import annotations

import enum
import itertools
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Annotated, Any, Final, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator, model_validator

from shared.sla.hours import US, BeyondHorizon, Hours

__all__ = [
    "ALWAYS",
    "BeyondHorizon",
    "Calendar",
    "Period",
    "Weekday",
    "add_business_seconds",
    "business_seconds_between",
    "from_us",
    "is_open",
    "next_opening",
    "to_us",
]

_CLOCK: Final = re.compile(r"([01]\d|2[0-4]):([0-5]\d)(?::([0-5]\d))?")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
# Longer holiday lists are a mistake (or an attempt to make every deadline search slow).
MAX_SPECIAL_DATES: Final = 2000

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")]


class Weekday(enum.StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


WEEKDAYS: Final = tuple(Weekday)  # Monday first, as date.weekday() counts


def _seconds_of(text: str) -> int:
    found = _CLOCK.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not a time of day HH:MM or HH:MM:SS")
    hours, minutes, seconds = int(found[1]), int(found[2]), int(found[3] or 0)
    if hours == 24 and (minutes or seconds):
        raise ValueError(f"{text!r} is after 24:00")
    return hours * 3600 + minutes * 60 + seconds


class Period(BaseModel):
    """Open from ``start`` to ``end`` (exclusive) on the wall clock; ``end`` may be 24:00."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: str
    end: str

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        # "09:00-12:30" is how people write hours; accept it as well as {"start", "end"}.
        if isinstance(value, str):
            start, sep, end = value.partition("-")
            if not sep:
                raise ValueError(f"{value!r} is not a period HH:MM-HH:MM")
            return {"start": start.strip(), "end": end.strip()}
        return value

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        _seconds_of(value)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.start_seconds >= 86_400:
            raise ValueError(f"period {self} starts at 24:00")
        if self.end_seconds <= self.start_seconds:
            raise ValueError(
                f"period {self} ends before it starts (periods may not cross midnight: "
                f"write {self.start}-24:00 and 00:00-{self.end} on the next day)"
            )
        return self

    @property
    def start_seconds(self) -> int:
        return _seconds_of(self.start)

    @property
    def end_seconds(self) -> int:
        return _seconds_of(self.end)

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


Periods = tuple[Period, ...]


def _normalised(periods: Periods, where: str) -> Periods:
    ordered = tuple(sorted(periods, key=lambda p: p.start_seconds))
    for before, after in itertools.pairwise(ordered):
        if after.start_seconds < before.end_seconds:
            raise ValueError(f"{where}: periods {before} and {after} overlap")
    return ordered


class Calendar(BaseModel):
    """Business hours. Frozen: treat the mappings as read-only (the compiled form is cached)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    timezone: str = "UTC"
    # A weekday absent from the mapping is closed.
    week: dict[Weekday, Periods] = {}
    holidays: tuple[date, ...] = ()
    exceptions: dict[date, Periods] = {}

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("week")
    @classmethod
    def _week(cls, value: dict[Weekday, Periods]) -> dict[Weekday, Periods]:
        return {day: _normalised(value[day], f"week.{day}") for day in WEEKDAYS if day in value}

    @field_validator("exceptions")
    @classmethod
    def _exceptions(cls, value: dict[date, Periods]) -> dict[date, Periods]:
        return {day: _normalised(value[day], f"exceptions.{day}") for day in sorted(value)}

    @model_validator(mode="after")
    def _consistent(self) -> Calendar:
        seen: set[date] = set()
        for day in self.holidays:
            if day in seen:
                raise ValueError(f"holiday {day} is listed twice")
            if day in self.exceptions:
                raise ValueError(f"{day} is both a holiday and an exception; keep one")
            seen.add(day)
        if len(self.holidays) + len(self.exceptions) > MAX_SPECIAL_DATES:
            raise ValueError(f"more than {MAX_SPECIAL_DATES} holidays and exceptions")
        if not any(self.week.values()):
            # Deadlines would never come: a calendar must open at some time of the week.
            raise ValueError(f"calendar {self.name!r} has no open period in its week")
        return self

    @cached_property
    def hours(self) -> Hours:
        """The compiled form, built on first use and kept with this instance."""

        def spans(periods: Periods) -> tuple[tuple[int, int], ...]:
            return tuple((p.start_seconds * US, p.end_seconds * US) for p in periods)

        week = [spans(self.week.get(day, ())) for day in WEEKDAYS]
        special = {_day_index(day): spans(p) for day, p in self.exceptions.items()}
        special.update({_day_index(day): () for day in self.holidays})
        return Hours(ZoneInfo(self.timezone), week, special)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        # pydantic copies __dict__, where the compiled form is cached: drop it, or a copy
        # with another zone or other hours would answer with this calendar's.
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("hours", None)
        return copied

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def weekly_seconds(self) -> float:
        """Open time of a week with no holiday, exception or offset change."""
        return self.hours.weekly / US


def _day_index(day: date) -> int:
    return day.toordinal() - _EPOCH_ORDINAL


_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()

ALWAYS: Final = Calendar(name="always", week={day: (Period(start="00:00", end="24:00"),) for day in WEEKDAYS})


def to_us(t: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact, unlike ``timestamp()``)."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive datetime {t.isoformat()}: SLA times must be timezone-aware")
    return (t - _EPOCH) // _ONE_US


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _amount(seconds: float) -> int:
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"business seconds must be finite and ≥ 0, got {seconds!r}")
    return round(seconds * US)


def add_business_seconds(calendar: Calendar, start: datetime, seconds: float) -> datetime:
    """The earliest instant by which ``seconds`` of business time have elapsed since ``start``.

    From a closed ``start`` counting begins at the next opening; 0 seconds gives ``start``.
    A deadline that falls exactly on a closing is the closing, not the next opening.
    """
    return from_us(calendar.hours.add(to_us(start), _amount(seconds)))


def business_seconds_between(calendar: Calendar, a: datetime, b: datetime) -> float:
    """Business time in [a, b), in seconds; 0 when b ≤ a."""
    return calendar.hours.between(to_us(a), to_us(b)) / US


def is_open(calendar: Calendar, t: datetime) -> bool:
    return calendar.hours.is_open(to_us(t))


def next_opening(calendar: Calendar, t: datetime) -> datetime:
    """``t`` itself when open, else the next instant the calendar opens."""
    return from_us(calendar.hours.next_opening(to_us(t)))
