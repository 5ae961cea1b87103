"""The read API: KPIs over windows, time series, agents, the live view, one conversation's
story, and the KPI gauges for Prometheus.

``create_app`` builds everything from settings and a tenants config; the lifespan runs
the metrics refresher (kept, cancelled and awaited on shutdown) and disposes the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.api.conversations.endpoints import router as conversations_router
from services.api.deps import ApiState, State, bearer
from services.api.errors import ApiError, forbidden, install_error_handlers, problem_response, unauthorized
from services.api.http_metrics import RequestMetrics, RequestMetricsMiddleware
from services.api.kpis.endpoints import router as kpis_router
from services.api.live.endpoints import router as live_router
from services.api.metrics_export import KpiExporter, TenantFilter
from services.api.settings import ApiSettings
from services.api.sla.endpoints import router as sla_router
from shared.db import make_engine
from shared.problems import problem
from shared.tenants import TenantsConfig, load_tenants

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS: Final = 2.0

TAGS: Final = [
    {"name": "kpis", "description": "KPIs of the registry (shared.kpis) summed over windows of buckets."},
    {"name": "live", "description": "What is open, queued and close to its SLA deadline right now."},
    {"name": "conversations", "description": "One conversation's timeline and the facts derived from it."},
    {"name": "sla", "description": "SLA configuration: business-hours calendars and versioned policies."},
    {"name": "operations", "description": "Health, readiness and Prometheus metrics."},
]


class Status(BaseModel):
    status: str


def _utc_now() -> datetime:
    return datetime.now(UTC)


def no_nul_characters(request: Request) -> None:
    """Postgres text cannot hold NUL: refuse it in any parameter with a 422 rather than a 503."""
    for name, value in request.query_params.multi_items():
        if "\x00" in value or "\x00" in name:
            raise ApiError(422, f"{name}: contains a NUL character", param=name, reason="invalid")
    for name, value in request.path_params.items():
        if isinstance(value, str) and "\x00" in value:
            raise ApiError(422, f"{name}: contains a NUL character", param=name, reason="invalid")


def create_app(
    settings: ApiSettings | None = None,
    tenants: TenantsConfig | None = None,
    registry: CollectorRegistry | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """The API app; ``clock`` (default: the wall clock, UTC) fixes "now" in tests."""
    settings = settings or ApiSettings()
    tenants = tenants if tenants is not None else load_tenants(settings.tenants_file)
    if registry is None:
        # A registry of our own (not the global one) so several apps can live in one process.
        registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    engine = make_engine(
        settings.database_dsn, pool_size=settings.api_db_pool_size, application_name="supportpulse-api"
    )
    state = ApiState(settings, tenants, engine, clock or _utc_now)
    exporter = KpiExporter(state)
    exporter.register(registry)
    state.exporter = exporter
    request_metrics = RequestMetrics(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        refresher = asyncio.create_task(exporter.run(), name="supportpulse-api-metrics")
        # Kept (a bare task may be garbage-collected mid-flight) and visible to tests.
        app.state.refresher = refresher
        log.info("api ready: %d tenants, %d API keys", len(tenants.tenants), len(tenants.api_keys))
        try:
            yield
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await engine.dispose()

    app = FastAPI(
        title="SupportPulse API",
        version="1",
        description="Live customer-support KPIs. Every endpoint but the operational ones needs "
        "`Authorization: Bearer <API key>`; errors are RFC 9457 problem details.",
        openapi_tags=TAGS,
        lifespan=lifespan,
        dependencies=[Depends(no_nul_characters)],
    )
    app.state.api = state
    app.state.registry = registry
    install_error_handlers(app)

    async def database_down(request: Request, exc: Exception) -> Response:
        log.warning("database error on %s: %s", request.url.path, exc)
        return problem(
            503, "database unavailable; retry later", reason="unavailable", headers={"Retry-After": "5"}
        )

    # Postgres is the only I/O a request does, so these all mean the database is unreachable or slow.
    for error in (DBAPIError, OSError, TimeoutError):
        app.add_exception_handler(error, database_down)
    app.add_middleware(RequestMetricsMiddleware, metrics=request_metrics)
    app.include_router(kpis_router)
    app.include_router(live_router)
    app.include_router(conversations_router)
    app.include_router(sla_router)

    @app.get("/healthz", tags=["operations"], summary="Liveness: the process answers")
    async def healthz() -> Status:
        return Status(status="ok")

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: Postgres answers SELECT 1",
        responses={503: problem_response("The database does not answer.")},
    )
    async def readyz(api: State) -> Status:
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS), api.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (DBAPIError, OSError, TimeoutError) as exc:
            log.warning("not ready: %s", exc)
            raise ApiError(503, f"database unavailable: {type(exc).__name__}", reason="unavailable") from None
        return Status(status="ready")

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics (KPI gauges and the API's own)",
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {}}, "description": "Prometheus text format."},
            401: problem_response("Metrics are protected and no valid key was given."),
            403: problem_response("The key may not scrape metrics."),
        },
    )
    async def metrics(
        api: State, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Response:
        view: CollectorRegistry | TenantFilter = registry
        if api.settings.api_metrics_protected:
            key = api.authenticate(credentials.credentials) if credentials is not None else None
            if key is None:
                raise unauthorized("metrics are protected: a bearer API key with metrics access is needed")
            if not key.metrics:
                raise forbidden(f"API key {key.name!r} may not scrape metrics")
            if "*" not in key.tenants:
                view = TenantFilter(registry, set(key.tenants))
        return Response(generate_latest(view), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    return app
