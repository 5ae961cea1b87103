"""The contract between the HTTP layer and the vendor connectors.

A connector is pure: bytes and headers in, canonical events out, or a
:class:`ConnectorError` saying what is wrong. It never talks to Kafka, so every
connector is tested from its vendor's documented payloads without a broker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Protocol

from shared.events import Event


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    tenant: str
    body: bytes
    # Header names lower-cased.
    headers: Mapping[str, str]
    # The full URL the vendor called (scheme, host, path, query), as Twilio signs it.
    url: str
    received_at: datetime

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@dataclass(slots=True)
class Mapped:
    """What a request became: events to publish, and vendor events we chose to skip."""

    events: list[Event] = field(default_factory=list)
    # One bounded reason per skipped vendor event (e.g. "unknown_event:typing_on"), for metrics.
    ignored: list[str] = field(default_factory=list)


class ConnectorError(Exception):
    """A request the caller must fix; ``reason`` is a short bounded label for metrics."""

    status_code: ClassVar[int] = 422
    default_reason: ClassVar[str] = "invalid"

    def __init__(self, detail: str, *, reason: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason or self.default_reason


class InvalidPayload(ConnectorError):
    status_code = 422
    default_reason = "invalid"


class BadSignature(ConnectorError):
    status_code = 401
    default_reason = "bad_signature"


class StaleRequest(ConnectorError):
    """A signed request whose timestamp is too old or too far ahead: a possible replay."""

    status_code = 401
    default_reason = "stale_timestamp"


class UnsupportedMediaType(ConnectorError):
    status_code = 415
    default_reason = "unsupported_media_type"


class Connector(Protocol):
    """Each vendor module exposes one object satisfying this, with its own config type."""

    name: str

    def handle(self, request: WebhookRequest, config: object) -> Mapped: ...
