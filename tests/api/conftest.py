"""A migrated database of the API tests' own, seeded once, and an app on a fixed clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.db.scratch import driver_dsn, scratch_database
from shared.settings import CommonSettings
from shared.tenants import ApiKey, Tenant, TenantsConfig
from tests.api.seed import NOW, seed_buckets, seed_conversations

TENANTS = TenantsConfig(
    tenants={
        "acme": Tenant(timezone="America/New_York"),
        "globex": Tenant(timezone="Europe/Paris"),
        "initech": Tenant(),
    },
    api_keys=[
        ApiKey(key=SecretStr("acme-key"), name="acme-dashboard", tenants=["acme"], sla_admin=True),
        ApiKey(
            key=SecretStr("globex-key"),
            name="globex-dashboard",
            tenants=["globex"],
            metrics=True,
            sla_admin=True,
        ),
        ApiKey(key=SecretStr("both-key"), name="acme-and-globex", tenants=["acme", "globex"], sla_admin=True),
        ApiKey(key=SecretStr("operator-key"), name="operator", tenants=["*"], metrics=True, sla_admin=True),
        ApiKey(key=SecretStr("operator-nometrics-key"), name="operator-readonly", tenants=["*"]),
        # Reads acme, may not change its SLA configuration.
        ApiKey(key=SecretStr("acme-readonly-key"), name="acme-readonly", tenants=["acme"]),
    ],
)


@pytest.fixture(scope="session")
async def api_database() -> AsyncIterator[str]:
    """The API tests' own database (seeded once, never truncated), migrated by the real migrations."""
    async with scratch_database(CommonSettings().database_dsn, "supportpulse_test_api_") as url:
        yield url


@pytest.fixture(scope="session")
async def seeded(api_database: str) -> str:
    conn = await asyncpg.connect(driver_dsn(api_database))
    try:
        await seed_buckets().write(conn)
        await seed_conversations(conn)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return api_database


def api_settings(url: str, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "database_url": url,
        # The tests refresh the gauges themselves; the background task must not race them.
        "api_metrics_cache_seconds": 3600.0,
        "minute_retention_hours": 48.0,
        "api_metrics_protected": False,
        "api_metrics_per_agent": False,
        "api_metrics_windows": ["5m", "1h", "24h"],
    }
    values.update(overrides)
    return ApiSettings(**values)


@pytest.fixture(scope="session")
def app_factory(seeded: str) -> Callable[..., FastAPI]:
    def make(**overrides: Any) -> FastAPI:
        return create_app(api_settings(seeded, **overrides), TENANTS, clock=lambda: NOW)

    return make


@pytest.fixture(scope="session")
async def app(app_factory: Callable[..., FastAPI]) -> AsyncIterator[FastAPI]:
    application = app_factory()
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as c:
        yield c


class Api:
    """GET with a key; returns the response for the test to inspect."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def get(self, path: str, key: str | None = "acme-key", **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        clean = {k.rstrip("_"): v for k, v in params.items() if v is not None}
        return await self.client.get(path, params=clean, headers=headers)

    async def ok(self, path: str, key: str | None = "acme-key", **params: Any) -> Any:
        response = await self.get(path, key, **params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        return response.json()

    async def problem(self, path: str, status: int, key: str | None = "acme-key", **params: Any) -> Any:
        response = await self.get(path, key, **params)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["status"] == status
        return body


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)
