"""``supportpulse demo``: the whole pipeline on one machine, fed by the simulator.

Starts the local stack, migrates, runs ingest, aggregator and API as child processes
(logs in .stack/logs/), streams simulated traffic through them and prints a live
summary of the KPIs read back from the API, which proves the loop end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

console = Console()

SERVICES = {
    "ingest": "http://127.0.0.1:8081/readyz",
    "aggregator": "http://127.0.0.1:8082/healthz",
    "api": "http://127.0.0.1:8080/readyz",
}
API = "http://127.0.0.1:8080"
API_KEY = "demo-api-key"


def _start_services(log_dir: Path) -> dict[str, subprocess.Popen[bytes]]:
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for name in SERVICES:
        log = (log_dir / f"{name}.log").open("ab")
        procs[name] = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "services", name],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=os.environ.copy(),
        )
        console.print(f"started [bold]{name}[/] (pid {procs[name].pid}, log {log_dir / f'{name}.log'})")
    return procs


def _wait_ready(procs: dict[str, subprocess.Popen[bytes]], log_dir: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    pending = dict(SERVICES)
    with httpx.Client(timeout=2) as client:
        while pending:
            for name, url in list(pending.items()):
                if procs[name].poll() is not None:
                    raise SystemExit(
                        f"{name} exited with {procs[name].returncode}; see {log_dir / f'{name}.log'}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        console.print(f"[green]{name} is ready[/] ({url})")
                        del pending[name]
            if time.monotonic() > deadline:
                raise SystemExit(f"not ready after {timeout}s: {', '.join(pending)}; see logs in {log_dir}")
            time.sleep(0.5)


def _stop(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for name, proc in procs.items():
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            console.print(f"[yellow]{name} did not stop in 20 s; killing it[/]")
            proc.kill()


def _fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.2f}{unit}" if unit != "%" else f"{value * 100:.1f}%"
    return f"{value}{unit}"


def _backlog(live: Any) -> int | None:
    backlog = live.get("backlog_open") if isinstance(live, dict) else None
    total = backlog.get("total") if isinstance(backlog, dict) else None
    return total if isinstance(total, int) else None


def _summary(kpis: dict[str, Any], live: Any) -> Table:
    def duration(name: str, stat: str) -> object:
        value = kpis.get(name)
        return value.get(stat) if isinstance(value, dict) else None

    def ratio(name: str) -> object:
        value = kpis.get(name)
        return value.get("value") if isinstance(value, dict) else None

    # One row per KPI: fits an 80-column terminal, and reads like a report.
    table = Table(title="SupportPulse: demo tenant, last 15 minutes", show_header=True)
    table.add_column("KPI")
    table.add_column("value", justify="right")
    rows = (
        ("received (conversations + calls)", _fmt(kpis.get("received"))),
        ("handled (resolutions + answered calls)", _fmt(kpis.get("handled"))),
        (
            "first response p50 / p90",
            f"{_fmt(duration('first_response_seconds', 'p50'), ' s')} / "
            f"{_fmt(duration('first_response_seconds', 'p90'), ' s')}",
        ),
        ("resolution p50", _fmt(duration("resolution_seconds", "p50"), " s")),
        ("CSAT average (1-5)", _fmt(ratio("csat_avg"))),
        ("abandonment rate", _fmt(ratio("abandonment_rate"), "%")),
        ("service level (20 s)", _fmt(ratio("service_level"), "%")),
        ("first-response SLA compliance", _fmt(ratio("sla_first_response_compliance"), "%")),
        ("backlog open now", _fmt(_backlog(live))),
    )
    for row in rows:
        table.add_row(*row)
    return table


async def _report(stop: asyncio.Event, every: float = 10.0) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=API, headers=headers, timeout=5) as client:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
            try:
                kpis = (await client.get("/v1/kpis", params={"tenant": "demo", "window": "15m"})).json()
                live = (await client.get("/v1/live", params={"tenant": "demo"})).json()
            except (httpx.HTTPError, ValueError) as exc:
                console.print(f"[yellow]API not answering yet: {exc}[/]")
                continue
            groups = kpis.get("groups") or [{}]
            console.print(_summary(groups[0].get("kpis", {}), live))


async def _traffic(rate: float, duration: float) -> None:
    from services.simulator.runner import simulate

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reporter = asyncio.create_task(_report(stop))
    try:
        await simulate(
            rate=rate, duration=duration, tenant="demo", ingest_url="http://127.0.0.1:8081", stop=stop
        )
    finally:
        stop.set()
        await reporter


def run_demo(rate: float, duration: float, with_prometheus: bool) -> None:
    from services.stack import up
    from services.stack.paths import StackPaths
    from shared.db.migrate import upgrade
    from shared.kafka import ensure_topics
    from shared.settings import CommonSettings

    info = up(with_prometheus=with_prometheus)
    os.environ.setdefault("SUPPORTPULSE_DATABASE_URL", info.database_url)
    os.environ.setdefault("SUPPORTPULSE_KAFKA_BOOTSTRAP", info.kafka_bootstrap)
    settings = CommonSettings()
    upgrade(settings.database_dsn)
    asyncio.run(ensure_topics(settings))
    log_dir = StackPaths.from_env().logs
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = _start_services(log_dir)
    try:
        _wait_ready(procs, log_dir)
        console.print(
            "\n[bold]Pipeline running.[/] Look at:\n"
            f"  API        {API}/docs   (key: {API_KEY})\n"
            f"  KPIs       curl -H 'Authorization: Bearer {API_KEY}' '{API}/v1/kpis?tenant=demo&window=15m'\n"
            "  Metrics    http://127.0.0.1:8080/metrics · ingest :8081/metrics · aggregator :8082/metrics\n"
            + (
                f"  Prometheus {info.prometheus_url}   Alertmanager {info.alertmanager_url}\n"
                if with_prometheus
                else ""
            )
            + "Ctrl-C stops the services (the stack keeps running: `supportpulse stack down`).\n"
        )
        asyncio.run(_traffic(rate, duration))
    finally:
        _stop(procs)
        console.print("services stopped")
