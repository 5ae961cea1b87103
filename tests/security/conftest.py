"""Fixtures of the security tests: the API on seeded real databases, ingest on the real broker.

The API tests' seeded database (tests/api/seed.py: tenants acme and globex with the same
agent and label names) is built for this directory too, plus a copy holding acme's rows only:
what a key scoped to acme sees must be the same on both (tenant B's rows cannot influence it).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from services.api.app import create_app as create_api
from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from shared.db.scratch import driver_dsn, scratch_database
from shared.kafka import delete_topics
from shared.settings import CommonSettings
from shared.tenants import ApiKey, TenantsConfig
from tests.api.conftest import TENANTS as API_TENANTS
from tests.api.conftest import api_database, api_settings, seeded
from tests.api.seed import NOW

__all__ = ["api_database", "seeded"]  # the API tests' seeded database, built for this directory too

# The API tests' keys, plus a metrics key scoped to acme.
TENANTS = TenantsConfig(
    tenants=API_TENANTS.tenants,
    api_keys=[
        *API_TENANTS.api_keys,
        ApiKey(key=SecretStr("acme-metrics-key"), name="acme-metrics", tenants=["acme"], metrics=True),
    ],
)


@pytest.fixture(scope="session")
async def acme_only(seeded: str) -> AsyncIterator[str]:
    """A copy of the seeded database holding acme's rows only (copied, so byte for byte the same)."""
    async with scratch_database(CommonSettings().database_dsn, "supportpulse_test_sec_") as url:
        source = await asyncpg.connect(driver_dsn(seeded))
        target = await asyncpg.connect(driver_dsn(url))
        try:
            tables = ("kpi_counts", "kpi_hist", "kpi_counts_by_team", "kpi_counts_by_channel")
            for table in (*tables, "kpi_hist_by_channel", "conversations"):
                rows = await source.fetch(f"SELECT * FROM {table} WHERE tenant = $1", "acme")  # noqa: S608 - constant names
                await target.copy_records_to_table(table, records=rows, columns=list(rows[0].keys()))
            await target.execute("ANALYZE")
        finally:
            await source.close()
            await target.close()
        yield url


ApiFactory = Callable[..., FastAPI]


@pytest.fixture(scope="session")
def api_factory(seeded: str, acme_only: str) -> ApiFactory:
    def make(*, database: str = "full", tenants: TenantsConfig = TENANTS, **overrides: Any) -> FastAPI:
        url = {"full": seeded, "acme-only": acme_only}.get(database, database)
        return create_api(api_settings(url, **overrides), tenants, clock=lambda: NOW)

    return make


@asynccontextmanager
async def serving(app: FastAPI, base_url: str = "http://app.test") -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and a client calling it in-process."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client,
    ):
        yield client


def unique_topics(prefix: str) -> dict[str, str]:
    run = uuid.uuid4().hex[:10]
    return {
        "events_topic": f"test.{prefix}.{run}.events",
        "raw_topic": f"test.{prefix}.{run}.raw",
        "deadletter_topic": f"test.{prefix}.{run}.dlq",
    }


@asynccontextmanager
async def ingest_app(
    tenants: TenantsConfig, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, IngestSettings]]:
    """An ingest app on the real broker with topics of its own, deleted afterwards."""
    settings = IngestSettings(**{**unique_topics("sec"), "events_partitions": 1, **overrides})
    app = create_ingest(settings, tenants, CollectorRegistry())
    try:
        yield app, settings
    finally:
        # On the real broker even when the app was pointed elsewhere (the names are unique).
        await delete_topics(
            CommonSettings().kafka_bootstrap,
            [settings.events_topic, settings.raw_topic, settings.deadletter_topic],
        )
