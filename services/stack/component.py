"""What every stack component has in common: a pid, ports, a log, a health probe, start/stop/status."""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import logging
import os
import signal
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from services.stack import process
from services.stack.errors import ComponentDiedError, HealthTimeoutError
from services.stack.paths import StackPaths

log = logging.getLogger("supportpulse.stack")

T = TypeVar("T")

State = Literal["running", "stopped", "external", "disabled"]


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    state: State
    pid: int | None
    address: str
    healthy: bool
    detail: str
    log_file: Path | None


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion from sync code, even when called from inside a running event loop
    (e.g. an async test calling `up()`): asyncio.run() refuses nesting, so use a helper thread then."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


class Component(abc.ABC):
    name: ClassVar[str]
    # The class sets the default ports; an instance may be given others (Kafka and Postgres take
    # them as constructor arguments, so a private broker can run beside the shared one).
    ports: tuple[int, ...]
    startup_timeout: ClassVar[float] = 60.0
    stop_timeout: ClassVar[float] = 30.0
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    stop_escalation: ClassVar[tuple[signal.Signals, ...]] = (signal.SIGKILL,)

    def __init__(self, paths: StackPaths) -> None:
        self.paths = paths

    # --- identity -----------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def address(self) -> str:
        return f"{process.HOST}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.paths.log_file(self.name)

    @property
    def pid_file(self) -> Path:
        return self.paths.pid_file(self.name)

    @property
    def data_dirs(self) -> Sequence[Path]:
        """Directories `reset` deletes."""
        return [self.paths.data_dir(self.name)]

    @property
    @abc.abstractmethod
    def marker(self) -> str:
        """An argument that appears in the command line of our instance and of no other process."""

    # --- hooks for subclasses -----------------------------------------------------------------------------

    @abc.abstractmethod
    def missing_packages(self) -> list[str]:
        """Debian packages that must be installed before this component can start."""

    def prepare(self) -> None:  # noqa: B027 - optional hook, deliberately a no-op by default
        """Fetch, configure and initialise whatever the first start needs; must be idempotent."""

    @abc.abstractmethod
    def launch(self) -> int:
        """Start the process (ports are known to be free) and return its pid."""

    def after_start(self) -> None:  # noqa: B027 - optional hook, deliberately a no-op by default
        """Runs on every `up` once the process is running (bootstrap roles, ...); must be idempotent."""

    @abc.abstractmethod
    async def probe(self) -> None:
        """Return when the component serves requests; raise (any exception) while it does not."""

    # --- shared behaviour ---------------------------------------------------------------------------------

    def running_pid(self) -> int | None:
        """Pid of our running instance, whether or not its pid file survived."""
        pid = process.read_pid(self.pid_file)
        if pid is not None and process.is_ours(pid, self.marker):
            return pid
        # The pid file may have been deleted by hand while the process kept running: adopt it via its port.
        owner = process.port_owner(self.port)
        if owner is not None and process.is_ours(owner, self.marker):
            process.write_pid(self.pid_file, owner)
            return owner
        return None

    def clear_stale_state(self) -> None:
        """Forget pid files left by a crash or reboot (only called when `running_pid()` is None)."""
        if self.pid_file.exists():
            log.info("%s: removing stale pid file %s", self.name, self.pid_file)
            process.remove_pid(self.pid_file)

    def start(self) -> str:
        """Start unless already running; returns "already running" or "started"."""
        pid = self.running_pid()
        if pid is not None:
            log.info("%s already running (pid %d)", self.name, pid)
            self.after_start()
            return "already running"
        self.clear_stale_state()
        for port in self.ports:
            process.check_port_free(self.name, port)
        self.prepare()
        log.info("starting %s on %s (log: %s)", self.name, self.address, self.log_file)
        pid = self.launch()
        process.write_pid(self.pid_file, pid)
        self.after_start()
        return "started"

    def is_healthy(self, timeout: float = 5.0) -> tuple[bool, str]:
        try:
            run_coroutine(asyncio.wait_for(self.probe(), timeout))
        except Exception as exc:  # any probe failure just means "not healthy (yet)"
            return False, _describe_exception(exc)
        return True, ""

    def wait_healthy(self, timeout: float | None = None) -> None:
        limit = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        pid = process.read_pid(self.pid_file)
        reason = "not probed yet"
        while True:
            status = process.reap(pid) if pid is not None else None
            if pid is not None and (status is not None or process.has_exited(pid)):
                exit_info = _describe_wait_status(status) if status is not None else "process is gone"
                process.remove_pid(self.pid_file)
                raise ComponentDiedError(self.name, exit_info, self.log_file, process.tail(self.log_file))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HealthTimeoutError(self.name, limit, self.log_file, reason, process.tail(self.log_file))
            healthy, reason = self.is_healthy(timeout=min(5.0, max(remaining, 0.5)))
            if healthy:
                log.info("%s is healthy on %s", self.name, self.address)
                return
            time.sleep(min(0.5, max(deadline - time.monotonic(), 0)))

    def stop(self) -> bool:
        """Stop our instance (keeps data); returns False when it was not running."""
        pid = self.running_pid()
        if pid is None:
            self.clear_stale_state()
            return False
        log.info("stopping %s (pid %d)...", self.name, pid)
        process.stop_pid(
            pid,
            self.name,
            first_signal=self.stop_signal,
            escalate=self.stop_escalation,
            timeout=self.stop_timeout,
        )
        process.remove_pid(self.pid_file)
        return True

    def status(self) -> ComponentStatus:
        pid = self.running_pid()
        if pid is None:
            detail = ""
            owner = process.port_owner(self.port)
            if owner is not None:
                detail = f"port taken by {process.describe_pid(owner)}"
            elif not process.port_is_free(self.port):
                detail = f"port {self.port} taken by another process"
            return ComponentStatus(self.name, "stopped", None, self.address, False, detail, self.log_file)
        healthy, reason = self.is_healthy()
        return ComponentStatus(self.name, "running", pid, self.address, healthy, reason, self.log_file)


def _describe_exception(exc: BaseException) -> str:
    name, text = type(exc).__name__, str(exc).strip()
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"


def _describe_wait_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    if os.WIFEXITED(status):
        return f"exit code {os.WEXITSTATUS(status)}"
    return f"wait status {status}"
