"""Freshness: from an event's produce-ack to the moment GET /v1/kpis shows its effect, under load.

Goal: p99 < 1 s at 5,000 events/s. The real aggregator (``supportpulse aggregator``) and the
real API (``supportpulse api``) run as child processes on a fresh database and fresh topics.
This process produces background events for tenant ``t1`` at a fixed rate (realistic
timelines from bench/events.py, each event stamped with the wall-clock time it is sent, as
live traffic would be) and, meanwhile, *probes*: one ``conversation.created`` at a time for
tenant ``probe``, produced with ``acks=all`` like ingest. A poller calls
``GET /v1/kpis?window=1h`` for that tenant every ``POLL_SECONDS``; a probe's latency is from
its produce-ack to the end of the first poll whose ``conversations_created`` includes it.

Resolution: the effect became visible somewhere between the start of the previous poll (which
did not see it) and the end of the poll that did, so each latency is an upper bound, at most
one poll period plus one request late; the median width of that interval is reported. Probes
are sequential (the next is sent only once the previous one was seen, after a random pause
of 0.2–1 s so they fall anywhere in the aggregator's flush cycle), so a count maps to one probe.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from bench.common import (
    VENV_BIN,
    free_port,
    log,
    percentile,
    plain_dsn,
    print_table,
    settings,
    temp_database,
    temp_topics,
    unique,
    write_results,
)
from bench.events import events as background_events
from bench.loadgen import get
from bench.servers import server
from shared.events import Event, encode
from tests.factories import Timeline

UVLOOP = True
API_KEY = "bench-freshness-key"
PROBE = "probe"
TENANTS = f"""
tenants:
  t1:
    timezone: UTC
  {PROBE}:
    timezone: UTC
api_keys:
  - name: bench
    key: {API_KEY}
    tenants: [{PROBE}]
"""
PATH = "/v1/kpis?window=1h"
POLL_SECONDS = 0.02
WARMUP_SECONDS = 5.0
PROBE_TIMEOUT = 30.0


class Poller:
    """Polls the probe tenant's count; keeps (start, end, count) of every answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.polls: list[tuple[float, float, int]] = []
        self.changed = asyncio.Event()
        self.errors = 0

    async def run(self, stop: asyncio.Event) -> None:
        request = get(PATH, {"Authorization": f"Bearer {API_KEY}"})
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            while not stop.is_set():
                started = time.perf_counter()
                count = await self._count((reader, writer), request)
                ended = time.perf_counter()
                if count is None:
                    self.errors += 1
                else:
                    if not self.polls or count != self.polls[-1][2]:
                        self.changed.set()
                    self.polls.append((started, ended, count))
                await asyncio.sleep(max(0.0, POLL_SECONDS - (ended - started)))
        finally:
            writer.close()

    @staticmethod
    async def _count(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes) -> int | None:
        # loadgen's exchange discards the body; this one reads it to find the count.
        reader, writer = conn
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        if head[9:12] != b"200":
            return None
        groups = json.loads(body)["groups"]
        return int(groups[0]["kpis"]["conversations_created"]) if groups else 0

    def first_seeing(self, count: int, after: float) -> tuple[float, float] | None:
        """(start of the last poll not seeing ``count``, end of the first seeing it), after ``after``."""
        previous_start = after
        for started, ended, seen in self.polls:
            if ended < after:
                continue
            if seen >= count:
                return previous_start, ended
            previous_start = started
        return None


async def background(producer: AIOKafkaProducer, topic: str, rate: float, stop: asyncio.Event) -> int:
    """Produce realistic events at ``rate``/s, each stamped with its send time, until ``stop``."""
    source = background_events(10**9, seed=11)
    sent = 0
    start = time.perf_counter()
    pending: list[asyncio.Future[Any]] = []
    while not stop.is_set():
        due = int((time.perf_counter() - start) * rate)
        now = datetime.now(UTC)
        while sent < due:
            event = next(source)
            event.occurred_at = now
            pending.append(await producer.send(topic, encode(event), key=event.key))
            sent += 1
        if len(pending) > 5000:
            await asyncio.gather(*pending)
            pending.clear()
        await asyncio.sleep(0.005)
    await asyncio.gather(*pending)
    return sent


