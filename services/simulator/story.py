"""Stories: what one conversation or call sends, when, and what it should become.

A :class:`Story` is pure data: vendor events at offsets (seconds) from the story's start,
each with the canonical event types the ingest connector is expected to map it to. The
expectations are the simulator's ground truth: the tests check the connectors against
them, and ``--record`` writes them next to what the ingest service answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from services.simulator.vendors.asterisk import QueueLogLine
from services.simulator.vendors.chatwoot import ChatwootEvent
from services.simulator.vendors.twilio import TaskEvent, WorkerEvent

CHATWOOT: Final = "chatwoot"
TWILIO: Final = "twilio"
ASTERISK: Final = "asterisk"
CONNECTORS: Final = (CHATWOOT, TWILIO, ASTERISK)

VendorEvent = ChatwootEvent | TaskEvent | WorkerEvent | QueueLogLine


@dataclass(frozen=True, slots=True)
class Delivery:
    offset: float
    connector: str
    event: VendorEvent
    # Canonical event types (shared.events.EventType values) the connector should emit, in order.
    expect: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Story:
    number: int
    kind: str
    deliveries: tuple[Delivery, ...]
    # The story's decisions (bot? slow? abandoned? rating...), for ground truth and tests.
    plan: Mapping[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> float:
        return self.deliveries[-1].offset if self.deliveries else 0.0


class Script:
    """Collects deliveries while a story is written; :meth:`story` sorts them by offset."""

    def __init__(self) -> None:
        self._deliveries: list[Delivery] = []

    def add(self, offset: float, connector: str, event: VendorEvent, *expect: str) -> None:
        self._deliveries.append(Delivery(round(offset, 3), connector, event, expect))

    def story(self, number: int, kind: str, plan: Mapping[str, Any]) -> Story:
        # Stable sort: events written in causal order keep it when offsets tie.
        ordered = sorted(self._deliveries, key=lambda d: d.offset)
        return Story(number, kind, tuple(ordered), dict(plan))


@dataclass(frozen=True, slots=True)
class Mix:
    """The traffic's shape. Kind weights are relative; the rest are probabilities."""

    # Kinds of story started (relative weights; kinds whose connector is not configured drop out).
    chat: float = 0.35
    email: float = 0.10
    whatsapp: float = 0.15
    twilio: float = 0.20
    asterisk: float = 0.20
    # Chat and WhatsApp conversations an agent bot takes first, and of those, solved by the bot.
    bot_share: float = 0.35
    bot_resolves: float = 0.30
    # First human reply later than 5 minutes (the chat first-response target): SLA breaches.
    slow_share: float = 0.10
    # Closed by an agent without any human reply (customer left, spam).
    no_reply_share: float = 0.04
    # Of human-resolved conversations: CSAT survey sent, answered, then commented.
    survey_share: float = 0.80
    answer_share: float = 0.45
    comment_share: float = 0.40
    reopen_share: float = 0.08
    # Conversations reassigned, and answered calls transferred.
    transfer_share: float = 0.08
    # Calls: hung up in queue (of which within 5 s), and timed out of the queue.
    abandon_share: float = 0.12
    short_abandon_share: float = 0.35
    timeout_share: float = 0.03
    # Agent breaks (pause / unpause) per minute across the team, whatever the rate: the team
    # has 12 agents, and breaks of 30 s - 3 min taken in turn never overlap for one agent.
    breaks_per_minute: float = 1.0

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if not value >= 0 or (name not in KIND_NAMES and name != "breaks_per_minute" and value > 1):
                raise ValueError(f"mix.{name}: {value} is out of range")
        if self.abandon_share + self.timeout_share > 1:
            raise ValueError("mix: abandon_share + timeout_share exceeds 1")
        if not any(getattr(self, kind) > 0 for kind in KIND_NAMES):
            raise ValueError("mix: every story kind has weight 0")

    def kinds(self) -> list[tuple[str, float]]:
        return [(kind, float(getattr(self, kind))) for kind in KIND_NAMES]


# Story kind -> connector that carries it.
KINDS: Final = {
    "chat": CHATWOOT,
    "email": CHATWOOT,
    "whatsapp": CHATWOOT,
    "twilio": TWILIO,
    "asterisk": ASTERISK,
}
KIND_NAMES: Final = tuple(KINDS)
