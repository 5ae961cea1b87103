"""Aggregator throughput against a bare aiokafka consume-and-discard loop on the same topic.

Goal: ≥ 100,000 events/s in one process and ≥ 0.6× the bare loop. One run: pre-fill a
fresh 6-partition topic (in a child process), time the bare loop, the real aggregator
(``services.aggregator.service.aggregator`` on a fresh migrated database, done when the
offsets stored in Postgres reach the end of every partition), then the bare loop again.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import inspect
import io
import json
import pstats
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry

from bench.common import (
    log,
    plain_dsn,
    print_table,
    proc_status_kb,
    reset_peak_rss,
    settings,
    temp_database,
    temp_topics,
    unique,
    write_results,
)
from services.aggregator.service import aggregator
from services.aggregator.settings import AggregatorSettings

PARTITIONS = 6
FETCH = {"fetch_max_bytes": 64 * 1024 * 1024, "max_partition_fetch_bytes": 16 * 1024 * 1024}


async def prefill(topic: str, events: int) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.produce", "--topic", topic, "--events", str(events),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    last = b""
    async for line in proc.stdout:
        last = line
        if not line.startswith(b"{"):
            sys.stdout.write(line.decode())
            sys.stdout.flush()
    if await proc.wait() != 0:
        raise RuntimeError("the producer process failed")
    summary: dict[str, Any] = json.loads(last)
    return summary


async def end_offsets(topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings().kafka_bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: int(offset) for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def bare_loop(topic: str, ends: dict[int, int]) -> dict[str, Any]:
    """AIOKafkaConsumer assigned every partition from the beginning, getmany until the ends."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings().kafka_bootstrap, enable_auto_commit=False, **FETCH
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in ends]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        reset_peak_rss()
        rss0 = proc_status_kb("VmRSS")
        remaining = {p for p, end in ends.items() if end > 0}
        count = 0
        started = time.perf_counter()
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for tp, records in batch.items():
                count += len(records)
                if records and records[-1].offset + 1 >= ends[tp.partition]:
                    remaining.discard(tp.partition)
        seconds = time.perf_counter() - started
    finally:
        await consumer.stop()
    return {
        "events": count,
        "seconds": round(seconds, 3),
        "events_per_second": round(count / seconds),
        "rss_start_mb": round(rss0 / 1024),
        "peak_rss_mb": round(proc_status_kb("VmHWM") / 1024),
    }