async def probes(
    producer: AIOKafkaProducer, topic: str, poller: Poller, stop: asyncio.Event, rnd: random.Random
) -> list[dict[str, float]]:
    out: list[dict[str, float]] = []
    await poller.changed.wait()  # set by the first answer
    base = poller.polls[-1][2]
    k = 0
    while not stop.is_set():
        await asyncio.sleep(rnd.uniform(0.2, 1.0))
        k += 1
        event: Event = Timeline(f"probe-{k}", tenant=PROBE, start=datetime.now(UTC)).created(0).events[0]
        sent = time.perf_counter()
        await (await producer.send(topic, encode(event), key=event.key))
        acked = time.perf_counter()
        deadline = acked + PROBE_TIMEOUT
        seen = None
        while seen is None and time.perf_counter() < deadline:
            seen = poller.first_seeing(base + k, acked)
            if seen is None:
                poller.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(poller.changed.wait(), timeout=0.5)
        if seen is None:
            raise RuntimeError(f"probe {k} not visible within {PROBE_TIMEOUT}s")
        lower, upper = seen
        out.append(
            {
                "ack_ms": (acked - sent) * 1000,
                "latency_ms": (upper - acked) * 1000,
                "resolution_ms": (upper - lower) * 1000,
            }
        )
    return out


def scrape(port: int) -> dict[str, float]:
    """A few aggregator metrics (flush time and count, rows) from its /metrics."""
    wanted = (
        "supportpulse_aggregator_flush_duration_seconds_sum",
        "supportpulse_aggregator_flush_duration_seconds_count",
        "supportpulse_aggregator_flushed_rows_total",
    )
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            out[name] = float(value)
    return out


