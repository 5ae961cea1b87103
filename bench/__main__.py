"""``python -m bench [name ...] [--quick]``: run benchmarks (all of them by default).

Each benchmark prints a table and writes its figures to bench/results/ as JSON. They need
the local stack (``supportpulse stack up``); see bench/README.md for what each measures.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from typing import Any

BENCHMARKS = {
    "aggregator": "Aggregator events/s vs a bare aiokafka loop on the same pre-filled topic",
    "hotpath": "ns/event of decode, apply, tick and Deltas.add in memory, vs json/orjson",
    "memory": "Bytes per open conversation held by the aggregator, and its msgpack state size",
    "ingest": "POST /v1/events req/s, latency at a fixed rate and batch events/s, vs a bare app",
    "api": "GET /v1/kpis 24h by channel over 30 days of buckets vs SQL over raw events",
    "freshness": "Produce-ack to visible in GET /v1/kpis, with the real aggregator and API under load",
    "soak": "30 min of steady simulated traffic: ingest/aggregator RSS and consumer lag, KPIs vs reference",
}
ONLY_WHEN_NAMED = frozenset({"soak"})


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="benchmarks:\n" + "\n".join(f"  {k:<11} {v}" for k, v in BENCHMARKS.items()),
    )
    p.add_argument("names", nargs="*", metavar="name", help="benchmarks to run (default: all but soak)")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a minute or two")
    p.add_argument("--events", type=int, default=None, help="aggregator: events to pre-fill")
    p.add_argument("--conversations", type=int, default=None, help="memory: open conversations; api: per day")
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="ingest/api: length of each load run; freshness: of probing; soak: of steady load (1800)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=None,
        help="freshness: background events/s (default 5000); soak: stories/s, ~7.5 events each (20)",
    )
    p.add_argument(
        "--history-days", type=int, default=30, help="api: days of hour/day buckets (minutes: 2 days)"
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="aggregator, hotpath: also a run under cProfile; ingest: py-spy on the worker",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # The soak takes 45 minutes: it runs when named, not as part of "all".
    names = args.names or [n for n in BENCHMARKS if n not in ONLY_WHEN_NAMED]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser().error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    results: dict[str, Any] = {}
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        # The aggregator runs on asyncio's default loop, as `supportpulse aggregator` does; the HTTP
        # load generators use uvloop (as uvicorn does) to be less client-bound.
        if getattr(module, "UVLOOP", False):
            import uvloop

            results[name] = uvloop.run(module.main(args))
        else:
            results[name] = asyncio.run(module.main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
