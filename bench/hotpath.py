"""Per-event CPU cost of the aggregator's hot path, in memory (no Kafka, no Postgres).

Goal: decode + aggregate ≤ 3 µs per event. Stages are those of ``Engine.process``: decode
(``kafka_decoder.decode``), conversation lookup, ``conversation.apply``, ``tick`` and
``Deltas.add`` of the facts. The total is measured by an uninstrumented loop; the
per-stage split by a loop that reads ``perf_counter_ns`` around each stage (timer cost
subtracted). ``json.loads`` / ``orjson.loads`` / msgspec's untyped decode of the same
bytes are references for the decode stage.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import random
import time
from collections.abc import Callable
from typing import Any

import msgspec
import orjson

from bench.common import print_table, write_results
from bench.events import timelines
from services.aggregator.conversation import Changes, Conversation, apply, tick
from services.aggregator.decode import TYPE_ORDER, Step, kafka_decoder
from services.aggregator.deltas import Deltas
from services.aggregator.settings import AggregatorSettings
from services.aggregator.sla import Outbox, SlaBook
from shared.events import encode

STAGES = ("decode", "lookup", "apply", "tick", "deltas")
Key = tuple[str, str]


def payloads(conversations: int, order: str, seed: int = 11) -> list[bytes]:
    """Encoded events, conversations interleaved by time; ``order`` 'shuffled' shuffles each
    conversation's own events (the out-of-order path), 'ordered' keeps them in event time."""
    rnd = random.Random(seed)
    rows: list[tuple[float, bytes]] = []
    for timeline in timelines(conversations, seed=seed):
        # Vendors send a conversation's events in the order they happened.
        evs = sorted(timeline.events, key=lambda e: (e.occurred_at, TYPE_ORDER.get(e.type, 9)))
        times = [e.occurred_at.timestamp() for e in evs]
        if order == "shuffled":
            rnd.shuffle(evs)
        # Arrival slots stay the conversation's event times; only which event fills them changes.
        rows.extend((t, encode(e)) for t, e in zip(times, evs, strict=True))
    rows.sort(key=lambda r: r[0])
    return [p for _, p in rows]


def _timer_cost_ns() -> float:
    clock = time.perf_counter_ns
    n = 200_000
    started = clock()
    for _ in range(n):
        clock()
    return (clock() - started) / n


def run_total(data: list[bytes]) -> float:
    """ns/event of the whole hot path, as Engine.process runs it (minus Kafka and metrics)."""
    rules = AggregatorSettings().rules
    book = SlaBook(default_targets=rules.first_response_targets)
    outbox: list[Outbox] = []
    conversations: dict[Key, Conversation] = {}
    changes, deltas = Changes(), Deltas()
    add, decode = deltas.add, kafka_decoder.decode
    now = 0.0  # the engine's clock while catching up: the newest event time seen (Engine.clock)
    started = time.perf_counter_ns()
    for payload in data:
        step = decode(payload)
        key = (step.tenant, step.conversation_id)
        conv = conversations.get(key)
        if conv is None:
            conv = conversations[key] = Conversation(
                tenant=step.tenant, conversation_id=step.conversation_id, partition=0
            )
        if not apply(conv, step, rules, changes):
            continue
        if step.t > now:
            now = step.t
        # The engine judges SLA once per conversation and batch; per event is the worst case.
        tick(conv, now, book, changes, outbox)
        outbox.clear()
        for fact in changes.added:
            add(conv.tenant, fact, 1)
        for fact in changes.retracted:
            add(conv.tenant, fact, -1)
        changes.added.clear()
        changes.retracted.clear()
    return (time.perf_counter_ns() - started) / len(data)


