"""GET /v1/conversations/{conversation_id}: the stored state, decoded and explained."""

from __future__ import annotations

import pytest

from services.api.conversations.schemas import ConversationResponse
from tests.api.conftest import Api

pytestmark = pytest.mark.integration


async def test_an_answered_conversation(api: Api) -> None:
    body = await api.ok("/v1/conversations/c-story")
    ConversationResponse.model_validate(body)
    assert body["tenant"] == "acme"
    assert (body["status"], body["channel"], body["team"], body["closed"], body["is_call"]) == (
        "resolved",
        "chat",
        "support",
        True,
        False,
    )
    assert body["created_at"] == "2026-11-20T10:00:00Z"
    assert body["sla_due_at"] is None
    timeline = body["timeline"]
    assert [(e["type"], e["time"]) for e in timeline] == [
        ("conversation.created", "2026-11-20T10:00:00Z"),
        ("message.created", "2026-11-20T10:00:30Z"),
        ("message.created", "2026-11-20T10:01:00Z"),
        ("conversation.status_changed", "2026-11-20T10:20:00Z"),
    ]
    assert timeline[0]["labels"] == ["vip"]
    assert (timeline[1]["direction"], timeline[1]["author"]) == ("inbound", "customer")
    assert (timeline[2]["author"], timeline[2]["agent"]) == ("agent", "alice")
    assert timeline[3]["status"] == "resolved"
    assert all("tenant" not in e and "t" not in e for e in timeline)
    facts = body["facts"]
    assert facts["first_response_at"] == "2026-11-20T10:01:00Z"
    assert facts["first_resolved_at"] == "2026-11-20T10:20:00Z"
    assert facts["human_messages"] == 1
    assert facts["statuses"] == [
        {"time": "2026-11-20T10:00:00Z", "status": "open"},
        {"time": "2026-11-20T10:20:00Z", "status": "resolved"},
    ]
    assert facts["last"]["event_id"] == timeline[3]["id"]
    # The tenant has no stored policy: the default chat policy (5 min first response) applies.
    assert body["sla"] == {
        "policy": "default-chat",
        "policy_version": 1,
        "clocks": [
            {
                "kind": "first_response",
                "turn": None,
                "started_at": "2026-11-20T10:00:00Z",
                "target_seconds": 300.0,
                "deadline": "2026-11-20T10:05:00Z",
                "at_risk_at": "2026-11-20T10:04:00Z",
                "stopped_at": "2026-11-20T10:01:00Z",
                "outcome": "met",
                "elapsed_seconds": 60.0,
            }
        ],
        "verdicts": [
            {
                "clock": "first_response",
                "verdict": "met",
                "measure": "sla_first_response_met",
                "minute": "2026-11-20T10:01:00Z",
                "channel": "chat",
                "team": "support",
                "agent": "alice",
                "labels": ["vip"],
                "value": 1.0,
            }
        ],
    }
    assert body["summary"] == {
        "kind": "conversation",
        "first_response_seconds": 60.0,
        "first_response_sla": "met",
        "first_resolution_seconds": 1200.0,
        "one_touch": True,
        "abandoned": False,
    }
    assert body["state_error"] is None


async def test_a_breached_conversation(api: Api) -> None:
    body = await api.ok("/v1/conversations/c-breach")
    assert body["closed"] is False
    # The aggregator recorded the breach; no clock is running, so no timer is due.
    assert body["sla_due_at"] is None
    assert body["sla_breached_at"] == "2026-11-20T10:05:00Z"
    assert body["sla_at_risk_at"] is None
    (clock,) = body["sla"]["clocks"]
    assert (clock["outcome"], clock["deadline"], clock["stopped_at"]) == (
        "breached",
        "2026-11-20T10:05:00Z",
        None,
    )
    common = {"channel": "chat", "team": "support", "agent": "", "labels": [], "value": 1.0}
    # At risk at 80 % of the target (10:04) while still waiting, then breached at the deadline.
    assert body["sla"]["verdicts"] == [
        {
            "clock": "first_response",
            "verdict": "at_risk",
            "measure": "sla_at_risk",
            "minute": "2026-11-20T10:04:00Z",
            **common,
        },
        {
            "clock": "first_response",
            "verdict": "breached",
            "measure": "sla_first_response_breaches",
            "minute": "2026-11-20T10:05:00Z",
            **common,
        },
    ]
    assert body["summary"]["first_response_sla"] == "breached"
    assert body["summary"]["first_response_seconds"] is None


async def test_a_call_row(api: Api) -> None:
    body = await api.ok("/v1/conversations/call-1")
    assert body["is_call"] is True
    assert body["team"] == "sales"
    assert body["queued_at"] == "2026-11-20T10:27:55Z"
    assert body["timeline"] == []


async def test_unknown_conversation(api: Api) -> None:
    body = await api.problem("/v1/conversations/nope", 404)
    assert body["detail"] == "no conversation 'nope' in tenant 'acme'"


async def test_conversations_are_per_tenant(api: Api) -> None:
    # globex cannot read acme's conversation by naming its id under its own tenant...
    await api.problem("/v1/conversations/c-story", 404, key="globex-key")
    # ...nor by naming acme.
    await api.problem("/v1/conversations/c-story", 403, key="globex-key", tenant="acme")
    assert (await api.ok("/v1/conversations/g-open-1", key="globex-key"))["tenant"] == "globex"
