"""PostgreSQL from Debian's packages, run as an unprivileged user on 127.0.0.1:15432 with its own data dir."""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import pwd
import shlex
import shutil
import signal
import time
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import asyncpg

from services.stack import process
from services.stack.commands import as_user, run
from services.stack.component import Component, ComponentStatus, run_coroutine
from services.stack.errors import CommandError, ComponentDiedError, StackError
from services.stack.paths import StackPaths
from shared.db import driver_dsn

log = logging.getLogger("supportpulse.stack")

PORT = 15432
APP_USER = "supportpulse"
APP_PASSWORD = "supportpulse"  # noqa: S105 - fixed credential of a local test database
APP_DATABASE = "supportpulse"
SUPERUSER = "postgres"


def app_database_url(port: int) -> str:
    return f"postgresql+asyncpg://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{port}/{APP_DATABASE}"


DATABASE_URL = app_database_url(PORT)
DATABASE_URL_ENV = "SUPPORTPULSE_DATABASE_URL"
PG_ROOT = Path("/usr/lib/postgresql")
# Used when the Debian `postgres` user does not exist (e.g. binaries installed some other way).
FALLBACK_OS_USER = "supportpulse"
# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


def external_database_url() -> str | None:
    """The URL from the environment when it points somewhere other than the Postgres we manage.

    `.stack/env` exports our own URL; a shell that sourced it must not turn our Postgres into "external".
    """
    url = os.environ.get(DATABASE_URL_ENV)
    if not url:
        return None
    parts = urlsplit(url)
    if parts.hostname in ("127.0.0.1", "localhost") and parts.port == PORT:
        return None
    return url


