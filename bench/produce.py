"""Pre-fill a topic with realistic events, fast: whole record batches per partition, no compression.

Run as its own process (``python -m bench.produce --topic T --events N``) so the memory of
millions of prepared records does not count in the consuming benchmark's peak RSS. The
last line printed is a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from bench.common import log, settings
from bench.events import time_ordered

BATCH_BYTES = 512 * 1024
IN_FLIGHT = 64


async def fill(topic: str, target: int, partitions: int, seed: int = 7) -> dict[str, Any]:
    started = time.perf_counter()
    records = time_ordered(target, seed)
    generated = time.perf_counter() - started
    log(f"generated {len(records):,} events in {generated:.1f}s; producing to {topic}")
    producer = AIOKafkaProducer(
        bootstrap_servers=settings().kafka_bootstrap,
        acks=1,
        linger_ms=20,
        max_batch_size=BATCH_BYTES,
        max_request_size=4 * BATCH_BYTES,
        client_id="supportpulse-bench-producer",
    )
    await producer.start()
    # The producer's own partitioner (murmur2 of the key, as the ingest service uses), computed
    # once per conversation rather than once per event.
    part_of: dict[bytes, int] = {}
    builders = {p: producer.create_batch() for p in range(partitions)}
    pending: list[asyncio.Future[Any]] = []
    total_bytes = 0
    produce_started = time.perf_counter()
    last_report = produce_started

    async def ship(p: int) -> None:
        pending.append(await producer.send_batch(builders[p], topic, partition=p))
        builders[p] = producer.create_batch()
        if len(pending) >= IN_FLIGHT:
            await asyncio.gather(*pending)
            pending.clear()

    try:
        for n, (_, key, value) in enumerate(records, 1):
            p = part_of.get(key)
            if p is None:
                p = part_of[key] = (murmur2(key) & 0x7FFFFFFF) % partitions
            total_bytes += len(value)
            if builders[p].append(key=key, value=value, timestamp=None) is None:
                await ship(p)
                builders[p].append(key=key, value=value, timestamp=None)
            if n % 200_000 == 0 and time.perf_counter() - last_report > 2:
                last_report = time.perf_counter()
                rate = n / (last_report - produce_started)
                log(f"  produced {n:,}/{len(records):,} ({rate:,.0f}/s)")
        for p in range(partitions):
            if builders[p].record_count():
                await ship(p)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    seconds = time.perf_counter() - produce_started
    log(f"produced {len(records):,} events ({total_bytes / 1e6:,.0f} MB) in {seconds:.1f}s")
    return {
        "events": len(records),
        "conversations": len(part_of),
        "bytes": total_bytes,
        "generate_seconds": round(generated, 2),
        "produce_seconds": round(seconds, 2),
        "produce_events_per_second": round(len(records) / seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    summary = asyncio.run(fill(args.topic, args.events, args.partitions, args.seed))
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
