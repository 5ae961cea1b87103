"""The real services as subprocesses (``supportpulse ingest`` / ``supportpulse api``).

Each runs on a free port with a tenants file of the test's own and DEBUG logging; its stdout
and stderr go to files the test can read afterwards. Ingest gets Kafka topics of its own,
deleted when it stops. Stopping is SIGTERM (the services' graceful shutdown), then SIGKILL
after a grace period, always of the process started here, by its id.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from shared.kafka import delete_topics
from shared.settings import CommonSettings
from tests.fuzz.support import in_thread

BIN = Path(sys.executable).parent / "supportpulse"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningService:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    @classmethod
    @contextlib.contextmanager
    def ingest(
        cls, workdir: Path, *, tenants: dict[str, Any], env: dict[str, str] | None = None
    ) -> Iterator[RunningService]:
        run = uuid.uuid4().hex[:10]
        topics = {
            "SUPPORTPULSE_EVENTS_TOPIC": f"test.secproc.{run}.events",
            "SUPPORTPULSE_RAW_TOPIC": f"test.secproc.{run}.raw",
            "SUPPORTPULSE_DEADLETTER_TOPIC": f"test.secproc.{run}.dlq",
            "SUPPORTPULSE_EVENTS_PARTITIONS": "1",
        }
        try:
            with cls.start("ingest", workdir, tenants, {**topics, **(env or {})}, ready="/readyz") as service:
                yield service
        finally:
            bootstrap = (env or {}).get("SUPPORTPULSE_KAFKA_BOOTSTRAP", CommonSettings().kafka_bootstrap)
            # A loop of its own in a thread: asyncio.run here would reset the test session's loop.
            in_thread(
                lambda: delete_topics(bootstrap, [t for k, t in topics.items() if k.endswith("_TOPIC")])
            )

    @classmethod
    @contextlib.contextmanager
    def api(
        cls, workdir: Path, *, tenants: dict[str, Any], env: dict[str, str], ready: str = "/readyz"
    ) -> Iterator[RunningService]:
        with cls.start("api", workdir, tenants, env, ready=ready) as service:
            yield service

    @classmethod
    @contextlib.contextmanager
    def start(
        cls, name: str, workdir: Path, tenants: dict[str, Any], env: dict[str, str], *, ready: str
    ) -> Iterator[RunningService]:
        tenants_file = workdir / f"{name}-tenants.yaml"
        tenants_file.write_text(yaml.safe_dump(tenants))
        port = free_port()
        full_env = {
            **os.environ,
            "SUPPORTPULSE_TENANTS_FILE": str(tenants_file),
            "SUPPORTPULSE_LOG_LEVEL": "DEBUG",
            f"SUPPORTPULSE_{name.upper()}_PORT": str(port),
            f"SUPPORTPULSE_{name.upper()}_HOST": "127.0.0.1",
            **env,
        }
        stdout, stderr = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen([str(BIN), name], env=full_env, stdout=out, stderr=err, cwd=workdir)
        service = cls(name, port, process, stdout, stderr)
        try:
            service.wait_until(ready)
            yield service
        finally:
            service.stop()

    def wait_until(self, path: str, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        last = "not started"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.process.returncode}:\n{self.output()[-3000:]}")
            try:
                response = httpx.get(self.url + path, timeout=2.0)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready at {path}: {last}\n{self.output()[-3000:]}")

    def stop(self, grace: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
