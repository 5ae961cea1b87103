"""/metrics: KPI gauges from the registry, live gauges, the breach counter, request metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from services.api.app import create_app
from services.api.metrics_export import HISTORY_REFRESH
from shared.db.scratch import driver_dsn, scratch_database
from shared.kpis import KPIS, KpiKind
from shared.settings import CommonSettings
from tests.api.conftest import TENANTS, Api, api_settings
from tests.api.seed import HOUR_AGO, NOW, Buckets

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
    # The all-time counter, per target: 2 first-response breaches on 11-15 (day buckets only) + 1
    # today; the seed has no next-reply or resolution breach, so those series are 0, not absent.
    breaches = "supportpulse_sla_breaches_total"
    assert value(found, breaches, **acme_chat, target="first_response") == 3
    assert value(found, breaches, **acme_chat, target="next_reply") == 0
    assert value(found, breaches, **acme_chat, target="resolution") == 0
    globex_chat = {"tenant": "globex", "channel": "chat", "team": "support"}
    assert value(found, breaches, **globex_chat, target="first_response") == 4
    assert value(found, breaches, **globex_chat, target="next_reply") == 0
    # Groups with no SLA verdict at all have no breach series.
    acme_email = {"tenant": "acme", "channel": "email", "team": "billing"}
    assert value(found, breaches, **acme_email, target="first_response") is None
    assert {dict(labels)["target"] for name, labels in found if name == breaches} == {
        "first_response",
        "next_reply",
        "resolution",
    }
    assert value(found, "supportpulse_backlog_open", **acme_chat) == 3
    assert value(found, "supportpulse_calls_in_queue", tenant="acme", queue="sales") == 2
    assert value(found, "supportpulse_longest_wait_seconds", tenant="acme", queue="sales") == 95
    assert value(found, "supportpulse_sla_breaching_now", tenant="acme", channel="chat") == 2
    # At risk now (the policy's share of the target has run), not within a horizon: c-open-1 is,
    # c-open-3 (email) only turns at risk in 100 minutes.
    assert value(found, "supportpulse_sla_at_risk", tenant="acme", channel="chat") == 1
    assert value(found, "supportpulse_sla_at_risk", tenant="acme", channel="email") == 0
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
    assert families["supportpulse_sla_breaches"] == "counter"
    assert "supportpulse_sla_first_response_breaches" not in families
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


# --- the breach counter per target, on a database of its own ---------------------------------

CLOSED_DAY = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # beyond minute retention: day and hour rows
BREACHES = "supportpulse_sla_breaches_total"
KPI_TABLES = (
    "kpi_counts",
    "kpi_hist",
    "kpi_counts_by_team",
    "kpi_counts_by_channel",
    "kpi_hist_by_channel",
)


def breach_buckets(*, later: bool = False) -> Buckets:
    """SLA facts of every target; ``later`` adds one next-reply breach today and one resolution
    breach on the closed day (a late event the cached history does not see until it is re-read)."""
    b = Buckets()
    t, m = HOUR_AGO, timedelta(minutes=1)
    chat = {"channel": "chat", "team": "support"}
    b.add("acme", CLOSED_DAY, "sla_first_response_breaches", **chat, minutes=False)
    b.add("acme", CLOSED_DAY, "sla_next_reply_breaches", n=2, **chat, agent="alice", minutes=False)
    b.add("acme", t + 5 * m, "sla_next_reply_breaches", n=2, **chat, agent="alice")
    b.add("acme", t + 6 * m, "sla_next_reply_breaches", **chat, agent="bob")
    b.add("acme", t + 7 * m, "sla_next_reply_met", n=3, **chat, agent="bob")
    b.add("acme", t + 20 * m, "sla_resolution_breaches", **chat, agent="bob")
    # Verdicts but no breach: the three series exist, at 0.
    b.add("acme", t + 8 * m, "sla_next_reply_met", channel="email", team="billing", agent="carol")
    b.add("acme", CLOSED_DAY, "sla_at_risk", channel="whatsapp", team="support", minutes=False)
    b.add("globex", CLOSED_DAY, "sla_resolution_breaches", n=4, channel="chat", team="sales", minutes=False)
    # No SLA measure at all: no breach series.
    b.add("acme", t, "conversations_created", channel="phone", team="sales")
    if later:
        b.add("acme", t + 9 * m, "sla_next_reply_breaches", **chat, agent="alice")
        b.add("acme", CLOSED_DAY, "sla_resolution_breaches", **chat, minutes=False)
    return b


async def rewrite(url: str, buckets: Buckets) -> None:
    conn = await asyncpg.connect(driver_dsn(url))
    try:
        await conn.execute(f"TRUNCATE {', '.join(KPI_TABLES)}")
        await buckets.write(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def breach_database() -> AsyncIterator[str]:
    async with scratch_database(CommonSettings().database_dsn, "supportpulse_test_breaches_") as url:
        yield url


def breach_app(url: str, **overrides: Any) -> FastAPI:
    return create_app(api_settings(url, **overrides), TENANTS, clock=lambda: NOW)


async def test_breach_counter_per_target(breach_database: str) -> None:
    await rewrite(breach_database, breach_buckets())
    application = breach_app(breach_database)
    async with running(application) as client:
        exporter = application.state.api.exporter
        await exporter.refresh()
        text = (await scrape(client)).text
        await promtool_check(text)
        found = samples(text)

        def counter(tenant: str, channel: str, team: str) -> dict[str, float | None]:
            return {
                target: value(found, BREACHES, tenant=tenant, channel=channel, team=team, target=target)
                for target in ("first_response", "next_reply", "resolution")
            }

        # Closed days and today summed: 1 first response on 11-18; next reply 2 on 11-18 + 3 today.
        assert counter("acme", "chat", "support") == {"first_response": 1, "next_reply": 5, "resolution": 1}
        assert counter("acme", "email", "billing") == {"first_response": 0, "next_reply": 0, "resolution": 0}
        assert counter("acme", "whatsapp", "support") == {
            "first_response": 0,
            "next_reply": 0,
            "resolution": 0,
        }
        assert counter("globex", "chat", "sales") == {"first_response": 0, "next_reply": 0, "resolution": 4}
        assert counter("acme", "phone", "sales") == {
            "first_response": None,
            "next_reply": None,
            "resolution": None,
        }
        # The windowed gauges of the new KPIs come from the registry.
        chat_1h = {"tenant": "acme", "channel": "chat", "team": "support", "window": "1h"}
        assert value(found, "supportpulse_sla_next_reply_breaches_window", **chat_1h) == 3
        assert value(found, "supportpulse_sla_next_reply_compliance_ratio", **chat_1h) == 0.5
        assert value(found, "supportpulse_sla_resolution_breaches_window", **chat_1h) == 1
        assert value(found, "supportpulse_sla_breaches_window", **chat_1h) == 4

        # A late breach today shows at the next refresh; one on a closed day once the cached
        # history is re-read (every HISTORY_REFRESH, or when the day changes).
        await rewrite(breach_database, breach_buckets(later=True))
        await exporter.refresh()
        found = samples((await scrape(client)).text)
        assert counter("acme", "chat", "support") == {"first_response": 1, "next_reply": 6, "resolution": 1}
        exporter._history_read_at -= HISTORY_REFRESH.total_seconds() + 1
        await exporter.refresh()
        found = samples((await scrape(client)).text)
        assert counter("acme", "chat", "support") == {"first_response": 1, "next_reply": 6, "resolution": 2}


async def test_breaches_per_agent(breach_database: str) -> None:
    """Per-agent series are the windowed gauges; the all-time counter keeps no agent label."""
    await rewrite(breach_database, breach_buckets())
    application = breach_app(breach_database, api_metrics_per_agent=True)
    async with running(application) as client:
        await application.state.api.exporter.refresh()
        text = (await scrape(client)).text
        await promtool_check(text)
        found = samples(text)
        chat_1h = {"tenant": "acme", "channel": "chat", "team": "support", "window": "1h"}
        nr = "supportpulse_sla_next_reply_breaches_window"
        assert value(found, nr, **chat_1h, agent="alice") == 2
        assert value(found, nr, **chat_1h, agent="bob") == 1
        assert value(found, "supportpulse_sla_resolution_breaches_window", **chat_1h, agent="bob") == 1
        assert value(found, "supportpulse_sla_breaches_window", **chat_1h, agent="alice") == 2
        assert all("agent" not in dict(labels) for name, labels in found if name == BREACHES)
        assert value(found, BREACHES, tenant="acme", channel="chat", team="support", target="next_reply") == 5
