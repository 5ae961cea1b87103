"""One conversation's (or call's) state, and how an event changes its facts.

The invariant: the facts emitted so far for a conversation always equal
``replay(timeline)`` plus the SLA verdicts of ``sla.judge`` as of the last evaluation.
An event that sorts after everything seen (the usual case) is one :meth:`Walk.step`; one that arrives out of
order, or re-rates a survey, replays the timeline with and without it and emits the
difference: retractions of facts that no longer hold and the new ones. Duplicates (an
event id already in the timeline) change nothing.
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Final

import msgspec

from services.aggregator.decode import Step, order_key
from services.aggregator.sla import Outbox, SlaBook, SlaState, judge
from services.aggregator.walk import Fact, Rules, Walk, minute_of, replay

# Support conversations this long are pathological (bot loops, spam). Rather than drop the
# oldest steps, which would break the replay invariant, further events are quarantined.
MAX_TIMELINE: Final = 5000


class TimelineFull(Exception):
    """The conversation reached MAX_TIMELINE events; the caller quarantines the event."""


# gc=False: these structs never take part in reference cycles, and hundreds of thousands of
# them tracked by the cycle collector cost whole seconds per full collection (bench/README.md).
class Conversation(msgspec.Struct, kw_only=True, gc=False):
    tenant: str
    conversation_id: str
    partition: int
    timeline: list[Step] = msgspec.field(default_factory=list)
    walk: Walk = msgspec.field(default_factory=Walk)
    sla: SlaState = msgspec.field(default_factory=SlaState)

    def seen(self, event_id: str) -> bool:
        # A plain loop: about three times faster than any() over a generator for short timelines.
        for step in self.timeline:  # noqa: SIM110
            if step.id == event_id:
                return True
        return False

    @property
    def sla_due_at(self) -> float | None:
        """When the timer must next look at this conversation (None: nothing pending)."""
        return self.sla.due


class Changes:
    """Facts to add and to retract, accumulated over a batch."""

    __slots__ = ("added", "retracted")

    def __init__(self) -> None:
        self.added: list[Fact] = []
        self.retracted: list[Fact] = []


def apply(conv: Conversation, step: Step, rules: Rules, changes: Changes) -> bool:
    """Add ``step`` to the conversation; False when it was a duplicate.

    Raises :class:`TimelineFull` (changing nothing) when the conversation is full.
    """
    if conv.seen(step.id):
        return False
    if len(conv.timeline) >= MAX_TIMELINE:
        raise TimelineFull(f"{conv.conversation_id} has {len(conv.timeline)} events")
    key = order_key(step)
    walk = conv.walk
    rerated = (
        step.type == "survey.submitted" and step.survey_id is not None and step.survey_id in walk.surveys
    )
    if (walk.last is None or key > walk.last) and not rerated:
        conv.timeline.append(step)
        walk.step(step, key, rules, changes.added)
    else:
        _replay_with(conv, step, rules, changes)
    return True


def _replay_with(conv: Conversation, step: Step, rules: Rules, changes: Changes) -> None:
    before = [(order_key(s), s) for s in conv.timeline]
    _, old_facts = replay(before, rules)
    after = list(before)
    bisect.insort(after, (order_key(step), step), key=lambda pair: pair[0])
    walk, new_facts = replay(after, rules)
    conv.timeline = [s for _, s in after]
    conv.walk = walk
    old, new = Counter(old_facts), Counter(new_facts)
    changes.added.extend((new - old).elements())
    changes.retracted.extend((old - new).elements())


def tick(
    conv: Conversation, now: float, book: SlaBook, changes: Changes, outbox: list[Outbox] | None
) -> None:
    """Bring the conversation's SLA verdicts in line with its timeline as of ``now``."""
    judge(
        conv.tenant,
        conv.conversation_id,
        conv.walk,
        conv.sla,
        book,
        now,
        changes.added,
        changes.retracted,
        outbox,
    )


_state_encoder: Final = msgspec.msgpack.Encoder()
_state_decoder: Final = msgspec.msgpack.Decoder(Conversation)


def dump(conv: Conversation) -> bytes:
    return _state_encoder.encode(conv)


def load(data: bytes) -> Conversation:
    return _state_decoder.decode(data)


__all__ = ["Changes", "Conversation", "Fact", "TimelineFull", "apply", "dump", "load", "minute_of", "tick"]
