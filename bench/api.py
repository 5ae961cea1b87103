"""GET /v1/kpis (24 h, grouped by channel) over 30 days of buckets, vs SQL over raw events.

Goal: p99 < 10 ms at a fixed 200 req/s, and ≥ 100× faster than computing the same answer
by SQL over raw events. The data (bench/api_seed.py) is ``per_day`` conversations a day;
the API runs as ``supportpulse api`` in a child process against that database, loaded by
bench/loadgen.py (open loop, latency from the scheduled time). The raw side is timed on
the very same 24 h of facts the buckets were derived from.

The API keeps a computed answer until a flush changes a bucket of its window
(services/api/kpis/cache.py), so the HTTP figures come in pairs: with the buckets unchanged
(every request after the first reuses the answer), and with a simulated flush — a new row
version of one by-channel day row of the window, what every real flush writes — before each
request (computed each time) or once a second at 200 req/s (a live aggregator's cadence).
Each set is taken twice: with the API's Prometheus gauges as shipped (5m, 1h and 24h by
team, refreshed every 5 s in the same process) and with them limited to 5m. The two bucket
statements are also timed in-process on the rollups the API reads and, forced, on the
detail rows it read before; both must give the same sums.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from bench.api_seed import TENANT, seed
from bench.common import (
    VENV_BIN,
    free_port,
    log,
    percentile,
    plain_dsn,
    print_table,
    temp_database,
    write_results,
)
from bench.loadgen import _exchange as exchange
from bench.loadgen import fixed_rate, get, sequential
from bench.servers import server
from services.api.kpis.repository import (
    BucketQuery,
    Filters,
    fetch_counts,
    fetch_hist,
    source_for,
    statements,
)
from shared.db import make_engine
from shared.histogram import GAMMA
from shared.kpis import DURATION_MEASURES
from shared.windows import resolve

UVLOOP = True
API_KEY = "bench-api-key"
TENANTS = f"""
tenants:
  {TENANT}:
    timezone: UTC
api_keys:
  - name: bench
    key: {API_KEY}
    tenants: [{TENANT}]
"""
PATH = "/v1/kpis?window=24h&group_by=channel"

# The raw answer: the same per-channel counts, sums and quantiles, straight from the facts.
RAW_QUERY = """
SELECT channel, type, count(*) AS count, sum(value) AS sum,
       percentile_disc(ARRAY[0.5, 0.9, 0.95, 0.99]) WITHIN GROUP (ORDER BY value)
           FILTER (WHERE type = ANY($4::text[])) AS quantiles
