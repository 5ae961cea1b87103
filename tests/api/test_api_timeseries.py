"""GET /v1/kpis/timeseries."""

from __future__ import annotations

from typing import Any

import pytest

from services.api.kpis.schemas import TimeseriesResponse
from shared.histogram import bucket_index, bucket_value
from tests.api.conftest import Api

pytestmark = pytest.mark.integration


async def series(api: Api, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = await api.ok("/v1/kpis/timeseries", **params)
    TimeseriesResponse.model_validate(body)
    return body


def values(body: dict[str, Any]) -> dict[str, float | None]:
    return {p["t"]: p["value"] for p in body["points"]}


async def test_counts_per_five_minutes(api: Api) -> None:
    body = await series(api, kpi="conversations_created", step="5m", window="1h")
    assert (body["kpi"], body["stat"], body["step"]) == ("conversations_created", "value", "5m")
    assert body["window"] == {
        "start": "2026-11-20T09:30:00Z",
        "end": "2026-11-20T10:30:00Z",
        "approximate": False,
    }
    points = values(body)
    assert len(points) == 12
    assert points["2026-11-20T10:00:00Z"] == 4.0
    assert sum(v or 0 for v in points.values()) == 4.0
    assert points["2026-11-20T09:30:00Z"] == 0.0


async def test_duration_stats_per_hour(api: Api) -> None:
    body = await series(api, kpi="first_response_seconds", stat="p90", step="1h", window="24h")
    # Widened to whole steps: 10:00 yesterday to 11:00 today, 25 points.
    assert body["window"] == {
        "start": "2026-11-19T10:00:00Z",
        "end": "2026-11-20T11:00:00Z",
        "approximate": True,
    }
    points = values(body)
    assert len(points) == 25
    assert points["2026-11-20T10:00:00Z"] == bucket_value(bucket_index(20))
    assert all(v is None for t, v in points.items() if t != "2026-11-20T10:00:00Z")
    hourly = {
        stat: values(await series(api, kpi="first_response_seconds", stat=stat, step="1h", window="2h"))
        for stat in ("max", "count", "avg")
    }
    assert hourly["max"]["2026-11-20T10:00:00Z"] == bucket_value(bucket_index(600))
    assert hourly["count"]["2026-11-20T10:00:00Z"] == 3.0
    assert hourly["count"]["2026-11-20T09:00:00Z"] == 0.0
    assert hourly["avg"]["2026-11-20T10:00:00Z"] == 210.0
    default = await series(api, kpi="first_response_seconds", step="1h", window="2h")
    assert default["stat"] == "avg"


async def test_ratio_parts(api: Api) -> None:
    for stat, expected in (("value", 0.25), ("numerator", 1.0), ("denominator", 4.0)):
        points = values(await series(api, kpi="abandonment_rate", stat=stat, step="15m", window="1h"))
        assert list(points) == [
            "2026-11-20T09:30:00Z",
            "2026-11-20T09:45:00Z",
            "2026-11-20T10:00:00Z",
            "2026-11-20T10:15:00Z",
        ]
        assert points["2026-11-20T10:00:00Z"] == expected
    points = values(await series(api, kpi="abandonment_rate", step="15m", window="1h"))
    assert points["2026-11-20T09:30:00Z"] is None  # no calls: undefined, not zero


async def test_average_parts(api: Api) -> None:
    points = values(await series(api, kpi="csat_avg", stat="sum", step="1h", window="1h"))
    assert points["2026-11-20T10:00:00Z"] == 12.0


async def test_days(api: Api) -> None:
    body = await series(api, kpi="conversations_created", step="1d", window="7d")
    assert body["window"]["start"] == "2026-11-13T00:00:00Z"
    assert body["window"]["end"] == "2026-11-21T00:00:00Z"
    assert values(body) == {
        "2026-11-13T00:00:00Z": 100.0,
        "2026-11-14T00:00:00Z": 0.0,
        "2026-11-15T00:00:00Z": 7.0,
        "2026-11-16T00:00:00Z": 0.0,
        "2026-11-17T00:00:00Z": 0.0,
        "2026-11-18T00:00:00Z": 0.0,
        "2026-11-19T00:00:00Z": 5.0,
        "2026-11-20T00:00:00Z": 4.0,
    }


async def test_filters_apply(api: Api) -> None:
    points = values(await series(api, kpi="conversations_created", step="5m", window="1h", channel="email"))
    assert points["2026-11-20T10:00:00Z"] == 1.0
    points = values(await series(api, kpi="conversations_created", step="5m", window="1h", label="vip"))
    assert points["2026-11-20T10:00:00Z"] == 2.0


@pytest.mark.parametrize(
    ("params", "field", "mentions"),
    [
        ({"kpi": "nope"}, "kpi", "first_response_seconds"),
        ({"kpi": "conversations_created", "stat": "p90"}, "stat", "value"),
        ({"kpi": "first_response_seconds", "stat": "value"}, "stat", "p99"),
        ({"kpi": "nps", "stat": "p50"}, "stat", "numerator"),
        ({"kpi": "conversations_created", "step": "90m"}, "step", "1h"),
        ({"kpi": "conversations_created", "step": "7x"}, "step", "7x"),
        ({"kpi": "conversations_created", "step": "5m", "window": "30d"}, "step", "2000"),
        ({"kpi": "conversations_created", "step": "1m", "window": "2d"}, "step", "2000"),
        (
            {
                "kpi": "conversations_created",
                "step": "5m",
                "from_": "2026-11-10T00:00:00Z",
                "to": "2026-11-10T01:00:00Z",
            },
            "step",
            "minute buckets",
        ),
        ({"kpi": "conversations_created", "window": "1y"}, "window", "1y"),
    ],
)
async def test_invalid_parameters_are_named(
    api: Api, params: dict[str, Any], field: str, mentions: str
) -> None:
    body = await api.problem("/v1/kpis/timeseries", 422, **params)
    assert body["errors"][0]["field"] == field
    assert mentions in body["detail"]


async def test_kpi_is_required(api: Api) -> None:
    body = await api.problem("/v1/kpis/timeseries", 422)
    assert body["errors"][0]["field"] == "kpi"
