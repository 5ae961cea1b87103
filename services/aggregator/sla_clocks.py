"""SLA clocks in integer microseconds: the aggregator's fast path for calendar-time targets.

``shared.sla.deadlines.evaluate`` is the definition; it works on aware datetimes and
business-hours calendars and costs tens of microseconds a call, which the aggregator would
pay on nearly every event. Most targets are in calendar time (24/7), where business time is
plain elapsed time, so this module evaluates them with the same rules on integers, without
building a datetime. Results are identical to ``evaluate`` (a property test compares both on
random histories); targets in business time still go through ``evaluate``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Final, NamedTuple

from services.aggregator.walk import Walk

US: Final = 1_000_000
_OPEN_END: Final = 2**62  # "still paused"


class Span(NamedTuple):
    """A clock's verdict as of ``now``, times in epoch seconds (None where undefined)."""

    kind: str
    turn: int | None
    started_at: float
    target_seconds: float
    deadline: float | None
    at_risk_at: float | None
    stopped_at: float | None
    outcome: str
    elapsed_seconds: float


class Plan(NamedTuple):
    """The part of a policy version the clocks need, read once per version."""

    name: str
    version: int
    targets: dict[str, float]  # kind -> seconds, calendar time; never mutated
    pausing: frozenset[str]
    at_risk_share: float


def us(t: float) -> int:
    """Microseconds of epoch seconds, rounded as ``datetime.fromtimestamp`` rounds them."""
    whole = int(t)
    return whole * US + round((t - whole) * US)


def _seconds(value: int | None) -> float | None:
    return None if value is None else value / US


def _pauses(statuses: Sequence[tuple[float, str]], pausing: Collection[str]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    since: int | None = None
    # sorted() is stable: equal times keep their order, as the events' order key does.
    for t, status in sorted(((us(t), s) for t, s in statuses), key=lambda change: change[0]):
        if status in pausing:
            if since is None:
                since = t
        elif since is not None:
            if t > since:
                out.append((since, t))
            since = None
    if since is not None:
        out.append((since, _OPEN_END))
    return out


def _normalised(pauses: Sequence[tuple[int, int]], start: int) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted((max(a, start), b) for a, b in pauses):
        if b <= a:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def _deadline(start: int, amount: int, pauses: Sequence[tuple[int, int]]) -> int | None:
    t, remaining = start, amount
    for a, b in _normalised(pauses, t):
        if a > t:
            running = a - t
            if running >= remaining:
                return t + remaining
            remaining -= running
        if b == _OPEN_END:
            return None
        t = max(t, b)
    return t + remaining


def _elapsed(start: int, end: int, pauses: Sequence[tuple[int, int]]) -> int:
    t, total = start, 0
    for a, b in _normalised(pauses, t):
        if a >= end:
            break
        total += max(a - t, 0)
        t = max(t, b)
    return total + max(end - t, 0)


def _clock(
    kind: str,
    turn: int | None,
    seconds: float,
    share: float,
    start: int,
    stop: int | None,
    cancel: int | None,
    pauses: list[tuple[int, int]],
    now: int,
) -> Span:
    replied = stop is not None and (cancel is None or stop <= cancel)
    end = stop if replied else cancel
    if end is not None:
        pauses = [(a, min(b, end)) for a, b in pauses if a < end]
    deadline = _deadline(start, round(seconds * US), pauses)
    at_risk = _deadline(start, round(seconds * share * US), pauses)
    elapsed = _elapsed(start, end if end is not None else now, pauses)
    if end is not None:
        if deadline is not None and end > deadline:
            outcome = "breached"
        elif replied:
            outcome = "met"
        else:
            outcome = "cancelled"
    elif deadline is None:
        outcome = "paused"
    else:
        outcome = "breached" if now > deadline else "running"
    return Span(
        kind,
        turn,
        start / US,
        seconds,
        _seconds(deadline),
        _seconds(at_risk),
        _seconds(end),
        outcome,
        elapsed / US,
    )


def clocks(walk: Walk, plan: Plan, now: float) -> list[Span]:
    """Every clock of ``plan`` for the conversation of ``walk``, as of ``now``.

    Same inputs as the aggregator gives ``evaluate``: the first-response clock runs from
    ``sla_start`` and only once one is set (no human is expected while a bot holds it).
    """
    if walk.created_at is None:
        return []  # no clock runs before the conversation's creation is known
    targets = plan.targets
    pauses = _pauses(walk.statuses, plan.pausing) if plan.pausing else []
    resolves = sorted(us(t) for t, status in walk.statuses if status == "resolved")
    now_us = us(now)

    def first_resolve(since: int) -> int | None:
        return next((t for t in resolves if t >= since), None)

    out: list[Span] = []
    seconds = targets.get("first_response")
    if seconds is not None and walk.sla_start is not None:
        start = us(walk.sla_start)
        stop = None if walk.first_response_at is None else us(walk.first_response_at)
        out.append(
            _clock(
                "first_response",
                None,
                seconds,
                plan.at_risk_share,
                start,
                stop,
                first_resolve(start),
                pauses,
                now_us,
            )
        )
    seconds = targets.get("next_reply")
    if seconds is not None:
        for i, (asked, answered, _) in enumerate(walk.turns):
            start = us(asked)
            stop = None if answered is None else us(answered)
            out.append(
                _clock(
                    "next_reply",
                    i,
                    seconds,
                    plan.at_risk_share,
                    start,
                    stop,
                    first_resolve(start),
                    pauses,
                    now_us,
                )
            )
    seconds = targets.get("resolution")
    if seconds is not None:
        start = us(walk.created_at)
        out.append(
            _clock(
                "resolution",
                None,
                seconds,
                plan.at_risk_share,
                start,
                first_resolve(start),
                None,
                pauses,
                now_us,
            )
        )
    return out
