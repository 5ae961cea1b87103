"""Seeding the API benchmark's database in SQL: raw facts for 24 h, buckets for 30 days.

``bench_events`` (a bench-only table) gets one row per KPI fact of ``per_day`` synthetic
conversations and calls started over the last 24 h — 6 channels, 10 teams of 50 agents,
0–2 of 8 labels — i.e. the raw events already reduced to one measure each, which flatters
the raw-SQL side. The bucket tables are then *derived from those rows* exactly as the
aggregator would write them (minute → hour → UTC day, a '' row plus one per label,
log-bucket histograms), so both methods answer from the same data. Older history is the
same day shifted back: minute rows for the previous 24 h (48 h kept), hour rows for
``history_days`` days, and day rows over all of it.
"""

# ruff: noqa: S608 - every statement is composed from this module's constants; values are bound.
from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import asyncpg

from bench.common import log
from shared.histogram import GAMMA, MIN_INDEX, MIN_VALUE
from shared.kpis import DURATION_MEASURES

TENANT = "bench"
KEY = "tenant, grain, bucket, metric, channel, team, agent, label"

RAW = """
CREATE TABLE bench_events (
    tenant text NOT NULL, conversation_id bigint NOT NULL, type text NOT NULL,
    occurred_at timestamptz NOT NULL, channel text NOT NULL, team text NOT NULL, agent text NOT NULL,
    labels text[] NOT NULL, value float8 NOT NULL
)"""

# $1 window start, $2 window end, $3 conversations. Volatile columns stay in their subquery.
FACTS = """
INSERT INTO bench_events
SELECT 'bench', c.id, f.type, c.t0 + make_interval(secs => f.dt), c.channel, c.team,
       CASE WHEN f.unassigned THEN '' ELSE c.agent END, c.labels, f.value
FROM (
    SELECT r.*, r.channel = 'phone' AS phone,
           -ln(1 - r.u4) * 300 AS frt, -ln(1 - r.u4) * 300 - ln(1 - r.u5) * 1800 AS res,
           -ln(1 - r.u4) * 30 AS wait, 120 + r.u5 * 600 AS aht, 1 + floor(r.u3 * 20)::int % 5 AS score,
           'team-' || r.tm AS team, 'agent-' || r.tm || '-' || r.ag AS agent
    FROM (
        SELECT id, $1::timestamptz + make_interval(secs => random() * extract(epoch FROM $2 - $1)) AS t0,
               (ARRAY['chat','email','whatsapp','phone','sms','social'])[1 + floor(random() * 6)::int]
                   AS channel,
               floor(random() * 10)::int AS tm, floor(random() * 50)::int AS ag,
               CASE floor(random() * 10)::int WHEN 2 THEN ARRAY['vip'] WHEN 3 THEN ARRAY['billing']
                   WHEN 4 THEN ARRAY['bug'] WHEN 5 THEN ARRAY['refund'] WHEN 6 THEN ARRAY['billing', 'churn']
                   WHEN 7 THEN ARRAY['bug', 'feature'] WHEN 8 THEN ARRAY['legal'] ELSE ARRAY[]::text[] END
                   AS labels,
               random() AS u1, random() AS u2, random() AS u3, random() AS u4, random() AS u5
        FROM generate_series(1, $3) AS id
    ) r
) c
CROSS JOIN LATERAL (VALUES
    ('conversations_created', 0, 1, true, NOT c.phone),
    ('messages_inbound', 1, 1, false, NOT c.phone),
    ('messages_outbound', c.frt, 1, false, NOT c.phone),
    ('first_response_seconds', c.frt, c.frt, false, NOT c.phone),
    ('sla_first_response_met', c.frt, 1, false, NOT c.phone AND c.frt <= 900),
    ('sla_first_response_breaches', 900, 1, false, NOT c.phone AND c.frt > 900),
    ('messages_inbound', c.frt + 200, 1, false, NOT c.phone AND c.u1 < 0.6),
    ('messages_outbound', c.frt + 400, 1, false, NOT c.phone AND c.u1 < 0.6),
    ('next_reply_seconds', c.frt + 400, 200, false, NOT c.phone AND c.u1 < 0.6),
    ('conversations_resolved', c.res, 1, false, NOT c.phone AND c.u2 < 0.8),
    ('resolution_seconds', c.res, c.res, false, NOT c.phone AND c.u2 < 0.8),
    ('first_resolutions', c.res, 1, false, NOT c.phone AND c.u2 < 0.8),
    ('first_resolution_seconds', c.res, c.res, false, NOT c.phone AND c.u2 < 0.8),
    ('one_touch_resolutions', c.res, 1, false, NOT c.phone AND c.u2 < 0.8 AND c.u1 >= 0.6),
    ('csat_score', c.res + 60, c.score, false, NOT c.phone AND c.u2 < 0.8 AND c.u3 < 0.25),
    ('csat_satisfied', c.res + 60, 1, false, NOT c.phone AND c.u2 < 0.8 AND c.u3 < 0.25 AND c.score >= 4),
    ('calls_offered', 0, 1, true, c.phone),
    ('calls_answered', c.wait, 1, false, c.phone AND c.u2 < 0.85),
    ('asa_seconds', c.wait, c.wait, false, c.phone AND c.u2 < 0.85),
    ('calls_answered_in_target', c.wait, 1, false, c.phone AND c.u2 < 0.85 AND c.wait <= 20),
    ('aht_seconds', c.wait + c.aht, c.aht, false, c.phone AND c.u2 < 0.85),
    ('calls_abandoned', c.wait, 1, true, c.phone AND c.u2 >= 0.85),
    ('abandon_wait_seconds', c.wait, c.wait, true, c.phone AND c.u2 >= 0.85)
) AS f(type, dt, value, unassigned, keep)
WHERE f.keep AND c.t0 + make_interval(secs => f.dt) < $2
"""

