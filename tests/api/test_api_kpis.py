"""GET /v1/kpis against hand-worked buckets (tests/api/seed.py)."""

from __future__ import annotations

from typing import Any

import pytest

from services.api.kpis.schemas import KpisResponse
from shared.histogram import bucket_index, bucket_value
from shared.kpis import KPIS
from tests.api.conftest import Api

pytestmark = pytest.mark.integration


def bv(seconds: float) -> float:
    """What a histogram reports for a value: its bucket's representative value."""
    return bucket_value(bucket_index(seconds))


def ratio(value: float | None, numerator: int, denominator: int) -> dict[str, Any]:
    return {
        "value": value if value is None else pytest.approx(value),
        "numerator": numerator,
        "denominator": denominator,
    }


async def kpis(api: Api, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = await api.ok("/v1/kpis", **params)
    KpisResponse.model_validate(body)
    return body


def only(body: dict[str, Any]) -> dict[str, Any]:
    assert len(body["groups"]) == 1
    assert body["groups"][0]["group"] == {}
    kpis: dict[str, Any] = body["groups"][0]["kpis"]
    return kpis


def by_group(body: dict[str, Any]) -> dict[tuple[str, ...], dict[str, Any]]:
    return {tuple(g["group"].values()): g["kpis"] for g in body["groups"]}


async def test_every_kpi_over_the_last_hour(api: Api) -> None:
    body = await kpis(api, window="1h")
    assert body["tenant"] == "acme"
    assert body["window"] == {
        "start": "2026-11-20T09:30:00Z",
        "end": "2026-11-20T10:30:00Z",
        "approximate": False,
    }
    k = only(body)
    assert set(k) == set(KPIS)
    assert k["conversations_created"] == 4
    assert k["conversations_resolved"] == 2
    assert k["conversations_reopened"] == 0
    # 10, 20 and 600 s. shared.histogram's nearest rank is the value at position floor(q·(n−1)),
    # so with three values every quantile up to p99 is the middle one.
    assert k["first_response_seconds"] == {
        "count": 3,
        "avg": 210.0,
        "p50": bv(20),
        "p90": bv(20),
        "p95": bv(20),
        "p99": bv(20),
        "max": bv(600),
    }
    assert k["resolution_seconds"] == {
        "count": 2,
        "avg": 1140.0,
        "p50": bv(1080),
        "p90": bv(1080),
        "p95": bv(1080),
        "p99": bv(1080),
        "max": bv(1200),
    }
    assert k["next_reply_seconds"] == {
        "count": 0,
        "avg": None,
        "p50": None,
        "p90": None,
        "p95": None,
        "p99": None,
        "max": None,
    }
    assert k["asa_seconds"]["count"] == 3
    assert k["asa_seconds"]["avg"] == pytest.approx(73 / 3)
    assert k["asa_seconds"]["max"] == bv(40)
    assert k["one_touch_rate"] == ratio(0.5, 1, 2)
    assert k["reopen_rate"] == ratio(0.0, 0, 2)
    assert k["calls_offered"] == 5
    assert k["calls_answered"] == 3
    assert k["calls_abandoned"] == 2
    assert k["calls_short_abandoned"] == 1
    # (2 abandoned − 1 short) ÷ (5 offered − 1 short); 2 in target ÷ (3 answered + 2 abandoned − 1 short).
    assert k["abandonment_rate"] == ratio(0.25, 1, 4)
    assert k["service_level"] == ratio(0.5, 2, 4)
    assert k["csat_responses"] == 3
    assert k["csat_avg"] == {"value": 4.0, "sum": 12.0, "count": 3}
    assert k["csat_satisfied_rate"] == ratio(2 / 3, 2, 3)
    # 2 promoters − 1 detractor of 3 answers, in percent.
    assert k["nps"] == ratio(100 / 3, 1, 3)
    assert k["nps_responses"] == 3
    assert k["ces_avg"] == {"value": None, "sum": 0.0, "count": 0}
    assert k["handled"] == 5
    assert k["received"] == 9
    assert k["sla_first_response_breaches"] == 1
    assert k["sla_first_response_compliance"] == ratio(2 / 3, 2, 3)


async def test_group_by_channel(api: Api) -> None:
    body = await kpis(api, window="1h", group_by="channel")
    groups = by_group(body)
    assert list(groups) == [("chat",), ("email",), ("phone",)]
    assert [g["group"] for g in body["groups"]] == [
        {"channel": "chat"},
        {"channel": "email"},
        {"channel": "phone"},
    ]
    assert groups[("chat",)]["conversations_created"] == 3
    assert groups[("chat",)]["first_response_seconds"]["count"] == 2
    assert groups[("chat",)]["first_response_seconds"]["avg"] == 15.0
    assert groups[("email",)]["first_response_seconds"]["avg"] == 600.0
    assert groups[("phone",)]["calls_offered"] == 5
    assert groups[("phone",)]["conversations_created"] == 0


@pytest.mark.parametrize("group_by", [["channel", "team"], "channel,team"])
async def test_group_by_two_dimensions(api: Api, group_by: Any) -> None:
    body = await kpis(api, window="1h", group_by=group_by)
    groups = by_group(body)
    assert list(groups) == [
        ("chat", "support"),
        ("email", "billing"),
        ("phone", "sales"),
        ("phone", "support-line"),
    ]
    assert body["groups"][2]["group"] == {"channel": "phone", "team": "sales"}
    sales, line = groups[("phone", "sales")], groups[("phone", "support-line")]
    assert sales["calls_offered"] == 3
    assert sales["abandonment_rate"] == ratio(0.0, 0, 2)
    assert sales["service_level"] == ratio(1.0, 2, 2)
    assert line["abandonment_rate"] == ratio(0.5, 1, 2)
    assert line["service_level"] == ratio(0.0, 0, 2)


async def test_group_by_label_reads_the_label_rows(api: Api) -> None:
    groups = by_group(await kpis(api, window="1h", group_by="label"))
    assert list(groups) == [("billing",), ("vip",)]
    assert groups[("vip",)]["conversations_created"] == 2
    assert groups[("vip",)]["first_response_seconds"]["count"] == 2
    assert groups[("vip",)]["conversations_resolved"] == 1
    assert groups[("billing",)]["conversations_created"] == 1
    assert groups[("billing",)]["first_response_seconds"]["avg"] == 20.0


async def test_label_filter(api: Api) -> None:
    k = only(await kpis(api, window="1h", label="vip"))
    assert k["conversations_created"] == 2
    assert k["calls_offered"] == 0
    groups = by_group(await kpis(api, window="1h", label="vip", group_by="channel"))
    assert list(groups) == [("chat",)]


async def test_label_and_channel_grouping(api: Api) -> None:
    groups = by_group(await kpis(api, window="1h", group_by="label,channel"))
    assert groups[("vip", "chat")]["conversations_created"] == 2


async def test_queue_filter_is_the_team_column_on_phone(api: Api) -> None:
    k = only(await kpis(api, window="1h", queue="sales"))
    assert k["calls_offered"] == 3
    assert k["abandonment_rate"] == ratio(0.0, 0, 2)
    assert k["conversations_created"] == 0
    groups = by_group(await kpis(api, window="1h", group_by="queue"))
    assert list(groups) == [("sales",), ("support-line",)]
    assert groups[("support-line",)]["calls_offered"] == 2


async def test_team_filter_does_not_restrict_to_phone(api: Api) -> None:
    k = only(await kpis(api, window="1h", team="support"))
    assert k["conversations_created"] == 3
    assert k["calls_offered"] == 0


async def test_agent_filter(api: Api) -> None:
    k = only(await kpis(api, window="1h", agent="alice"))
    assert k["conversations_created"] == 1
    assert k["first_response_seconds"]["count"] == 2
    assert k["first_response_seconds"]["avg"] == 305.0
    assert k["csat_avg"] == {"value": 4.0, "sum": 8.0, "count": 2}
    groups = by_group(await kpis(api, window="1h", group_by="agent", channel="phone"))
    assert {key: g["calls_answered"] for key, g in groups.items()} == {("",): 0, ("carol",): 2, ("dave",): 1}


@pytest.mark.parametrize("channel", [["chat", "email"], "chat,email"])
async def test_several_values_of_a_filter(api: Api, channel: Any) -> None:
    k = only(await kpis(api, window="1h", channel=channel))
    assert k["conversations_created"] == 4
    assert k["calls_offered"] == 0


async def test_last_24_hours(api: Api) -> None:
    body = await kpis(api, window="24h")
    assert body["window"]["start"] == "2026-11-19T10:30:00Z"
    assert only(body)["conversations_created"] == 9


@pytest.mark.parametrize(
    ("period", "start", "end", "created"),
    [
        # New York is UTC−5 in late November: local midnight is 05:00Z. Periods stop at now.
        ("today", "2026-11-20T05:00:00Z", "2026-11-20T10:30:00Z", 4),
        ("yesterday", "2026-11-19T05:00:00Z", "2026-11-20T05:00:00Z", 5),
        ("day:2026-11-15", "2026-11-15T05:00:00Z", "2026-11-16T05:00:00Z", 7),
        ("week:2026-W47", "2026-11-16T05:00:00Z", "2026-11-20T10:30:00Z", 9),
        # 1 November 2026 still starts on daylight time (UTC−4); clocks go back at 02:00.
        ("month:2026-11", "2026-11-01T04:00:00Z", "2026-11-20T10:30:00Z", 116),
    ],
)
async def test_periods_in_the_tenant_time_zone(
    api: Api, period: str, start: str, end: str, created: int
) -> None:
    body = await kpis(api, period=period)
    assert body["window"] == {"start": start, "end": end, "approximate": False}
    assert only(body)["conversations_created"] == created


async def test_from_to(api: Api) -> None:
    body = await kpis(api, from_="2026-11-20T10:00:00Z", to="2026-11-20T10:05:00Z")
    assert body["window"] == {
        "start": "2026-11-20T10:00:00Z",
        "end": "2026-11-20T10:05:00Z",
        "approximate": False,
    }
    k = only(body)
    assert k["conversations_created"] == 4
    assert k["first_response_seconds"]["count"] == 2
    # Without an offset, times are the tenant's (New York, UTC−5).
    assert await kpis(api, from_="2026-11-20T05:00", to="2026-11-20T05:05") == body


async def test_off_grid_from_to_is_widened_to_the_minute(api: Api) -> None:
    body = await kpis(api, from_="2026-11-20T10:00:30Z", to="2026-11-20T10:02:30Z")
    assert body["window"] == {
        "start": "2026-11-20T10:00:00Z",
        "end": "2026-11-20T10:03:00Z",
        "approximate": True,
    }
    assert only(body)["conversations_created"] == 4


async def test_windows_beyond_minute_retention_are_rounded_to_the_hour(api: Api) -> None:
    # 7d starts 11-13 10:30, before the oldest minute kept (48h): read from 10:00, flagged.
    body = await kpis(api, window="7d")
    assert body["window"] == {
        "start": "2026-11-13T10:00:00Z",
        "end": "2026-11-20T10:30:00Z",
        "approximate": True,
    }
    assert only(body)["conversations_created"] == 4 + 5 + 7 + 100
    body = await kpis(api, window="6d")
    assert body["window"]["start"] == "2026-11-14T10:00:00Z"
    assert only(body)["conversations_created"] == 4 + 5 + 7


async def test_a_tenant_without_data_gets_zeros(api: Api) -> None:
    body = await kpis(api, key="operator-key", tenant="initech")
    k = only(body)
    assert k["conversations_created"] == 0
    assert k["abandonment_rate"] == ratio(None, 0, 0)
    assert (await kpis(api, key="operator-key", tenant="initech", group_by="channel"))["groups"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"window": "2w"}, "window"),
        ({"window": "0m"}, "window"),
        ({"window": "500d"}, "window"),
        ({"period": "fortnight"}, "period"),
        ({"period": "day:2026-13-01"}, "period"),
        ({"period": "day:2027-01-01"}, "period"),
        ({"window": "1h", "period": "today"}, "window"),
        ({"from_": "2026-11-20T10:00:00Z"}, "to"),
        ({"from_": "2026-11-20T10:00:00Z", "to": "2026-11-20T09:00:00Z"}, "to"),
        ({"from_": "noon", "to": "2026-11-20T09:00:00Z"}, "from"),
        ({"group_by": "priority"}, "group_by"),
        ({"group_by": "channel,team,agent"}, "group_by"),
        ({"group_by": "team,queue"}, "group_by"),
    ],
)
async def test_invalid_parameters_are_named(api: Api, params: dict[str, Any], field: str) -> None:
    body = await api.problem("/v1/kpis", 422, **params)
    assert body["detail"].startswith(f"{field}: ")
    assert body["errors"][0]["field"] == field
    assert body["type"] == "https://supportpulse.dev/problems/invalid"


async def test_tenant_is_required_for_keys_of_several_tenants(api: Api) -> None:
    for key in ("both-key", "operator-key"):
        body = await api.problem("/v1/kpis", 422, key=key)
        assert body["errors"][0]["field"] == "tenant"
    assert (await kpis(api, key="both-key", tenant="globex"))["tenant"] == "globex"


async def test_unknown_tenant(api: Api) -> None:
    body = await api.problem("/v1/kpis", 404, key="operator-key", tenant="nope")
    assert "nope" in body["detail"]
    # A scoped key is refused before the lookup: it cannot tell unknown tenants from others'.
    await api.problem("/v1/kpis", 403, key="acme-key", tenant="nope")
