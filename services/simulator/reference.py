"""The reference: the KPI measures of a list of canonical events, computed the plain way.

This is the yardstick the fault tests (tests/chaos/) hold the whole pipeline to, so it is
written for obviousness, not speed, and shares no code with the aggregator (it imports
nothing from ``services/aggregator``): every event of a conversation is sorted by time,
then each measure of docs/kpis.md is one small pass over that list, straight from its
definition. The aggregator's incremental walk, retractions and replays are exactly what
this is meant to check.

Where docs/kpis.md leaves a choice open, the choice made here is written next to the
pass (and in docs/reliability.md):

* **Order.** Events sort by ``occurred_at``; at equal times a conversation is created
  (or a call queued) before it is assigned or labelled, before messages and answers,
  before status changes and queue exits, before a call ends, before surveys; then by id.
* **Duplicates.** An event id already seen in the conversation changes nothing.
* **Channel.** A conversation's channel is the first one its events name (``other``
  means none); a call whose events name none is ``phone``.
* **No creation event.** Durations from creation measure 0 s when the conversation's
  ``conversation.created`` never came (nothing says when it started).
* **Boundaries.** Answered "within" the service-level target is ``wait ≤ target``; a short
  abandon is ``wait < threshold`` (strictly under the threshold).
* **SLA.** Only the default policy (no SLA policies stored for the tenant): per-channel
  first-response targets in calendar time, at risk after 80 % of the target, as
  docs/sla.md describes its clocks; see :func:`_first_response_sla`. A reopen restarts
  the first-response *time* (the KPI) but not the SLA clock.
* **Sources of events.** Event types without KPIs (``agent.status_changed``, unknown
  types) are skipped; so are events the aggregator quarantines (older than the late limit,
  more than a day ahead of ``now``): counted in :attr:`Reference.quarantined`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final, NamedTuple

from shared.events import Event

# Defaults of SUPPORTPULSE_AGGREGATOR_* (docs/configuration.md).
DEFAULT_FIRST_RESPONSE_TARGETS: Final[Mapping[str, float]] = {
    "chat": 300.0, "whatsapp": 900.0, "sms": 900.0, "social": 3600.0, "email": 14400.0, "other": 3600.0,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Thresholds:
    short_abandon_seconds: float = 5.0
    service_level_seconds: float = 20.0
    first_response_targets: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_FIRST_RESPONSE_TARGETS)
    )
    # Share of a target after which a running clock is at risk (SLA policies' default).
    at_risk_share: float = 0.8
    late_limit_days: float = 90.0


# Same-time order (see the module docstring); types not listed carry no KPI and are skipped.
RANK: Final[Mapping[str, int]] = {
    "conversation.created": 0,
    "call.queued": 0,
    "conversation.assigned": 1,
    "conversation.labels_changed": 1,
    "message.created": 2,
    "call.answered": 2,
    "conversation.status_changed": 3,
    "call.abandoned": 3,
    "call.timed_out": 3,
    "call.transferred": 3,
    "call.ended": 4,
    "survey.submitted": 5,
}
QUEUE_EXITS: Final = ("call.answered", "call.abandoned", "call.timed_out")


class Observation(NamedTuple):
    """One measure observed at an instant (its minute, hour and day follow) on a channel."""

    measure: str
    at: datetime
    channel: str
    value: float = 1.0


DayKey = tuple[str, date, str]  # (measure, UTC day, channel)


@dataclass(slots=True)
class Reference:
    observations: list[Observation] = field(default_factory=list)
    events: int = 0  # events given
    duplicates: int = 0
    skipped: int = 0  # types without KPIs
    quarantined: int = 0
    # SLA deadlines later than ``now`` with nothing decided yet: breaches may still come.
    pending_deadlines: list[datetime] = field(default_factory=list)

    def day_totals(self) -> dict[DayKey, tuple[int, float]]:
        """Per (measure, UTC day, channel): (count, sum of values), as kpi_counts' day rows."""
        values: dict[DayKey, list[float]] = defaultdict(list)
        for o in self.observations:
            values[(o.measure, o.at.astimezone(UTC).date(), o.channel)].append(o.value)
        return {key: (len(v), math.fsum(v)) for key, v in values.items()}

    def totals(self) -> dict[str, tuple[int, float]]:
        """Per measure over everything: (count, sum of values)."""
        values: dict[str, list[float]] = defaultdict(list)
        for o in self.observations:
            values[o.measure].append(o.value)
        return {measure: (len(v), math.fsum(v)) for measure, v in values.items()}

    def values(self, measure: str) -> list[float]:
        """The raw values of a measure, sorted (durations: for exact quantiles)."""
        return sorted(o.value for o in self.observations if o.measure == measure)