_IDX = f"CASE WHEN value <= {MIN_VALUE} THEN {MIN_INDEX} ELSE ceil(ln(value) / ln({GAMMA}))::int END"
_DURATIONS = "ARRAY[" + ",".join(f"'{m}'" for m in sorted(DURATION_MEASURES)) + "]"
_LABEL_SOURCES = (
    ("''", "bench_events"),
    ("l", "bench_events CROSS JOIN LATERAL unnest(labels) AS l"),
)


def _minute_statements() -> list[str]:
    out = []
    for label, source in _LABEL_SOURCES:
        out.append(
            f"INSERT INTO kpi_counts ({KEY}, count, sum) "
            f"SELECT tenant, 0, date_trunc('minute', occurred_at), type, channel, team, agent, {label}, "
            f"count(*), sum(value) FROM {source} GROUP BY 1, 2, 3, 4, 5, 6, 7, 8"
        )
        out.append(
            f"INSERT INTO kpi_hist ({KEY}, idx, count) "
            f"SELECT tenant, 0, date_trunc('minute', occurred_at), type, channel, team, agent, {label}, "
            f"{_IDX}, count(*) FROM {source} WHERE type = ANY({_DURATIONS}) "
            f"GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9"
        )
    return out


def _rollup(table: str, src: int, dst: int, unit: str, extra: str) -> str:
    value = "count, sum" if table == "kpi_counts" else "idx, count"
    sums = "sum(count), sum(sum)" if table == "kpi_counts" else "idx, sum(count)"
    return (
        f"INSERT INTO {table} ({KEY}, {value}) "
        f"SELECT tenant, {dst}, date_trunc('{unit}', bucket), metric, channel, team, agent, label, {sums} "
        f"FROM {table} WHERE grain = {src} GROUP BY 1, 2, 3, 4, 5, 6, 7, 8{extra}"
    )


def _shift(table: str, source: str, grain: int, days: int) -> str:
    """Copies of ``source``'s rows of a grain shifted back by 1..``days`` days into ``table``."""
    cols = "count, sum" if table == "kpi_counts" else "idx, count"
    return (
        f"INSERT INTO {table} ({KEY}, {cols}) "
        f"SELECT tenant, grain, bucket - make_interval(days => d), metric, channel, team, agent, label, "
        f"{cols} "
        f"FROM {source} CROSS JOIN generate_series(1, {days}) AS d WHERE grain = {grain}"
    )


