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
        description="Open conversations whose first-response deadline has passed and whose breach the "
        "aggregator has not recorded yet (it then clears the deadline and counts it in "
        "sla_first_response_breaches)."
    )
    at_risk: int = Field(
        description="Open conversations whose first-response deadline falls within risk_minutes."
    )
    groups: list[SlaGroup]


class LiveResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant": "acme",
                    "as_of": "2026-11-20T10:29:30Z",
                    "risk_minutes": 5,
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
