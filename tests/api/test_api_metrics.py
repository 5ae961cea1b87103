"""/metrics: KPI gauges from the registry, live gauges, the breach counter, request metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from shared.kpis import KPIS, KpiKind
from tests.api.conftest import Api

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


async def promtool_check(text: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "/usr/bin/promtool",
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(text.encode())
    assert proc.returncode == 0, out.decode()
    return out.decode()


@asynccontextmanager
async def running(application: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://api.test"
        ) as client,
    ):
        yield client


async def scrape(client: httpx.AsyncClient, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return await client.get("/metrics", headers=headers)


async def test_kpi_gauges(api: Api, app: FastAPI) -> None:
    await app.state.api.exporter.refresh()
    response = await scrape(api.client)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    acme_chat = {"tenant": "acme", "channel": "chat", "team": "support"}
    assert value(found, "supportpulse_conversations_created_window", **acme_chat, window="1h") == 3
    assert value(found, "supportpulse_conversations_created_window", **acme_chat, window="24h") == 8
    assert value(found, "supportpulse_conversations_created_window", **acme_chat, window="5m") == 0
    assert (
        value(
            found,
            "supportpulse_first_response_seconds",
            tenant="acme",
            channel="email",
            team="billing",
            window="1h",
            stat="avg",
        )
        == 600
    )
    assert value(found, "supportpulse_first_response_seconds", **acme_chat, window="1h", stat="avg") == 15
    phone_line = {"tenant": "acme", "channel": "phone", "team": "support-line"}
    assert value(found, "supportpulse_abandonment_ratio", **phone_line, window="1h") == 0.5
    assert value(found, "supportpulse_service_level_ratio", **phone_line, window="1h") == 0
    assert value(found, "supportpulse_csat_score_avg", **acme_chat, window="1h") == 4
    # Undefined ratios (no calls on chat) are absent rather than 0 or NaN.
    assert value(found, "supportpulse_abandonment_ratio", **acme_chat, window="1h") is None
    # The all-time counter: 2 breaches on 11-15 (day buckets only) + 1 today.
    assert value(found, "supportpulse_sla_first_response_breaches_total", **acme_chat) == 3
    assert (
        value(
            found,
            "supportpulse_sla_first_response_breaches_total",
            tenant="globex",
            channel="chat",
            team="support",
        )
        == 4
    )
    assert value(found, "supportpulse_backlog_open", **acme_chat) == 3
    assert value(found, "supportpulse_calls_in_queue", tenant="acme", queue="sales") == 2
    assert value(found, "supportpulse_longest_wait_seconds", tenant="acme", queue="sales") == 95
    assert value(found, "supportpulse_sla_breaching_now", tenant="acme", channel="chat") == 2
    assert value(found, "supportpulse_sla_at_risk", tenant="acme", channel="chat") == 1
    assert not any("agent" in dict(labels) for _, labels in found)


async def test_names_follow_the_registry_and_prometheus_rules(api: Api, app: FastAPI) -> None:
    await app.state.api.exporter.refresh()
    text = (await scrape(api.client)).text
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    for kpi in KPIS.values():
        name = "supportpulse_" + kpi.metric
        assert families.get(name) == "gauge", name
        if kpi.kind is KpiKind.COUNT:
            assert not name.endswith("_total"), name  # a windowed count is not a counter
    assert families["supportpulse_sla_first_response_breaches"] == "counter"
    assert families["supportpulse_api_requests"] == "counter"
    assert families["supportpulse_api_request_duration_seconds"] == "histogram"
    for name, kind in families.items():
        if kind == "gauge":
            assert not name.endswith("_total"), name
    await promtool_check(text)


async def test_request_metrics_use_route_templates(api: Api) -> None:
    await api.ok("/v1/conversations/c-story")
    await api.get("/v1/conversations/nope")
    await api.client.get("/no/such/route")
    text = (await scrape(api.client)).text
    found = samples(text)
    route = "/v1/conversations/{conversation_id}"
    assert (value(found, "supportpulse_api_requests_total", route=route, status="200") or 0) >= 1
    assert (value(found, "supportpulse_api_requests_total", route=route, status="404") or 0) >= 1
    assert (value(found, "supportpulse_api_requests_total", route="unmatched", status="404") or 0) >= 1
    assert (value(found, "supportpulse_api_request_duration_seconds_count", route=route) or 0) >= 2
    assert "c-story" not in text
    assert "/no/such/route" not in text


async def test_protected_metrics_and_per_agent_series(app_factory: Callable[..., FastAPI]) -> None:
    application = app_factory(
        api_metrics_protected=True, api_metrics_per_agent=True, api_metrics_max_agents=2
    )
    async with running(application) as client:
        await application.state.api.exporter.refresh()
        for key, status in (
            (None, 401),
            ("wrong-key", 401),
            ("acme-key", 403),
            ("operator-nometrics-key", 403),
        ):
            response = await scrape(client, key)
            assert response.status_code == status, key
            assert response.headers["content-type"] == "application/problem+json"
        everything = await scrape(client, "operator-key")
        assert everything.status_code == 200
        found = samples(everything.text)
        await promtool_check(everything.text)
        chat = {"tenant": "acme", "channel": "chat", "team": "support", "window": "1h"}
        # The two busiest acme agents by handled over the longest window: carol (2), then alice
        # (1, first by name among the 1s); bob's creation folds into "__other__", and the
        # unassigned one keeps its own agent="" series, outside the cap.
        assert value(found, "supportpulse_conversations_created_window", **chat, agent="alice") == 1
        assert value(found, "supportpulse_conversations_created_window", **chat, agent="__other__") == 1
        assert value(found, "supportpulse_conversations_created_window", **chat, agent="") == 1
        assert value(found, "supportpulse_conversations_created_window", **chat, agent="bob") is None
        agents = {dict(labels).get("agent") for _, labels in found if dict(labels).get("tenant") == "acme"}
        assert agents - {None} == {"", "alice", "carol", "__other__"}
        # A key scoped to globex sees globex's series only (and the API's own health).
        scoped = await scrape(client, "globex-key")
        assert scoped.status_code == 200
        tenants = {dict(labels).get("tenant") for _, labels in samples(scoped.text)}
        assert tenants == {None, "globex"}
        await promtool_check(scoped.text)


async def test_the_lifespan_task_refreshes_and_stops(app_factory: Callable[..., FastAPI]) -> None:
    application = app_factory(api_metrics_cache_seconds=0.05)
    async with running(application) as client:
        for _ in range(200):
            found = samples((await scrape(client)).text)
            if value(found, "supportpulse_backlog_open", tenant="acme", channel="chat", team="support") == 3:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the background refresh never filled the gauges")
        assert (value(found, "supportpulse_api_metrics_last_refresh_timestamp_seconds") or 0) > 0
    refresher = application.state.refresher
    assert refresher.done()
    assert refresher.cancelled()


async def test_database_down(app_factory: Callable[..., FastAPI], caplog: pytest.LogCaptureFixture) -> None:
    application = app_factory(
        database_url="postgresql+asyncpg://nobody:nothing@127.0.0.1:1/none", api_metrics_cache_seconds=0.05
    )
    async with running(application) as client:
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        response = await client.get("/v1/live", headers={"Authorization": "Bearer acme-key"})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        for _ in range(200):
            found = samples((await scrape(client)).text)
            if (value(found, "supportpulse_api_metrics_refresh_errors_total") or 0) >= 1:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("refresh errors were not counted")
    assert "refreshing the KPI gauges failed" in caplog.text
