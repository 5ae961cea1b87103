"""`stack` commands: up, down, status, reset, logs."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from services.stack import lifecycle, process
from services.stack.component import ComponentStatus
from services.stack.errors import StackError
from services.stack.paths import StackPaths

app = typer.Typer(
    name="stack",
    help=(
        "Install and run the local SupportPulse stack without Docker: Kafka 4.1.1 (KRaft) on "
        "127.0.0.1:19092, PostgreSQL on 127.0.0.1:15432, Prometheus on 127.0.0.1:19090 and "
        "Alertmanager on 127.0.0.1:19094. "
        "State lives in .stack/ at the repo root (override with SUPPORTPULSE_STACK_DIR)."
    ),
    no_args_is_help=True,
    add_completion=False,
)

console = Console()
err_console = Console(stderr=True)

COMPONENT_NAMES = ("kafka", "postgres", "prometheus", "alertmanager")


def configure_logging(verbose: bool = False) -> None:
    logger = logging.getLogger("supportpulse.stack")
    if not any(isinstance(handler, RichHandler) for handler in logger.handlers):
        handler = RichHandler(console=err_console, show_path=False, show_time=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def _fail(exc: Exception) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
    return typer.Exit(code=1)


def status_table(statuses: Sequence[ComponentStatus], title: str = "SupportPulse stack") -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("component", "state", "pid", "port", "healthy"):
        table.add_column(column, no_wrap=True)
    table.add_column("log", overflow="fold")
    for item in statuses:
        state_style = {"running": "green", "external": "cyan"}.get(item.state, "yellow")
        healthy = "[green]yes[/]" if item.healthy else "[red]no[/]"
        where = _short(item.log_file) if item.log_file else ""
        if (item.detail and not item.healthy) or item.state == "external":
            where = f"{where}\n{item.detail}".strip()
        table.add_row(
            item.name,
            f"[{state_style}]{item.state}[/]",
            str(item.pid) if item.pid else "-",
            item.address.removeprefix(f"{process.HOST}:"),
            healthy,
            where,
        )
    return table


def _short(path: Path) -> str:
    """Paths relative to the current directory when below it: the table has to fit 80 columns."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@app.command()
def up(
    no_prometheus: Annotated[
        bool,
        typer.Option(
            "--no-prometheus", help="Start only Kafka and Postgres (skip Prometheus and Alertmanager)."
        ),
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(help="Seconds to wait for each component to become healthy (default: per component)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every command that is run.")] = False,
) -> None:
    """Install what is missing (apt-get, mvn), start everything that is not running, wait until healthy.

    Safe to run again: running components are left alone. Writes .stack/env with the connection settings.
    """
    configure_logging(verbose)
    started = time.monotonic()
    try:
        info = lifecycle.up(with_prometheus=not no_prometheus, timeout=timeout)
        statuses = lifecycle.status()
    except StackError as exc:
        raise _fail(exc) from exc
    shown = [s for s in statuses if not no_prometheus or s.name not in ("prometheus", "alertmanager")]
    console.print(status_table(shown, title=f"SupportPulse stack (up in {time.monotonic() - started:.1f}s)"))
    console.print(f"kafka bootstrap: {info.kafka_bootstrap}", soft_wrap=True)
    console.print(f"database url:    {info.database_url}", soft_wrap=True)
    if info.prometheus_url:
        console.print(f"prometheus:      {info.prometheus_url}", soft_wrap=True)
        console.print(f"alertmanager:    {info.alertmanager_url}", soft_wrap=True)
    console.print(f"environment:     . {StackPaths.from_env().env_file}", soft_wrap=True)


@app.command()
def down(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More output.")] = False) -> None:
    """Stop every component started by the stack (SIGTERM, wait, then SIGKILL). Data is kept."""
    configure_logging(verbose)
    try:
        stopped = lifecycle.down()
    except StackError as exc:
        raise _fail(exc) from exc
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def status() -> None:
    """Show each component: state, pid, address and whether it answers its health check.

    Exits with code 1 when any component is not healthy.
    """
    configure_logging()
    statuses = lifecycle.status()
    console.print(status_table(statuses))
    if not all(s.healthy for s in statuses):
        raise typer.Exit(code=1)


@app.command()
def reset(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Stop everything and delete all data (Kafka topics, the database, metrics). Jars and packages stay."""
    configure_logging()
    if not yes:
        typer.confirm(f"Delete all stack data under {StackPaths.from_env().root}?", abort=True)
    try:
        lifecycle.reset()
    except StackError as exc:
        raise _fail(exc) from exc
    console.print("stack stopped and data deleted")


@app.command()
def logs(
    component: Annotated[
        str | None, typer.Argument(help=f"One of: {', '.join(COMPONENT_NAMES)}. Omit to list all log files.")
    ] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many trailing lines to print.")] = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C to stop).")
    ] = False,
) -> None:
    """Print the path of a component's log file and its last lines (or list all log files)."""
    paths = StackPaths.from_env()
    if component is None:
        for name in COMPONENT_NAMES:
            log_file = paths.log_file(name)
            console.print(f"{name:<13} {log_file}{'' if log_file.exists() else '  (not created yet)'}")
        return
    if component not in COMPONENT_NAMES:
        raise _fail(
            StackError(f"unknown component {component!r}; choose one of {', '.join(COMPONENT_NAMES)}")
        )
    log_file = paths.log_file(component)
    console.print(f"[bold]{log_file}[/]", soft_wrap=True)
    if not log_file.exists():
        console.print("(no log yet: the component has not been started)")
        return
    console.print(process.tail(log_file, lines), markup=False, highlight=False, soft_wrap=True)
    if follow:
        _follow(log_file)


def _follow(log_file: Path) -> None:
    with log_file.open("r", errors="replace") as handle:
        handle.seek(0, 2)
        try:
            while True:
                line = handle.readline()
                if line:
                    console.print(line.rstrip("\n"), markup=False, highlight=False)
                else:
                    time.sleep(0.5)
        except KeyboardInterrupt:
            return


def main() -> None:
    app(prog_name="python -m services.stack")
