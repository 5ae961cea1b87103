"""Apache Kafka 4.1.1 as a single KRaft node (broker + controller) running on the machine's Java 17."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import re
import shutil
from pathlib import Path
from typing import ClassVar

from aiokafka.admin import AIOKafkaAdminClient

from services.stack import process
from services.stack.commands import run
from services.stack.component import Component
from services.stack.errors import InstallError, StackError
from services.stack.paths import DEPLOY_DIR, StackPaths

log = logging.getLogger("supportpulse.stack")

KAFKA_VERSION = "4.1.1"
PORT = 19092
BOOTSTRAP = f"127.0.0.1:{PORT}"
CONTROLLER_PORT = 19093
POM = DEPLOY_DIR / "kafka" / "pom.xml"
JAVA_PACKAGE = "openjdk-17-jre-headless"
JVM_HEAP = ["-Xms256m", "-Xmx1g"]

_probing: contextvars.ContextVar[bool] = contextvars.ContextVar("supportpulse_stack_probing", default=False)


class _DuringProbe(logging.Filter):
    """While we poll a broker that is still starting, aiokafka logs every refused connection at ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _probing.get()


def _silence_aiokafka_during_probes() -> None:
    # Logger filters do not apply to child loggers, so attach to every aiokafka logger that exists by now.
    names = ["aiokafka", *(n for n in logging.root.manager.loggerDict if n.startswith("aiokafka."))]
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DuringProbe) for f in logger.filters):
            logger.addFilter(_DuringProbe())


def java_major_version(java: str) -> int | None:
    try:
        output = run([java, "-version"], "java -version", timeout=60)
    except StackError:
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if match is None:
        return None
    major = int(match.group(1))
    # Java 8 and older report "1.8.0_..."
    return int(match.group(2) or 0) if major == 1 else major


def find_java() -> str | None:
    """A Java 17+ binary: `java` on PATH, else Debian's openjdk-17 location."""
    candidates = [
        shutil.which("java"),
        *map(str, sorted(Path("/usr/lib/jvm").glob("java-17-openjdk-*/bin/java"))),
    ]
    for candidate in candidates:
        if candidate and (java_major_version(candidate) or 0) >= 17:
            return candidate
    return None


