"""Fixtures of the fault tests: a private broker and Postgres for the session, a database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from shared.db.scratch import scratch_database
from tests.chaos.harness import connect
from tests.chaos.private_stack import PrivateStack


@pytest.fixture(scope="session")
def private_stack() -> Iterator[PrivateStack]:
    """Started once (about 15 s), stopped and deleted at the end of the session."""
    stack = PrivateStack()
    try:
        stack.start()
        yield stack
    finally:
        stack.remove()


@pytest.fixture
async def chaos_database(private_stack: PrivateStack) -> AsyncIterator[str]:
    """A fresh migrated database on the private Postgres (SQLAlchemy URL)."""
    async with scratch_database(private_stack.database_url, "chaos_") as url:
        yield url


@pytest.fixture
async def chaos_db(chaos_database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(chaos_database)
    try:
        yield conn
    finally:
        await conn.close()
