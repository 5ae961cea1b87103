"""A Kafka broker and a Postgres of our own, for faults the shared stack must never see.

Restarting a broker or stopping Postgres would break every other engineer's work on the
shared stack (127.0.0.1:19092 / 15432), so the fault tests start their own with the very
components ``supportpulse stack`` runs (``services/stack``), on free ports, in a temporary
directory removed afterwards. Nothing is downloaded: the Kafka jars that ``stack up``
fetched are linked in, and Postgres comes from the installed Debian binaries.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import time
from pathlib import Path

from services.stack.kafka import Kafka
from services.stack.paths import StackPaths
from services.stack.postgres import Postgres


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on right now (kept bound together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


class PrivateStack:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="sp-chaos-"))
        # Postgres runs as the `postgres` OS user: it must be able to reach its data directory.
        self.root.chmod(0o755)
        self.paths = StackPaths(root=self.root)
        kafka_port, controller_port, pg_port = free_ports(3)
        self.kafka = Kafka(self.paths, port=kafka_port, controller_port=controller_port)
        self.postgres = Postgres(self.paths, port=pg_port)

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap

    @property
    def database_url(self) -> str:
        return self.postgres.database_url

    def _link_jars(self) -> None:
        shared = Kafka(StackPaths.from_env())
        if not shared.libs_stamp.exists():
            raise RuntimeError(
                f"no Kafka jars in {shared.libs}: run `supportpulse stack up` once (it fetches them)"
            )
        self.kafka.home.mkdir(parents=True, exist_ok=True)
        if not self.kafka.libs.exists():
            self.kafka.libs.symlink_to(shared.libs, target_is_directory=True)
        shutil.copyfile(shared.libs_stamp, self.kafka.libs_stamp)

    def start(self) -> None:
        """Start both (Kafka's JVM warms up while Postgres starts) and wait until they serve."""
        self.paths.ensure()
        self._link_jars()
        self.kafka.start()
        self.postgres.start()
        self.postgres.wait_healthy()
        self.kafka.wait_healthy()

    def stop(self) -> None:
        try:
            self.kafka.stop()
        finally:
            self.postgres.stop()

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # Faults; blocking, so call them with asyncio.to_thread from a running event loop. -------

    def stop_kafka(self) -> float:
        """A clean broker stop; returns the seconds it took."""
        started = time.monotonic()
        self.kafka.stop()
        return time.monotonic() - started

    def start_kafka(self) -> float:
        started = time.monotonic()
        self.kafka.start()
        self.kafka.wait_healthy()
        return time.monotonic() - started

    def stop_postgres(self) -> float:
        started = time.monotonic()
        self.postgres.stop()
        return time.monotonic() - started

    def start_postgres(self) -> float:
        started = time.monotonic()
        self.postgres.start()
        self.postgres.wait_healthy()
        return time.monotonic() - started

    def postgres_log(self) -> str:
        try:
            return self.postgres.log_file.read_text(errors="replace")
        except OSError:
            return ""