def compute(
    events: Iterable[Event], *, now: datetime | None = None, thresholds: Thresholds | None = None
) -> Reference:
    """The reference measures of ``events`` as of ``now`` (which decides SLA breaches)."""
    now = now or datetime.now(UTC)
    rules = thresholds or Thresholds()
    ref = Reference()
    oldest, newest = now - timedelta(days=rules.late_limit_days), now + timedelta(days=1)
    timelines: dict[tuple[str, str], dict[str, Event]] = defaultdict(dict)
    for event in events:
        ref.events += 1
        if event.type not in RANK:
            ref.skipped += 1
            continue
        if not oldest <= event.occurred_at <= newest:
            ref.quarantined += 1
            continue
        seen = timelines[(event.tenant, event.conversation_id)]
        if event.id in seen:
            ref.duplicates += 1
            continue
        seen[event.id] = event
    for seen in timelines.values():
        timeline = sorted(seen.values(), key=lambda e: (e.occurred_at, RANK[e.type], e.id))
        _conversation(timeline, rules, now, ref)
    return ref


def seconds(start: datetime, end: datetime) -> float:
    return max((end - start).total_seconds(), 0.0)


def _channels(timeline: list[Event]) -> list[str]:
    """The conversation's channel as known at each event: the first one named sticks."""
    out, known = [], "other"
    for event in timeline:
        if known == "other":
            if event.channel != "other":
                known = event.channel
            elif event.type.startswith("call."):
                known = "phone"
        out.append(known)
    return out


def _conversation(tl: list[Event], rules: Thresholds, now: datetime, ref: Reference) -> None:
    channel = _channels(tl)

    def observe(measure: str, i: int, value: float = 1.0) -> None:
        ref.observations.append(Observation(measure, tl[i].occurred_at, channel[i], value))

    created = next((i for i, e in enumerate(tl) if e.type == "conversation.created"), None)
    if created is not None:
        observe("conversations_created", created)

    # Status moves: (index, from, to). Creation sets the first status without a move.
    moves: list[tuple[int, str | None, str]] = []
    status: str | None = None
    for i, e in enumerate(tl):
        if i == created:
            status = e.status or "open"
        elif e.type == "conversation.status_changed" and e.status is not None:
            if e.status != status:
                moves.append((i, status, e.status))
            status = e.status
    resolves = [i for i, _, new in moves if new == "resolved"]
    reopens = [i for i, old, new in moves if old == "resolved" and new in ("open", "pending", "snoozed")]
    start = tl[created].occurred_at if created is not None else None
    for i in resolves:
        observe("conversations_resolved", i)
        observe("resolution_seconds", i, seconds(start, tl[i].occurred_at) if start else 0.0)
    for i in reopens:
        observe("conversations_reopened", i)

    # Messages: public ones only; a human reply is typed by an agent, not automated.
    def public(e: Event) -> bool:
        return e.type == "message.created" and not e.private

    def human(e: Event) -> bool:
        return public(e) and e.direction == "outbound" and e.author == "agent" and e.automated is None

    def customer(e: Event) -> bool:
        return public(e) and e.direction == "inbound" and e.author == "customer"

    replies = [i for i, e in enumerate(tl) if human(e)]
    for i, e in enumerate(tl):
        if customer(e):
            observe("messages_inbound", i)
        elif human(e):
            observe("messages_outbound", i)
        elif public(e) and e.author == "bot":
            observe("messages_bot", i)

    if resolves:
        first = resolves[0]
        observe("first_resolutions", first)
        observe("first_resolution_seconds", first, seconds(start, tl[first].occurred_at) if start else 0.0)
        if sum(1 for i in replies if i < first) <= 1:
            observe("one_touch_resolutions", first)
        wrote = next((i for i, e in enumerate(tl[:first]) if customer(e)), None)
        if wrote is not None and not any(wrote < i < first for i in replies):
            observe("conversations_abandoned", first)

    # First response: from creation, or the bot's handoff (a conversation created pending is
    # the bot's until it first moves to open), or the latest reopen before the reply.
    bot_held = created is not None and tl[created].status == "pending"
    handoff = next((i for i, old, new in moves if new == "open" and old != "resolved"), None)
    clock = created if not bot_held else handoff
    reply = replies[0] if replies else None
    if reply is not None:
        begin = clock if clock is not None and clock < reply else created
        reopened = [i for i in reopens if i < reply]
        if reopened:
            begin = reopened[-1]
        frt = seconds(tl[begin].occurred_at, tl[reply].occurred_at) if begin is not None else 0.0
        observe("first_response_seconds", reply, frt)
        waiting: int | None = None
        for i in range(reply + 1, len(tl)):
            if customer(tl[i]) and waiting is None:
                waiting = i
            elif human(tl[i]) and waiting is not None:
                observe("next_reply_seconds", i, seconds(tl[waiting].occurred_at, tl[i].occurred_at))
                waiting = None

    _first_response_sla(tl, channel, created, moves, resolves, reply, rules, now, ref)
    _call(tl, channel, rules, ref)
    _surveys(tl, channel, ref)


