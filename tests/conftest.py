"""Fixtures shared by all tests: real, uniquely named databases and Kafka topics.

Nothing stands in for Postgres or Kafka: integration tests get a fresh database built by
the real Alembic migrations and fresh topics on the local broker, named per test run so
runs never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.db.scratch import driver_dsn, scratch_database
from shared.settings import CommonSettings


@pytest.fixture(scope="session")
def base_settings() -> CommonSettings:
    return CommonSettings()


@pytest.fixture(scope="session")
async def migrated_database(base_settings: CommonSettings) -> AsyncIterator[str]:
    """A database of its own for this test session, at the latest migration (SQLAlchemy URL)."""
    async with scratch_database(base_settings.database_dsn, "supportpulse_test_") as url:
        yield url


@pytest.fixture
async def db(migrated_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the session database; the bucket tables are emptied before each test."""
    conn = await asyncpg.connect(driver_dsn(migrated_database))
    await conn.execute(
        "TRUNCATE kpi_counts, kpi_hist, kpi_counts_by_team, kpi_counts_by_channel, kpi_hist_by_channel, "
        "conversations, consumer_offsets, quarantined_events"
    )
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def topic(base_settings: CommonSettings) -> AsyncIterator[str]:
    """A fresh 6-partition topic, deleted afterwards."""
    name = f"test.events.{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=base_settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 6, 1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()
