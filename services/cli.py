"""The ``supportpulse`` command: run the services and the tools.

This module is the composition root: it imports each service lazily, inside its
command, so that ``supportpulse --help`` is fast and no service imports another.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer

from services.stack.cli import app as stack_app

app = typer.Typer(
    name="supportpulse",
    help=(
        "Live customer-support KPIs: vendor webhooks -> Kafka -> aggregator -> Postgres -> API, "
        "Prometheus and Grafana.\n\n"
        "Quick start: `supportpulse demo` runs everything with simulated traffic. "
        "Configuration comes from SUPPORTPULSE_* environment variables (docs/configuration.md); "
        "the defaults talk to the local stack started by `supportpulse stack up`."
    ),
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(stack_app, name="stack")


@app.command()
def migrate(
    topics: Annotated[bool, typer.Option(help="Also create the Kafka topics.")] = True,
) -> None:
    """Create or upgrade the database schema (Alembic) and the Kafka topics. Idempotent."""
    from shared.db.migrate import upgrade
    from shared.kafka import ensure_topics
    from shared.settings import CommonSettings

    settings = CommonSettings()
    upgrade(settings.database_dsn)
    typer.echo("database schema is at the latest revision")
    if topics:
        created = asyncio.run(ensure_topics(settings))
        typer.echo(f"kafka topics ready ({', '.join(created) or 'none new'})")


@app.command()
def config(
    markdown: Annotated[
        bool, typer.Option(help="Print the reference table (docs/configuration.md).")
    ] = False,
) -> None:
    """Show every setting (SUPPORTPULSE_* environment variables) and the value in force; secrets masked."""
    from rich.console import Console
    from rich.table import Table

    from services.config_docs import current
    from services.config_docs import markdown as reference

    if markdown:
        typer.echo(reference(), nl=False)
        return
    table = Table(title="SupportPulse settings in force")
    for column in ("service", "variable", "value"):
        table.add_column(column)
    for row in current():
        table.add_row(*row)
    Console().print(table)


@app.command()
def ingest(
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=(
                "Worker processes, each with its own Kafka producer, sharing the port; /metrics sums "
                "them. Default: SUPPORTPULSE_INGEST_WORKERS (1: in containers, scale with replicas)."
            ),
        ),
    ] = None,
) -> None:
    """Run the ingest HTTP service (webhooks in, Kafka out) on SUPPORTPULSE_INGEST_PORT (8081)."""
    from services.ingest.service import main

    main(workers)


@app.command()
def aggregator() -> None:
    """Run the aggregator (Kafka in, KPI buckets in Postgres out); metrics on :8082."""
    from services.aggregator.service import main

    main()


@app.command()
def api() -> None:
    """Run the KPI API and the Prometheus export on SUPPORTPULSE_API_PORT (8080)."""
    from services.api.service import main

    main()


@app.command()
def replay() -> None:
    """Rebuild every KPI aggregate from the start of the events topic and swap it in atomically.

    Run it after changing a KPI threshold or SLA target (SUPPORTPULSE_AGGREGATOR_*). Live
    aggregators keep running: the swap fences them and they resume from the rebuilt state.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from services.aggregator.replay import replay as run_replay
    from services.aggregator.settings import AggregatorSettings
    from shared.observability import configure_logging

    settings = AggregatorSettings()
    configure_logging(settings.log_level, json=settings.log_json)
    columns = (
        TextColumn("replaying {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} events/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as bar:
        task = bar.add_task(settings.events_topic, total=None, rate="-")
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            rate = done / max(time.monotonic() - started, 1e-6)
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f}")

        result = asyncio.run(run_replay(settings, progress))
    typer.echo(
        f"replayed {result.records:,} records ({result.applied:,} events applied) in {result.seconds:.1f}s "
        f"({result.records / max(result.seconds, 1e-6):,.0f}/s); new tables swapped in"
    )


@app.command("follow-queue-log")
def follow_queue_log(
    path: Annotated[
        Path, typer.Argument(help="The Asterisk queue_log file (e.g. /var/log/asterisk/queue_log).")
    ],
    tenant: Annotated[str, typer.Option(help="Tenant the lines belong to.")] = "demo",
    token: Annotated[
        str, typer.Option(envvar="SUPPORTPULSE_FORWARDER_TOKEN", help="The tenant's ingest token.")
    ] = "demo-ingest-token",  # noqa: S107 - the local demo tenant's token, documented as such
    ingest_url: Annotated[
        str, typer.Option(help="Base URL of the ingest service.")
    ] = "http://127.0.0.1:8081",
    state_file: Annotated[
        Path | None, typer.Option(help="Where to remember the position (default: beside the log).")
    ] = None,
) -> None:
    """Follow a queue_log like `tail -F` (rotation and truncation survived) and forward new lines.

    The position is saved only after ingest acknowledged the lines, so nothing is skipped
    across restarts or outages; a re-sent batch is deduplicated downstream by event id.
    """
    from services.forwarder.cli import run

    run(path, tenant, token, ingest_url, state_file)


@app.command()
def simulate(
    rate: Annotated[float, typer.Option(help="Conversations and calls started per second.")] = 5.0,
    duration: Annotated[float, typer.Option(help="Seconds to run; 0 runs until interrupted.")] = 0.0,
    tenant: Annotated[str, typer.Option(help="Tenant to send as (must exist in the tenants file).")] = "demo",
    ingest_url: Annotated[
        str, typer.Option(help="Base URL of the ingest service.")
    ] = "http://127.0.0.1:8081",
    seed: Annotated[int | None, typer.Option(help="Random seed, for a repeatable run.")] = None,
    record: Annotated[
        Path | None,
        typer.Option(
            help="Write the run, every story and every delivery with ingest's answer here (JSON lines); "
            "with --canonical also the canonical events ingest accepted, for `supportpulse verify`."
        ),
    ] = None,
    canonical: Annotated[
        bool,
        typer.Option(
            "--canonical/--vendor",
            help="Send each delivery's canonical events to POST /v1/events (the tenant needs the generic "
            "connector) instead of the vendor webhook, so a recording holds exactly what Kafka got.",
        ),
    ] = False,
    stories: Annotated[
        int,
        typer.Option(help="Start at most this many conversations and calls, then finish them (0: no limit)."),
    ] = 0,
    backlog: Annotated[
        bool,
        typer.Option(
            help="Replay --stories as a backlog: event times at --rate per second ending 6 h ago, sent in "
            "event-time order as fast as --concurrency allows (--duration is ignored)."
        ),
    ] = False,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at most.")] = 64,
) -> None:
    """Send realistic Chatwoot, Twilio and Asterisk traffic to the ingest service."""
    from services.simulator.cli import run

    run(
        rate=rate,
        duration=duration,
        tenant=tenant,
        ingest_url=ingest_url,
        seed=seed,
        record=record,
        canonical=canonical,
        stories=stories,
        backlog=backlog,
        concurrency=concurrency,
    )


@app.command()
def verify(
    recording: Annotated[Path, typer.Argument(help="A recording of `simulate --canonical --record`.")],
    tenant: Annotated[
        str | None, typer.Option(help="Tenant whose rows to compare (default: the recording's).")
    ] = None,
    wait: Annotated[
        float, typer.Option(help="Poll up to this many seconds while the aggregator catches up.")
    ] = 0.0,
) -> None:
    """Compare the KPIs in Postgres (day rows) with the reference computed from a recording.

    Counts must be equal, duration quantiles within the histograms' 1 %.
    Read-only; exits 1 on any difference.
    Thresholds come from SUPPORTPULSE_AGGREGATOR_*, as the aggregator's do.
    """
    from services.simulator.verify import run as run_verify
    from shared.settings import CommonSettings

    result = run_verify(recording, CommonSettings().database_dsn, tenant, wait)
    typer.echo(result.summary())
    if not result.ok:
        raise typer.Exit(code=1)


@app.command()
def demo(
    rate: Annotated[float, typer.Option(help="Conversations and calls started per second.")] = 3.0,
    duration: Annotated[float, typer.Option(help="Seconds to run; 0 runs until Ctrl-C.")] = 0.0,
    prometheus: Annotated[bool, typer.Option(help="Also run Prometheus and Alertmanager.")] = True,
) -> None:
    """Run the whole pipeline (stack, ingest, aggregator, API) with simulated traffic and a live summary."""
    from services.demo import run_demo

    run_demo(rate=rate, duration=duration, with_prometheus=prometheus)


def main() -> None:
    app()
