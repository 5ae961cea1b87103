"""GET /v1/agents and GET /v1/live."""

from __future__ import annotations

from typing import Any

import pytest

from services.api.kpis.schemas import AgentsResponse
from services.api.live.schemas import LiveResponse
from shared.histogram import bucket_index, bucket_value
from tests.api.conftest import Api

pytestmark = pytest.mark.integration


def bv(seconds: float) -> float:
    return bucket_value(bucket_index(seconds))


async def agents(api: Api, **params: Any) -> list[dict[str, Any]]:
    body = await api.ok("/v1/agents", **params)
    AgentsResponse.model_validate(body)
    rows: list[dict[str, Any]] = body["agents"]
    return rows


async def test_leaderboard(api: Api) -> None:
    rows = await agents(api, window="1h")
    # Sorted by handled, then name; the unassigned ('') rows are not an agent.
    assert [(r["agent"], r["handled"]) for r in rows] == [("carol", 2), ("alice", 1), ("bob", 1), ("dave", 1)]
    alice = rows[1]
    assert alice == {
        "agent": "alice",
        "handled": 1,
        "first_response_seconds": {"count": 2, "avg": 305.0, "p50": bv(10), "p90": bv(10)},
        "resolution_seconds": {"avg": 1200.0, "p50": bv(1200)},
        "csat": {"avg": 4.0, "responses": 2, "satisfied_rate": 0.5},
        "sla_first_response_breaches": 0,
    }
    bob = rows[2]
    assert bob["first_response_seconds"] == {"count": 1, "avg": 20.0, "p50": bv(20), "p90": bv(20)}
    assert bob["csat"] == {"avg": 4.0, "responses": 1, "satisfied_rate": 1.0}
    assert rows[0]["first_response_seconds"] == {"count": 0, "avg": None, "p50": None, "p90": None}


async def test_leaderboard_limit_and_filters(api: Api) -> None:
    assert [r["agent"] for r in await agents(api, window="1h", limit=2)] == ["carol", "alice"]
    assert [r["agent"] for r in await agents(api, window="1h", channel="phone")] == ["carol", "dave"]
    assert [r["agent"] for r in await agents(api, window="1h", queue="support-line")] == ["dave"]
    assert [r["agent"] for r in await agents(api, window="1h", label="vip")] == ["alice", "bob"]
    assert await agents(api, from_="2026-11-01T00:00:00Z", to="2026-11-02T00:00:00Z") == []


async def test_leaderboard_errors(api: Api) -> None:
    body = await api.problem("/v1/agents", 422, limit=0)
    assert body["errors"][0]["field"] == "limit"
    body = await api.problem("/v1/agents", 422, window="soon")
    assert body["errors"][0]["field"] == "window"


async def test_live(api: Api) -> None:
    body = await api.ok("/v1/live")
    LiveResponse.model_validate(body)
    assert body["as_of"] == "2026-11-20T10:29:30Z"
    assert body["risk_minutes"] == 0
    # Open or pending, not calls, not closed; snoozed is not backlog.
    assert body["backlog_open"] == {
        "total": 4,
        "groups": [
            {"channel": "chat", "team": "support", "count": 3},
            {"channel": "email", "team": "billing", "count": 1},
        ],
    }
    assert body["calls_in_queue"] == {
        "total": 3,
        "queues": [
            {"queue": "sales", "calls": 2, "longest_wait_seconds": 95.0},
            {"queue": "support-line", "calls": 1, "longest_wait_seconds": 10.0},
        ],
    }
    # c-open-2 and c-breach breached and still wait for their reply: both breach now.
    # c-open-1 passed its at-risk instant a minute ago. The closed conversation does not count.
    assert body["sla"] == {
        "breaching_now": 2,
        "at_risk": 1,
        "groups": [{"channel": "chat", "team": "support", "breaching_now": 2, "at_risk": 1}],
    }


async def test_live_risk_horizon(api: Api) -> None:
    body = await api.ok("/v1/live", risk_minutes=180)
    assert body["sla"]["at_risk"] == 2
    assert body["sla"]["groups"][1] == {
        "channel": "email",
        "team": "billing",
        "breaching_now": 0,
        "at_risk": 1,
    }
    problem = await api.problem("/v1/live", 422, risk_minutes=-1)
    assert problem["errors"][0]["field"] == "risk_minutes"


async def test_live_of_another_tenant(api: Api) -> None:
    body = await api.ok("/v1/live", key="globex-key")
    assert body["tenant"] == "globex"
    assert body["backlog_open"]["total"] == 1
    assert body["calls_in_queue"] == {"total": 0, "queues": []}
    assert body["sla"]["breaching_now"] == 1
