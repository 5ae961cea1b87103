"""The ingest service end to end on the real broker: what it acknowledges is on Kafka, keyed by
conversation; everything it refuses gets a clear 4xx, is counted and reaches no events topic."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.ingest.app import create_app
from services.ingest.publisher import Publisher, RawRecord
from services.ingest.settings import IngestSettings
from shared.events import Event, decode, partition_key
from shared.settings import CommonSettings
from shared.tenants import TenantsConfig
from tests.ingest.connectors.support import corpus_bytes, corpus_json

pytestmark = [pytest.mark.integration]

BASE = "http://ingest.test"
TENANTS = TenantsConfig.model_validate(
    {
        "tenants": {
            "t1": {
                "ingest_token": "t1-token",
                "connectors": {
                    "generic": {},
                    "chatwoot": {"secret": "cw-secret"},
                    "twilio": {"auth_token": "tw-token"},
                    "asterisk": {},
                },
            },
            "legacy": {"connectors": {"chatwoot": {"unsigned": True}}},
        }
    }
)


class Ingest:
    def __init__(
        self, app: FastAPI, client: httpx.AsyncClient, settings: IngestSettings, registry: CollectorRegistry
    ):
        self.app, self.client, self.settings, self.registry = app, client, settings, registry

    def count(self, connector: str, outcome: str) -> float:
        value = self.registry.get_sample_value(
            "supportpulse_ingest_requests_total", {"connector": connector, "outcome": outcome}
        )
        return value or 0.0

    async def records(self, topic: str, n: int, within: float = 20.0) -> list[Any]:
        return await read_records(self.settings.kafka_bootstrap, topic, n, within)


async def read_records(bootstrap: str, topic: str, n: int, within: float = 20.0) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[Any] = []
    try:
        deadline = time.monotonic() + within
        while len(got) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                got.extend(records)
        # Make sure nothing more arrives than expected.
        batch = await consumer.getmany(timeout_ms=500)
        for records in batch.values():
            got.extend(records)
    finally:
        await consumer.stop()
    return got


@pytest.fixture
async def ingest(base_settings: CommonSettings) -> AsyncIterator[Ingest]:
    run = uuid.uuid4().hex[:8]
    settings = IngestSettings(
        events_topic=f"test.ingest.{run}.events",
        raw_topic=f"test.ingest.{run}.raw",
        deadletter_topic=f"test.ingest.{run}.dlq",
        ingest_max_body_bytes=64 * 1024,
    )
    registry = CollectorRegistry()
    app = create_app(settings, TENANTS, registry)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            for _ in range(100):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            yield Ingest(app, client, settings, registry)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([settings.events_topic, settings.raw_topic, settings.deadletter_topic])
    finally:
        await admin.close()


def assert_keyed_by_conversation(records: list[Any]) -> None:
    """Every record's key is its tenant and conversation, so a conversation stays on one partition."""
    partitions: dict[str, set[int]] = {}
    for record in records:
        event = decode(record.value)
        assert record.key == partition_key(event.tenant, event.conversation_id)
        partitions.setdefault(event.conversation_id, set()).add(record.partition)
    assert all(len(p) == 1 for p in partitions.values())


def chatwoot_headers(body: bytes, secret: str = "cw-secret", ts: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "x-chatwoot-timestamp": stamp,
        "x-chatwoot-signature": f"sha256={mac}",
        "x-chatwoot-delivery": str(uuid.uuid4()),
    }


def twilio_signature(url: str, params: dict[str, str], token: str = "tw-token") -> str:
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def canonical(conversation: str = "c-1", **fields: Any) -> dict[str, Any]:
    return {
        "id": f"e-{uuid.uuid4().hex}",
        "source": "crm:1",
        "type": "message.created",
        "occurred_at": "2026-11-20T10:00:00Z",
        "conversation_id": conversation,
        "channel": "chat",
        "direction": "inbound",
        "author": "customer",
        **fields,
    }


