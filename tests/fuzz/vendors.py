"""One request builder per connector, so the fuzz properties can treat every connector alike.

Each :class:`Vendor` knows how to turn raw bytes into a ``WebhookRequest`` that its connector
accepts as authentic (signed the vendor's way, or needing no signature because the bearer
token is checked by the HTTP layer), and holds valid sample bodies (the connectors' corpus).
Signing is written here from the vendors' documentation, independently of the connectors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

from pydantic import BaseModel, SecretStr

from services.ingest.connectors.asterisk import AsteriskConfig
from services.ingest.connectors.base import WebhookRequest
from services.ingest.connectors.chatwoot import ChatwootConfig
from services.ingest.connectors.generic import GenericConfig
from services.ingest.connectors.twilio import TwilioConfig
from tests.ingest.connectors.support import NOW, corpus_bytes, corpus_json

TENANT: Final = "t1"
CHATWOOT_SECRET: Final = "cw-fuzz-secret-4242"
TWILIO_TOKEN: Final = "tw-fuzz-token-0123456789abcdef01"
BASE_URL: Final = "https://ingest.example.com/v1/webhooks"

JSON: Final = "application/json"
FORM: Final = "application/x-www-form-urlencoded"
TEXT: Final = "text/plain"
CE: Final = "application/cloudevents+json"
CE_BATCH: Final = "application/cloudevents-batch+json"


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    body: bytes
    content_type: str

    @property
    def is_json(self) -> bool:
        return self.content_type != FORM and self.content_type != TEXT


# (body, content type, received at, timestamp override) -> request the vendor would have sent
Builder = Callable[[bytes, str | None, datetime, int | None], WebhookRequest]


@dataclass(frozen=True, slots=True)
class Vendor:
    name: str
    config: BaseModel
    samples: tuple[Sample, ...]
    # Builds a request authenticated the vendor's way (what a genuine sender would send).
    build: Builder
    # Whether the connector itself verifies a signature (the others rely on the bearer token).
    signs: bool
    # The media types the connector documents; anything else must be a 415.
    content_types: frozenset[str]

    def request(
        self,
        body: bytes,
        content_type: str | None,
        *,
        received_at: datetime = NOW,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> WebhookRequest:
        request = self.build(body, content_type, received_at, timestamp)
        if headers is None:
            return request
        merged = {**request.headers, **{k.lower(): v for k, v in headers.items()}}
        return WebhookRequest(request.tenant, request.body, merged, request.url, request.received_at)


def _headers(content_type: str | None, extra: dict[str, str]) -> dict[str, str]:
    headers = {k.lower(): v for k, v in extra.items()}
    if content_type is not None:
        headers["content-type"] = content_type
    return headers


def chatwoot_signature(body: bytes, timestamp: int, secret: str = CHATWOOT_SECRET) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


def _chatwoot(body: bytes, content_type: str | None, at: datetime, timestamp: int | None) -> WebhookRequest:
    ts = int(at.timestamp()) if timestamp is None else timestamp
    extra = {"x-chatwoot-timestamp": str(ts), "x-chatwoot-signature": chatwoot_signature(body, ts)}
    return WebhookRequest(TENANT, body, _headers(content_type, extra), f"{BASE_URL}/chatwoot/{TENANT}", at)


def twilio_signature(url: str, params: list[tuple[str, str]], token: str = TWILIO_TOKEN) -> str:
    """Twilio's "Webhooks security": URL, then each name+value, sorted by name then value."""
    data = url + "".join(name + value for name, value in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def _twilio(body: bytes, content_type: str | None, at: datetime, timestamp: int | None) -> WebhookRequest:
    url = f"{BASE_URL}/twilio/{TENANT}"
    if (content_type or "").split(";")[0].strip().lower() == JSON:
        # JSON bodies: the URL carries bodySHA256 and the signature covers the URL alone.
        url = f"{url}?bodySHA256={hashlib.sha256(body).hexdigest()}"
        params: list[tuple[str, str]] = []
    else:
        try:
            params = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            params = []  # the connector refuses the body before the signature matters
    extra = {"x-twilio-signature": twilio_signature(url, params)}
    return WebhookRequest(TENANT, body, _headers(content_type, extra), url, at)


def _unsigned(connector: str) -> Builder:
    def build(body: bytes, content_type: str | None, at: datetime, timestamp: int | None) -> WebhookRequest:
        return WebhookRequest(
            TENANT, body, _headers(content_type, {}), f"{BASE_URL}/{connector}/{TENANT}", at
        )

    return build


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def _generic_samples() -> tuple[Sample, ...]:
    event = {
        "id": "evt-1",
        "source": "crm:acme",
        "type": "message.created",
        "occurred_at": "2025-01-15T11:21:30.250Z",
        "conversation_id": "crm:acme:4711",
        "channel": "email",
        "direction": "inbound",
        "author": "customer",
        "labels": ["billing", "vip"],
        "wait_seconds": 12.5,
        "attributes": {"crm": {"priority": 3}},
    }
    call = {
        "id": "evt-2",
        "source": "pbx:1",
        "type": "call.ended",
        "occurred_at": 1736940000,
        "conversation_id": "pbx:1:77",
        "channel": "phone",
        "talk_seconds": 120,
        "hold_seconds": 3.5,
    }
    survey = {
        "id": "evt-3",
        "source": "crm:acme",
        "type": "survey.submitted",
        "occurred_at": "2025-01-15T11:30:00+01:00",
        "conversation_id": "crm:acme:4711",
        "survey": "nps",
        "score": 9,
        "comment": "quick and kind",
    }
    cloudevent = {
        "specversion": "1.0",
        "id": "A234-1234-1234",
        "source": "/crm/acme",
        "type": "com.supportpulse.conversation.status_changed",
        "time": "2025-01-15T11:50:00Z",
        "subject": "crm:acme:4711",
        "datacontenttype": "application/json",
        "data": {"status": "resolved", "channel": "email"},
    }
    return (
        Sample("single", _json(event), JSON),
        Sample("batch", _json([event, call, survey]), JSON),
        Sample("cloudevent", _json(cloudevent), CE),
        Sample("cloudevent-batch", _json([cloudevent, {**cloudevent, "id": "A2"}]), CE_BATCH),
    )


def _chatwoot_samples() -> tuple[Sample, ...]:
    names = (
        "conversation_created",
        "conversation_status_changed",
        "conversation_updated",
        "message_created",
        "message_created_legacy",
        "message_updated_csat",
        "webwidget_triggered",
    )
    return tuple(Sample(name, corpus_bytes("chatwoot", f"{name}.json"), JSON) for name in names)


def _twilio_samples() -> tuple[Sample, ...]:
    samples: list[Sample] = []
    for name in ("taskrouter_task", "voice_completed", "worker_activity_update"):
        params = {k: str(v) for k, v in corpus_json("twilio", f"{name}.json").items()}
        samples.append(Sample(f"{name}-form", urlencode(params).encode(), FORM))
        samples.append(Sample(f"{name}-json", _json(corpus_json("twilio", f"{name}.json")), JSON))
    return tuple(samples)


def _asterisk_samples() -> tuple[Sample, ...]:
    return (
        Sample("queue_log", corpus_bytes("asterisk", "queue_log.txt"), TEXT),
        Sample("queue_log_realtime", corpus_bytes("asterisk", "queue_log_realtime.txt"), TEXT),
    )


VENDORS: Final[dict[str, Vendor]] = {
    "generic": Vendor(
        name="generic",
        config=GenericConfig(),
        samples=_generic_samples(),
        build=_unsigned("generic"),
        signs=False,
        content_types=frozenset({JSON, CE, CE_BATCH}),
    ),
    "chatwoot": Vendor(
        name="chatwoot",
        config=ChatwootConfig(secret=SecretStr(CHATWOOT_SECRET)),
        samples=_chatwoot_samples(),
        build=_chatwoot,
        signs=True,
        content_types=frozenset({JSON}),
    ),
    "twilio": Vendor(
        name="twilio",
        config=TwilioConfig(auth_token=SecretStr(TWILIO_TOKEN)),
        samples=_twilio_samples(),
        build=_twilio,
        signs=True,
        content_types=frozenset({FORM, JSON}),
    ),
    "asterisk": Vendor(
        name="asterisk",
        config=AsteriskConfig(),
        samples=_asterisk_samples(),
        build=_unsigned("asterisk"),
        signs=False,
        content_types=frozenset({TEXT}),
    ),
}
