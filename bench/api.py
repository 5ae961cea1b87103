"""GET /v1/kpis (24 h, grouped by channel) over 30 days of buckets, vs SQL over the raw events.

Goal: p99 < 10 ms at a fixed 200 req/s, and ≥ 100× faster than computing the same answer
by SQL over raw events. The data (bench/api_seed.py) is ``per_day`` conversations a day;
the API runs as ``supportpulse api`` in a child process against that database, loaded by
bench/loadgen.py (open loop, latency from the scheduled time). The raw side is timed on
the very same 24 h of facts the buckets were derived from.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from bench.api_seed import TENANT, seed
from bench.common import VENV_BIN, free_port, log, plain_dsn, print_table, temp_database, write_results
from bench.loadgen import fixed_rate, get, sequential
from bench.servers import server
from services.api.kpis.repository import BucketQuery, Filters, fetch_counts, fetch_hist, statements
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


async def bucket_sql(db_url: str, start: datetime, end: datetime, runs: int) -> dict[str, Any]:
    """The API's own two statements, timed in-process against the database (no HTTP)."""
    window = resolve(zone=ZoneInfo("UTC"), now=end - timedelta(seconds=30), window="24h")
    q = BucketQuery((TENANT,), window.plan, Filters(), ("channel",))
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
        "plan": [f"grain {r.grain}: {r.start:%H:%M}..{r.end:%H:%M}" for r in window.plan],
        "runs_ms": [round(t, 1) for t in times],
        "median_ms": round(statistics.median(times), 1),
        "jit_off_runs_ms": [round(t, 1) for t in no_jit],
        "jit_off_median_ms": round(statistics.median(no_jit), 1),
        "explain_counts": explain[0],
        "explain_hist": explain[1],
    }


async def api_once(port: int) -> dict[str, Any]:
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(get(PATH, {"Authorization": f"Bearer {API_KEY}", "Connection": "close"}))
        data = await reader.read()
    finally:
        writer.close()
    body: dict[str, Any] = json.loads(data.split(b"\r\n\r\n", 1)[1])
    return body


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
        with tempfile.TemporaryDirectory(prefix="supportpulse-bench-") as tmpdir:
            tmp = Path(tmpdir)
            (tmp / "tenants.yaml").write_text(TENANTS)
            port = free_port()
            env = {
                "SUPPORTPULSE_API_PORT": str(port),
                "SUPPORTPULSE_DATABASE_URL": db_url,
                "SUPPORTPULSE_TENANTS_FILE": str(tmp / "tenants.yaml"),
                "SUPPORTPULSE_LOG_LEVEL": "WARNING",
            }
            argv = [str(VENV_BIN / "supportpulse"), "api"]
            async with server(argv, env, port, "/readyz", tmp / "api.log"):
                answer = await api_once(port)
                request = get(PATH, {"Authorization": f"Bearer {API_KEY}"})
                await sequential(port, request, 5)  # warm-up
                figures["unloaded"] = await sequential(port, request, 20 if args.quick else 100)
                log(f"  unloaded: p50 {figures['unloaded']['p50_ms']} ms")
                figures["fixed_rate"] = await fixed_rate(port, 200.0, seconds, lambda _i: request)
                fr = figures["fixed_rate"]
                log(f"  at 200 req/s: {fr['achieved_rate']}/s, p50 {fr['p50_ms']} ms, p99 {fr['p99_ms']} ms")
        win_start = datetime.fromisoformat(answer["window"]["start"])
        win_end = datetime.fromisoformat(answer["window"]["end"])
        figures["window"] = [win_start.isoformat(), win_end.isoformat()]
        log("  timing the bucket SQL and the raw SQL on the same window")
        figures["bucket_sql"] = await bucket_sql(db_url, win_start, win_end, max(runs, 10))
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
    api_ms = figures["unloaded"]["p50_ms"]
    figures["speedup"] = {
        "raw_sql_over_bucket_sql": round(raw_ms / bucket_ms, 1),
        "raw_sql_over_api_p50_unloaded": round(raw_ms / api_ms, 1),
    }
    figures["goal"] = {"p99_ms_at_200": 10, "speedup": 100, "histogram_gamma": GAMMA}
    fr = figures["fixed_rate"]
    print_table(
        f"api: GET {PATH}, {per_day:,} conversations/day, "
        f"{figures['seed']['rows']['bench_events']:,} raw rows",
        [
            ("API unloaded, one client (p50 / p99 ms)", f"{api_ms} / {figures['unloaded']['p99_ms']}"),
            (f"API at 200 req/s for {seconds:.0f}s: achieved req/s", fr["achieved_rate"]),
            ("API at 200 req/s: p50 / p99 ms", f"{fr['p50_ms']} / {fr['p99_ms']}"),
            ("API at 200 req/s: errors / non-2xx", f"{fr['errors']} / {fr['non_2xx']}"),
            ("bucket SQL, both statements (median ms)", bucket_ms),
            ("bucket SQL with SET jit = off (median ms)", figures["bucket_sql"]["jit_off_median_ms"]),
            ("raw-events SQL (median ms)", raw_ms),
            ("raw SQL / bucket SQL", figures["speedup"]["raw_sql_over_bucket_sql"]),
            ("raw SQL / API p50 (unloaded)", figures["speedup"]["raw_sql_over_api_p50_unloaded"]),
            ("same conversations_created per channel", figures["same_answer_conversations_created"]["equal"]),
        ],
    )
    write_results("api", figures, args.quick)
    return figures
