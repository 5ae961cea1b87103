"""SLA clocks of one conversation under its tenant's policy: facts, timers and transitions.

What a conversation owes its SLA is a function of its walk (creation, handoff, replies,
customer turns, status changes), of the policy version that matched it when it was
created, and of *now* (a deadline passing with no reply). :func:`judge` evaluates that
with the pure engine of ``shared.sla`` and compares it with the SLA facts emitted so far
(kept in the conversation's state): the difference goes out as additions and
retractions, like the replay-diff of an out-of-order event, so the buckets always hold
exactly the current verdicts. Each clock gives at most one fact per verdict: met (in the
minute of the reply), breached (in the minute of the deadline, whether or not a reply
ever comes) and at risk (in the minute its at-risk instant passed while it was running).

A verdict's dimensions are those of the conversation when it was first recorded; a later
reassignment does not move a breach to the new agent. Breaches and at-risk transitions
also become messages for the breach topic, written to the outbox in the same flush.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final, NamedTuple

import msgspec

from services.aggregator.sla_clocks import Plan, Span, clocks
from services.aggregator.walk import Fact, Walk, minute_of
from shared.events import partition_key
from shared.sla.calendar import ALWAYS, Calendar
from shared.sla.deadlines import ClockResult, History, Turn, evaluate
from shared.sla.policy import ClockType, Policy, SlaConfig, Target

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# A waiting clock is breached once now is *past* its deadline (a reply at the deadline is in
# time), so the timer looks again this long after it.
AFTER_DEADLINE: Final = 0.001
_ALWAYS_ONLY: Final[Mapping[str, Calendar]] = {ALWAYS.name: ALWAYS}

MET: Final = "met"
BREACHED: Final = "breached"
AT_RISK: Final = "at_risk"


class SlaBook:
    """Every tenant's SLA configuration, and the defaults of tenants that have none.

    A tenant with stored policy versions is judged by its list from the earliest
    ``effective_from`` among them on; before that instant (conversations created earlier),
    and for a tenant with none, one generated policy per channel of ``default_targets`` applies
    (first response only, calendar time, no pausing): the behaviour before policies existed.
    ``generation`` changes whenever the configuration is reloaded, so that conversations
    judged under the old one are judged again when they next change or fall due.
    """

    def __init__(
        self,
        configs: Mapping[str, SlaConfig] | None = None,
        default_targets: Sequence[tuple[str, float]] = (),
        generation: int = 0,
    ) -> None:
        self.configs = {t: c for t, c in (configs or {}).items() if c.policies}
        self.default_targets = tuple(default_targets)
        self.generation = generation
        self._calendars = {t: c.calendar_set() for t, c in self.configs.items()}
        self._since = {
            t: min(p.effective_from for p in c.policies).timestamp() for t, c in self.configs.items()
        }
        self._defaults: dict[tuple[str, str], Policy | None] = {}
        self._plans: dict[tuple[str, str, int], Plan | None] = {}

    def reloaded(self, configs: Mapping[str, SlaConfig]) -> SlaBook:
        return SlaBook(configs, self.default_targets, self.generation + 1)

    def policy(self, tenant: str, walk: Walk, at: float) -> tuple[Policy | None, Mapping[str, Calendar]]:
        """The version that judges a conversation created at ``at`` (epoch seconds)."""
        config = self.configs.get(tenant)
        if config is not None and at >= self._since[tenant]:
            when = _dt(at)
            found = config.match(tenant, walk.channel, walk.priority, walk.team or None, walk.labels, when)
            return found, self._calendars[tenant]
        key = (tenant, walk.channel)
        if key not in self._defaults:
            self._defaults[key] = self._default(tenant, walk.channel)
        return self._defaults[key], _ALWAYS_ONLY

    def plan(self, policy: Policy) -> Plan | None:
        """The integer fast path's view of a version; None when a target is in business time."""
        key = (policy.tenant, policy.name, policy.version)
        if key not in self._plans:
            targets = policy.targets()
            fast = all(t.clock is ClockType.CALENDAR for t in targets.values())
            self._plans[key] = (
                Plan(
                    policy.name,
                    policy.version,
                    {kind: t.seconds for kind, t in targets.items()},
                    frozenset(policy.pausing_statuses),
                    policy.at_risk_share,
                )
                if fast
                else None
            )
        return self._plans[key]

    def _default(self, tenant: str, channel: str) -> Policy | None:
        for name, seconds in self.default_targets:
            if name == channel:
                return Policy(
                    tenant=tenant,
                    name=f"default-{channel}",
                    version=1,
                    effective_from=EPOCH,
                    channels=(channel,),
                    first_response=Target(seconds=seconds),
                    pausing_statuses=(),
                )
        return None


