"""Errors raised by the stack; each message is meant to be shown to a human as-is."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class StackError(Exception):
    """Base class: the CLI prints the message and exits non-zero instead of a traceback."""


class PortInUseError(StackError):
    def __init__(self, component: str, port: int, owner: str | None) -> None:
        self.component = component
        self.port = port
        self.owner = owner
        who = f"by {owner}" if owner else "by a process the stack did not start"
        super().__init__(
            f"{component}: port 127.0.0.1:{port} is already in use {who}. "
            f"The stack does not stop processes it did not start: stop that process "
            f"(see `ss -ltnp 'sport = :{port}'`) and run `up` again."
        )


class CommandError(StackError):
    """An external command (apt-get, mvn, initdb, ...) failed; keeps the command and its output tail."""

    def __init__(self, what: str, command: Sequence[str], returncode: int, output_tail: str) -> None:
        self.command = list(command)
        self.returncode = returncode
        self.output_tail = output_tail
        super().__init__(
            f"{what} failed (exit code {returncode}).\n"
            f"command: {' '.join(command)}\n"
            f"last lines of its output:\n{output_tail or '(no output)'}"
        )


class InstallError(CommandError):
    pass


class HealthTimeoutError(StackError):
    def __init__(self, component: str, timeout: float, log_file: Path, reason: str, log_tail: str) -> None:
        self.component = component
        self.log_file = log_file
        super().__init__(
            f"{component} did not become healthy within {timeout:.4g}s ({reason}).\n"
            f"log file: {log_file}\n"
            f"last lines of the log:\n{log_tail or '(empty)'}"
        )


class ComponentDiedError(StackError):
    def __init__(self, component: str, exit_info: str, log_file: Path, log_tail: str) -> None:
        self.component = component
        self.log_file = log_file
        super().__init__(
            f"{component} exited during startup ({exit_info}).\n"
            f"log file: {log_file}\n"
            f"last lines of the log:\n{log_tail or '(empty)'}"
        )
