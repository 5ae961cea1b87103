"""Port checks and pid bookkeeping; these need no running stack."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from services.stack import process
from services.stack.component import Component
from services.stack.errors import ComponentDiedError, HealthTimeoutError, PortInUseError
from services.stack.kafka import Kafka
from services.stack.paths import StackPaths


@pytest.fixture
def listening_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        yield sock
    finally:
        sock.close()


def test_port_taken_by_foreign_process_gives_clear_error(listening_socket: socket.socket) -> None:
    port = listening_socket.getsockname()[1]

    assert not process.port_is_free(port)
    with pytest.raises(PortInUseError) as excinfo:
        process.check_port_free("kafka", port)

    message = str(excinfo.value)
    assert excinfo.value.port == port
    assert f"127.0.0.1:{port} is already in use" in message
    assert message.startswith("kafka:")
    # The listener is this very test process, so the message must name it.
    assert f"pid {os.getpid()}" in message
    assert "does not stop processes it did not start" in message


def test_port_is_free_again_once_the_listener_closes(listening_socket: socket.socket) -> None:
    port = listening_socket.getsockname()[1]
    assert process.port_owner(port) == os.getpid()

    listening_socket.close()

    assert process.port_is_free(port)
    assert process.port_owner(port) is None
    process.check_port_free("kafka", port)  # must not raise


def test_stale_pid_file_pointing_at_unrelated_process_is_not_ours(tmp_path: Path) -> None:
    """After a reboot the pid in a pid file may belong to anything; it must not be mistaken for Kafka."""
    kafka = Kafka(StackPaths(root=tmp_path))
    kafka.paths.ensure()
    process.write_pid(kafka.pid_file, os.getpid())  # alive, but certainly not our broker

    assert kafka.running_pid() is None
    kafka.clear_stale_state()
    assert not kafka.pid_file.exists()


def test_pid_file_of_a_dead_process_is_not_running(tmp_path: Path) -> None:
    kafka = Kafka(StackPaths(root=tmp_path))
    kafka.paths.ensure()
    pid = process.spawn_detached(["true"], tmp_path / "true.log")
    deadline = time.monotonic() + 10
    while process.is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.write_pid(kafka.pid_file, pid)

    assert not process.is_alive(pid)
    assert kafka.running_pid() is None


def test_spawn_detached_runs_in_own_session_and_logs_to_file(tmp_path: Path) -> None:
    log_file = tmp_path / "child.log"
    code = "import os, sys, time; print(os.getsid(0)); sys.stdout.flush(); time.sleep(60)"
    pid = process.spawn_detached([sys.executable, "-c", code], log_file)
    try:
        deadline = time.monotonic() + 10
        while not log_file.read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert int(log_file.read_text().split()[0]) == pid  # session leader: survives our exit
        assert process.is_ours(pid, code)
        assert not process.is_ours(pid, "kafka.Kafka")
    finally:
        process.stop_pid(pid, "child", timeout=5)
    assert not process.is_alive(pid)


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    log_file = tmp_path / "stubborn.log"
    pid = process.spawn_detached([sys.executable, "-c", code], log_file)
    deadline = time.monotonic() + 10
    while "ready" not in log_file.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)

    started = time.monotonic()
    process.stop_pid(pid, "stubborn", first_signal=signal.SIGTERM, escalate=(signal.SIGKILL,), timeout=1.0)

    assert not process.is_alive(pid)
    assert 1.0 <= time.monotonic() - started < 10


class _Scripted(Component):
    """A stand-in component running a small Python script, to exercise the start/health/failure paths."""

    name: ClassVar[str] = "scripted"
    ports: ClassVar[tuple[int, ...]] = (0,)

    def __init__(self, paths: StackPaths, script: str) -> None:
        super().__init__(paths)
        self.script = script

    @property
    def marker(self) -> str:
        return self.script

    def missing_packages(self) -> list[str]:
        return []

    def launch(self) -> int:
        return process.spawn_detached([sys.executable, "-c", self.script], self.log_file)

    async def probe(self) -> None:
        raise ConnectionRefusedError("nothing listens here")


def test_component_that_dies_during_startup_names_its_log(tmp_path: Path) -> None:
    paths = StackPaths(root=tmp_path)
    paths.ensure()
    component = _Scripted(paths, "import sys; print('fatal: bad config'); sys.exit(3)")
    pid = component.launch()
    process.write_pid(component.pid_file, pid)

    with pytest.raises(ComponentDiedError) as excinfo:
        component.wait_healthy(timeout=20)

    message = str(excinfo.value)
    assert "scripted exited during startup (exit code 3)" in message
    assert f"log file: {component.log_file}" in message
    assert "fatal: bad config" in message
    assert not component.pid_file.exists()


def test_component_that_never_gets_healthy_times_out_naming_its_log(tmp_path: Path) -> None:
    paths = StackPaths(root=tmp_path)
    paths.ensure()
    component = _Scripted(paths, "import time; print('still warming up', flush=True); time.sleep(60)")
    pid = component.launch()
    process.write_pid(component.pid_file, pid)
    try:
        with pytest.raises(HealthTimeoutError) as excinfo:
            component.wait_healthy(timeout=1.5)
        assert component.running_pid() == pid  # a slow component is left running for inspection
    finally:
        assert component.stop()

    message = str(excinfo.value)
    assert "scripted did not become healthy within 1.5s" in message
    assert "ConnectionRefusedError: nothing listens here" in message
    assert f"log file: {component.log_file}" in message
    assert "still warming up" in message
    assert not process.is_alive(pid)
