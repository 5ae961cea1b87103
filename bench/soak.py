"""Soak: steady simulated traffic through ingest and the aggregator, memory and lag over time.

A private Kafka broker and Postgres (``tests/chaos/private_stack.py``: the shared stack's
components on free ports, in a temporary directory) so a long run never weighs on the
shared ones; ``supportpulse ingest`` and ``python -m services.aggregator`` as processes; the
simulator in canonical mode at ``--rate`` stories per second (about 7.5 events each) in
real time for ``--seconds`` (30 min by default). Every ``SAMPLE`` seconds: RSS and CPU of
ingest and of the aggregator, the consumer lag (log end minus the offsets stored in
Postgres, in records) and the aggregator's cached conversations; sampling goes on, idle,
until every SLA clock has been decided (the soak sets first-response targets of at most
10 minutes so that this takes minutes, not hours), then the KPIs are compared with the
reference of the recording (``supportpulse verify``'s comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import log, print_table, write_results
from services.simulator.record import load_events
from services.simulator.reference import Thresholds, compute
from services.simulator.runner import RetryPolicy, SimulationStats, simulate
from shared.db.scratch import scratch_database
from shared.tenants import DEFAULT_FILE
from tests.chaos.harness import TENANT, Pipeline, Service, Sizes, connect, samples, scrape
from tests.chaos.private_stack import PrivateStack

UVLOOP = False
SAMPLE = 30.0
# Short first-response targets: every SLA clock is decided within 10 min of the last start.
TARGETS = {"chat": 300.0, "whatsapp": 600.0, "sms": 600.0, "social": 600.0, "email": 600.0, "other": 600.0}


def proc(pid: int) -> tuple[float, float]:
    """(RSS in MB, CPU seconds) of a process."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def sample(
    p: Pipeline, ingest: Service, aggregator: Service, conn: Any, began: float
) -> dict[str, Any]:
    assert ingest.proc is not None
    assert aggregator.proc is not None
    rss_i, cpu_i = proc(ingest.proc.pid)
    rss_a, cpu_a = proc(aggregator.proc.pid)
    end, stored = await p.log_end(), await p.stored(conn)
    lag = sum(max(o - stored.get(part, 0), 0) for part, o in end.items())
    cached = samples(await scrape(aggregator.metrics_url), "supportpulse_aggregator_cached_conversations")
    return {
        "minute": round((time.monotonic() - began) / 60, 2),
        "ingest_rss_mb": round(rss_i, 1),
        "aggregator_rss_mb": round(rss_a, 1),
        "ingest_cpu_s": round(cpu_i, 1),
        "aggregator_cpu_s": round(cpu_a, 1),
        "events_in_kafka": sum(end.values()),
        "lag_records": lag,
        "cached_conversations": int(cached[0][1]) if cached else None,
        "ingest_restarts": len(ingest.crashes),
        "aggregator_restarts": len(aggregator.crashes),
    }


