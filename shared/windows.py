"""Time windows of KPI queries, and the bucket plan that answers them.

Pure functions, no I/O: the API parses what the caller asked for (``window=1h``,
``from``/``to``, ``period=week:2026-W47``) into a UTC half-open interval, then
:func:`plan` covers it with as few bucket ranges as possible. The aggregator writes each
fact to a minute, an hour and a UTC-day bucket; summing the coarsest buckets that fit
whole reads the fewest rows. Minute buckets are only retained for a while: a window
reaching further back than the oldest retained minute is widened to whole hours and
flagged ``approximate``.

Errors are :class:`WindowError`, naming the parameter at fault so the API can say which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

# The grains of shared.db.schema, repeated here so this module stays dependency-free.
GRAIN_MINUTE: Final = 0
GRAIN_HOUR: Final = 1
GRAIN_DAY: Final = 2

MINUTE: Final = timedelta(minutes=1)
HOUR: Final = timedelta(hours=1)
DAY: Final = timedelta(days=1)
GRAIN_DELTA: Final = {GRAIN_MINUTE: MINUTE, GRAIN_HOUR: HOUR, GRAIN_DAY: DAY}

# Longer windows are almost certainly typos, and a year of day buckets is still cheap.
MAX_SPAN: Final = timedelta(days=400)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EARLIEST: Final = _EPOCH
_LATEST: Final = datetime(9000, 1, 1, tzinfo=UTC)
_DURATION: Final = re.compile(r"(\d{1,6})([mhd])")
_UNITS: Final = {"m": MINUTE, "h": HOUR, "d": DAY}
_DAY: Final = re.compile(r"day:(\d{4}-\d{2}-\d{2})")
_WEEK: Final = re.compile(r"week:(\d{4})-W(\d{2})")
_MONTH: Final = re.compile(r"month:(\d{4})-(\d{2})")


class WindowError(ValueError):
    """A window parameter that cannot be understood; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


@dataclass(frozen=True, slots=True)
class Range:
    """Buckets of one grain with start in [start, end)."""

    grain: int
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Window:
    """A resolved window: the UTC interval answered and the buckets that answer it.

    ``approximate`` is true when [start, end) differs from what was asked: an explicit
    ``from``/``to`` off the minute grid, or a part older than minute retention widened
    to whole hours.
    """

    start: datetime
    end: datetime
    approximate: bool
    plan: tuple[Range, ...]


# --- alignment -------------------------------------------------------------------------


def floor_to(t: datetime, step: timedelta) -> datetime:
    """``t`` rounded down to a multiple of ``step`` since the epoch (UTC-aligned)."""
    return t - (t - _EPOCH) % step


def ceil_to(t: datetime, step: timedelta) -> datetime:
    rest = (t - _EPOCH) % step
    return t if not rest else t + (step - rest)


# --- parsing ---------------------------------------------------------------------------