FROM bench_events WHERE tenant = $1 AND occurred_at >= $2 AND occurred_at < $3
GROUP BY channel, type
"""


async def raw_sql(dsn: str, start: datetime, end: datetime, runs: int) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        times, rows = [], []
        for _ in range(runs):
            started = time.perf_counter()
            rows = await conn.fetch(RAW_QUERY, TENANT, start, end, sorted(DURATION_MEASURES))
            times.append((time.perf_counter() - started) * 1000)
        plan = await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS) " + RAW_QUERY, TENANT, start, end, sorted(DURATION_MEASURES)
        )
    finally:
        await conn.close()
    created = {r["channel"]: r["count"] for r in rows if r["type"] == "conversations_created"}
    return {
        "runs_ms": [round(t, 1) for t in times],
        "median_ms": round(statistics.median(times), 1),
        "conversations_created_by_channel": created,
        "explain": [r[0] for r in plan][:40],
    }


async def bucket_sql(
    db_url: str, start: datetime, end: datetime, runs: int, source: str | None = None
) -> dict[str, Any]:
    """The API's own two statements, timed in-process against the database (no HTTP).

    ``source`` forces a level (``"detail"``: the tables the API read before the rollups).
    """
    window = resolve(zone=ZoneInfo("UTC"), now=end - timedelta(seconds=30), window="24h")
    q = BucketQuery((TENANT,), window.plan, Filters(), ("channel",), source=source)
    engine = make_engine(db_url, pool_size=1)
    try:
        times = []
        async with engine.connect() as conn:
            for _ in range(runs):
                started = time.perf_counter()
                await fetch_counts(conn, q)
                await fetch_hist(conn, q)
                times.append((time.perf_counter() - started) * 1000)
            # What-if without touching services/: the same statements with JIT compilation off.
            await conn.exec_driver_sql("SET jit = off")
            no_jit = []
            for _ in range(max(3, runs // 2)):
                started = time.perf_counter()
                await fetch_counts(conn, q)
                await fetch_hist(conn, q)
                no_jit.append((time.perf_counter() - started) * 1000)
            await conn.exec_driver_sql("RESET jit")
            counts_stmt, hist_stmt = statements(q)
            explain = []
            for stmt in (counts_stmt, hist_stmt):
                compiled = stmt.compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
                result = await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}")
                explain.append([r[0] for r in result][:40])
    finally:
        await engine.dispose()
    return {
        "tables": [source_for(q).counts.name, source_for(q).hist.name],
        "plan": [f"grain {r.grain}: {r.start:%H:%M}..{r.end:%H:%M}" for r in window.plan],
        "runs_ms": [round(t, 1) for t in times],
        "median_ms": round(statistics.median(times), 1),
        "jit_off_runs_ms": [round(t, 1) for t in no_jit],
        "jit_off_median_ms": round(statistics.median(no_jit), 1),
        "explain_counts": explain[0],
        "explain_hist": explain[1],
    }


async def same_answer(db_url: str, start: datetime, end: datetime) -> bool:
    """Whether the rollup and the detail rows give the same sums (floats up to rounding)."""
    window = resolve(zone=ZoneInfo("UTC"), now=end - timedelta(seconds=30), window="24h")
    engine = make_engine(db_url, pool_size=1)
    answers = []
    try:
        async with engine.connect() as conn:
            for source in (None, "detail"):
                q = BucketQuery((TENANT,), window.plan, Filters(), ("channel",), source=source)
                answers.append((await fetch_counts(conn, q), await fetch_hist(conn, q)))
    finally:
        await engine.dispose()
    (counts, hist), (detail_counts, detail_hist) = answers
    if hist != detail_hist or counts.keys() != detail_counts.keys():
        return False
    return all(
        measures.keys() == detail_counts[group].keys()
        and all(
            c == detail_counts[group][m][0] and math.isclose(t, detail_counts[group][m][1], rel_tol=1e-9)
            for m, (c, t) in measures.items()
        )
        for group, measures in counts.items()
    )


# What a flush does to the API's answer cache (services/api/kpis/cache.py): a new version of a
# by-channel day row of the window, here with nothing changed (count = count).
TOUCH = """
UPDATE kpi_counts_by_channel SET count = count
WHERE tenant = $1 AND label = '' AND grain = 2 AND metric = 'conversations_created' AND channel = 'chat'
  AND bucket = (SELECT max(bucket) FROM kpi_counts_by_channel WHERE tenant = $1 AND label = '' AND grain = 2)
"""


async def uncached(port: int, request: bytes, dsn: str, count: int, budget: float = 120.0) -> dict[str, Any]:
    """Sequential requests, each after a simulated flush: the answer is computed every time."""
    db = await asyncpg.connect(dsn)
    http = await asyncio.open_connection("127.0.0.1", port)
    latencies: list[float] = []
    deadline = time.perf_counter() + budget
    try:
        while len(latencies) < count and time.perf_counter() < deadline:
            await db.execute(TOUCH, TENANT)
            started = time.perf_counter()
            await exchange(http, request)
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        http[1].close()
        await db.close()
    latencies.sort()
    return {
        "requests": len(latencies),
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(latencies[-1], 2) if latencies else None,
    }


async def flushing(dsn: str, stop: asyncio.Event, every: float = 1.0) -> int:
    """Simulated flushes every ``every`` seconds until ``stop``, as a live aggregator's commits."""
    db = await asyncpg.connect(dsn)
    done = 0
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
            await db.execute(TOUCH, TENANT)
            done += 1
    finally:
        await db.close()
    return done


async def api_once(port: int) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(get(PATH, {"Authorization": f"Bearer {API_KEY}", "Connection": "close"}))
        data = await reader.read()
    finally:
        writer.close()
    body: dict[str, Any] = json.loads(data.split(b"\r\n\r\n", 1)[1])
    return body


