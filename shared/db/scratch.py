"""Throwaway databases for tests and benchmarks: created, migrated, and dropped on exit."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from shared.db import driver_dsn
from shared.db.migrate import upgrade_async

__all__ = ["driver_dsn", "scratch_database"]


@asynccontextmanager
async def scratch_database(server_url: str, prefix: str, *, migrate: bool = True) -> AsyncIterator[str]:
    """A new database beside the one ``server_url`` names (SQLAlchemy URL in and out)."""
    name = f"{prefix}{secrets.token_hex(5)}"
    admin = driver_dsn(server_url)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = server_url.rsplit("/", 1)[0] + "/" + name
    try:
        if migrate:
            await upgrade_async(url)
        yield url
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