class Clock(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    """One clock's verdict as of the last evaluation, kept for the conversation view."""

    kind: str  # first_response, next_reply or resolution
    turn: int | None = None
    started_at: float
    target_seconds: float
    deadline: float | None = None
    at_risk_at: float | None = None
    stopped_at: float | None = None
    outcome: str
    elapsed_seconds: float


class SlaState(msgspec.Struct, kw_only=True, gc=False):
    policy: str | None = None
    version: int | None = None
    clocks: list[Clock] = msgspec.field(default_factory=list)
    # "<clock>/<verdict>" -> the fact emitted for it, to retract it exactly.
    emitted: dict[str, Fact] = msgspec.field(default_factory=dict)
    # The inputs of the last evaluation (a hash: only compared, and a restart merely costs
    # one extra evaluation), and when the verdicts change next without any event.
    signature: int = 0
    due: float | None = None
    # Earliest at-risk instant of a running clock, and earliest deadline of a breached clock
    # still waiting for its reply: the live view's "at risk" and "breaching now".
    at_risk_at: float | None = None
    breached_at: float | None = None


class Outbox(NamedTuple):
    """A message for the breach topic: Kafka key and JSON payload."""

    key: bytes
    payload: bytes


class _Transition(msgspec.Struct, kw_only=True):
    id: str
    type: str
    tenant: str
    conversation_id: str
    clock: str
    turn: int | None
    policy: str | None
    policy_version: int | None
    channel: str
    team: str
    agent: str
    labels: tuple[str, ...]
    at: datetime
    deadline: datetime | None
    detected_at: datetime


_encoder: Final = msgspec.json.Encoder()


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _dt_or_none(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


def _t(d: datetime | None) -> float | None:
    return None if d is None else d.timestamp()


def _signature(walk: Walk, generation: int) -> int:
    return hash(
        (
            generation,
            walk.channel,
            walk.team,
            walk.priority,
            walk.labels,
            walk.created_at,
            walk.sla_start,
            walk.first_response_at,
            len(walk.turns),
            walk.turns[-1] if walk.turns else None,
            len(walk.statuses),
        )
    )


def _history(walk: Walk, created: float) -> History:
    return History(
        created_at=_dt(created),
        first_response_from=_dt_or_none(walk.sla_start),
        first_reply_at=_dt_or_none(walk.first_response_at),
        turns=tuple(Turn(_dt(asked), _dt_or_none(answered)) for asked, answered, _ in walk.turns),
        statuses=tuple((_dt(t), status) for t, status in walk.statuses),
    )


def _span(c: ClockResult) -> Span:
    return Span(
        c.kind,
        c.turn,
        c.started_at.timestamp(),
        c.target_seconds,
        _t(c.deadline),
        _t(c.at_risk_at),
        _t(c.stopped_at),
        c.outcome.value,
        c.elapsed_seconds,
    )


def _evaluate(walk: Walk, policy: Policy, calendars: Mapping[str, Calendar], now: float) -> list[Span]:
    """The definition (``shared.sla``), for targets in business time."""
    if walk.created_at is None:
        return []  # judge() only asks once the conversation's creation is known
    evaluation = evaluate(_history(walk, walk.created_at), policy, calendars, _dt(now))
    return [
        _span(c)
        for c in evaluation.clocks()
        # A bot still holds it (no handoff yet): no human is expected, no first-response clock.
        if c.kind != "first_response" or walk.sla_start is not None
    ]


def _clock_id(clock: Span) -> str:
    return clock.kind if clock.turn is None else f"{clock.kind}:{clock.turn}"


def _verdicts(walk: Walk, spans: Sequence[Span], now: float) -> dict[str, tuple[str, int, str]]:
    """ "<clock>/<verdict>" -> (measure, minute, agent) of every verdict holding as of ``now``."""
    out: dict[str, tuple[str, int, str]] = {}
    for clock in spans:
        cid = _clock_id(clock)
        stopped, deadline, at_risk = clock.stopped_at, clock.deadline, clock.at_risk_at
        # At risk: the at-risk instant passed while the clock still ran (a reply exactly then is not).
        # Listed first: it comes before the breach, and the breach topic gets them in this order.
        if at_risk is not None and (at_risk < stopped if stopped is not None else at_risk <= now):
            out[f"{cid}/{AT_RISK}"] = ("sla_at_risk", minute_of(at_risk), walk.agent)
        if clock.outcome == "met" and stopped is not None:
            if clock.kind == "first_response":
                replier = walk.first_replier
            elif clock.kind == "next_reply" and clock.turn is not None:
                replier = walk.turns[clock.turn][2]
            else:
                replier = walk.agent
            out[f"{cid}/{MET}"] = (f"sla_{clock.kind}_met", minute_of(stopped), replier)
        elif clock.outcome == "breached" and deadline is not None:
            out[f"{cid}/{BREACHED}"] = (f"sla_{clock.kind}_breaches", minute_of(deadline), walk.agent)
    return out


def judge(
    tenant: str,
    conversation_id: str,
    walk: Walk,
    state: SlaState,
    book: SlaBook,
    now: float,
    added: list[Fact],
    retracted: list[Fact],
    outbox: list[Outbox] | None,
) -> None:
    """Bring the conversation's SLA facts in line with its walk as of ``now``."""
    if walk.is_call or walk.created_at is None:
        return  # queued calls have the service level; a conversation needs its creation
    signature = _signature(walk, book.generation)
    if signature == state.signature and (state.due is None or now < state.due):
        return  # nothing the verdicts depend on has changed
    state.signature = signature
    policy, calendars = book.policy(tenant, walk, walk.created_at)
    spans: list[Span] = []
    if policy is not None:
        plan = book.plan(policy)
        spans = clocks(walk, plan, now) if plan is not None else _evaluate(walk, policy, calendars, now)
    state.policy = None if policy is None else policy.name
    state.version = None if policy is None else policy.version
    state.clocks = [_stored(c) for c in spans]
    _schedule(state, spans, now)
    desired = _verdicts(walk, spans, now)
    emitted = state.emitted
    for key, fact in list(emitted.items()):
        want = desired.get(key)
        if want is None or want[0] != fact.measure or want[1] != fact.minute:
            retracted.append(fact)
            del emitted[key]
            if outbox is not None and want is None and not key.endswith(MET):
                outbox.append(_message(tenant, conversation_id, key, "cleared", fact, state, now))
    for key, (measure, minute, agent) in desired.items():
        if key in emitted:
            continue
        fact = Fact(measure, minute, walk.channel, walk.team, agent, walk.labels, 1.0)
        added.append(fact)
        emitted[key] = fact
        if outbox is not None and not key.endswith(MET):
            outbox.append(_message(tenant, conversation_id, key, "", fact, state, now))


def _stored(c: Span) -> Clock:
    return Clock(
        kind=c.kind,
        turn=c.turn,
        started_at=c.started_at,
        target_seconds=c.target_seconds,
        deadline=c.deadline,
        at_risk_at=c.at_risk_at,
        stopped_at=c.stopped_at,
        outcome=c.outcome,
        elapsed_seconds=c.elapsed_seconds,
    )


def _schedule(state: SlaState, spans: Sequence[Span], now: float) -> None:
    due: list[float] = []
    at_risk: list[float] = []
    breached: list[float] = []
    for c in spans:
        deadline, risk = c.deadline, c.at_risk_at
        if c.outcome == "running":
            if risk is not None:
                at_risk.append(risk)
                if risk > now:
                    due.append(risk)
            if deadline is not None:
                due.append(max(deadline, now) + AFTER_DEADLINE)
        elif c.outcome == "breached" and c.stopped_at is None and deadline is not None:
            breached.append(deadline)
    state.due = min(due, default=None)
    state.at_risk_at = min(at_risk, default=None)
    state.breached_at = min(breached, default=None)


def _message(
    tenant: str, conversation_id: str, key: str, suffix: str, fact: Fact, state: SlaState, now: float
) -> Outbox:
    clock_id, verdict = key.split("/", 1)
    kind, _, turn = clock_id.partition(":")
    kind_of = f"sla.{verdict}{'_' + suffix if suffix else ''}"
    clock = next(
        (c for c in state.clocks if c.kind == kind and c.turn == (int(turn) if turn else None)), None
    )
    at = (clock.deadline if verdict == BREACHED else clock.at_risk_at) if clock is not None else None
    # The same verdict always gets the same id, so consumers can drop a redelivery.
    digest = hashlib.sha256(f"{tenant}\x1f{conversation_id}\x1f{key}\x1f{kind_of}\x1f{fact.minute}".encode())
    message = _Transition(
        id=digest.hexdigest()[:32],
        type=kind_of,
        tenant=tenant,
        conversation_id=conversation_id,
        clock=kind,
        turn=int(turn) if turn else None,
        policy=state.policy,
        policy_version=state.version,
        channel=fact.channel,
        team=fact.team,
        agent=fact.agent,
        labels=fact.labels,
        at=_dt(at if at is not None else fact.minute),
        deadline=_dt_or_none(clock.deadline if clock is not None else None),
        detected_at=_dt(now),
    )
    return Outbox(partition_key(tenant, conversation_id), _encoder.encode(message))


__all__ = ["Clock", "Outbox", "SlaBook", "SlaState", "judge"]
