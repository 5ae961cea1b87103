"""Deadlines of one conversation under one policy: met, breached, at risk. Pure functions.

The input is the conversation's history as plain values (:class:`History`), so the
aggregator can build it from its ``Walk`` and tests can write it by hand. Each target of
the policy becomes a *clock*: first response (from creation or bot handoff to the first
human reply), one per customer turn for next reply (from the first unanswered customer
message to the next human reply), and resolution (from creation to the first resolve).
A clock stops at its reply or, without one, at a resolve (a conversation closed without
needing an answer: spam, duplicates). Every clock pauses in the policy's pausing statuses.

Outcomes as of ``now``: ``met`` (stopped by a reply at or before the deadline),
``breached`` (the deadline passed first: the breach instant is the deadline, whenever it
was noticed), ``cancelled`` (resolved before the deadline without a reply), ``running``
and ``paused`` (no deadline while paused). A turn is one clock, so it breaches at most once.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from shared.sla.calendar import ALWAYS, Calendar, to_us
from shared.sla.clock import Pause, clock_seconds, deadline_with_pauses, paused_intervals
from shared.sla.policy import Policy, Target

__all__ = [
    "ClockResult",
    "Evaluation",
    "History",
    "Outcome",
    "Turn",
    "evaluate",
    "evaluate_clock",
]

FIRST_RESPONSE: Final = "first_response"
NEXT_REPLY: Final = "next_reply"
RESOLUTION: Final = "resolution"


class Outcome(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    MET = "met"
    BREACHED = "breached"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Turn:
    """A customer's turn: their first unanswered message and the human reply to it, if any."""

    asked_at: datetime
    answered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class History:
    """What the SLA needs to know of a conversation; every datetime is aware.

    ``statuses`` lists ``(time, new status)`` changes; pauses and resolves come from it.
    ``resolved_at`` (the first resolve) may be given instead of, or as well as, a
    ``resolved`` status change.
    """

    created_at: datetime
    first_response_from: datetime | None = None  # bot handoff; None: from creation
    first_reply_at: datetime | None = None
    turns: tuple[Turn, ...] = ()
    resolved_at: datetime | None = None
    statuses: tuple[tuple[datetime, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ClockResult:
    kind: str  # first_response, next_reply or resolution
    turn: int | None  # index in History.turns for next_reply
    started_at: datetime
    target_seconds: float
    deadline: datetime | None  # None only while paused
    at_risk_at: datetime | None
    stopped_at: datetime | None  # the reply or resolve that stopped the clock
    outcome: Outcome
    elapsed_seconds: float  # clock time up to the stop, or to now

    @property
    def breached_at(self) -> datetime | None:
        """The breach instant: the deadline, whether the breach was seen then or later."""
        return self.deadline if self.outcome is Outcome.BREACHED else None

    def at_risk(self, now: datetime) -> bool:
        return self.outcome is Outcome.RUNNING and self.at_risk_at is not None and self.at_risk_at <= now


@dataclass(frozen=True, slots=True)
class Evaluation:
    policy: str
    version: int
    first_response: ClockResult | None
    next_replies: tuple[ClockResult, ...]
    resolution: ClockResult | None

    def clocks(self) -> tuple[ClockResult, ...]:
        found = (self.first_response, *self.next_replies, self.resolution)
        return tuple(c for c in found if c is not None)

    def breaches(self) -> tuple[ClockResult, ...]:
        return tuple(c for c in self.clocks() if c.outcome is Outcome.BREACHED)

    def next_due(self, now: datetime) -> datetime | None:
        """When the outcome changes with no new event (at risk, then breached): the timer's cue.

        Paused clocks have none: only an event (a status change) starts them again.
        """
        due = [
            t
            for c in self.clocks()
            if c.outcome is Outcome.RUNNING
            for t in (c.at_risk_at, c.deadline)
            if t is not None and t > now
        ]
        return min(due, default=None)


def _until(pauses: Sequence[Pause], end: datetime) -> list[Pause]:
    """Pauses as seen by a clock that stopped at ``end``: nothing after it counts."""
    return [(a, end if b is None or b > end else b) for a, b in pauses if a < end]


def evaluate_clock(
    kind: str,
    target_seconds: float,
    calendar: Calendar,
    start: datetime,
    stop: datetime | None,
    cancel: datetime | None,
    pauses: Sequence[Pause],
    at_risk_share: float,
    now: datetime,
    turn: int | None = None,
) -> ClockResult:
    """One clock: started at ``start``, stopped by a reply at ``stop`` or a resolve at ``cancel``.

    Whichever of ``stop`` and ``cancel`` comes first ends the clock.
    """
    replied = stop is not None and (cancel is None or to_us(stop) <= to_us(cancel))
    end = stop if replied else cancel
    if end is not None:
        pauses = _until(pauses, end)
    deadline = deadline_with_pauses(calendar, start, target_seconds, pauses)
    at_risk_at = deadline_with_pauses(calendar, start, target_seconds * at_risk_share, pauses)
    elapsed = clock_seconds(calendar, start, end if end is not None else now, pauses)
    if end is not None:
        # A clock that ended has no open pause, so its deadline is defined.
        if deadline is not None and end > deadline:
            outcome = Outcome.BREACHED
        elif replied:
            outcome = Outcome.MET
        else:
            outcome = Outcome.CANCELLED
    elif deadline is None:
        outcome = Outcome.PAUSED
    else:
        # A reply exactly at the deadline is in time, so the breach is certain only after it.
        outcome = Outcome.BREACHED if now > deadline else Outcome.RUNNING
    return ClockResult(kind, turn, start, target_seconds, deadline, at_risk_at, end, outcome, elapsed)


def _calendar(calendars: Mapping[str, Calendar], target: Target, policy: Policy) -> Calendar:
    name = target.calendar_name
    found = calendars.get(name)
    if found is not None:
        return found
    if name == ALWAYS.name:
        return ALWAYS
    raise ValueError(f"policy {policy.key} names unknown calendar {name!r}")


def evaluate(
    history: History, policy: Policy, calendars: Mapping[str, Calendar], now: datetime
) -> Evaluation:
    """Every clock of ``policy`` for this conversation, as of ``now``."""
    pauses = paused_intervals(history.statuses, policy.pausing_statuses)
    targets = policy.targets()
    resolves = sorted(
        [t for t, status in history.statuses if status == "resolved"]
        + ([history.resolved_at] if history.resolved_at is not None else []),
        key=to_us,
    )

    def first_resolve(since: datetime) -> datetime | None:
        return next((t for t in resolves if t >= since), None)

    def clock(
        kind: str, start: datetime, stop: datetime | None, cancels: bool, turn: int | None = None
    ) -> ClockResult | None:
        target = targets.get(kind)
        if target is None:
            return None
        cancel = first_resolve(start) if cancels else None
        return evaluate_clock(
            kind,
            target.seconds,
            _calendar(calendars, target, policy),
            start,
            stop,
            cancel,
            pauses,
            policy.at_risk_share,
            now,
            turn,
        )

    first_start = history.first_response_from or history.created_at
    first = clock(FIRST_RESPONSE, first_start, history.first_reply_at, cancels=True)
    turns = tuple(
        result
        for i, t in enumerate(history.turns)
        if (result := clock(NEXT_REPLY, t.asked_at, t.answered_at, cancels=True, turn=i)) is not None
    )
    resolution = clock(RESOLUTION, history.created_at, first_resolve(history.created_at), cancels=False)
    return Evaluation(policy.name, policy.version, first, turns, resolution)
