"""Helpers for the SLA tests: calendars written as people write hours, and local instants."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from shared.sla.calendar import Calendar

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
ALL_DAYS = (*WEEKDAYS, "sat", "sun")
LUNCH = ("09:00-12:30", "13:30-18:00")


def calendar(
    zone: str = PARIS,
    days: Sequence[str] = WEEKDAYS,
    periods: Sequence[str] = ("09:00-18:00",),
    *,
    week: Mapping[str, Sequence[str]] | None = None,
    holidays: Sequence[str] = (),
    exceptions: Mapping[str, Sequence[str]] | None = None,
    name: str = "test",
) -> Calendar:
    return Calendar.model_validate(
        {
            "name": name,
            "timezone": zone,
            "week": dict(week) if week is not None else {day: list(periods) for day in days},
            "holidays": list(holidays),
            "exceptions": dict(exceptions or {}),
        }
    )


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(
    zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, fold: int = 0
) -> datetime:
    """A wall-clock time in ``zone`` (``fold=1``: the second pass of a repeated hour), as UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone), fold=fold).astimezone(UTC)


def hours(seconds: float) -> float:
    return seconds / 3600


def day(text: str) -> date:
    return date.fromisoformat(text)
