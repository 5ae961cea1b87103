"""One aggregate query over the open rows of the conversations table.

``NOT closed`` and ``tenant = ...`` match the partial index ``conversations_live``, so
the query reads open conversations only, however many closed ones the table keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import conversations

BACKLOG_STATUSES = ("open", "pending")


@dataclass(frozen=True, slots=True)
class LiveRow:
    tenant: str
    is_call: bool
    channel: str
    team: str
    backlog_open: int
    calls_in_queue: int
    oldest_queued_at: datetime | None
    breaching_now: int
    at_risk: int


async def fetch_live(
    conn: AsyncConnection, tenants: Sequence[str], now: datetime, risk: timedelta
) -> list[LiveRow]:
    """Per (tenant, is_call, channel, team): backlog, queued calls, SLA deadlines passed or near.

    ``breaching_now`` counts open conversations past their first-response deadline with no
    reply yet: the breach recorded (``sla_breached_at``) or about to be (``sla_due_at`` passed,
    until the aggregator's next timer tick).
    """
    c = conversations.c
    backlog = and_(c.is_call.is_(False), c.status.in_(BACKLOG_STATUSES))
    queued = and_(c.is_call.is_(True), c.status == "in_queue")
    stmt = (
        select(
            c.tenant,
            c.is_call,
            c.channel,
            c.team,
            func.count().filter(backlog),
            func.count().filter(queued),
            func.min(c.queued_at).filter(queued),
            func.count().filter(or_(c.sla_due_at <= now, c.sla_breached_at.is_not(None))),
            func.count().filter(and_(c.sla_due_at > now, c.sla_due_at <= now + risk)),
        )
        .where(c.tenant == tenants[0] if len(tenants) == 1 else c.tenant.in_(tenants), ~c.closed)
        .group_by(c.tenant, c.is_call, c.channel, c.team)
        .order_by(c.tenant, c.channel, c.team)
    )
    result = await conn.execute(stmt)
    return [LiveRow(*row) for row in result]
