"""The ingest HTTP service: vendor webhooks and canonical events in, Kafka out.

Routes: ``POST /v1/events`` (canonical events, bearer ingest token), ``POST
/v1/webhooks/{connector}/{tenant}`` (vendor webhooks, each signed its vendor's way),
``/healthz``, ``/readyz`` (Kafka reachable) and ``/metrics``.

The two POST routes are declared to FastAPI (OpenAPI, and serving them if the app is mounted
under a prefix) but normally answered by :class:`services.ingest.asgi.IngestApp` straight from
ASGI: :meth:`Ingest.handle` works on the ASGI scope and ``receive`` either way.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope

from services.ingest import openapi
from services.ingest.asgi import EVENTS_PATH, WEBHOOK_PATH, IngestApp, accepted_response, request_url
from services.ingest.connectors import CONNECTORS
from services.ingest.connectors.base import ConnectorError, InvalidPayload, WebhookRequest
from services.ingest.metrics import IngestMetrics, exposed
from services.ingest.publisher import Publisher, Unavailable, raw_record
from services.ingest.settings import IngestSettings
from shared.problems import install_problem_handlers, problem
from shared.tenants import TenantsConfig, load_tenants

log = logging.getLogger(__name__)

# Connectors authenticated by the tenant's bearer ingest token rather than a vendor signature.
TOKEN_CONNECTORS = frozenset({"generic", "asterisk"})


@dataclass(frozen=True, slots=True)
class Route:
    tenant: str
    connector: str
    config: BaseModel
    token: bytes | None


def build_routes(tenants: TenantsConfig) -> dict[tuple[str, str], Route]:
    """Validate every tenant's connector sections against the connectors' config classes."""
    routes: dict[tuple[str, str], Route] = {}
    for name, tenant in tenants.tenants.items():
        token = tenant.ingest_token.get_secret_value().encode() if tenant.ingest_token else None
        for connector, section in tenant.connectors.items():
            if connector not in CONNECTORS:
                raise ValueError(
                    f"tenant {name!r}: unknown connector {connector!r} (known: {sorted(CONNECTORS)})"
                )
            try:
                config = CONNECTORS[connector][1].model_validate(section)
            except ValidationError as exc:
                raise ValueError(f"tenant {name!r}, connector {connector!r}: {exc}") from exc
            routes[(name, connector)] = Route(name, connector, config, token)
    return routes


class Ingest:
    """Everything a request needs, built once in the lifespan."""

    def __init__(self, settings: IngestSettings, tenants: TenantsConfig, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.routes = build_routes(tenants)
        self.tokens = {
            r.token: r.tenant for r in self.routes.values() if r.token and r.connector == "generic"
        }
        self.metrics = IngestMetrics(tuple(CONNECTORS), registry)
        self.registry = registry
        self.publisher = Publisher(settings)
        # Read per request; settings attributes are looked up through pydantic's machinery.
        self.max_body_bytes = settings.ingest_max_body_bytes
        self.max_batch_events = settings.ingest_max_batch_events

    async def handle(
        self, connector: str, tenant: str | None, scope: Scope, receive: Receive
    ) -> Response | bytes:
        """Answer one webhook request: a problem response, or the JSON body of the 202 (bytes).

        ``tenant`` is None for ``POST /v1/events`` (the bearer token names it). Raises
        ``ClientDisconnect`` if the caller leaves while its body is read.
        """
        started = time.perf_counter()
        outcome, answer = await self._handle(connector, tenant, scope, receive)
        if connector in CONNECTORS:
            self.metrics.request(connector, outcome, time.perf_counter() - started)
        return answer

    async def _handle(
        self, connector: str, tenant: str | None, scope: Scope, receive: Receive
    ) -> tuple[str, Response | bytes]:
        if connector not in CONNECTORS:
            return "unknown_tenant", problem(
                404, f"unknown connector {connector!r}", reason="unknown-connector"
            )
        # Names are lower-case in ASGI; latin-1 is how HTTP header bytes map to str (as Starlette).
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if tenant is None:
            tenant = self._tenant_of_token(headers)
            if tenant is None:
                return "unauthorized", problem(
                    401,
                    "missing or unknown bearer ingest token",
                    reason="unauthorized",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        route = self.routes.get((tenant, connector))
        if route is None:
            return "unknown_tenant", problem(
                404,
                f"connector {connector!r} is not configured for tenant {tenant!r}",
                reason="unknown-tenant",
            )
        if connector in TOKEN_CONNECTORS and not self._token_ok(headers, route):
            return "unauthorized", problem(
                401,
                "missing or wrong bearer ingest token",
                reason="unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )
        body = await self._read_body(headers, receive)
        if body is None:
            return "too_large", problem(
                413, f"body larger than {self.max_body_bytes} bytes", reason="too-large"
            )
        received_at = datetime.now(UTC)
        webhook = WebhookRequest(tenant, body, headers, request_url(scope), received_at)
        try:
            mapped = CONNECTORS[connector][0].handle(webhook, route.config)
        except ConnectorError as exc:
            if isinstance(exc, InvalidPayload):
                await self._deadletter(tenant, connector, webhook, exc.detail)
            # The metric label is the error class's (a fixed set); the finer reason goes to the caller.
            outcome = type(exc).default_reason
            return outcome, problem(exc.status_code, exc.detail, reason=exc.reason.replace("_", "-"))
        if len(mapped.events) > self.max_batch_events:
            return "too_large", problem(
                413,
                f"{len(mapped.events)} events; at most {self.max_batch_events} per request",
                reason="too-large",
            )
        raw = raw_record(tenant, connector, received_at, webhook.url, headers, body)
        try:
            seconds = await self.publisher.publish(mapped.events, raw, partition_key=tenant.encode())
        except Unavailable as exc:
            log.warning("kafka unavailable for %s/%s: %s", connector, tenant, exc)
            return "unavailable", problem(
                503,
                "event store unavailable; retry later",
                reason="unavailable",
                headers={"Retry-After": "5"},
            )
        self.metrics.produce_seconds.observe(seconds)
        self.metrics.events(mapped.events)
        self.metrics.ignored(connector, len(mapped.ignored))
        body_out = {
            "accepted": len(mapped.events),
            "ignored": len(mapped.ignored),
            "ids": [e.id for e in mapped.events],
        }
        outcome = "accepted" if mapped.events else "ignored"
        return outcome, orjson.dumps(body_out)

    def _tenant_of_token(self, headers: Mapping[str, str]) -> str | None:
        presented = _bearer(headers)
        if presented is None:
            return None
        for token, tenant in self.tokens.items():
            if hmac.compare_digest(token, presented):
                return tenant
        return None

    @staticmethod
    def _token_ok(headers: Mapping[str, str], route: Route) -> bool:
        presented = _bearer(headers)
        return (
            route.token is not None and presented is not None and hmac.compare_digest(route.token, presented)
        )

    async def _read_body(self, headers: Mapping[str, str], receive: Receive) -> bytes | None:
        """The body, or None as soon as it is known to exceed the limit (the rest is not read)."""
        limit = self.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _deadletter(self, tenant: str, connector: str, webhook: WebhookRequest, reason: str) -> None:
        raw = raw_record(
            tenant, connector, webhook.received_at, webhook.url, webhook.headers, webhook.body, reason
        )
        try:
            await self.publisher.deadletter(raw)
        except Exception as exc:  # the caller still gets its 422; the loss is counted
            self.metrics.deadletter_failures.inc()
            log.warning("could not dead-letter a rejected %s payload: %s", connector, exc)


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _bearer(headers: Mapping[str, str]) -> bytes | None:
    header = headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip().encode() if scheme.lower() == "bearer" and token.strip() else None


def create_app(
    settings: IngestSettings | None = None,
    tenants: TenantsConfig | None = None,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    settings = settings or IngestSettings()
    tenants = tenants or load_tenants(settings.tenants_file)
    ingest = Ingest(settings, tenants, registry or DEFAULT_REGISTRY)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ingest.publisher.start()
        log.info(
            "ingest ready: %d tenant/connector routes, publishing to %s",
            len(ingest.routes),
            settings.events_topic,
        )
        try:
            yield
        finally:
            await ingest.publisher.stop()

    app = IngestApp(
        ingest.handle,
        title="SupportPulse ingest",
        version="1",
        lifespan=lifespan,
        description="Vendor webhooks and canonical events in; a 202 means Kafka has them.",
    )
    app.state.ingest = ingest
    install_problem_handlers(app)

    # Declared for the OpenAPI document; IngestApp answers these paths before FastAPI routes them.
    @app.post(
        EVENTS_PATH,
        status_code=202,
        summary="Canonical events (one, a batch, or CloudEvents)",
        responses=openapi.RESPONSES,
        openapi_extra=openapi.EVENTS_EXTRA,
    )
    async def post_events(request: Request) -> Response:
        return accepted_response(await ingest.handle("generic", None, request.scope, request.receive))

    @app.post(
        WEBHOOK_PATH,
        status_code=202,
        summary="A vendor webhook",
        responses=openapi.RESPONSES,
        openapi_extra=openapi.WEBHOOK_EXTRA,
    )
    async def post_webhook(request: Request, connector: str, tenant: str) -> Response:
        return accepted_response(await ingest.handle(connector, tenant, request.scope, request.receive))

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: Kafka reachable")
    async def readyz() -> Response:
        if await ingest.publisher.ready():
            return _json({"status": "ready"})
        return problem(503, "kafka unreachable", reason="unavailable")

    default_openapi = app.openapi

    def documented_openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi.add_security_scheme(default_openapi())
        return app.openapi_schema

    app.openapi = documented_openapi  # type: ignore[method-assign]

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(exposed(ingest.registry)), media_type=CONTENT_TYPE_LATEST)

    return app