async def test_generic_batch_lands_on_kafka_keyed_by_conversation(ingest: Ingest) -> None:
    body = [canonical("c-1"), canonical("c-2"), canonical("c-1", direction="outbound", author="agent")]
    r = await ingest.client.post("/v1/events", json=body, headers={"authorization": "Bearer t1-token"})
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 3
    records = await ingest.records(ingest.settings.events_topic, 3)
    assert len(records) == 3
    for record in records:
        event = decode(record.value)
        assert event.tenant == "t1"
        assert record.key == f"t1\x1f{event.conversation_id}".encode()
    # Both c-1 events share a partition, so their order is kept.
    assert len({r.partition for r in records if decode(r.value).conversation_id == "c-1"}) == 1
    raw = await ingest.records(ingest.settings.raw_topic, 1)
    assert len(raw) == 1 and json.loads(raw[0].value)["connector"] == "generic"
    assert ingest.count("generic", "accepted") == 1


async def test_chatwoot_signed_webhook_is_published_and_redelivery_keeps_ids(ingest: Ingest) -> None:
    body = corpus_bytes("chatwoot", "message_created.json")
    headers = chatwoot_headers(body)
    first = await ingest.client.post("/v1/webhooks/chatwoot/t1", content=body, headers=headers)
    again = await ingest.client.post("/v1/webhooks/chatwoot/t1", content=body, headers=headers)
    assert first.status_code == again.status_code == 202, first.text
    assert first.json()["ids"] == again.json()["ids"] and first.json()["accepted"] >= 1
    records = await ingest.records(ingest.settings.events_topic, 2 * first.json()["accepted"])
    events = [decode(r.value) for r in records]
    assert {e.id for e in events} == set(first.json()["ids"])  # the aggregator drops the repeat by id
    assert all(e.conversation_id.startswith("chatwoot:") for e in events)
    assert_keyed_by_conversation(records)


async def test_chatwoot_rejections_are_clear_counted_and_publish_nothing(ingest: Ingest) -> None:
    body = corpus_bytes("chatwoot", "message_created.json")
    bad_sig = chatwoot_headers(body, secret="wrong")
    stale = chatwoot_headers(body, ts=int(time.time()) - 3600)
    missing = {"content-type": "application/json"}
    for headers, reason in (
        (bad_sig, "bad-signature"),
        (stale, "stale-timestamp"),
        (missing, "missing-signature"),
    ):
        r = await ingest.client.post("/v1/webhooks/chatwoot/t1", content=body, headers=headers)
        assert r.status_code == 401, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith(reason)
    truncated = body[: len(body) // 2]
    r = await ingest.client.post(
        "/v1/webhooks/chatwoot/t1", content=truncated, headers=chatwoot_headers(truncated)
    )
    assert r.status_code == 422 and r.json()["detail"]
    assert ingest.count("chatwoot", "bad_signature") == 2
    assert ingest.count("chatwoot", "stale_timestamp") == 1
    assert ingest.count("chatwoot", "invalid") == 1
    assert await ingest.records(ingest.settings.events_topic, 0, within=1) == []
    dead = await ingest.records(ingest.settings.deadletter_topic, 1)
    assert len(dead) == 1 and json.loads(dead[0].value)["reason"]


async def test_chatwoot_unsigned_mode_and_unknown_event_types(ingest: Ingest) -> None:
    unknown = json.dumps({"event": "conversation_typing_on", "conversation": {"id": 1}}).encode()
    r = await ingest.client.post(
        "/v1/webhooks/chatwoot/legacy", content=unknown, headers={"content-type": "application/json"}
    )
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 0, "ignored": 1, "ids": []}
    assert ingest.count("chatwoot", "ignored") == 1


async def test_twilio_taskrouter_form_callback_signed_over_the_full_url(ingest: Ingest) -> None:
    params = {k: str(v) for k, v in corpus_json("twilio", "taskrouter_task.json").items()}
    url = f"{BASE}/v1/webhooks/twilio/t1"
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": twilio_signature(url, params),
    }
    r = await ingest.client.post("/v1/webhooks/twilio/t1", content=urlencode(params), headers=headers)
    assert r.status_code == 202, r.text
    records = await ingest.records(ingest.settings.events_topic, r.json()["accepted"])
    assert [decode(x.value).type for x in records] == ["call.queued"]
    assert_keyed_by_conversation(records)
    headers["x-twilio-signature"] = twilio_signature(url, params, token="other")
    r = await ingest.client.post("/v1/webhooks/twilio/t1", content=urlencode(params), headers=headers)
    assert r.status_code == 401


