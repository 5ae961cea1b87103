"""Plays stories against the ingest service in real time.

Stories start as a Poisson process at ``rate`` per second; their deliveries wait in a heap
keyed on when they are due and go out through one keep-alive ``httpx.AsyncClient`` with at
most ``concurrency`` requests in flight (a full window delays the schedule rather than
piling up tasks). Vendor times are the story's wall-clock start plus the planned offset, so
on schedule they equal the send time and the aggregator's minute buckets fill live; when
the simulator falls behind they stay the planned times, like a vendor's late delivery.

Like a vendor, a delivery answered 429/502/503/504 or lost to a connection error is retried
with capped exponential backoff (``Retry-After`` honoured, capped); 4xx are rejections,
never retried. Stopping (``duration`` reached, ``stop`` set, or cancellation) starts no new
story and lets requests in flight finish within ``grace`` seconds; deliveries still
scheduled are dropped unless ``drain`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
import orjson

from services.simulator.model import DEFAULT_MIX, Delivery, Mix, Scenario, Story
from services.simulator.record import Recorder
from services.simulator.story import CONNECTORS
from services.simulator.wire import Credentials, Prepared, load_credentials, prepare

DEFAULT_INGEST_URL: Final = "http://127.0.0.1:8081"
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})


class IngestUnreachable(RuntimeError):
    """The ingest service did not answer at start: nothing would be delivered."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    base_seconds: float = 0.5
    cap_seconds: float = 10.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap_seconds)
        # Full-ish jitter so a recovering ingest is not hit by every retry at once.
        return min(self.cap_seconds, self.base_seconds * 2.0 ** (attempt - 1)) * rng.uniform(0.5, 1.0)


@dataclass(slots=True)
class ConnectorStats:
    sent: int = 0  # deliveries started
    accepted: int = 0  # answered 2xx
    rejected: int = 0  # answered 4xx: the payload or its signature was refused
    failed: int = 0  # 5xx or connection errors after the last attempt, or stopped while retrying
    retries: int = 0
    events: int = 0  # canonical events ingest reported accepting
    ignored: int = 0  # vendor events ingest reported skipping
    last_error: str | None = None


@dataclass(slots=True)
class SimulationStats:
    seed: int
    run_id: int
    connectors: dict[str, ConnectorStats] = field(
        default_factory=lambda: {name: ConnectorStats() for name in CONNECTORS}
    )
    stories: int = 0
    breaks: int = 0
    elapsed: float = 0.0
    pending: int = 0  # deliveries scheduled, not yet sent
    in_flight: int = 0

    @property
    def sent(self) -> int:
        return sum(c.sent for c in self.connectors.values())

    @property
    def accepted(self) -> int:
        return sum(c.accepted for c in self.connectors.values())

    @property
    def errors(self) -> int:
        return sum(c.rejected + c.failed for c in self.connectors.values())


@dataclass(frozen=True, slots=True)
class _Due:
    story: Story
    delivery: Delivery
    origin: float  # the story's wall-clock start (epoch seconds)


async def check_ingest(client: httpx.AsyncClient, ingest_url: str) -> None:
    """Raise :class:`IngestUnreachable` when nothing answers at ``ingest_url``."""
    try:
        await client.get(f"{ingest_url.rstrip('/')}/healthz", timeout=3.0)
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        raise IngestUnreachable(
            f"ingest not reachable at {ingest_url} — start it with `supportpulse ingest` ({reason})"
        ) from exc


