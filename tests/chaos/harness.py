"""The fault tests' pipeline: real ingest and aggregator processes fed by the simulator.

A :class:`Pipeline` runs ``supportpulse ingest`` and ``python -m services.aggregator``
subprocesses against one broker and one database, on topics and a consumer group of its
own. The simulator streams a backlog of canonical events through ingest (recording what
was accepted) while a test injects its fault; :meth:`Pipeline.settle` then waits until
the aggregator has stored every offset and compares the day rows with the reference of
the recording (``services/simulator/verify.py``). A :class:`Service` restarts its process
when it dies on its own, as a supervisor (systemd, Kubernetes) would, and counts it.

Sizes come from the environment, so the same tests are the CI short form and, with larger
values, the long form (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Self

import asyncpg
import httpx
import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.simulator.record import load_events
from services.simulator.reference import Thresholds
from services.simulator.runner import RetryPolicy, SimulationStats, backlog_start, simulate
from services.simulator.verify import Comparison, verify
from shared.db import driver_dsn
from shared.kafka import delete_topics, partitions_of
from shared.tenants import DEFAULT_FILE
from tests.chaos.private_stack import free_ports

TENANT = "demo"  # deploy/local/tenants.yaml: the generic connector with its ingest token


def env_number(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@dataclass(frozen=True, slots=True)
class Sizes:
    """Short form by default; the long form sets the variables (docs/reliability.md)."""

    stories: int = int(env_number("SUPPORTPULSE_CHAOS_STORIES", 300))
    # Stories per second of event time, and event-time seconds sent per wall second: stories
    # last up to 15 min, so a backlog's stream lasts about (stories / rate + 900) / speed s.
    rate: float = env_number("SUPPORTPULSE_CHAOS_RATE", 2.0)
    speed: float = env_number("SUPPORTPULSE_CHAOS_SPEED", 60.0)
    # Deliveries per request (1: one webhook each); the long form batches to go faster.
    batch: int = int(env_number("SUPPORTPULSE_CHAOS_BATCH", 1))
    # Requests in flight: httpcore's pool bookkeeping grows with it, 8 sends fastest here.
    concurrency: int = int(env_number("SUPPORTPULSE_CHAOS_CONCURRENCY", 8))
    kills: int = int(env_number("SUPPORTPULSE_CHAOS_KILLS", 5))
    postgres_down: float = env_number("SUPPORTPULSE_CHAOS_POSTGRES_DOWN_SECONDS", 6.0)
    kafka_down: float = env_number("SUPPORTPULSE_CHAOS_KAFKA_DOWN_SECONDS", 2.0)
    seed: int = int(env_number("SUPPORTPULSE_CHAOS_SEED", 7))
    settle_seconds: float = env_number("SUPPORTPULSE_CHAOS_SETTLE_SECONDS", 180.0)
    # No delivery accepted for this long while the stream runs: it is stuck, fail.
    stall_seconds: float = env_number("SUPPORTPULSE_CHAOS_STALL_SECONDS", 120.0)

    def slower(self, factor: float = 2.0) -> Sizes:
        """The same stream sent ``factor`` times slower: for faults that need a longer one."""
        return replace(self, speed=self.speed / factor)


class Service:
    """One subprocess, its log, and a supervisor restarting it when it exits unasked."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], log: Path, metrics_url: str = ""
    ) -> None:
        self.name, self.args, self.env, self.log_path = name, args, env, log
        self.metrics_url = metrics_url
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.wanted = False
        self.starts = 0
        self.crashes: list[int] = []  # exit codes of exits nobody asked for
        self._supervisor: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._log is None:
            self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        self.wanted = True
        self.starts += 1

    def supervise(self, backoff: float = 1.0) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(0.2)
                if self.wanted and self.proc is not None and self.proc.poll() is not None:
                    self.crashes.append(self.proc.returncode)
                    await asyncio.sleep(backoff)
                    if self.wanted:
                        self.start()

        self._supervisor = asyncio.create_task(loop(), name=f"supervise-{self.name}")

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would; the caller restarts it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    async def stop(self, grace: float = 60.0) -> int | None:
        """SIGTERM (a clean stop) and wait up to ``grace`` seconds; returns the exit code."""
        self.wanted = False
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            if proc.poll() is None:
                proc.kill()
        code = proc.wait(timeout=30)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Pipeline:
    name: str
    bootstrap: str
    database_url: str
    workdir: Path
    sizes: Sizes = field(default_factory=Sizes)
    extra_env: dict[str, str] = field(default_factory=dict)
    # The aggregator's thresholds, for the comparison (None: the documented defaults).
    thresholds: Thresholds | None = None

    def __post_init__(self) -> None:
        suffix = secrets.token_hex(4)
        prefix = f"chaos.{self.name}.{suffix}"
        self.topic = f"{prefix}.events"
        self.topics = [self.topic, f"{prefix}.raw", f"{prefix}.deadletter", f"{prefix}.sla"]
        self.group = f"chaos-{self.name}-{suffix}"
        (self.ingest_port,) = free_ports(1)
        self.ingest_url = f"http://127.0.0.1:{self.ingest_port}"
        self.record = self.workdir / f"{self.name}.jsonl"
        self.aggregators: dict[str, Service] = {}
        self.ingest: Service | None = None
        self.stop_stream = asyncio.Event()
        self.began = time.monotonic()
        self.marks: list[tuple[float, str]] = []  # (seconds since the start, what happened)
        self.stats: SimulationStats | None = None  # the stream's, updated as it runs
        self._stream: asyncio.Task[SimulationStats] | None = None

    def mark(self, what: str) -> None:
        self.marks.append((time.monotonic() - self.began, what))

    def timeline(self) -> str:
        return "; ".join(f"{t:.1f}s {what}" for t, what in self.marks)

    def env(self, **extra: str) -> dict[str, str]:
        return os.environ | {
            "SUPPORTPULSE_KAFKA_BOOTSTRAP": self.bootstrap,
            "SUPPORTPULSE_DATABASE_URL": self.database_url,
            "SUPPORTPULSE_EVENTS_TOPIC": self.topics[0],
            "SUPPORTPULSE_RAW_TOPIC": self.topics[1],
            "SUPPORTPULSE_DEADLETTER_TOPIC": self.topics[2],
            "SUPPORTPULSE_SLA_TOPIC": self.topics[3],
            "SUPPORTPULSE_TENANTS_FILE": str(DEFAULT_FILE),
            **self.extra_env,
            **extra,
        }

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._stream is not None and not self._stream.done():
            self.stop_stream.set()  # a failed test: deliveries in flight end, retries stop
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._stream, 60)
        for service in [*self.aggregators.values(), *([self.ingest] if self.ingest else [])]:
            await service.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(delete_topics(self.bootstrap, self.topics), 30)

    # services ---------------------------------------------------------------------------

    async def start_ingest(self) -> Service:
        if self.ingest is not None:
            await self.ingest.stop()
        env = self.env(
            SUPPORTPULSE_INGEST_PORT=str(self.ingest_port),
            # Answer 503 quickly while Kafka does not acknowledge, so callers retry.
            SUPPORTPULSE_INGEST_PRODUCE_TIMEOUT_SECONDS="3",
        )
        args = [sys.executable, "-m", "services", "ingest"]
        self.ingest = Service("ingest", args, env, self.workdir / "ingest.log")
        self.ingest.start()
        self.ingest.supervise()
        async with httpx.AsyncClient() as client:

            async def up() -> bool:
                try:
                    return (await client.get(f"{self.ingest_url}/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(up, 60, lambda: self.ingest.tail() if self.ingest else "")
        self.mark("ingest up")
        return self.ingest

    def aggregator(self, instance: str, *, supervised: bool = True, **overrides: str) -> Service:
        (metrics_port,) = free_ports(1)
        defaults = dict(
            SUPPORTPULSE_AGGREGATOR_GROUP=self.group,
            SUPPORTPULSE_AGGREGATOR_INSTANCE_ID=instance,
            SUPPORTPULSE_AGGREGATOR_METRICS_PORT=str(metrics_port),
            # Flush often, so that kills and outages land inside flush transactions too.
            SUPPORTPULSE_AGGREGATOR_FLUSH_INTERVAL_SECONDS="0.2",
            SUPPORTPULSE_AGGREGATOR_MAX_BATCH="500",
            SUPPORTPULSE_AGGREGATOR_TIMER_INTERVAL_SECONDS="0.5",
            SUPPORTPULSE_AGGREGATOR_SESSION_TIMEOUT_MS="6000",
        )
        env = self.env(**(defaults | overrides))
        args = [sys.executable, "-m", "services.aggregator"]
        log = self.workdir / f"aggregator-{instance}.log"
        service = Service(f"aggregator-{instance}", args, env, log, f"http://127.0.0.1:{metrics_port}")
        service.start()
        if supervised:
            service.supervise()
        self.aggregators[instance] = service
        return service

    # the stream -------------------------------------------------------------------------

    def start_stream(self) -> None:
        """The simulator's canonical backlog through ingest, retrying until every delivery lands."""
        self._stream = asyncio.create_task(self._simulate(), name=f"stream-{self.name}")
        self.mark("stream started")

    @property
    def streaming(self) -> bool:
        return self._stream is not None and not self._stream.done()

    def accepted(self) -> int:
        return self.stats.accepted if self.stats is not None else 0

    async def finish_stream(self) -> SimulationStats:
        """Wait for the stream's end; fail if no delivery is accepted for ``stall_seconds``."""
        assert self._stream is not None
        last, since = -1, time.monotonic()
        while not self._stream.done():
            if self.accepted() != last:
                last, since = self.accepted(), time.monotonic()
            elif time.monotonic() - since > self.sizes.stall_seconds:
                self.stop_stream.set()
                await asyncio.wait({self._stream}, timeout=60)
                raise AssertionError(
                    f"no delivery accepted for {self.sizes.stall_seconds:g} s: {self.stats}\n{self.tails()}"
                )
            await asyncio.wait({self._stream}, timeout=1.0)
        self.mark("stream ended")
        return self._stream.result()

    async def _simulate(self) -> SimulationStats:
        s = self.sizes

        def progress(stats: SimulationStats) -> None:
            self.stats = stats

        return await simulate(
            rate=s.rate,
            tenant=TENANT,
            ingest_url=self.ingest_url,
            seed=s.seed,
            record=self.record,
            tenants_file=DEFAULT_FILE,
            concurrency=s.concurrency,
            batch=s.batch,
            # A vendor retries for hours; here: until Kafka is back, however long a fault lasts.
            retry=RetryPolicy(attempts=100_000, base_seconds=0.2, cap_seconds=2.0),
            grace=600.0,
            canonical=True,
            stories=s.stories,
            start=backlog_start(s.stories, s.rate),
            speed=s.speed,
            stop=self.stop_stream,
            progress=progress,
            progress_interval=0.5,
        )

    # the end ----------------------------------------------------------------------------

    async def log_end(self) -> dict[int, int]:
        """The events topic's end offsets (retried: the broker may be restarting)."""
        deadline = time.monotonic() + 120
        while True:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)
            try:
                numbers = await partitions_of(self.bootstrap, self.topic)
                parts = [TopicPartition(self.topic, p) for p in numbers]
                await consumer.start()
                consumer.assign(parts)  # else the client may never fetch the topic's metadata
                return {tp.partition: int(o) for tp, o in (await consumer.end_offsets(parts)).items()}
            except Exception:
                if time.monotonic() > deadline:
                    raise
            finally:
                await consumer.stop()
            await asyncio.sleep(1)

    async def stored(self, conn: asyncpg.Connection) -> dict[int, int]:
        rows = await conn.fetch(
            "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = $1", self.group
        )
        return {int(r["partition"]): int(r["next_offset"]) for r in rows}

    async def settle(self, conn: asyncpg.Connection) -> Comparison:
        """Wait until every offset is stored and the day rows equal the reference (or time out)."""
        events = load_events(self.record)
        end = await self.log_end()
        deadline = time.monotonic() + self.sizes.settle_seconds
        while True:
            stored = await self.stored(conn)
            if all(stored.get(p, 0) >= o for p, o in end.items()):
                self.mark("all offsets stored")
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"offsets stored {stored}, log end {end}\n{self.tails()}")
            await asyncio.sleep(0.5)
        # Offsets and rows commit together, so the rows are final now (the SLA timers of
        # deadlines long past fired while the backlog was read).
        result = await verify(events, self.database_url, TENANT, thresholds=self.thresholds, wait=30.0)
        self.mark("compared")
        return result

    async def acknowledged_in_kafka(self) -> tuple[int, set[str]]:
        """(records in the events topic, ids recorded as accepted but absent from it)."""
        wanted = {e.id for e in load_events(self.record)}
        end = await self.log_end()
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        seen: set[str] = set()
        records = 0
        try:
            parts = [TopicPartition(self.topic, p) for p in end]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            while [tp for tp in parts if await consumer.position(tp) < end[tp.partition]]:
                for batch in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values():
                    for record in batch:
                        records += 1
                        seen.add(msgspec.json.decode(record.value or b"{}", type=_Id).id)
        finally:
            await consumer.stop()
        return records, wanted - seen

    def tails(self) -> str:
        services = [*self.aggregators.values(), *([self.ingest] if self.ingest else [])]
        return "\n".join(f"--- {s.name} ({s.log_path})\n{s.tail()}" for s in services)


