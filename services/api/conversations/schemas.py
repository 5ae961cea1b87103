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


class SlaClock(BaseModel):
    """One SLA clock as the aggregator last judged it (see docs/sla.md)."""

    model_config = ConfigDict(extra="allow")

    kind: str = Field(description="first_response, next_reply (one per customer turn) or resolution.")
    turn: int | None = Field(default=None, description="The customer turn of a next_reply clock.")
    started_at: datetime
    target_seconds: float
    deadline: datetime | None = Field(default=None, description="None while the clock is paused.")
    at_risk_at: datetime | None = None
    stopped_at: datetime | None = Field(default=None, description="The reply or resolve that stopped it.")
    outcome: str = Field(description="met, breached, cancelled, running or paused.")
    elapsed_seconds: float = Field(description="Clock time (business time if the target says so).")


class SlaVerdict(BaseModel):
    """A verdict counted in the KPI buckets: which clock, which measure, which minute and cut."""

    clock: str
    verdict: str = Field(description="met, breached or at_risk.")
    measure: str
    minute: datetime = Field(
        description="The minute it was counted in: the reply's (met), the deadline's (breached), "
        "the at-risk instant's (at_risk)."
    )
    channel: str
    team: str
    agent: str
    labels: list[str]
    value: float


class Sla(BaseModel):
    policy: str | None = Field(description="The SLA policy that judges it (None: no policy matched).")
    policy_version: int | None
    clocks: list[SlaClock]
    verdicts: list[SlaVerdict]


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
                    "sla_breached_at": None,
                    "sla_at_risk_at": None,
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
                        "human_messages": 1,
                    },
                    "sla": {
                        "policy": "default-chat",
                        "policy_version": 1,
                        "clocks": [
                            {
                                "kind": "first_response",
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
                                "labels": [],
                                "value": 1.0,
                            }
                        ],
                    },
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
    sla_due_at: datetime | None = Field(description="When the aggregator's timer next judges its SLA clocks.")
    sla_breached_at: datetime | None = Field(
        description="Deadline of a breached clock still waiting for its reply or resolution."
    )
    sla_at_risk_at: datetime | None = Field(description="When its earliest running clock turns at risk.")
    closed: bool
    updated_at: datetime
    timeline: list[TimelineEvent]
    facts: dict[str, Any] = Field(
        description="The aggregator's walk state: timestamps, counters and flags the "
        "KPI facts were derived from (first_response_at, human_messages, statuses, turns...)."
    )
    sla: Sla | None = Field(description="Its SLA policy, clocks and the verdicts counted for it.")
    summary: dict[str, Any] | None = Field(
        description="Why it counted as it did: first response time and SLA outcome (met, not_needed, "
        "breached, pending, breach_pending, paused, none), first resolution time, one-touch and "
        "abandoned flags; for calls the queue outcome and wait."
    )
    state_error: str | None = Field(
        default=None, description="Set when the stored state could not be decoded."
    )
