"""The KPI facts of one conversation or call, from its timeline.

A :class:`Walk` replays a timeline in event-time order and emits *facts*: a measure
observed in a minute under some dimensions, with a value. Facts depend only on the
events, never on when they arrived, so a timeline gives the same facts whatever the
order of delivery. The aggregator appends in-order events with :meth:`Walk.step` and
replays the whole timeline when an event arrives out of order (see ``conversation.py``).
SLA facts are not produced here: they depend on the tenant's policies and on *now* (a
deadline passing with no reply), and ``sla.py`` derives them from what the walk records
(status changes, customer turns, first reply).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

import msgspec

from services.aggregator.decode import Step


class Fact(NamedTuple):
    measure: str
    minute: int
    channel: str
    team: str
    agent: str
    labels: tuple[str, ...]
    value: float


@dataclass(frozen=True, slots=True)
class Rules:
    """The configurable thresholds; changing one needs a replay to rewrite history."""

    short_abandon_seconds: float = 5.0
    service_level_seconds: float = 20.0
    # The first-response targets (seconds, calendar time) of a tenant that defined no SLA
    # policy, per channel; channels absent have no SLA. See services/aggregator/sla.py.
    first_response_targets: tuple[tuple[str, float], ...] = ()


HUMAN_STATUSES: Final = frozenset({"open", "pending", "snoozed"})


def minute_of(t: float) -> int:
    return int(t // 60) * 60


class Walk(msgspec.Struct, kw_only=True, gc=False):  # no cycles: see Conversation
    """The state of a replay after the steps seen so far; persisted between events."""

    channel: str = "other"
    team: str = ""
    agent: str = ""
    labels: tuple[str, ...] = ()
    priority: str | None = None
    status: str | None = None
    last: tuple[float, int, str] | None = None
    is_call: bool = False
    # conversations
    created_at: float | None = None
    frt_start: float | None = None
    # Where the first-response SLA clock starts: creation or bot handoff (a reopen, unlike
    # for the KPI, does not restart it: a breach that happened stays a breach).
    sla_start: float | None = None
    first_response_at: float | None = None
    first_replier: str = ""
    waiting_since: float | None = None
    first_resolved_at: float | None = None
    human_messages: int = 0
    first_inbound_at: float | None = None
    replied_after_customer: bool = False
    # calls
    queued_at: float | None = None
    answered_at: float | None = None
    left_queue_at: float | None = None
    aht_done: bool = False
    # Transferred after the answer: the queue's part is over even if no end ever follows
    # (Asterisk's queue_log has none after a TRANSFER).
    transferred: bool = False
    # survey_id -> the latest answer's order key, so a re-rating replaces the first
    surveys: dict[str, tuple[float, int, str]] = msgspec.field(default_factory=dict)
    # What the SLA clocks need: (time, new status) changes, and the customer's turns after
    # the first response as [asked at, answered at, replier] (answered at None: waiting).
    statuses: list[tuple[float, str]] = msgspec.field(default_factory=list)
    turns: list[tuple[float, float | None, str]] = msgspec.field(default_factory=list)

    @property
    def closed(self) -> bool:
        """Nothing more is expected soon: the state may leave memory (it stays in Postgres)."""
        if self.is_call:
            return self.left_queue_at is not None and (
                self.answered_at is None or self.aht_done or self.transferred
            )
        return self.status == "resolved"

    @property
    def in_queue(self) -> bool:
        return self.is_call and self.queued_at is not None and self.left_queue_at is None

    @property
    def backlog(self) -> bool:
        return not self.is_call and self.status in ("open", "pending")

    def _fact(
        self, out: list[Fact], measure: str, t: float, value: float = 1.0, agent: str | None = None
    ) -> None:
        out.append(
            Fact(
                measure,
                minute_of(t),
                self.channel,
                self.team,
                self.agent if agent is None else agent,
                self.labels,
                value,
            )
        )

    def step(self, ev: Step, key: tuple[float, int, str], rules: Rules, out: list[Fact]) -> None:
        """Apply one event that sorts after every event applied so far."""
        self.last = key
        if ev.channel != "other" and self.channel == "other":
            self.channel = ev.channel
        kind, _, action = ev.type.partition(".")
        if kind == "conversation":
            self._conversation(ev, action, out)
        elif kind == "message":
            self._message(ev, out)
        elif kind == "call":
            self._call(ev, action, rules, out)
        elif kind == "survey":
            self._survey(ev, key, out)

    # conversations -------------------------------------------------------------------

    def _conversation(self, ev: Step, action: str, out: list[Fact]) -> None:
        if ev.team is not None:
            self.team = ev.team
        if ev.agent is not None:
            self.agent = ev.agent
        if ev.labels is not None:
            self.labels = tuple(sorted(set(ev.labels)))
        if ev.priority is not None:
            self.priority = ev.priority
        if action == "created":
            if self.created_at is not None:
                return
            self.created_at = ev.t
            self._fact(out, "conversations_created", ev.t)
            # A conversation that starts pending is a bot's; the human clock starts at handoff.
            self.status = ev.status or "open"
            self.statuses.append((ev.t, self.status))
            if self.status != "pending":
                self.frt_start = self.sla_start = ev.t
        elif action == "status_changed" and ev.status is not None:
            self._status(ev.t, ev.status, out)

    def _status(self, t: float, new: str, out: list[Fact]) -> None:
        previous, self.status = self.status, new
        if previous == new:
            return
        self.statuses.append((t, new))
        if new == "resolved":
            self._resolved(t, out)
            return
        if previous == "resolved" and new in HUMAN_STATUSES:
            self._fact(out, "conversations_reopened", t)
            if self.first_response_at is None:
                # Resolved and reopened before any human reply: the wait starts again.
                self.frt_start = t
            if self.sla_start is None:
                self.sla_start = t  # a bot resolved it and the customer came back for a human
            return
        if new == "open" and self.frt_start is None:
            self.frt_start = self.sla_start = t  # bot handoff

    def _resolved(self, t: float, out: list[Fact]) -> None:
        created = self.created_at if self.created_at is not None else t
        self._fact(out, "conversations_resolved", t)
        self._fact(out, "resolution_seconds", t, max(t - created, 0.0))
        if self.first_resolved_at is not None:
            return
        self.first_resolved_at = t
        self._fact(out, "first_resolutions", t)
        self._fact(out, "first_resolution_seconds", t, max(t - created, 0.0))
        if self.human_messages <= 1:
            self._fact(out, "one_touch_resolutions", t)
        if self.first_inbound_at is not None and not self.replied_after_customer:
            self._fact(out, "conversations_abandoned", t)

    # messages --------------------------------------------------------------------------

    def _message(self, ev: Step, out: list[Fact]) -> None:
        if ev.private:
            return
        if ev.author == "bot":
            self._fact(out, "messages_bot", ev.t)
            return
        if ev.direction == "inbound" and ev.author == "customer":
            self._fact(out, "messages_inbound", ev.t)
            if self.first_inbound_at is None:
                self.first_inbound_at = ev.t
            if self.first_response_at is not None and self.waiting_since is None:
                self.waiting_since = ev.t
                self.turns.append((ev.t, None, ""))
            return
        if ev.direction != "outbound":
            return
        if ev.author != "agent" or ev.automated is not None:
            return
        replier = ev.agent if ev.agent is not None else self.agent
        self._fact(out, "messages_outbound", ev.t, agent=replier)
        if self.first_resolved_at is None:
            self.human_messages += 1
        if self.first_inbound_at is not None:
            self.replied_after_customer = True
        if self.first_response_at is None:
            # A human answering while the bot still holds it is the handoff itself.
            start = self.frt_start if self.frt_start is not None else self.created_at
            start = ev.t if start is None else min(start, ev.t)
            self.first_response_at = ev.t
            self.first_replier = replier
            self._fact(out, "first_response_seconds", ev.t, ev.t - start, agent=replier)
        elif self.waiting_since is not None:
            self._fact(out, "next_reply_seconds", ev.t, ev.t - self.waiting_since, agent=replier)
            self.waiting_since = None
            self.turns[-1] = (self.turns[-1][0], ev.t, replier)

    # calls -----------------------------------------------------------------------------

    def _call(self, ev: Step, action: str, rules: Rules, out: list[Fact]) -> None:
        self.is_call = True
        if self.channel == "other":
            self.channel = "phone"
        if ev.queue is not None:
            self.team = ev.queue
        elif ev.team is not None:
            self.team = ev.team
        if action == "queued":
            # A transfer back into a queue is the same call: offered once.
            if self.queued_at is None:
                self.queued_at = ev.t
                self._fact(out, "calls_offered", ev.t)
            return
        if self.queued_at is None:
            return  # not a queued call (e.g. outbound): no queue KPI applies
        wait = ev.wait_seconds if ev.wait_seconds is not None else max(ev.t - self.queued_at, 0.0)
        if action == "answered":
            if ev.agent is not None:
                self.agent = ev.agent
            if self.answered_at is None and self.left_queue_at is None:
                self.answered_at = self.left_queue_at = ev.t
                self._fact(out, "calls_answered", ev.t)
                self._fact(out, "asa_seconds", ev.t, wait)
                if wait <= rules.service_level_seconds:
                    self._fact(out, "calls_answered_in_target", ev.t)
        elif action in ("abandoned", "timed_out"):
            if self.left_queue_at is not None:
                return
            self.left_queue_at = ev.t
            if action == "timed_out":
                self._fact(out, "calls_timed_out", ev.t)
                return
            self._fact(out, "calls_abandoned", ev.t)
            self._fact(out, "abandon_wait_seconds", ev.t, wait)
            if wait < rules.short_abandon_seconds:
                self._fact(out, "calls_short_abandoned", ev.t)
        elif action == "transferred" and self.answered_at is not None:
            self.transferred = True
        elif action == "ended" and self.answered_at is not None and not self.aht_done:
            self.aht_done = True
            handle = (ev.talk_seconds or 0.0) + (ev.hold_seconds or 0.0) + (ev.wrap_seconds or 0.0)
            self._fact(out, "aht_seconds", ev.t, handle)

    # surveys ---------------------------------------------------------------------------

    def _survey(self, ev: Step, key: tuple[float, int, str], out: list[Fact]) -> None:
        if ev.score is None or ev.survey is None:
            return
        if ev.survey_id is not None:
            # The caller replays the timeline when a known survey is answered again.
            self.surveys[ev.survey_id] = key
        rated = ev.agent if ev.agent is not None else self.agent
        score = float(ev.score)
        if ev.survey == "csat":
            self._fact(out, "csat_score", ev.t, score, agent=rated)
            if ev.score >= 4:
                self._fact(out, "csat_satisfied", ev.t, agent=rated)
        elif ev.survey == "nps":
            self._fact(out, "nps_responses", ev.t, agent=rated)
            if ev.score >= 9:
                self._fact(out, "nps_promoters", ev.t, agent=rated)
            elif ev.score <= 6:
                self._fact(out, "nps_detractors", ev.t, agent=rated)
        elif ev.survey == "ces":
            self._fact(out, "ces_score", ev.t, score, agent=rated)


def replay(timeline: list[tuple[tuple[float, int, str], Step]], rules: Rules) -> tuple[Walk, list[Fact]]:
    """Walk a sorted timeline from scratch; surveys re-rated keep only their latest answer."""
    latest: dict[str, tuple[float, int, str]] = {}
    for key, ev in timeline:
        if ev.type == "survey.submitted" and ev.survey_id is not None:
            latest[ev.survey_id] = max(key, latest.get(ev.survey_id, key))
    walk = Walk()
    facts: list[Fact] = []
    for key, ev in timeline:
        if ev.type == "survey.submitted" and ev.survey_id is not None and latest[ev.survey_id] != key:
            walk.last = key
            continue
        walk.step(ev, key, rules, facts)
    return walk, facts