class Kafka(Component):
    name: ClassVar[str] = "kafka"
    ports = (PORT, CONTROLLER_PORT)
    # JVM start, log recovery after an unclean stop and the first metadata load are slow on 2 cores.
    startup_timeout: ClassVar[float] = 180.0
    # A clean shutdown avoids log recovery on the next start; give it time before SIGKILL.
    stop_timeout: ClassVar[float] = 60.0

    def __init__(
        self, paths: StackPaths, *, port: int = PORT, controller_port: int = CONTROLLER_PORT
    ) -> None:
        super().__init__(paths)
        self.ports = (port, controller_port)

    @property
    def bootstrap(self) -> str:
        return f"{process.HOST}:{self.ports[0]}"

    @property
    def controller_port(self) -> int:
        return self.ports[1]

    @property
    def home(self) -> Path:
        return self.paths.component_dir("kafka")

    @property
    def libs(self) -> Path:
        return self.home / "libs"

    @property
    def libs_stamp(self) -> Path:
        return self.home / "libs.stamp"

    @property
    def data(self) -> Path:
        return self.paths.data_dir("kafka")

    @property
    def server_properties(self) -> Path:
        return self.home / "server.properties"

    @property
    def log4j_config(self) -> Path:
        return self.home / "log4j2.properties"

    @property
    def marker(self) -> str:
        return str(self.server_properties)

    # --- install ------------------------------------------------------------------------------------------

    def _pom_digest(self) -> str:
        return hashlib.sha256(POM.read_bytes()).hexdigest()

    def _libs_complete(self) -> bool:
        if not (self.libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
            return False
        return self.libs_stamp.exists() and self.libs_stamp.read_text().strip() == self._pom_digest()

    def missing_packages(self) -> list[str]:
        packages = []
        if find_java() is None:
            packages.append(JAVA_PACKAGE)
        if not self._libs_complete() and shutil.which("mvn") is None:
            packages.append("maven")
        return packages

    def fetch_jars(self) -> None:
        if self._libs_complete():
            return
        if self.libs_stamp.exists():
            # The pom changed since the last fetch: drop old jars so two versions never share the classpath.
            for jar in self.libs.glob("*.jar"):
                jar.unlink()
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError("mvn is not installed (apt-get install -y maven)")
        log.info("fetching Kafka %s jars from Maven Central with mvn...", KAFKA_VERSION)
        args = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM), "dependency:copy-dependencies"]
        if not self.paths.is_default_root:
            args.append(f"-Dkafka.libs={self.libs}")
        run(args, "fetching Kafka jars with mvn", timeout=1800, error=InstallError)
        if not (self.libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
            raise StackError(f"mvn finished but {self.libs} has no kafka_2.13-{KAFKA_VERSION}.jar")
        self.libs_stamp.write_text(self._pom_digest() + "\n")

    # --- configure ----------------------------------------------------------------------------------------

    def render_server_properties(self) -> str:
        host = process.HOST
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "listeners": f"PLAINTEXT://{self.bootstrap},CONTROLLER://{host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.bootstrap}",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data),
            "num.partitions": "6",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        body = "\n".join(f"{key}={value}" for key, value in lines.items())
        return f"# Generated by services/stack/kafka.py on every `up`; edits are overwritten.\n{body}\n"

    def render_log4j_config(self) -> str:
        return (
            "# Generated by services/stack/kafka.py: all broker logging goes to one file.\n"
            "status = warn\n"
            # Otherwise log4j stops at the first shutdown hook and Kafka's own shutdown messages are lost.
            "shutdownHook = disable\n"
            "name = supportpulse-kafka\n"
            "appender.file.type = File\n"
            "appender.file.name = file\n"
            f"appender.file.fileName = {self.log_file}\n"
            "appender.file.append = true\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.file.ref = file\n"
            # Per-request and per-partition state logs drown everything else at INFO.
            "logger.request.name = kafka.request.logger\n"
            "logger.request.level = WARN\n"
            "logger.statechange.name = state.change.logger\n"
            "logger.statechange.level = WARN\n"
        )

    def java_args(self, java: str, *args: str) -> list[str]:
        return [
            java,
            *JVM_HEAP,
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j_config}",
            # Java expands the classpath wildcard itself; no shell is involved.
            "-cp",
            f"{self.libs}/*",
            *args,
        ]

    def _java(self) -> str:
        java = find_java()
        if java is None:
            raise StackError(f"no Java 17+ found (apt-get install -y {JAVA_PACKAGE})")
        return java

    def format_storage(self) -> None:
        if (self.data / "meta.properties").exists():
            return
        java = self._java()
        self.data.mkdir(parents=True, exist_ok=True)
        output = run(
            self.java_args(java, "kafka.tools.StorageTool", "random-uuid"), "kafka-storage random-uuid"
        )
        cluster_id = output.strip().splitlines()[-1].strip()
        log.info("formatting Kafka storage in %s (cluster id %s)...", self.data, cluster_id)
        run(
            self.java_args(
                java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.server_properties)
            ),
            "kafka-storage format",
        )

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.fetch_jars()
        self.server_properties.write_text(self.render_server_properties())
        self.log4j_config.write_text(self.render_log4j_config())
        self.format_storage()

    # --- run ----------------------------------------------------------------------------------------------

    def launch(self) -> int:
        args = self.java_args(self._java(), "kafka.Kafka", str(self.server_properties))
        return process.spawn_detached(args, self.log_file)

    async def probe(self) -> None:
        _silence_aiokafka_during_probes()
        token = _probing.set(True)
        try:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
            try:
                await admin.start()
                await admin.list_topics()
            finally:
                with contextlib.suppress(Exception):
                    await admin.close()
        finally:
            _probing.reset(token)