def run_stages(data: list[bytes]) -> dict[str, Any]:
    """ns/event per stage, and how many events took the replay (out-of-order) path."""
    rules = AggregatorSettings().rules
    book = SlaBook(default_targets=rules.first_response_targets)
    outbox: list[Outbox] = []
    clock = time.perf_counter_ns
    conversations: dict[Key, Conversation] = {}
    changes, deltas = Changes(), Deltas()
    spent = dict.fromkeys(STAGES, 0)
    replayed = replay_ns = facts = 0
    now = 0.0
    for payload in data:
        t0 = clock()
        step: Step = kafka_decoder.decode(payload)
        t1 = clock()
        key = (step.tenant, step.conversation_id)
        conv = conversations.get(key)
        if conv is None:
            conv = conversations[key] = Conversation(
                tenant=step.tenant, conversation_id=step.conversation_id, partition=0
            )
        walk = conv.walk
        t2 = clock()
        fresh = apply(conv, step, rules, changes)
        t3 = clock()
        if conv.walk is not walk:  # _replay_with swaps in a new Walk
            replayed += 1
            replay_ns += t3 - t2
        if not fresh:
            continue
        if step.t > now:
            now = step.t
        tick(conv, now, book, changes, outbox)
        outbox.clear()
        t4 = clock()
        facts += len(changes.added) + len(changes.retracted)
        for fact in changes.added:
            deltas.add(conv.tenant, fact, 1)
        for fact in changes.retracted:
            deltas.add(conv.tenant, fact, -1)
        changes.added.clear()
        changes.retracted.clear()
        t5 = clock()
        for stage, ns in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            spent[stage] += ns
    timer = _timer_cost_ns()
    n = len(data)
    per_event = {s: max(v / n - timer, 0.0) for s, v in spent.items()}
    return {
        "ns_per_event": {k: round(v) for k, v in per_event.items()},
        "sum_of_stages_ns": round(sum(per_event.values())),
        "replayed_share": round(replayed / n, 4),
        "ns_per_replayed_event": round(replay_ns / replayed) if replayed else None,
        "facts_per_event": round(facts / n, 2),
        "conversations": len(conversations),
        "delta_keys": len(deltas.counts),
        "timer_overhead_ns": round(timer, 1),
    }


def reference(data: list[bytes], fn: Callable[[bytes], object]) -> float:
    started = time.perf_counter_ns()
    for payload in data:
        fn(payload)
    return (time.perf_counter_ns() - started) / len(data)


def best_of(repeats: int, fn: Callable[..., float], *args: Any) -> float:
    return min(fn(*args) for _ in range(repeats))


def profile_text(data: list[bytes], limit: int = 25) -> str:
    """cProfile of the uninstrumented loop, by own time (cProfile inflates small calls)."""
    profiler = cProfile.Profile()
    profiler.runcall(run_total, data)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(limit)
    return out.getvalue()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    conversations = args.conversations or (5_000 if args.quick else 50_000)
    repeats = 2 if args.quick else 3
    figures: dict[str, Any] = {"conversations": conversations, "goal_ns_per_event": 3000}
    rows = []
    for order in ("ordered", "shuffled"):
        data = payloads(conversations, order)
        gc.collect()
        total = best_of(repeats, run_total, data)
        # The same loop with the cyclic GC off: how much of the cost is full collections walking
        # every live conversation (they are all kept here, as in the engine's cache).
        gc.disable()
        try:
            total_no_gc = best_of(repeats, run_total, data)
        finally:
            gc.enable()
        stages = run_stages(data)
        refs = {
            "json.loads": best_of(repeats, reference, data, json.loads),
            "orjson.loads": best_of(repeats, reference, data, orjson.loads),
            "msgspec.json.decode (untyped)": best_of(repeats, reference, data, msgspec.json.decode),
            "kafka_decoder.decode (Step)": best_of(repeats, reference, data, kafka_decoder.decode),
        }
        figures[order] = {
            "events": len(data),
            "total_ns_per_event": round(total),
            "total_ns_per_event_gc_disabled": round(total_no_gc),
            "stages": stages,
            "references_ns_per_event": {k: round(v) for k, v in refs.items()},
        }
        ns = stages["ns_per_event"]
        rows.append(
            (
                order,
                len(data),
                round(total),
                *(ns[s] for s in STAGES),
                f"{stages['replayed_share']:.1%}",
                stages["facts_per_event"],
            )
        )
        rows.append(("  same, cyclic GC disabled", "", round(total_no_gc), "", "", "", "", "", "", ""))
        for name, value in refs.items():
            rows.append((f"  ref: {name}", "", round(value), "", "", "", "", "", "", ""))
    print_table(
        f"hotpath: ns/event, {conversations:,} conversations (goal: total ≤ 3,000 ns)",
        rows,
        header=("order", "events", "total", *STAGES, "replayed", "facts/ev"),
    )
    if args.profile:
        figures["profile_ordered"] = profile_text(payloads(conversations, "ordered"))
        print(figures["profile_ordered"])
    s = figures["shuffled"]["stages"]
    print(f"shuffled: {s['ns_per_replayed_event']:,} ns per replayed event (apply stage only)")
    write_results("hotpath", figures, args.quick)
    return figures