class _Id(msgspec.Struct):
    id: str = ""


async def connect(database_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(driver_dsn(database_url))


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], within: float, explain: Callable[[], str] = lambda: ""
) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within:g} s\n{explain()}")
        await asyncio.sleep(0.2)


async def scrape(url: str) -> str:
    """A /metrics page, or "" while the process is not serving."""
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            return (await client.get(f"{url}/metrics")).text
    except httpx.TransportError:
        return ""


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of metric ``name`` in Prometheus text format: (labels, value)."""
    found = []
    for line in text.splitlines():
        if not line.startswith(name) or line[len(name) : len(name) + 1] not in ("{", " "):
            continue
        head, _, value = line.rpartition(" ")
        labels: dict[str, str] = {}
        if "{" in head:
            for pair in head[head.index("{") + 1 : head.rindex("}")].split(","):
                key, _, quoted = pair.partition("=")
                labels[key.strip()] = quoted.strip().strip('"')
        found.append((labels, float(value)))
    return found


async def owned_partitions(service: Service) -> set[int]:
    """The partitions an aggregator reports a lag for: those it owns now."""
    lags = samples(await scrape(service.metrics_url), "supportpulse_aggregator_consumer_lag_records")
    return {int(labels["partition"]) for labels, _ in lags}


async def ingest_outcomes(pipeline: Pipeline) -> dict[str, float]:
    """Ingest's requests on the generic endpoint, by outcome (accepted, unavailable...)."""
    text = await scrape(pipeline.ingest_url)
    out: dict[str, float] = {}
    for labels, value in samples(text, "supportpulse_ingest_requests_total"):
        if labels.get("connector") == "generic":
            out[labels["outcome"]] = out.get(labels["outcome"], 0.0) + value
    return out