async def test_asterisk_queue_log_needs_the_bearer_token(ingest: Ingest) -> None:
    lines = corpus_bytes("asterisk", "queue_log.txt")
    r = await ingest.client.post(
        "/v1/webhooks/asterisk/t1", content=lines, headers={"content-type": "text/plain"}
    )
    assert r.status_code == 401
    r = await ingest.client.post(
        "/v1/webhooks/asterisk/t1",
        content=lines,
        headers={"content-type": "text/plain", "authorization": "Bearer t1-token"},
    )
    assert r.status_code == 202, r.text
    accepted = r.json()["accepted"]
    records = await ingest.records(ingest.settings.events_topic, accepted)
    assert len(records) == accepted > 0
    assert all(decode(x.value).conversation_id.startswith("asterisk:") for x in records)
    assert_keyed_by_conversation(records)


@pytest.mark.parametrize(
    ("path", "headers", "body", "status"),
    [
        ("/v1/events", {}, b"[]", 401),
        ("/v1/events", {"authorization": "Bearer nope"}, b"[]", 401),
        ("/v1/webhooks/zendesk/t1", {}, b"{}", 404),
        ("/v1/webhooks/chatwoot/nobody", {}, b"{}", 404),
        ("/v1/events", {"authorization": "Bearer t1-token", "content-type": "text/xml"}, b"<a/>", 415),
        (
            "/v1/events",
            {"authorization": "Bearer t1-token", "content-type": "application/json"},
            b"x" * 70_000,
            413,
        ),
        (
            "/v1/events",
            {"authorization": "Bearer t1-token", "content-type": "application/json"},
            b'{"id": 1}',
            422,
        ),
    ],
)
async def test_bad_requests_get_problem_details(
    ingest: Ingest, path: str, headers: dict[str, str], body: bytes, status: int
) -> None:
    r = await ingest.client.post(path, content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == status and r.json()["detail"]


async def test_a_batch_with_one_bad_event_publishes_nothing_and_names_it(ingest: Ingest) -> None:
    body = [canonical("ok-1"), canonical("bad", occurred_at="2026-11-20T10:00:00")]  # naive time
    r = await ingest.client.post("/v1/events", json=body, headers={"authorization": "Bearer t1-token"})
    assert r.status_code == 422
    assert "[1]" in r.json()["detail"] and "occurred_at" in r.json()["detail"]
    assert await ingest.records(ingest.settings.events_topic, 0, within=1) == []


async def test_kafka_unreachable_means_503_with_retry_after_never_2xx() -> None:
    settings = IngestSettings(kafka_bootstrap="127.0.0.1:1", ingest_produce_timeout_seconds=1)
    app = create_app(settings, TENANTS, CollectorRegistry())
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=BASE) as client,
    ):
        r = await client.post("/v1/events", json=[canonical()], headers={"authorization": "Bearer t1-token"})
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/healthz")).status_code == 200


def test_raw_record_keeps_no_credentials() -> None:
    from services.ingest.publisher import raw_record

    raw: RawRecord = raw_record(
        "t1",
        "generic",
        datetime.now(UTC),
        "http://x",
        {"authorization": "Bearer secret", "content-type": "a/b"},
        b"{}",
    )
    assert "authorization" not in raw.headers and raw.headers == {"content-type": "a/b"}


async def test_big_groups_go_as_batches_of_their_own_and_keep_each_conversation_in_order(
    ingest: Ingest,
) -> None:
    # 40 and 20 events of two conversations (record batches of their own), 3 of a third (the
    # producer's shared batches), interleaved.
    conversations = ["big", "mid", "big"] * 20
    for at in (0, 30, 62):
        conversations.insert(at, "few")
    body = [canonical(c, id=f"e-{i}") for i, c in enumerate(conversations)]
    r = await ingest.client.post("/v1/events", json=body, headers={"authorization": "Bearer t1-token"})
    assert r.status_code == 202, r.text
    ids = r.json()["ids"]
    records = await ingest.records(ingest.settings.events_topic, len(body))
    assert sorted(decode(x.value).id for x in records) == sorted(ids)
    assert_keyed_by_conversation(records)
    in_kafka = sorted(records, key=lambda x: (x.partition, x.offset))
    for conversation in ("big", "mid", "few"):
        sent = [i for i, event in zip(ids, body, strict=True) if event["conversation_id"] == conversation]
        stored = [decode(x.value).id for x in in_kafka if decode(x.value).conversation_id == conversation]
        assert stored == sent, conversation
    assert len(await ingest.records(ingest.settings.raw_topic, 1)) == 1
    assert ingest.registry.get_sample_value(
        "supportpulse_ingest_events_total", {"type": "message.created"}
    ) == len(body)


