"""Seeding the API benchmark's database in SQL: raw facts for 24 h, buckets for 30 days.

``bench_events`` (a bench-only table) gets one row per KPI fact of ``per_day`` synthetic
conversations and calls started over the last 24 h — 6 channels, 10 teams of 50 agents,
0–2 of 8 labels — i.e. the raw events already reduced to one measure each, which flatters
the raw-SQL side. The bucket tables are then *derived from those rows* exactly as the
aggregator would write them (minute → hour → UTC day, a '' row plus one per label,
log-bucket histograms), so both methods answer from the same data. Older history is the
same day shifted back: minute rows for the previous 24 h (48 h kept), hour rows for
``history_days`` days, and day rows over all of it. The rollups (by team, by channel) are
then summed from all those detail rows, as the aggregator's flush writes them.
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

# Every bucket table by its key columns (as in shared/db/schema.py): the detail rows, then the
# rollups without the agent and without team and agent. Each is derived the same way, from
# the raw facts' minutes up; the rollups are inserted in time order (ORDER BY bucket), as the
# aggregator's flushes write them, the detail rows in the order of the GROUP BY (as before).
TABLES: dict[str, tuple[str, ...]] = {
    "kpi_counts": ("tenant", "grain", "bucket", "metric", "channel", "team", "agent", "label"),
    "kpi_hist": ("tenant", "grain", "bucket", "metric", "channel", "team", "agent", "label"),
    "kpi_counts_by_team": ("tenant", "grain", "bucket", "metric", "channel", "team", "label"),
    "kpi_counts_by_channel": ("tenant", "label", "grain", "bucket", "metric", "channel"),
    "kpi_hist_by_channel": ("tenant", "label", "grain", "bucket", "metric", "channel"),
}
BUCKET_TABLES = tuple(TABLES)


def _hist(table: str) -> bool:
    return table.startswith("kpi_hist")


def _columns(table: str) -> str:
    return ", ".join((*TABLES[table], "idx, count" if _hist(table) else "count, sum"))


def _select(table: str, **expressions: str) -> str:
    """The key of ``table`` as a select list, each column as itself unless given."""
    return ", ".join(expressions.get(column, column) for column in TABLES[table])


def _order(table: str) -> str:
    """ORDER BY the bucket (by its position in the select lists below), rollups only."""
    return "" if table in ("kpi_counts", "kpi_hist") else f" ORDER BY {TABLES[table].index('bucket') + 1}"


def _minute_statements(table: str) -> list[str]:
    """Minute rows of ``table`` straight from the raw facts: the '' rows, then one per label."""
    out = []
    for label, source in _LABEL_SOURCES:
        minute = "date_trunc('minute', occurred_at)"
        key = _select(table, grain="0", bucket=minute, metric="type", label=label)
        if _hist(table):
            values, where = f"{_IDX}, count(*)", f" WHERE type = ANY({_DURATIONS})"
        else:
            values, where = "count(*), sum(value)", ""
        out.append(
            f"INSERT INTO {table} ({_columns(table)}) SELECT {key}, {values} FROM {source}{where} "
            f"GROUP BY {_positions(table)}{_order(table)}"
        )
    return out


def _positions(table: str) -> str:
    """GROUP BY positions of the key (and idx) in the select lists below."""
    return ", ".join(str(n) for n in range(1, len(TABLES[table]) + (2 if _hist(table) else 1)))


def _rollup(table: str, src: int, dst: int, unit: str, since: datetime | None = None) -> str:
    """``table``'s rows of grain ``src`` summed into grain ``dst`` (buckets truncated to ``unit``)."""
    sums = "idx, sum(count)" if _hist(table) else "sum(count), sum(sum)"
    key = _select(table, grain=str(dst), bucket=f"date_trunc('{unit}', bucket)")
    where = f"grain = {src}" + (f" AND bucket >= '{since.isoformat()}'" if since else "")
    return (
        f"INSERT INTO {table} ({_columns(table)}) SELECT {key}, {sums} FROM {table} WHERE {where} "
        f"GROUP BY {_positions(table)}{_order(table)}"
    )