def growth(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    """RSS at the first sample after warm-up (5 min), at half time and at the end, and the late slope."""
    warm = [r for r in rows if r["minute"] >= 5] or rows
    half = warm[len(warm) // 2]
    last = warm[-1]
    minutes = max(last["minute"] - half["minute"], 1e-9)
    return {
        "after_5_min": warm[0][key],
        "half_time": half[key],
        "end": last[key],
        "max": max(r[key] for r in rows),
        "second_half_mb_per_10_min": round((last[key] - half[key]) / minutes * 10, 2),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    seconds = args.seconds or (300.0 if args.quick else 1800.0)
    rate = args.rate or 20.0
    every = 10.0 if args.quick else SAMPLE
    work = Path(tempfile.mkdtemp(prefix="sp-soak-"))
    stack = PrivateStack()
    log(f"soak: {rate:g} stories/s for {seconds:g} s on a private broker and Postgres ({stack.root})")
    await asyncio.to_thread(stack.start)
    try:
        async with scratch_database(stack.database_url, "soak_") as url:
            extra = {"SUPPORTPULSE_AGGREGATOR_FIRST_RESPONSE_TARGETS": json.dumps(TARGETS)}
            sizes = replace(Sizes(), settle_seconds=600.0)
            thresholds = Thresholds(first_response_targets=TARGETS)
            async with Pipeline("soak", stack.bootstrap, url, work, sizes, extra, thresholds) as p:
                return await run(p, url, seconds, rate, every, args.quick)
    finally:
        await asyncio.to_thread(stack.remove)
        shutil.rmtree(work, ignore_errors=True)


async def run(
    p: Pipeline, url: str, seconds: float, rate: float, every: float, quick: bool
) -> dict[str, Any]:
    # The default flush cadence and batch size, not the fault tests' constant flushing.
    aggregator = p.aggregator(
        "soak", SUPPORTPULSE_AGGREGATOR_FLUSH_INTERVAL_SECONDS="1.0", SUPPORTPULSE_AGGREGATOR_MAX_BATCH="5000"
    )
    ingest = await p.start_ingest()
    conn = await connect(url)
    rows: list[dict[str, Any]] = []
    began = time.monotonic()
    stats: SimulationStats | None = None

    def progress(s: SimulationStats) -> None:
        nonlocal stats
        stats = s

    stream = asyncio.create_task(
        simulate(
            rate=rate,
            duration=seconds,
            tenant=TENANT,
            ingest_url=p.ingest_url,
            seed=p.sizes.seed,
            record=p.record,
            tenants_file=DEFAULT_FILE,
            canonical=True,
            grace=60.0,
            retry=RetryPolicy(attempts=100_000, base_seconds=0.5, cap_seconds=5.0),
            progress=progress,
        )
    )
    try:
        while not stream.done():
            await asyncio.wait({stream}, timeout=every)
            await record(rows, "steady", p, ingest, aggregator, conn, began, stats)
        final = stream.result()
        # Idle until the last SLA clock is decided (a quick run compares at once: the comparison
        # polls, judging clocks 10 s in the past), still sampling: does memory settle?
        pending = compute(load_events(p.record), thresholds=p.thresholds).pending_deadlines
        until = max(pending, default=datetime.now(UTC)) + timedelta(seconds=15)
        while not quick and datetime.now(UTC) < until:
            await asyncio.sleep(min(every, max((until - datetime.now(UTC)).total_seconds(), 0.1)))
            await record(rows, "idle", p, ingest, aggregator, conn, began, stats)
        figures = await finish(p, conn, rows, final, seconds, rate, began)
    finally:
        await conn.close()
    print_table(
        "soak: memory and lag over time",
        [
            [
                r["minute"],
                r["phase"],
                r["ingest_rss_mb"],
                r["aggregator_rss_mb"],
                r["lag_records"],
                r["cached_conversations"],
                r["events_in_kafka"],
            ]
            for r in rows
        ],
        ["minute", "phase", "ingest RSS MB", "aggregator RSS MB", "lag (records)", "cached conv.", "events"],
    )
    write_results("soak", figures, quick)
    return figures


async def record(
    rows: list[dict[str, Any]], phase: str, p: Pipeline, ingest: Service, aggregator: Service, conn: Any,
    began: float, stats: SimulationStats | None,
) -> None:  # fmt: skip
    row = await sample(p, ingest, aggregator, conn, began)
    row["accepted"] = stats.accepted if stats else 0
    row["phase"] = phase
    rows.append(row)
    log(" ".join(f"{k}={v}" for k, v in row.items()))


async def finish(
    p: Pipeline, conn: Any, rows: list[dict[str, Any]], stats: SimulationStats, seconds: float, rate: float,
    began: float,
) -> dict[str, Any]:  # fmt: skip
    events = load_events(p.record)
    result = await p.settle(conn)  # every offset stored, then the comparison with the reference
    print(result.summary())
    steady = [r for r in rows if r["phase"] == "steady"]
    return {
        "rate_stories_per_s": rate,
        "steady_seconds": seconds,
        "wall_seconds": round(time.monotonic() - began, 1),
        "deliveries": stats.sent,
        "accepted": stats.accepted,
        "failed": stats.errors,
        "events": len(events),
        "kpis_equal_reference": result.ok,
        "rows_compared": result.rows,
        "differences": [str(d) for d in result.differences[:20]],
        "ingest_rss": growth(steady, "ingest_rss_mb"),
        "aggregator_rss": growth(steady, "aggregator_rss_mb"),
        "idle_end": {k: rows[-1][k] for k in ("minute", "ingest_rss_mb", "aggregator_rss_mb", "lag_records")},
        "lag_records": {
            "median": sorted(r["lag_records"] for r in steady)[len(steady) // 2] if steady else None,
            "max": max((r["lag_records"] for r in steady), default=None),
        },
        "samples": rows,
    }