def _first_response_sla(
    tl: list[Event],
    channel: list[str],
    created: int | None,
    moves: list[tuple[int, str | None, str]],
    resolves: list[int],
    reply: int | None,
    rules: Thresholds,
    now: datetime,
    ref: Reference,
) -> None:
    """The default SLA policy's first-response clock (docs/sla.md), in calendar time, no pauses.

    It starts at creation, or for a conversation a bot holds (created pending) when a human is
    first needed: the move to open (handoff), or a reopen after the bot resolved it; while
    the bot holds it there is no clock. It stops at the first human reply or, failing that,
    at the first resolve after it started. Reply by the deadline: met (in the reply's
    minute); stopped after the deadline, or still running once ``now`` is past it:
    breached (in the deadline's minute, whether or not a reply comes later); resolved
    before it without a reply: nothing. At risk: the at-risk instant (the policy's share of
    the target) passed while the clock ran, recorded in that instant's minute.
    """
    if created is None:
        return
    if tl[created].status != "pending":
        begin: int | None = created
    else:
        begin = next(
            (
                i
                for i, old, new in moves
                if new == "open" or (old == "resolved" and new in ("pending", "snoozed"))
            ),
            None,
        )
    target = rules.first_response_targets.get(channel[-1]) if begin is not None else None
    if begin is None or target is None:
        return
    start = tl[begin].occurred_at
    deadline = start + timedelta(seconds=target)
    at_risk = start + timedelta(seconds=target * rules.at_risk_share)
    cancel = next((i for i in resolves if tl[i].occurred_at >= start), None)
    replied = reply is not None and (cancel is None or tl[reply].occurred_at <= tl[cancel].occurred_at)
    stop = reply if replied else cancel
    end = tl[stop].occurred_at if stop is not None else None

    def observe(measure: str, at: datetime) -> None:
        # Recorded on the channel known by then (a conversation's channel is fixed early).
        known = [c for e, c in zip(tl, channel, strict=True) if e.occurred_at <= at]
        ref.observations.append(Observation(measure, at, known[-1] if known else channel[0]))

    if end is not None:
        if end > deadline:
            observe("sla_first_response_breaches", deadline)
        elif replied and reply is not None:
            ref.observations.append(
                Observation("sla_first_response_met", tl[reply].occurred_at, channel[reply])
            )
        if at_risk < end:
            observe("sla_at_risk", at_risk)
        return
    if now > deadline:
        observe("sla_first_response_breaches", deadline)
    else:
        ref.pending_deadlines.append(deadline)
    if at_risk <= now:
        observe("sla_at_risk", at_risk)


def _call(tl: list[Event], channel: list[str], rules: Thresholds, ref: Reference) -> None:
    queued = next((i for i, e in enumerate(tl) if e.type == "call.queued"), None)
    if queued is None:
        return  # not a queued call (an outbound call, say): no queue KPI applies

    def observe(measure: str, i: int, value: float = 1.0) -> None:
        ref.observations.append(Observation(measure, tl[i].occurred_at, channel[i], value))

    observe("calls_offered", queued)  # once per call: a transfer back into a queue is the same call
    # The first way out of the queue after entering it decides the call's outcome.
    out = next((i for i in range(queued + 1, len(tl)) if tl[i].type in QUEUE_EXITS), None)
    if out is None:
        return
    e = tl[out]
    wait = e.wait_seconds if e.wait_seconds is not None else seconds(tl[queued].occurred_at, e.occurred_at)
    if e.type == "call.timed_out":
        observe("calls_timed_out", out)
    elif e.type == "call.abandoned":
        observe("calls_abandoned", out)
        observe("abandon_wait_seconds", out, wait)
        if wait < rules.short_abandon_seconds:
            observe("calls_short_abandoned", out)
    else:
        observe("calls_answered", out)
        observe("asa_seconds", out, wait)
        if wait <= rules.service_level_seconds:
            observe("calls_answered_in_target", out)
        end = next((i for i in range(out + 1, len(tl)) if tl[i].type == "call.ended"), None)
        if end is not None:
            x = tl[end]
            handle = (x.talk_seconds or 0.0) + (x.hold_seconds or 0.0) + (x.wrap_seconds or 0.0)
            observe("aht_seconds", end, handle)


def _surveys(tl: list[Event], channel: list[str], ref: Reference) -> None:
    # The latest answer of each survey counts (a rating then a comment is one survey).
    latest: dict[str, int] = {}
    for i, e in enumerate(tl):
        if e.type == "survey.submitted" and e.survey is not None and e.score is not None:
            latest[e.survey_id if e.survey_id is not None else f"#{i}"] = i
    for i in sorted(latest.values()):
        e = tl[i]
        for measure, value in survey_measures(e.survey or "", e.score or 0):
            ref.observations.append(Observation(measure, e.occurred_at, channel[i], value))


def survey_measures(kind: str, score: int) -> list[tuple[str, float]]:
    if kind == "csat":
        return [("csat_score", float(score))] + ([("csat_satisfied", 1.0)] if score >= 4 else [])
    if kind == "nps":
        found = [("nps_responses", 1.0)]
        if score >= 9:
            found.append(("nps_promoters", 1.0))
        elif score <= 6:
            found.append(("nps_detractors", 1.0))
        return found
    if kind == "ces":
        return [("ces_score", float(score))]
    return []