class _Runner:
    def __init__(
        self, *, scenario: Scenario, creds: Credentials, client: httpx.AsyncClient, ingest_url: str,
        rate: float, duration: float, stop: asyncio.Event, recorder: Recorder, concurrency: int,
        retry: RetryPolicy, drain: bool, grace: float, stats: SimulationStats,
        progress: Callable[[SimulationStats], None] | None, progress_interval: float,
    ) -> None:  # fmt: skip
        self.scenario = scenario
        self.creds = creds
        self.client = client
        self.ingest_url = ingest_url
        self.rate = rate
        self.duration = duration
        self.stop = stop
        self.recorder = recorder
        self.slots = asyncio.Semaphore(concurrency)
        self.retry = retry
        self.drain = drain
        self.grace = grace
        self.stats = stats
        self.progress = progress
        self.progress_interval = progress_interval
        self.closing = asyncio.Event()
        self.heap: list[tuple[float, int, _Due]] = []
        self.seq = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.jitter = random.Random(stats.seed)
        self.mono0 = 0.0
        self.wall0 = 0.0

    def _start(self, story: Story, due: float) -> None:
        origin = self.wall0 + (due - self.mono0)
        self.recorder.story(story, origin)
        for delivery in story.deliveries:
            self.seq += 1
            heapq.heappush(self.heap, (due + delivery.offset, self.seq, _Due(story, delivery, origin)))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.mono0, self.wall0 = loop.time(), time.time()
        arrivals = self.scenario.arrivals()
        break_rate = self.scenario.mix.breaks_per_minute / 60

        def gap(rate: float) -> float:
            return arrivals.expovariate(rate) if rate > 0 else math.inf

        next_story = self.mono0 + gap(self.rate)
        next_break = self.mono0 + gap(break_rate)
        deadline = self.mono0 + self.duration if self.duration > 0 else math.inf
        next_progress = self.mono0 + self.progress_interval
        self._start(self.scenario.opening(), self.mono0)
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            while True:
                now = loop.time()
                starting = not self.stop.is_set() and now < deadline
                if not starting and (self.stop.is_set() or not self.drain or not self.heap):
                    break
                while starting and next_story <= now:
                    self._start(self.scenario.story(self.stats.stories), next_story)
                    self.stats.stories += 1
                    next_story += gap(self.rate)
                while starting and next_break <= now:
                    story = self.scenario.agent_break(self.stats.breaks)
                    self.stats.breaks += 1
                    if story is not None:
                        self._start(story, next_break)
                    next_break += gap(break_rate)
                while self.heap and self.heap[0][0] <= now:
                    await self.slots.acquire()  # backpressure: a full window delays the schedule
                    self._dispatch(heapq.heappop(self.heap)[2])
                if now >= next_progress:
                    self._report(now)
                    next_progress = now + self.progress_interval
                wake = min(deadline, next_progress, self.heap[0][0] if self.heap else math.inf)
                if starting:
                    wake = min(wake, next_story, next_break)
                timeout = wake - loop.time()
                if timeout > 0:
                    await asyncio.wait({stopped}, timeout=timeout)
        finally:
            stopped.cancel()
            self.closing.set()
            await self._finish()
            self._report(loop.time())

    def _report(self, now: float) -> None:
        self.stats.elapsed = now - self.mono0
        self.stats.pending = len(self.heap)
        self.stats.in_flight = len(self.tasks)
        if self.progress is not None:
            self.progress(self.stats)

    def _dispatch(self, due: _Due) -> None:
        try:
            prepared = prepare(due.delivery, due.origin, self.ingest_url, self.creds)
        except BaseException:
            self.slots.release()  # the slot was taken for a request that will never be sent
            raise
        task = asyncio.create_task(self._send(due, prepared))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _finish(self) -> None:
        """Let requests in flight finish, within the grace period."""
        if not self.tasks:
            return
        _, late = await asyncio.wait(set(self.tasks), timeout=self.grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def _send(self, due: _Due, prepared: Prepared) -> None:
        stats = self.stats.connectors[prepared.connector]
        stats.sent += 1
        sent_at = time.time()
        attempts = 0
        status: int | None = None
        error: str | None = None
        ids: list[str] = []
        try:
            while True:
                attempts += 1
                retry_after: float | None = None
                try:
                    response = await self.client.post(
                        prepared.url, content=prepared.body, headers=prepared.headers_at(time.time())
                    )
                except httpx.TransportError as exc:
                    status, error, retryable = None, f"{type(exc).__name__}: {exc}", True
                else:
                    status = response.status_code
                    retryable = status in RETRY_STATUSES
                    error = None if status < 400 else f"{status}: {_detail(response)}"
                    retry_after = _retry_after(response)
                    if status < 300:
                        ids = _accepted(response, stats)
                if not retryable or attempts >= self.retry.attempts or self.closing.is_set():
                    break
                stats.retries += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self.closing.wait(), self.retry.delay(attempts, retry_after, self.jitter)
                    )
                if self.closing.is_set():
                    error = f"stopped while retrying ({error})"
                    break
        finally:
            self.slots.release()
        outcome = _outcome(status, error)
        if outcome == "accepted":
            stats.accepted += 1
        elif outcome == "rejected":
            stats.rejected += 1
        else:
            stats.failed += 1
        if error is not None:
            stats.last_error = error
        self.recorder.delivery(
            due.story, due.delivery, sent_at=sent_at, status=status, attempts=attempts, outcome=outcome,
            summary=prepared.summary, ids=ids, error=error,
        )  # fmt: skip


