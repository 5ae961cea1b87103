"""Builders of canonical events for tests: a conversation or a call as a few lines of code."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.events import Event

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
_ids = itertools.count(1)


@dataclass
class Timeline:
    """Events of one conversation or call, at offsets in seconds from ``start``."""

    conversation_id: str
    tenant: str = "t1"
    channel: str = "chat"
    start: datetime = T0
    events: list[Event] = field(default_factory=list)

    def add(self, type_: str, at: float, **fields: Any) -> Timeline:
        self.events.append(
            Event(
                id=f"ev-{next(_ids)}",
                tenant=self.tenant,
                source="test:1",
                type=type_,
                occurred_at=self.start + timedelta(seconds=at),
                conversation_id=self.conversation_id,
                channel=self.channel,
                **fields,
            )
        )
        return self

    # conversations
    def created(self, at: float = 0, **kw: Any) -> Timeline:
        return self.add("conversation.created", at, **kw)

    def status(self, at: float, status: str, **kw: Any) -> Timeline:
        return self.add("conversation.status_changed", at, status=status, **kw)

    def customer(self, at: float, **kw: Any) -> Timeline:
        return self.add("message.created", at, direction="inbound", author="customer", **kw)

    def agent(self, at: float, agent: str = "alice", **kw: Any) -> Timeline:
        return self.add("message.created", at, direction="outbound", author="agent", agent=agent, **kw)

    def bot(self, at: float, **kw: Any) -> Timeline:
        return self.add("message.created", at, direction="outbound", author="bot", **kw)

    def survey(self, at: float, kind: str, score: int, survey_id: str = "s1", **kw: Any) -> Timeline:
        return self.add("survey.submitted", at, survey=kind, score=score, survey_id=survey_id, **kw)

    # calls
    def queued(self, at: float = 0, queue: str = "support", **kw: Any) -> Timeline:
        return self.add("call.queued", at, queue=queue, **kw)

    def answered(self, at: float, wait: float, agent: str = "bob", **kw: Any) -> Timeline:
        return self.add("call.answered", at, wait_seconds=wait, agent=agent, **kw)

    def abandoned(self, at: float, wait: float, **kw: Any) -> Timeline:
        return self.add("call.abandoned", at, wait_seconds=wait, **kw)

    def ended(self, at: float, talk: float, hold: float = 0, wrap: float = 0, **kw: Any) -> Timeline:
        return self.add("call.ended", at, talk_seconds=talk, hold_seconds=hold, wrap_seconds=wrap, **kw)


def random_timelines(rnd: Any, count: int, start: datetime = T0, tenant: str = "t1") -> list[Timeline]:
    """Plausible conversations and calls, with bots, notes, reopens, surveys, abandons and transfers."""
    out: list[Timeline] = []
    for n in range(count):
        begin = start + timedelta(seconds=rnd.uniform(0, 3 * 3600))
        if rnd.random() < 0.3:
            t = Timeline(f"call-{n}", tenant=tenant, channel="phone", start=begin).queued(
                0, queue=rnd.choice("ab")
            )
            wait = rnd.expovariate(1 / 30)
            if rnd.random() < 0.75:
                t.answered(wait, wait=round(wait, 3), agent=rnd.choice(["u1", "u2", "u3"]))
                t.ended(wait + 200, talk=rnd.uniform(30, 600), wrap=rnd.uniform(0, 60))
            else:
                t.abandoned(wait, wait=round(wait, 3))
            out.append(t)
            continue
        t = Timeline(
            f"conv-{n}", tenant=tenant, channel=rnd.choice(["chat", "email", "whatsapp"]), start=begin
        )
        bot = rnd.random() < 0.3
        t.created(
            0,
            status="pending" if bot else "open",
            team=rnd.choice(["sales", "support"]),
            labels=rnd.sample(["vip", "billing", "bug"], rnd.randint(0, 2)),
        )
        clock = 0.0
        t.customer(clock)
        if bot:
            t.bot(clock + 2)
            clock += rnd.uniform(10, 120)
            t.status(clock, "open")
        agent = rnd.choice(["alice", "bob", "carol"])
        t.add("conversation.assigned", clock + 1, agent=agent)
        for _ in range(rnd.randint(0, 4)):
            clock += rnd.expovariate(1 / 200)
            if rnd.random() < 0.5:
                t.agent(clock, agent=agent, private=rnd.random() < 0.1)
            else:
                t.customer(clock)
        if rnd.random() < 0.8:
            clock += rnd.uniform(10, 600)
            t.status(clock, "resolved")
            if rnd.random() < 0.4:
                t.survey(clock + 30, "csat", rnd.randint(1, 5), survey_id=f"s-{n}", agent=agent)
                if rnd.random() < 0.3:
                    t.survey(clock + 60, "csat", rnd.randint(1, 5), survey_id=f"s-{n}", agent=agent)
            if rnd.random() < 0.15:
                t.status(clock + 900, "open").agent(clock + 950, agent=agent).status(clock + 1000, "resolved")
        out.append(t)
    return out
