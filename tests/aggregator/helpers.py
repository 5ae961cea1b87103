"""Run timelines through the aggregator's pure core, without Kafka or Postgres."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import msgspec

from services.aggregator.conversation import Changes, Conversation, apply, tick
from services.aggregator.decode import Step, kafka_decoder
from services.aggregator.sla import SlaBook
from services.aggregator.walk import Fact, Rules
from shared.events import Event, encode

RULES = Rules(
    short_abandon_seconds=5.0,
    service_level_seconds=20.0,
    first_response_targets=(("chat", 300.0), ("email", 3600.0)),
)


def to_step(event: Event) -> Step:
    # Through the real wire format, as the aggregator sees it.
    return kafka_decoder.decode(encode(event))


def facts(
    events: Iterable[Event], now: float = 4e9, rules: Rules = RULES, book: SlaBook | None = None
) -> Counter[Fact]:
    """The net facts (added minus retracted) after applying ``events`` in the order given.

    SLA verdicts are judged after every event, as of ``now``, under ``book`` (by default the
    first-response targets of ``rules``).
    """
    book = book if book is not None else SlaBook(default_targets=rules.first_response_targets)
    convs: dict[str, Conversation] = {}
    changes = Changes()
    net: Counter[Fact] = Counter()
    for event in events:
        conv = convs.setdefault(
            event.conversation_id,
            Conversation(tenant=event.tenant, conversation_id=event.conversation_id, partition=0),
        )
        apply(conv, to_step(event), rules, changes)
        tick(conv, now, book, changes, None)
        net.update(changes.added)
        net.subtract(changes.retracted)
        changes.added.clear()
        changes.retracted.clear()
    # Also prove the state survives its own serialisation.
    for conv in convs.values():
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(conv), type=Conversation) == conv
    return Counter({f: n for f, n in net.items() if n})


def totals(net: Counter[Fact]) -> dict[str, tuple[int, float]]:
    """Per measure: (count, sum of values)."""
    out: dict[str, list[float]] = {}
    for fact, n in net.items():
        slot = out.setdefault(fact.measure, [0, 0.0])
        slot[0] += n
        slot[1] += n * fact.value
    return {k: (int(v[0]), v[1]) for k, v in out.items()}


def by_agent(net: Counter[Fact], measure: str) -> dict[str, int]:
    out: Counter[str] = Counter()
    for fact, n in net.items():
        if fact.measure == measure:
            out[fact.agent] += n
    return dict(out)
