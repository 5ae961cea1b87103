"""GET /v1/live."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.api.deps import Conn, State, Tenant
from services.api.errors import AUTH_RESPONSES
from services.api.live.repository import fetch_live
from services.api.live.schemas import LiveResponse

router = APIRouter(tags=["live"], responses=AUTH_RESPONSES)


@router.get(
    "/v1/live",
    response_model=LiveResponse,
    summary="Backlog, queues and SLA clocks now",
    description="Read from the open rows of the conversations table, not from KPI buckets.",
)
async def get_live(
    state: State,
    tenant: Tenant,
    conn: Conn,
    risk_minutes: Annotated[
        int,
        Query(
            ge=0,
            le=1440,
            description="Also count as at risk the conversations that will reach their policy's "
            "at-risk share within this many minutes (0: only those at risk now).",
        ),
    ] = 0,
) -> dict[str, Any]:
    now = state.clock()
    rows = await fetch_live(conn, (tenant.name,), now, timedelta(minutes=risk_minutes))
    backlog = [
        {"channel": r.channel, "team": r.team, "count": r.backlog_open} for r in rows if r.backlog_open
    ]
    queues: dict[str, dict[str, Any]] = {}
    for r in rows:
        if not r.calls_in_queue or r.oldest_queued_at is None:
            continue
        entry = queues.setdefault(r.team, {"queue": r.team, "calls": 0, "longest_wait_seconds": 0.0})
        entry["calls"] += r.calls_in_queue
        wait = max((now - r.oldest_queued_at).total_seconds(), 0.0)
        entry["longest_wait_seconds"] = max(entry["longest_wait_seconds"], wait)
    sla = [
        {"channel": r.channel, "team": r.team, "breaching_now": r.breaching_now, "at_risk": r.at_risk}
        for r in rows
        if r.breaching_now or r.at_risk
    ]
    return {
        "tenant": tenant.name,
        "as_of": now,
        "risk_minutes": risk_minutes,
        "backlog_open": {"total": sum(g["count"] for g in backlog), "groups": backlog},
        "calls_in_queue": {
            "total": sum(q["calls"] for q in queues.values()),
            "queues": sorted(queues.values(), key=lambda q: q["queue"]),
        },
        "sla": {
            "breaching_now": sum(g["breaching_now"] for g in sla),
            "at_risk": sum(g["at_risk"] for g in sla),
            "groups": sla,
        },
    }
