"""Memory per open conversation in the aggregator, and the size of its persisted state.

N conversations each get a ``conversation.created`` and a customer ``message.created``
(decoded from the wire as the engine does, applied with ``conversation.apply``) and are
kept in an Engine-like dict keyed by (tenant, conversation_id). RSS before and after
gives bytes per open conversation; ``conversation.dump`` gives the msgpack state that a
flush writes to Postgres for each of them.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import print_table, proc_status_kb, write_results
from services.aggregator.conversation import Changes, Conversation, apply, dump, tick
from services.aggregator.decode import kafka_decoder
from services.aggregator.settings import AggregatorSettings
from services.aggregator.sla import SlaBook
from shared.events import encode
from tests.factories import Timeline

CHANNELS = ("chat", "email", "whatsapp", "sms", "social", "chat")
LABELS = ("vip", "billing", "bug", "refund", "churn-risk")


def build(count: int, seed: int = 5) -> dict[tuple[str, str], Conversation]:
    rnd = random.Random(seed)
    rules = AggregatorSettings().rules
    book = SlaBook(default_targets=rules.first_response_targets)
    changes = Changes()
    start = datetime.now(UTC) - timedelta(hours=6)
    conversations: dict[tuple[str, str], Conversation] = {}
    for n in range(count):
        timeline = Timeline(
            f"conv-{n:09d}",
            tenant=f"tenant-{n % 20:02d}",
            channel=rnd.choice(CHANNELS),
            start=start + timedelta(seconds=rnd.uniform(0, 6 * 3600)),
        )
        timeline.created(
            0,
            status="open",
            team=f"team-{rnd.randrange(10)}",
            labels=rnd.sample(LABELS, rnd.randint(0, 2)),
        ).customer(rnd.uniform(1, 30))
        for event in timeline.events:
            step = kafka_decoder.decode(encode(event))
            key = (step.tenant, step.conversation_id)
            conv = conversations.get(key)
            if conv is None:
                conv = conversations[key] = Conversation(
                    tenant=step.tenant, conversation_id=step.conversation_id, partition=n % 6
                )
            apply(conv, step, rules, changes)
            tick(conv, step.t, book, changes, None)
            changes.added.clear()
            changes.retracted.clear()
    return conversations


async def main(args: argparse.Namespace) -> dict[str, Any]:
    count = args.conversations or (100_000 if args.quick else 1_000_000)
    gc.collect()
    rss_before = proc_status_kb("VmRSS")
    started = time.perf_counter()
    conversations = build(count)
    seconds = time.perf_counter() - started
    gc.collect()
    rss_after = proc_status_kb("VmRSS")
    per_conv = (rss_after - rss_before) * 1024 / count
    sample = list(conversations.values())[:: max(1, count // 20_000)]
    state_sizes = sorted(len(dump(c)) for c in sample)
    state_avg = sum(state_sizes) / len(state_sizes)
    figures = {
        "conversations": count,
        "rss_before_mb": round(rss_before / 1024),
        "rss_after_mb": round(rss_after / 1024),
        "bytes_per_conversation": round(per_conv),
        "rss_at_1m_conversations_mb_projected_from_this_run": round(
            (rss_before * 1024 + per_conv * 1_000_000) / 2**20
        ),
        "msgpack_state_bytes_avg": round(state_avg),
        "msgpack_state_bytes_max": state_sizes[-1],
        "build_seconds": round(seconds, 1),
        "note": "aggregator_max_cached_conversations defaults to 200,000: beyond that the engine evicts "
        "and reloads state from Postgres",
    }
    print_table(
        f"memory: {count:,} open conversations (created + one customer message each)",
        [
            ("RSS before / after (MB)", f"{figures['rss_before_mb']:,} / {figures['rss_after_mb']:,}"),
            ("bytes per open conversation (RSS delta / N)", figures["bytes_per_conversation"]),
            ("msgpack state per conversation, avg / max (bytes)", f"{round(state_avg)} / {state_sizes[-1]}"),
        ],
    )
    write_results("memory", figures, args.quick)
    return figures
