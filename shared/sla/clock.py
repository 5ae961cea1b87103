"""SLA clocks that pause: elapsed business time excluding paused spans, and deadlines.

A clock pauses while the conversation waits on the customer (statuses ``pending`` and
``snoozed`` by default; a policy chooses). Pauses are ``(start, end)`` pairs; ``end`` is
None for a pause still going on. While a clock is paused its deadline is undefined: the
remaining budget is known, but not when the clock will run again.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from shared.sla.calendar import Calendar, from_us, to_us
from shared.sla.hours import US

Pause = tuple[datetime, datetime | None]

DEFAULT_PAUSING: frozenset[str] = frozenset({"pending", "snoozed"})

__all__ = [
    "DEFAULT_PAUSING",
    "Pause",
    "clock_seconds",
    "deadline_with_pauses",
    "paused_intervals",
]


def paused_intervals(
    statuses: Iterable[tuple[datetime, str]], pausing: Collection[str] = DEFAULT_PAUSING
) -> list[Pause]:
    """Maximal spans spent in a pausing status, from ``(time, new status)`` changes.

    Changes are taken in time order (ties keep their given order, as the event order key
    does); a repeated status changes nothing. The last span is open-ended (end None) when
    the conversation is still in a pausing status.
    """
    out: list[Pause] = []
    since: datetime | None = None
    for at, status in sorted(statuses, key=lambda change: to_us(change[0])):
        if status in pausing:
            if since is None:
                since = at
        elif since is not None:
            if at > since:
                out.append((since, at))
            since = None
    if since is not None:
        out.append((since, None))
    return out


_OPEN_END = 2**62  # "still paused": later than any instant a datetime can hold


def _normalised(pauses: Iterable[Pause], start: int) -> list[tuple[int, int]]:
    """Pauses as sorted, merged microsecond spans clipped to begin no earlier than ``start``."""
    spans = sorted((max(to_us(a), start), _OPEN_END if b is None else to_us(b)) for a, b in pauses)
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if b <= a:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def clock_seconds(calendar: Calendar, start: datetime, now: datetime, pauses: Sequence[Pause]) -> float:
    """Business time in [start, now) outside every pause, in seconds."""
    hours = calendar.hours
    t, end = to_us(start), to_us(now)
    total = 0
    for a, b in _normalised(pauses, t):
        if a >= end:
            break
        total += hours.between(t, a)
        t = max(t, b)
    total += hours.between(t, end)
    return total / US


def deadline_with_pauses(
    calendar: Calendar, start: datetime, target_seconds: float, pauses: Sequence[Pause]
) -> datetime | None:
    """When the clock started at ``start`` reaches ``target_seconds``, pauses excluded.

    None when the clock is paused (an open-ended pause) before reaching the target.
    A deadline that falls exactly when a pause begins is that instant: the budget ran
    out while the clock was still running.
    """
    if target_seconds < 0:
        raise ValueError(f"target must be ≥ 0, got {target_seconds!r}")
    hours = calendar.hours
    t, remaining = to_us(start), round(target_seconds * US)
    for a, b in _normalised(pauses, t):
        if a > t:
            running = hours.between(t, a)
            if running >= remaining:
                return from_us(hours.add(t, remaining))
            remaining -= running
        if b == _OPEN_END:
            return None
        t = max(t, b)
    return from_us(hours.add(t, remaining))
