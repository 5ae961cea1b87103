"""Detached processes, pid files, ownership checks and port checks.

A pid alone is not trusted: after a reboot (or a crash) the pid in a pid file may belong to an unrelated
process, so a pid counts as ours only when its command line contains a marker unique to our instance
(typically the absolute path of its config or data directory).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from services.stack.errors import PortInUseError

log = logging.getLogger("supportpulse.stack")

HOST = "127.0.0.1"


def cmdline(pid: int) -> list[str] | None:
    """Arguments of a live process; None when it is gone or a zombie (zombies have an empty cmdline)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:
        return None
    return raw.rstrip(b"\0").decode(errors="replace").split("\0")


def describe_pid(pid: int) -> str:
    args = cmdline(pid)
    if args is None:
        return f"pid {pid}"
    text = " ".join(" ".join(args).split())
    return f"pid {pid} ({text[:100]}{'...' if len(text) > 100 else ''})"


def is_ours(pid: int, marker: str) -> bool:
    """True when `marker` is one of the process' arguments (whole-argument match, so /x/data never
    matches a process using /x/data2)."""
    args = cmdline(pid)
    return args is not None and marker in args


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(pid_file)


def remove_pid(pid_file: Path) -> None:
    pid_file.unlink(missing_ok=True)


def reap(pid: int) -> int | None:
    """Collect the exit status if `pid` is our own child, so it does not linger as a zombie.

    Returns the raw wait status, or None when it is still running or not our child.
    """
    try:
        waited, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return status if waited == pid else None


def spawn_detached(args: Sequence[str], log_file: Path, env: Mapping[str, str] | None = None) -> int:
    """Start `args` in its own session with stdout/stderr appended to `log_file`; returns its pid.

    posix_spawn rather than subprocess.Popen: a Popen object that is garbage-collected while its child still
    runs emits a ResourceWarning, which the test suite (filterwarnings=error) turns into a failure, and the
    whole point here is that the child outlives us.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    out_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        file_actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out_fd, 1),
            (os.POSIX_SPAWN_DUP2, out_fd, 2),
        ]
        pid = os.posix_spawnp(
            args[0],
            list(args),
            dict(os.environ if env is None else env),
            file_actions=file_actions,
            setsid=True,
        )
    finally:
        os.close(out_fd)
    # posix_spawn returns while the child is still finishing execve(), when /proc/<pid>/cmdline is still
    # empty; wait for it so ownership checks (which read the cmdline) see the new process right away.
    deadline = time.monotonic() + 5
    while cmdline(pid) is None and not has_exited(pid) and time.monotonic() < deadline:
        time.sleep(0.005)
    return pid


def has_exited(pid: int) -> bool:
    """True once `pid` is gone or a zombie. Unlike an empty cmdline this is never true for a process
    that is still inside execve()."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The command name in field 2 may contain spaces and parentheses; the state follows the last ")".
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X", "x")


def is_alive(pid: int) -> bool:
    reap(pid)
    return not has_exited(pid)


def stop_pid(
    pid: int,
    name: str,
    *,
    first_signal: signal.Signals = signal.SIGTERM,
    escalate: Sequence[signal.Signals] = (signal.SIGKILL,),
    timeout: float = 30.0,
) -> None:
    """Send `first_signal`, wait up to `timeout`, then each of `escalate` in turn until it is gone."""
    for index, sig in enumerate([first_signal, *escalate]):
        if not is_alive(pid):
            return
        if index:
            log.warning("%s (pid %d) still running after %.0fs, sending %s", name, pid, timeout, sig.name)
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not is_alive(pid):
                return
            time.sleep(0.2)
    if is_alive(pid):
        log.error("%s (pid %d) survived %s", name, pid, "/".join(s.name for s in escalate))


def tail(path: Path, lines: int = 30) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


# --- ports -------------------------------------------------------------------------------------------------


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on host:port.

    SO_REUSEADDR so that lingering TIME_WAIT connections from a previous run do not count as "taken"; on
    Linux the bind still fails if any socket is listening on (or exclusively bound to) that port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 10:
                continue
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = TCP_LISTEN
                inodes.add(inode)
    return inodes


def port_owner(port: int) -> int | None:
    """Pid of the process listening on `port` (any address), or None if unknown (e.g. not permitted)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in targets:
                        return int(proc.name)
    return None


def check_port_free(component: str, port: int, host: str = HOST) -> None:
    """Raise PortInUseError (naming the listener when we can find it) if host:port is taken."""
    if port_is_free(port, host):
        return
    owner = port_owner(port)
    raise PortInUseError(component, port, describe_pid(owner) if owner is not None else None)
