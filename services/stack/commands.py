"""Running short-lived external commands (installers, initdb, mvn) with useful failure messages."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from services.stack.errors import CommandError

log = logging.getLogger("supportpulse.stack")


def output_tail(output: str, lines: int = 25) -> str:
    return "\n".join(output.strip().splitlines()[-lines:])


def run(
    args: Sequence[str],
    what: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 900.0,
    error: type[CommandError] = CommandError,
) -> str:
    """Run to completion, return stdout+stderr combined; raise `error` with the output tail on failure."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    log.debug("running: %s", " ".join(args))
    try:
        completed = subprocess.run(  # noqa: S603 - args come from this package, never from user input
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=full_env,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise error(what, args, 127, f"{args[0]}: command not found ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        out = exc.output if isinstance(exc.output, str) else (exc.output or b"").decode(errors="replace")
        raise error(what, args, -1, output_tail(out) + f"\n(timed out after {timeout:.0f}s)") from exc
    if completed.returncode != 0:
        raise error(what, args, completed.returncode, output_tail(completed.stdout))
    return completed.stdout


def as_user(user: str | None, args: Sequence[str]) -> list[str]:
    """Prefix `args` so they run as `user` (root only); None means "as whoever we are"."""
    if user is None:
        return list(args)
    return ["runuser", "-u", user, "--", *args]
