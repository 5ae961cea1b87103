"""One aggregate query over the open rows of the conversations table.

``NOT closed`` and ``tenant = ...`` match the partial index ``conversations_live``, so
the query reads open conversations only, however many closed ones the table keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select
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
    """Per (tenant, is_call, channel, team): backlog, queued calls, SLA clocks breached or at risk.

    ``breaching_now`` counts open conversations with a breached SLA clock still waiting for
    its reply or resolution (``sla_breached_at``, recorded by the aggregator at the deadline,
    within its timer interval); ``at_risk`` those not breaching whose earliest running clock
    has passed its policy's at-risk share (``sla_at_risk_at``), or will within ``risk``.
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
            func.count().filter(c.sla_breached_at.is_not(None)),
            func.count().filter(and_(c.sla_breached_at.is_(None), c.sla_at_risk_at <= now + risk)),
        )
        .where(c.tenant == tenants[0] if len(tenants) == 1 else c.tenant.in_(tenants), ~c.closed)
        .group_by(c.tenant, c.is_call, c.channel, c.team)
        .order_by(c.tenant, c.channel, c.team)
    )
    result = await conn.execute(stmt)
    return [LiveRow(*row) for row in result]
