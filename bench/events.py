"""Realistic canonical events for the benchmarks, built with the tests' own factories.

Conversations and calls come from ``tests.factories.random_timelines`` (bots, reopens,
surveys, abandons...), started over the last ``spread_hours`` so the aggregator neither
quarantines them as too old nor drops their minute buckets, and renamed so that every
chunk's ``conv-<n>`` ids are distinct.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from shared.events import Event, encode
from tests.factories import Timeline, random_timelines

CHUNK = 5_000


def timelines(
    count: int, seed: int = 7, spread_hours: float = 20.0, tenant: str = "t1"
) -> Iterator[Timeline]:
    """``count`` conversations/calls whose first event lies within the last ``spread_hours`` + 3 h."""
    rnd = random.Random(seed)
    origin = datetime.now(UTC) - timedelta(hours=spread_hours + 4)
    for first in range(0, count, CHUNK):
        n = min(CHUNK, count - first)
        start = origin + timedelta(hours=spread_hours * first / max(count, 1))
        for timeline in random_timelines(rnd, n, start=start, tenant=tenant):
            cid = f"c{first // CHUNK}-{timeline.conversation_id}"
            timeline.conversation_id = cid
            for event in timeline.events:
                event.conversation_id = cid
            yield timeline


def events(target: int, seed: int = 7) -> Iterator[Event]:
    """At least ``target`` events, conversation by conversation (about 5.8 per timeline)."""
    produced = 0
    for timeline in timelines(target // 5 + 10, seed):
        for event in timeline.events:
            yield event
            produced += 1
        if produced >= target:
            return


def time_ordered(target: int, seed: int = 7) -> list[tuple[float, bytes, bytes]]:
    """(occurred_at epoch, key, encoded) for ``target`` events sorted by event time: the order
    they would reach Kafka in production, many conversations interleaved."""
    out = [(e.occurred_at.timestamp(), e.key, encode(e)) for e in events(target, seed)]
    out.sort(key=lambda r: r[0])
    return out[:target]