async def test_under_a_root_path_fastapi_routes_the_webhooks_to_the_same_handler(ingest: Ingest) -> None:
    transport = httpx.ASGITransport(app=ingest.app, root_path="/ingest")
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        r = await client.post(
            "/ingest/v1/events", json=[canonical()], headers={"authorization": "Bearer t1-token"}
        )
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == 1
        r = await client.post("/ingest/v1/events", json=[canonical()])
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"


async def test_other_methods_on_the_webhook_paths_get_fastapis_problem_answers(ingest: Ingest) -> None:
    for path in ("/v1/events", "/v1/webhooks/chatwoot/t1"):
        r = await ingest.client.get(path)
        assert r.status_code == 405, r.text
        assert r.headers["content-type"] == "application/problem+json"


async def test_an_unexpected_error_is_a_problem_500_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.ingest.connectors import generic

    def broken(request: object, config: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(generic.connector, "handle", broken)
    app = create_app(IngestSettings(kafka_bootstrap="127.0.0.1:1"), TENANTS, CollectorRegistry())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        r = await client.post("/v1/events", json=[canonical()], headers={"authorization": "Bearer t1-token"})
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 500 and "bug" not in r.text


async def test_a_group_over_the_batch_size_goes_as_several_batches_in_order(
    base_settings: CommonSettings,
) -> None:
    """400 events of ~1 KB for one conversation exceed one record batch (256 KiB): they go as
    several, one after the other, and land in the order sent."""
    run = uuid.uuid4().hex[:8]
    settings = IngestSettings(
        events_topic=f"test.ingest.{run}.events",
        raw_topic=f"test.ingest.{run}.raw",
        deadletter_topic=f"test.ingest.{run}.dlq",
    )
    publisher = Publisher(settings)
    await publisher.start()
    try:
        for _ in range(100):
            if await publisher.ready():
                break
            await asyncio.sleep(0.1)
        at = datetime(2026, 1, 1, tzinfo=UTC)
        events = [
            Event(id=f"big-{i}", tenant="t1", source="s", type="message.created", occurred_at=at,
                  conversation_id="one", direction="inbound", author="customer", comment="x" * 1000)
            for i in range(400)
        ]  # fmt: skip
        await publisher.publish(events, None)
        records = await read_records(settings.kafka_bootstrap, settings.events_topic, len(events))
        in_kafka = sorted(records, key=lambda x: (x.partition, x.offset))
        assert [decode(x.value).id for x in in_kafka] == [e.id for e in events]
    finally:
        await publisher.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([settings.events_topic, settings.raw_topic, settings.deadletter_topic])
        finally:
            await admin.close()


async def test_a_batch_at_the_body_limit_is_accepted_raw_copy_included(base_settings: CommonSettings) -> None:
    """1 MiB of events (the documented batch limit) must fit Kafka, raw payload (base64) included."""
    run = uuid.uuid4().hex[:8]
    settings = IngestSettings(
        events_topic=f"test.ingest.{run}.events",
        raw_topic=f"test.ingest.{run}.raw",
        deadletter_topic=f"test.ingest.{run}.dlq",
    )
    survey = {"type": "survey.submitted", "survey": "csat", "score": 4, "comment": "x" * 900}
    body = orjson.dumps([canonical(f"c-{i}", **survey) for i in range(1000)])
    while len(body) > settings.ingest_max_body_bytes:
        survey["comment"] = survey["comment"][:-10]
        body = orjson.dumps([canonical(f"c-{i}", **survey) for i in range(1000)])
    assert len(body) > 0.95 * settings.ingest_max_body_bytes
    app = create_app(settings, TENANTS, CollectorRegistry())
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
                for _ in range(100):
                    if (await client.get("/readyz")).status_code == 200:
                        break
                    await asyncio.sleep(0.1)
                r = await client.post(
                    "/v1/events",
                    content=body,
                    headers={"authorization": "Bearer t1-token", "content-type": "application/json"},
                )
                assert r.status_code == 202, r.text
                raw = await read_records(settings.kafka_bootstrap, settings.raw_topic, 1)
                assert len(base64.b64decode(json.loads(raw[0].value)["body_b64"])) == len(body)
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([settings.events_topic, settings.raw_topic, settings.deadletter_topic])
        finally:
            await admin.close()