async def stored(dsn: str, group: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval(
            "SELECT coalesce(sum(greatest(next_offset, 0)), 0) FROM consumer_offsets "
            "WHERE consumer_group = $1",
            group,
        )
    finally:
        await conn.close()
    return int(value)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    rate = float(args.rate or (1000 if args.quick else 5000))
    seconds = args.seconds or (20.0 if args.quick else 120.0)
    names = {kind: unique(f"bench.{kind}.") for kind in ("events", "raw", "deadletter", "sla")}
    group = unique("bench-freshness-")
    figures: dict[str, Any] = {"rate": rate, "seconds": seconds, "poll_seconds": POLL_SECONDS}
    rnd = random.Random(5)
    async with temp_database() as db_url, temp_topics(list(names.values())):
        with tempfile.TemporaryDirectory(prefix="supportpulse-bench-") as tmpdir:
            tmp = Path(tmpdir)
            (tmp / "tenants.yaml").write_text(TENANTS)
            api_port, agg_port = free_port(), free_port()
            env = {
                "SUPPORTPULSE_DATABASE_URL": db_url,
                "SUPPORTPULSE_TENANTS_FILE": str(tmp / "tenants.yaml"),
                "SUPPORTPULSE_EVENTS_TOPIC": names["events"],
                "SUPPORTPULSE_RAW_TOPIC": names["raw"],
                "SUPPORTPULSE_DEADLETTER_TOPIC": names["deadletter"],
                "SUPPORTPULSE_SLA_TOPIC": names["sla"],
                "SUPPORTPULSE_AGGREGATOR_GROUP": group,
                "SUPPORTPULSE_AGGREGATOR_INSTANCE_ID": "bench-0",
                "SUPPORTPULSE_AGGREGATOR_METRICS_PORT": str(agg_port),
                "SUPPORTPULSE_API_PORT": str(api_port),
                "SUPPORTPULSE_LOG_LEVEL": "WARNING",
            }
            bin_ = str(VENV_BIN / "supportpulse")
            async with (
                server([bin_, "aggregator"], env, agg_port, "/readyz", tmp / "aggregator.log"),
                server([bin_, "api"], env, api_port, "/readyz", tmp / "api.log"),
            ):
                bootstrap = settings().kafka_bootstrap
                bulk = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
                # As ingest produces: idempotent, acknowledged by every in-sync replica.
                probe = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
                await bulk.start()
                await probe.start()
                try:
                    stop_load, stop_probes, stop_poll = asyncio.Event(), asyncio.Event(), asyncio.Event()
                    poller = Poller(api_port)
                    poll_task = asyncio.create_task(poller.run(stop_poll))
                    load_started = time.perf_counter()
                    load_task = asyncio.create_task(background(bulk, names["events"], rate, stop_load))
                    log(f"freshness: background at {rate:,.0f} events/s; warming up {WARMUP_SECONDS:.0f}s")
                    await asyncio.sleep(WARMUP_SECONDS)
                    before = await asyncio.to_thread(scrape, agg_port)
                    log(f"  probing for {seconds:.0f}s")
                    probe_task = asyncio.create_task(probes(probe, names["events"], poller, stop_probes, rnd))
                    await asyncio.sleep(seconds)
                    stop_probes.set()
                    samples = await probe_task
                    after = await asyncio.to_thread(scrape, agg_port)
                    stop_load.set()
                    sent = await load_task
                    load_seconds = time.perf_counter() - load_started
                    lag = sent + len(samples) - await stored(plain_dsn(db_url), group)
                    stop_poll.set()
                    await poll_task
                finally:
                    await bulk.stop()
                    await probe.stop()
    latencies = sorted(s["latency_ms"] for s in samples)
    flushes = (
        after["supportpulse_aggregator_flush_duration_seconds_count"]
        - before["supportpulse_aggregator_flush_duration_seconds_count"]
    )
    flush_time = (
        after["supportpulse_aggregator_flush_duration_seconds_sum"]
        - before["supportpulse_aggregator_flush_duration_seconds_sum"]
    )
    rows = (
        after["supportpulse_aggregator_flushed_rows_total"]
        - before["supportpulse_aggregator_flushed_rows_total"]
    )
    figures.update(
        {
            "probes": len(samples),
            "latency_ms": {
                "p50": round(percentile(latencies, 0.5), 1),
                "p90": round(percentile(latencies, 0.9), 1),
                "p99": round(percentile(latencies, 0.99), 1),
                "max": round(latencies[-1], 1),
            },
            "resolution_ms_median": round(statistics.median(s["resolution_ms"] for s in samples), 1),
            "probe_ack_ms_median": round(statistics.median(s["ack_ms"] for s in samples), 1),
            "background_events": sent,
            "background_rate_achieved": round(sent / load_seconds),
            "lag_at_end_events": lag,
            "polls": len(poller.polls),
            "poll_errors": poller.errors,
            "flushes_while_probing": int(flushes),
            "flush_seconds_mean": round(flush_time / flushes, 3) if flushes else None,
            "rows_per_flush": round(rows / flushes) if flushes else None,
            "goal": {"p99_ms": 1000, "rate": 5000},
            "latencies_ms": [round(x, 1) for x in latencies],
        }
    )
    lat = figures["latency_ms"]
    print_table(
        f"freshness: produce-ack → visible in GET {PATH}, background {rate:,.0f} events/s",
        [
            ("probes", len(samples)),
            (
                "latency p50 / p90 / p99 / max (ms)",
                f"{lat['p50']} / {lat['p90']} / {lat['p99']} / {lat['max']}",
            ),
            ("resolution (median poll interval bound, ms)", figures["resolution_ms_median"]),
            ("probe produce-ack (median ms)", figures["probe_ack_ms_median"]),
            ("background achieved events/s", figures["background_rate_achieved"]),
            ("aggregator lag at the end (events)", lag),
            ("flushes while probing; mean flush seconds", f"{int(flushes)}; {figures['flush_seconds_mean']}"),
            ("bucket rows per flush (detail)", figures["rows_per_flush"]),
        ],
    )
    write_results("freshness", figures, args.quick)
    return figures
