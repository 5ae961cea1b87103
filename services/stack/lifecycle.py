"""up / down / status / reset for the whole stack, usable from Python and from the CLI."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shlex
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass

from services.stack.apt import apt_install
from services.stack.component import Component, ComponentStatus
from services.stack.kafka import BOOTSTRAP, Kafka
from services.stack.paths import StackPaths
from services.stack.postgres import (
    DATABASE_URL,
    DATABASE_URL_ENV,
    ExternalPostgres,
    Postgres,
    external_database_url,
)
from services.stack.prometheus import ALERTMANAGER_URL, PROMETHEUS_URL, Alertmanager, Prometheus

log = logging.getLogger("supportpulse.stack")

LOCK_TIMEOUT = 1800.0


@dataclass(frozen=True)
class StackInfo:
    """Where the running stack can be reached (None: that component was not requested)."""

    kafka_bootstrap: str
    database_url: str
    prometheus_url: str | None
    alertmanager_url: str | None


def _components(
    paths: StackPaths, *, with_prometheus: bool = True, with_postgres: bool = True
) -> list[Component]:
    # Kafka first: it takes longest to become healthy, so it warms up while the others start.
    components: list[Component] = [Kafka(paths)]
    if with_postgres:
        components.append(Postgres(paths))
    if with_prometheus:
        components += [Prometheus(paths), Alertmanager(paths)]
    return components


@contextlib.contextmanager
def _stack_lock(paths: StackPaths) -> Iterator[None]:
    """Serialise up/down/reset: two test sessions calling `up()` at once must not both start a Kafka."""
    paths.ensure()
    with paths.lock_file.open("w") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT
        waited = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    log.info("another stack command holds %s, waiting for it...", paths.lock_file)
                    waited = True
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"could not lock {paths.lock_file} within {LOCK_TIMEOUT:.0f}s"
                    ) from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_env_file(paths: StackPaths, info: StackInfo) -> None:
    values = {"SUPPORTPULSE_KAFKA_BOOTSTRAP": info.kafka_bootstrap, DATABASE_URL_ENV: info.database_url}
    if info.prometheus_url:
        values["SUPPORTPULSE_PROMETHEUS_URL"] = info.prometheus_url
    if info.alertmanager_url:
        values["SUPPORTPULSE_ALERTMANAGER_URL"] = info.alertmanager_url
    lines = [f"export {key}={shlex.quote(value)}" for key, value in values.items()]
    header = "# Written by `python -m services.stack up`; load with: . .stack/env\n"
    paths.env_file.write_text(header + "\n".join(lines) + "\n")


def _default_console_logging() -> None:
    """Show progress when called as a plain function (`python -c 'from services.stack import up; up()'`).

    Only when nobody configured logging: the CLI installs a rich handler, and an app or pytest has its own.
    """
    if not log.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("stack: %(message)s"))
        log.addHandler(handler)
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)


def up(with_prometheus: bool = True, timeout: float | None = None) -> StackInfo:
    """Install what is missing, start every component that is not running, wait until all are healthy.

    Idempotent: components that already run are left alone. Raises StackError (with the log file to look
    at) when something cannot be installed, a port is taken by a foreign process, or health times out.
    """
    _default_console_logging()
    paths = StackPaths.from_env()
    external_url = external_database_url()
    components = _components(paths, with_prometheus=with_prometheus, with_postgres=external_url is None)
    started = time.monotonic()
    with _stack_lock(paths):
        packages = [pkg for component in components for pkg in component.missing_packages()]
        apt_install(list(dict.fromkeys(packages)))
        if external_url is not None:
            log.info("postgres: using external database from %s", DATABASE_URL_ENV)
        results = {component.name: component.start() for component in components}
        for component in components:
            component.wait_healthy(timeout)
        info = StackInfo(
            kafka_bootstrap=BOOTSTRAP,
            database_url=external_url or DATABASE_URL,
            prometheus_url=PROMETHEUS_URL if with_prometheus else None,
            alertmanager_url=ALERTMANAGER_URL if with_prometheus else None,
        )
        write_env_file(paths, info)
    if all(result == "already running" for result in results.values()):
        log.info("stack already running (nothing to do)")
    else:
        log.info("stack up in %.1fs; environment in %s", time.monotonic() - started, paths.env_file)
    return info


def down() -> list[str]:
    """Stop every component the stack started (data is kept); returns the names that were running."""
    _default_console_logging()
    paths = StackPaths.from_env()
    stopped: list[str] = []
    with _stack_lock(paths):
        # Reverse start order: consumers of a service go down before it. Our own Postgres is stopped even
        # when an external database is configured now: it is still ours if it runs.
        for component in reversed(_components(paths)):
            if component.stop():
                stopped.append(component.name)
    return stopped


def status() -> list[ComponentStatus]:
    """Current state of each component (running/stopped/external), its pid, address and health."""
    paths = StackPaths.from_env()
    external_url = external_database_url()
    statuses = [component.status() for component in _components(paths, with_postgres=external_url is None)]
    if external_url is not None:
        statuses.insert(1, ExternalPostgres(external_url).status())
    return statuses


def reset() -> list[str]:
    """`down`, then delete every data directory (downloaded jars and installed packages stay)."""
    stopped = down()
    paths = StackPaths.from_env()
    with _stack_lock(paths):
        for component in _components(paths):
            for directory in component.data_dirs:
                if directory.exists() and directory.is_relative_to(paths.root):
                    log.info("deleting %s", directory)
                    shutil.rmtree(directory)
        paths.env_file.unlink(missing_ok=True)
    return stopped


def components(with_prometheus: bool = True) -> list[Component]:
    """The managed components for the current stack directory (for `logs` and tests)."""
    return _components(StackPaths.from_env(), with_prometheus=with_prometheus)
