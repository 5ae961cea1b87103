"""Response model of GET /v1/conversations/{conversation_id}."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TimelineEvent(BaseModel):
    """A canonical event as the aggregator kept it (only the fields it uses, defaults omitted)."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: str
    time: datetime


class Breach(BaseModel):
    measure: str
    minute: datetime = Field(description="The minute the breach was counted in (the deadline's minute).")
    channel: str
    team: str
    agent: str
    labels: list[str]
    value: float


class ConversationResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant": "acme",
                    "conversation_id": "c-1",
                    "is_call": False,
                    "status": "resolved",
                    "channel": "chat",
                    "team": "support",
                    "agent": "alice",
                    "created_at": "2026-11-20T10:00:00Z",
                    "queued_at": None,
                    "sla_due_at": None,
                    "closed": True,
                    "updated_at": "2026-11-20T10:20:00Z",
                    "timeline": [
                        {
                            "id": "e1",
                            "type": "conversation.created",
                            "time": "2026-11-20T10:00:00Z",
                            "channel": "chat",
                            "status": "open",
                        },
                        {
                            "id": "e2",
                            "type": "message.created",
                            "time": "2026-11-20T10:01:00Z",
                            "direction": "outbound",
                            "author": "agent",
                            "agent": "alice",
                        },
                    ],
                    "facts": {
                        "created_at": "2026-11-20T10:00:00Z",
                        "first_response_at": "2026-11-20T10:01:00Z",
                        "sla_deadline": "2026-11-20T10:05:00Z",
                        "human_messages": 1,
                    },
                    "breach": None,
                    "summary": {
                        "kind": "conversation",
                        "first_response_seconds": 60.0,
                        "first_response_sla": "met",
                        "first_resolution_seconds": 1200.0,
                        "one_touch": True,
                        "abandoned": False,
                    },
                    "state_error": None,
                }
            ]
        }
    )

    tenant: str
    conversation_id: str
    is_call: bool
    status: str | None
    channel: str
    team: str = Field(description="The team, or for calls the queue.")
    agent: str
    created_at: datetime | None
    queued_at: datetime | None
    sla_due_at: datetime | None
    closed: bool
    updated_at: datetime
    timeline: list[TimelineEvent]
    facts: dict[str, Any] = Field(
        description="The aggregator's walk state: timestamps, counters and flags the "
        "KPI facts were derived from (first_response_at, sla_deadline, human_messages...)."
    )
    breach: Breach | None = Field(
        description="The first-response SLA breach counted for this conversation, if any."
    )
    summary: dict[str, Any] | None = Field(
        description="Why it counted as it did: first response time and SLA outcome (met, not_needed, "
        "breached, pending, breach_pending, none), first resolution time, one-touch and abandoned flags; "
        "for calls the queue outcome and wait."
    )
    state_error: str | None = Field(
        default=None, description="Set when the stored state could not be decoded."
    )
