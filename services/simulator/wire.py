"""From a story's delivery to an HTTP request: URL, body bytes and signed headers.

Secrets come from the tenants file (``shared.tenants``), the same file the ingest service
validates them from. Chatwoot's signature covers the send time, so it is recomputed on
every attempt (retries keep the body and ``X-Chatwoot-Delivery``, as Chatwoot does);
Twilio's and the bearer token are fixed per request.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from services.simulator.roster import sid
from services.simulator.story import ASTERISK, CHATWOOT, TWILIO, Delivery
from services.simulator.vendors import asterisk, chatwoot, twilio
from shared.events import Event
from shared.tenants import DEFAULT_FILE, TenantsConfig, load_tenants


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the simulator needs to sign as one tenant, and which connectors it can use."""

    tenant: str
    connectors: frozenset[str]
    chatwoot_secret: bytes | None = None
    chatwoot_account_id: int = 1
    twilio_token: bytes | None = None
    twilio_account_sid: str = ""
    # Twilio signs the URL configured at Twilio, which a proxy may make differ from ours.
    twilio_public_url: str | None = None
    ingest_token: str | None = None
    # The generic endpoint (POST /v1/events with the ingest token): canonical mode.
    canonical: bool = False

    @classmethod
    def from_tenants(cls, tenants: TenantsConfig, name: str) -> Credentials:
        tenant = tenants.tenant(name)
        if tenant is None:
            raise ValueError(f"tenant {name!r} is not in the tenants file (known: {sorted(tenants.tenants)})")
        sections = tenant.connectors
        token = tenant.ingest_token.get_secret_value() if tenant.ingest_token else None
        connectors: set[str] = set()
        fields: dict[str, Any] = {"ingest_token": token}
        cw = sections.get(CHATWOOT)
        if cw is not None and (cw.get("secret") or cw.get("unsigned")):
            connectors.add(CHATWOOT)
            fields["chatwoot_secret"] = str(cw["secret"]).encode() if cw.get("secret") else None
            fields["chatwoot_account_id"] = int(cw.get("account_id") or 1)
        tw = sections.get(TWILIO)
        if tw is not None and tw.get("auth_token"):
            connectors.add(TWILIO)
            fields["twilio_token"] = str(tw["auth_token"]).encode()
            fields["twilio_account_sid"] = str(tw.get("account_sid") or sid("AC", "account", name))
            fields["twilio_public_url"] = tw.get("public_url")
        if ASTERISK in sections and token:
            connectors.add(ASTERISK)
        fields["canonical"] = "generic" in sections and token is not None
        if not connectors and not fields["canonical"]:
            raise ValueError(
                f"tenant {name!r} has no connector the simulator can use (needs chatwoot "
                "secret/unsigned, twilio auth_token, asterisk or generic with an ingest_token)"
            )
        return cls(tenant=name, connectors=frozenset(connectors), **fields)

    @property
    def workspace_sid(self) -> str:
        return sid("WS", "workspace", self.tenant)


def tenants_file() -> Path:
    """The file the ingest service reads too: ``SUPPORTPULSE_TENANTS_FILE`` or the local default."""
    configured = os.environ.get("SUPPORTPULSE_TENANTS_FILE")
    return Path(configured) if configured else DEFAULT_FILE


def load_credentials(tenant: str, path: Path | None = None) -> Credentials:
    return Credentials.from_tenants(load_tenants(path or tenants_file()), tenant)


@dataclass(frozen=True, slots=True)
class Prepared:
    connector: str
    url: str
    body: bytes
    headers: Mapping[str, str]
    summary: Mapping[str, Any] = field(default_factory=dict)
    chatwoot_secret: bytes | None = None
    # Canonical mode: the events in the body, recorded with ingest's ids once accepted.
    events: tuple[Event, ...] = ()

    def headers_at(self, now: float) -> dict[str, str]:
        """Headers for an attempt sent at ``now`` (epoch seconds)."""
        headers = dict(self.headers)
        if self.chatwoot_secret is not None:
            headers.update(chatwoot.signature_headers(self.chatwoot_secret, self.body, int(now)))
        return headers


def endpoint(base_url: str, connector: str, tenant: str) -> str:
    return f"{base_url.rstrip('/')}/v1/webhooks/{connector}/{quote(tenant, safe='')}"


def prepare(delivery: Delivery, origin: float, base_url: str, creds: Credentials) -> Prepared:
    """The request for ``delivery`` of a story that started at ``origin`` (epoch seconds)."""
    ev = delivery.event
    url = endpoint(base_url, delivery.connector, creds.tenant)
    summary = ev.summary()
    if isinstance(ev, chatwoot.ChatwootEvent):
        body = orjson.dumps(chatwoot.payload(ev, origin, creds.chatwoot_account_id))
        headers = {"Content-Type": "application/json", "X-Chatwoot-Delivery": str(uuid.uuid4())}
        return Prepared(CHATWOOT, url, body, headers, summary, creds.chatwoot_secret)
    if isinstance(ev, twilio.TaskEvent | twilio.WorkerEvent):
        if creds.twilio_token is None:
            raise ValueError(f"tenant {creds.tenant!r} has no twilio auth_token")
        form = twilio.params(ev, origin, creds.twilio_account_sid, creds.workspace_sid)
        signed_url = creds.twilio_public_url or url
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio.signature(creds.twilio_token, signed_url, form),
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        }
        return Prepared(TWILIO, url, urlencode(form).encode(), headers, summary)
    if creds.ingest_token is None:
        raise ValueError(f"tenant {creds.tenant!r} has no ingest_token for asterisk")
    line = asterisk.line(ev, origin)
    headers = {"Content-Type": "text/plain; charset=utf-8", "Authorization": f"Bearer {creds.ingest_token}"}
    return Prepared(ASTERISK, url, (line + "\n").encode(), headers, {**summary, "line": line})
