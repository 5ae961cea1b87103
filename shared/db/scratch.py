"""Throwaway databases for tests and benchmarks: created, migrated, and dropped on exit."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from shared.db import driver_dsn
from shared.db.migrate import upgrade_async

__all__ = ["driver_dsn", "drop_database", "scratch_database"]

log = logging.getLogger(__name__)


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
        await drop_database(admin, name)


async def drop_database(admin_dsn: str, name: str) -> None:
    """Drop, tolerating autovacuum; a failure is logged, not raised (clean-up must not fail a run).

    A plain DROP DATABASE stops autovacuum workers by itself, whereas WITH (FORCE) needs the
    right to signal them, which the application role lacks; FORCE is the last resort for our
    own leftover connections.
    """
    conn = await asyncpg.connect(admin_dsn)
    try:
        for attempt in range(10):
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                return
            except asyncpg.ObjectInUseError:
                await asyncio.sleep(0.5 * (attempt + 1))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except asyncpg.PostgresError as exc:
            log.warning("could not drop database %s: %s; drop it by hand", name, exc)
    finally:
        await conn.close()
