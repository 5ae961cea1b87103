"""Ingest service throughput and latency, side by side with a bare FastAPI endpoint.

Goals: single-event ``POST /v1/events`` ≥ 5,000 req/s; p99 < 25 ms at a fixed 2,000 req/s;
1000-event batches ≥ 100,000 events/s. Both apps run under uvicorn in child processes with
the same worker count (1, then 2): the real one is ``supportpulse ingest`` against Kafka
(its own unique topics and a temporary tenants file), the reference is bench/bare_app.py.

* max req/s: wrk (closed loop, C, one thread), fresh event ids on every request (post.lua);
* latency at 2,000 req/s: bench/loadgen.py, open loop on a fixed schedule (wrk 4 has no
  ``-R`` and wrk2 is not packaged in Debian), latency from each request's scheduled time;
* batches: wrk posting 1000-event JSON arrays.

Everything (server, Kafka broker, load generator) shares the same 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import RESULTS, VENV_BIN, delete_topics, free_port, log, print_table, unique, write_results
from bench.loadgen import fixed_rate, post
from bench.servers import ensure_wrk, py_spy, server, wrk

UVLOOP = True
TOKEN = "bench-ingest-token"  # noqa: S105 - a throwaway tenant in a temporary file
TENANTS = f"""
tenants:
  bench:
    ingest_token: {TOKEN}
    connectors:
      generic: {{}}
api_keys: []
"""


def _event(i: int, occurred: str) -> bytes:
    return (
        f'{{"id":"g{i}","source":"bench","type":"message.created","occurred_at":"{occurred}",'
        f'"conversation_id":"gc{i % 100000}","channel":"chat","team":"support",'
        f'"direction":"inbound","author":"customer"}}'
    ).encode()


async def measure(
    kind: str,
    workers: int,
    seconds: float,
    rate: float,
    tmp: Path,
    topics: dict[str, str],
    profile: bool = False,
) -> dict[str, Any]:
    port = free_port()
    occurred = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if kind == "ingest":
        argv = [str(VENV_BIN / "supportpulse"), "ingest"]
        ready = "/readyz"
    else:
        argv = [
            str(VENV_BIN / "uvicorn"), "bench.bare_app:app", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        ready = "/healthz"
    env = {
        "SUPPORTPULSE_INGEST_PORT": str(port),
        "SUPPORTPULSE_INGEST_WORKERS": str(workers),
        "SUPPORTPULSE_TENANTS_FILE": str(tmp / "tenants.yaml"),
        "SUPPORTPULSE_EVENTS_TOPIC": topics["events"],
        "SUPPORTPULSE_RAW_TOPIC": topics["raw"],
        "SUPPORTPULSE_DEADLETTER_TOPIC": topics["deadletter"],
        "SUPPORTPULSE_LOG_LEVEL": "WARNING",
    }
    url = f"http://127.0.0.1:{port}/v1/events"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    out: dict[str, Any] = {"app": kind, "workers": workers}
    async with server(argv, env, port, ready, tmp / f"{kind}-{workers}.log") as proc:
        log(f"ingest: {kind} app, {workers} worker(s) on :{port}")
        await wrk(url, min(3, seconds), 32, [TOKEN, "1", occurred])  # warm-up
        out["max"] = await wrk(url, seconds, 64, [TOKEN, "1", occurred])
        log(f"  max {out['max']['requests_per_second']:,} req/s (wrk, 64 connections)")
        out["fixed_rate"] = await fixed_rate(
            port, rate, seconds, lambda i: post("/v1/events", _event(i, occurred), headers)
        )
        fr = out["fixed_rate"]
        log(
            f"  at {rate:,.0f} req/s: p50 {fr['p50_ms']} ms, p99 {fr['p99_ms']} ms "
            f"(client CPU {fr['client_cpu_share']:.0%})"
        )
        batch = await wrk(url, seconds, 8, [TOKEN, "1000", occurred])
        batch["events_per_second"] = batch["requests_per_second"] * 1000
        out["batch_1000"] = batch
        log(f"  batches of 1000: {batch['events_per_second']:,} events/s")
        if profile and kind == "ingest" and workers == 1:
            # One worker: uvicorn serves in the process it was started as (no supervisor).
            for name, batch_size in (("single", "1"), ("batch_1000", "1000")):
                log(f"  py-spy on the ingest worker under wrk ({name})")
                load = asyncio.create_task(
                    wrk(url, 12, 64 if batch_size == "1" else 8, [TOKEN, batch_size, occurred])
                )
                await asyncio.sleep(1)
                RESULTS.mkdir(exist_ok=True)
                out[f"profile_{name}"] = await py_spy(proc.pid, 10, RESULTS / f"ingest-{name}.pyspy")
                await load
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    ensure_wrk()
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    rate = 2000.0
    suffix = unique("")
    topics = {k: f"bench.{k}.{suffix}" for k in ("events", "raw", "deadletter")}
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="supportpulse-bench-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "tenants.yaml").write_text(TENANTS)
        try:
            for workers in (1, 2):
                for kind in ("bare", "ingest"):
                    runs.append(await measure(kind, workers, seconds, rate, tmp, topics, args.profile))
        finally:
            await delete_topics(topics.values())
    rows = []
    for r in runs:
        fr, mx, b = r["fixed_rate"], r["max"], r["batch_1000"]
        errors = mx["non_2xx"] + mx["socket_errors"] + fr["non_2xx"] + fr["errors"] + b["non_2xx"]
        rows.append((
            f"{r['app']} ×{r['workers']}", mx["requests_per_second"], mx["p99_ms"], fr["achieved_rate"],
            fr["p50_ms"], fr["p99_ms"], f"{fr['client_cpu_share']:.0%}", b["events_per_second"], errors,
        ))  # fmt: skip
    ratios = {}
    for workers in (1, 2):
        bare = next(r for r in runs if r["app"] == "bare" and r["workers"] == workers)
        real = next(r for r in runs if r["app"] == "ingest" and r["workers"] == workers)
        ratios[f"workers_{workers}"] = {
            "max_req_s_ingest_over_bare": round(
                real["max"]["requests_per_second"] / max(bare["max"]["requests_per_second"], 1), 3
            ),
            "batch_events_s_ingest_over_bare": round(
                real["batch_1000"]["events_per_second"] / max(bare["batch_1000"]["events_per_second"], 1), 3
            ),
        }
    figures = {
        "seconds_per_run": seconds,
        "fixed_rate": rate,
        "runs": runs,
        "ratios": ratios,
        "goal": {"max_req_s": 5000, "p99_ms_at_2000": 25, "batch_events_s": 100_000},
    }
    print_table(
        f"ingest: POST /v1/events, {seconds:.0f}s per run",
        rows,
        header=("app × workers", "max req/s", "p99@max ms", f"@{rate:.0f}/s got", "p50 ms", "p99 ms",
                "client CPU", "batch ev/s", "errors"),
    )  # fmt: skip
    print(f"ingest / bare: {ratios}")
    for r in runs:
        for name in ("profile_single", "profile_batch_1000"):
            if r.get(name):
                print_table(f"ingest ×1, py-spy {name}: % of samples (self)", r[name]["self_percent"][:15])
                print_table(
                    f"ingest ×1, py-spy {name}: % of samples (inclusive)", r[name]["inclusive_percent"]
                )
    write_results("ingest", figures, args.quick)
    return figures