def _hour_template(table: str, first_hour: datetime) -> list[str]:
    """One full day of hour rows: the last, partial hour of the raw window folded onto the first."""
    kinds = {"kpi_counts": "sum(count) AS count, sum(sum) AS sum", "kpi_hist": "idx, sum(count) AS count"}
    cols = kinds[table]
    extra = ", idx" if table == "kpi_hist" else ""
    return [
        "DROP TABLE IF EXISTS hour_template",
        f"CREATE TEMP TABLE hour_template AS SELECT tenant, grain, "
        f"CASE WHEN bucket >= '{first_hour.isoformat()}'::timestamptz + interval '1 day' "
        f"THEN bucket - interval '1 day' ELSE bucket END AS bucket, metric, channel, team, agent, label, "
        f"{cols} "
        f"FROM {table} WHERE grain = 1 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8{extra}",
    ]


async def seed(
    conn: asyncpg.Connection, start: datetime, end: datetime, per_day: int, history_days: int
) -> dict[str, Any]:
    """Fill the database; returns row counts and seconds per step."""
    await conn.execute("SET TIME ZONE 'UTC'")
    await conn.execute("SET max_parallel_workers_per_gather = 2")
    steps: list[tuple[str, str, tuple[Any, ...]]] = [
        ("raw table", RAW, ()),
        ("raw facts (24 h)", FACTS, (start, end, per_day)),
        ("raw index", "CREATE INDEX ON bench_events (tenant, occurred_at)", ()),
        *((f"minute buckets {i + 1}/4", sql, ()) for i, sql in enumerate(_minute_statements())),
        ("minute history (previous 24 h)", _shift("kpi_counts", "kpi_counts", 0, 1), ()),
        ("minute history hist (previous 24 h)", _shift("kpi_hist", "kpi_hist", 0, 1), ()),
    ]
    seconds: dict[str, float] = {}
    for name, sql, params in steps:
        started = time.perf_counter()
        await conn.execute(sql, *params)
        seconds[name] = round(time.perf_counter() - started, 1)
        log(f"  seeded {name} in {seconds[name]}s")
    # Hours from the 24 h of raw minutes only (not the shifted copy), then shifted back.
    for table in ("kpi_counts", "kpi_hist"):
        extra = ", idx" if table == "kpi_hist" else ""
        first_hour = start.replace(minute=0, second=0, microsecond=0)
        for name, sqls in (
            (f"{table} hours", [_rollup(table, 0, 1, "hour", extra).replace(
                "WHERE grain = 0", f"WHERE grain = 0 AND bucket >= '{start.isoformat()}'")]),
            (f"{table} hour history ({history_days - 1} days)", [
                *_hour_template(table, first_hour), _shift(table, "hour_template", 1, history_days - 1)]),
            (f"{table} days", [_rollup(table, 1, 2, "day", extra)]),
        ):  # fmt: skip
            started = time.perf_counter()
            for sql in sqls:
                await conn.execute(sql)
            seconds[name] = round(time.perf_counter() - started, 1)
            log(f"  seeded {name} in {seconds[name]}s")
    started = time.perf_counter()
    await conn.execute("VACUUM ANALYZE kpi_counts")
    await conn.execute("VACUUM ANALYZE kpi_hist")
    await conn.execute("VACUUM ANALYZE bench_events")
    seconds["vacuum analyze"] = round(time.perf_counter() - started, 1)
    rows = {
        "bench_events": await conn.fetchval("SELECT count(*) FROM bench_events"),
        **{
            f"{table} grain {g}": n
            for table in ("kpi_counts", "kpi_hist")
            for g, n in await conn.fetch(f"SELECT grain, count(*) FROM {table} GROUP BY grain ORDER BY 1")
        },
        "size_mb": round(await conn.fetchval("SELECT pg_database_size(current_database())") / 2**20),
    }
    return {"rows": rows, "seconds": seconds}
