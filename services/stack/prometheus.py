"""Prometheus and Alertmanager from Debian's packages, as our own instances on 19090 / 19094.

The packages' own daemons (if their postinst managed to start them) listen on 9090 / 9093; ours use other
ports, data directories and configs, so both can coexist and we never touch theirs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

import httpx

from services.stack import process
from services.stack.commands import run
from services.stack.component import Component
from services.stack.errors import StackError
from services.stack.paths import DEPLOY_DIR

PROMETHEUS_PORT = 19090
ALERTMANAGER_PORT = 19094
PROMETHEUS_URL = f"http://127.0.0.1:{PROMETHEUS_PORT}"
ALERTMANAGER_URL = f"http://127.0.0.1:{ALERTMANAGER_PORT}"
PROMETHEUS_CONFIG = DEPLOY_DIR / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = DEPLOY_DIR / "alertmanager" / "alertmanager.yml"


def _binary(*names: str) -> str | None:
    # /usr/bin explicitly: a minimal PATH (cron, some CI runners) may leave it out.
    for name in names:
        found = shutil.which(name) or shutil.which(name, path="/usr/bin")
        if found:
            return found
    return None


def prometheus_binary() -> str | None:
    return _binary("prometheus")


def promtool_binary() -> str | None:
    return _binary("promtool")


def alertmanager_binary() -> str | None:
    # Debian renames the upstream `alertmanager` binary.
    return _binary("prometheus-alertmanager", "alertmanager")


def amtool_binary() -> str | None:
    return _binary("amtool")


def check_prometheus_config(config: Path = PROMETHEUS_CONFIG) -> str:
    """`promtool check config` (also checks the rule files it names); returns promtool's output."""
    promtool = promtool_binary()
    if promtool is None:
        raise StackError("promtool not found (apt-get install -y prometheus)")
    return run([promtool, "check", "config", str(config)], f"promtool check config {config}", timeout=60)


def check_alertmanager_config(config: Path = ALERTMANAGER_CONFIG) -> str:
    amtool = amtool_binary()
    if amtool is None:
        raise StackError("amtool not found (apt-get install -y prometheus-alertmanager)")
    return run([amtool, "check-config", str(config)], f"amtool check-config {config}", timeout=60)


async def _ready(url: str) -> None:
    # trust_env=False: an HTTP(S)_PROXY in the environment must not intercept loopback health checks.
    async with httpx.AsyncClient(trust_env=False, timeout=3.0) as client:
        response = await client.get(f"{url}/-/ready")
        if response.status_code != httpx.codes.OK:
            raise StackError(f"GET {url}/-/ready returned {response.status_code}")


class Prometheus(Component):
    name: ClassVar[str] = "prometheus"
    ports = (PROMETHEUS_PORT,)
    startup_timeout: ClassVar[float] = 90.0

    @property
    def data(self) -> Path:
        return self.paths.data_dir("prometheus")

    @property
    def marker(self) -> str:
        return f"--storage.tsdb.path={self.data}"

    def missing_packages(self) -> list[str]:
        return [] if prometheus_binary() and promtool_binary() else ["prometheus"]

    def prepare(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        check_prometheus_config()

    def launch(self) -> int:
        binary = prometheus_binary()
        if binary is None:
            raise StackError("prometheus not found (apt-get install -y prometheus)")
        args = [
            binary,
            f"--config.file={PROMETHEUS_CONFIG}",
            f"--storage.tsdb.path={self.data}",
            f"--web.listen-address={process.HOST}:{PROMETHEUS_PORT}",
            "--web.enable-lifecycle",
        ]
        return process.spawn_detached(args, self.log_file)

    async def probe(self) -> None:
        await _ready(PROMETHEUS_URL)


class Alertmanager(Component):
    name: ClassVar[str] = "alertmanager"
    ports = (ALERTMANAGER_PORT,)
    startup_timeout: ClassVar[float] = 60.0

    @property
    def data(self) -> Path:
        return self.paths.data_dir("alertmanager")

    @property
    def marker(self) -> str:
        return f"--storage.path={self.data}"

    def missing_packages(self) -> list[str]:
        return [] if alertmanager_binary() and amtool_binary() else ["prometheus-alertmanager"]

    def prepare(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        check_alertmanager_config()

    def launch(self) -> int:
        binary = alertmanager_binary()
        if binary is None:
            raise StackError("alertmanager not found (apt-get install -y prometheus-alertmanager)")
        args = [
            binary,
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"--storage.path={self.data}",
            f"--web.listen-address={process.HOST}:{ALERTMANAGER_PORT}",
            # An empty address disables the gossip cluster (it would otherwise bind 0.0.0.0:9094).
            "--cluster.listen-address=",
        ]
        return process.spawn_detached(args, self.log_file)

    async def probe(self) -> None:
        await _ready(ALERTMANAGER_URL)
