"""Keeping the aggregator's SLA book in step with the policies and calendars in Postgres.

The book is loaded before the first record is consumed, then again whenever the API
commits a change (it issues ``NOTIFY`` in the same transaction) and every few minutes in
case a notification was missed while the listening connection was down. Which policy
version judges a conversation depends only on its creation time and the versions'
``effective_from`` (see docs/sla.md), so aggregators that learn of a change at slightly
different moments still agree once both have reloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.sla import SlaBook
from shared.db import driver_dsn, make_engine
from shared.sla.store import NOTIFY_CHANNEL, StoredConfigError, load_sla_configs

log = logging.getLogger(__name__)

RELOAD_SECONDS: Final = 300.0
# While the listening connection cannot be opened (Postgres away), try again this often.
RELISTEN_SECONDS: Final = 10.0


async def load_book(db: AsyncEngine, previous: SlaBook) -> SlaBook:
    async with db.connect() as conn:
        configs = await load_sla_configs(conn)
    return previous.reloaded(configs)


class PolicyWatcher:
    """Loads the book, then reloads it on every committed change; ``apply`` installs it."""

    def __init__(
        self,
        database_url: str,
        current: Callable[[], SlaBook],
        apply: Callable[[SlaBook], None],
        metrics: AggregatorMetrics,
    ) -> None:
        self.database_url = database_url
        self.current = current
        self.apply = apply
        self.metrics = metrics
        self._changed = asyncio.Event()

    async def load(self) -> None:
        db = make_engine(self.database_url, pool_size=1, application_name="supportpulse-aggregator-sla")
        try:
            book = await load_book(db, self.current())
        finally:
            await db.dispose()
        self.apply(book)
        self.metrics.sla_reloads.inc()
        log.info(
            "SLA configuration loaded: %d tenant(s) with policies (others use the default targets)",
            len(book.configs),
        )

    def _notified(self, *_: object) -> None:
        self._changed.set()

    async def run(self) -> None:
        """Listen and reload until cancelled."""
        listener: asyncpg.Connection | None = None
        try:
            while True:
                if listener is None or listener.is_closed():
                    listener = await self._listen()
                wait = RELOAD_SECONDS if listener is not None else RELISTEN_SECONDS
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)
                self._changed.clear()
                try:
                    await self.load()
                except (
                    OSError,
                    TimeoutError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                    asyncpg.InternalClientError,
                ) as exc:
                    log.warning("cannot reload the SLA configuration yet (%s); keeping the current one", exc)
                except StoredConfigError as exc:
                    # The API validates every write, so this means a hand edit in the tables.
                    log.error("stored SLA configuration is invalid (%s); keeping the current one", exc)
        finally:
            if listener is not None and not listener.is_closed():
                await listener.close()

    async def _listen(self) -> asyncpg.Connection | None:
        try:
            conn = await asyncpg.connect(driver_dsn(self.database_url))
            await conn.add_listener(NOTIFY_CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("cannot listen for SLA changes yet (%s); retrying in %.0fs", exc, RELISTEN_SECONDS)
            return None
        # Changes committed while we were not listening: reload once now.
        self._changed.set()
        return conn
