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
# The same rows go to every level (their sums do not matter here, only the plans).
_BULK = """
INSERT INTO {table} ({columns}) SELECT {select}
FROM (VALUES (0, timestamptz '2026-11-17', interval '1 minute'),
             (1, timestamptz '2026-10-01', interval '1 hour')) AS g(grain, since, step),
     LATERAL generate_series(g.since, timestamptz '2026-11-20 10:29', g.step) AS b,
     unnest(array['conversations_created', 'first_response_seconds', 'calls_offered', 'csat_score',
                  'messages_inbound', 'messages_outbound', 'conversations_resolved',
                  'resolution_seconds']) AS m,
     unnest(array['chat', 'email', 'phone']) AS ch,
     unnest(array['', 'vip', 'billing', 'bug']) AS l
"""
_LEVELS = {
    "detail": ("", "team, agent, ", "'support', '', "),
    "_by_team": ("_by_team", "team, ", "'support', "),
    "_by_channel": ("_by_channel", "", ""),
}


def _bulk(table: str, level: str) -> str:
    suffix, dims, values = _LEVELS[level]
    columns = f"tenant, grain, bucket, metric, channel, {dims}label, " + (
        "count, sum" if table == "kpi_counts" else "idx, count"
    )
    select = f"'bulk', g.grain, b, m, ch, {values}l, " + ("1, 1.0" if table == "kpi_counts" else "7, 1")
    return _BULK.format(table=table + suffix, columns=columns, select=select)


async def _plans(app: FastAPI, query: BucketQuery) -> list[str]:
    """EXPLAIN of both statements, over bulk rows that are rolled back afterwards."""
    engine = app.state.api.engine
    out: list[str] = []
    async with engine.connect() as conn:
        for table in ("kpi_counts", "kpi_hist"):
            for level in _LEVELS:
                if (table, level) == ("kpi_hist", "_by_team"):
                    continue  # no histogram rollup by team
                await conn.execute(text(_bulk(table, level)))
                # ANALYZE is transactional: its statistics go away with the rollback too.
                await conn.execute(text(f"ANALYZE {table}{_LEVELS[level][0]}"))
        for stmt in statements(query):
            compiled = stmt.compile(dialect=conn.dialect)
            params = compiled.construct_params()
            args = tuple(params[name] for name in compiled.positiontup or ())
            result = await conn.exec_driver_sql("EXPLAIN " + compiled.string, args)
            out.append("\n".join(row[0] for row in result))
        await conn.rollback()
    return out


@pytest.mark.parametrize(
    ("group_by", "source", "tables"),
    [
        (("channel",), None, ("kpi_counts_by_channel", "kpi_hist_by_channel")),
        # No histogram rollup by team: its quantiles read the detail rows.
        (("team",), None, ("kpi_counts_by_team", "kpi_hist")),
        (("label",), None, ("kpi_counts_by_team", "kpi_hist")),
        (("agent",), None, ("kpi_counts", "kpi_hist")),
        (("channel",), "detail", ("kpi_counts", "kpi_hist")),
    ],
)
async def test_a_day_reads_index_ranges_of_the_coarsest_level_that_can_answer(
    app: FastAPI, group_by: tuple[str, ...], source: str | None, tables: tuple[str, str]
) -> None:
    window = resolve(zone=app.state.api.tenants.tenant("acme").zone, now=NOW, window="24h")
    assert [r.grain for r in window.plan] == [0, 1, 0]
    query = BucketQuery(("bulk",), window.plan, group_by=group_by, source=source)
    counts, hist = await _plans(app, query)
    for plan, table in zip((counts, hist), tables, strict=True):
        assert "Seq Scan" not in plan, plan
        assert f" on {table} " in plan, plan
        assert f"{table}_pkey" in plan, plan
        # One index range per range of the plan: tenant, grain and bucket bounds all in the index condition.
        conds = [line for line in plan.splitlines() if "Index Cond" in line]
        assert len(conds) == 3, plan
        assert all("grain =" in c and "bucket >=" in c and "bucket <" in c for c in conds), plan
        if table.endswith("_by_channel"):
            # The label leads the by-channel key: the '' rows are a range of their own.
            assert all("label =" in c for c in conds), plan
