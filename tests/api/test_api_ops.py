"""Health, readiness, the OpenAPI document, and the shape of the KPI query plans."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from services.api.kpis.repository import BucketQuery, statements
from shared.kpis import KPIS
from shared.windows import resolve
from tests.api.conftest import Api
from tests.api.seed import NOW

pytestmark = pytest.mark.integration


async def test_health_and_readiness_need_no_key(api: Api) -> None:
    assert (await api.ok("/healthz", key=None)) == {"status": "ok"}
    assert (await api.ok("/readyz", key=None)) == {"status": "ready"}


async def test_openapi_document(api: Api) -> None:
    doc = await api.ok("/openapi.json", key=None)
    assert {
        "/v1/kpis",
        "/v1/kpis/timeseries",
        "/v1/agents",
        "/v1/live",
        "/v1/conversations/{conversation_id}",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    # Every KPI of the registry is in the schema, described by its definition.
    assert set(schemas["KpiValues"]["properties"]) == set(KPIS)
    assert (
        KPIS["abandonment_rate"].description
        in schemas["KpiValues"]["properties"]["abandonment_rate"]["description"]
    )
    kpis = doc["paths"]["/v1/kpis"]["get"]
    assert kpis["tags"] == ["kpis"]
    assert kpis["summary"]
    assert {p["name"] for p in kpis["parameters"]} >= {
        "tenant",
        "window",
        "from",
        "to",
        "period",
        "channel",
        "team",
        "queue",
        "agent",
        "label",
        "group_by",
    }
    assert "application/problem+json" in kpis["responses"]["422"]["content"]
    assert kpis["security"] == [{"HTTPBearer": []}]
    assert schemas["KpisResponse"]["examples"]
    docs = await api.client.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]


# Three days of minute rows and fifty of hour rows for 8 metrics on 3 channels: enough that
# the planner's choice reflects production, where a tenant scan would read far more rows.
_BULK = """
INSERT INTO {table} SELECT 'bulk', g.grain, b, m, ch, 'support', '', l, {values}
FROM (VALUES (0, timestamptz '2026-11-17', interval '1 minute'),
             (1, timestamptz '2026-10-01', interval '1 hour')) AS g(grain, since, step),
     LATERAL generate_series(g.since, timestamptz '2026-11-20 10:29', g.step) AS b,
     unnest(array['conversations_created', 'first_response_seconds', 'calls_offered', 'csat_score',
                  'messages_inbound', 'messages_outbound', 'conversations_resolved',
                  'resolution_seconds']) AS m,
     unnest(array['chat', 'email', 'phone']) AS ch,
     unnest(array['', 'vip']) AS l
"""


async def _plans(app: FastAPI, query: BucketQuery) -> list[str]:
    """EXPLAIN of both statements, over bulk rows that are rolled back afterwards."""
    engine = app.state.api.engine
    out: list[str] = []
    async with engine.connect() as conn:
        await conn.execute(text(_BULK.format(table="kpi_counts", values="1, 1.0")))
        await conn.execute(text(_BULK.format(table="kpi_hist", values="7, 1")))
        # ANALYZE is transactional: its statistics go away with the rollback too.
        await conn.execute(text("ANALYZE kpi_counts"))
        await conn.execute(text("ANALYZE kpi_hist"))
        for stmt in statements(query):
            compiled = stmt.compile(dialect=conn.dialect)
            params = compiled.construct_params()
            args = tuple(params[name] for name in compiled.positiontup or ())
            result = await conn.exec_driver_sql("EXPLAIN " + compiled.string, args)
            out.append("\n".join(row[0] for row in result))
        await conn.rollback()
    return out


async def test_a_day_grouped_by_channel_reads_index_ranges(app: FastAPI) -> None:
    window = resolve(zone=app.state.api.tenants.tenant("acme").zone, now=NOW, window="24h")
    assert [r.grain for r in window.plan] == [0, 1, 0]
    counts, hist = await _plans(app, BucketQuery(("bulk",), window.plan, group_by=("channel",)))
    for plan, index in ((counts, "kpi_counts_pkey"), (hist, "kpi_hist_pkey")):
        assert "Seq Scan" not in plan, plan
        assert index in plan, plan
        # One index range per range of the plan: tenant, grain and bucket bounds all in the index condition.
        conds = [line for line in plan.splitlines() if "Index Cond" in line]
        assert len(conds) == 3, plan
        assert all("grain =" in c and "bucket >=" in c and "bucket <" in c for c in conds), plan
