"""The runner against an in-process stand-in for the ingest service (no network).

The stand-in runs the real connectors on what it receives, so signatures are checked on
the exact URL, headers and bytes httpx sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.ingest.connectors import CONNECTORS
from services.ingest.connectors.base import ConnectorError, WebhookRequest
from services.simulator.runner import IngestUnreachable, RetryPolicy, simulate
from services.simulator.story import ASTERISK, CHATWOOT, TWILIO
from shared.tenants import DEFAULT_FILE
from tests.simulator.support import CONFIGS

BASE = "http://ingest.test"
FAST_RETRY = RetryPolicy(attempts=3, base_seconds=0.01, cap_seconds=0.05)


@dataclass
class FakeIngest:
    """Records requests; answers 503 to the first ``fail_first`` webhook requests."""

    fail_first: int = 1
    received: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        async def healthz(request: Request) -> Response:
            return JSONResponse({"status": "ok"})

        async def webhook(request: Request) -> Response:
            connector = request.path_params["connector"]
            body = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.received.append((connector, body, headers))
            if len(self.received) <= self.fail_first:
                return JSONResponse({"detail": "kafka down"}, status_code=503)
            if connector == ASTERISK and headers.get("authorization") != "Bearer demo-ingest-token":
                return JSONResponse({"detail": "bad token"}, status_code=401)
            tenant = request.path_params["tenant"]
            hook = WebhookRequest(tenant, body, headers, str(request.url), datetime.now(UTC))
            try:
                mapped = CONNECTORS[connector][0].handle(hook, CONFIGS[connector])
            except ConnectorError as exc:
                self.rejected.append(exc.detail)
                return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
            ids = [e.id for e in mapped.events]
            answer = {"accepted": len(ids), "ignored": len(mapped.ignored), "ids": ids}
            return JSONResponse(answer, status_code=202)

        return Starlette(
            routes=[
                Route("/healthz", healthz),
                Route("/v1/webhooks/{connector}/{tenant}", webhook, methods=["POST"]),
            ]
        )


async def test_sends_retries_a_503_once_and_stops(tmp_path: Path) -> None:
    ingest = FakeIngest(fail_first=1)
    record = tmp_path / "run.jsonl"
    progress: list[int] = []
    started = time.monotonic()
    stats = await simulate(
        rate=20.0,
        duration=1.5,
        tenant="demo",
        ingest_url=BASE,
        seed=5,
        record=record,
        tenants_file=DEFAULT_FILE,
        retry=FAST_RETRY,
        progress=lambda s: progress.append(s.sent),
        progress_interval=0.5,
        transport=httpx.ASGITransport(app=ingest.app()),
    )
    assert time.monotonic() - started < 10
    assert ingest.rejected == []
    assert stats.stories > 10
    assert stats.errors == 0
    assert stats.sent == stats.accepted == len(ingest.received) - 1
    assert sum(c.retries for c in stats.connectors.values()) == 1
    # The retry is the same delivery: same body (and Chatwoot delivery id, were it Chatwoot).
    first_connector, first_body, first_headers = ingest.received[0]
    again = [headers for _, body, headers in ingest.received[1:] if body == first_body]
    assert len(again) == 1
    if first_connector == CHATWOOT:
        assert again[0]["x-chatwoot-delivery"] == first_headers["x-chatwoot-delivery"]
    assert {c for c, _, _ in ingest.received} == {CHATWOOT, TWILIO, ASTERISK}
    assert sum(c.events for c in stats.connectors.values()) > stats.sent // 2
    assert progress and progress[-1] == stats.sent

    rows = [json.loads(line) for line in record.read_text().splitlines()]
    deliveries = [r for r in rows if r["type"] == "delivery"]
    assert len(deliveries) == stats.sent
    assert all(r["outcome"] == "accepted" and r["status"] == 202 for r in deliveries)
    assert any(r["attempts"] == 2 for r in deliveries)
    assert all(len(r["ids"]) == len(r["expect"]) for r in deliveries)
    # Every story, the opening and each break (the demo tenant has Twilio and Asterisk for them).
    assert sum(r["type"] == "story" for r in rows) == stats.stories + 1 + stats.breaks


async def test_stop_event_ends_a_run_without_duration() -> None:
    ingest = FakeIngest(fail_first=0)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.4, stop.set)
    stats = await asyncio.wait_for(
        simulate(
            rate=10.0,
            duration=0,
            ingest_url=BASE,
            seed=1,
            stop=stop,
            tenants_file=DEFAULT_FILE,
            transport=httpx.ASGITransport(app=ingest.app()),
        ),
        timeout=10,
    )
    assert stats.sent == stats.accepted > 0
    assert stats.elapsed < 2


async def test_gives_up_after_the_last_attempt() -> None:
    ingest = FakeIngest(fail_first=10**6)
    stats = await simulate(
        rate=1.0,
        duration=0.3,
        ingest_url=BASE,
        seed=1,
        tenants_file=DEFAULT_FILE,
        retry=FAST_RETRY,
        transport=httpx.ASGITransport(app=ingest.app()),
    )
    assert stats.accepted == 0
    assert stats.sent > 0
    failed = sum(c.failed for c in stats.connectors.values())
    retries = sum(c.retries for c in stats.connectors.values())
    assert failed == stats.sent
    assert retries == stats.sent * (FAST_RETRY.attempts - 1)
    assert "503" in (stats.connectors[TWILIO].last_error or "")


async def test_unreachable_ingest_is_a_clear_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    expected = r"ingest not reachable at http://127\.0\.0\.1:9 — start it with `supportpulse ingest`"
    with pytest.raises(IngestUnreachable, match=expected):
        await simulate(
            rate=1.0,
            duration=1,
            ingest_url="http://127.0.0.1:9",
            tenants_file=DEFAULT_FILE,
            transport=httpx.MockTransport(refuse),
        )


@pytest.mark.parametrize(("rate", "duration"), [(-1.0, 1.0), (float("nan"), 1.0), (1.0, -1.0)])
async def test_bad_arguments(rate: float, duration: float) -> None:
    with pytest.raises(ValueError, match="must be a finite number"):
        await simulate(rate=rate, duration=duration, tenants_file=DEFAULT_FILE)
