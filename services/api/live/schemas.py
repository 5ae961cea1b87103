"""Response model of GET /v1/live."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class BacklogGroup(BaseModel):
    channel: str
    team: str
    count: int


class Backlog(BaseModel):
    total: int
    groups: list[BacklogGroup]


class QueueState(BaseModel):
    queue: str
    calls: int
    longest_wait_seconds: float = Field(description="Now minus the oldest queued_at of the calls waiting.")


class Queues(BaseModel):
    total: int
    queues: list[QueueState]


class SlaGroup(BaseModel):
    channel: str
    team: str
    breaching_now: int
    at_risk: int


class Sla(BaseModel):
    breaching_now: int = Field(
        description="Open conversations with a breached SLA clock (first response, next reply or "
        "resolution) still waiting: the deadline passed and the reply or resolution has not come."
    )
    at_risk: int = Field(
        description="Open conversations not breaching whose earliest running SLA clock has passed its "
        "policy's at-risk share of the target (or will within risk_minutes)."
    )
    groups: list[SlaGroup]


class LiveResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant": "acme",
                    "as_of": "2026-11-20T10:29:30Z",
                    "risk_minutes": 0,
                    "backlog_open": {
                        "total": 3,
                        "groups": [{"channel": "chat", "team": "support", "count": 3}],
                    },
                    "calls_in_queue": {
                        "total": 2,
                        "queues": [{"queue": "sales", "calls": 2, "longest_wait_seconds": 95.0}],
                    },
                    "sla": {
                        "breaching_now": 0,
                        "at_risk": 1,
                        "groups": [{"channel": "chat", "team": "support", "breaching_now": 0, "at_risk": 1}],
                    },
                }
            ]
        }
    )

    tenant: str
    as_of: datetime
    risk_minutes: int
    backlog_open: Backlog
    calls_in_queue: Queues
    sla: Sla
