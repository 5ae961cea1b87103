"""Ingest refuses oversized bodies with 413 without reading them, and bounds batches.

At the ASGI level a ``receive`` callable counts how much of the body the app pulls:

* a declared ``Content-Length`` over the limit is refused before a single byte is read;
* a chunked body without ``Content-Length`` is refused as soon as the bytes read pass the
  limit (at most one chunk more), never read to the end (the stream here never ends);
* unauthenticated or misrouted requests (401, 404) are refused without reading the body.

Against the real service (``supportpulse ingest`` in a subprocess, real uvicorn, real broker)
over a raw socket: a huge ``Content-Length`` and an endless chunked body both get their 413
while the client is still sending. Batches over ``ingest_max_batch_events`` get 413 too.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any, Final

import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from shared.tenants import TenantsConfig
from tests.fuzz.support import read_events
from tests.security.conftest import ingest_app, serving
from tests.security.services import RunningService

pytestmark = pytest.mark.integration

LIMIT: Final = 64 * 1024
CHUNK: Final = 8 * 1024
TOKEN: Final = "limits-token"
TENANTS: Final = TenantsConfig.model_validate(
    {
        "tenants": {
            "t1": {
                "ingest_token": TOKEN,
                "connectors": {
                    "generic": {},
                    "asterisk": {},
                    "chatwoot": {"secret": "limits-cw"},
                    "twilio": {"auth_token": "limits-tw"},
                },
            }
        }
    }
)
ROUTES: Final = [
    ("/v1/events", "application/json"),
    ("/v1/webhooks/generic/t1", "application/json"),
    ("/v1/webhooks/asterisk/t1", "text/plain"),
    ("/v1/webhooks/chatwoot/t1", "application/json"),
    ("/v1/webhooks/twilio/t1", "application/x-www-form-urlencoded"),
]


class Stream:
    """An ASGI ``receive`` that hands out ``CHUNK``-sized pieces, forever unless ``total`` is set."""

    def __init__(self, total: int | None = None) -> None:
        self.total = total
        self.read = 0
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        size = CHUNK if self.total is None else min(CHUNK, self.total - self.read)
        self.read += size
        more = self.total is None or self.read < self.total
        return {"type": "http.request", "body": b"[" * size, "more_body": more}


async def call(
    app: FastAPI, path: str, headers: dict[str, str], stream: Stream
) -> tuple[int, dict[str, Any]]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("ingest.test", 80),
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, stream, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert dict(start["headers"])[b"content-type"] == b"application/problem+json"
    return start["status"], json.loads(body)


@pytest.fixture
def app() -> FastAPI:
    # No lifespan and no broker needed: every request here is refused before anything is published.
    settings = IngestSettings(kafka_bootstrap="127.0.0.1:1", ingest_max_body_bytes=LIMIT)
    return create_app(settings, TENANTS, CollectorRegistry())


def _auth(content_type: str, **extra: str) -> dict[str, str]:
    return {"content-type": content_type, "authorization": f"Bearer {TOKEN}", **extra}


@pytest.mark.parametrize(("path", "content_type"), ROUTES)
async def test_declared_length_over_the_limit_is_refused_unread(
    app: FastAPI, path: str, content_type: str
) -> None:
    for declared in (LIMIT + 1, 10 * LIMIT, 2**62):
        stream = Stream()
        status, body = await call(app, path, _auth(content_type, **{"content-length": str(declared)}), stream)
        assert status == 413, body
        assert stream.calls == 0, f"{stream.read} bytes read before refusing"
        assert body["detail"] == f"body larger than {LIMIT} bytes"


@pytest.mark.parametrize(("path", "content_type"), ROUTES)
async def test_chunked_body_without_length_stops_at_the_limit(
    app: FastAPI, path: str, content_type: str
) -> None:
    stream = Stream()  # never ends
    status, body = await call(app, path, _auth(content_type, **{"transfer-encoding": "chunked"}), stream)
    assert status == 413, body
    assert LIMIT < stream.read <= LIMIT + CHUNK


@pytest.mark.parametrize(("path", "content_type"), ROUTES)
async def test_understated_length_does_not_let_more_through(
    app: FastAPI, path: str, content_type: str
) -> None:
    stream = Stream()
    status, _ = await call(app, path, _auth(content_type, **{"content-length": "100"}), stream)
    assert status == 413
    assert stream.read <= LIMIT + CHUNK


async def test_a_body_at_the_limit_is_read_and_judged(app: FastAPI) -> None:
    stream = Stream(total=LIMIT)
    status, body = await call(
        app, "/v1/events", _auth("application/json", **{"content-length": str(LIMIT)}), stream
    )
    assert status == 422, body  # read whole, then refused as invalid JSON: not a size refusal
    assert stream.read == LIMIT


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/v1/events", {"content-type": "application/json"}, 401),
        ("/v1/events", {"content-type": "application/json", "authorization": "Bearer nope"}, 401),
        ("/v1/webhooks/asterisk/t1", {"content-type": "text/plain"}, 401),
        ("/v1/webhooks/nope/t1", {"content-type": "application/json"}, 404),
        ("/v1/webhooks/chatwoot/nobody", {"content-type": "application/json"}, 404),
    ],
)
async def test_refused_callers_are_refused_before_the_body_is_read(
    app: FastAPI, path: str, headers: dict[str, str], status: int
) -> None:
    for extra in ({"content-length": str(100 * LIMIT)}, {"transfer-encoding": "chunked"}):
        stream = Stream()
        got, body = await call(app, path, {**headers, **extra}, stream)
        assert got == status, body
        assert stream.calls == 0


async def test_batches_over_the_limit_are_413_and_publish_nothing() -> None:
    async with (
        ingest_app(TENANTS, ingest_max_batch_events=5) as (application, settings),
        serving(application) as client,
    ):
        for _ in range(100):
            if (await client.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        event = {
            "source": "limits",
            "type": "call.queued",
            "occurred_at": "2025-01-01T00:00:00Z",
            "conversation_id": "c",
        }
        batch = [{**event, "id": f"e{i}"} for i in range(6)]
        response = await client.post("/v1/events", json=batch, headers={"authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 413, response.text
        assert response.json()["detail"] == "6 events; at most 5 per request"
        response = await client.post(
            "/v1/events", json=batch[:5], headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert response.status_code == 202, response.text
        # One partition, in order: reading up to the accepted five shows whatever came before.
        accepted = set(response.json()["ids"])
        published = await read_events(settings.kafka_bootstrap, settings.events_topic, accepted)
        assert {e.id for e in published} == accepted and len(published) == 5


# --- the real service over a raw socket ------------------------------------------------------


@pytest.fixture(scope="module")
def ingest_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with RunningService.ingest(
        tmp_path_factory.mktemp("limits"),
        tenants={"tenants": {"t1": {"ingest_token": TOKEN, "connectors": {"generic": {}}}}},
        env={"SUPPORTPULSE_INGEST_MAX_BODY_BYTES": str(LIMIT)},
    ) as service:
        yield service


def _send_until_answered(
    port: int, head: bytes, chunks: Iterator[bytes], within: float = 10.0
) -> tuple[bytes, int]:
    """Send ``head`` then ``chunks`` until the server answers; returns (answer, body bytes sent)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=within) as sock:
        sock.sendall(head)
        sock.settimeout(0.05)
        deadline = time.monotonic() + within
        answer = b""
        while time.monotonic() < deadline:
            try:
                answer = sock.recv(65536)
                if answer:
                    return answer, sent
            except TimeoutError:
                pass
            try:
                chunk = next(chunks)
            except StopIteration:
                continue  # all sent, still waiting
            try:
                sock.sendall(chunk)
                sent += len(chunk)
            except OSError:  # the server closed its side after answering
                break
        sock.settimeout(within)
        return sock.recv(65536), sent


def _head(port: int, extra: str) -> bytes:
    return (
        f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


def test_real_service_refuses_a_huge_declared_length_without_waiting_for_it(
    ingest_service: RunningService,
) -> None:
    port = ingest_service.port
    # 50 MB announced, 1 KiB sent: the answer comes while the client still "owes" the rest.
    answer, sent = _send_until_answered(
        port, _head(port, "Content-Length: 50000000\r\n"), iter([b"[" * 1024])
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"application/problem+json" in answer
    assert sent <= 1024


def test_real_service_refuses_an_endless_chunked_body(ingest_service: RunningService) -> None:
    port = ingest_service.port

    def endless() -> Iterator[bytes]:
        payload = b"[" * CHUNK
        for _ in range(100_000):  # bounded: 800 MB at most, never reached
            yield f"{len(payload):x}\r\n".encode() + payload + b"\r\n"

    answer, sent = _send_until_answered(port, _head(port, "Transfer-Encoding: chunked\r\n"), endless())
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 100_000 * CHUNK  # answered long before the end (there is no end)
