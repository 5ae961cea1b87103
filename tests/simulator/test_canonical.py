"""Canonical mode: each delivery's canonical events, what ingest's generic connector makes of
them, and the recording the reference is computed from (against an in-process endpoint)."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.ingest.connectors.base import ConnectorError, WebhookRequest
from services.ingest.connectors.generic import GenericConfig, connector
from services.simulator.canonical import events_of, prepare_events
from services.simulator.model import Mix, Scenario
from services.simulator.record import load_events, load_run
from services.simulator.reference import compute
from services.simulator.runner import RetryPolicy, backlog_start, simulate
from services.simulator.story import CONNECTORS
from services.simulator.verify import QuantileCheck, compare
from shared.events import Event
from shared.histogram import bucket_index
from shared.tenants import DEFAULT_FILE
from tests.simulator.support import CREDS, TENANT

BASE = "http://ingest.test"


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_every_delivery_becomes_the_event_types_its_story_expects(seed: int) -> None:
    scenario = Scenario(seed, run_id=1_700_000_000, connectors=CONNECTORS)
    stories = [scenario.opening(), *scenario.stories(400)]
    stories += [s for s in (scenario.agent_break(n) for n in range(30)) if s is not None]
    ids: Counter[str] = Counter()
    transfers = 0
    for story in stories:
        transfers += story.kind == "twilio" and bool(story.plan.get("transfer"))
        for index, delivery in enumerate(story.deliveries):
            events = events_of(story, index, 1_700_000_000.0, TENANT, scenario.run_id)
            assert tuple(e.type for e in events) == delivery.expect, (story.kind, delivery.event)
            ids.update(e.id for e in events)
    # Ids are unique, except a Twilio call's end: both legs of a transfer end it with one id.
    repeated = {i: n for i, n in ids.items() if n > 1}
    assert all(i.endswith(":ended") and n == 2 for i, n in repeated.items()), repeated
    assert len(repeated) == transfers > 0


def test_the_generic_connector_accepts_them_unchanged_but_for_the_id() -> None:
    scenario = Scenario(9, run_id=1_700_000_000, connectors=CONNECTORS)
    now = datetime.now(UTC)
    for story in scenario.stories(200):
        for index, delivery in enumerate(story.deliveries):
            events = events_of(story, index, now.timestamp(), TENANT, scenario.run_id)
            if not events:
                continue
            prepared = prepare_events(events, delivery.connector, BASE, CREDS)
            headers = {k.lower(): v for k, v in prepared.headers.items()}
            mapped = connector.handle(
                WebhookRequest(TENANT, prepared.body, headers, prepared.url, now), GenericConfig()
            )
            assert [msgspec.structs.replace(e, id="x") for e in mapped.events] == [
                msgspec.structs.replace(e, id="x") for e in events
            ]
            assert all(e.id.startswith("generic:") for e in mapped.events)


class GenericEndpoint:
    """``POST /v1/events`` with the real generic connector; the first ``fail_first`` get 503."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.calls = 0
        self.published: list[Event] = []

    def app(self) -> Starlette:
        async def healthz(request: Request) -> Response:
            return JSONResponse({"status": "ok"})

        async def events(request: Request) -> Response:
            self.calls += 1
            if self.calls <= self.fail_first:
                return JSONResponse({"detail": "kafka down"}, status_code=503, headers={"Retry-After": "0"})
            body = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                mapped = connector.handle(
                    WebhookRequest(TENANT, body, headers, str(request.url), datetime.now(UTC)),
                    GenericConfig(),
                )
            except ConnectorError as exc:
                return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
            self.published += mapped.events
            ids = [e.id for e in mapped.events]
            return JSONResponse({"accepted": len(ids), "ignored": 0, "ids": ids}, status_code=202)

        return Starlette(routes=[Route("/healthz", healthz), Route("/v1/events", events, methods=["POST"])])


async def test_a_canonical_backlog_records_exactly_what_was_published(tmp_path: Path) -> None:
    endpoint = GenericEndpoint(fail_first=5)
    record = tmp_path / "run.jsonl"
    started = time.monotonic()
    stats = await simulate(
        rate=5.0,
        ingest_url=BASE,
        seed=11,
        record=record,
        tenants_file=DEFAULT_FILE,
        retry=RetryPolicy(attempts=10, base_seconds=0.01, cap_seconds=0.05),
        transport=httpx.ASGITransport(app=endpoint.app()),
        canonical=True,
        stories=60,
        start=backlog_start(60, 5.0),
    )
    assert time.monotonic() - started < 20  # a backlog goes as fast as the window allows
    assert stats.errors == 0 and stats.accepted == stats.sent > 0 and stats.stories == 60
    assert sum(c.retries for c in stats.connectors.values()) == 5
    recorded = load_events(record)
    # Exactly what the connector published, ids included (the 503s published nothing).
    assert sorted(recorded, key=lambda e: e.id) == sorted(endpoint.published, key=lambda e: e.id)
    assert load_run(record)["canonical"] is True
    assert max(e.occurred_at for e in recorded) < datetime.now(UTC) - timedelta(hours=5)
    assert compute(recorded).totals()["conversations_created"][0] > 20


