"""``supportpulse simulate``: run the simulator in the foreground with a live status line.

Ctrl-C (or SIGTERM) stops starting stories and lets requests in flight finish; a second
Ctrl-C cancels at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from services.simulator.model import DEFAULT_MIX
from services.simulator.runner import (
    DEFAULT_INGEST_URL,
    IngestUnreachable,
    SimulationStats,
    backlog_start,
    check_ingest,
    simulate,
)
from services.simulator.story import CONNECTORS, Mix

__all__ = ["run", "simulate"]


def status_line(stats: SimulationStats) -> Text:
    line = Text(f"{stats.elapsed:6.0f}s  stories {stats.stories}  ", style="bold")
    for name in CONNECTORS:
        c = stats.connectors[name]
        if not c.sent:
            continue
        line.append(f"{name} ", style="cyan")
        line.append(f"sent {c.sent} ok {c.accepted} ")
        errors = c.rejected + c.failed
        line.append(f"err {errors}  ", style="red" if errors else "green")
    line.append(f"pending {stats.pending} in flight {stats.in_flight}", style="dim")
    return line


def summary_table(stats: SimulationStats, canonical: bool = False) -> Table:
    how = "canonical events via /v1/events" if canonical else "vendor webhooks"
    table = Table(
        title=f"simulation: {stats.stories} stories in {stats.elapsed:.0f} s, {how} (seed {stats.seed})"
    )
    for column in ("connector", "sent", "accepted", "rejected", "failed", "retries", "events", "ignored"):
        table.add_column(column, justify="left" if column == "connector" else "right")
    for name in CONNECTORS:
        c = stats.connectors[name]
        table.add_row(name, *(str(v) for v in (c.sent, c.accepted, c.rejected, c.failed, c.retries,
                                                 c.events, c.ignored)))  # fmt: skip
    return table


def run(
    rate: float = 5.0,
    duration: float = 0.0,
    tenant: str = "demo",
    ingest_url: str = DEFAULT_INGEST_URL,
    seed: int | None = None,
    record: Path | None = None,
    *,
    slow_share: float = DEFAULT_MIX.slow_share,
    canonical: bool = False,
    stories: int = 0,
    backlog: bool = False,
    concurrency: int = 64,
) -> None:
    """Run until ``duration`` elapses (0: until Ctrl-C); exits with status 1 if ingest is unreachable.

    ``stories`` > 0 stops after that many and sends what they still have scheduled;
    ``backlog`` replays them with event times ending hours ago, as fast as ``concurrency`` allows.
    """
    console = Console()
    try:
        if backlog and stories <= 0:
            raise ValueError("--backlog needs --stories")
        mix = replace(DEFAULT_MIX, slow_share=slow_share)
        options = {
            "canonical": canonical,
            "stories": stories or None,
            "start": backlog_start(stories, rate) if backlog else None,
            "drain": stories > 0,
            "concurrency": concurrency,
        }
        stats = asyncio.run(_main(console, rate, duration, tenant, ingest_url, seed, record, mix, options))
    except (IngestUnreachable, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise SystemExit(1) from None
    except asyncio.CancelledError:
        console.print("[yellow]interrupted: requests in flight were abandoned[/]")
        raise SystemExit(130) from None
    console.print()  # the live line may end without a newline when output is not a terminal
    console.print(summary_table(stats, canonical))
    for name in CONNECTORS:
        last = stats.connectors[name].last_error
        if last:
            console.print(f"[yellow]{name}: last error: {last}[/]")
    if record is not None:
        console.print(f"recorded to {record}")
        if canonical:
            console.print(f"compare the KPIs with the reference: supportpulse verify {record}")


async def _main(
    console: Console, rate: float, duration: float, tenant: str, ingest_url: str, seed: int | None,
    record: Path | None, mix: Mix, options: dict[str, Any],
) -> SimulationStats:  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set() and main is not None:
            main.cancel()  # second Ctrl-C: do not wait for requests in flight
        stop.set()

    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread / Windows
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
    if options["start"] is not None:
        console.print(
            f"replaying [bold]{options['stories']}[/] stories at {rate:g} per second of event time as a "
            f"backlog from {time.strftime('%Y-%m-%d %H:%M', time.gmtime(options['start']))} UTC "
            f"for tenant [bold]{tenant}[/] -> {ingest_url}"
        )
    else:
        until = f"for {duration:g} s" if duration else "until Ctrl-C"
        if options["stories"]:
            until = f"{until} or {options['stories']} stories"
        console.print(
            f"simulating [bold]{rate:g}[/] conversations and calls per second for tenant [bold]{tenant}[/] "
            f"-> {ingest_url} ({until})"
        )
    try:
        async with httpx.AsyncClient() as client:
            await check_ingest(client, ingest_url)  # fail before the live display starts
        with Live(Text("starting..."), console=console, refresh_per_second=4, transient=False) as live:
            return await simulate(
                rate=rate, duration=duration, tenant=tenant, ingest_url=ingest_url, seed=seed, record=record,
                stop=stop, mix=mix, progress=lambda s: live.update(status_line(s)), progress_interval=2.0,
                **options,
            )  # fmt: skip
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