def _outcome(status: int | None, error: str | None) -> str:
    if status is not None and 200 <= status < 300 and error is None:
        return "accepted"
    if status is not None and 400 <= status < 500 and status not in RETRY_STATUSES:
        return "rejected"
    return "failed"


def _accepted(response: httpx.Response, stats: ConnectorStats) -> list[str]:
    """Count what ingest says it did with the delivery; its 202 body is ``{accepted, ignored, ids}``."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(body, dict):
        return []
    accepted, ignored, ids = body.get("accepted"), body.get("ignored"), body.get("ids")
    stats.events += accepted if isinstance(accepted, int) else 0
    stats.ignored += ignored if isinstance(ignored, int) else 0
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []


def _detail(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:200]
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail)[:200] if detail else response.text[:200]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


async def simulate(
    *,
    rate: float,
    duration: float = 0.0,
    tenant: str = "demo",
    ingest_url: str = DEFAULT_INGEST_URL,
    seed: int | None = None,
    record: Path | None = None,
    stop: asyncio.Event | None = None,
    mix: Mix = DEFAULT_MIX,
    tenants_file: Path | None = None,
    concurrency: int = 64,
    retry: RetryPolicy | None = None,
    drain: bool = False,
    grace: float = 10.0,
    progress: Callable[[SimulationStats], None] | None = None,
    progress_interval: float = 2.0,
    transport: httpx.AsyncBaseTransport | None = None,
    run_id: int | None = None,
    check_reachable: bool = True,
) -> SimulationStats:
    """Send simulated vendor traffic for ``duration`` seconds (0: until ``stop`` is set or cancelled).

    ``rate``: conversations and calls started per second. ``seed``: None picks one (reported
    in the stats). ``record``: JSON-lines ground truth. ``drain``: after ``duration``, keep
    sending what started stories still have scheduled. ``transport``: an httpx transport
    (tests use ``httpx.ASGITransport``). Raises :class:`IngestUnreachable` when nothing
    answers at ``ingest_url`` and ``ValueError`` for a bad argument or tenant.
    """
    if not (math.isfinite(rate) and rate >= 0):
        raise ValueError(f"rate must be a finite number >= 0, got {rate}")
    if not (math.isfinite(duration) and duration >= 0):
        raise ValueError(f"duration must be a finite number >= 0, got {duration}")
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    creds = load_credentials(tenant, tenants_file)
    seed = secrets.randbits(32) if seed is None else seed
    run_id = int(time.time()) if run_id is None else run_id
    scenario = Scenario(seed, run_id=run_id, mix=mix, connectors=creds.connectors)
    stats = SimulationStats(seed=seed, run_id=run_id)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(10.0, connect=5.0)
    async with httpx.AsyncClient(transport=transport, limits=limits, timeout=timeout) as client:
        if check_reachable:
            await check_ingest(client, ingest_url)
        recorder = Recorder(record)
        try:
            runner = _Runner(
                scenario=scenario, creds=creds, client=client, ingest_url=ingest_url, rate=rate,
                duration=duration, stop=stop or asyncio.Event(), recorder=recorder, concurrency=concurrency,
                retry=retry or RetryPolicy(), drain=drain, grace=grace, stats=stats, progress=progress,
                progress_interval=progress_interval,
            )  # fmt: skip
            await runner.run()
        finally:
            recorder.close()
    return stats