def parse_duration(text: str, param: str = "window") -> timedelta:
    """``<n>m``, ``<n>h`` or ``<n>d`` (n ≥ 1), e.g. 5m, 15m, 1h, 24h, 7d, 30d."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise WindowError(param, f"{text!r} is not a duration like 5m, 1h or 7d (a number, then m, h or d)")
    span = int(match.group(1)) * _UNITS[match.group(2)]
    if span <= timedelta(0):
        raise WindowError(param, f"{text!r} must be longer than zero")
    if span > MAX_SPAN:
        raise WindowError(param, f"{text!r} is longer than the maximum of {MAX_SPAN.days}d")
    return span


def format_duration(span: timedelta) -> str:
    """The shortest ``<n>(m|h|d)`` spelling of a whole number of minutes."""
    for unit, delta in (("d", DAY), ("h", HOUR), ("m", MINUTE)):
        if span % delta == timedelta(0):
            return f"{span // delta}{unit}"
    raise ValueError(f"{span} is not a whole number of minutes")


def parse_instant(text: str, zone: ZoneInfo, param: str) -> datetime:
    """An ISO 8601 date-time; without an offset it is read in the tenant's time zone."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        example = "2026-11-20T08:00:00Z"
        raise WindowError(param, f"{text!r} is not an ISO 8601 date-time such as {example}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    value = value.astimezone(UTC)
    # Bucket arithmetic (rounding up to a day) must stay inside datetime's range.
    if not _EARLIEST <= value <= _LATEST:
        raise WindowError(param, f"{text!r} is outside {_EARLIEST.year}–{_LATEST.year}")
    return value


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    # fold=0 on a midnight skipped by DST maps to the first instant of that local day.
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def parse_period(text: str, zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    """A calendar period in the tenant's zone as a UTC [start, end), DST-correct.

    ``today``, ``yesterday``, ``day:2026-11-20``, ``week:2026-W47`` (ISO week, Monday
    first) or ``month:2026-11``. Local days are 23, 24 or 25 hours long around DST changes.
    """
    spec = text.strip()
    today = now.astimezone(zone).date()
    first: date
    after: date
    try:
        if spec == "today":
            first, after = today, today + timedelta(days=1)
        elif spec == "yesterday":
            first, after = today - timedelta(days=1), today
        elif (m := _DAY.fullmatch(spec)) is not None:
            first = date.fromisoformat(m.group(1))
            after = first + timedelta(days=1)
        elif (m := _WEEK.fullmatch(spec)) is not None:
            first = date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
            after = first + timedelta(days=7)
        elif (m := _MONTH.fullmatch(spec)) is not None:
            year, month = int(m.group(1)), int(m.group(2))
            first = date(year, month, 1)
            after = date(year + month // 12, month % 12 + 1, 1)
        else:
            forms = "today, yesterday, day:YYYY-MM-DD, week:YYYY-Www, month:YYYY-MM"
            raise WindowError("period", f"{text!r} is not one of {forms}")
    except ValueError as exc:
        if isinstance(exc, WindowError):
            raise
        raise WindowError("period", f"{text!r} is not a valid date: {exc}") from None
    return _local_midnight(first, zone), _local_midnight(after, zone)


def parse_step(text: str) -> tuple[timedelta, int]:
    """A time-series step and the grain that serves it.

    Minute buckets for steps under an hour, hour buckets under a day, day buckets
    otherwise; the step must be a whole number of its grain.
    """
    step = parse_duration(text, "step")
    grain = GRAIN_MINUTE if step < HOUR else GRAIN_HOUR if step < DAY else GRAIN_DAY
    unit = GRAIN_DELTA[grain]
    if step % unit:
        whole = format_duration(unit)
        raise WindowError("step", f"{text!r} must be a whole number of {whole} for a step this long")
    return step, grain


# --- resolving and planning ------------------------------------------------------------


def resolve(
    *,
    zone: ZoneInfo,
    now: datetime,
    window: str | None = None,
    start: str | None = None,
    end: str | None = None,
    period: str | None = None,
    minute_floor: datetime | None = None,
    default: str = "1h",
) -> Window:
    """The window the caller asked for, exactly one of ``window``, ``from``/``to`` or ``period``.

    A relative ``window`` ends with the minute in progress (so ``1h`` is the last 60
    minute buckets, the current one included). Periods are cut at that same instant, so
    ``today`` means today so far. ``minute_floor`` is the oldest minute bucket retained.
    """
    given = [name for name, v in (("window", window), ("from", start), ("to", end), ("period", period)) if v]
    if (window and (start or end or period)) or (period and (start or end)):
        raise WindowError(given[0], f"give only one of window, from/to and period (got {', '.join(given)})")
    live_end = floor_to(now, MINUTE) + MINUTE
    exact = True
    if start or end:
        if not (start and end):
            raise WindowError("to" if start else "from", "from and to must be given together")
        lo, hi = parse_instant(start, zone, "from"), parse_instant(end, zone, "to")
        if hi <= lo:
            raise WindowError("to", "must be after from")
        if hi - lo > MAX_SPAN:
            raise WindowError("from", f"the window is longer than the maximum of {MAX_SPAN.days}d")
        aligned_lo, aligned_hi = floor_to(lo, MINUTE), ceil_to(hi, MINUTE)
        exact = (aligned_lo, aligned_hi) == (lo, hi)
        lo, hi = aligned_lo, aligned_hi
    elif period:
        lo, hi = parse_period(period, zone, now)
        if lo >= live_end:
            raise WindowError("period", f"{period!r} has not started yet")
        hi = min(hi, live_end)
        # Midnights of half-hour zones are off the hour but on the minute; only old local mean
        # times (offsets in seconds, before ~1900) are not, and get rounded out to the minute.
        aligned_lo, aligned_hi = floor_to(lo, MINUTE), ceil_to(hi, MINUTE)
        exact = (aligned_lo, aligned_hi) == (lo, hi)
        lo, hi = aligned_lo, aligned_hi
    else:
        hi = live_end
        lo = hi - parse_duration(window or default, "window")
    ranges, widened = plan(lo, hi, minute_floor)
    start_out, end_out = ranges[0].start, ranges[-1].end
    return Window(start_out, end_out, widened or not exact, tuple(ranges))


def plan(start: datetime, end: datetime, minute_floor: datetime | None = None) -> tuple[list[Range], bool]:
    """Cover the minute-aligned [start, end) with the fewest bucket ranges.

    Day buckets for whole UTC days, hour buckets for whole hours, minute buckets for the
    rest: at most five ranges (minutes, hours, days, hours, minutes). When a minute range
    would start before ``minute_floor`` its edge is widened to the hour, and the second
    value returned is True.
    """
    if (start - _EPOCH) % MINUTE or (end - _EPOCH) % MINUTE:
        raise ValueError("plan() needs minute-aligned bounds")
    if end <= start:
        raise ValueError("plan() needs start < end")
    widened = False
    if minute_floor is not None:
        if (start - _EPOCH) % HOUR and start < minute_floor:
            start, widened = floor_to(start, HOUR), True
        if (end - _EPOCH) % HOUR and max(start, floor_to(end, HOUR)) < minute_floor:
            end, widened = ceil_to(end, HOUR), True
    first_day, last_day = ceil_to(start, DAY), floor_to(end, DAY)
    if first_day < last_day:
        ranges = [
            *_hours_and_minutes(start, first_day),
            Range(GRAIN_DAY, first_day, last_day),
            *_hours_and_minutes(last_day, end),
        ]
    else:
        ranges = _hours_and_minutes(start, end)
    return ranges, widened


def _hours_and_minutes(start: datetime, end: datetime) -> list[Range]:
    first_hour, last_hour = ceil_to(start, HOUR), floor_to(end, HOUR)
    if first_hour >= last_hour:
        return [Range(GRAIN_MINUTE, start, end)] if start < end else []
    out = []
    if start < first_hour:
        out.append(Range(GRAIN_MINUTE, start, first_hour))
    out.append(Range(GRAIN_HOUR, first_hour, last_hour))
    if last_hour < end:
        out.append(Range(GRAIN_MINUTE, last_hour, end))
    return out


def oldest_retained_minute(now: datetime, retention: timedelta) -> datetime:
    """The first minute bucket surely still stored when minutes are kept for ``retention``."""
    return ceil_to(now - retention, MINUTE)
