"""Response models of the KPI endpoints (the OpenAPI document is generated from them).

``KpiValues`` is built from the registry, so every KPI of shared.kpis.KPIS appears in the
schema by name, with its definition as the description, and a new KPI needs no change here.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from shared.kpis import KPIS, KpiKind


class WindowOut(BaseModel):
    """The UTC window answered, [start, end)."""

    start: datetime
    end: datetime
    approximate: bool = Field(
        description="True when the window answered differs from the one asked: bounds off the minute grid, "
        "or older than minute-bucket retention and so widened to whole hours."
    )


class DurationStats(BaseModel):
    """Seconds. avg is exact; quantiles and max are within 1 % (log-bucket histograms)."""

    count: int
    avg: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None


class RatioValue(BaseModel):
    """value = numerator ÷ denominator (×100 for net scores); null when the denominator is 0."""

    value: float | None
    numerator: int
    denominator: int


class AverageValue(BaseModel):
    value: float | None
    sum: float
    count: int


_KIND_MODELS: dict[KpiKind, Any] = {
    KpiKind.COUNT: int,
    KpiKind.DURATION: DurationStats,
    KpiKind.RATIO: RatioValue,
    KpiKind.NET_SCORE: RatioValue,
    KpiKind.AVERAGE: AverageValue,
}

if TYPE_CHECKING:
    KpiValues = BaseModel
else:
    KpiValues = create_model(
        "KpiValues",
        __doc__="Every KPI of the registry, by name.",
        **{
            name: (_KIND_MODELS[kpi.kind], Field(description=f"{kpi.description} ({kpi.kind.value})"))
            for name, kpi in KPIS.items()
        },
    )

_DURATION_EXAMPLE: dict[str, Any] = {
    "count": 3,
    "avg": 210.0,
    "p50": 19.9,
    "p90": 597.4,
    "p95": 597.4,
    "p99": 597.4,
    "max": 597.4,
}


class KpiGroup(BaseModel):
    group: dict[str, str] = Field(
        description="The group's value of each group_by dimension ({} without group_by)."
    )
    kpis: KpiValues


class KpisResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant": "acme",
                    "window": {
                        "start": "2026-11-20T09:30:00Z",
                        "end": "2026-11-20T10:30:00Z",
                        "approximate": False,
                    },
                    "groups": [
                        {
                            "group": {"channel": "chat"},
                            "kpis": {
                                "conversations_created": 12,
                                "first_response_seconds": _DURATION_EXAMPLE,
                                "abandonment_rate": {"value": 0.25, "numerator": 1, "denominator": 4},
                                "csat_avg": {"value": 4.0, "sum": 12.0, "count": 3},
                                "...": "every other KPI of the registry",
                            },
                        }
                    ],
                }
            ]
        }
    )

    tenant: str
    window: WindowOut
    groups: list[KpiGroup]


class Point(BaseModel):
    t: datetime = Field(description="Start of the step, UTC; the point covers [t, t + step).")
    value: float | None = Field(description="null when the stat is undefined for the step (no data).")


class TimeseriesResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant": "acme",
                    "kpi": "first_response_seconds",
                    "stat": "p90",
                    "step": "1h",
                    "window": {
                        "start": "2026-11-19T10:00:00Z",
                        "end": "2026-11-20T11:00:00Z",
                        "approximate": False,
                    },
                    "points": [
                        {"t": "2026-11-19T10:00:00Z", "value": None},
                        {"t": "2026-11-19T11:00:00Z", "value": 42.1},
                    ],
                }
            ]
        }
    )

    tenant: str
    kpi: str
    stat: str
    step: str
    window: WindowOut
    points: list[Point]


class AgentFirstResponse(BaseModel):
    count: int
    avg: float | None
    p50: float | None
    p90: float | None


class AgentResolution(BaseModel):
    avg: float | None
    p50: float | None


class AgentCsat(BaseModel):
    avg: float | None
    responses: int
    satisfied_rate: float | None


class AgentRow(BaseModel):
    agent: str
    handled: int = Field(description="Resolutions + answered calls attributed to the agent.")
    first_response_seconds: AgentFirstResponse
    resolution_seconds: AgentResolution
    csat: AgentCsat
    sla_first_response_breaches: int


class AgentsResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant": "acme",
                    "window": {
                        "start": "2026-11-20T09:30:00Z",
                        "end": "2026-11-20T10:30:00Z",
                        "approximate": False,
                    },
                    "agents": [
                        {
                            "agent": "alice",
                            "handled": 7,
                            "first_response_seconds": {"count": 2, "avg": 305.0, "p50": 9.9, "p90": 597.4},
                            "resolution_seconds": {"avg": 1800.0, "p50": 1790.2},
                            "csat": {"avg": 4.5, "responses": 2, "satisfied_rate": 1.0},
                            "sla_first_response_breaches": 1,
                        }
                    ],
                }
            ]
        }
    )

    tenant: str
    window: WindowOut
    agents: list[AgentRow]