async def test_a_vendor_mode_recording_cannot_feed_the_reference(tmp_path: Path) -> None:
    record = tmp_path / "vendor.jsonl"
    record.write_text('{"type": "delivery", "outcome": "accepted", "ids": ["a"]}\n')
    with pytest.raises(ValueError, match="record with --canonical"):
        load_events(record)


def test_compare_finds_a_missing_count_and_a_wrong_histogram() -> None:
    start = datetime.now(UTC) - timedelta(days=1)
    events = [
        Event(
            id=f"e{i}",
            tenant="t",
            source="s",
            type="call.queued",
            occurred_at=start,
            conversation_id=f"c{i}",
            channel="phone",
        )
        for i in range(3)
    ] + [
        Event(
            id=f"a{i}",
            tenant="t",
            source="s",
            type="call.answered",
            occurred_at=start + timedelta(seconds=30),
            conversation_id=f"c{i}",
            channel="phone",
            wait_seconds=10.0 * (i + 1),
        )
        for i in range(3)
    ]
    ref = compute(events)
    stored = dict(ref.day_totals())
    hists = {"asa_seconds": {bucket_index(v): 1 for v in (10.0, 20.0, 30.0)}}
    assert compare(ref, stored, hists).ok
    key = next(k for k in stored if k[0] == "calls_offered")
    stored[key] = (2, 2.0)
    result = compare(ref, stored, hists)
    assert not result.ok and [d.measure for d in result.differences] == ["calls_offered"]
    stored = dict(ref.day_totals())
    shifted = {"asa_seconds": {bucket_index(v * 1.05): 1 for v in (10.0, 20.0, 30.0)}}  # 5 % off
    result = compare(ref, stored, shifted)
    assert not result.ok and not result.differences and not all(q.ok for q in result.quantiles)
    assert QuantileCheck("m", 0.5, 100.0, 100.9).ok and not QuantileCheck("m", 0.5, 100.0, 101.5).ok


async def test_a_batched_backlog_records_each_delivery_once(tmp_path: Path) -> None:
    endpoint = GenericEndpoint(fail_first=2)
    record = tmp_path / "batched.jsonl"
    stats = await simulate(
        rate=5.0,
        ingest_url=BASE,
        seed=12,
        record=record,
        tenants_file=DEFAULT_FILE,
        retry=RetryPolicy(attempts=10, base_seconds=0.01, cap_seconds=0.05),
        transport=httpx.ASGITransport(app=endpoint.app()),
        canonical=True,
        stories=60,
        start=backlog_start(60, 5.0),
        batch=10,
    )
    assert stats.errors == 0 and stats.accepted == stats.sent > 0
    assert endpoint.calls - 2 < stats.sent / 3  # several deliveries per request
    rows = [r for r in map(json.loads, record.read_text().splitlines()) if r["type"] == "delivery"]
    assert len(rows) == stats.sent and all(len(r["events"]) == len(r["expect"]) for r in rows)
    assert sorted(load_events(record), key=lambda e: e.id) == sorted(endpoint.published, key=lambda e: e.id)
    with pytest.raises(ValueError, match="batch"):
        await simulate(rate=1.0, ingest_url=BASE, tenants_file=DEFAULT_FILE, batch=2, check_reachable=False)


async def test_a_drain_after_the_duration_waits_for_the_schedule_instead_of_spinning() -> None:
    endpoint = GenericEndpoint(fail_first=0)
    # Calls abandoned after 1-4 s in queue, and no agent breaks: every story ends within 4 s.
    mix = Mix(chat=0, email=0, whatsapp=0, twilio=1, asterisk=0, abandon_share=1.0, short_abandon_share=1.0,
              timeout_share=0.0, breaks_per_minute=0.0)  # fmt: skip
    cpu = time.process_time()
    started = time.monotonic()
    stats = await simulate(
        rate=5.0,
        duration=0.5,
        ingest_url=BASE,
        seed=13,
        tenants_file=DEFAULT_FILE,
        transport=httpx.ASGITransport(app=endpoint.app()),
        canonical=True,
        drain=True,
        mix=mix,
    )
    wall = time.monotonic() - started
    assert stats.accepted == stats.sent > 0 and wall > 1.0  # the drain waited for the abandons
    assert time.process_time() - cpu < wall / 4  # ... asleep, not spinning
