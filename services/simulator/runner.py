"""Plays stories against the ingest service in real time.

Stories start as a Poisson process at ``rate`` per second; their deliveries wait in a heap
keyed on when they are due and go out through one keep-alive ``httpx.AsyncClient`` with at
most ``concurrency`` requests in flight (a full window delays the schedule rather than
piling up tasks). Vendor times are the story's wall-clock start plus the planned offset, so
on schedule they equal the send time and the aggregator's minute buckets fill live; when
the simulator falls behind they stay the planned times, like a vendor's late delivery.

Like a vendor, a delivery answered 429/502/503/504 or lost to a connection error is retried
with capped exponential backoff (``Retry-After`` honoured, capped); 4xx are rejections,
never retried. Stopping (``duration`` reached, ``stories`` started, ``stop`` set, or
cancellation) starts no new story and lets requests in flight finish within ``grace``
seconds; deliveries still scheduled are dropped unless ``drain`` is set.

Two options serve the fault tests and the reference (tests/chaos/, docs/reliability.md):
``canonical`` sends each delivery's canonical events to ``POST /v1/events`` instead of the
vendor webhook (``canonical.py``), so a recording holds exactly what Kafka got; and
``start`` replays the stories on a virtual clock beginning at that instant, sending every
delivery in event-time order as fast as the window allows (a backlog, like a vendor
catching up) rather than in real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import importlib.util
import math
import random
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import msgspec

from services.simulator.answers import RETRY_STATUSES, accepted, detail, outcome, retry_after
from services.simulator.canonical import events_of, prepare_events
from services.simulator.model import DEFAULT_MIX, Delivery, Mix, Scenario, Story
from services.simulator.record import Recorder
from services.simulator.stats import ConnectorStats, RetryPolicy, SimulationStats
from services.simulator.story import CONNECTORS
from services.simulator.wire import Credentials, Prepared, load_credentials, prepare
from shared.events import Event

DEFAULT_INGEST_URL: Final = "http://127.0.0.1:8081"

# httpcore tries `import sniffio` on every request; anyio 4 no longer installs it, and Python
# does not cache a failed import, so each request scanned sys.path: about a third of the
# simulator's CPU (measured with cProfile). A None entry is Python's own cached "not found".
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]


__all__ = [
    "ConnectorStats",
    "IngestUnreachable",
    "RetryPolicy",
    "SimulationStats",
    "backlog_start",
    "simulate",
]


class IngestUnreachable(RuntimeError):
    """The ingest service did not answer at start: nothing would be delivered."""


@dataclass(frozen=True, slots=True)
class _Due:
    story: Story
    index: int  # of the delivery in the story
    origin: float  # the story's wall-clock start (epoch seconds)

    @property
    def delivery(self) -> Delivery:
        return self.story.deliveries[self.index]


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
        canonical: bool, stories: int | None, start: float | None, speed: float, batch: int,
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
        self.canonical = canonical
        self.max_stories = stories
        self.start = start
        self.speed = speed
        self.batch = batch
        self.mono0 = 0.0  # the schedule's clock (loop time, or virtual seconds from ``start``)
        self.wall0 = 0.0  # the epoch time at mono0
        self.began = 0.0

    def _start(self, story: Story, due: float) -> None:
        origin = self.wall0 + (due - self.mono0)
        self.recorder.story(story, origin)
        for index, delivery in enumerate(story.deliveries):
            self.seq += 1
            heapq.heappush(self.heap, (due + delivery.offset, self.seq, _Due(story, index, origin)))

    def _starting(self) -> bool:
        return self.max_stories is None or self.stats.stories < self.max_stories

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.began = loop.time()
        try:
            if self.start is not None:
                await self._backlog(loop)
            else:
                await self._live(loop)
            if self.tasks and not self.stop.is_set() and (self.drain or self.start is not None):
                # A natural end of a drained run: deliveries still retrying get the grace period.
                await asyncio.wait(set(self.tasks), timeout=self.grace)
        finally:
            self.closing.set()
            await self._finish()
            self._report(loop.time())

    async def _live(self, loop: asyncio.AbstractEventLoop) -> None:
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
                starting = not self.stop.is_set() and now < deadline and self._starting()
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
                    self._dispatch([heapq.heappop(self.heap)[2]])
                if now >= next_progress:
                    self._report(now)
                    next_progress = now + self.progress_interval
                wake = min(next_progress, self.heap[0][0] if self.heap else math.inf)
                if starting:
                    # Only while starting: a drain goes on past the deadline, which must not wake it.
                    wake = min(wake, deadline, next_story, next_break)
                timeout = wake - loop.time()
                if timeout > 0:
                    await asyncio.wait({stopped}, timeout=timeout)
        finally:
            stopped.cancel()

    async def _backlog(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stories on a virtual clock from ``start``, sent in event-time order as fast as allowed."""
        self.mono0, self.wall0 = 0.0, self.start or 0.0
        arrivals = self.scenario.arrivals()
        break_rate = self.scenario.mix.breaks_per_minute / 60

        def gap(rate: float) -> float:
            return arrivals.expovariate(rate) if rate > 0 else math.inf

        next_story, next_break = gap(self.rate), gap(break_rate)
        next_progress = loop.time() + self.progress_interval
        self._start(self.scenario.opening(), 0.0)
        while not self.stop.is_set():
            first = self.heap[0][0] if self.heap else math.inf
            if self._starting() and min(next_story, next_break) <= first:
                # Stories start in virtual-time order between the deliveries already due.
                if next_story <= next_break:
                    self._start(self.scenario.story(self.stats.stories), next_story)
                    self.stats.stories += 1
                    next_story += gap(self.rate)
                else:
                    story = self.scenario.agent_break(self.stats.breaks)
                    self.stats.breaks += 1
                    if story is not None:
                        self._start(story, next_break)
                    next_break += gap(break_rate)
                continue
            if not self.heap:
                break
            if self.speed > 0:
                # Event time runs ``speed`` times faster than the wall clock.
                ahead = self.began + first / self.speed - loop.time()
                if ahead > 0:
                    await asyncio.sleep(min(ahead, 0.5))
                    continue
            await self.slots.acquire()  # the window paces the backlog
            # A batch takes what is due; each conversation's deliveries still go in order (the heap),
            # only conversations starting meanwhile are sent after later deliveries of others.
            limit = (loop.time() - self.began) * self.speed if self.speed > 0 else math.inf
            dues = [heapq.heappop(self.heap)[2]]
            while len(dues) < self.batch and self.heap and self.heap[0][0] <= limit:
                dues.append(heapq.heappop(self.heap)[2])
            self._dispatch(dues)
            if loop.time() >= next_progress:
                self._report(loop.time())
                next_progress = loop.time() + self.progress_interval
                await asyncio.sleep(0)  # an open window never yields: let the requests run

    def _report(self, now: float) -> None:
        self.stats.elapsed = now - self.began
        self.stats.pending = len(self.heap)
        self.stats.in_flight = len(self.tasks)
        if self.progress is not None:
            self.progress(self.stats)

    def _prepare(self, dues: list[_Due]) -> tuple[Prepared, list[tuple[_Due, int]]] | None:
        """The request for ``dues`` (one, or several in a canonical batch) and each one's events."""
        if not self.canonical:
            (due,) = dues
            return prepare(due.delivery, due.origin, self.ingest_url, self.creds), [(due, 0)]
        parts: list[tuple[_Due, int]] = []
        events: list[Event] = []
        for due in dues:
            found = events_of(due.story, due.index, due.origin, self.creds.tenant, self.scenario.run_id)
            if found:  # else a vendor event the connectors ignore: nothing canonical to send
                parts.append((due, len(found)))
                events += found
        if not events:
            return None
        return prepare_events(events, parts[0][0].delivery.connector, self.ingest_url, self.creds), parts

    def _dispatch(self, dues: list[_Due]) -> None:
        try:
            found = self._prepare(dues)
        except BaseException:
            self.slots.release()  # the slot was taken for a request that will never be sent
            raise
        if found is None:
            self.slots.release()
            return
        task = asyncio.create_task(self._send(*found))
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

    async def _send(self, prepared: Prepared, parts: list[tuple[_Due, int]]) -> None:
        stats = self.stats.connectors[prepared.connector]
        for due, _ in parts:
            self.stats.connectors[due.delivery.connector].sent += 1
        sent_at = time.time()
        attempts = 0
        status: int | None = None
        error: str | None = None
        ids: list[str] = []
        try:
            while True:
                attempts += 1
                wait_hint: float | None = None
                try:
                    response = await self.client.post(
                        prepared.url, content=prepared.body, headers=prepared.headers_at(time.time())
                    )
                except httpx.TransportError as exc:
                    status, error, retryable = None, f"{type(exc).__name__}: {exc}", True
                else:
                    status = response.status_code
                    retryable = status in RETRY_STATUSES
                    error = None if status < 400 else f"{status}: {detail(response)}"
                    wait_hint = retry_after(response)
                    if status < 300:
                        _, ignored, ids = accepted(response)
                        stats.ignored += ignored
                        if prepared.events and len(ids) != len(prepared.events):
                            error = f"{status} named {len(ids)} ids for {len(prepared.events)} events"
                if not retryable or attempts >= self.retry.attempts or self.closing.is_set():
                    break
                stats.retries += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self.closing.wait(), self.retry.delay(attempts, wait_hint, self.jitter)
                    )
                if self.closing.is_set():
                    error = f"stopped while retrying ({error})"
                    break
        finally:
            self.slots.release()
        result = outcome(status, error)
        if error is not None:
            stats.last_error = error
        first = 0
        for due, count in parts:
            part = self.stats.connectors[due.delivery.connector]
            setattr(part, result, getattr(part, result) + 1)  # accepted, rejected or failed
            own = slice(first, first + count) if self.canonical else slice(None)
            first += count
            mine, their_ids = prepared.events[own], ids[own]
            if result == "accepted":
                part.events += len(their_ids)
            # Canonical mode: what Kafka has, under the ids ingest gave (only once it said 202).
            events = [msgspec.structs.replace(e, id=i) for e, i in zip(mine, their_ids, strict=False)]
            summary = (
                {"conversation": mine[0].conversation_id, "types": [e.type for e in mine]} if mine else {}
            )
            self.recorder.delivery(
                due.story, due.delivery, sent_at=sent_at, status=status, attempts=attempts, outcome=result,
                summary=summary or prepared.summary, ids=their_ids, error=error,
                events=events if result == "accepted" else [],
            )  # fmt: skip


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
    canonical: bool = False,
    stories: int | None = None,
    start: float | None = None,
    speed: float = 0.0,
    batch: int = 1,
) -> SimulationStats:
    """Send simulated vendor traffic for ``duration`` seconds (0: until ``stop`` is set or cancelled).

    ``rate``: conversations and calls started per second. ``seed``: None picks one (reported
    in the stats). ``record``: JSON-lines ground truth. ``drain``: after ``duration``, keep
    sending what started stories still have scheduled. ``transport``: an httpx transport
    (tests use ``httpx.ASGITransport``). ``canonical``: canonical events to ``/v1/events``
    (the tenant needs the generic connector), recorded once accepted. ``stories``: start
    no more than this many. ``start`` (epoch seconds, needs ``stories``): replay the stories
    from that instant on a virtual clock, to the last delivery (see :func:`backlog_start`):
    ``speed`` seconds of event time per second, or (0) as fast as ``concurrency`` allows;
    ``batch`` (canonical backlog only): deliveries due together share a request, up to that many.
    Raises :class:`IngestUnreachable` when nothing answers at ``ingest_url`` and
    ``ValueError`` for a bad argument or tenant.
    """
    if not (math.isfinite(rate) and rate >= 0):
        raise ValueError(f"rate must be a finite number >= 0, got {rate}")
    if not (math.isfinite(duration) and duration >= 0):
        raise ValueError(f"duration must be a finite number >= 0, got {duration}")
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    if stories is not None and stories < 0:
        raise ValueError(f"stories must be >= 0, got {stories}")
    if start is not None and (stories is None or not math.isfinite(start)):
        raise ValueError("a backlog (start) needs a finite start time and a number of stories")
    if not (math.isfinite(speed) and speed >= 0):
        raise ValueError(f"speed must be a finite number >= 0, got {speed}")
    if batch < 1 or (batch > 1 and not (canonical and start is not None)):
        raise ValueError("batch must be >= 1, and > 1 only for a canonical backlog")
    creds = load_credentials(tenant, tenants_file)
    if canonical and not creds.canonical:
        raise ValueError(f"tenant {tenant!r} has no generic connector with an ingest_token (canonical mode)")
    seed = secrets.randbits(32) if seed is None else seed
    run_id = int(time.time()) if run_id is None else run_id
    # Canonical mode signs nothing: every story kind can be sent whatever the vendor secrets.
    connectors = CONNECTORS if canonical else creds.connectors
    scenario = Scenario(seed, run_id=run_id, mix=mix, connectors=connectors)
    stats = SimulationStats(seed=seed, run_id=run_id)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(10.0, connect=5.0)
    async with httpx.AsyncClient(transport=transport, limits=limits, timeout=timeout) as client:
        if check_reachable:
            await check_ingest(client, ingest_url)
        recorder = Recorder(record)
        recorder.run(seed=seed, run_id=run_id, tenant=tenant, canonical=canonical, rate=rate, stories=stories,
                     start=start, speed=speed, batch=batch, started_at=time.time())  # fmt: skip
        try:
            runner = _Runner(
                scenario=scenario, creds=creds, client=client, ingest_url=ingest_url, rate=rate,
                duration=duration, stop=stop or asyncio.Event(), recorder=recorder, concurrency=concurrency,
                retry=retry or RetryPolicy(), drain=drain, grace=grace, stats=stats, progress=progress,
                progress_interval=progress_interval, canonical=canonical, stories=stories, start=start,
                speed=speed, batch=batch,
            )  # fmt: skip
            await runner.run()
        finally:
            recorder.close()
    return stats


def backlog_start(stories: int, rate: float, settle: float = 6 * 3600.0) -> float:
    """A start for a backlog of ``stories`` at ``rate`` that ends about ``settle`` seconds ago.

    The default leaves every default SLA target (4 h at most) and every story (under an hour)
    well in the past, so the KPIs of the backlog are final as soon as it is counted.
    """
    span = stories / rate if rate > 0 else 0.0
    # Poisson arrivals: allow five standard deviations more than the mean span.
    slack = 5 * math.sqrt(stories) / rate if rate > 0 else 0.0
    return time.time() - settle - span - slack
