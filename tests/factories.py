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