# The API process also refreshes its Prometheus KPI gauges every 5 s (services/api/
# metrics_export.py), over 5m, 1h and 24h by (tenant, channel, team) as shipped: the requests
# are measured with that running, and again with the gauges limited to 5m to isolate them.
EXPORTERS: dict[str, dict[str, str]] = {
    "default_gauges": {},
    "gauges_5m_only": {"SUPPORTPULSE_API_METRICS_WINDOWS": "5m"},
}


async def http_figures(
    db_url: str, exporter: dict[str, str], seconds: float, quick: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The API's answer, and its latencies: computed, unchanged, at 200 req/s, with flushes."""
    dsn = plain_dsn(db_url)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="supportpulse-bench-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "tenants.yaml").write_text(TENANTS)
        port = free_port()
        env = {
            "SUPPORTPULSE_API_PORT": str(port),
            "SUPPORTPULSE_DATABASE_URL": db_url,
            "SUPPORTPULSE_TENANTS_FILE": str(tmp / "tenants.yaml"),
            "SUPPORTPULSE_LOG_LEVEL": "WARNING",
            **exporter,
        }
        argv = [str(VENV_BIN / "supportpulse"), "api"]
        async with server(argv, env, port, "/readyz", tmp / "api.log"):
            answer = await api_once(port)
            request = get(PATH, {"Authorization": f"Bearer {API_KEY}"})
            await sequential(port, request, 5)  # warm-up
            figures["unloaded_computed"] = await uncached(port, request, dsn, 5 if quick else 30)
            log(f"    unloaded, computed each time: p50 {figures['unloaded_computed']['p50_ms']} ms")
            figures["unloaded"] = await sequential(port, request, 20 if quick else 100)
            log(f"    unloaded, unchanged buckets: p50 {figures['unloaded']['p50_ms']} ms")
            figures["fixed_rate"] = await fixed_rate(port, 200.0, seconds, lambda _i: request)
            fr = figures["fixed_rate"]
            log(f"    at 200 req/s: {fr['achieved_rate']}/s, p50 {fr['p50_ms']} ms, p99 {fr['p99_ms']} ms")
            stop = asyncio.Event()
            touches = asyncio.create_task(flushing(dsn, stop))
            figures["fixed_rate_flushing"] = await fixed_rate(port, 200.0, seconds, lambda _i: request)
            stop.set()
            figures["fixed_rate_flushing"]["flushes"] = await touches
            fr = figures["fixed_rate_flushing"]
            log(f"    the same, a flush a second: p50 {fr['p50_ms']} ms, p99 {fr['p99_ms']} ms")
    return answer, figures


async def main(args: argparse.Namespace) -> dict[str, Any]:
    per_day = args.conversations or (50_000 if args.quick else 1_000_000)
    seconds = args.seconds or (5.0 if args.quick else 30.0)
    history_days = args.history_days
    runs = 3 if args.quick else 5
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(hours=24)
    figures: dict[str, Any] = {"conversations_per_day": per_day, "history_days": history_days}
    async with temp_database() as db_url:
        dsn = plain_dsn(db_url)
        log(f"api: seeding {per_day:,} conversations/day ({history_days} days of buckets)")
        conn = await asyncpg.connect(dsn)
        try:
            figures["seed"] = await seed(conn, start, end, per_day, history_days)
        finally:
            await conn.close()
        log(f"  rows: {figures['seed']['rows']}")
        answer: dict[str, Any] = {}
        for name, exporter in EXPORTERS.items():
            log(f"  API with {name}")
            answer, figures[name] = await http_figures(db_url, exporter, seconds, args.quick)
        win_start = datetime.fromisoformat(answer["window"]["start"])
        win_end = datetime.fromisoformat(answer["window"]["end"])
        figures["window"] = [win_start.isoformat(), win_end.isoformat()]
        log("  timing the bucket SQL and the raw SQL on the same window")
        figures["bucket_sql"] = await bucket_sql(db_url, win_start, win_end, max(runs, 10))
        log("  the same statements forced onto the detail rows (what the API read before the rollups)")
        figures["detail_sql"] = await bucket_sql(db_url, win_start, win_end, runs, source="detail")
        figures["same_answer_rollup_and_detail"] = await same_answer(db_url, win_start, win_end)
        figures["raw_sql"] = await raw_sql(dsn, win_start, win_end, runs)
    api_created = {
        g["group"]["channel"]: g["kpis"]["conversations_created"]
        for g in answer["groups"]
        if g["kpis"]["conversations_created"]
    }
    raw_created = figures["raw_sql"]["conversations_created_by_channel"]
    figures["same_answer_conversations_created"] = {
        "api": api_created, "raw": raw_created, "equal": api_created == raw_created,
    }  # fmt: skip
    raw_ms, bucket_ms = figures["raw_sql"]["median_ms"], figures["bucket_sql"]["median_ms"]
    detail_ms = figures["detail_sql"]["median_ms"]
    http = figures["default_gauges"]
    api_ms = http["unloaded"]["p50_ms"]
    figures["speedup"] = {
        "raw_sql_over_bucket_sql": round(raw_ms / bucket_ms, 1),
        "raw_sql_over_detail_sql": round(raw_ms / detail_ms, 1),
        "detail_sql_over_bucket_sql": round(detail_ms / bucket_ms, 1),
        "raw_sql_over_api_p50_unloaded": round(raw_ms / api_ms, 1),
        "raw_sql_over_api_p50_computed": round(raw_ms / http["unloaded_computed"]["p50_ms"], 1),
    }
    figures["goal"] = {"p99_ms_at_200": 10, "speedup": 100, "histogram_gamma": GAMMA}
    rows: list[tuple[str, Any]] = []

    def pair(f: dict[str, Any]) -> str:
        return f"{f['p50_ms']} / {f['p99_ms']}"

    for name in EXPORTERS:
        h = figures[name]
        fr, frf = h["fixed_rate"], h["fixed_rate_flushing"]
        rows += [
            (f"[{name}] unloaded, computed each time (p50 / p99 ms)", pair(h["unloaded_computed"])),
            (f"[{name}] unloaded, buckets unchanged (p50 / p99 ms)", pair(h["unloaded"])),
            (f"[{name}] 200 req/s for {seconds:.0f}s: achieved req/s", fr["achieved_rate"]),
            (f"[{name}] 200 req/s: p50 / p99 ms; errors", f"{pair(fr)}; {fr['errors'] + fr['non_2xx']}"),
            (f"[{name}] 200 req/s, a flush a second: achieved req/s", frf["achieved_rate"]),
            (f"[{name}] ... p50 / p99 ms; errors", f"{pair(frf)}; {frf['errors'] + frf['non_2xx']}"),
        ]
    print_table(
        f"api: GET {PATH}, {per_day:,} conversations/day, "
        f"{figures['seed']['rows']['bench_events']:,} raw rows",
        [
            *rows,
            (f"bucket SQL on {', '.join(figures['bucket_sql']['tables'])} (median ms)", bucket_ms),
            ("bucket SQL with SET jit = off (median ms)", figures["bucket_sql"]["jit_off_median_ms"]),
            ("same statements on the detail rows (median ms)", detail_ms),
            ("detail rows with SET jit = off (median ms)", figures["detail_sql"]["jit_off_median_ms"]),
            ("raw-events SQL (median ms)", raw_ms),
            ("raw SQL / bucket SQL", figures["speedup"]["raw_sql_over_bucket_sql"]),
            ("detail SQL / bucket SQL", figures["speedup"]["detail_sql_over_bucket_sql"]),
            ("same sums from rollup and detail rows", figures["same_answer_rollup_and_detail"]),
            ("raw SQL / API p50 (unloaded, computed)", figures["speedup"]["raw_sql_over_api_p50_computed"]),
            ("raw SQL / API p50 (unloaded, unchanged)", figures["speedup"]["raw_sql_over_api_p50_unloaded"]),
            ("same conversations_created per channel", figures["same_answer_conversations_created"]["equal"]),
        ],
    )
    write_results("api", figures, args.quick)
    return figures