def find_bin_dir(version: str | None = None) -> Path | None:
    """Newest /usr/lib/postgresql/<major>/bin with a server in it (or exactly `version` when given)."""
    found: list[tuple[int, Path]] = []
    for bin_dir in PG_ROOT.glob("*/bin"):
        major = bin_dir.parent.name
        if not major.isdigit() or (version is not None and major != version):
            continue
        if all((bin_dir / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            found.append((int(major), bin_dir))
    return max(found)[1] if found else None


class Postgres(Component):
    name: ClassVar[str] = "postgres"
    ports = (PORT,)
    startup_timeout: ClassVar[float] = 90.0
    # SIGTERM is Postgres' "smart" shutdown, which waits for every client to disconnect (the app keeps
    # pools open); SIGINT is "fast": roll back open transactions and checkpoint. SIGQUIT is "immediate".
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT
    stop_escalation: ClassVar[tuple[signal.Signals, ...]] = (signal.SIGQUIT, signal.SIGKILL)
    stop_timeout: ClassVar[float] = 60.0

    def __init__(self, paths: StackPaths, *, port: int = PORT) -> None:
        super().__init__(paths)
        self.ports = (port,)

    @property
    def database_url(self) -> str:
        """The app's database on this server (SQLAlchemy URL)."""
        return app_database_url(self.port)

    @property
    def home(self) -> Path:
        return self.paths.component_dir("postgres")

    @property
    def data(self) -> Path:
        return self.paths.data_dir("postgres")

    @property
    def socket_dir(self) -> Path:
        return self.home / "run"

    @property
    def data_dirs(self) -> list[Path]:
        return [self.data, self.socket_dir]

    @property
    def marker(self) -> str:
        return str(self.data)

    @property
    def os_user(self) -> str | None:
        """The OS user the server runs as; None when we are not root (then it runs as us)."""
        if os.geteuid() != 0:
            return None
        for user in (SUPERUSER, FALLBACK_OS_USER):
            try:
                pwd.getpwnam(user)
            except KeyError:
                continue
            return user
        return FALLBACK_OS_USER

    # --- install ------------------------------------------------------------------------------------------

    def missing_packages(self) -> list[str]:
        return [] if find_bin_dir() is not None else ["postgresql"]

    def bin_dir(self) -> Path:
        initialised = self.data / "PG_VERSION"
        if initialised.exists():
            version = initialised.read_text().strip()
            bin_dir = find_bin_dir(version)
            if bin_dir is None:
                raise StackError(
                    f"{self.data} was initialised by PostgreSQL {version}, whose binaries are not installed "
                    f"under {PG_ROOT}/{version}/bin (apt-get install -y postgresql-{version}), or run "
                    f"`reset` to start over with the installed version"
                )
            return bin_dir
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise StackError(f"no PostgreSQL server under {PG_ROOT}/*/bin (apt-get install -y postgresql)")
        return bin_dir

    def _ensure_os_user(self) -> str | None:
        user = self.os_user
        if user is None:
            return None
        try:
            pwd.getpwnam(user)
        except KeyError:
            log.info("creating system user %s to run PostgreSQL (it refuses to run as root)...", user)
            run(
                [
                    "useradd",
                    "--system",
                    "--user-group",
                    "--home-dir",
                    "/nonexistent",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    user,
                ],
                f"useradd {user}",
            )
        return user

    # --- configure ----------------------------------------------------------------------------------------

    def _chown(self, path: Path, user: str | None) -> None:
        if user is not None:
            shutil.chown(path, user, user if _group_exists(user) else None)

    def _check_access(self, user: str | None) -> None:
        if user is None:
            return
        try:
            run(as_user(user, ["test", "-w", str(self.data)]), "access check")
        except CommandError as exc:
            raise StackError(
                f"the OS user {user!r} that runs PostgreSQL cannot write {self.data}: every parent directory "
                f"must be searchable by it (chmod o+x), or set SUPPORTPULSE_STACK_DIR elsewhere"
            ) from exc

    def render_config(self) -> str:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": "200",
            "shared_buffers": "256MB",
            # Kept on deliberately: the test suite checks durability across restarts.
            "fsync": "on",
            "synchronous_commit": "on",
            "password_encryption": "'scram-sha-256'",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
        }
        body = "\n".join(f"{key} = {value}" for key, value in settings.items())
        return f"# Generated by services/stack/postgres.py on every `up`; edits are overwritten.\n{body}\n"

    def prepare(self) -> None:
        user = self._ensure_os_user()
        bin_dir = self.bin_dir()
        socket_path = self.socket_dir / f".s.PGSQL.{self.port}"
        if len(str(socket_path)) > MAX_SOCKET_PATH:
            raise StackError(
                f"the Postgres socket path {socket_path} is longer than {MAX_SOCKET_PATH} bytes; "
                f"set SUPPORTPULSE_STACK_DIR to a shorter directory"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        for directory in (self.data, self.socket_dir):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o700)
            self._chown(directory, user)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.touch()
        self._chown(self.log_file, user)
        self._check_access(user)

        if not (self.data / "PG_VERSION").exists():
            if any(self.data.iterdir()):
                # An initdb that was interrupted leaves a partial directory it then refuses to reuse.
                log.info("removing incomplete Postgres data directory %s", self.data)
                for child in self.data.iterdir():
                    if child.is_dir():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
            log.info("initialising Postgres data directory %s with %s...", self.data, bin_dir / "initdb")
            run(
                as_user(
                    user,
                    [
                        str(bin_dir / "initdb"),
                        "-D",
                        str(self.data),
                        "-U",
                        SUPERUSER,
                        "--encoding=UTF8",
                        "--no-locale",
                        "--auth-local=trust",
                        "--auth-host=scram-sha-256",
                    ],
                ),
                "initdb",
            )
        conf = self.data / "postgresql.conf"
        include = "include_if_exists = 'supportpulse.conf'"
        if include not in conf.read_text():
            with conf.open("a") as handle:
                handle.write(f"\n# SupportPulse local stack settings\n{include}\n")
        extra = self.data / "supportpulse.conf"
        extra.write_text(self.render_config())
        self._chown(extra, user)

    def clear_stale_state(self) -> None:
        super().clear_stale_state()
        # After a crash or reboot the lock files may name a pid that now belongs to an unrelated process;
        # Postgres would then refuse to start ("lock file already exists"), so drop locks that are not ours.
        for lock in (self.data / "postmaster.pid", self.socket_dir / f".s.PGSQL.{self.port}.lock"):
            pid = process.read_pid(lock)
            if lock.exists() and (pid is None or not process.is_ours(pid, self.marker)):
                log.info("%s: removing stale lock file %s", self.name, lock)
                lock.unlink(missing_ok=True)
        (self.socket_dir / f".s.PGSQL.{self.port}").unlink(missing_ok=True)

    # --- run ----------------------------------------------------------------------------------------------

    def running_pid(self) -> int | None:
        pid = process.read_pid(self.data / "postmaster.pid")
        if pid is not None and process.is_ours(pid, self.marker):
            if process.read_pid(self.pid_file) != pid:
                process.write_pid(self.pid_file, pid)
            return pid
        return super().running_pid()

    def launch(self) -> int:
        user = self.os_user
        # pg_ctl hands these to /bin/sh, hence the quoting.
        server_opts = f"-p {self.port} -k {shlex.quote(str(self.socket_dir))} -c listen_addresses=127.0.0.1"
        args = as_user(
            user,
            [
                str(self.bin_dir() / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log_file),
                "-o",
                server_opts,
                "-w",
                "-t",
                str(int(self.startup_timeout)),
                "start",
            ],
        )
        try:
            run(args, "pg_ctl start", timeout=self.startup_timeout + 30)
        except CommandError as exc:
            raise ComponentDiedError(
                self.name,
                f"pg_ctl start exit code {exc.returncode}: {exc.output_tail}",
                self.log_file,
                process.tail(self.log_file),
            ) from exc
        pid = process.read_pid(self.data / "postmaster.pid")
        if pid is None:
            raise ComponentDiedError(
                self.name, "no postmaster.pid after start", self.log_file, process.tail(self.log_file)
            )
        return pid

    def after_start(self) -> None:
        run_coroutine(self._bootstrap())

    async def _superuser_connection(self) -> asyncpg.Connection:
        # Trust auth on the private socket directory: only root and the server's OS user can reach it.
        deadline = time.monotonic() + 30
        while True:
            try:
                return await asyncpg.connect(
                    host=str(self.socket_dir), port=self.port, user=SUPERUSER, database="postgres", timeout=5
                )
            except (OSError, asyncpg.PostgresError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def _bootstrap(self) -> None:
        """Create (or repair) the app's role and database; safe to run on every `up`."""
        conn = await self._superuser_connection()
        try:
            role_exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", APP_USER)
            verb = "ALTER" if role_exists else "CREATE"
            if not role_exists:
                log.info("creating role %s and database %s", APP_USER, APP_DATABASE)
            await conn.execute(f"{verb} ROLE {APP_USER} WITH LOGIN CREATEDB PASSWORD '{APP_PASSWORD}'")
            db_exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", APP_DATABASE)
            if not db_exists:
                await conn.execute(f"CREATE DATABASE {APP_DATABASE} OWNER {APP_USER}")
        finally:
            await conn.close()

    async def probe(self) -> None:
        await probe_url(self.database_url)


async def probe_url(url: str) -> None:
    conn = await asyncpg.connect(driver_dsn(url), timeout=5)
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


class ExternalPostgres:
    """Stands in for Postgres when SUPPORTPULSE_DATABASE_URL points elsewhere: report only, never manage."""

    name = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url

    def status(self) -> ComponentStatus:
        parts = urlsplit(self.url)
        address = f"{parts.hostname}:{parts.port or 5432}"
        try:
            run_coroutine(asyncio.wait_for(probe_url(self.url), 10))
        except Exception as exc:  # reported in the status, not raised
            return ComponentStatus(self.name, "external", None, address, False, str(exc), None)
        return ComponentStatus(self.name, "external", None, address, True, f"{DATABASE_URL_ENV} is set", None)


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