class Timers:
    """Wall time spent in a few engine/consumer coroutines (wrapped on the instances only)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def note(started: float) -> None:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
            self.calls[name] = self.calls.get(name, 0) + 1

        if not inspect.iscoroutinefunction(fn):

            def timed_sync(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    note(started)

            return timed_sync

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                note(started)

        return timed

    def instrument(self, obj: object, attr: str, name: str) -> None:
        """Replace a method on this instance only by a timed one (skipped when the code has none)."""
        if hasattr(obj, attr):
            setattr(obj, attr, self.wrap(name, getattr(obj, attr)))


class SqlClock:
    """Time per SQL statement kind and rows per flush (profile runs only: patches asyncpg's class)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.flush_sizes: list[tuple[int, int, int]] = []
        self._original: Callable[..., Awaitable[str]] | None = None

    def __enter__(self) -> SqlClock:
        original = self._original = asyncpg.connection.Connection.execute
        clock = self

        async def execute(conn: asyncpg.Connection, query: str, *args: Any, **kwargs: Any) -> str:
            started = time.perf_counter()
            try:
                status: str = await original(conn, query, *args, **kwargs)
                return status
            finally:
                kind = " ".join(query.split()[:3])
                clock.seconds[kind] = clock.seconds.get(kind, 0.0) + time.perf_counter() - started

        asyncpg.connection.Connection.execute = execute
        return self

    def __exit__(self, *exc: object) -> None:
        asyncpg.connection.Connection.execute = self._original

    def sizes(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """Wrap ``Store.write(batch)``: rows per flush, from the batch's column arrays."""

        async def write(batch: Any) -> Any:
            self.flush_sizes.append((len(batch.counts[0]), len(batch.hist[0]), len(batch.conversations[0])))
            return await fn(batch)

        return write


class GcClock:
    """Time spent in the cyclic garbage collector, per generation."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1


async def run_aggregator(topic: str, ends: dict[int, int], profile: bool = False) -> dict[str, Any]:
    total = sum(ends.values())
    async with temp_database() as db_url:
        group = unique("bench-aggregator-")
        conf = AggregatorSettings(
            database_url=db_url, events_topic=topic, aggregator_group=group, aggregator_instance_id="bench-0"
        )
        registry = CollectorRegistry()
        conn = await asyncpg.connect(plain_dsn(db_url))
        timers, gc_clock = Timers(), GcClock()
        profiler = cProfile.Profile() if profile else None
        sql = SqlClock()
        reset_peak_rss()
        rss0 = proc_status_kb("VmRSS")
        try:
            async with aggregator(conf, registry) as loop:
                engine = loop.engine
                store = engine.store
                if profile and hasattr(store, "write"):
                    setattr(store, "write", sql.sizes(store.write))  # noqa: B010 - mypy: a method replaced
                for obj, attr, name in (
                    (engine, "process", "engine.process"),
                    (engine, "snapshot", "engine.snapshot (rows, state)"),
                    (engine, "commit", "engine.commit (background)"),
                    (engine, "run_timers", "engine.run_timers"),
                    (store, "load_conversations", "store.load_conversations"),
                    (store, "write", "store.write (SQL transaction)"),
                    (loop.consumer, "getmany", "consumer.getmany"),
                ):
                    timers.instrument(obj, attr, name)
                if profile:
                    sql.__enter__()
                gc.callbacks.append(gc_clock)
                if profiler is not None:
                    profiler.enable()
                started = time.perf_counter()
                task = asyncio.create_task(loop.run(), name="bench-aggregator")
                assigned_at: float | None = None
                last_log = started
                stored = 0
                while stored < total:
                    if task.done():
                        task.result()
                        raise RuntimeError("the aggregator stopped before reaching the end")
                    if assigned_at is None and engine.partitions:
                        assigned_at = time.perf_counter()
                    stored = int(
                        await conn.fetchval(
                            "SELECT coalesce(sum(greatest(next_offset, 0)), 0) FROM consumer_offsets "
                            "WHERE consumer_group = $1",
                            group,
                        )
                    )
                    now = time.perf_counter()
                    if now - last_log > 5:
                        last_log = now
                        log(f"  aggregator: {stored:,}/{total:,} stored ({stored / (now - started):,.0f}/s)")
                    await asyncio.sleep(0.05)
                finished = time.perf_counter()
                if profiler is not None:
                    profiler.disable()
                    sql.__exit__()
                gc.callbacks.remove(gc_clock)
                loop.stop()
                await task
                cached = len(engine.conversations)
        finally:
            if gc_clock in gc.callbacks:
                gc.callbacks.remove(gc_clock)
            await conn.close()
        rows = await _table_rows(db_url)
    begin = assigned_at or started
    applied = sum(
        s.value for m in registry.collect() if m.name == "supportpulse_aggregator_events" for s in m.samples
        if s.name.endswith("_total")
    )  # fmt: skip
    out: dict[str, Any] = {
        "events": total,
        "applied": int(applied),
        "seconds": round(finished - begin, 3),
        "seconds_including_join": round(finished - started, 3),
        "events_per_second": round(total / (finished - begin)),
        "rss_start_mb": round(rss0 / 1024),
        "peak_rss_mb": round(proc_status_kb("VmHWM") / 1024),
        "cached_conversations_at_end": cached,
        "time_in": {k: round(v, 2) for k, v in sorted(timers.seconds.items())},
        "calls": timers.calls,
        "gc_seconds_by_generation": [round(s, 2) for s in gc_clock.seconds],
        "gc_collections_by_generation": gc_clock.collections,
        "table_rows": rows,
    }
    if profiler is not None:
        out["profile"] = _profile_text(profiler)
        out["sql_seconds_by_statement"] = {k: round(v, 2) for k, v in sql.seconds.items()}
        n = max(len(sql.flush_sizes), 1)
        out["flushes"] = len(sql.flush_sizes)
        out["avg_rows_per_flush"] = {
            "kpi_counts": round(sum(f[0] for f in sql.flush_sizes) / n),
            "kpi_hist": round(sum(f[1] for f in sql.flush_sizes) / n),
            "conversations": round(sum(f[2] for f in sql.flush_sizes) / n),
        }
    return out


async def _table_rows(db_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(plain_dsn(db_url))
    try:
        return {
            t: int(await conn.fetchval(f"SELECT count(*) FROM {t}"))  # noqa: S608 - fixed table names
            for t in ("kpi_counts", "kpi_hist", "conversations", "quarantined_events")
        }
    finally:
        await conn.close()


def _profile_text(profiler: cProfile.Profile, limit: int = 30) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    return out.getvalue()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    events = args.events or (200_000 if args.quick else 2_000_000)
    topic = unique("bench.events.")
    async with temp_topics([topic], PARTITIONS):
        log(f"aggregator: pre-filling {topic} with {events:,} events")
        produced = await prefill(topic, events)
        ends = await end_offsets(topic)
        log("bare aiokafka loop (1/2)")
        bare1 = await bare_loop(topic, ends)
        log(f"  {bare1['events_per_second']:,} events/s; now the real aggregator")
        agg = await run_aggregator(topic, ends)
        log(f"  {agg['events_per_second']:,} events/s; bare aiokafka loop (2/2)")
        bare2 = await bare_loop(topic, ends)
        profiled = None
        if args.profile:
            log("profiling a second aggregator run under cProfile (slower; not the figure)")
            profiled = await run_aggregator(topic, ends, profile=True)
    bare_rate = (bare1["events_per_second"] + bare2["events_per_second"]) / 2
    figures = {
        "produce": produced,
        "bare": [bare1, bare2],
        "aggregator": agg,
        "ratio_to_bare": round(agg["events_per_second"] / bare_rate, 3),
        "goal": {"events_per_second": 100_000, "ratio_to_bare": 0.6},
    }
    print_table(
        f"aggregator: {events:,} events, {produced['conversations']:,} conversations, 6 partitions",
        [
            ("bare aiokafka loop, run 1", bare1["events_per_second"], bare1["seconds"], bare1["peak_rss_mb"]),
            ("real aggregator", agg["events_per_second"], agg["seconds"], agg["peak_rss_mb"]),
            ("bare aiokafka loop, run 2", bare2["events_per_second"], bare2["seconds"], bare2["peak_rss_mb"]),
            ("aggregator / bare (mean)", figures["ratio_to_bare"], "", ""),
        ],
        header=("", "events/s", "seconds", "peak RSS MB"),
    )
    print_table(
        "aggregator: wall seconds inside (the commit runs in the background, overlapping the rest)",
        list(agg["time_in"].items()),
    )
    print(f"gc seconds by generation: {agg['gc_seconds_by_generation']}; rows written: {agg['table_rows']}")
    if profiled is not None:
        figures["profiled_run"] = profiled
        print(profiled["profile"])
        print(f"SQL seconds by statement: {profiled['sql_seconds_by_statement']}")
        print(f"{profiled['flushes']} flushes; average rows per flush: {profiled['avg_rows_per_flush']}")
    write_results("aggregator", figures, args.quick)
    return figures
