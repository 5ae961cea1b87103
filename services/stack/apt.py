"""Installing Debian packages with apt-get, non-interactively and without starting their services."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from services.stack.commands import run
from services.stack.errors import InstallError, StackError

log = logging.getLogger("supportpulse.stack")

POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
APT_LISTS = Path("/var/lib/apt/lists")

_APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "a"}
# Another apt/dpkg (another engineer, unattended-upgrades) may hold the lock: wait for it instead of failing.
_APT_OPTS = ["-o", "DPkg::Lock::Timeout=600", "-o", "Dpkg::Options::=--force-confold"]


def _lists_present() -> bool:
    return any(APT_LISTS.glob("*_Packages*"))


@contextlib.contextmanager
def _services_not_started() -> Iterator[None]:
    """Keep package postinst scripts from starting their own daemons (postgresql on 5432, prometheus on 9090).

    policy-rc.d exiting 101 is Debian's documented switch for this (invoke-rc.d honours it). We only add it
    when the machine has none and remove exactly the file we created.
    """
    if POLICY_RC_D.exists():
        yield
        return
    try:
        POLICY_RC_D.write_text("#!/bin/sh\n# temporary, written by supportpulse `stack up`\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        POLICY_RC_D.unlink(missing_ok=True)


def _apt_get(args: Sequence[str], what: str) -> None:
    run(["apt-get", *_APT_OPTS, *args], what, env=_APT_ENV, timeout=1800, error=InstallError)


def apt_install(packages: Sequence[str]) -> None:
    """Install `packages` (no recommends); runs `apt-get update` first when lists are missing or stale."""
    if not packages:
        return
    if os.geteuid() != 0:
        raise StackError(
            f"need to install {', '.join(packages)} but not running as root; run "
            f"`sudo apt-get install -y {' '.join(packages)}` and try again"
        )
    if shutil.which("apt-get") is None:
        raise StackError(
            f"need to install {', '.join(packages)} but apt-get is not available on this machine"
        )
    install = ["install", "-y", "--no-install-recommends", *packages]
    with _services_not_started():
        if not _lists_present():
            log.info("apt package lists are empty: running apt-get update...")
            _apt_get(["update"], "apt-get update")
        log.info("installing %s with apt-get...", " ".join(packages))
        try:
            _apt_get(install, f"apt-get install {' '.join(packages)}")
        except InstallError as first:
            # Most often the lists are stale (404 on a superseded .deb) or lack the package: refresh, retry.
            log.info("apt-get install failed (%s); running apt-get update and retrying...", first.returncode)
            _apt_get(["update"], "apt-get update")
            _apt_get(install, f"apt-get install {' '.join(packages)}")