def _shift(table: str, source: str, grain: int, days: int) -> str:
    """Copies of ``source``'s rows of a grain shifted back by 1..``days`` days into ``table``."""
    values = "idx, count" if _hist(table) else "count, sum"
    key = _select(table, bucket="bucket - make_interval(days => d)")
    return (
        f"INSERT INTO {table} ({_columns(table)}) SELECT {key}, {values} "
        f"FROM {source} CROSS JOIN generate_series(1, {days}) AS d WHERE grain = {grain}{_order(table)}"
    )


def _hour_template(table: str, first_hour: datetime) -> list[str]:
    """One full day of hour rows: the last, partial hour of the raw window folded onto the first."""
    values = "idx, sum(count) AS count" if _hist(table) else "sum(count) AS count, sum(sum) AS sum"
    folded = (
        f"CASE WHEN bucket >= '{first_hour.isoformat()}'::timestamptz + interval '1 day' "
        "THEN bucket - interval '1 day' ELSE bucket END"
    )
    return [
        "DROP TABLE IF EXISTS hour_template",
        f"CREATE TEMP TABLE hour_template AS SELECT {_select(table, bucket=f'{folded} AS bucket')}, {values} "
        f"FROM {table} WHERE grain = 1 GROUP BY {_positions(table)}",
    ]


async def seed(
    conn: asyncpg.Connection, start: datetime, end: datetime, per_day: int, history_days: int
) -> dict[str, Any]:
    """Fill the database; returns row counts and seconds per step."""
    await conn.execute("SET TIME ZONE 'UTC'")
    await conn.execute("SET max_parallel_workers_per_gather = 2")
    # Hash aggregates in memory rather than sorts spilled to disk (seeding only).
    await conn.execute("SET work_mem = '1GB'")
    steps: list[tuple[str, str, tuple[Any, ...]]] = [
        ("raw table", RAW, ()),
        ("raw facts (24 h)", FACTS, (start, end, per_day)),
        ("raw index", "CREATE INDEX ON bench_events (tenant, occurred_at)", ()),
    ]
    for table in BUCKET_TABLES:
        steps += [(f"{table} minutes {i + 1}/2", sql, ()) for i, sql in enumerate(_minute_statements(table))]
        steps.append((f"{table} minute history (previous 24 h)", _shift(table, table, 0, 1), ()))
    seconds: dict[str, float] = {}
    for name, sql, params in steps:
        started = time.perf_counter()
        await conn.execute(sql, *params)
        seconds[name] = round(time.perf_counter() - started, 1)
        log(f"  seeded {name} in {seconds[name]}s")
    # Hours from the 24 h of raw minutes only (not the shifted copy), then shifted back.
    first_hour = start.replace(minute=0, second=0, microsecond=0)
    for table in BUCKET_TABLES:
        for name, sqls in (
            (f"{table} hours", [_rollup(table, 0, 1, "hour", since=start)]),
            (f"{table} hour history ({history_days - 1} days)", [
                *_hour_template(table, first_hour), _shift(table, "hour_template", 1, history_days - 1)]),
            (f"{table} days", [_rollup(table, 1, 2, "day")]),
        ):  # fmt: skip
            started = time.perf_counter()
            for sql in sqls:
                await conn.execute(sql)
            seconds[name] = round(time.perf_counter() - started, 1)
            log(f"  seeded {name} in {seconds[name]}s")
    started = time.perf_counter()
    for table in (*BUCKET_TABLES, "bench_events"):
        await conn.execute(f"VACUUM ANALYZE {table}")
    seconds["vacuum analyze"] = round(time.perf_counter() - started, 1)
    rows = {
        "bench_events": await conn.fetchval("SELECT count(*) FROM bench_events"),
        **{
            f"{table} grain {g}": n
            for table in BUCKET_TABLES
            for g, n in await conn.fetch(f"SELECT grain, count(*) FROM {table} GROUP BY grain ORDER BY 1")
        },
        "size_mb": round(await conn.fetchval("SELECT pg_database_size(current_database())") / 2**20),
    }
    return {"rows": rows, "seconds": seconds}
